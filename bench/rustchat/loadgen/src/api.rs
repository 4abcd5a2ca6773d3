//! Request shapes of the two drivers. `v4` speaks the Mattermost subset (what
//! `@mattermost/client` sends: `POST /users/login` with the token in the `Token` header,
//! `POST /users/ids` with a JSON array, `POST /channels/members/me/view`, …); `v1` the native
//! API. The v4 subset has no search and no file routes (spec §3.5), so both drivers search
//! and upload through `/api/v1` with the same Bearer token.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::net::{Body, Reply};
use crate::opts::Driver;

/// One request: method, path, body.
pub type Req = (&'static str, String, Body);

pub fn ws_path(d: Driver) -> &'static str {
    match d {
        Driver::V4 => "/api/v4/websocket",
        Driver::V1 => "/api/v1/ws",
    }
}

pub fn login(d: Driver, name: &str, password: &str) -> Req {
    match d {
        Driver::V4 => (
            "POST",
            "/api/v4/users/login".into(),
            Body::Json(json!({"login_id": name, "password": password})),
        ),
        Driver::V1 => (
            "POST",
            "/api/v1/auth/login".into(),
            Body::Json(json!({"login": name, "password": password})),
        ),
    }
}

/// The session token of a successful login.
pub fn login_token(d: Driver, r: &Reply) -> Option<String> {
    match d {
        Driver::V4 => r
            .headers
            .get("token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        Driver::V1 => r.json()["token"].as_str().map(str::to_owned),
    }
}

pub fn posts_page(d: Driver, cid: &str) -> Req {
    match d {
        Driver::V4 => (
            "GET",
            format!("/api/v4/channels/{cid}/posts?page=0&per_page=60"),
            Body::Empty,
        ),
        Driver::V1 => (
            "GET",
            format!("/api/v1/channels/{cid}/posts?limit=60"),
            Body::Empty,
        ),
    }
}

/// A post as the simulation remembers it: (id, id of its thread root).
pub type PostRef = (String, String);

fn post_ref(p: &Value) -> Option<PostRef> {
    let id = p["id"].as_str()?.to_owned();
    let root = match p["root_id"].as_str() {
        Some(r) if !r.is_empty() => r.to_owned(),
        _ => id.clone(),
    };
    Some((id, root))
}

/// Posts of a page, newest last.
pub fn page_posts(d: Driver, v: &Value) -> Vec<PostRef> {
    match d {
        Driver::V4 => {
            let mut out: Vec<PostRef> = v["order"]
                .as_array()
                .map(|o| {
                    o.iter()
                        .filter_map(|id| id.as_str())
                        .filter_map(|id| post_ref(&v["posts"][id]))
                        .collect()
                })
                .unwrap_or_default();
            out.reverse();
            out
        }
        Driver::V1 => v["posts"]
            .as_array()
            .map(|a| a.iter().filter_map(post_ref).collect())
            .unwrap_or_default(),
    }
}

pub fn view(d: Driver, cid: &str, prev: &str) -> Req {
    match d {
        Driver::V4 => (
            "POST",
            "/api/v4/channels/members/me/view".into(),
            Body::Json(json!({"channel_id": cid, "prev_channel_id": prev})),
        ),
        Driver::V1 => ("POST", format!("/api/v1/channels/{cid}/view"), Body::Empty),
    }
}

pub struct NewPost<'a> {
    pub channel: &'a str,
    pub message: &'a str,
    pub root: Option<&'a str>,
    pub file_ids: &'a [String],
    /// Idempotency key (v4 `pending_post_id`, v1 `client_msg_id`).
    pub pending: &'a str,
}

pub fn create_post(d: Driver, p: &NewPost) -> Req {
    match d {
        Driver::V4 => (
            "POST",
            "/api/v4/posts".into(),
            Body::Json(json!({
                "channel_id": p.channel,
                "message": p.message,
                "root_id": p.root.unwrap_or(""),
                "file_ids": p.file_ids,
                "pending_post_id": p.pending,
            })),
        ),
        Driver::V1 => {
            let mut b = json!({"message": p.message, "client_msg_id": p.pending});
            if let Some(r) = p.root {
                b["root_id"] = json!(r);
            }
            if !p.file_ids.is_empty() {
                b["file_ids"] = json!(p.file_ids);
            }
            (
                "POST",
                format!("/api/v1/channels/{}/posts", p.channel),
                Body::Json(b),
            )
        }
    }
}

/// The created post (both APIs answer with the post object).
pub fn created_post(v: &Value) -> Option<PostRef> {
    post_ref(v)
}

pub fn thread(d: Driver, root: &str) -> Req {
    match d {
        Driver::V4 => ("GET", format!("/api/v4/posts/{root}/thread"), Body::Empty),
        Driver::V1 => ("GET", format!("/api/v1/posts/{root}/thread"), Body::Empty),
    }
}

pub fn add_reaction(d: Driver, uid: &str, pid: &str, emoji: &str) -> Req {
    match d {
        Driver::V4 => (
            "POST",
            "/api/v4/reactions".into(),
            Body::Json(json!({"user_id": uid, "post_id": pid, "emoji_name": emoji})),
        ),
        Driver::V1 => (
            "PUT",
            format!("/api/v1/posts/{pid}/reactions/{emoji}"),
            Body::Empty,
        ),
    }
}

pub fn remove_reaction(d: Driver, uid: &str, pid: &str, emoji: &str) -> Req {
    match d {
        Driver::V4 => (
            "DELETE",
            format!("/api/v4/users/{uid}/posts/{pid}/reactions/{emoji}"),
            Body::Empty,
        ),
        Driver::V1 => (
            "DELETE",
            format!("/api/v1/posts/{pid}/reactions/{emoji}"),
            Body::Empty,
        ),
    }
}

pub fn users_by_ids(d: Driver, ids: &[&str]) -> Req {
    match d {
        Driver::V4 => ("POST", "/api/v4/users/ids".into(), Body::Json(json!(ids))),
        Driver::V1 => (
            "GET",
            format!("/api/v1/users?ids={}", ids.join(",")),
            Body::Empty,
        ),
    }
}

/// Unread state: v4 reads the channel members of the team (what the webapp derives unread
/// badges from); v1 has a dedicated route.
pub fn unreads(d: Driver, tid: &str) -> Req {
    match d {
        Driver::V4 => (
            "GET",
            format!("/api/v4/users/me/teams/{tid}/channels/members"),
            Body::Empty,
        ),
        Driver::V1 => (
            "GET",
            format!("/api/v1/users/me/unreads?team_id={tid}"),
            Body::Empty,
        ),
    }
}

pub fn search(tid: &str, word: &str) -> Req {
    (
        "GET",
        format!("/api/v1/search?q={word}&team_id={tid}&page=0&per_page=20"),
        Body::Empty,
    )
}

/// Status update. Always `online` (what an active client reports): a changing status fans
/// a `status_change` out to every member of the user's teams, which would dwarf the post
/// traffic the spec's frame estimate (≈ 9,000/s at 5,000 users) is based on.
pub fn status(d: Driver, uid: &str) -> Req {
    match d {
        Driver::V4 => (
            "PUT",
            format!("/api/v4/users/{uid}/status"),
            Body::Json(json!({"user_id": uid, "status": "online"})),
        ),
        Driver::V1 => (
            "PUT",
            "/api/v1/users/me/status".into(),
            Body::Json(json!({"status": "online"})),
        ),
    }
}

/// Multipart upload of `data` into channel `cid` (native route, both drivers).
pub fn upload(cid: &str, data: &[u8], boundary: &str) -> Req {
    let mut b = Vec::with_capacity(data.len() + 300);
    b.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"channel_id\"\r\n\r\n{cid}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"loadgen.bin\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    b.extend_from_slice(data);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (
        "POST",
        "/api/v1/files".into(),
        Body::Raw {
            content_type: format!("multipart/form-data; boundary={boundary}"),
            data: Bytes::from(b),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_of_both_dialects_list_posts_oldest_first_with_roots() {
        let v4 = json!({"order": ["b", "a"], "posts": {"a": {"id": "a", "root_id": ""}, "b": {"id": "b", "root_id": "a"}}});
        assert_eq!(
            page_posts(Driver::V4, &v4),
            vec![("a".into(), "a".into()), ("b".into(), "a".into())]
        );
        let v1 = json!({"posts": [{"id": "a", "root_id": null}, {"id": "b", "root_id": "a"}], "has_more": false});
        assert_eq!(page_posts(Driver::V1, &v1), page_posts(Driver::V4, &v4));
        assert!(page_posts(Driver::V4, &json!({"order": 3})).is_empty());
        assert!(page_posts(Driver::V1, &Value::Null).is_empty());
    }
}
