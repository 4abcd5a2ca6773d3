// "alice is typing…": typing events (CHAT-R20) show a name for a few seconds; a post
// from that user, or switching channels, clears it.

import { displayName } from './users.js';

const SHOW_MS = 5000;

export class TypingIndicator {
  constructor(el) {
    this.el = el;
    this.timers = new Map(); // user id → timeout
  }

  show(userId) {
    clearTimeout(this.timers.get(userId));
    this.timers.set(userId, setTimeout(() => this.hide(userId), SHOW_MS));
    this.paint();
  }

  hide(userId) {
    if (!this.timers.has(userId)) return;
    clearTimeout(this.timers.get(userId));
    this.timers.delete(userId);
    this.paint();
  }

  clear() {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.paint();
  }

  paint() {
    const names = [...this.timers.keys()].map(displayName);
    let text = '';
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = 'Several people are typing…';
    this.el.textContent = text;
  }
}
