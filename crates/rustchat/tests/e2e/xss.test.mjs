// Spec §10 test 37, browser half (CHAT-R11, R30): an XSS corpus posted through the API
// shows as literal text in Chromium; no dialog fires, no javascript: link exists, nothing
// gains an event-handler attribute, the UI responses carry the exact CSP, index.html has
// no inline script or style, and the browser reports no CSP violation. The Markdown subset
// still works for the safe cases.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  BASE, CSP, SEED, WAIT, apiCall, assertClean, launch, login, newPage, openChannel, postWith,
} from './helpers.mjs';

const CORPUS = [
  '<script>alert(1)</script>',
  '<img src=x onerror=alert(1)>',
  '<img src=x onerror="window.__xss=1">',
  '[x](javascript:alert(1))',
  'javascript:alert(1)',
  'JaVaScRiPt:alert(document.domain)',
  '[click me](https://example.com/ok)',
  '[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)',
  '<a href="javascript:alert(1)">link</a>',
  '<svg onload=alert(1)></svg>',
  '<iframe src="javascript:alert(1)"></iframe>',
  '**<b onmouseover=alert(1)>bold</b>** `<script>alert(2)</script>`',
  '```\n<script>alert(3)</script>\n```',
  '"><script>alert(4)</script>',
  '<style>body{display:none}</style>',
  'https://example.com/"onmouseover="alert(1)',
];

// What the page shows where the Markdown subset applies (its delimiters are markup, not
// text): the bold/code example loses ** and backticks, the fenced one its fence lines.
const SHOWN = {
  11: '<b onmouseover=alert(1)>bold</b> <script>alert(2)</script>',
  12: '<script>alert(3)</script>',
};

describe('test 37: the XSS corpus renders as text', () => {
  let browser;
  let page;
  let postIds;

  before(async () => {
    postIds = [];
    for (const message of CORPUS) {
      const r = await apiCall('POST', `/channels/${SEED.channels.xss}/posts`, SEED.users.bob.token, { message });
      assert.equal(r.status, 201, r.text);
      postIds.push(r.json.id);
    }
    browser = await launch();
    page = await newPage(browser);
  });

  after(async () => {
    await browser?.close();
  });

  it('serves / and static files with the exact CSP', async () => {
    const resp = await page.goto(`${BASE}/`);
    assert.equal(resp.status(), 200);
    assert.equal(resp.headers()['content-security-policy'], CSP);
    const asset = await fetch(`${BASE}/static/app.js`);
    assert.equal(asset.headers.get('content-security-policy'), CSP);
  });

  it('has no inline script, style or event handler in index.html', async () => {
    const html = await (await fetch(`${BASE}/`, { headers: { Accept: 'text/html' } })).text();
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
    assert.ok(scripts.length >= 1, 'the page loads its module');
    for (const [, attrs, body] of scripts) {
      assert.match(attrs, /\bsrc="\/static\/[^"]+\.js"/, 'every script is an external file');
      assert.equal(body.trim(), '', 'no inline script body');
    }
    assert.doesNotMatch(html, /<style\b/i, 'no <style> element');
    assert.doesNotMatch(html, /\sstyle\s*=/i, 'no style= attribute');
    assert.doesNotMatch(html, /\son[a-z]+\s*=/i, 'no on* handler attribute');
    assert.doesNotMatch(html, /javascript:/i);
  });

  it('shows every corpus message literally', async () => {
    await login(page, 'alice');
    await openChannel(page, 'xss');
    for (const id of postIds) {
      await page.locator(`#message-list .post[data-post-id="${id}"]`).waitFor({ timeout: WAIT });
    }
    const shown = await page.$$eval('#message-list .post', (posts) => posts.map((p) => ({
      id: p.dataset.postId,
      text: p.querySelector('.message').textContent,
    })));
    for (const [i, message] of CORPUS.entries()) {
      const got = shown.find((s) => s.id === postIds[i]);
      const expected = SHOWN[i] ?? message;
      assert.equal(got.text, expected, `message ${i} shown as typed`);
    }
  });

  it('creates no javascript: link, no element from the corpus, no handler attribute', async () => {
    const report = await page.evaluate(() => {
      const all = [...document.querySelectorAll('*')];
      return {
        badHrefs: [...document.querySelectorAll('a')]
          .map((a) => a.getAttribute('href') || '')
          .filter((h) => !/^(https?:|mailto:|\/api\/v1\/files\/)/i.test(h)),
        handlerAttrs: all.flatMap((el) => [...el.attributes].map((a) => a.name))
          .filter((n) => /^on/i.test(n) || n === 'style'),
        injected: document.querySelectorAll(
          '#message-list script, #message-list img, #message-list svg, #message-list iframe, '
          + '#message-list style, #message-list b',
        ).length,
        iframes: document.querySelectorAll('iframe').length,
        flag: window.__xss,
        hidden: getComputedStyle(document.body).display,
      };
    });
    assert.deepEqual(report.badHrefs, []);
    assert.deepEqual(report.handlerAttrs, []);
    assert.equal(report.injected, 0);
    assert.equal(report.iframes, 0);
    assert.equal(report.flag, undefined);
    assert.notEqual(report.hidden, 'none');
  });

  it('links only http(s) URLs, with rel and target set', async () => {
    const links = await page.$$eval('#message-list .message a', (as) => as.map((a) => ({
      href: a.getAttribute('href'), rel: a.rel, target: a.target, text: a.textContent,
    })));
    assert.ok(links.length >= 2, 'the corpus holds http(s) URLs that become links');
    for (const l of links) {
      assert.match(l.href, /^https?:\/\//);
      assert.equal(l.rel, 'noopener noreferrer');
      assert.equal(l.target, '_blank');
    }
    // The quote that tries to break out of an attribute stays inside the URL text.
    const breakout = links.find((l) => l.text.startsWith('https://example.com/"'));
    assert.ok(breakout, 'the attribute break-out attempt is a plain link');
  });

  it('renders the Markdown subset as DOM', async () => {
    const message = '**strong words** and *leaning* with `a < b` and https://example.com/path.';
    const r = await apiCall('POST', `/channels/${SEED.channels.xss}/posts`, SEED.users.bob.token, { message });
    assert.equal(r.status, 201);
    const post = page.locator(`#message-list .post[data-post-id="${r.json.id}"]`);
    await post.waitFor({ timeout: WAIT });
    assert.equal(await post.locator('.message strong').textContent(), 'strong words');
    assert.equal(await post.locator('.message em').textContent(), 'leaning');
    assert.equal(await post.locator('.message code').textContent(), 'a < b');
    assert.equal(await post.locator('.message a').getAttribute('href'), 'https://example.com/path');
    assert.equal(await post.locator('.message').textContent(), message.replace(/\*|`/g, ''));
    const fenced = postWith(page, '<script>alert(3)</script>').filter({ has: page.locator('pre code') });
    assert.equal(await fenced.count(), 1, 'the fenced block is a code block');
  });

  it('raised no dialog, CSP violation or page error', async () => {
    await assertClean(page);
  });
});
