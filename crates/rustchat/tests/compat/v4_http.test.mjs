// Spec §10 test 41 (R6, R10): the v4 surface's common rules, checked with raw HTTP (the
// official client hides status lines and headers): Mattermost-shaped 501 for unimplemented
// paths, X-Version-Id / X-MM-COMPAT and no Cache-Control, per_page default 60 and clamp 200.

import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MM_VERSION, call, callFails, http, newClient, world } from './helpers.mjs';

const ERROR_FIELDS = ['id', 'message', 'detailed_error', 'request_id', 'status_code', 'is_oauth'];

function checkV4Headers(res, what) {
  const version = res.headers.get('x-version-id');
  assert.ok(version, `${what}: no X-Version-Id header`);
  assert.match(version, new RegExp(`^${MM_VERSION.replace(/\./g, '\\.')}\\.`), `${what}: X-Version-Id must start with ${MM_VERSION}.`);
  // Mattermost's layout is <version>.<build number>.<client-config hash>.<licensed>; the spec
  // fills both of the first two with compat.mattermost_version.
  const mm = MM_VERSION.replace(/\./g, '\\.');
  assert.match(version, new RegExp(`^${mm}\\.${mm}\\.[0-9a-f]{8}\\.false$`), `${what}: X-Version-Id = <mm>.<mm>.<8-hex hash>.false`);
  assert.equal(res.headers.get('x-mm-compat'), '1', `${what}: X-MM-COMPAT`);
  assert.equal(res.headers.get('cache-control'), null, `${what}: v4 responses carry no Cache-Control (the client then ignores X-Version-Id)`);
  assert.equal(res.headers.get('content-type'), 'application/json',
    `${what}: Content-Type must be exactly application/json (Client4 parses JSON only then)`);
  assert.ok(res.json !== null, `${what}: every v4 response has a JSON body, got ${JSON.stringify(res.text.slice(0, 300))}`);
}

function checkError(res, status, id, what) {
  assert.equal(res.status, status, `${what}: expected HTTP ${status}, got ${res.status}: ${res.text.slice(0, 600)}`);
  checkV4Headers(res, what);
  const missing = ERROR_FIELDS.filter((f) => !(f in res.json));
  assert.deepEqual(missing, [], `${what}: error body lacks ${missing.join(', ')}: ${res.text}`);
  assert.equal(res.json.id, id, `${what}: error id`);
  assert.equal(res.json.status_code, status, `${what}: status_code`);
  assert.equal(res.json.is_oauth, false, `${what}: is_oauth`);
  assert.equal(typeof res.json.message, 'string');
  assert.ok(res.json.message.length > 0, `${what}: empty message`);
  assert.equal(typeof res.json.request_id, 'string');
  assert.equal(res.json.request_id, res.headers.get('x-request-id'), `${what}: request_id = X-Request-Id`);
  return res.json;
}

describe('v4 common rules (test 41)', () => {
  let w; let token;

  before(async () => {
    w = await world([]);
    token = w.owner.token;
  });

  test('GET /api/v4/plugins -> Mattermost-shaped 501, unauthenticated and authenticated', async () => {
    for (const t of [undefined, token]) {
      const what = `GET /api/v4/plugins (${t ? 'with' : 'without'} token)`;
      const body = checkError(await http('GET', '/api/v4/plugins', { token: t }), 501, 'api.rustchat.not_implemented.app_error', what);
      assert.ok(body.detailed_error.includes('GET') && body.detailed_error.includes('/api/v4/plugins'),
        `${what}: detailed_error names method and path: ${JSON.stringify(body.detailed_error)}`);
    }
    // The official client surfaces it as a ClientError carrying the id.
    await callFails('Client4.getPlugins', w.owner.client.getPlugins(), 501, 'api.rustchat.not_implemented.app_error');
  });

  test('POST /api/v4/emoji -> Mattermost-shaped 501', async () => {
    const body = checkError(await http('POST', '/api/v4/emoji', { token, body: { name: 'x' } }),
      501, 'api.rustchat.not_implemented.app_error', 'POST /api/v4/emoji');
    assert.ok(body.detailed_error.includes('POST') && body.detailed_error.includes('/api/v4/emoji'),
      `detailed_error names method and path: ${JSON.stringify(body.detailed_error)}`);
  });

  test('request_id echoes a valid X-Request-Id', async () => {
    const res = await http('GET', '/api/v4/plugins', { headers: { 'X-Request-Id': 'compat-req-41' } });
    assert.equal(res.json?.request_id, 'compat-req-41', `request_id: ${res.text}`);
    assert.equal(res.headers.get('x-request-id'), 'compat-req-41');
  });

  test('v4 errors: 401, 404, 400 and 405 are Mattermost-shaped', async () => {
    checkError(await http('GET', '/api/v4/users/me'), 401, 'api.context.session_expired.app_error', 'GET /users/me without token');
    checkError(await http('GET', '/api/v4/posts/ybndrfg8ejkmcpqxot1uwiszay', { token }), 404, 'api.rustchat.not_found.app_error', 'GET unknown post');
    checkError(await http('GET', '/api/v4/posts/not-an-id', { token }), 400, 'api.context.invalid_param.app_error', 'GET malformed post id');
    const res = await http('DELETE', '/api/v4/system/ping', { token });
    assert.equal(res.status, 405, `a known path with a wrong method -> 405, got ${res.status}: ${res.text}`);
    checkV4Headers(res, 'DELETE /system/ping');
  });

  test('X-Version-Id on successful responses, no Cache-Control; the client adopts it', async () => {
    checkV4Headers(await http('GET', '/api/v4/system/ping'), 'GET /system/ping');
    checkV4Headers(await http('GET', '/api/v4/users/me', { token }), 'GET /users/me');
    checkV4Headers(await http('GET', '/api/v4/config/client?format=old'), 'GET /config/client?format=old');
    const c = newClient();
    c.setToken(token);
    await call('Client4.getMe', c.getMe());
    assert.equal(c.getServerVersion(), (await http('GET', '/api/v4/system/ping')).headers.get('x-version-id'), 'Client4.getServerVersion() after a call = X-Version-Id');
    // JSON bodies are parsed whatever the Content-Type (spec §3.5).
    const res = await http('POST', '/api/v4/users/ids', { token, body: JSON.stringify([w.owner.user.id]), headers: { 'Content-Type': 'text/plain' } });
    assert.equal(res.status, 200, `POST /users/ids with text/plain: ${res.text}`);
    assert.equal(res.json?.[0]?.id, w.owner.user.id);
  });

  test('per_page: default 60, per_page=500 clamped to 200', async () => {
    const ch = w.town.id;
    const total = 205;
    // Posts through the native API, 25 at a time (the SQLite writer batches them).
    for (let i = 0; i < total; i += 25) {
      const batch = [];
      for (let j = i; j < Math.min(total, i + 25); j += 1) {
        batch.push(http('POST', `/api/v1/channels/${ch}/posts`, { token, body: { message: `bulk ${j}` } }).then((r) => {
          assert.equal(r.status, 201, `native post ${j}: HTTP ${r.status} ${r.text}`);
        }));
      }
      await Promise.all(batch);
    }
    const def = await http('GET', `/api/v4/channels/${ch}/posts`, { token });
    assert.equal(def.status, 200, def.text.slice(0, 400));
    checkV4Headers(def, 'GET /channels/{id}/posts');
    assert.equal(def.json.order.length, 60, `no per_page -> 60 posts, got ${def.json.order.length}`);
    const big = await http('GET', `/api/v4/channels/${ch}/posts?page=0&per_page=500`, { token });
    assert.equal(big.status, 200, big.text.slice(0, 400));
    assert.equal(big.json.order.length, 200, `per_page=500 -> clamped to 200, got ${big.json.order.length}`);
    const rest = await http('GET', `/api/v4/channels/${ch}/posts?page=1&per_page=200`, { token });
    assert.equal(rest.json?.order?.length, 5, `page=1 per_page=200 holds the last 5 of ${total}, got ${rest.json?.order?.length}`);
    const viaClient = await call('Client4.getPosts(per_page=500)', w.owner.client.getPosts(ch, 0, 500));
    assert.ok(viaClient.order.length <= 200, `Client4.getPosts(0, 500) returned ${viaClient.order.length} > 200`);
    // The other list routes clamp too.
    const chans = await http('GET', `/api/v4/teams/${w.team.id}/channels?per_page=500`, { token });
    assert.equal(chans.status, 200, chans.text.slice(0, 400));
    assert.ok(Array.isArray(chans.json) && chans.json.length <= 200);
  });
});
