// Spec §10 test 38 as the UI sees it (CHAT-R6, R30): the password form leaves an HttpOnly,
// SameSite=Lax session cookie that page script cannot read and a readable CSRF cookie;
// a cookie-authenticated POST without X-CSRF-Token is refused (403) while the UI's own
// requests, which echo the cookie, succeed; signing out clears the session.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  BASE, SEED, WAIT, apiCall, assertClean, launch, login, newPage, openChannel, postWith, tag,
} from './helpers.mjs';

describe('test 38 (browser): session cookies and CSRF', () => {
  let browser;
  let page;

  before(async () => {
    browser = await launch();
    page = await newPage(browser);
    await login(page, 'bob');
  });

  after(async () => {
    await browser?.close();
  });

  it('sets an HttpOnly SameSite=Lax session cookie and a readable CSRF cookie', async () => {
    const cookies = await page.context().cookies(BASE);
    const session = cookies.find((c) => c.name === 'rustchat_session');
    const csrf = cookies.find((c) => c.name === 'rustchat_csrf');
    assert.ok(session && csrf, 'both cookies set');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Lax');
    assert.equal(csrf.httpOnly, false);
    const visible = await page.evaluate(() => document.cookie);
    assert.ok(!visible.includes('rustchat_session='), 'script cannot read the session cookie');
    assert.ok(visible.includes(`rustchat_csrf=${csrf.value}`));
  });

  it('refuses a cookie-authenticated POST without X-CSRF-Token', async () => {
    const statuses = await page.evaluate(async (channel) => {
      const token = document.cookie.split('; ').find((c) => c.startsWith('rustchat_csrf=')).split('=')[1];
      const send = (headers) => fetch(`/api/v1/channels/${channel}/posts`, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', ...headers },
        body: JSON.stringify({ message: 'csrf probe' }),
      }).then((r) => r.status);
      return {
        none: await send({}),
        wrong: await send({ 'X-CSRF-Token': 'not-the-token' }),
        right: await send({ 'X-CSRF-Token': token }),
      };
    }, SEED.channels.csrf);
    assert.deepEqual(statuses, { none: 403, wrong: 403, right: 201 });
  });

  it('posts through the composer (the UI sends the token)', async () => {
    const text = `composer post ${tag()}`;
    await openChannel(page, 'csrf');
    await page.fill('#composer-input', text);
    await page.press('#composer-input', 'Enter');
    await postWith(page, text).waitFor({ timeout: WAIT });
    assert.equal(await page.locator('#composer-error').isHidden(), true);
  });

  it('signs out: cookies cleared, the login form back, the API refuses', async () => {
    await page.click('#logout');
    await page.locator('#login-view').waitFor({ state: 'visible', timeout: WAIT });
    const names = (await page.context().cookies(BASE)).map((c) => c.name);
    assert.ok(!names.includes('rustchat_session'), `cookies left: ${names}`);
    const status = await page.evaluate(() => fetch('/api/v1/auth/me').then((r) => r.status));
    assert.equal(status, 401);
    // A reload stays signed out.
    await page.reload();
    await page.locator('#login-view').waitFor({ state: 'visible', timeout: WAIT });
  });

  it('raised no dialog, CSP violation or page error', async () => {
    await assertClean(page);
  });
});

describe('a revoked session signs the UI out', () => {
  let browser;
  let page;

  before(async () => {
    browser = await launch();
    page = await newPage(browser);
    await login(page, 'alice');
    await openChannel(page, 'csrf');
    await page.locator('#conn-status').waitFor({ state: 'hidden', timeout: WAIT });
  });

  after(async () => {
    await browser?.close();
  });

  it('shows the sign-in page with a notice when the server closes the socket with 1008', async () => {
    // Revoke every alice session except the one behind the seed's token (other suite
    // files keep using it): that includes the browser's cookie session.
    const list = await apiCall('GET', '/auth/sessions', SEED.users.alice.token);
    assert.equal(list.status, 200);
    const others = list.json.filter((s) => !s.current);
    assert.ok(others.length >= 1, 'the browser session is listed');
    for (const s of others) {
      const r = await apiCall('DELETE', `/auth/sessions/${s.id}`, SEED.users.alice.token);
      assert.equal(r.status, 200, r.text);
    }
    await page.locator('#login-view').waitFor({ state: 'visible', timeout: WAIT });
    assert.equal(await page.textContent('#login-error'), 'Your session ended. Please sign in again.');
    assert.equal(await page.locator('#app-view').isHidden(), true);
  });

  it('raised no dialog, CSP violation or page error', async () => {
    await assertClean(page);
  });
});
