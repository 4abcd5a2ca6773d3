// The UI's in-memory state: one object shared by the modules (no framework, no copies).

export const state = {
  /** The signed-in user. */
  me: null,
  /** Teams the user belongs to, and the selected team's id. */
  teams: [],
  teamId: '',
  /** Channels of the selected team (including DMs and GMs): id → channel. */
  channels: new Map(),
  /** channel id → {unread, mentions}. */
  unreads: new Map(),
  /** The open channel's id, and its posts: id → post. */
  channelId: '',
  posts: new Map(),
  /** Newest `updated_at` seen in the open channel (the REST resync point). */
  syncedAt: 0,
  /** The thread panel's root post id ('' when closed). */
  threadRootId: '',
  /** post id → [{user_id, emoji_name}] for posts whose reactions are loaded. */
  reactions: new Map(),
  /** User cache: id → user; status cache: id → status. */
  users: new Map(),
  statuses: new Map(),
};

/** Resets everything that belongs to a session (sign-out). */
export function resetState() {
  state.me = null;
  state.teams = [];
  state.teamId = '';
  state.channels.clear();
  state.unreads.clear();
  state.channelId = '';
  state.posts.clear();
  state.syncedAt = 0;
  state.threadRootId = '';
  state.reactions.clear();
  state.users.clear();
  state.statuses.clear();
}
