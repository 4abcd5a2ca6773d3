//! Rows as the database holds them. The API layers turn these into native or Mattermost
//! JSON; nothing here is serialised directly, so no column can leak by accident.

use sqlx::FromRow;

/// Role of an account across the server.
pub const ROLE_SYSTEM_ADMIN: &str = "system_admin";
/// Ordinary role (accounts and team/channel memberships).
pub const ROLE_MEMBER: &str = "member";
/// Team-level admin role.
pub const ROLE_TEAM_ADMIN: &str = "team_admin";

/// `users` row.
#[derive(Debug, Clone, FromRow)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: String,
    pub password_hash: Option<String>,
    pub display_name: String,
    pub nickname: String,
    pub first_name: String,
    pub last_name: String,
    pub position: String,
    pub role: String,
    pub is_bot: bool,
    pub active: bool,
    pub locale: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: i64,
}

impl User {
    /// True for `system_admin`.
    pub fn is_system_admin(&self) -> bool {
        self.role == ROLE_SYSTEM_ADMIN
    }
}

/// `sessions` row.
#[derive(Debug, Clone, FromRow)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_activity_at: i64,
    pub kind: String,
    pub ip: String,
    pub user_agent: String,
}

/// `access_tokens` row (personal access and bot tokens; only the hash is stored).
#[derive(Debug, Clone, FromRow)]
pub struct AccessToken {
    pub id: String,
    pub user_id: String,
    pub token_hash: String,
    pub description: String,
    pub created_at: i64,
    pub last_used_at: i64,
}

/// `teams` row.
#[derive(Debug, Clone, FromRow)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub open: bool,
    pub creator_id: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: i64,
}

/// `team_members` row.
#[derive(Debug, Clone, FromRow)]
pub struct TeamMember {
    pub team_id: String,
    pub user_id: String,
    pub role: String,
    pub created_at: i64,
}

/// Channel types, Mattermost's letters.
pub mod channel_type {
    /// Public.
    pub const OPEN: &str = "O";
    /// Private.
    pub const PRIVATE: &str = "P";
    /// Direct message between two users.
    pub const DIRECT: &str = "D";
    /// Group message among 3-8 users.
    pub const GROUP: &str = "G";
}

/// `channels` row.
#[derive(Debug, Clone, FromRow)]
pub struct Channel {
    pub id: String,
    pub team_id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub name: String,
    pub display_name: String,
    pub purpose: String,
    pub header: String,
    pub creator_id: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: i64,
    pub total_msg_count: i64,
    pub total_msg_count_root: i64,
    pub last_post_at: i64,
    pub last_root_post_at: i64,
}

impl Channel {
    /// DM or group message.
    pub fn is_direct(&self) -> bool {
        self.kind == channel_type::DIRECT || self.kind == channel_type::GROUP
    }
    /// Archived (read-only).
    pub fn is_archived(&self) -> bool {
        self.deleted_at != 0
    }
}

/// `channel_members` row.
#[derive(Debug, Clone, FromRow)]
pub struct ChannelMember {
    pub channel_id: String,
    pub user_id: String,
    pub role: String,
    pub msg_count: i64,
    pub msg_count_root: i64,
    pub mention_count: i64,
    pub mention_count_root: i64,
    pub last_viewed_at: i64,
    pub created_at: i64,
}

impl ChannelMember {
    /// True when marking `ch` viewed would change nothing a client can tell: every message
    /// already counted read, no mention pending, and the last view at or after the last
    /// post. Only `last_viewed_at` would move, so v4 `viewMyChannel` skips the write (a
    /// channel switch is 60 of a user's ~230 requests an hour, and each queued on the one
    /// SQLite writer).
    pub fn is_caught_up(&self, ch: &Channel) -> bool {
        self.msg_count == ch.total_msg_count
            && self.msg_count_root == ch.total_msg_count_root
            && self.mention_count == 0
            && self.mention_count_root == 0
            && self.last_viewed_at >= ch.last_post_at
    }
}

/// `posts` row.
#[derive(Debug, Clone, FromRow)]
pub struct Post {
    pub seq: i64,
    pub id: String,
    pub channel_id: String,
    pub user_id: String,
    pub root_id: String,
    pub message: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub props: String,
    pub file_ids: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub edited_at: i64,
    pub deleted_at: i64,
    pub reply_count: i64,
    pub last_reply_at: i64,
    pub client_msg_id: Option<String>,
    pub has_reactions: bool,
}

/// `reactions` row.
#[derive(Debug, Clone, FromRow)]
pub struct Reaction {
    pub post_id: String,
    pub user_id: String,
    pub emoji_name: String,
    pub created_at: i64,
}

/// `statuses` row.
#[derive(Debug, Clone, FromRow)]
pub struct Status {
    pub user_id: String,
    pub status: String,
    pub manual: bool,
    pub updated_at: i64,
}

/// One channel's unread state for a member.
#[derive(Debug, Clone, FromRow)]
pub struct Unread {
    pub channel_id: String,
    pub team_id: String,
    pub total_msg_count: i64,
    pub msg_count: i64,
    pub mention_count: i64,
    pub last_viewed_at: i64,
}

// ----- arguments and results of the statements in ops.rs ----------------------------------

/// Fields of a new account.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: String,
    pub username: String,
    pub email: String,
    pub password_hash: Option<String>,
    pub display_name: String,
    pub is_bot: bool,
}

/// Profile fields a user may change on themselves.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub display_name: Option<String>,
    pub nickname: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub position: Option<String>,
    pub locale: Option<String>,
}

/// Fields of a new team channel.
#[derive(Debug, Clone)]
pub struct NewChannel {
    pub id: String,
    pub team_id: String,
    pub kind: &'static str,
    pub name: String,
    pub display_name: String,
    pub purpose: String,
    pub header: String,
    pub creator_id: String,
}

/// Fields of a new post.
#[derive(Debug, Clone)]
pub struct NewPost {
    pub id: String,
    pub channel_id: String,
    pub user_id: String,
    pub root_id: String,
    pub message: String,
    pub props: String,
    pub file_ids: Vec<String>,
    pub client_msg_id: Option<String>,
}

/// What [`create_post`] did.
#[derive(Debug, Clone)]
pub struct PostOutcome {
    pub post: Post,
    pub channel: Channel,
    /// False when `client_msg_id` matched an earlier post (nothing was written).
    pub created: bool,
    /// Ids of the members this post mentions (author excluded).
    pub mentions: Vec<String>,
}

/// Which page of a channel's posts to read.
#[derive(Debug, Clone)]
pub enum PostPage {
    /// The newest posts, skipping `offset`.
    Latest { offset: i64 },
    /// Posts older than this post.
    Before(String),
    /// Posts newer than this post.
    After(String),
    /// Posts created or changed at or after this instant (ms).
    Since(i64),
}

// ----- files, search, incoming webhooks (statements in ops_more.rs) -------------------------

/// `files` row: an upload's metadata; the bytes live at `<files.dir>/<path>`.
#[derive(Debug, Clone, FromRow)]
pub struct FileInfo {
    pub id: String,
    pub user_id: String,
    pub channel_id: String,
    /// `''` until a post attaches the file.
    pub post_id: String,
    /// The sanitised client file name (metadata only, never a path).
    pub name: String,
    pub size: i64,
    pub mime_type: String,
    /// Relative to `files.dir`: `<yyyy>/<mm>/<id>`.
    pub path: String,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
    pub created_at: i64,
}

/// `incoming_webhooks` row; the token is stored only as its hash and sealed copy.
#[derive(Debug, Clone, FromRow)]
pub struct IncomingHook {
    pub id: String,
    /// `sha256_hex(token)`, the lookup key.
    pub token_hash: String,
    /// `AtRest` ciphertext of the token (AAD `incoming_webhooks.token:<id>`).
    pub token_enc: String,
    pub team_id: String,
    pub channel_id: String,
    pub creator_id: String,
    pub display_name: String,
    pub description: String,
    pub disabled: bool,
    pub created_at: i64,
}

/// One page of a post search (CHAT-R17) for one user.
#[derive(Debug, Clone)]
pub struct SearchArgs {
    /// The searching user: only their channels are searched.
    pub user_id: String,
    /// `''` for every team, else that team's channels plus DMs/GMs.
    pub team_id: String,
    /// The parsed query.
    pub query: crate::search_query::SearchQuery,
    pub offset: i64,
    pub limit: i64,
}

/// `oauth_providers` row: an OIDC provider added through the admin API (CHAT-R22); the
/// client secret is sealed with the at-rest key (AAD `oauth_providers.client_secret:<name>`).
#[derive(Debug, Clone, FromRow)]
pub struct StoredProvider {
    pub name: String,
    pub issuer_url: String,
    pub client_id: String,
    pub client_secret_enc: String,
    pub display_name: String,
    /// Space-separated.
    pub scopes: String,
    /// Space-separated, lower case.
    pub allowed_email_domains: String,
    pub link_by_email: bool,
    pub created_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(total: i64, total_root: i64, last_post_at: i64) -> Channel {
        Channel {
            id: "c".into(),
            team_id: "t".into(),
            kind: channel_type::OPEN.into(),
            name: "n".into(),
            display_name: "n".into(),
            purpose: String::new(),
            header: String::new(),
            creator_id: "u".into(),
            created_at: 1,
            updated_at: 1,
            deleted_at: 0,
            total_msg_count: total,
            total_msg_count_root: total_root,
            last_post_at,
            last_root_post_at: last_post_at,
        }
    }

    fn member(read: i64, read_root: i64, mentions: i64, last_viewed_at: i64) -> ChannelMember {
        ChannelMember {
            channel_id: "c".into(),
            user_id: "u".into(),
            role: "member".into(),
            msg_count: read,
            msg_count_root: read_root,
            mention_count: mentions,
            mention_count_root: mentions,
            last_viewed_at,
            created_at: 1,
        }
    }

    #[test]
    fn a_member_is_caught_up_only_when_a_view_would_change_nothing() {
        let ch = channel(10, 7, 1_000);
        assert!(member(10, 7, 0, 1_000).is_caught_up(&ch));
        assert!(member(10, 7, 0, 5_000).is_caught_up(&ch));
        // An unread message, an unread root, a pending mention, a post after the last view.
        assert!(!member(9, 7, 0, 5_000).is_caught_up(&ch));
        assert!(!member(10, 6, 0, 5_000).is_caught_up(&ch));
        assert!(!member(10, 7, 1, 5_000).is_caught_up(&ch));
        assert!(!member(10, 7, 0, 999).is_caught_up(&ch));
    }
}
