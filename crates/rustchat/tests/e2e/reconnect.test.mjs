// The live connection heals (CHAT-R9, R11): when the WebSocket closes the UI says it is
// reconnecting, retries with backoff, and after the new hello re-reads the open channel
// over REST (`since`) and the unread counts, so posts made while it was away appear.
// Playwright's WebSocket routing closes the socket and holds the retries off the server.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  SEED, WAIT, apiCall, assertClean, launch, login, newPage, openChannel, postWith, tag,
} from './helpers.mjs';

describe('WebSocket reconnect and resync', () => {
  let browser;
  let page;
  const sockets = [];
  let hold = false;

  before(async () => {
    browser = await launch();
    page = await newPage(browser);
    await page.routeWebSocket(/\/api\/v1\/ws$/, (ws) => {
      sockets.push(ws);
      // While held, the page's socket opens but never reaches the server: no hello.
      if (!hold) ws.connectToServer();
    });
    await login(page, 'alice');
    await openChannel(page, 'resync');
    await page.locator('#conn-status').waitFor({ state: 'hidden', timeout: WAIT });
  });

  after(async () => {
    await browser?.close();
  });

  it('shows posts and unreads missed while disconnected', async () => {
    const run = tag();
    hold = true;
    const first = sockets.length;
    sockets[first - 1].close({ code: 1012, reason: 'test restart' });
    await page.locator('#conn-status', { hasText: 'Reconnecting' }).waitFor({ timeout: WAIT });
    // The UI retries on its own (backoff); the retry is held.
    const missed = `posted while alice was away ${run}`;
    const elsewhere = `meanwhile in away ${run}`;
    for (const [channel, message] of [[SEED.channels.resync, missed], [SEED.channels.away, elsewhere]]) {
      const r = await apiCall('POST', `/channels/${channel}/posts`, SEED.users.bob.token, { message });
      assert.equal(r.status, 201, r.text);
    }
    assert.equal(await postWith(page, missed).count(), 0, 'nothing can arrive while held');
    // Wait for at least one held retry, then let the next one through.
    const deadline = Date.now() + WAIT;
    while (sockets.length <= first && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.ok(sockets.length > first, 'the UI retried on its own');
    hold = false;
    sockets[sockets.length - 1].close({ code: 1006, reason: 'held' });
    await postWith(page, missed).waitFor({ timeout: WAIT * 2 });
    await page.locator('#conn-status').waitFor({ state: 'hidden', timeout: WAIT });
    const away = page.locator('.channel-item[data-name="away"] .unread-badge');
    await away.waitFor({ state: 'visible', timeout: WAIT });
    assert.ok(Number(await away.textContent()) >= 1);
    assert.equal(await postWith(page, missed).count(), 1, 'the resync does not duplicate');
  });

  it('raised no dialog, CSP violation or page error', async () => {
    await assertClean(page);
  });
});
