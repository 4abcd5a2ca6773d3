// Reactions (PUT/DELETE /posts/{id}/reactions/{emoji}, live reaction_added/removed):
// each post shows one bar per place it appears (channel and thread); every bar for a post
// is repainted from state.reactions when anything changes.

import { api } from './api.js';
import { h, clear } from './dom.js';
import { state } from './state.js';
import { displayName } from './users.js';

/** Glyphs for common emoji names; other names show as :name:. */
const GLYPHS = {
  thumbsup: '👍', '+1': '👍', thumbsdown: '👎', '-1': '👎', heart: '❤️', smile: '😄',
  laughing: '😆', tada: '🎉', eyes: '👀', white_check_mark: '✅', rocket: '🚀', thinking: '🤔',
};
/** What the picker offers. */
const PICKER = ['thumbsup', 'heart', 'smile', 'tada', 'eyes', 'white_check_mark'];

function glyph(name) {
  return GLYPHS[name] || `:${name}:`;
}

/** Loads the reactions of the posts that have any. */
export async function loadReactions(posts) {
  await Promise.all(posts.filter((p) => p.has_reactions).map(async (p) => {
    const list = await api.get(`/posts/${encodeURIComponent(p.id)}/reactions`);
    state.reactions.set(p.id, (list || []).map((r) => ({ user_id: r.user_id, emoji_name: r.emoji_name })));
  }));
}

/** Applies a reaction_added / reaction_removed event and repaints. */
export function applyReactionEvent(event, reaction) {
  if (!reaction || typeof reaction.post_id !== 'string') return;
  const list = state.reactions.get(reaction.post_id) || [];
  const same = (r) => r.user_id === reaction.user_id && r.emoji_name === reaction.emoji_name;
  const next = list.filter((r) => !same(r));
  if (event === 'reaction_added') next.push({ user_id: reaction.user_id, emoji_name: reaction.emoji_name });
  state.reactions.set(reaction.post_id, next);
  repaint(reaction.post_id);
}

async function toggle(postId, emoji) {
  const mine = (state.reactions.get(postId) || [])
    .some((r) => r.user_id === state.me.id && r.emoji_name === emoji);
  const path = `/posts/${encodeURIComponent(postId)}/reactions/${encodeURIComponent(emoji)}`;
  if (mine) await api.del(path);
  else await api.put(path);
  // The event updates every bar (this connection gets it too); apply now for snappiness.
  applyReactionEvent(mine ? 'reaction_removed' : 'reaction_added',
    { post_id: postId, user_id: state.me.id, emoji_name: emoji });
}

function paint(bar) {
  const postId = bar.dataset.postId;
  clear(bar);
  const byEmoji = new Map();
  for (const r of state.reactions.get(postId) || []) {
    if (!byEmoji.has(r.emoji_name)) byEmoji.set(r.emoji_name, []);
    byEmoji.get(r.emoji_name).push(r.user_id);
  }
  for (const [emoji, users] of byEmoji) {
    const mine = users.includes(state.me.id);
    bar.append(h('button', {
      type: 'button',
      class: mine ? 'reaction mine' : 'reaction',
      title: `${emoji}: ${users.map(displayName).join(', ')}`,
      data: { emoji },
      on: { click: () => toggle(postId, emoji).catch(() => {}) },
    }, h('span', { class: 'glyph', text: glyph(emoji) }), h('span', { class: 'count', text: users.length })));
  }
  const picker = h('div', { class: 'emoji-picker', hidden: true },
    ...PICKER.map((emoji) => h('button', {
      type: 'button',
      class: 'picker-emoji',
      title: emoji,
      data: { emoji },
      on: {
        click: () => {
          picker.hidden = true;
          const mine = (state.reactions.get(postId) || [])
            .some((r) => r.user_id === state.me.id && r.emoji_name === emoji);
          if (!mine) toggle(postId, emoji).catch(() => {});
        },
      },
    }, glyph(emoji))));
  bar.append(h('button', {
    type: 'button',
    class: 'react-add',
    title: 'Add a reaction',
    on: { click: () => { picker.hidden = !picker.hidden; } },
  }, '+'), picker);
}

/** Repaints every bar of `postId`. */
export function repaint(postId) {
  for (const bar of document.querySelectorAll('.reactions')) {
    if (bar.dataset.postId === postId) paint(bar);
  }
}

/** A reaction bar for `postId`. */
export function reactionBar(postId) {
  const bar = h('div', { class: 'reactions', data: { postId } });
  paint(bar);
  return bar;
}
