//! Native (`/api/v1`) JSON shapes of the stored rows. Emails are shown only to the user
//! themself and to system admins (CHAT-R30).

use serde_json::{Value, json};

use crate::store::{Channel, ChannelMember, Post, Reaction, Team, User};

/// A user as `viewer` may see it.
pub fn user(u: &User, viewer: &User) -> Value {
    let mut v = json!({
        "id": u.id, "username": u.username, "display_name": u.display_name,
        "nickname": u.nickname, "first_name": u.first_name, "last_name": u.last_name,
        "position": u.position, "role": u.role, "is_bot": u.is_bot, "active": u.active,
        "locale": u.locale, "created_at": u.created_at, "updated_at": u.updated_at,
    });
    if u.id == viewer.id || viewer.is_system_admin() {
        v["email"] = json!(u.email);
    }
    v
}

/// A team.
pub fn team(t: &Team) -> Value {
    json!({
        "id": t.id, "name": t.name, "display_name": t.display_name, "open": t.open,
        "creator_id": t.creator_id, "created_at": t.created_at, "updated_at": t.updated_at,
        "deleted_at": t.deleted_at,
    })
}

/// Native channel type word for a Mattermost type letter.
pub fn channel_kind(kind: &str) -> &'static str {
    match kind {
        "O" => "public",
        "P" => "private",
        "D" => "direct",
        _ => "group",
    }
}

/// A channel.
pub fn channel(c: &Channel) -> Value {
    json!({
        "id": c.id, "team_id": c.team_id, "type": channel_kind(&c.kind), "name": c.name,
        "display_name": c.display_name, "purpose": c.purpose, "header": c.header,
        "creator_id": c.creator_id, "created_at": c.created_at, "updated_at": c.updated_at,
        "deleted_at": c.deleted_at, "total_msg_count": c.total_msg_count,
        "last_post_at": c.last_post_at,
    })
}

/// A channel member row.
pub fn member(m: &ChannelMember) -> Value {
    json!({
        "channel_id": m.channel_id, "user_id": m.user_id, "role": m.role,
        "msg_count": m.msg_count, "mention_count": m.mention_count,
        "last_viewed_at": m.last_viewed_at, "created_at": m.created_at,
    })
}

/// A post.
pub fn post(p: &Post) -> Value {
    json!({
        "id": p.id, "channel_id": p.channel_id, "user_id": p.user_id, "root_id": p.root_id,
        "message": p.message,
        "props": serde_json::from_str::<Value>(&p.props).unwrap_or_else(|_| json!({})),
        "file_ids": serde_json::from_str::<Value>(&p.file_ids).unwrap_or_else(|_| json!([])),
        "created_at": p.created_at, "updated_at": p.updated_at, "edited_at": p.edited_at,
        "deleted_at": p.deleted_at, "reply_count": p.reply_count,
        "last_reply_at": p.last_reply_at, "client_msg_id": p.client_msg_id,
        "has_reactions": p.has_reactions,
    })
}

/// A reaction.
pub fn reaction(r: &Reaction) -> Value {
    json!({
        "post_id": r.post_id, "user_id": r.user_id, "emoji_name": r.emoji_name,
        "created_at": r.created_at,
    })
}
