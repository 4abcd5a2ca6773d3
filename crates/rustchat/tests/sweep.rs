//! Bad-input sweep (spec shared/specs/rustchat.md §10 test 39, CHAT-R6, R29): malformed
//! JSON, wrong types, unknown fields, invalid ids, oversize bodies and 10,000 generated
//! bodies across the routes; no 5xx, the process stays up.

mod common;

use common::{Chat, Db};
use serde_json::{Value, json};

/// A small deterministic generator (xorshift), so a failure reproduces.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[(self.next() % xs.len() as u64) as usize]
    }
    fn string(&mut self) -> String {
        let n = self.next() % 40;
        let pool = [
            "a", "Z", "9", " ", "'", "\"", "\\", "%", "_", "@", "é", "漢", "😀", "\u{1}",
            "<script>", "../", "{", "]",
        ];
        (0..n).map(|_| *self.pick(&pool)).collect()
    }
    fn value(&mut self, depth: u32) -> Value {
        match self.next() % if depth > 2 { 7 } else { 9 } {
            0 => Value::Null,
            1 => json!(self.next().is_multiple_of(2)),
            2 => json!(self.next() as i64),
            3 => json!(-(self.next() as i64 % 1000)),
            4 => json!(1.5e308),
            5 => json!(self.string()),
            6 => json!("x".repeat((self.next() % 20_000) as usize)),
            7 => Value::Array(
                (0..self.next() % 4)
                    .map(|_| self.value(depth + 1))
                    .collect(),
            ),
            _ => {
                let keys = [
                    "name",
                    "display_name",
                    "type",
                    "message",
                    "root_id",
                    "user_id",
                    "user_ids",
                    "channel_id",
                    "team_id",
                    "login",
                    "password",
                    "email",
                    "username",
                    "status",
                    "props",
                    "file_ids",
                    "client_msg_id",
                    "open",
                    "purpose",
                    "header",
                    "description",
                    "text",
                    "zzz",
                ];
                let mut m = serde_json::Map::new();
                for _ in 0..self.next() % 6 {
                    m.insert(self.pick(&keys).to_string(), self.value(depth + 1));
                }
                Value::Object(m)
            }
        }
    }
    fn body(&mut self) -> String {
        match self.next() % 6 {
            0 => String::new(),
            1 => "{\"truncated\": [1, 2".into(),
            2 => self.string(),
            3 => "[".repeat(200),
            _ => self.value(0).to_string(),
        }
    }
}

#[test]
fn generated_bad_input_never_gets_a_5xx() {
    let chat = Chat::start(Db::Sqlite, &[]).unwrap();
    let (t, _) = chat.user("fuzz");
    let team = chat.team(&t, "fuzzteam");
    let ch = chat.channel(&t, &team, "fuzz", "public");
    let post = chat.post(&t, &ch, "target")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let me = chat.call("GET", "/api/v1/auth/me", Some(&t), None).json["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ids = [
        team.as_str(),
        ch.as_str(),
        post.as_str(),
        me.as_str(),
        "ybndrfg8ejkmcpqxot1uwiszay",
        "not-an-id",
        "%00",
        "..%2F..%2Fetc",
        "me",
        "",
    ];
    let routes: &[(&str, &str)] = &[
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        ("GET", "/api/v1/users?ids={}"),
        ("GET", "/api/v1/users?q={}"),
        ("PATCH", "/api/v1/users/me"),
        ("PUT", "/api/v1/users/me/status"),
        ("GET", "/api/v1/users/status?ids={}"),
        ("GET", "/api/v1/users/{}"),
        ("POST", "/api/v1/teams"),
        ("PATCH", "/api/v1/teams/{}"),
        ("POST", "/api/v1/teams/{}/members"),
        ("POST", "/api/v1/teams/{}/channels"),
        ("GET", "/api/v1/teams/{}/channels?scope={}"),
        ("PATCH", "/api/v1/channels/{}"),
        ("POST", "/api/v1/channels/direct"),
        ("POST", "/api/v1/channels/group"),
        ("POST", "/api/v1/channels/{}/members"),
        ("POST", "/api/v1/channels/{}/posts"),
        ("GET", "/api/v1/channels/{}/posts?before={}&limit={}"),
        ("PATCH", "/api/v1/posts/{}"),
        ("PUT", "/api/v1/posts/{}/reactions/{}"),
        ("GET", "/api/v1/search?q={}"),
        ("POST", "/api/v1/hooks/incoming"),
        ("POST", "/hooks/{}"),
        ("POST", "/api/v1/users/me/tokens"),
        ("PATCH", "/api/v1/admin/config"),
        ("POST", "/api/v4/users/login"),
        ("POST", "/api/v4/posts"),
        ("POST", "/api/v4/channels"),
        ("POST", "/api/v4/users/ids"),
        ("POST", "/api/v4/reactions"),
        ("GET", "/api/v4/channels/{}/posts?page={}&per_page={}"),
        ("POST", "/api/v4/channels/members/me/view"),
    ];
    let mut g = Gen(0x5eed_1234_abcd_ef01);
    let mut by_status = std::collections::BTreeMap::new();
    for i in 0..10_000 {
        let (method, tmpl) = *g.pick(routes);
        let mut path = String::new();
        for (k, piece) in tmpl.split("{}").enumerate() {
            if k > 0 {
                let v = if g.next().is_multiple_of(3) {
                    common::urlencode(&g.string())
                } else {
                    g.pick(&ids).to_string()
                };
                path.push_str(&v);
            }
            path.push_str(piece);
        }
        let body = g.body();
        let auth = if g.next().is_multiple_of(10) {
            None
        } else {
            Some(t.as_str())
        };
        let r = chat.call_raw(method, &path, auth, Some(&body), &[]);
        assert!(
            r.status < 500,
            "request {i}: {method} {path} body {:?} -> {} {}",
            &body[..body.len().min(200)],
            r.status,
            r.text
        );
        *by_status.entry(r.status).or_insert(0u32) += 1;
    }
    assert_eq!(
        chat.call("GET", "/api/v1/health/live", None, None).status,
        200
    );
    // The sweep reached handlers, not just the router: some requests succeeded.
    assert!(
        by_status.keys().any(|s| (200..300).contains(s)),
        "{by_status:?}"
    );
    assert!(
        by_status.get(&400).copied().unwrap_or(0) > 1000,
        "{by_status:?}"
    );
}
