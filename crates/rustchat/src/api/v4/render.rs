//! Mattermost-shaped JSON objects (CHAT-R10): field names as the official client expects.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::store::{Channel, ChannelMember, Post, Reaction, Team, User};

/// `roles` of a user: `system_user[ system_admin]`.
pub fn user_roles(u: &User) -> &'static str {
    if u.is_system_admin() {
        "system_user system_admin"
    } else {
        "system_user"
    }
}

/// A user; the email only for the user themself and system admins.
pub fn user(u: &User, viewer: &User) -> Value {
    let email = if u.id == viewer.id || viewer.is_system_admin() {
        u.email.as_str()
    } else {
        ""
    };
    json!({
        "id": u.id, "create_at": u.created_at, "update_at": u.updated_at, "delete_at": u.deleted_at,
        "username": u.username, "email": email, "nickname": u.nickname,
        "first_name": u.first_name, "last_name": u.last_name, "position": u.position,
        "roles": user_roles(u), "locale": u.locale,
        "timezone": {"useAutomaticTimezone": "true", "automaticTimezone": "", "manualTimezone": ""},
        "props": {}, "notify_props": {"desktop": "mention", "email": "true", "push": "mention", "channel": "true", "mention_keys": ""},
        "is_bot": u.is_bot, "auth_service": "", "email_verified": true,
    })
}

/// A team (`type` O open, I invite-only).
pub fn team(t: &Team) -> Value {
    json!({
        "id": t.id, "create_at": t.created_at, "update_at": t.updated_at, "delete_at": t.deleted_at,
        "display_name": t.display_name, "name": t.name, "description": "", "email": "",
        "type": if t.open { "O" } else { "I" }, "company_name": "", "allowed_domains": "",
        "invite_id": "", "allow_open_invite": t.open,
    })
}

/// A channel.
pub fn channel(c: &Channel) -> Value {
    json!({
        "id": c.id, "create_at": c.created_at, "update_at": c.updated_at, "delete_at": c.deleted_at,
        "team_id": c.team_id, "type": c.kind, "display_name": c.display_name, "name": c.name,
        "header": c.header, "purpose": c.purpose, "last_post_at": c.last_post_at,
        "last_root_post_at": c.last_root_post_at, "total_msg_count": c.total_msg_count,
        "total_msg_count_root": c.total_msg_count_root, "creator_id": c.creator_id,
        "extra_update_at": 0, "group_constrained": null, "shared": false,
    })
}

/// A channel member.
pub fn member(m: &ChannelMember) -> Value {
    json!({
        "channel_id": m.channel_id, "user_id": m.user_id,
        "roles": if m.role == "member" { "channel_user" } else { "channel_user channel_admin" },
        "last_viewed_at": m.last_viewed_at, "msg_count": m.msg_count, "msg_count_root": m.msg_count_root,
        "mention_count": m.mention_count, "mention_count_root": m.mention_count_root,
        "urgent_mention_count": 0,
        "notify_props": {"desktop": "default", "email": "default", "mark_unread": "all", "push": "default", "ignore_channel_mentions": "default"},
        "last_update_at": m.last_viewed_at, "scheme_user": true, "scheme_admin": m.role != "member",
    })
}

/// A reaction.
pub fn reaction(r: &Reaction) -> Value {
    json!({"user_id": r.user_id, "post_id": r.post_id, "emoji_name": r.emoji_name, "create_at": r.created_at})
}

/// A post, with `metadata.reactions` when given.
pub fn post(p: &Post, reactions: Option<&[Reaction]>) -> Value {
    let mut metadata = json!({});
    if let Some(rs) = reactions
        && !rs.is_empty()
    {
        metadata["reactions"] = Value::Array(rs.iter().map(reaction).collect());
    }
    json!({
        "id": p.id, "create_at": p.created_at, "update_at": p.updated_at, "edit_at": p.edited_at,
        "delete_at": p.deleted_at, "is_pinned": false, "user_id": p.user_id,
        "channel_id": p.channel_id, "root_id": p.root_id, "original_id": "",
        "message": p.message, "type": p.kind,
        "props": serde_json::from_str::<Value>(&p.props).unwrap_or_else(|_| json!({})),
        "hashtags": "", "pending_post_id": p.client_msg_id.clone().unwrap_or_default(),
        "reply_count": p.reply_count, "last_reply_at": p.last_reply_at,
        "file_ids": serde_json::from_str::<Value>(&p.file_ids).unwrap_or_else(|_| json!([])),
        "metadata": metadata,
    })
}

/// Groups reactions by post id.
pub fn reactions_by_post(rs: Vec<Reaction>) -> HashMap<String, Vec<Reaction>> {
    let mut m: HashMap<String, Vec<Reaction>> = HashMap::new();
    for r in rs {
        m.entry(r.post_id.clone()).or_default().push(r);
    }
    m
}
