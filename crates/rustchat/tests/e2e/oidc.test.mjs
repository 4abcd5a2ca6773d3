// The UI side of the OIDC contract (CHAT-R11, R22; docs/web-ui.md): provider buttons from
// GET /api/v1/oauth2/providers (none when the route is absent or the list empty), a button
// navigates the page to login_url, /login?error=<code> shows a readable message, and
// /login/complete POSTs {} to /api/v1/oauth2/exchange, then shows the app (200) or the
// error (anything else). Where the server has no providers configured, Playwright's
// request routing stands in for the provider list and the exchange answer.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { BASE, SEED, WAIT, assertClean, launch, newPage } from './helpers.mjs';

/** The real test provider's issuer (tests/oidc/real.mjs), when browser.rs started one. */
const IDP = process.env.RUSTCHAT_E2E_IDP || '';

const MESSAGES = {
  provider_unavailable: 'The sign-in provider is unavailable right now. Try again in a minute, or sign in with your password.',
  state_invalid: 'That sign-in attempt expired or could not be verified. Please start again.',
  login_failed: 'The sign-in provider did not confirm your identity, so you were not signed in.',
};

describe('OIDC sign-in in the UI', () => {
  let browser;
  let page;

  before(async () => {
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
  });

  it('shows no provider buttons when the server offers none', async () => {
    page = await newPage(browser);
    // The server under test offers the real provider; an empty list is simulated here.
    await page.route('**/api/v1/oauth2/providers', (route) => route.fulfill({
      status: 200, contentType: 'application/json', body: '[]',
    }));
    const providers = page.waitForResponse((r) => r.url().endsWith('/api/v1/oauth2/providers'));
    await page.goto(`${BASE}/`);
    const resp = await providers;
    assert.equal(resp.status(), 200);
    await page.locator('#login-view').waitFor({ state: 'visible', timeout: WAIT });
    assert.equal(await page.locator('#oidc-providers').isHidden(), true);
    assert.equal(await page.locator('.oidc-button').count(), 0);
    await assertClean(page);
    await page.context().close();
  });

  for (const [code, text] of Object.entries(MESSAGES)) {
    it(`explains /login?error=${code}`, async () => {
      page = await newPage(browser);
      await page.goto(`${BASE}/login?error=${code}`);
      await page.locator('#login-error').waitFor({ state: 'visible', timeout: WAIT });
      assert.equal(await page.textContent('#login-error'), text);
      await assertClean(page);
      await page.context().close();
    });
  }

  it('shows an unknown error code as text, never as markup', async () => {
    page = await newPage(browser);
    const code = '<img src=x onerror=alert(1)>';
    await page.goto(`${BASE}/login?error=${encodeURIComponent(code)}`);
    await page.locator('#login-error').waitFor({ state: 'visible', timeout: WAIT });
    assert.equal(await page.textContent('#login-error'), `Sign-in failed (${code}). Please try again.`);
    assert.equal(await page.locator('#login-error img').count(), 0);
    await assertClean(page);
    await page.context().close();
  });

  it('offers provider buttons that navigate the page to login_url', async () => {
    page = await newPage(browser);
    await page.route('**/api/v1/oauth2/providers', (route) => route.fulfill({
      status: 200,
      contentType: 'application/json',
      body: JSON.stringify([
        // login_url stands in for the server's /api/v1/oauth2/{name}/login, which would 302
        // to the provider and back; here it lands on the error page directly.
        { name: 'corp', display_name: 'Corp SSO', login_url: '/login?error=state_invalid' },
        { name: 'evil', display_name: 'Evil', login_url: 'javascript:alert(1)' },
      ]),
    }));
    await page.goto(`${BASE}/`);
    const button = page.locator('.oidc-button[data-provider="corp"]');
    await button.waitFor({ timeout: WAIT });
    assert.equal(await button.textContent(), 'Sign in with Corp SSO');
    assert.equal(await page.locator('.oidc-button').count(), 1, 'a javascript: login_url gets no button');
    await Promise.all([page.waitForURL(`${BASE}/login?error=state_invalid`, { timeout: WAIT }), button.click()]);
    await page.locator('#login-error', { hasText: MESSAGES.state_invalid }).waitFor({ timeout: WAIT });
    await assertClean(page);
    await page.context().close();
  });

  it('signs in through the real OpenID provider (node-oidc-provider) and lands in the app', { skip: !IDP }, async () => {
    // The provider logs in whoever its control endpoint names: a person with no account yet.
    const set = await fetch(`${IDP}/_test/account`, {
      method: 'POST',
      body: JSON.stringify({ sub: 'sub-dana', email: 'dana@example.com', preferred_username: 'dana', name: 'Dana Single-Sign-On' }),
    });
    assert.equal(set.status, 200);
    page = await newPage(browser);
    const visited = [];
    // Every hop of the redirect chain is its own navigation request.
    page.on('request', (r) => { if (r.isNavigationRequest()) visited.push(r.url()); });
    await page.goto(`${BASE}/`);
    const button = page.locator('.oidc-button[data-provider="test"]');
    await button.waitFor({ timeout: WAIT });
    assert.equal(await button.textContent(), 'Sign in with Test IdP');
    await button.click();
    await page.locator('#app-view').waitFor({ state: 'visible', timeout: WAIT });
    assert.equal(await page.textContent('#me-name'), 'Dana Single-Sign-On', 'the display name comes from the ID token');
    assert.equal(new URL(page.url()).pathname, '/');
    assert.ok(visited.some((u) => u.startsWith(IDP)), `the browser went to the provider: ${visited}`);
    // The one-time exchange code and the session never travel in a URL rustchat chose.
    for (const u of visited.filter((v) => v.startsWith(BASE) && !v.includes('/api/v1/oauth2/'))) {
      const q = new URL(u).searchParams;
      assert.ok(!q.has('code') && !q.has('token'), u);
    }
    const cookies = await page.context().cookies(BASE);
    const session = cookies.find((c) => c.name === 'rustchat_session');
    assert.ok(session && session.httpOnly && session.sameSite === 'Lax', JSON.stringify(session));
    assert.equal(cookies.some((c) => c.name === 'rustchat_oauth_code'), false, 'the exchange cookie is cleared');
    await assertClean(page);
    await page.context().close();
  });

  it('shows the error when the exchange fails', async () => {
    page = await newPage(browser);
    // No exchange cookie: whatever the server answers (404 without OIDC, 4xx with it) is
    // not 200, so the UI must stay signed out and say so.
    const exchange = page.waitForRequest((r) => r.url().endsWith('/api/v1/oauth2/exchange'));
    await page.goto(`${BASE}/login/complete`);
    const req = await exchange;
    assert.equal(req.method(), 'POST');
    assert.equal(req.postData(), '{}');
    await page.locator('#login-error', { hasText: 'Single sign-on could not be completed' }).waitFor({ timeout: WAIT });
    assert.equal(new URL(page.url()).pathname, '/login');
    assert.equal(await page.locator('#app-view').isHidden(), true);
    await assertClean(page);
    await page.context().close();
  });

  it('shows the app after a successful exchange', async () => {
    page = await newPage(browser);
    // The session cookies the real exchange would set come from a password login here.
    const login = await fetch(`${BASE}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ login: 'alice', password: SEED.password, cookie: true }),
    });
    assert.equal(login.status, 200);
    const user = (await login.json()).user;
    const cookies = login.headers.getSetCookie().map((line) => {
      const [pair] = line.split(';');
      const [name, ...value] = pair.split('=');
      return { name, value: value.join('='), url: BASE };
    });
    await page.context().addCookies(cookies);
    let body = null;
    await page.route('**/api/v1/oauth2/exchange', (route) => {
      body = route.request().postData();
      return route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(user) });
    });
    await page.goto(`${BASE}/login/complete`);
    await page.locator('#app-view').waitFor({ state: 'visible', timeout: WAIT });
    assert.equal(body, '{}');
    assert.equal(await page.textContent('#me-name'), 'alice');
    assert.equal(new URL(page.url()).pathname, '/', 'the landing URL is replaced');
    await assertClean(page);
    await page.context().close();
  });
});
