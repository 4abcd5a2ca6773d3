// Spec §10 test 49 (CHAT-R11): two people in two browser contexts sign in through the
// form, pick the team and a channel, exchange live messages, see each other typing, reply
// in a thread, react, watch an unread badge rise and clear, attach and download a file,
// search, open a DM and a group message, and see presence change. Steps run in order and share the two pages.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  BASE, SEED, WAIT, apiCall, assertClean, eventually, launch, login, newPage, openChannel, postWith, tag,
} from './helpers.mjs';

describe('test 49: chatting in the web UI', () => {
  let browser;
  let alice;
  let bob;
  const run = tag();
  const hello = `hello from alice ${run}`;
  const answer = `hi alice, bob here ${run}`;

  before(async () => {
    browser = await launch();
    alice = await newPage(browser);
    bob = await newPage(browser);
  });

  after(async () => {
    await browser?.close();
  });

  it('refuses a wrong password with a readable message', async () => {
    await alice.goto(`${BASE}/`);
    await alice.locator('#login-view').waitFor({ state: 'visible', timeout: WAIT });
    await alice.fill('#login-name', 'alice');
    await alice.fill('#login-password', 'not-the-password');
    await alice.click('#login-submit');
    await alice.locator('#login-error', { hasText: 'Wrong username or password.' }).waitFor({ timeout: WAIT });
    assert.equal(await alice.locator('#app-view').isHidden(), true);
  });

  it('signs both users in through the form', async () => {
    await login(alice, 'alice');
    await login(bob, 'bob');
    assert.equal(await alice.textContent('#me-name'), 'alice');
    assert.equal(await bob.textContent('#me-name'), 'bob');
  });

  it('picks the team and the channel', async () => {
    // alice is in two teams: the picker offers both.
    const options = await alice.$$eval('#team-select option', (os) => os.map((o) => o.value));
    assert.deepEqual(new Set(options), new Set([SEED.teams.main.id, SEED.teams.other.id]));
    await openChannel(alice, 'general');
    await openChannel(bob, 'general');
    assert.equal(await alice.textContent('#channel-title'), 'General');
  });

  it('exchanges live messages both ways', async () => {
    await alice.fill('#composer-input', hello);
    await alice.press('#composer-input', 'Enter');
    await postWith(bob, hello).waitFor({ timeout: WAIT });
    await bob.fill('#composer-input', answer);
    await bob.click('#composer-send');
    await postWith(alice, answer).waitFor({ timeout: WAIT });
    // Each message shows once on each side (the sender's REST answer and its own posted
    // event must not double it).
    assert.equal(await postWith(alice, hello).count(), 1);
    assert.equal(await postWith(bob, answer).count(), 1);
    assert.equal(await postWith(alice, answer).locator('.author').textContent(), 'bob');
  });

  it('shows the typing indicator in the other context', async () => {
    // The server forwards one typing event per second per user and channel and the UI
    // announces at most every 2 s, so keep typing until bob sees it (bounded).
    await eventually(async () => {
      await alice.locator('#composer-input').pressSequentially('x');
      const text = await bob.textContent('#typing');
      return text.includes('alice is typing');
    }, 'bob sees "alice is typing"', WAIT * 2);
    assert.equal(await alice.textContent('#typing'), '', 'nobody else is typing for alice');
    await alice.fill('#composer-input', '');
  });

  it('replies in a thread', async () => {
    const reply = `thread reply from bob ${run}`;
    await postWith(bob, hello).locator('.reply-btn').click();
    await bob.locator('#thread-panel').waitFor({ state: 'visible', timeout: WAIT });
    await postWith(bob, hello, '#thread-list').waitFor({ timeout: WAIT });
    await bob.fill('#thread-input', reply);
    await bob.press('#thread-input', 'Enter');
    await postWith(bob, reply, '#thread-list').waitFor({ timeout: WAIT });
    // alice: the root now says "1 reply", and the thread shows the reply.
    const root = postWith(alice, hello).first();
    await root.locator('.reply-btn', { hasText: '1 reply' }).waitFor({ timeout: WAIT });
    await root.locator('.reply-btn').click();
    await postWith(alice, reply, '#thread-list').waitFor({ timeout: WAIT });
    // The reply really is a reply on the server.
    const rootId = await root.getAttribute('data-post-id');
    const thread = await apiCall('GET', `/posts/${rootId}/thread`, SEED.users.alice.token);
    assert.equal(thread.status, 200);
    assert.deepEqual(thread.json.replies.map((p) => p.message), [reply]);
    await alice.click('#thread-close');
  });

  it('adds a reaction that the other side sees', async () => {
    const post = postWith(alice, answer).first();
    await post.locator('.react-add').click();
    await post.locator('.picker-emoji[data-emoji="thumbsup"]').click();
    await post.locator('.reaction.mine[data-emoji="thumbsup"]').waitFor({ timeout: WAIT });
    const onBob = postWith(bob, answer).first().locator('.reaction[data-emoji="thumbsup"]');
    await onBob.waitFor({ timeout: WAIT });
    assert.equal(await onBob.locator('.count').textContent(), '1');
    // Toggling it off removes it on both sides.
    await post.locator('.reaction[data-emoji="thumbsup"]').click();
    await onBob.waitFor({ state: 'detached', timeout: WAIT });
  });

  it('raises an unread badge for another channel and clears it on opening', async () => {
    const note = `@alice look at random ${run}`;
    await openChannel(bob, 'random');
    await bob.fill('#composer-input', note);
    await bob.press('#composer-input', 'Enter');
    const item = alice.locator('.channel-item[data-name="random"]');
    await item.locator('.unread-badge', { hasText: '1' }).waitFor({ timeout: WAIT });
    await item.locator('.mention-badge', { hasText: '@1' }).waitFor({ timeout: WAIT });
    await openChannel(alice, 'random');
    await postWith(alice, note).waitFor({ timeout: WAIT });
    await item.locator('.unread-badge').waitFor({ state: 'hidden', timeout: WAIT });
    assert.equal(await item.locator('.mention-badge').isHidden(), true);
    // The server agrees that the channel is read.
    await eventually(async () => {
      const r = await apiCall('GET', `/users/me/unreads?team_id=${SEED.teams.main.id}`, SEED.users.alice.token);
      const u = r.json.find((x) => x.channel_id === SEED.channels.random);
      return u && u.unread_count === 0 && u.mention_count === 0;
    }, 'unreads of random back to 0 on the server');
  });

  it('attaches a file that the other side downloads', async () => {
    const bytes = Buffer.from(`file body ${run}\n`.repeat(100));
    const name = `notes-${run}.txt`;
    await alice.setInputFiles('#composer-file', { name, mimeType: 'text/plain', buffer: bytes });
    await alice.locator('#composer-files .pending-file.ready').waitFor({ timeout: WAIT });
    await alice.fill('#composer-input', `see attached ${run}`);
    await alice.press('#composer-input', 'Enter');
    const link = postWith(bob, `see attached ${run}`).locator('.file-link', { hasText: name });
    await link.waitFor({ timeout: WAIT });
    const [download] = await Promise.all([bob.waitForEvent('download', { timeout: WAIT }), link.click()]);
    assert.equal(download.suggestedFilename(), name);
    const chunks = [];
    for await (const c of await download.createReadStream()) chunks.push(c);
    assert.ok(Buffer.concat(chunks).equals(bytes), 'downloaded bytes equal the upload');
  });

  it('finds a message through search', async () => {
    await alice.fill('#search-input', `"bob here ${run}"`);
    await alice.press('#search-input', 'Enter');
    await alice.locator('#search-panel').waitFor({ state: 'visible', timeout: WAIT });
    const hit = alice.locator('#search-results .search-result', { hasText: answer });
    await hit.waitFor({ timeout: WAIT });
    assert.equal(await alice.locator('#search-results .search-result').count(), 1);
    await hit.locator('button', { hasText: 'Open channel' }).click();
    await alice.locator('.channel-item.active[data-name="general"]').waitFor({ timeout: WAIT });
  });

  it('opens a direct message that appears, with its badge, on the other side', async () => {
    const text = `just between us ${run}`;
    await alice.fill('#dm-input', 'bob');
    await alice.press('#dm-input', 'Enter');
    const dm = alice.locator('#dm-list .channel-item.active[data-type="direct"]');
    await dm.waitFor({ timeout: WAIT });
    assert.equal(await dm.locator('.channel-name').textContent(), 'bob');
    assert.equal(await alice.textContent('#channel-title'), 'bob');
    await alice.fill('#composer-input', text);
    await alice.press('#composer-input', 'Enter');
    await postWith(alice, text).waitFor({ timeout: WAIT });
    // bob (reading random) gets the new DM in his list with an unread badge.
    const onBob = bob.locator('#dm-list .channel-item[data-type="direct"]');
    await onBob.locator('.unread-badge', { hasText: '1' }).waitFor({ timeout: WAIT });
    assert.equal(await onBob.locator('.channel-name').textContent(), 'alice');
    await onBob.locator('.channel-link').click();
    await postWith(bob, text).waitFor({ timeout: WAIT });
    await onBob.locator('.unread-badge').waitFor({ state: 'hidden', timeout: WAIT });
  });

  it('opens a group message by usernames', async () => {
    await alice.fill('#dm-input', 'bob, carol');
    await alice.press('#dm-input', 'Enter');
    const gm = alice.locator('#dm-list .channel-item.active[data-type="group"]');
    await gm.waitFor({ timeout: WAIT });
    assert.equal(await gm.locator('.channel-name').textContent(), 'alice, bob, carol');
    await alice.fill('#dm-input', 'nobody-here');
    await alice.press('#dm-input', 'Enter');
    await alice.locator('#dm-error', { hasText: 'no user named nobody-here' }).waitFor({ timeout: WAIT });
  });

  it('shows presence dots that follow status changes', async () => {
    await openChannel(alice, 'general');
    const dot = () => postWith(alice, answer).first().locator(`.presence[data-user-id="${SEED.users.bob.id}"]`);
    const shows = async (status) => (await dot().getAttribute('class')).split(' ').includes(status);
    await eventually(() => shows('online'), 'bob shown online');
    // A status bob picks reaches alice (status_change), and his own picker shows it.
    await bob.selectOption('#status-select', 'dnd');
    await eventually(() => shows('dnd'), 'bob shown as do-not-disturb');
    assert.equal(await bob.getAttribute('#me-presence', 'data-status'), 'dnd');
    await bob.selectOption('#status-select', 'online');
    await eventually(() => shows('online'), 'bob back online');
    await assertClean(bob);
    await bob.context().close();
    // No connection for 5 s → offline (spec §4.9), announced with status_change.
    await eventually(() => shows('offline'), 'bob shown offline', WAIT * 2);
  });

  it('raised no dialog, CSP violation or page error', async () => {
    await assertClean(alice);
  });
});
