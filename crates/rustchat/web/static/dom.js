// Tiny DOM helpers. Every piece of user text enters the page through text nodes
// (textContent / createTextNode); nothing here ever parses HTML (CHAT-R11, R30).

/** The element with this id (throws when the page shell lacks it: a bug, not input). */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing element #${id}`);
  return el;
}

/**
 * Builds an element. `props`: `class` (string), `text` (textContent), `attrs` (plain
 * attributes, never event handlers), `data` (dataset), `on` (event listeners), and any
 * other key is assigned as a DOM property (e.g. `type`, `href`, `hidden`, `disabled`).
 * Children: nodes, strings (as text nodes), or null/false (skipped).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'attrs') {
      for (const [name, v] of Object.entries(value)) {
        if (/^on/i.test(name) || name.toLowerCase() === 'style') {
          throw new Error(`refusing attribute ${name}`);
        }
        el.setAttribute(name, String(v));
      }
    } else if (key === 'data') Object.assign(el.dataset, value);
    else if (key === 'on') {
      for (const [event, fn] of Object.entries(value)) el.addEventListener(event, fn);
    } else el[key] = value;
  }
  append(el, children);
  return el;
}

/** Appends nodes and strings (as text) to `el`. */
export function append(el, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return el;
}

/** Removes every child of `el`. */
export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** Shows `message` in an error element (or hides it when empty). */
export function showError(el, message) {
  el.textContent = message || '';
  el.hidden = !message;
}

/** "14:05" for today, else a short date and time, in the browser's locale. */
export function formatTime(ms) {
  const d = new Date(ms);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

/**
 * Focuses `el` unless the user is already typing somewhere else: views load
 * asynchronously, and a late focus() must not steal keystrokes meant for another field.
 */
export function focusIfIdle(el) {
  const active = document.activeElement;
  const busy = active && active !== el && ['INPUT', 'TEXTAREA', 'SELECT'].includes(active.tagName);
  if (!busy) el.focus();
}
