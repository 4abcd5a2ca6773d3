// Message lists: the open channel (#message-list) and the thread panel (#thread-list)
// share one post renderer. Posts are kept in created_at order; an update replaces the
// element with the same post id in place.

import { h, clear, formatTime } from './dom.js';
import { render as renderMarkdown } from './markdown.js';
import { fileList } from './files.js';
import { reactionBar } from './reactions.js';
import { state } from './state.js';
import { displayName, presenceDot } from './users.js';

/** Set by app.js: what the Reply button does. */
export const postHooks = { openThread: () => {} };

function replyLabel(post) {
  const n = post.reply_count || 0;
  if (n === 0) return 'Reply';
  return n === 1 ? '1 reply' : `${n} replies`;
}

/** The element for one post. `inThread`: shown in the thread panel. */
export function postElement(post, { inThread = false } = {}) {
  const isReply = Boolean(post.root_id);
  const li = h('li', {
    class: isReply ? 'post is-reply' : 'post',
    data: { postId: post.id, userId: post.user_id, createdAt: String(post.created_at) },
  });
  const head = h('div', { class: 'post-head' },
    presenceDot(post.user_id),
    h('span', { class: 'author', text: displayName(post.user_id) }),
    h('time', { class: 'time', text: formatTime(post.created_at), dateTime: new Date(post.created_at).toISOString() }),
    post.edited_at ? h('span', { class: 'muted', text: ' (edited)' }) : null);
  li.append(head);
  if (isReply && !inThread) {
    li.append(h('button', {
      type: 'button',
      class: 'link-button reply-note',
      text: 'replied in a thread',
      on: { click: () => postHooks.openThread(post.root_id) },
    }));
  }
  const body = h('div', { class: 'message' });
  body.append(renderMarkdown(post.message || ''));
  li.append(body);
  if (Array.isArray(post.file_ids) && post.file_ids.length) li.append(fileList(post.file_ids));
  const actions = h('div', { class: 'post-actions' }, reactionBar(post.id));
  if (!isReply && !inThread) {
    actions.append(h('button', {
      type: 'button',
      class: 'link-button reply-btn',
      text: replyLabel(post),
      on: { click: () => postHooks.openThread(post.id) },
    }));
  }
  li.append(actions);
  return li;
}

/** Inserts or replaces `post` in `list`, keeping created_at order. */
export function upsertInto(list, post, opts) {
  const el = postElement(post, opts);
  for (const child of list.children) {
    if (child.dataset.postId === post.id) {
      child.replaceWith(el);
      return el;
    }
  }
  let before = null;
  for (let i = list.children.length - 1; i >= 0; i--) {
    const child = list.children[i];
    if (Number(child.dataset.createdAt) > post.created_at) before = child;
    else break;
  }
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  list.insertBefore(el, before);
  if (!before && nearBottom) list.scrollTop = list.scrollHeight;
  return el;
}

/** Removes a post from `list`. */
export function removeFrom(list, postId) {
  for (const child of [...list.children]) if (child.dataset.postId === postId) child.remove();
}

/** Replaces the content of `list` with `posts` (oldest first) and scrolls to the end. */
export function renderList(list, posts, opts) {
  clear(list);
  for (const p of posts) list.append(postElement(p, opts));
  list.scrollTop = list.scrollHeight;
}

/** Re-renders a root post in the channel list (e.g. its reply count changed). */
export function refreshPost(list, postId) {
  const post = state.posts.get(postId);
  if (post) upsertInto(list, post);
}
