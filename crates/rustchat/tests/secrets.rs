//! Secrets across restarts (spec shared/specs/rustchat.md §10 tests 9 and 20, CHAT-R21,
//! R25).

mod common;

use common::Chat;
use serde_json::json;

fn hook_url(chat: &Chat, tok: &str, channel: &str) -> String {
    let r = chat.call(
        "POST",
        "/api/v1/hooks/incoming",
        Some(tok),
        Some(&json!({"channel_id": channel, "display_name": "ci"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["url"].as_str().unwrap().to_string()
}

fn hook_path(url: &str) -> String {
    format!("/hooks/{}", url.rsplit('/').next().unwrap())
}

// Test 9 (R25): development without secrets: a WARN mentions `ephemeral`; after a restart the
// old JWT is 401 and the webhook URL still decrypts and works.
both!(
    development_secrets_ephemeral_jwt_and_persistent_encryption_key,
    |db| {
        let no_secret = [("RUSTCHAT_JWT_SECRET", "")];
        let Some(chat) = Chat::start(db, &no_secret) else {
            return;
        };
        let lines = chat.svc.drain_lines(std::time::Duration::from_millis(300));
        assert!(
            lines
                .iter()
                .any(|l| l.contains("\"level\":\"WARN\"") && l.contains("ephemeral")),
            "no WARN about the ephemeral JWT secret"
        );
        let (t, _) = chat.user("dev");
        let team = chat.team(&t, "devteam");
        let ch = chat.channel(&t, &team, "hooks", "public");
        let url = hook_url(&chat, &t, &ch);
        assert!(chat.dir.join("data/dev-encryption.key").exists());
        let chat = chat.restart(&no_secret);
        assert_eq!(
            chat.call("GET", "/api/v1/auth/me", Some(&t), None).status,
            401,
            "old JWT must die with the ephemeral secret"
        );
        let t2 = chat.login("dev");
        let list = chat.call("GET", "/api/v1/hooks/incoming", Some(&t2), None);
        assert_eq!(list.status, 200, "{}", list.text);
        assert_eq!(
            list.json[0]["url"].as_str(),
            Some(url.as_str()),
            "the stored token decrypts after a restart"
        );
        let r = chat.call_raw(
            "POST",
            &hook_path(&url),
            None,
            Some(r#"{"text":"after restart"}"#),
            &[],
        );
        assert_eq!((r.status, r.text.as_str()), (200, "ok"));
    }
);

// Test 20 (R21): a restart with a new JWT secret: the old JWT is 401 and `Invalid token` is
// logged; PAT and bot tokens still work on v1 and v4; revoke_all with include_tokens ends
// them.
both!(
    new_jwt_secret_ends_sessions_but_not_tokens_until_revoke_all,
    |db| {
        let Some(chat) = Chat::start(db, &[]) else {
            return;
        };
        let (t, _) = chat.user("root");
        let pat = chat.call(
            "POST",
            "/api/v1/users/me/tokens",
            Some(&t),
            Some(&json!({"description": "ci"})),
        );
        assert_eq!(pat.status, 201, "{}", pat.text);
        let pat = pat.json["token"].as_str().unwrap().to_string();
        let bot = chat.call(
            "POST",
            "/api/v1/bots",
            Some(&t),
            Some(&json!({"username": "robot", "display_name": "Robot"})),
        );
        assert_eq!(bot.status, 201, "{}", bot.text);
        let bot_id = bot.json["id"]
            .as_str()
            .or(bot.json["user_id"].as_str())
            .unwrap()
            .to_string();
        let bt = chat.call(
            "POST",
            &format!("/api/v1/bots/{bot_id}/tokens"),
            Some(&t),
            Some(&json!({"description": "bot"})),
        );
        assert_eq!(bt.status, 201, "{}", bt.text);
        let bot_token = bt.json["token"].as_str().unwrap().to_string();
        let rotated = "bmV3LXJvdGF0ZWQtc2VjcmV0LWZvci10ZXN0cy1yYW5kb20tYnl0ZXMtOTg3NjU0MzIxMA==";
        let mut chat = chat.restart(&[("RUSTCHAT_JWT_SECRET", rotated)]);
        let _ = chat.svc.drain_lines(std::time::Duration::from_millis(100));
        assert_eq!(
            chat.call("GET", "/api/v1/auth/me", Some(&t), None).status,
            401
        );
        let lines = chat.svc.drain_lines(std::time::Duration::from_millis(300));
        assert!(
            lines.iter().any(|l| l.contains("Invalid token")),
            "no Invalid token line"
        );
        for tok in [&pat, &bot_token] {
            assert_eq!(
                chat.call("GET", "/api/v1/auth/me", Some(tok), None).status,
                200
            );
            assert_eq!(
                chat.call("GET", "/api/v4/users/me", Some(tok), None).status,
                200
            );
        }
        let t2 = chat.login("root");
        let r = chat.call(
            "POST",
            "/api/v1/admin/sessions/revoke_all",
            Some(&t2),
            Some(&json!({"include_tokens": true})),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        for tok in [&pat, &bot_token, &t2] {
            assert_eq!(
                chat.call("GET", "/api/v1/auth/me", Some(tok), None).status,
                401
            );
        }
        let _ = &mut chat;
    }
);

// CHAT-R25: the key_check stored at first start catches a changed encryption key: a WARN in
// development, a refused start (exit 1) in production.
#[test]
fn a_changed_encryption_key_is_caught_by_the_key_check() {
    let key_a = "a2V5LWEtZm9yLXRlc3RzLXJhbmRvbS1ieXRlcy1BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQQ==";
    let key_b = "a2V5LWItZm9yLXRlc3RzLXJhbmRvbS1ieXRlcy1aWlpaWlpaWlpaWlpaWlpaWlpaWlpaWg==";
    let chat =
        common::Chat::start(common::Db::Sqlite, &[("RUSTCHAT_ENCRYPTION_KEY", key_a)]).unwrap();
    chat.user("keeper");
    let dir = chat.dir.clone();
    let mut chat = chat.restart(&[("RUSTCHAT_ENCRYPTION_KEY", key_b)]);
    let lines = chat.svc.drain_lines(std::time::Duration::from_millis(300));
    assert!(
        lines.iter().any(
            |l| l.contains("\"level\":\"WARN\"") && l.contains("encryption key does not match")
        )
    );
    chat.svc.signal(15);
    let _ = chat.svc.wait_exit(std::time::Duration::from_secs(35));
    let (code, out, err) = common::run_cli(
        &dir,
        &[],
        &[
            ("RUSTCHAT_ENVIRONMENT", "production"),
            ("RUSTCHAT_JWT_SECRET", common::JWT_SECRET),
            ("RUSTCHAT_ENCRYPTION_KEY", key_b),
            ("RUSTCHAT_HOST", "127.0.0.1"),
            ("RUSTCHAT_PORT", &free_port()),
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("does not match"), "{out}");
}

fn free_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string()
}
