// Users and presence: a cache filled in batches from GET /users?ids=, statuses from
// GET /users/status?ids= and live status_change events, and the presence dots that show
// them (every dot carries data-user-id and is refreshed in place).

import { api, qs } from './api.js';
import { h } from './dom.js';
import { state } from './state.js';

const BATCH = 200; // the API's limit for ids=

/** Loads every id not yet cached (and their statuses). */
export async function ensureUsers(ids) {
  const missing = [...new Set(ids)].filter((id) => id && !state.users.has(id));
  for (let i = 0; i < missing.length; i += BATCH) {
    const chunk = missing.slice(i, i + BATCH);
    const list = await api.get(`/users${qs({ ids: chunk.join(',') })}`);
    for (const u of list || []) state.users.set(u.id, u);
    await loadStatuses(chunk);
  }
}

/** Refreshes statuses for `ids` and repaints their dots. */
export async function loadStatuses(ids) {
  const unique = [...new Set(ids)].filter(Boolean);
  for (let i = 0; i < unique.length; i += BATCH) {
    const chunk = unique.slice(i, i + BATCH);
    const list = await api.get(`/users/status${qs({ ids: chunk.join(',') })}`);
    for (const s of list || []) setStatus(s.user_id, s.status);
  }
}

/** Records a status (from the API or a status_change event) and repaints the dots. */
export function setStatus(userId, status) {
  state.statuses.set(userId, status);
  for (const dot of document.querySelectorAll('.presence')) {
    if (dot.dataset.userId === userId) paintDot(dot, status);
  }
}

const STATUSES = ['online', 'away', 'dnd', 'offline'];

function paintDot(dot, status) {
  const s = STATUSES.includes(status) ? status : 'offline';
  for (const c of STATUSES) dot.classList.toggle(c, c === s);
  dot.title = s;
  dot.dataset.status = s;
}

/** A presence dot for `userId`. */
export function presenceDot(userId) {
  const dot = h('span', { class: 'presence', data: { userId } });
  paintDot(dot, state.statuses.get(userId));
  return dot;
}

/** What to call a user: display name, else @username, else a short id. */
export function displayName(userId) {
  const u = state.users.get(userId);
  if (!u) return userId ? `user ${userId.slice(0, 6)}` : 'unknown';
  return u.display_name || u.username;
}

/** The @username of a cached user ('' when unknown). */
export function username(userId) {
  const u = state.users.get(userId);
  return u ? u.username : '';
}
