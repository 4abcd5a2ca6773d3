// The Markdown subset's parser (web/static/markdown.js) on its own, without a browser:
// which constructs become nodes, and that links are only ever http(s) or mailto
// (CHAT-R11). The browser tests check the DOM it builds.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { parse, parseInline, safeHref } from '../../web/static/markdown.js';

const inline = (s) => parseInline(s);
const links = (s) => JSON.stringify(parse(s)).match(/"type":"link"/g)?.length ?? 0;

describe('markdown subset', () => {
  it('bold, italic, inline code', () => {
    assert.deepEqual(inline('**b** *i* _j_ `c`'), [
      { type: 'bold', children: [{ type: 'text', text: 'b' }] },
      { type: 'text', text: ' ' },
      { type: 'italic', children: [{ type: 'text', text: 'i' }] },
      { type: 'text', text: ' ' },
      { type: 'italic', children: [{ type: 'text', text: 'j' }] },
      { type: 'text', text: ' ' },
      { type: 'code', text: 'c' },
    ]);
  });

  it('leaves snake_case, lone stars and unclosed code alone', () => {
    for (const s of ['snake_case_name', '2 * 3 * 4', 'a ** b', '`unclosed', '**']) {
      assert.deepEqual(inline(s), [{ type: 'text', text: s }], s);
    }
  });

  it('keeps markup inside code spans literal', () => {
    assert.deepEqual(inline('`**not bold** https://x.io`'), [{ type: 'code', text: '**not bold** https://x.io' }]);
    assert.deepEqual(inline('``a ` b``'), [{ type: 'code', text: 'a ` b' }]);
  });

  it('fenced code blocks, closed or not', () => {
    assert.deepEqual(parse('before\n```js\n**x** <b>\n```\nafter'), [
      { type: 'text', children: [{ type: 'text', text: 'before' }] },
      { type: 'code', text: '**x** <b>' },
      { type: 'text', children: [{ type: 'text', text: 'after' }] },
    ]);
    assert.deepEqual(parse('~~~\nopen to the end\n'), [{ type: 'code', text: 'open to the end\n' }]);
  });

  it('autolinks http, https and mailto only', () => {
    assert.deepEqual(inline('see https://example.com/a_(b).'), [
      { type: 'text', text: 'see ' },
      { type: 'link', href: 'https://example.com/a_(b)', text: 'https://example.com/a_(b)' },
      { type: 'text', text: '.' },
    ]);
    assert.equal(links('mailto:a@example.com'), 1);
    assert.equal(links('http://x.io'), 1);
    for (const s of ['javascript:alert(1)', 'JAVASCRIPT:alert(1)', '[x](javascript:alert(1))',
      'data:text/html,<script>', 'vbscript:msgbox', 'file:///etc/passwd', 'https://', 'xhttps://x.io']) {
      assert.equal(links(s), 0, s);
    }
  });

  it('does not turn Markdown links into anchors with their text', () => {
    assert.deepEqual(inline('[x](https://ok.example)'), [
      { type: 'text', text: '[x](' },
      { type: 'link', href: 'https://ok.example/', text: 'https://ok.example' },
      { type: 'text', text: ')' },
    ]);
  });

  it('safeHref accepts only http, https and mailto', () => {
    assert.equal(safeHref('https://a.example/x'), 'https://a.example/x');
    assert.equal(safeHref('mailto:x@y.z'), 'mailto:x@y.z');
    for (const bad of ['javascript:alert(1)', ' javascript:alert(1)', 'data:,x', '/relative', '']) {
      assert.equal(safeHref(bad), null, bad);
    }
  });

  // A quadratic scan of these 16k-character inputs would blow the generous bound.
  it('finishes on pathological input', { timeout: 10000 }, () => {
    for (const s of ['*a '.repeat(6000), '_'.repeat(16000), '`'.repeat(16000), '**a'.repeat(5000)]) {
      const nodes = parse(s);
      assert.ok(nodes.length >= 1);
    }
  });
});
