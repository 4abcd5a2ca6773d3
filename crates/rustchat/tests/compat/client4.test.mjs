// Spec §10 test 40 (R10), REST part: every Client4 row of the §3.5 table, called through the
// official @mattermost/client 11.9.0 exactly as the webapp calls it.

import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MM_VERSION, PASSWORD, call, callFails, expectStatus, http, newClient, sleep, uniq, world,
} from './helpers.mjs';

const USER_FIELDS = ['id', 'create_at', 'update_at', 'delete_at', 'username', 'email', 'nickname', 'first_name',
  'last_name', 'position', 'roles', 'locale', 'timezone', 'props', 'notify_props', 'is_bot'];
const CHANNEL_FIELDS = ['id', 'team_id', 'type', 'name', 'display_name', 'total_msg_count', 'total_msg_count_root',
  'last_post_at', 'last_root_post_at', 'creator_id'];
const MEMBER_FIELDS = ['channel_id', 'user_id', 'roles', 'last_viewed_at', 'msg_count', 'msg_count_root',
  'mention_count', 'mention_count_root', 'notify_props'];
const POST_FIELDS = ['id', 'create_at', 'update_at', 'edit_at', 'delete_at', 'is_pinned', 'user_id', 'channel_id',
  'root_id', 'original_id', 'message', 'type', 'props', 'hashtags', 'pending_post_id', 'reply_count',
  'last_reply_at', 'metadata'];

function hasFields(obj, fields, what) {
  assert.ok(obj && typeof obj === 'object', `${what}: expected an object, got ${JSON.stringify(obj)}`);
  const missing = fields.filter((f) => !(f in obj));
  assert.deepEqual(missing, [], `${what}: missing Mattermost fields ${missing.join(', ')} in ${JSON.stringify(obj)}`);
}

function ids(list) {
  return list.map((x) => x.id);
}

/** A post list: order newest first, every order id in posts, the paging fields present. */
function checkPostList(list, what) {
  assert.ok(list && Array.isArray(list.order), `${what}: expected {order:[...]}, got ${JSON.stringify(list)}`);
  assert.ok(list.posts && typeof list.posts === 'object' && !Array.isArray(list.posts), `${what}: posts must be a map id -> post`);
  for (const f of ['next_post_id', 'prev_post_id', 'has_next']) {
    assert.ok(f in list, `${what}: missing ${f} in ${JSON.stringify(Object.keys(list))}`);
  }
  for (const id of list.order) assert.ok(list.posts[id], `${what}: order id ${id} missing from posts`);
  const times = list.order.map((id) => list.posts[id].create_at);
  const sorted = [...times].sort((a, b) => b - a);
  assert.deepEqual(times, sorted, `${what}: order must be newest first (create_at ${times.join(',')})`);
  return list;
}

describe('Client4 against rustchat /api/v4', () => {
  let w; // world: owner (alice), users.bob, users.carol, team, town (public), secret (private)
  let alice; let bob; let carol;

  before(async () => {
    w = await world(['bob', 'carol']);
    alice = w.owner; bob = w.users.bob; carol = w.users.carol;
  });

  test('ping: GET /system/ping -> {"status":"OK"}', async () => {
    const c = newClient();
    const r = await call('Client4.ping', c.ping());
    assert.equal(r.status, 'OK', `ping: ${JSON.stringify(r)}`);
    assert.ok(c.getServerVersion().startsWith(`${MM_VERSION}.`),
      `after ping the client should have taken X-Version-Id as its server version (no Cache-Control), got "${c.getServerVersion()}"`);
  });

  test('getClientConfig (spec: getClientConfigOld): GET /config/client?format=old', async () => {
    // 11.9.0 names it getClientConfig; it still requests ?format=old.
    assert.equal(typeof newClient().getClientConfig, 'function');
    const live = expectStatus(await http('GET', '/api/v1/health/live'), 200, 'live');
    const cfg = await call('Client4.getClientConfig', newClient().getClientConfig());
    for (const [k, v] of Object.entries(cfg)) {
      assert.equal(typeof v, 'string', `config/client?format=old is a string map; ${k} is ${JSON.stringify(v)}`);
    }
    assert.equal(cfg.Version, MM_VERSION, `Version: ${JSON.stringify(cfg)}`);
    assert.equal(cfg.BuildNumber, `rustchat-${live.version}`, 'BuildNumber');
    assert.equal(cfg.SiteName, 'RustChat', 'SiteName (site.site_name default)');
    assert.equal(cfg.EnableSignInWithEmail, 'true', 'EnableSignInWithEmail');
    assert.equal(cfg.EnableSignUpWithEmail, 'true', 'EnableSignUpWithEmail');
    assert.equal(cfg.EnableOpenServer, 'true', 'EnableOpenServer');
  });

  test('getClientLicenseOld: GET /license/client?format=old -> IsLicensed "false"', async () => {
    const lic = await call('Client4.getClientLicenseOld', newClient().getClientLicenseOld());
    assert.equal(lic.IsLicensed, 'false', `license: ${JSON.stringify(lic)}`);
  });

  test('login: POST /users/login -> user + Token header; bad password -> 401', async () => {
    const c = newClient();
    const me = await call('Client4.login', c.login(bob.username, PASSWORD));
    hasFields(me, USER_FIELDS, 'login user');
    assert.equal(me.id, bob.user.id);
    assert.equal(me.username, bob.username);
    assert.ok(c.getToken().length > 20, `Token header -> client.getToken(), got "${c.getToken()}"`);
    // The token really authenticates further calls.
    const again = await call('Client4.getMe with the login token', c.getMe());
    assert.equal(again.id, bob.user.id);
    await callFails('Client4.login with a wrong password', newClient().login(bob.username, 'not-the-password'),
      401, 'api.user.login.invalid_credentials_email_username');
    await callFails('Client4.login as an unknown user', newClient().login(uniq('nobody'), PASSWORD),
      401, 'api.user.login.invalid_credentials_email_username');
  });

  test('getMe: GET /users/me', async () => {
    const me = await call('Client4.getMe', alice.client.getMe());
    hasFields(me, USER_FIELDS, 'getMe');
    assert.equal(me.id, alice.user.id);
    assert.equal(me.username, alice.username);
    assert.equal(me.email, `${alice.username}@example.com`, 'own email is visible');
    assert.match(me.roles, /^system_user( system_admin)?$/, 'roles');
    assert.equal(me.is_bot, false);
    assert.equal(me.delete_at, 0);
    await callFails('Client4.getMe without a token', newClient().getMe(), 401, 'api.context.session_expired.app_error');
  });

  test('getUser: GET /users/{id}', async () => {
    const u = await call('Client4.getUser', alice.client.getUser(bob.user.id));
    hasFields(u, USER_FIELDS, 'getUser');
    assert.equal(u.id, bob.user.id);
    assert.equal(u.username, bob.username);
  });

  test('getProfilesByIds: POST /users/ids', async () => {
    const list = await call('Client4.getProfilesByIds', alice.client.getProfilesByIds([bob.user.id, carol.user.id]));
    assert.ok(Array.isArray(list), `expected an array, got ${JSON.stringify(list)}`);
    assert.deepEqual(ids(list).sort(), [bob.user.id, carol.user.id].sort());
    for (const u of list) hasFields(u, USER_FIELDS, 'getProfilesByIds item');
  });

  test('getMyTeams, getTeam: GET /users/me/teams, GET /teams/{id}', async () => {
    const teams = await call('Client4.getMyTeams', bob.client.getMyTeams());
    assert.ok(Array.isArray(teams), `getMyTeams: ${JSON.stringify(teams)}`);
    const t = teams.find((x) => x.id === w.team.id);
    assert.ok(t, `getMyTeams lacks team ${w.team.id}: ${JSON.stringify(teams)}`);
    assert.equal(t.type, 'O', 'open team -> type "O"');
    const team = await call('Client4.getTeam', bob.client.getTeam(w.team.id));
    assert.equal(team.id, w.team.id);
    assert.equal(team.name, w.team.name);
    assert.equal(team.display_name, 'Compat team');
    assert.equal(team.type, 'O');
  });

  test('getMyChannels, getChannels: GET /users/me/teams/{tid}/channels, GET /teams/{tid}/channels', async () => {
    const mine = await call('Client4.getMyChannels', alice.client.getMyChannels(w.team.id));
    assert.ok(Array.isArray(mine), `getMyChannels: ${JSON.stringify(mine)}`);
    const town = mine.find((c) => c.id === w.town.id);
    const secret = mine.find((c) => c.id === w.secret.id);
    assert.ok(town && secret, `getMyChannels must hold the public and the private channel: ${JSON.stringify(ids(mine))}`);
    hasFields(town, CHANNEL_FIELDS, 'getMyChannels item');
    assert.equal(town.type, 'O');
    assert.equal(secret.type, 'P');
    // bob is not in the private channel.
    const bobs = await call('Client4.getMyChannels (bob)', bob.client.getMyChannels(w.team.id));
    assert.ok(!ids(bobs).includes(w.secret.id), 'a non-member must not see the private channel in getMyChannels');
    const pub = await call('Client4.getChannels', carol.client.getChannels(w.team.id));
    assert.ok(Array.isArray(pub), `getChannels: ${JSON.stringify(pub)}`);
    assert.ok(ids(pub).includes(w.town.id), 'getChannels lists the public channel');
    assert.ok(!ids(pub).includes(w.secret.id), 'getChannels must not list private channels');
    for (const c of pub) assert.equal(c.type, 'O', `getChannels lists public channels only: ${JSON.stringify(c)}`);
  });

  test('getMyChannelMembers, getMyChannelMember, getChannel', async () => {
    const members = await call('Client4.getMyChannelMembers', bob.client.getMyChannelMembers(w.team.id));
    assert.ok(Array.isArray(members), `getMyChannelMembers: ${JSON.stringify(members)}`);
    const m = members.find((x) => x.channel_id === w.town.id);
    assert.ok(m, `getMyChannelMembers lacks ${w.town.id}: ${JSON.stringify(members)}`);
    hasFields(m, MEMBER_FIELDS, 'getMyChannelMembers item');
    assert.equal(m.user_id, bob.user.id);
    const one = await call('Client4.getMyChannelMember', bob.client.getMyChannelMember(w.town.id));
    hasFields(one, MEMBER_FIELDS, 'getMyChannelMember');
    assert.equal(one.channel_id, w.town.id);
    assert.equal(one.user_id, bob.user.id);
    const ch = await call('Client4.getChannel', bob.client.getChannel(w.town.id));
    hasFields(ch, CHANNEL_FIELDS, 'getChannel');
    assert.equal(ch.id, w.town.id);
    assert.equal(ch.team_id, w.team.id);
    assert.equal(ch.type, 'O');
    assert.equal(ch.name, w.town.name);
    assert.equal(ch.creator_id, alice.user.id);
    // A non-member of a private channel gets 403 on v4 (spec test 25).
    await callFails('Client4.getChannel(private) by a non-member', bob.client.getChannel(w.secret.id),
      403, 'api.context.permissions.app_error');
  });

  test('createChannel, addToChannel: POST /channels, POST /channels/{id}/members', async () => {
    const name = uniq('made');
    const ch = await call('Client4.createChannel', alice.client.createChannel({
      team_id: w.team.id, name, display_name: 'Made by Client4', type: 'O', purpose: '', header: '',
    }));
    hasFields(ch, CHANNEL_FIELDS, 'createChannel');
    assert.equal(ch.name, name);
    assert.equal(ch.type, 'O');
    assert.equal(ch.team_id, w.team.id);
    assert.equal(ch.creator_id, alice.user.id);
    const priv = await call('Client4.createChannel (private)', alice.client.createChannel({
      team_id: w.team.id, name: uniq('hush'), display_name: 'Private by Client4', type: 'P',
    }));
    assert.equal(priv.type, 'P');
    await callFails('carol reads the new private channel before being added', carol.client.getChannel(priv.id), 403);
    const member = await call('Client4.addToChannel', alice.client.addToChannel(carol.user.id, priv.id));
    assert.equal(member.user_id, carol.user.id);
    assert.equal(member.channel_id, priv.id);
    const seen = await call('carol getMyChannelMember after addToChannel', carol.client.getMyChannelMember(priv.id));
    assert.equal(seen.user_id, carol.user.id);
    const got = await call('carol getChannel after addToChannel', carol.client.getChannel(priv.id));
    assert.equal(got.id, priv.id);
  });

  test('createDirectChannel: POST /channels/direct', async () => {
    const dm = await call('Client4.createDirectChannel', alice.client.createDirectChannel([alice.user.id, bob.user.id]));
    hasFields(dm, CHANNEL_FIELDS, 'createDirectChannel');
    assert.equal(dm.type, 'D');
    assert.equal(dm.name, [alice.user.id, bob.user.id].sort().join('__'), 'DM name <idA>__<idB> sorted');
    const again = await call('Client4.createDirectChannel (existing)', bob.client.createDirectChannel([bob.user.id, alice.user.id]));
    assert.equal(again.id, dm.id, 'the same pair gets the same DM channel');
    const p = await call('Client4.createPost in the DM', bob.client.createPost({ channel_id: dm.id, message: 'psst' }));
    assert.equal(p.channel_id, dm.id);
  });

  describe('posts', () => {
    let ch; // a fresh public channel with alice and bob
    let root; let reply;

    before(async () => {
      ch = await call('Client4.createChannel (posts)', alice.client.createChannel({
        team_id: w.team.id, name: uniq('posts'), display_name: 'Posts', type: 'O',
      }));
      await call('Client4.addToChannel (posts)', alice.client.addToChannel(bob.user.id, ch.id));
    });

    test('createPost: root, root_id reply, pending_post_id idempotence', async () => {
      root = await call('Client4.createPost (root)', alice.client.createPost({ channel_id: ch.id, message: 'root message' }));
      hasFields(root, POST_FIELDS, 'createPost');
      assert.equal(root.channel_id, ch.id);
      assert.equal(root.user_id, alice.user.id);
      assert.equal(root.root_id, '');
      assert.equal(root.message, 'root message');
      assert.equal(root.delete_at, 0);
      assert.ok(root.create_at > 0);
      reply = await call('Client4.createPost (reply)', bob.client.createPost({ channel_id: ch.id, message: 'a reply', root_id: root.id }));
      assert.equal(reply.root_id, root.id);
      assert.equal(reply.user_id, bob.user.id);
      const pending = `${alice.user.id}:${Date.now()}`;
      const a = await call('Client4.createPost (pending_post_id, 1st)', alice.client.createPost({ channel_id: ch.id, message: 'once', pending_post_id: pending }));
      const b = await call('Client4.createPost (pending_post_id, 2nd)', alice.client.createPost({ channel_id: ch.id, message: 'once', pending_post_id: pending }));
      assert.equal(a.pending_post_id, pending, 'pending_post_id echoed');
      assert.equal(b.id, a.id, 'the same pending_post_id twice must give the same post');
      const list = await call('Client4.getPosts after the repeat', alice.client.getPosts(ch.id));
      const onces = Object.values(list.posts).filter((p) => p.message === 'once');
      assert.equal(onces.length, 1, `one stored post for a repeated pending_post_id, got ${onces.length}`);
      // A reply to a reply is refused (spec §4.3).
      await callFails('Client4.createPost replying to a reply', alice.client.createPost({ channel_id: ch.id, message: 'x', root_id: reply.id }), 400);
    });

    test('getPost: GET /posts/{id}', async () => {
      const p = await call('Client4.getPost', bob.client.getPost(root.id));
      hasFields(p, POST_FIELDS, 'getPost');
      assert.equal(p.id, root.id);
      assert.equal(p.message, 'root message');
      assert.equal(p.reply_count, 1, 'root reply_count after one reply');
      assert.ok(p.last_reply_at >= reply.create_at, 'last_reply_at');
      await callFails('Client4.getPost(unknown id)', bob.client.getPost('ybndrfg8ejkmcpqxot1uwiszay'), 404, 'api.rustchat.not_found.app_error');
    });

    test('getPosts: order newest first, roots of replies in posts, paging fields', async () => {
      const list = checkPostList(await call('Client4.getPosts', bob.client.getPosts(ch.id)), 'getPosts');
      assert.ok(list.order.includes(root.id) && list.order.includes(reply.id), 'getPosts holds root and reply');
      assert.equal(list.order.length, 3, `3 posts in the channel, order ${JSON.stringify(list.order)}`);
      // A page holding only the reply still carries its root in posts.
      const newest = await call('Client4.createPost (reply 2)', bob.client.createPost({ channel_id: ch.id, message: 'reply two', root_id: root.id }));
      const page = checkPostList(await call('Client4.getPosts(per_page=1)', bob.client.getPosts(ch.id, 0, 1)), 'getPosts page of 1');
      assert.deepEqual(page.order, [newest.id], 'per_page=1 returns the newest post only');
      assert.ok(page.posts[root.id], `posts must also hold the root of the reply on the page: ${JSON.stringify(Object.keys(page.posts))}`);
      const second = checkPostList(await call('Client4.getPosts(page=1, per_page=1)', bob.client.getPosts(ch.id, 1, 1)), 'getPosts page 1');
      assert.equal(second.order.length, 1);
      assert.notEqual(second.order[0], newest.id, 'page 1 is the next older post');
    });

    test('getPostsSince, getPostsBefore, getPostsAfter: ?since, ?before, ?after', async () => {
      const pc = await call('Client4.createChannel (paging)', alice.client.createChannel({
        team_id: w.team.id, name: uniq('paging'), display_name: 'Paging', type: 'O',
      }));
      const a = await call('createPost A', alice.client.createPost({ channel_id: pc.id, message: 'A' }));
      await sleep(10);
      const since = a.create_at + 1;
      const b = await call('createPost B', alice.client.createPost({ channel_id: pc.id, message: 'B' }));
      const c = await call('createPost C', alice.client.createPost({ channel_id: pc.id, message: 'C' }));
      assert.ok(b.create_at > a.create_at && c.create_at > b.create_at, 'create_at strictly increasing per channel');

      const s = checkPostList(await call('Client4.getPostsSince', alice.client.getPostsSince(pc.id, since)), 'getPostsSince');
      assert.ok(s.posts[b.id] && s.posts[c.id], `getPostsSince holds B and C: ${JSON.stringify(Object.keys(s.posts))}`);
      assert.ok(!s.posts[a.id], 'getPostsSince must not hold A (created before since)');

      const bf = checkPostList(await call('Client4.getPostsBefore', alice.client.getPostsBefore(pc.id, c.id)), 'getPostsBefore');
      assert.deepEqual(bf.order, [b.id, a.id], 'getPostsBefore(C) = [B, A] newest first');

      const af = checkPostList(await call('Client4.getPostsAfter', alice.client.getPostsAfter(pc.id, a.id)), 'getPostsAfter');
      assert.deepEqual(af.order, [c.id, b.id], 'getPostsAfter(A) = [C, B] newest first');

      const none = checkPostList(await call('Client4.getPostsAfter(newest)', alice.client.getPostsAfter(pc.id, c.id)), 'getPostsAfter(newest)');
      assert.deepEqual(none.order, [], 'nothing after the newest post');
    });

    test('getPostThread: GET /posts/{id}/thread', async () => {
      const t = checkPostList(await call('Client4.getPostThread', bob.client.getPostThread(root.id)), 'getPostThread');
      assert.ok(t.posts[root.id], 'thread holds the root');
      assert.ok(t.posts[reply.id], 'thread holds the reply');
      for (const p of Object.values(t.posts)) {
        assert.ok(p.id === root.id || p.root_id === root.id, `thread holds only the root and its replies, got ${JSON.stringify(p)}`);
      }
      assert.equal(t.order.length, 3, `root + 2 replies, got ${JSON.stringify(t.order)}`);
      // Asking with a reply's id gives the same thread.
      const viaReply = await call('Client4.getPostThread(reply)', bob.client.getPostThread(reply.id));
      assert.ok(viaReply.posts[root.id], 'thread fetched by a reply id holds the root');
    });

    test('addReaction, getReactionsForPost, removeReaction', async () => {
      const r = await call('Client4.addReaction', bob.client.addReaction(bob.user.id, root.id, 'thumbsup'));
      assert.equal(r.user_id, bob.user.id);
      assert.equal(r.post_id, root.id);
      assert.equal(r.emoji_name, 'thumbsup');
      assert.ok(r.create_at > 0, `reaction create_at: ${JSON.stringify(r)}`);
      const twice = await call('Client4.addReaction (again)', bob.client.addReaction(bob.user.id, root.id, 'thumbsup'));
      assert.equal(twice.emoji_name, 'thumbsup', 'a duplicate add is idempotent');
      await call('Client4.addReaction (alice)', alice.client.addReaction(alice.user.id, root.id, 'smile'));
      const list = await call('Client4.getReactionsForPost', alice.client.getReactionsForPost(root.id));
      assert.ok(Array.isArray(list), `getReactionsForPost: ${JSON.stringify(list)}`);
      const got = list.map((x) => `${x.user_id}:${x.emoji_name}`).sort();
      assert.deepEqual(got, [`${alice.user.id}:smile`, `${bob.user.id}:thumbsup`].sort());
      const removed = await call('Client4.removeReaction', bob.client.removeReaction(bob.user.id, root.id, 'thumbsup'));
      assert.equal(removed.status, 'OK', `removeReaction answers {"status":"OK"}: ${JSON.stringify(removed)}`);
      const after = await call('Client4.getReactionsForPost (after remove)', alice.client.getReactionsForPost(root.id));
      assert.deepEqual(after.map((x) => `${x.user_id}:${x.emoji_name}`), [`${alice.user.id}:smile`]);
      await callFails('Client4.removeReaction of another user', bob.client.removeReaction(alice.user.id, root.id, 'smile'), 403);
    });

    test('viewMyChannel: POST /channels/members/me/view -> status OK, last_viewed_at_times', async () => {
      await call('bob posts @alice', bob.client.createPost({ channel_id: ch.id, message: `hello @${alice.username}` }));
      const before = await call('Client4.getMyChannelMember (before view)', alice.client.getMyChannelMember(ch.id));
      assert.ok(before.mention_count >= 1, `the @mention counts before viewing: ${JSON.stringify(before)}`);
      const t0 = Date.now();
      const r = await call('Client4.viewMyChannel', alice.client.viewMyChannel(ch.id));
      assert.equal(r.status, 'OK', `viewMyChannel: ${JSON.stringify(r)}`);
      assert.ok(r.last_viewed_at_times && typeof r.last_viewed_at_times[ch.id] === 'number',
        `last_viewed_at_times[${ch.id}] must be a number: ${JSON.stringify(r)}`);
      assert.ok(Math.abs(r.last_viewed_at_times[ch.id] - t0) < 60_000, 'last_viewed_at is epoch ms, now');
      const after = await call('Client4.getMyChannelMember (after view)', alice.client.getMyChannelMember(ch.id));
      const chan = await call('Client4.getChannel (after view)', alice.client.getChannel(ch.id));
      assert.equal(after.mention_count, 0, 'viewing clears mentions');
      assert.equal(after.msg_count, chan.total_msg_count, 'viewing sets msg_count = total_msg_count');
      assert.equal(after.last_viewed_at, r.last_viewed_at_times[ch.id], 'member last_viewed_at = reported time');
    });
  });

  test('updateStatus, getStatusesByIds: PUT /users/{uid}/status, POST /users/status/ids', async () => {
    const s = await call('Client4.updateStatus', carol.client.updateStatus({ user_id: carol.user.id, status: 'dnd' }));
    assert.equal(s.user_id, carol.user.id);
    assert.equal(s.status, 'dnd');
    const list = await call('Client4.getStatusesByIds', alice.client.getStatusesByIds([carol.user.id, bob.user.id]));
    assert.ok(Array.isArray(list), `getStatusesByIds: ${JSON.stringify(list)}`);
    const byId = Object.fromEntries(list.map((x) => [x.user_id, x.status]));
    assert.equal(byId[carol.user.id], 'dnd', `carol's manual status: ${JSON.stringify(list)}`);
    assert.ok(['online', 'away', 'dnd', 'offline'].includes(byId[bob.user.id]), `bob has a status: ${JSON.stringify(list)}`);
    const back = await call('Client4.updateStatus (online)', carol.client.updateStatus({ user_id: carol.user.id, status: 'online' }));
    assert.equal(back.status, 'online');
    await callFails('Client4.updateStatus for another user', carol.client.updateStatus({ user_id: bob.user.id, status: 'away' }), 403);
    await callFails('Client4.updateStatus with a bad status', carol.client.updateStatus({ user_id: carol.user.id, status: 'sleeping' }), 400);
  });

  test('logout: POST /users/logout, then the old token is 401', async () => {
    const c = newClient();
    await call('Client4.login (for logout)', c.login(carol.username, PASSWORD));
    const token = c.getToken();
    const res = await call('Client4.logout', c.logout());
    assert.ok(res.ok, `logout response status ${res.status}`);
    assert.equal(c.getToken(), '', 'logout clears the client token');
    const stale = newClient();
    stale.setToken(token);
    await callFails('Client4.getMe with a logged-out token', stale.getMe(), 401, 'api.context.session_expired.app_error');
    // carol's other session (from the suite's set-up) is untouched.
    const still = await call("Client4.getMe with carol's other session", carol.client.getMe());
    assert.equal(still.id, carol.user.id);
  });
});
