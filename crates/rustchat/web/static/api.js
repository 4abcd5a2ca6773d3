// The native API client (/api/v1): same-origin fetch with the session cookie; every
// unsafe request carries X-CSRF-Token = the rustchat_csrf cookie (CHAT-R6, R30).

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

/** An API error: HTTP status plus the native error body's code and message. */
export class ApiError extends Error {
  constructor(status, body) {
    const message = (body && typeof body.message === 'string' && body.message) || `HTTP ${status}`;
    super(message);
    this.status = status;
    this.code = (body && body.code) || '';
    this.field = (body && body.field) || '';
  }
}

let onUnauthorized = () => {};

/** Registers what happens when the session is gone (401 on an authenticated call). */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** The value of a readable cookie, or ''. */
export function cookie(name) {
  for (const part of document.cookie.split(';')) {
    const [k, ...rest] = part.trim().split('=');
    if (k === name) return decodeURIComponent(rest.join('='));
  }
  return '';
}

/**
 * One request to `path` (absolute, starting with /api/). `body`: a plain object (JSON),
 * FormData (multipart), or undefined. Resolves to the parsed JSON (null when the body is
 * not JSON); rejects with ApiError on non-2xx. `quiet401` skips the unauthorized hook
 * (used by the startup probe and the login form).
 */
export async function request(method, path, body, { quiet401 = false } = {}) {
  const headers = { Accept: 'application/json' };
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  if (!SAFE.has(method)) {
    const token = cookie('rustchat_csrf');
    if (token) headers['X-CSRF-Token'] = token;
  }
  const resp = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  const text = await resp.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!resp.ok) {
    if (resp.status === 401 && !quiet401) onUnauthorized();
    throw new ApiError(resp.status, json);
  }
  return json;
}

/** Shorthands for /api/v1 paths. */
export const api = {
  get: (p, opts) => request('GET', `/api/v1${p}`, undefined, opts),
  post: (p, body, opts) => request('POST', `/api/v1${p}`, body, opts),
  put: (p, body) => request('PUT', `/api/v1${p}`, body),
  patch: (p, body) => request('PATCH', `/api/v1${p}`, body),
  del: (p) => request('DELETE', `/api/v1${p}`),
};

/** Query string from an object, skipping empty values. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}
