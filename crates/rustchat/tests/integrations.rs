//! Incoming webhooks and roles (spec §10 tests 34, 35; CHAT-R24, R25) and personal access
//! tokens, bots and account administration (CHAT-R21, test 20's token part), each run on
//! SQLite and on PostgreSQL against the real binary.

mod common;

use common::{Chat, Db};
use serde_json::{Value, json};

fn body_json(r: &test_support::Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

/// Every byte the database holds: the SQLite files (WAL included), or a psql dump of
/// `table` on PostgreSQL.
fn database_bytes(chat: &Chat, table: &str) -> Vec<u8> {
    match chat.db {
        Db::Sqlite => ["rustchat.db", "rustchat.db-wal", "rustchat.db-shm"]
            .iter()
            .flat_map(|f| std::fs::read(chat.dir.join("data").join(f)).unwrap_or_default())
            .collect(),
        Db::Postgres => {
            let url = chat.db_url.as_ref().unwrap();
            let db = url.rsplit('/').next().unwrap();
            test_support::PgServer::shared()
                .unwrap()
                .psql(db, &format!("SELECT * FROM {table}"))
                .into_bytes()
        }
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Server log lines up to and including the first containing `needle` (panics after 10 s).
fn lines_until(chat: &Chat, needle: &str) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = Vec::new();
    while std::time::Instant::now() < deadline {
        if let Ok(line) = chat
            .svc
            .lines
            .recv_timeout(std::time::Duration::from_millis(100))
        {
            let found = line.contains(needle);
            seen.push(line);
            if found {
                return seen;
            }
        }
    }
    panic!("no log line containing {needle:?} within 10 s");
}

fn last_post(chat: &Chat, tok: &str, channel: &str) -> Value {
    let r = chat.call(
        "GET",
        &format!("/api/v1/channels/{channel}/posts"),
        Some(tok),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["posts"].as_array().unwrap().last().unwrap().clone()
}

// CHAT tests 34 and 35 (R24, R25): a team_admin creates a webhook; POST /hooks/{token}
// (JSON or form payload) → 200 `ok` and a post by the hook's creator with from_webhook; a
// bad token → 404; the token plaintext is nowhere in the database; a member can neither
// create webhooks nor delete others' posts (403) while the team_admin can.
both!(
    webhooks_post_as_creator_and_keep_tokens_out_of_the_database,
    |db| {
        let Some(chat) = Chat::start(db, &[]) else {
            return;
        };
        let (alice, _) = chat.user("alice");
        let (bob, bob_id) = chat.user("bob");
        let (carol, carol_id) = chat.user("carol");
        // bob creates the team, so he is its team_admin without being system_admin.
        let team = chat.team(&bob, "ops");
        chat.add_to_team(&bob, &team, &carol_id);
        let alerts = chat.channel(&bob, &team, "alerts", "public");
        chat.join(&carol, &alerts);

        let denied = chat.call(
            "POST",
            "/api/v1/hooks/incoming",
            Some(&carol),
            Some(&json!({"channel_id": alerts, "display_name": "CI"})),
        );
        assert_eq!(denied.status, 403, "{}", denied.text);
        let created = chat.call(
            "POST",
            "/api/v1/hooks/incoming",
            Some(&bob),
            Some(&json!({"channel_id": alerts, "display_name": "CI"})),
        );
        assert_eq!(created.status, 201, "{}", created.text);
        let hook_id = created.json["id"].as_str().unwrap().to_string();
        assert_eq!(created.json["channel_id"], alerts.as_str());
        assert_eq!(created.json["team_id"], team.as_str());
        assert_eq!(created.json["display_name"], "CI");
        let url = created.json["url"].as_str().unwrap().to_string();
        let token = url.rsplit("/hooks/").next().unwrap().to_string();
        assert_eq!(token.len(), 26, "{url}");
        assert!(url.ends_with(&format!("/hooks/{token}")), "{url}");

        // The URL is shown again to its managers (bob, system_admin alice), not to carol.
        for tok in [&bob, &alice] {
            let list = chat.call("GET", "/api/v1/hooks/incoming", Some(tok), None);
            assert_eq!(list.status, 200, "{}", list.text);
            assert!(
                list.json
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|h| h["url"] == url.as_str()),
                "{}",
                list.text
            );
        }
        let list = chat.call("GET", "/api/v1/hooks/incoming", Some(&carol), None);
        assert_eq!(list.json, json!([]));

        // Execute: JSON on the short path, JSON with overrides on /api/v1, form payload.
        let r = chat.send(
            "POST",
            &format!("/hooks/{token}"),
            None,
            "application/json",
            br#"{"text":"hi"}"#,
        );
        assert_eq!((r.status, r.text()), (200, "ok".to_string()));
        let p = last_post(&chat, &carol, &alerts);
        assert_eq!(p["message"], "hi");
        assert_eq!(p["user_id"], bob_id.as_str());
        assert_eq!(p["props"]["from_webhook"], "true");
        let r = chat.send(
            "POST",
            &format!("/api/v1/hooks/{token}"),
            None,
            "application/json",
            json!({"text": "build green", "username": "ci-bot",
               "icon_url": "https://example.com/ci.png", "props": {"build": 42}})
            .to_string()
            .as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let p = last_post(&chat, &carol, &alerts);
        assert_eq!(p["props"]["override_username"], "ci-bot");
        assert_eq!(
            p["props"]["override_icon_url"],
            "https://example.com/ci.png"
        );
        assert_eq!(p["props"]["build"], 42);
        assert_eq!(p["props"]["from_webhook"], "true");
        let r = chat.send(
            "POST",
            &format!("/hooks/{token}"),
            None,
            "application/x-www-form-urlencoded",
            b"payload=%7B%22text%22%3A%22from+a+form%22%7D",
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(last_post(&chat, &carol, &alerts)["message"], "from a form");
        assert!(chat.metric("rustchat_messages_sent_total{source=\"webhook\"") >= 3.0);

        // Refusals: http icon, unknown field, a spoofed from_webhook cannot unset the mark.
        for (body, field) in [
            (
                json!({"text": "x", "icon_url": "http://example.com/i.png"}),
                "icon_url",
            ),
            (json!({"text": "x", "attachments": []}), "attachments"),
            (json!({"text": " "}), "text"),
        ] {
            let r = chat.send(
                "POST",
                &format!("/hooks/{token}"),
                None,
                "application/json",
                body.to_string().as_bytes(),
            );
            assert_eq!(r.status, 400, "{body}: {}", r.text());
            assert_eq!(body_json(&r)["field"], field, "{}", r.text());
        }
        let r = chat.send(
            "POST",
            &format!("/hooks/{token}"),
            None,
            "application/json",
            br#"{"text":"spoof","props":{"from_webhook":"false"}}"#,
        );
        assert_eq!(r.status, 200);
        assert_eq!(
            last_post(&chat, &carol, &alerts)["props"]["from_webhook"],
            "true"
        );

        // Unknown tokens: 404 on both paths.
        let unknown = rustchat::ids::new_id();
        for path in [
            format!("/hooks/{unknown}"),
            format!("/api/v1/hooks/{unknown}"),
            "/hooks/not-a-token".to_string(),
        ] {
            let r = chat.send("POST", &path, None, "application/json", br#"{"text":"x"}"#);
            assert_eq!(r.status, 404, "{path}: {}", r.text());
        }

        // The plaintext token is nowhere in the database; its hash is.
        let dump = database_bytes(&chat, "incoming_webhooks");
        assert!(
            !contains(&dump, &token),
            "webhook token stored in plaintext"
        );
        assert!(contains(&dump, &rustchat::ids::sha256_hex(&token)));

        // Roles (test 35): carol cannot delete bob's post; bob (team_admin) deletes carol's.
        let bobs = chat.post(&bob, &alerts, "bob's post");
        let carols = chat.post(&carol, &alerts, "carol's post");
        let r = chat.call(
            "DELETE",
            &format!("/api/v1/posts/{}", bobs["id"].as_str().unwrap()),
            Some(&carol),
            None,
        );
        assert_eq!(r.status, 403, "{}", r.text);
        let r = chat.call(
            "DELETE",
            &format!("/api/v1/posts/{}", carols["id"].as_str().unwrap()),
            Some(&bob),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text);

        // Deleting: carol 403, bob 200; then the token is dead.
        let path = format!("/api/v1/hooks/incoming/{hook_id}");
        assert_eq!(chat.call("DELETE", &path, Some(&carol), None).status, 403);
        assert_eq!(chat.call("DELETE", &path, Some(&bob), None).status, 200);
        assert_eq!(chat.call("DELETE", &path, Some(&bob), None).status, 404);
        let r = chat.send(
            "POST",
            &format!("/hooks/{token}"),
            None,
            "application/json",
            br#"{"text":"x"}"#,
        );
        assert_eq!(r.status, 404, "{}", r.text());
    }
);

// CHAT-R21: a PAT works as Bearer until deleted; bot tokens work; deactivation ends the
// user's JWTs and PATs at once; revoke_all ends sessions, and tokens with
// include_tokens; only system_admin administers.
both!(personal_access_tokens_bots_and_admin_revocation, |db| {
    let Some(chat) = Chat::start(db, &[]) else {
        return;
    };
    let (alice, _) = chat.user("alice");
    let (bob, bob_id) = chat.user("bob");
    let me = |tok: &str| chat.call("GET", "/api/v1/auth/me", Some(tok), None);

    let r = chat.call(
        "POST",
        "/api/v1/users/me/tokens",
        Some(&bob),
        Some(&json!({"description": "ci"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let pat = r.json["token"].as_str().unwrap().to_string();
    let pat_id = r.json["id"].as_str().unwrap().to_string();
    assert!(pat.starts_with("rct_") && pat.len() == 47, "{pat}");
    assert_eq!(r.json["description"], "ci");
    let who = me(&pat);
    assert_eq!(
        (who.status, who.json["username"].clone()),
        (200, json!("bob"))
    );
    let list = chat.call("GET", "/api/v1/users/me/tokens", Some(&pat), None);
    assert_eq!(list.json.as_array().unwrap().len(), 1);
    assert!(list.json[0].get("token").is_none() && list.json[0].get("token_hash").is_none());

    let path = format!("/api/v1/users/me/tokens/{pat_id}");
    assert_eq!(chat.call("DELETE", &path, Some(&alice), None).status, 404);
    assert_eq!(chat.call("DELETE", &path, Some(&bob), None).status, 200);
    assert_eq!(me(&pat).status, 401);
    assert_eq!(chat.call("DELETE", &path, Some(&bob), None).status, 404);

    // Bots: system_admin only; their tokens work; they have no password login.
    let bot_body = json!({"username": "buildbot", "display_name": "Build Bot"});
    assert_eq!(
        chat.call("POST", "/api/v1/bots", Some(&bob), Some(&bot_body))
            .status,
        403
    );
    let r = chat.call("POST", "/api/v1/bots", Some(&alice), Some(&bot_body));
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["is_bot"], true);
    let bot_id = r.json["id"].as_str().unwrap().to_string();
    let bot_tokens = format!("/api/v1/bots/{bot_id}/tokens");
    assert_eq!(
        chat.call("POST", &bot_tokens, Some(&bob), Some(&json!({})))
            .status,
        403
    );
    assert_eq!(
        chat.call(
            "POST",
            &format!("/api/v1/bots/{bob_id}/tokens"),
            Some(&alice),
            Some(&json!({}))
        )
        .status,
        404
    );
    let r = chat.call(
        "POST",
        &bot_tokens,
        Some(&alice),
        Some(&json!({"description": "deploys"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let bot_token = r.json["token"].as_str().unwrap().to_string();
    let who = me(&bot_token);
    assert_eq!(who.status, 200, "{}", who.text);
    assert_eq!(
        (who.json["username"].clone(), who.json["is_bot"].clone()),
        (json!("buildbot"), json!(true))
    );
    let login = chat.call(
        "POST",
        "/api/v1/auth/login",
        None,
        Some(&json!({"login": "buildbot", "password": "password-123"})),
    );
    assert_eq!(login.status, 401);

    // Admin routes refuse members.
    assert_eq!(
        chat.call("GET", "/api/v1/admin/users", Some(&bob), None)
            .status,
        403
    );
    let patch = format!("/api/v1/admin/users/{bob_id}");
    assert_eq!(
        chat.call("PATCH", &patch, Some(&bob), Some(&json!({"active": false})))
            .status,
        403
    );
    assert_eq!(
        chat.call(
            "POST",
            "/api/v1/admin/sessions/revoke_all",
            Some(&bob),
            Some(&json!({"include_tokens": true}))
        )
        .status,
        403
    );
    let users = chat.call("GET", "/api/v1/admin/users", Some(&alice), None);
    assert_eq!(users.status, 200, "{}", users.text);
    let names: Vec<&str> = users
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob", "buildbot"]);
    assert!(users.json[1]["email"].is_string());

    // Deactivation: bob's JWT and new PAT stop at once; reactivation does not revive them.
    let r = chat.call(
        "POST",
        "/api/v1/users/me/tokens",
        Some(&bob),
        Some(&json!({"description": "second"})),
    );
    let pat2 = r.json["token"].as_str().unwrap().to_string();
    assert_eq!(me(&pat2).status, 200);
    assert_eq!(me(&bob).status, 200);
    let r = chat.call(
        "PATCH",
        &patch,
        Some(&alice),
        Some(&json!({"active": false})),
    );
    assert_eq!(
        (r.status, r.json["active"].clone()),
        (200, json!(false)),
        "{}",
        r.text
    );
    assert_eq!(me(&bob).status, 401);
    assert_eq!(me(&pat2).status, 401);
    let r = chat.call(
        "PATCH",
        &patch,
        Some(&alice),
        Some(&json!({"active": true})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(me(&pat2).status, 401);
    let bob = chat.login("bob");
    // Role changes apply at once (the session cache is dropped).
    let r = chat.call(
        "PATCH",
        &patch,
        Some(&alice),
        Some(&json!({"role": "system_admin"})),
    );
    assert_eq!(r.json["role"], "system_admin", "{}", r.text);
    assert_eq!(
        chat.call("GET", "/api/v1/admin/users", Some(&bob), None)
            .status,
        200
    );
    for (body, field) in [
        (json!({"role": "root"}), "role"),
        (json!({"active": "no"}), "active"),
        (json!({"nope": 1}), "nope"),
    ] {
        let r = chat.call("PATCH", &patch, Some(&alice), Some(&body));
        assert_eq!(
            (r.status, r.json["field"].clone()),
            (400, json!(field)),
            "{}",
            r.text
        );
    }
    let own = chat.call("GET", "/api/v1/auth/me", Some(&alice), None);
    let alice_id = own.json["id"].as_str().unwrap().to_string();
    let r = chat.call(
        "PATCH",
        &format!("/api/v1/admin/users/{alice_id}"),
        Some(&alice),
        Some(&json!({"active": false})),
    );
    assert_eq!(r.status, 400, "{}", r.text);

    // revoke_all without tokens: sessions end, the bot token lives; with tokens: it ends.
    let r = chat.call(
        "POST",
        "/api/v1/admin/sessions/revoke_all",
        Some(&alice),
        Some(&json!({"include_tokens": false})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json["sessions"].as_u64().unwrap() >= 2, "{}", r.text);
    assert_eq!(r.json["tokens"], 0);
    assert_eq!(me(&alice).status, 401);
    assert_eq!(me(&bob).status, 401);
    assert_eq!(me(&bot_token).status, 200);
    let alice = chat.login("alice");
    let r = chat.call(
        "POST",
        "/api/v1/admin/sessions/revoke_all",
        Some(&alice),
        Some(&json!({"include_tokens": true})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["tokens"], 1);
    assert_eq!(me(&bot_token).status, 401);
    assert_eq!(me(&alice).status, 401);
});

// CHAT-R27: creating a token logs `auth: token created` (user and token ids), never the
// token itself.
both!(token_creation_is_logged_without_the_token, |db| {
    let Some(chat) = Chat::start(db, &[]) else {
        return;
    };
    let (alice, _) = chat.user("alice");
    let r = chat.call(
        "POST",
        "/api/v1/users/me/tokens",
        Some(&alice),
        Some(&json!({"description": "ci"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let pat = r.json["token"].as_str().unwrap();
    let lines = lines_until(&chat, "auth: token created");
    assert!(
        lines
            .last()
            .unwrap()
            .contains(r.json["id"].as_str().unwrap())
    );
    assert!(!lines.iter().any(|l| l.contains(pat)), "token logged");
});
