// Shared helpers of the compatibility suite: the server URL, raw HTTP calls to the native
// API (used only to set up users, teams and channels), Client4 construction and a wrapper
// that turns the official client's terse errors into messages saying what came back.
//
// Not a test file (node --test only runs *.test.mjs here).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';
import mm from '@mattermost/client';

// @mattermost/client is CommonJS whose index re-exports through getters that Node's
// CJS lexer cannot see, so named ESM imports fail; take them off the default export.
export const { Client4, ClientError, WebSocketClient } = mm;

// WebSocketClient calls `new WebSocket(url)` and reads `WebSocket.OPEN` from the global
// scope even when `newWebSocketFn` is given; Node 20 has no global WebSocket (Node 22 has
// one). It also builds `new CloseEvent(...)` when it detects a seq gap or a ping timeout;
// Node 20 has no CloseEvent. Install `ws` and a minimal CloseEvent so the client behaves
// as in a browser.
if (typeof globalThis.WebSocket === 'undefined') {
  globalThis.WebSocket = WebSocket;
}
if (typeof globalThis.CloseEvent === 'undefined') {
  globalThis.CloseEvent = class CloseEvent extends Event {
    constructor(type, init = {}) {
      super(type);
      this.code = init.code ?? 0;
      this.reason = init.reason ?? '';
      this.wasClean = init.wasClean ?? false;
    }
  };
}

const rawUrl = process.env.RUSTCHAT_URL;
if (!rawUrl) {
  throw new Error('RUSTCHAT_URL is not set (e.g. RUSTCHAT_URL=http://127.0.0.1:3000 node --test)');
}
/** Server base URL without a trailing slash, e.g. http://127.0.0.1:3000 */
export const BASE = rawUrl.replace(/\/+$/, '');
/** The v4 WebSocket URL handed to WebSocketClient.initialize. */
export const WS_URL = `${BASE.replace(/^http/, 'ws')}/api/v4/websocket`;
/** compat.mattermost_version default (spec §2.3). */
export const MM_VERSION = '10.11.10';
export const PASSWORD = 'compat-password-123';

// Every fetch this process makes (Client4's included) is recorded, so a failing Client4
// call can say which HTTP status and body the server really sent.
const realFetch = globalThis.fetch;
let lastResponse = null;
globalThis.fetch = async (url, options) => {
  const res = await realFetch(url, options);
  const clone = res.clone();
  const method = (options && options.method ? options.method : 'GET').toUpperCase();
  lastResponse = { method, url: String(url), status: res.status, contentType: res.headers.get('content-type'), body: null };
  const rec = lastResponse;
  clone.text().then((t) => { rec.body = t.slice(0, 600); }, () => {});
  return res;
};

function describeLast() {
  if (!lastResponse) return 'no HTTP response recorded';
  const r = lastResponse;
  return `${r.method} ${r.url} -> HTTP ${r.status} (Content-Type ${r.contentType}) body ${r.body ?? '<unread>'}`;
}

/**
 * Runs one Client4 / WebSocketClient-backed call, failing with the route, the HTTP status and
 * the body when it rejects, or when the client handed back a string (the client parses JSON
 * only when Content-Type is exactly `application/json`).
 */
export async function call(what, promiseOrFn) {
  let out;
  try {
    out = await (typeof promiseOrFn === 'function' ? promiseOrFn() : promiseOrFn);
  } catch (e) {
    const detail = e instanceof ClientError
      ? `ClientError status_code=${e.status_code} server_error_id=${e.server_error_id} message=${JSON.stringify(e.message)} url=${e.url}`
      : String(e && e.stack ? e.stack : e);
    assert.fail(`${what} failed: ${detail}\n  last response: ${describeLast()}`);
  }
  if (typeof out === 'string') {
    assert.fail(`${what} returned a string, not JSON (the client parses JSON only for Content-Type exactly "application/json"): ${describeLast()}`);
  }
  return out;
}

/** Expects a Client4 call to reject with a ClientError of `status` (and `id` when given). */
export async function callFails(what, promiseOrFn, status, id) {
  let out;
  try {
    out = await (typeof promiseOrFn === 'function' ? promiseOrFn() : promiseOrFn);
  } catch (e) {
    assert.ok(e instanceof ClientError, `${what}: expected a ClientError, got ${e && e.stack ? e.stack : e}`);
    assert.equal(e.status_code, status, `${what}: expected status_code ${status}, got ${e.status_code} (${describeLast()})`);
    if (id) {
      assert.equal(e.server_error_id, id, `${what}: expected error id ${id} (${describeLast()})`);
    }
    return e;
  }
  assert.fail(`${what}: expected HTTP ${status}${id ? ` ${id}` : ''}, but it succeeded with ${JSON.stringify(out)?.slice(0, 400)}`);
}

/** A fresh lower-case name valid as a username/team/channel name (spec §3.1). */
export function uniq(prefix) {
  return `${prefix}${randomBytes(5).toString('hex')}`.slice(0, 22);
}

/**
 * One raw HTTP call; `body` is JSON-encoded when it is not a string.
 * Returns {status, headers, json, text}.
 */
export async function http(method, path, { token, body, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    if (!h['Content-Type']) h['Content-Type'] = 'application/json';
  }
  const res = await realFetch(`${BASE}${path}`, { method, headers: h, body: payload });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, json, text };
}

/** Asserts the status of a raw call, printing what came back. */
export function expectStatus(res, status, what) {
  assert.equal(res.status, status, `${what}: expected HTTP ${status}, got ${res.status}: ${res.text.slice(0, 600)}`);
  return res.json;
}

/** Registers a user through the native API; returns the native user object. */
export async function register(username) {
  const res = await http('POST', '/api/v1/auth/register', {
    body: { username, email: `${username}@example.com`, password: PASSWORD },
  });
  const user = expectStatus(res, 201, `native register ${username}`);
  assert.equal(typeof user?.id, 'string', `native register ${username}: no id in ${res.text}`);
  return user;
}

/** A Client4 pointed at the server, not logged in. */
export function newClient() {
  const c = new Client4();
  c.setUrl(BASE);
  return c;
}

/** Registers `username` natively and logs in with Client4.login; returns {client, user, token}. */
export async function newUser(prefix) {
  const username = uniq(prefix);
  const native = await register(username);
  const client = newClient();
  const user = await call(`Client4.login(${username})`, client.login(username, PASSWORD));
  const token = client.getToken();
  assert.ok(token, `Client4.login(${username}) left client.getToken() empty: the login response had no Token header (${describeLast()})`);
  assert.equal(user.id, native.id, 'Client4.login returned another user');
  return { client, user, token, username };
}

/**
 * Sets up a world through the native API: an owner and `others` users, one open team with
 * everybody in it, a public channel everybody joined and a private channel of the owner.
 */
export async function world(others = ['bob', 'carol']) {
  const owner = await newUser('alice');
  const users = {};
  for (const o of others) users[o] = await newUser(o);
  const team = expectStatus(await http('POST', '/api/v1/teams', {
    token: owner.token,
    body: { name: uniq('team'), display_name: 'Compat team', open: true },
  }), 201, 'native create team');
  for (const u of Object.values(users)) {
    const r = await http('POST', `/api/v1/teams/${team.id}/members`, { token: owner.token, body: { user_id: u.user.id } });
    assert.ok(r.status === 201 || r.status === 200, `native add team member: HTTP ${r.status} ${r.text}`);
  }
  const town = expectStatus(await http('POST', `/api/v1/teams/${team.id}/channels`, {
    token: owner.token,
    body: { name: uniq('town'), display_name: 'Town square', type: 'public' },
  }), 201, 'native create public channel');
  for (const u of Object.values(users)) {
    const r = await http('POST', `/api/v1/channels/${town.id}/members`, { token: owner.token, body: { user_id: u.user.id } });
    assert.ok(r.status === 201 || r.status === 200, `native add channel member: HTTP ${r.status} ${r.text}`);
  }
  const secret = expectStatus(await http('POST', `/api/v1/teams/${team.id}/channels`, {
    token: owner.token,
    body: { name: uniq('secret'), display_name: 'Secret', type: 'private' },
  }), 201, 'native create private channel');
  return { owner, users, team, town, secret };
}

/** A native post (fast setup of many posts). */
export async function nativePost(token, channelId, message) {
  return expectStatus(await http('POST', `/api/v1/channels/${channelId}/posts`, { token, body: { message } }), 201, 'native post');
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Calls `probe` until it returns a truthy value or `ms` pass; then fails with `what()`. */
export async function eventually(probe, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(typeof what === 'function' ? what() : what);
    await sleep(25);
  }
}
