// Entry point: routes the page (/, /login, /login/complete), starts the app after
// sign-in, and turns WebSocket events into UI updates.

import { api, qs, setUnauthorizedHandler } from './api.js';
import { byId, focusIfIdle, showError } from './dom.js';
import { bindComposer } from './composer.js';
import { bindLogin, completeOidc, loginErrorFromUrl, showLogin } from './login.js';
import { postHooks, removeFrom, renderList, upsertInto } from './messages.js';
import { applyReactionEvent, loadReactions } from './reactions.js';
import { bindSearch, searchHooks } from './search.js';
import {
  bindSidebar, bumpUnread, channelLabel, clearUnread, loadUnreads, markActive,
  renderChannels, renderTeams, sidebarHooks,
} from './sidebar.js';
import { resetState, state } from './state.js';
import { closeThread, openThread, thread, threadPost } from './thread.js';
import { TypingIndicator } from './typing.js';
import { ensureUsers, loadStatuses, setStatus } from './users.js';
import { LiveSocket } from './ws.js';

const PAGE = 60;
const VIEW_DELAY_MS = 500;
const channelTyping = new TypingIndicator(byId('typing'));
const threadTyping = new TypingIndicator(byId('thread-typing'));
let composer;
let viewTimer = null;
let channelsTimer = null;
let openSeq = 0; // guards against a slow channel load finishing after a newer one

const socket = new LiveSocket({
  onEvent: (frame) => handleEvent(frame).catch(() => {}),
  onResync: () => resync().catch(() => {}),
  onState: (s) => {
    const el = byId('conn-status');
    el.hidden = s === 'open';
    el.textContent = s === 'open' ? '' : (socket.everOpened ? 'Reconnecting…' : 'Connecting…');
    el.dataset.state = s;
  },
  onAuthLost: () => { api.get('/auth/me').catch(() => {}); },
});

function remember(key, value) {
  try { window.localStorage.setItem(`rustchat.${key}`, value); } catch { /* storage off */ }
}
function recall(key) {
  try { return window.localStorage.getItem(`rustchat.${key}`) || ''; } catch { return ''; }
}

/** Shows the app for `user`. */
async function startApp(user) {
  state.me = user;
  byId('boot').hidden = true;
  byId('login-view').hidden = true;
  byId('app-view').hidden = false;
  byId('me-name').textContent = user.display_name || user.username;
  const dot = byId('me-presence');
  dot.dataset.userId = user.id;
  state.users.set(user.id, user);
  state.teams = (await api.get('/teams')) || [];
  const saved = recall('team');
  const team = state.teams.find((t) => t.id === saved) || state.teams[0];
  socket.start();
  if (team) await selectTeam(team.id);
  else byId('channel-title').textContent = 'You are not in a team yet';
  await loadStatuses([user.id]);
  byId('status-select').value = state.statuses.get(user.id) || 'online';
}

/** Switches to team `teamId`. */
async function selectTeam(teamId) {
  state.teamId = teamId;
  remember('team', teamId);
  renderTeams();
  await loadChannels();
  closeThread();
  const saved = recall(`channel.${teamId}`);
  if (saved && state.channels.has(saved)) await openChannel(saved);
  else {
    state.channelId = '';
    state.posts.clear();
    renderList(byId('message-list'), []);
    byId('load-older').hidden = true;
    byId('channel-title').textContent = 'Pick a channel';
    markActive();
  }
}

async function loadChannels() {
  const list = (await api.get(`/teams/${encodeURIComponent(state.teamId)}/channels`)) || [];
  state.channels.clear();
  for (const c of list) state.channels.set(c.id, c);
  await renderChannels();
  await loadUnreads();
}

/** Re-reads the channel list soon (membership events come in bursts). */
function reloadChannelsSoon() {
  clearTimeout(channelsTimer);
  channelsTimer = setTimeout(() => loadChannels().catch(() => {}), 300);
}

function trackSync(post) {
  state.syncedAt = Math.max(state.syncedAt, post.updated_at || post.created_at || 0);
}

/** Opens channel `channelId`: its latest posts, marked read. */
async function openChannel(channelId) {
  const seq = ++openSeq;
  const channel = state.channels.get(channelId);
  if (!channel) return;
  state.channelId = channelId;
  remember(`channel.${state.teamId}`, channelId);
  markActive();
  channelTyping.clear();
  composer.reset();
  const title = byId('channel-title');
  title.textContent = channelLabel(channel);
  const data = await api.get(`/channels/${encodeURIComponent(channelId)}/posts${qs({ limit: PAGE })}`);
  const posts = (data && data.posts) || [];
  await ensureUsers(posts.map((p) => p.user_id));
  await loadReactions(posts);
  if (seq !== openSeq) return;
  state.posts.clear();
  state.syncedAt = 0;
  for (const p of posts) {
    state.posts.set(p.id, p);
    trackSync(p);
  }
  renderList(byId('message-list'), posts);
  byId('load-older').hidden = !(data && data.has_more);
  focusIfIdle(byId('composer-input'));
  await markViewed(channelId);
}

/** Prepends the page of posts before the oldest one shown, keeping the scroll position. */
async function loadOlder() {
  const channelId = state.channelId;
  const shown = [...state.posts.values()].filter((p) => p.channel_id === channelId);
  if (!shown.length) return;
  const oldest = shown.reduce((a, b) => (a.created_at <= b.created_at ? a : b));
  const data = await api.get(`/channels/${encodeURIComponent(channelId)}/posts${qs({ before: oldest.id, limit: PAGE })}`);
  const posts = (data && data.posts) || [];
  await ensureUsers(posts.map((p) => p.user_id));
  await loadReactions(posts);
  if (channelId !== state.channelId) return;
  const list = byId('message-list');
  const fromBottom = list.scrollHeight - list.scrollTop;
  for (const p of posts) {
    if (!state.posts.has(p.id)) {
      state.posts.set(p.id, p);
      upsertInto(list, p);
    }
  }
  list.scrollTop = list.scrollHeight - fromBottom;
  byId('load-older').hidden = !(data && data.has_more);
}

async function markViewed(channelId) {
  clearUnread(channelId);
  await api.post(`/channels/${encodeURIComponent(channelId)}/view`);
}

function viewSoon() {
  clearTimeout(viewTimer);
  const id = state.channelId;
  viewTimer = setTimeout(() => { if (id === state.channelId) markViewed(id).catch(() => {}); }, VIEW_DELAY_MS);
}

/** Shows a new or changed post of the open channel (a new reply bumps its root's count). */
function showPost(post) {
  const isNew = !state.posts.has(post.id);
  state.posts.set(post.id, post);
  trackSync(post);
  upsertInto(byId('message-list'), post);
  const root = post.root_id ? state.posts.get(post.root_id) : null;
  if (isNew && root) {
    root.reply_count = (root.reply_count || 0) + 1;
    upsertInto(byId('message-list'), root);
  }
}

async function onPosted(post, data) {
  await ensureUsers([post.user_id]);
  threadPost(post);
  if (post.channel_id === state.channelId) {
    const known = state.posts.has(post.id);
    showPost(post);
    if (!post.root_id) channelTyping.hide(post.user_id);
    else threadTyping.hide(post.user_id);
    if (!known && post.user_id !== state.me.id) viewSoon();
    return;
  }
  if (post.user_id === state.me.id) return;
  if (!state.channels.has(post.channel_id)) {
    // A new DM/GM or a channel we were just added to: it belongs to this team's list when
    // it has no team or this team.
    if (data.team_id && data.team_id !== state.teamId) return;
    await loadChannels();
    return; // the reload read the server's counts, which include this post
  }
  const mentioned = Array.isArray(data.mentions) && data.mentions.includes(state.me.id);
  bumpUnread(post.channel_id, mentioned);
}

async function handleEvent(frame) {
  const data = frame.data || {};
  const channelId = (frame.broadcast && frame.broadcast.channel_id) || '';
  switch (frame.event) {
    case 'posted':
      if (data.post) await onPosted(data.post, data);
      break;
    case 'post_edited':
      if (data.post) {
        threadPost(data.post);
        if (data.post.channel_id === state.channelId) showPost(data.post);
      }
      break;
    case 'post_deleted':
      if (data.post) {
        state.posts.delete(data.post.id);
        removeFrom(byId('message-list'), data.post.id);
        removeFrom(byId('thread-list'), data.post.id);
        if (data.post.id === state.threadRootId) closeThread();
      }
      break;
    case 'reaction_added':
    case 'reaction_removed':
      await ensureUsers([data.reaction && data.reaction.user_id]);
      applyReactionEvent(frame.event, data.reaction);
      break;
    case 'typing':
      if (channelId !== state.channelId || data.user_id === state.me.id) break;
      await ensureUsers([data.user_id]);
      if (data.parent_id && data.parent_id === state.threadRootId) threadTyping.show(data.user_id);
      else if (!data.parent_id) channelTyping.show(data.user_id);
      break;
    case 'status_change':
      if (typeof data.user_id === 'string') setStatus(data.user_id, data.status);
      if (data.user_id === state.me.id) byId('status-select').value = data.status;
      break;
    case 'channel_viewed':
      if (typeof data.channel_id === 'string') clearUnread(data.channel_id);
      break;
    case 'channel_created':
    case 'channel_updated':
    case 'channel_deleted':
    case 'user_added':
    case 'user_removed':
    case 'direct_added':
    case 'group_added':
      reloadChannelsSoon();
      break;
    default:
      break;
  }
}

/** After a reconnect: re-read what changed while the socket was down. */
async function resync() {
  if (!state.teamId) return;
  await loadChannels();
  const channelId = state.channelId;
  if (channelId && state.channels.has(channelId)) {
    const data = await api.get(`/channels/${encodeURIComponent(channelId)}/posts${qs({ since: state.syncedAt, limit: 200 })}`);
    const posts = (data && data.posts) || [];
    await ensureUsers(posts.map((p) => p.user_id));
    await loadReactions(posts);
    if (channelId === state.channelId) {
      for (const p of posts) showPost(p);
      await markViewed(channelId);
    }
  }
  if (state.threadRootId) await openThread(state.threadRootId);
  await loadStatuses([...state.users.keys()]);
}

function signedOut(message) {
  socket.stop();
  resetState();
  closeThread();
  showLogin(message);
}

function bindApp() {
  bindLogin((user) => startApp(user).catch((e) => showLogin(e.message)));
  bindSidebar();
  bindSearch();
  sidebarHooks.openChannel = (id) => {
    openChannel(id).catch((e) => showError(byId('composer-error'), e.message));
  };
  sidebarHooks.selectTeam = (id) => { selectTeam(id).catch(() => {}); };
  const open = (id) => {
    openThread(id).catch((e) => showError(byId('composer-error'), e.message));
  };
  postHooks.openThread = open;
  searchHooks.openThread = open;
  searchHooks.openChannel = sidebarHooks.openChannel;
  byId('thread-close').addEventListener('click', closeThread);
  byId('load-older').addEventListener('click', () => {
    loadOlder().catch((e) => showError(byId('composer-error'), e.message));
  });
  byId('status-select').addEventListener('change', (ev) => {
    const status = ev.target.value;
    api.put('/users/me/status', { status })
      .then(() => setStatus(state.me.id, status))
      .catch((e) => showError(byId('composer-error'), e.message));
  });
  byId('logout').addEventListener('click', async () => {
    try { await api.post('/auth/logout'); } catch { /* signed out either way */ }
    signedOut('');
  });
  setUnauthorizedHandler(() => signedOut('Your session ended. Please sign in again.'));
  composer = bindComposer({
    form: byId('composer'),
    input: byId('composer-input'),
    fileInput: byId('composer-file'),
    pendingList: byId('composer-files'),
    errorEl: byId('composer-error'),
    sendButton: byId('composer-send'),
    channelId: () => state.channelId,
    rootId: () => '',
    onTyping: () => socket.send('user_typing', { channel_id: state.channelId, parent_id: '' }),
    onPosted: (post) => { if (post.channel_id === state.channelId) showPost(post); },
  });
  bindComposer({
    form: byId('thread-composer'),
    input: byId('thread-input'),
    fileInput: byId('thread-file'),
    pendingList: byId('thread-files'),
    errorEl: byId('thread-error'),
    sendButton: byId('thread-send'),
    channelId: () => thread.channelId,
    rootId: () => state.threadRootId,
    onTyping: () => socket.send('user_typing', { channel_id: thread.channelId, parent_id: state.threadRootId }),
    onPosted: (post) => {
      threadPost(post);
      if (post.channel_id === state.channelId) showPost(post);
    },
  });
}

async function boot() {
  bindApp();
  if (window.location.pathname === '/login/complete') {
    await completeOidc((user) => startApp(user).catch((e) => showLogin(e.message)));
    return;
  }
  let me = null;
  try {
    me = await api.get('/auth/me', { quiet401: true });
  } catch {
    me = null;
  }
  if (me) {
    if (window.location.pathname !== '/') window.history.replaceState(null, '', '/');
    await startApp(me);
  } else showLogin(loginErrorFromUrl());
}

boot().catch((e) => showLogin(`Something went wrong: ${e.message}`));
