// A small Markdown subset (CHAT-R11): **bold** / __bold__, *italic* / _italic_,
// `inline code`, fenced code blocks (``` or ~~~), and autolinks for http(s):// and
// mailto: URLs. Everything else, including [text](url) links and any HTML, stays
// literal text. `parse` is pure (tested under Node); `render` builds DOM nodes from its
// tree with text nodes only, so no message can inject markup or script.

/** Protocols a link may use; anything else is shown as text. */
const LINK_PROTOCOLS = new Set(['http:', 'https:', 'mailto:']);

/** The URL if it may become a link (http, https, mailto), else null. */
export function safeHref(raw) {
  let url;
  try {
    url = new URL(raw);
  } catch {
    return null;
  }
  return LINK_PROTOCOLS.has(url.protocol) ? url.href : null;
}

const FENCE = /^\s{0,3}(`{3,}|~{3,})/;

/**
 * Splits a message into blocks: `{type:'code', text}` for fenced blocks and
 * `{type:'text', children}` for the rest (inline nodes, newlines kept in text).
 * An unclosed fence runs to the end of the message.
 */
export function parse(message) {
  const blocks = [];
  const lines = String(message).split('\n');
  let prose = [];
  const flush = () => {
    if (prose.length) blocks.push({ type: 'text', children: parseInline(prose.join('\n')) });
    prose = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]);
    if (!open) {
      prose.push(lines[i]);
      continue;
    }
    flush();
    const marker = open[1];
    const body = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const close = FENCE.exec(lines[j]);
      if (close && close[1][0] === marker[0] && close[1].length >= marker.length
          && lines[j].trim() === close[1]) break;
      body.push(lines[j]);
    }
    blocks.push({ type: 'code', text: body.join('\n') });
    i = j; // the closing fence (or past the end)
  }
  flush();
  return blocks;
}

const URL_START = /^(?:https?:\/\/|mailto:)/i;
const WORD = /[\p{L}\p{N}_]/u;
const SPACE = /\s/;

/** Where a URL starting at `s[i]` ends (trailing punctuation and unbalanced ')' dropped). */
function urlEnd(s, i) {
  let j = i;
  while (j < s.length && !SPACE.test(s[j]) && s[j] !== '<' && s[j] !== '>' && s[j] !== '`') j++;
  for (;;) {
    const last = s[j - 1];
    if ('.,;:!?\'"*_'.includes(last)) {
      j--;
    } else if (last === ')') {
      const part = s.slice(i, j);
      const opens = part.split('(').length - 1;
      const closes = part.split(')').length - 1;
      if (closes > opens) j--;
      else break;
    } else break;
  }
  return j;
}

/**
 * Inline nodes of `s`: `{type:'text', text}`, `{type:'code', text}`,
 * `{type:'link', href, text}`, `{type:'bold'|'italic', children}`.
 */
export function parseInline(s, depth = 0) {
  const out = [];
  let text = '';
  const pushText = () => {
    if (text) out.push({ type: 'text', text });
    text = '';
  };
  // A closer search from i that failed also fails from any later i (closers do not depend
  // on the opener), which keeps pathological input linear.
  const failedFrom = new Map();
  const findCloser = (delim, from) => {
    if (failedFrom.has(delim) && from >= failedFrom.get(delim)) return -1;
    for (let j = s.indexOf(delim, from); j !== -1; j = s.indexOf(delim, j + 1)) {
      const before = s[j - 1];
      const after = s[j + delim.length];
      if (SPACE.test(before)) continue;
      if (delim[0] === '_' && after !== undefined && WORD.test(after)) continue;
      if (delim.length === 1 && (after === delim || before === delim)) continue;
      return j;
    }
    failedFrom.set(delim, from);
    return -1;
  };
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === '`') {
      let n = 1;
      while (s[i + n] === '`') n++;
      const run = '`'.repeat(n);
      let j = s.indexOf(run, i + n);
      while (j !== -1 && s[j + n] === '`') {
        let k = j;
        while (s[k] === '`') k++;
        j = s.indexOf(run, k);
      }
      if (j !== -1) {
        pushText();
        out.push({ type: 'code', text: s.slice(i + n, j) });
        i = j + n;
      } else {
        text += run;
        i += n;
      }
      continue;
    }
    const atWordStart = i === 0 || !WORD.test(s[i - 1]);
    if ((c === 'h' || c === 'H' || c === 'm' || c === 'M') && atWordStart && URL_START.test(s.slice(i, i + 8))) {
      const end = urlEnd(s, i);
      const raw = s.slice(i, end);
      const href = safeHref(raw);
      if (href && !/^(?:https?:\/\/|mailto:)$/i.test(raw)) {
        pushText();
        out.push({ type: 'link', href, text: raw });
        i = end;
        continue;
      }
    }
    if ((c === '*' || c === '_') && depth < 8) {
      const double = s[i + 1] === c;
      const delim = double ? c + c : c;
      const inner = i + delim.length;
      const opensWord = !(c === '_' && !atWordStart);
      if (opensWord && inner < s.length && !SPACE.test(s[inner]) && s[inner] !== c) {
        const j = findCloser(delim, inner + 1);
        if (j !== -1) {
          pushText();
          out.push({
            type: double ? 'bold' : 'italic',
            children: parseInline(s.slice(inner, j), depth + 1),
          });
          i = j + delim.length;
          continue;
        }
      }
      text += delim;
      i += delim.length;
      continue;
    }
    text += c;
    i++;
  }
  pushText();
  return out;
}

function renderInline(nodes, parent) {
  for (const n of nodes) {
    if (n.type === 'text') parent.append(document.createTextNode(n.text));
    else if (n.type === 'code') {
      const code = document.createElement('code');
      code.textContent = n.text;
      parent.append(code);
    } else if (n.type === 'link') {
      const href = safeHref(n.href);
      if (!href) {
        parent.append(document.createTextNode(n.text));
        continue;
      }
      const a = document.createElement('a');
      a.href = href;
      a.rel = 'noopener noreferrer';
      a.target = '_blank';
      a.textContent = n.text;
      parent.append(a);
    } else {
      const el = document.createElement(n.type === 'bold' ? 'strong' : 'em');
      renderInline(n.children, el);
      parent.append(el);
    }
  }
}

/** A DocumentFragment for `message`. */
export function render(message) {
  const frag = document.createDocumentFragment();
  for (const block of parse(message)) {
    if (block.type === 'code') {
      const pre = document.createElement('pre');
      const code = document.createElement('code');
      code.textContent = block.text;
      pre.append(code);
      frag.append(pre);
    } else {
      const span = document.createElement('span');
      span.className = 'md-text';
      renderInline(block.children, span);
      frag.append(span);
    }
  }
  return frag;
}
