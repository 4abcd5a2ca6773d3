// Paging back through a channel (CHAT-R7 `before=`): the UI opens a channel on its newest
// 60 posts and offers "Load older messages" while the server says has_more; loading keeps
// the posts in order without duplicates.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  SEED, WAIT, apiCall, assertClean, eventually, launch, login, newPage, openChannel,
} from './helpers.mjs';

const TOTAL = 75;

describe('older messages', () => {
  let browser;
  let page;

  before(async () => {
    for (let i = 1; i <= TOTAL; i++) {
      const r = await apiCall('POST', `/channels/${SEED.channels.history}/posts`, SEED.users.bob.token, { message: `history ${i}` });
      assert.equal(r.status, 201, r.text);
    }
    browser = await launch();
    page = await newPage(browser);
    await login(page, 'alice');
    await openChannel(page, 'history');
  });

  after(async () => {
    await browser?.close();
  });

  const shown = () => page.$$eval('#message-list .post .message', (ms) => ms.map((m) => m.textContent));

  it('opens on the newest page and loads the rest on request', async () => {
    await page.locator('#message-list .post', { hasText: `history ${TOTAL}` }).waitFor({ timeout: WAIT });
    const first = await shown();
    assert.equal(first.length, 60);
    assert.equal(first[0], `history ${TOTAL - 59}`);
    const button = page.locator('#load-older');
    await button.waitFor({ state: 'visible', timeout: WAIT });
    await button.click();
    const all = await eventually(async () => {
      const now = await shown();
      return now.length === TOTAL && now;
    }, 'all posts shown');
    assert.deepEqual(all, Array.from({ length: TOTAL }, (_, i) => `history ${i + 1}`));
    await button.waitFor({ state: 'hidden', timeout: WAIT });
  });

  it('raised no dialog, CSP violation or page error', async () => {
    await assertClean(page);
  });
});
