// Spec §10 test 42 (R9): a raw `ws` client opens /api/v4/websocket without any auth header,
// then authenticates in-band with authentication_challenge.

import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { MM_VERSION, WS_URL, newUser, sleep } from './helpers.mjs';

/** Opens a socket and records frames and the close; resolves once open. */
function open(url) {
  return new Promise((resolve, reject) => {
    const s = new WebSocket(url, { handshakeTimeout: 5000 });
    const conn = { s, frames: [], closed: null };
    s.on('message', (data, isBinary) => {
      const text = data.toString();
      try { conn.frames.push(JSON.parse(text)); } catch { conn.frames.push({ unparsable: text, isBinary }); }
    });
    s.on('close', (code, reason) => { conn.closed = { code, reason: reason.toString() }; });
    s.on('open', () => resolve(conn));
    s.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => reject(new Error(`upgrade refused: HTTP ${res.statusCode} ${body}`)));
    });
    s.on('error', reject);
  });
}

async function waitFor(conn, what, pred, ms = 5000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (pred(conn)) return;
    await sleep(20);
  }
  assert.fail(`no ${what} within ${ms} ms; frames ${JSON.stringify(conn.frames)}; close ${JSON.stringify(conn.closed)}`);
}

describe('v4 WebSocket authentication_challenge (test 42)', () => {
  let token;

  before(async () => {
    token = (await newUser('wsc')).token;
  });

  test('a good token -> {"status":"OK","seq_reply":1}, then hello with seq 0', async () => {
    const conn = await open(WS_URL);
    try {
      conn.s.send(JSON.stringify({ seq: 1, action: 'authentication_challenge', data: { token } }));
      await waitFor(conn, 'challenge reply and hello', (c) => c.frames.length >= 2);
      const [reply, hello] = conn.frames;
      assert.deepEqual({ status: reply.status, seq_reply: reply.seq_reply }, { status: 'OK', seq_reply: 1 },
        `first frame must be the challenge reply: ${JSON.stringify(conn.frames)}`);
      assert.equal(hello.event, 'hello', `second frame must be hello: ${JSON.stringify(conn.frames)}`);
      assert.equal(hello.seq, 0, 'hello seq');
      assert.ok(String(hello.data?.server_version).startsWith(`${MM_VERSION}.`), `hello.data: ${JSON.stringify(hello.data)}`);
      assert.equal(typeof hello.data?.connection_id, 'string');
      // The connection is live: a ping is answered with the next seq_reply.
      conn.s.send(JSON.stringify({ seq: 2, action: 'ping' }));
      await waitFor(conn, 'ping reply', (c) => c.frames.some((f) => f.seq_reply === 2));
      const pong = conn.frames.find((f) => f.seq_reply === 2);
      assert.equal(pong.status, 'OK');
      assert.equal(pong.data?.text, 'pong', `ping reply ${JSON.stringify(pong)}`);
      assert.equal(conn.closed, null, 'still open');
    } finally {
      conn.s.terminate();
    }
  });

  test('a bad token -> FAIL reply, then close 1008', async () => {
    const conn = await open(WS_URL);
    try {
      conn.s.send(JSON.stringify({ seq: 1, action: 'authentication_challenge', data: { token: 'not-a-valid-token' } }));
      await waitFor(conn, 'close after a bad token', (c) => c.closed !== null);
      const reply = conn.frames.find((f) => f.seq_reply === 1);
      assert.ok(reply, `a FAIL reply must precede the close: ${JSON.stringify(conn.frames)}`);
      assert.equal(reply.status, 'FAIL', `reply: ${JSON.stringify(reply)}`);
      assert.ok(reply.error && typeof reply.error === 'object', `FAIL reply carries an error object: ${JSON.stringify(reply)}`);
      assert.ok(!conn.frames.some((f) => f.event === 'hello'), 'no hello for a bad token');
      assert.equal(conn.closed.code, 1008, `close code: ${JSON.stringify(conn.closed)}`);
    } finally {
      conn.s.terminate();
    }
  });

  test('no challenge at all -> nothing is delivered before authentication', async () => {
    const conn = await open(WS_URL);
    try {
      await sleep(500);
      assert.ok(!conn.frames.some((f) => f.event), `no event before authentication: ${JSON.stringify(conn.frames)}`);
    } finally {
      conn.s.terminate();
    }
  });
});
