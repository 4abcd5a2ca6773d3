// Spec §10 test 40 (R10, R9), WebSocket part: the official WebSocketClient connects to
// /api/v4/websocket with initialize(url, token) (in-band authentication_challenge) and its
// listeners receive hello, posted, typing, reaction_added, reaction_removed, status_change and
// channel_viewed with a continuous seq.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { MM_VERSION, WS_URL, WebSocketClient, call, sleep, world } from './helpers.mjs';

const EVENT_TIMEOUT_MS = 5000;

/**
 * A WebSocketClient plus everything it saw: `frames` are the raw server frames (read through
 * our own `ws` socket, so a seq gap is visible even though the client drops such events),
 * `events` what its message listeners got, `closes` the close listener calls.
 */
function connect(who, token) {
  const frames = [];
  const events = [];
  const closes = [];
  const sockets = [];
  const client = new WebSocketClient({
    // Build the socket ourselves to watch the raw frames; the client still drives it.
    newWebSocketFn: (url) => {
      const s = new WebSocket(url, { handshakeTimeout: 5000 });
      sockets.push(s);
      s.addEventListener('message', (evt) => {
        try { frames.push(JSON.parse(String(evt.data))); } catch { frames.push({ unparsable: String(evt.data) }); }
      });
      return s;
    },
    // A test run never waits for a reconnect; a close is a failure we report.
    minWebSocketRetryTime: 600_000,
    reconnectJitterRange: 0,
  });
  const missed = [];
  client.addMessageListener((msg) => events.push(msg));
  // Like the webapp: with a missed-message listener the client records connection_id from
  // hello (and would call it when a reconnect finds a different connection id).
  client.addMissedMessageListener(() => missed.push(Date.now()));
  client.addCloseListener((failCount) => closes.push({ failCount, code: client.lastErrCode }));
  client.initialize(WS_URL, token);
  return { who, client, frames, events, closes, sockets, missed };
}

function summary(c) {
  const brief = c.frames.map((f) => (f.event ? `${f.event}#${f.seq}` : `reply#${f.seq_reply}:${f.status}`));
  const tail = JSON.stringify(c.frames.slice(-4));
  return `${c.who} saw frames [${brief.join(', ')}], the last ones ${tail.slice(-2000)}; closes ${JSON.stringify(c.closes)}`;
}

/** Waits until one of `c`'s listener events matches; fails with everything seen. */
async function waitEvent(c, what, pred, ms = EVENT_TIMEOUT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const hit = c.events.find((e) => { try { return pred(e); } catch { return false; } });
    if (hit) return hit;
    if (Date.now() > deadline) assert.fail(`${c.who}: no ${what} event within ${ms} ms; ${summary(c)}`);
    await sleep(20);
  }
}

/** Waits until one raw frame matches. */
async function waitFrame(c, what, pred, ms = EVENT_TIMEOUT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const hit = c.frames.find((f) => { try { return pred(f); } catch { return false; } });
    if (hit) return hit;
    if (Date.now() > deadline) assert.fail(`${c.who}: no ${what} within ${ms} ms; ${summary(c)}`);
    await sleep(20);
  }
}

/** Parses a v4 field that Mattermost sends as a JSON-encoded string. */
function parseStringField(e, key) {
  const v = e.data?.[key];
  assert.equal(typeof v, 'string', `${e.event}.data.${key} must be a JSON-encoded string on /api/v4/websocket, got ${JSON.stringify(v)}`);
  return JSON.parse(v);
}

function checkSeq(c) {
  const seqs = c.frames.filter((f) => 'event' in f).map((f) => f.seq);
  const expected = seqs.map((_, i) => i);
  assert.deepEqual(seqs, expected, `${c.who}: event seq must be 0,1,2,... without gaps; ${summary(c)}`);
  assert.equal(c.events.length, seqs.length, `${c.who}: the client's listeners must get every event (it drops events after a seq gap)`);
  assert.deepEqual(c.closes, [], `${c.who}: the connection must stay open; ${summary(c)}`);
  assert.deepEqual(c.missed, [], `${c.who}: the client must not have detected missed messages`);
}

describe('WebSocketClient against /api/v4/websocket', () => {
  let w; let alice; let bob; let carol;
  let wa; let wb; // WebSocketClient of alice and bob
  let post;

  before(async () => {
    w = await world(['bob', 'carol']);
    alice = w.owner; bob = w.users.bob; carol = w.users.carol;
  });

  after(() => {
    for (const c of [wa, wb]) {
      if (!c) continue;
      c.client.close();
      for (const s of c.sockets) s.terminate();
    }
  });

  test('initialize(url, token): authentication_challenge OK, then hello with seq 0', async () => {
    wa = connect('alice', alice.token);
    const reply = await waitFrame(wa, 'reply to authentication_challenge (seq_reply 1)', (f) => f.seq_reply === 1);
    assert.equal(reply.status, 'OK', `authentication_challenge reply: ${JSON.stringify(reply)}`);
    const hello = await waitEvent(wa, 'hello', (e) => e.event === 'hello');
    assert.equal(hello.seq, 0, 'hello has seq 0');
    assert.equal(typeof hello.data.connection_id, 'string');
    assert.ok(hello.data.connection_id.length > 0, 'hello.data.connection_id');
    assert.ok(String(hello.data.server_version).startsWith(`${MM_VERSION}.`), `hello.data.server_version: ${JSON.stringify(hello.data)}`);
    assert.equal(typeof hello.data.server_hostname, 'string', 'hello.data.server_hostname');
    assert.equal(wa.client.connectionId, hello.data.connection_id, 'the client took connection_id from hello');
    // The client pings right after opening (seq 2): ping -> OK with data.text "pong".
    const pong = await waitFrame(wa, 'reply to the client ping (seq_reply 2)', (f) => f.seq_reply === 2);
    assert.equal(pong.status, 'OK', `ping reply ${JSON.stringify(pong)}`);
    assert.equal(pong.data?.text, 'pong', `ping reply ${JSON.stringify(pong)}`);
    wb = connect('bob', bob.token);
    await waitEvent(wb, 'hello', (e) => e.event === 'hello' && e.seq === 0);
  });

  test('posted: data.post is a JSON-encoded string holding the post', async () => {
    post = await call('Client4.createPost (bob)', bob.client.createPost({ channel_id: w.town.id, message: 'hello over the websocket' }));
    const e = await waitEvent(wa, 'posted', (x) => x.event === 'posted' && JSON.parse(x.data.post).id === post.id);
    const p = parseStringField(e, 'post');
    assert.equal(p.message, 'hello over the websocket');
    assert.equal(p.channel_id, w.town.id);
    assert.equal(p.user_id, bob.user.id);
    assert.equal(e.data.channel_type, 'O', 'posted.data.channel_type');
    assert.equal(e.data.channel_name, w.town.name, 'posted.data.channel_name');
    assert.equal(e.data.team_id, w.team.id, 'posted.data.team_id');
    assert.equal(e.data.sender_name, `@${bob.username}`, 'posted.data.sender_name');
    assert.equal(e.broadcast?.channel_id, w.town.id, 'posted.broadcast.channel_id');
    // The author's own connection also gets it.
    await waitEvent(wb, 'posted (own post)', (x) => x.event === 'posted' && JSON.parse(x.data.post).id === post.id);
  });

  test('typing: userTyping from bob reaches alice, not bob', async () => {
    let replied = null;
    wb.client.userTyping(w.town.id, '', (msg) => { replied = msg; });
    const e = await waitEvent(wa, 'typing', (x) => x.event === 'typing' && x.data.user_id === bob.user.id);
    assert.equal(e.broadcast?.channel_id, w.town.id, `typing.broadcast.channel_id: ${JSON.stringify(e)}`);
    assert.equal(e.data.parent_id, '', 'typing.data.parent_id');
    await sleep(300);
    assert.ok(replied && replied.status === 'OK', `user_typing must be answered OK, got ${JSON.stringify(replied)}`);
    const own = wb.events.filter((x) => x.event === 'typing');
    assert.deepEqual(own, [], 'the sender must not receive its own typing event');
  });

  test('reaction_added and reaction_removed: data.reaction is a JSON-encoded string', async () => {
    await call('Client4.addReaction', alice.client.addReaction(alice.user.id, post.id, 'tada'));
    for (const c of [wa, wb]) {
      const e = await waitEvent(c, 'reaction_added', (x) => x.event === 'reaction_added');
      const r = parseStringField(e, 'reaction');
      assert.deepEqual([r.user_id, r.post_id, r.emoji_name], [alice.user.id, post.id, 'tada'], `reaction_added: ${JSON.stringify(r)}`);
      assert.ok(r.create_at > 0, 'reaction.create_at');
    }
    await call('Client4.removeReaction', alice.client.removeReaction(alice.user.id, post.id, 'tada'));
    for (const c of [wa, wb]) {
      const e = await waitEvent(c, 'reaction_removed', (x) => x.event === 'reaction_removed');
      const r = parseStringField(e, 'reaction');
      assert.deepEqual([r.user_id, r.post_id, r.emoji_name], [alice.user.id, post.id, 'tada'], `reaction_removed: ${JSON.stringify(r)}`);
    }
  });

  test('status_change: updateStatus of a teammate reaches the listener', async () => {
    await call('Client4.updateStatus (carol dnd)', carol.client.updateStatus({ user_id: carol.user.id, status: 'dnd' }));
    const e = await waitEvent(wa, 'status_change (carol dnd)', (x) => x.event === 'status_change' && x.data.user_id === carol.user.id && x.data.status === 'dnd');
    assert.equal(e.data.status, 'dnd');
    // Setting online ends the manual status; carol has no connection, so the server may
    // report her as online or, by presence, offline (spec §4.9) - but no longer dnd.
    await call('Client4.updateStatus (carol online)', carol.client.updateStatus({ user_id: carol.user.id, status: 'online' }));
    await waitEvent(wa, 'status_change (carol leaves dnd)', (x) => x.event === 'status_change' && x.data.user_id === carol.user.id
      && ['online', 'offline'].includes(x.data.status));
  });

  test('channel_viewed: viewMyChannel reaches the viewer\'s connection', async () => {
    await call('Client4.viewMyChannel', alice.client.viewMyChannel(w.town.id));
    const e = await waitEvent(wa, 'channel_viewed', (x) => x.event === 'channel_viewed');
    assert.equal(e.data.channel_id, w.town.id, `channel_viewed: ${JSON.stringify(e)}`);
    await sleep(300);
    assert.ok(!wb.events.some((x) => x.event === 'channel_viewed'), 'channel_viewed goes to the viewer only');
  });

  test('seq continuity: every event seq = previous + 1 and no reconnect', async () => {
    // One more event after everything else, so a late gap would show.
    const last = await call('Client4.createPost (last)', alice.client.createPost({ channel_id: w.town.id, message: 'last' }));
    await waitEvent(wa, 'posted (last)', (x) => x.event === 'posted' && JSON.parse(x.data.post).id === last.id);
    await waitEvent(wb, 'posted (last)', (x) => x.event === 'posted' && JSON.parse(x.data.post).id === last.id);
    assert.ok(wa.events.length >= 7, `alice got hello, 2 posted, reactions, status, channel_viewed: ${summary(wa)}`);
    checkSeq(wa);
    checkSeq(wb);
  });
});
