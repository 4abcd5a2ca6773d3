// The thread panel: GET /posts/{id}/thread shows the root and its replies; replies are
// posted with root_id and arrive live through the same posted events as the channel.

import { api } from './api.js';
import { byId, focusIfIdle } from './dom.js';
import { renderList, upsertInto } from './messages.js';
import { loadReactions } from './reactions.js';
import { state } from './state.js';
import { ensureUsers } from './users.js';

/** The thread's channel (a thread may be opened from search results of another channel). */
export const thread = { channelId: '' };

/** Opens (or reloads) the thread of `rootId`. */
export async function openThread(rootId) {
  const data = await api.get(`/posts/${encodeURIComponent(rootId)}/thread`);
  const posts = [data.root, ...(data.replies || [])];
  state.threadRootId = data.root.id;
  thread.channelId = data.root.channel_id;
  await ensureUsers(posts.map((p) => p.user_id));
  await loadReactions(posts);
  byId('search-panel').hidden = true;
  byId('thread-panel').hidden = false;
  renderList(byId('thread-list'), posts, { inThread: true });
  focusIfIdle(byId('thread-input'));
}

/** Closes the panel. */
export function closeThread() {
  state.threadRootId = '';
  thread.channelId = '';
  byId('thread-panel').hidden = true;
}

/** A post arrived or changed: show it when it belongs to the open thread. */
export function threadPost(post) {
  if (!state.threadRootId) return;
  if (post.id === state.threadRootId || post.root_id === state.threadRootId) {
    upsertInto(byId('thread-list'), post, { inThread: true });
  }
}
