// The live connection: the native WebSocket /api/v1/ws, authenticated by the session
// cookie (same origin, so the browser sends the cookie and a matching Origin; CHAT-R9).
// On every close it reconnects with exponential backoff (1 s doubling to 30 s, with
// jitter so a restarted server is not hit by every client at once) and, once the new
// connection says hello, calls onResync so the UI re-reads what it may have missed
// (the server offers no resumption: clients resync over REST with `since`).

const MIN_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;

export class LiveSocket {
  /**
   * @param {object} hooks onEvent(frame), onResync(), onState('connecting'|'open'|'closed'),
   *   onAuthLost() after a close that may mean the session ended (code 1008).
   */
  constructor(hooks) {
    this.hooks = hooks;
    this.ws = null;
    this.seq = 0;
    this.attempt = 0;
    this.timer = null;
    this.stopped = true;
    this.everOpened = false;
  }

  /** Starts (or restarts) the connection loop. */
  start() {
    this.stopped = false;
    this.connect();
  }

  /** Closes for good (sign-out). */
  stop() {
    this.stopped = true;
    this.everOpened = false;
    this.attempt = 0;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, 'bye');
    this.ws = null;
  }

  connect() {
    if (this.stopped) return;
    const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${window.location.host}/api/v1/ws`);
    this.ws = ws;
    this.seq = 0;
    this.greeted = false;
    this.hooks.onState('connecting');
    ws.addEventListener('message', (ev) => this.onMessage(ev));
    ws.addEventListener('close', (ev) => this.onClose(ws, ev));
  }

  onMessage(ev) {
    if (typeof ev.data !== 'string') return;
    let frame;
    try {
      frame = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (!frame || typeof frame !== 'object') return;
    if (frame.event === 'hello') {
      this.greeted = true;
      const resync = this.everOpened;
      this.everOpened = true;
      this.attempt = 0;
      this.hooks.onState('open');
      if (resync) this.hooks.onResync();
      return;
    }
    if (typeof frame.event === 'string') this.hooks.onEvent(frame);
  }

  onClose(ws, ev) {
    if (ws !== this.ws) return;
    this.ws = null;
    if (this.stopped) return;
    this.hooks.onState('closed');
    // 1008 (session expired or revoked) or a refused upgrade (closed before hello: the
    // server answers 401 before upgrading once the session is gone): the hook checks
    // and signs out, which stops this loop, when the session really is gone.
    if (ev.code === 1008 || !this.greeted) this.hooks.onAuthLost();
    const base = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 10);
    const delay = base * (0.8 + Math.random() * 0.4);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Sends a client action (dropped while disconnected: typing is best effort). */
  send(action, data) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.seq += 1;
    this.ws.send(JSON.stringify({ action, seq: this.seq, data }));
    return true;
  }
}
