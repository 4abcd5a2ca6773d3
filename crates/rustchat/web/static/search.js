// Search (GET /search?q=&team_id=): results newest first in a side panel; each opens its
// channel or thread. The query syntax (words, "phrases", prefix*, -word, from:, in:,
// before:/after:/on:) is the server's (CHAT-R17).

import { api, qs } from './api.js';
import { h, byId, clear, formatTime } from './dom.js';
import { render as renderMarkdown } from './markdown.js';
import { state } from './state.js';
import { displayName, ensureUsers } from './users.js';

/** Set by app.js. */
export const searchHooks = { openChannel: () => {}, openThread: () => {} };

function result(post) {
  const channel = state.channels.get(post.channel_id);
  const where = channel ? (channel.display_name || channel.name) : 'another channel';
  return h('li', { class: 'post search-result', data: { postId: post.id } },
    h('div', { class: 'post-head' },
      h('span', { class: 'author', text: displayName(post.user_id) }),
      h('span', { class: 'muted', text: ` in ${where} · ${formatTime(post.created_at)}` })),
    h('div', { class: 'message' }, renderMarkdown(post.message || '')),
    h('button', {
      type: 'button',
      class: 'link-button',
      text: post.root_id ? 'Open thread' : 'Open channel',
      on: {
        click: () => (post.root_id
          ? searchHooks.openThread(post.root_id)
          : searchHooks.openChannel(post.channel_id)),
      },
    }));
}

/** Wires the search box and the panel's close button. */
export function bindSearch() {
  const panel = byId('search-panel');
  const status = byId('search-status');
  const list = byId('search-results');
  byId('search-close').addEventListener('click', () => { panel.hidden = true; });
  byId('search-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const q = byId('search-input').value.trim();
    if (!q) return;
    byId('thread-panel').hidden = true;
    panel.hidden = false;
    clear(list);
    status.textContent = 'Searching…';
    try {
      const data = await api.get(`/search${qs({ q, team_id: state.teamId, per_page: 50 })}`);
      const posts = (data && data.posts) || [];
      await ensureUsers(posts.map((p) => p.user_id));
      status.textContent = posts.length ? `${posts.length} result(s)` : 'No results';
      for (const p of posts) list.append(result(p));
    } catch (e) {
      status.textContent = `Search failed: ${e.message}`;
    }
  });
}
