// Shared helpers for the browser suite: the server and seed come from the Rust driver
// (tests/browser.rs) through RUSTCHAT_URL, RUSTCHAT_E2E_SEED and RUSTCHAT_CHROMIUM.

import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

export const BASE = process.env.RUSTCHAT_URL;
if (!BASE) throw new Error('RUSTCHAT_URL is not set (run through cargo test --test browser)');
export const SEED = JSON.parse(process.env.RUSTCHAT_E2E_SEED || '{}');
const EXECUTABLE = process.env.RUSTCHAT_CHROMIUM || '/usr/bin/chromium';

/** Upper bound for one UI expectation (generous: two browsers share two cores). */
export const WAIT = 15000;

/** The exact CSP of every UI response (spec §3.6). */
export const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
  + "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** Headless Chromium (tests run as root, hence --no-sandbox). */
export function launch() {
  return chromium.launch({
    executablePath: EXECUTABLE,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
}

/**
 * A fresh context and page with watchers: every dialog (alert/confirm/prompt) is recorded
 * and dismissed, every CSP violation (securitypolicyviolation events and console reports)
 * and every uncaught page error is recorded. `assertClean(page)` fails on any of them.
 */
export async function newPage(browser) {
  const context = await browser.newContext({ acceptDownloads: true });
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const page = await context.newPage();
  page.watch = { dialogs: [], csp: [], errors: [] };
  page.on('dialog', (d) => {
    page.watch.dialogs.push(`${d.type()}: ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) page.watch.csp.push(m.text());
  });
  page.on('pageerror', (e) => page.watch.errors.push(String(e)));
  return page;
}

/** Fails when a dialog fired, a CSP violation was reported, or the page threw. */
export async function assertClean(page) {
  const inPage = await page.evaluate(() => window.__cspViolations || []).catch(() => []);
  assert.deepEqual(page.watch.dialogs, [], 'no dialog may fire');
  assert.deepEqual([...page.watch.csp, ...inPage], [], 'no CSP violation may be reported');
  assert.deepEqual(page.watch.errors, [], 'the page threw');
}

/** Signs `name` in through the form and waits for the app. */
export async function login(page, name) {
  await page.goto(`${BASE}/`);
  await page.locator('#login-view').waitFor({ state: 'visible', timeout: WAIT });
  await page.fill('#login-name', name);
  await page.fill('#login-password', SEED.password);
  await page.click('#login-submit');
  await page.locator('#app-view').waitFor({ state: 'visible', timeout: WAIT });
}

/** Picks the seeded main team and opens channel `name`. */
export async function openChannel(page, name, teamId = SEED.teams.main.id) {
  await page.locator(`#team-select option[value="${teamId}"]`).waitFor({ state: 'attached', timeout: WAIT });
  if ((await page.inputValue('#team-select')) !== teamId) {
    await page.selectOption('#team-select', teamId);
  }
  const item = page.locator(`.channel-item[data-name="${name}"]`);
  await item.locator('.channel-link').click({ timeout: WAIT });
  await page.locator(`.channel-item.active[data-name="${name}"]`).waitFor({ timeout: WAIT });
}

/** The post elements of a list whose text contains `text`. */
export function postWith(page, text, list = '#message-list') {
  return page.locator(`${list} .post`, { hasText: text });
}

/** Polls `fn` until it returns a truthy value (or fails after `timeout`). */
export async function eventually(fn, what, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeout} ms (last: ${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A native API call with a Bearer token (seeding from the test side). */
export async function apiCall(method, path, token, body) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const resp = await fetch(`${BASE}/api/v1${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  let json = null;
  try { json = JSON.parse(text); } catch { json = null; }
  return { status: resp.status, json, text, headers: resp.headers };
}

/** A short random suffix so messages are unique per run. */
export function tag() {
  return Math.random().toString(36).slice(2, 8);
}
