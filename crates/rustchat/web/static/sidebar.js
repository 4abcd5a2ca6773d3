// The sidebar: team picker, channel list, DM/GM list, unread and mention badges
// (GET /users/me/unreads, kept current by posted / channel_viewed events), and the
// form that opens a DM or group message by username.

import { api, qs } from './api.js';
import { h, clear, byId, showError } from './dom.js';
import { state } from './state.js';
import { displayName, ensureUsers, presenceDot } from './users.js';

/** Set by app.js: what selecting a team or channel does. */
export const sidebarHooks = { openChannel: () => {}, selectTeam: () => {} };

const isDirect = (c) => c.type === 'direct' || c.type === 'group';

/** For a DM, the other member's id (DM names are `<idA>__<idB>`); else ''. */
export function dmPartner(channel) {
  if (channel.type !== 'direct') return '';
  const ids = channel.name.split('__');
  return ids.find((id) => id !== state.me.id) || state.me.id;
}

/** The name shown for a channel. */
export function channelLabel(channel) {
  if (channel.type === 'direct') return displayName(dmPartner(channel));
  if (channel.type === 'group') return channel.display_name;
  return channel.display_name || channel.name;
}

/** Fills the team picker. */
export function renderTeams() {
  const select = byId('team-select');
  clear(select);
  for (const t of state.teams) {
    select.append(h('option', { value: t.id, text: t.display_name || t.name, selected: t.id === state.teamId }));
  }
  select.disabled = state.teams.length < 2;
}

/** Loads the unread counts of the selected team (its channels plus DMs/GMs). */
export async function loadUnreads() {
  const list = await api.get(`/users/me/unreads${qs({ team_id: state.teamId })}`);
  state.unreads.clear();
  for (const u of list || []) {
    state.unreads.set(u.channel_id, { unread: u.unread_count || 0, mentions: u.mention_count || 0 });
  }
  for (const id of state.channels.keys()) paintBadges(id);
}

/** Adds to a channel's counts (a post arrived while it was not being read). */
export function bumpUnread(channelId, mentioned) {
  const u = state.unreads.get(channelId) || { unread: 0, mentions: 0 };
  u.unread += 1;
  if (mentioned) u.mentions += 1;
  state.unreads.set(channelId, u);
  paintBadges(channelId);
}

/** Clears a channel's counts (it was viewed here or on another connection). */
export function clearUnread(channelId) {
  state.unreads.set(channelId, { unread: 0, mentions: 0 });
  paintBadges(channelId);
}

function itemFor(channelId) {
  for (const li of document.querySelectorAll('.channel-item')) {
    if (li.dataset.channelId === channelId) return li;
  }
  return null;
}

/** Repaints one channel's badges. */
export function paintBadges(channelId) {
  const li = itemFor(channelId);
  if (!li) return;
  const u = state.unreads.get(channelId) || { unread: 0, mentions: 0 };
  const unread = li.querySelector('.unread-badge');
  const mention = li.querySelector('.mention-badge');
  unread.textContent = String(u.unread);
  unread.hidden = u.unread === 0;
  mention.textContent = `@${u.mentions}`;
  mention.hidden = u.mentions === 0;
  li.classList.toggle('has-unread', u.unread > 0);
}

function item(channel) {
  const prefix = channel.type === 'private' ? '🔒 ' : channel.type === 'public' ? '# ' : '';
  const partner = dmPartner(channel);
  const li = h('li', {
    class: channel.id === state.channelId ? 'channel-item active' : 'channel-item',
    data: { channelId: channel.id, name: channel.name, type: channel.type },
  }, h('button', {
    type: 'button',
    class: 'channel-link',
    on: { click: () => sidebarHooks.openChannel(channel.id) },
  },
  partner ? presenceDot(partner) : null,
  h('span', { class: 'channel-name', text: prefix + channelLabel(channel) }),
  h('span', { class: 'mention-badge', hidden: true }),
  h('span', { class: 'unread-badge', hidden: true })));
  return li;
}

/** Rebuilds both channel lists from state.channels. */
export async function renderChannels() {
  const all = [...state.channels.values()].filter((c) => !c.deleted_at);
  await ensureUsers(all.filter((c) => c.type === 'direct').map(dmPartner));
  const byLabel = (a, b) => channelLabel(a).localeCompare(channelLabel(b));
  const channelList = clear(byId('channel-list'));
  const dmList = clear(byId('dm-list'));
  for (const c of all.filter((x) => !isDirect(x)).sort(byLabel)) channelList.append(item(c));
  for (const c of all.filter(isDirect).sort(byLabel)) dmList.append(item(c));
  for (const c of all) paintBadges(c.id);
}

/** Marks the open channel in the lists. */
export function markActive() {
  for (const li of document.querySelectorAll('.channel-item')) {
    li.classList.toggle('active', li.dataset.channelId === state.channelId);
  }
}

async function userIdByName(name) {
  const wanted = name.trim().replace(/^@/, '').toLowerCase();
  const list = await api.get(`/users${qs({ q: wanted, team_id: state.teamId })}`);
  const u = (list || []).find((x) => x.username === wanted);
  if (!u) throw new Error(`no user named ${wanted} in this team`);
  return u.id;
}

/** Wires the team picker and the DM form. */
export function bindSidebar() {
  byId('team-select').addEventListener('change', (ev) => sidebarHooks.selectTeam(ev.target.value));
  const form = byId('dm-form');
  const input = byId('dm-input');
  const errorEl = byId('dm-error');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const names = input.value.split(',').map((s) => s.trim()).filter(Boolean);
    if (!names.length) return;
    showError(errorEl, '');
    try {
      const ids = await Promise.all(names.map(userIdByName));
      const channel = ids.length === 1
        ? await api.post('/channels/direct', { user_id: ids[0] })
        : await api.post('/channels/group', { user_ids: ids });
      state.channels.set(channel.id, channel);
      input.value = '';
      input.blur(); // done here: let the opened conversation take the focus
      await renderChannels();
      sidebarHooks.openChannel(channel.id);
    } catch (e) {
      showError(errorEl, e.message);
    }
  });
}
