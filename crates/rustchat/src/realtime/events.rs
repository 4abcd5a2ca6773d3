//! The events handlers publish after a successful write (CHAT-R9 event list), in both
//! dialects: on `/api/v4/websocket` the values of `post`, `reaction`, `mentions` and
//! `teammate_ids` are JSON-encoded strings (Mattermost's convention); on `/api/v1/ws` they
//! are plain JSON.

use serde_json::{Value, json};

use super::hub::Broadcast;
use crate::api::render as v1r;
use crate::api::v4::render as v4r;
use crate::state::AppState;
use crate::store::{Channel, Post, Reaction, User};

fn enc(v: &Value) -> Value {
    Value::String(v.to_string())
}

/// `posted` to the channel's members.
pub fn posted(st: &AppState, ch: &Channel, post: &Post, author: &User, mentions: &[String]) {
    let base = |p: Value, m: Option<Value>| {
        let mut d = json!({
            "post": p, "channel_type": ch.kind, "channel_name": ch.name,
            "channel_display_name": ch.display_name, "team_id": ch.team_id,
            "sender_name": format!("@{}", author.username), "set_online": true,
        });
        if let Some(m) = m {
            d["mentions"] = m;
        }
        d
    };
    let m = (!mentions.is_empty()).then(|| json!(mentions));
    let v1 = base(v1r::post(post), m.clone());
    let v4 = base(enc(&v4r::post(post, None)), m.map(|m| enc(&m)));
    let b = Broadcast {
        channel_id: ch.id.clone(),
        team_id: ch.team_id.clone(),
        ..Default::default()
    };
    st.hub.to_channel("posted", &v1, &v4, &b);
}

/// `post_edited` / `post_deleted` to the channel's members.
pub fn post_changed(st: &AppState, event: &str, post: &Post) {
    let v1 = json!({"post": v1r::post(post)});
    let v4 = json!({"post": enc(&v4r::post(post, None))});
    let b = Broadcast {
        channel_id: post.channel_id.clone(),
        ..Default::default()
    };
    st.hub.to_channel(event, &v1, &v4, &b);
}

/// `reaction_added` / `reaction_removed` to the channel's members.
pub fn reaction(st: &AppState, event: &str, channel_id: &str, r: &Reaction) {
    let v1 = json!({"reaction": v1r::reaction(r)});
    let v4 = json!({"reaction": enc(&v4r::reaction(r))});
    let b = Broadcast {
        channel_id: channel_id.into(),
        ..Default::default()
    };
    st.hub.to_channel(event, &v1, &v4, &b);
}

/// `channel_viewed` to the viewer's own connections.
pub fn channel_viewed(st: &AppState, user_id: &str, channel_id: &str) {
    let d = json!({"channel_id": channel_id});
    let b = Broadcast {
        user_id: user_id.into(),
        ..Default::default()
    };
    st.hub
        .to_users(&[user_id.to_string()], "channel_viewed", &d, &d, &b);
}

/// `typing` to the channel's members except the sender.
pub fn typing(st: &AppState, user_id: &str, channel_id: &str, parent_id: &str) {
    let d = json!({"user_id": user_id, "parent_id": parent_id});
    let b = Broadcast {
        channel_id: channel_id.into(),
        omit_users: vec![user_id.into()],
        ..Default::default()
    };
    st.hub.to_channel("typing", &d, &d, &b);
}

/// `status_change` to the given users (the subject's teammates and the subject).
pub fn status_change(st: &AppState, to: &[String], user_id: &str, status: &str) {
    let d = json!({"user_id": user_id, "status": status});
    let b = Broadcast {
        user_id: user_id.into(),
        ..Default::default()
    };
    st.hub.to_users(to, "status_change", &d, &d, &b);
}

/// A member joined: subscribe their connections, tell the channel (`user_added`).
pub fn user_added(st: &AppState, ch: &Channel, user_id: &str) {
    st.hub.join_channel(user_id, &ch.id);
    let d = json!({"user_id": user_id, "team_id": ch.team_id});
    let b = Broadcast {
        channel_id: ch.id.clone(),
        ..Default::default()
    };
    st.hub.to_channel("user_added", &d, &d, &b);
}

/// A member left: tell the channel (`user_removed`, the leaver included), unsubscribe.
pub fn user_removed(st: &AppState, channel_id: &str, user_id: &str) {
    let d = json!({"user_id": user_id, "channel_id": channel_id});
    let b = Broadcast {
        channel_id: channel_id.into(),
        ..Default::default()
    };
    st.hub.to_channel("user_removed", &d, &d, &b);
    st.hub.to_users(
        &[user_id.to_string()],
        "user_removed",
        &d,
        &d,
        &Broadcast {
            user_id: user_id.into(),
            ..Default::default()
        },
    );
    st.hub.leave_channel(user_id, channel_id);
}

/// `channel_created` to the creator; `channel_updated` / `channel_deleted` to members.
pub fn channel_event(st: &AppState, event: &str, ch: &Channel, creator: Option<&str>) {
    let (v1, v4) = match event {
        "channel_created" => {
            let d = json!({"channel_id": ch.id, "team_id": ch.team_id});
            (d.clone(), d)
        }
        "channel_deleted" => {
            let d = json!({"channel_id": ch.id, "delete_at": ch.deleted_at});
            (d.clone(), d)
        }
        _ => (
            json!({"channel": v1r::channel(ch)}),
            json!({"channel": enc(&v4r::channel(ch))}),
        ),
    };
    if let Some(u) = creator {
        st.hub.join_channel(u, &ch.id);
        let b = Broadcast {
            user_id: u.into(),
            ..Default::default()
        };
        st.hub.to_users(&[u.to_string()], event, &v1, &v4, &b);
    } else {
        let b = Broadcast {
            channel_id: ch.id.clone(),
            team_id: ch.team_id.clone(),
            ..Default::default()
        };
        st.hub.to_channel(event, &v1, &v4, &b);
    }
}

/// `direct_added` / `group_added` to the members of a new DM/GM (subscribing them).
pub fn direct_added(st: &AppState, ch: &Channel, members: &[String], creator_id: &str) {
    for m in members {
        st.hub.join_channel(m, &ch.id);
    }
    let b = Broadcast {
        channel_id: ch.id.clone(),
        ..Default::default()
    };
    if members.len() == 2 {
        let teammate = members
            .iter()
            .find(|m| *m != creator_id)
            .cloned()
            .unwrap_or_default();
        let d = json!({"creator_id": creator_id, "teammate_id": teammate});
        st.hub.to_channel("direct_added", &d, &d, &b);
    } else {
        let ids = json!(members);
        st.hub.to_channel(
            "group_added",
            &json!({"teammate_ids": ids}),
            &json!({"teammate_ids": enc(&ids)}),
            &b,
        );
    }
}
