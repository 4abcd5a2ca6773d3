//! Mattermost v4 subset (spec shared/specs/rustchat.md §3.5, tests 25 and 41) against the
//! real binary; the official-client suite is tests/compat.rs.

mod common;

use common::Chat;
use serde_json::json;

fn v4_login(chat: &Chat, name: &str) -> String {
    let r = chat.call(
        "POST",
        "/api/v4/users/login",
        None,
        Some(&json!({"login_id": name, "password": "password-123"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["username"], name);
    r.header("token").expect("Token header").to_string()
}

// Test 41: unknown v4 routes answer a Mattermost-shaped 501; every v4 response carries
// X-Version-Id and no Cache-Control; per_page is clamped to 200 with a default of 60.
both!(v4_conventions_501_headers_and_paging, |db| {
    let Some(chat) = Chat::start(db, &[]) else {
        return;
    };
    chat.user("vera");
    let t = v4_login(&chat, "vera");
    for (m, p) in [("GET", "/api/v4/plugins"), ("POST", "/api/v4/emoji")] {
        let r = chat.call(m, p, Some(&t), Some(&json!({})));
        assert_eq!(r.status, 501, "{m} {p}");
        assert_eq!(r.json["id"], "api.rustchat.not_implemented.app_error");
        assert_eq!(r.json["status_code"], 501);
        assert_eq!(r.json["is_oauth"], false);
        assert_eq!(r.json["detailed_error"], format!("{m} {p}"));
        assert!(r.json["message"].as_str().is_some_and(|s| !s.is_empty()));
        assert_eq!(r.json["request_id"].as_str(), r.header("x-request-id"));
        assert!(r.header("x-version-id").unwrap().starts_with("10.11.10."));
        assert!(r.header("cache-control").is_none());
    }
    // The fallback is one series, whatever the path (bounded cardinality).
    assert!(
        chat.metric(r#"rustchat_http_requests_total{method="GET",route="/api/v4/*",status="501"}"#)
            >= 1.0
    );
    // Unauthenticated unknown routes are 501 too; a known path with another method is 405.
    assert_eq!(chat.call("GET", "/api/v4/plugins", None, None).status, 501);
    let r = chat.call("DELETE", "/api/v4/users/me", Some(&t), None);
    assert_eq!(r.status, 405);
    assert!(r.json["id"].as_str().is_some());
    let me = chat.call("GET", "/api/v4/users/me", Some(&t), None);
    assert_eq!(me.json["roles"], "system_user system_admin");
    assert!(me.header("cache-control").is_none());
    assert_eq!(me.header("x-mm-compat"), Some("1"));
    // An expired/unknown token is 401 with the session-expired id.
    let r = chat.call("GET", "/api/v4/users/me", Some("nope"), None);
    assert_eq!(
        (r.status, r.json["id"].as_str()),
        (401, Some("api.context.session_expired.app_error"))
    );
    let bad = chat.call(
        "POST",
        "/api/v4/users/login",
        None,
        Some(&json!({"login_id": "vera", "password": "wrong-password"})),
    );
    assert_eq!(
        (bad.status, bad.json["id"].as_str()),
        (
            401,
            Some("api.user.login.invalid_credentials_email_username")
        )
    );
    // Paging: 250 posts; default page 60, per_page=500 clamps to 200.
    let team = chat.call(
        "POST",
        "/api/v1/teams",
        Some(&t),
        Some(&json!({"name": "pg", "display_name": "pg"})),
    );
    let team = team.json["id"].as_str().unwrap().to_string();
    let ch = chat
        .call(
            "GET",
            &format!("/api/v4/users/me/teams/{team}/channels"),
            Some(&t),
            None,
        )
        .json[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..250 {
        let r = chat.call(
            "POST",
            "/api/v4/posts",
            Some(&t),
            Some(&json!({"channel_id": ch, "message": format!("p{i}")})),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let d = chat.call(
        "GET",
        &format!("/api/v4/channels/{ch}/posts"),
        Some(&t),
        None,
    );
    assert_eq!(d.json["order"].as_array().unwrap().len(), 60);
    assert_eq!(
        d.json["posts"][d.json["order"][0].as_str().unwrap()]["message"],
        "p249",
        "order is newest first"
    );
    assert_eq!(d.json["has_next"], true);
    let big = chat.call(
        "GET",
        &format!("/api/v4/channels/{ch}/posts?per_page=500"),
        Some(&t),
        None,
    );
    assert_eq!(big.json["order"].as_array().unwrap().len(), 200);
    let p2 = chat.call(
        "GET",
        &format!("/api/v4/channels/{ch}/posts?page=1&per_page=200"),
        Some(&t),
        None,
    );
    assert_eq!(p2.json["order"].as_array().unwrap().len(), 50);
    // pending_post_id makes a retry idempotent.
    let a = chat.call(
        "POST",
        "/api/v4/posts",
        Some(&t),
        Some(&json!({"channel_id": ch, "message": "once", "pending_post_id": "pp-1"})),
    );
    let b = chat.call(
        "POST",
        "/api/v4/posts",
        Some(&t),
        Some(&json!({"channel_id": ch, "message": "once", "pending_post_id": "pp-1"})),
    );
    assert_eq!((a.status, b.status), (201, 200));
    assert_eq!(a.json["id"], b.json["id"]);
    assert_eq!(a.json["pending_post_id"], "pp-1");
});

// Test 25 (v4 half): a non-member gets 403 on a private channel; a missing one is 404.
both!(v4_private_channel_is_403_for_non_members, |db| {
    let Some(chat) = Chat::start(db, &[]) else {
        return;
    };
    let (a, _) = chat.user("owner");
    let (_, bid) = chat.user("other");
    let team = chat.call(
        "POST",
        "/api/v1/teams",
        Some(&a),
        Some(&json!({"name": "t4", "display_name": "t4"})),
    );
    let team = team.json["id"].as_str().unwrap().to_string();
    chat.call(
        "POST",
        &format!("/api/v1/teams/{team}/members"),
        Some(&a),
        Some(&json!({"user_id": bid})),
    );
    let ch = chat.call(
        "POST",
        "/api/v4/channels",
        Some(&v4_login(&chat, "owner")),
        Some(&json!({"team_id": team, "name": "hidden", "display_name": "Hidden", "type": "P"})),
    );
    assert_eq!(ch.status, 201, "{}", ch.text);
    let id = ch.json["id"].as_str().unwrap();
    let t = v4_login(&chat, "other");
    let r = chat.call("GET", &format!("/api/v4/channels/{id}"), Some(&t), None);
    assert_eq!(
        (r.status, r.json["id"].as_str()),
        (403, Some("api.context.permissions.app_error"))
    );
    assert_eq!(
        chat.call(
            "GET",
            &format!("/api/v4/channels/{id}/posts"),
            Some(&t),
            None
        )
        .status,
        403
    );
    assert_eq!(
        chat.call(
            "GET",
            "/api/v4/channels/ybndrfg8ejkmcpqxot1uwiszay",
            Some(&t),
            None
        )
        .status,
        404
    );
});

// viewMyChannel writes only when the view changes something (issue 7): a caught-up member
// keeps its stored last_viewed_at (the write is skipped), while new messages, a mention or
// prev_channel_id with unread messages still get the write and a fresh time.
both!(v4_view_writes_only_when_something_is_unread, |db| {
    let Some(chat) = Chat::start(db, &[]) else {
        return;
    };
    let (admin, _) = chat.user("vadmin");
    let (_, alice_id) = chat.user("valice");
    let (bob, bob_id) = chat.user("vbob");
    let team = chat.team(&admin, "views");
    chat.add_to_team(&admin, &team, &alice_id);
    chat.add_to_team(&admin, &team, &bob_id);
    let a = chat.channel(&admin, &team, "view-a", "public");
    let b = chat.channel(&admin, &team, "view-b", "public");
    let alice = v4_login(&chat, "valice");
    for ch in [&a, &b] {
        chat.join(&alice, ch);
        chat.join(&bob, ch);
    }
    let view = |channel: &str, prev: &str| {
        let r = chat.call(
            "POST",
            "/api/v4/channels/members/me/view",
            Some(&alice),
            Some(&json!({"channel_id": channel, "prev_channel_id": prev})),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["status"], "OK");
        r.json["last_viewed_at_times"].clone()
    };
    let member = |channel: &str| {
        let r = chat.call(
            "GET",
            &format!("/api/v4/channels/{channel}/members/me"),
            Some(&alice),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text);
        r.json
    };
    // Waits until now_ms() has moved past `t`, so a write done now would store a later time.
    let after = |t: i64| {
        while std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            <= t + 1
        {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    };

    // Unread message from bob: the view writes (msg_count catches up, a new time).
    chat.post(&bob, &a, "first");
    let t1 = view(&a, "")[&a].as_i64().expect("time for a");
    let m = member(&a);
    assert_eq!(m["last_viewed_at"], t1);
    assert_eq!(m["msg_count"], 1);

    // Nothing new: the stored time is reported and kept (no write happened).
    after(t1);
    let again = view(&a, "");
    assert_eq!(again[&a], t1, "a caught-up view reports the stored time");
    assert_eq!(
        member(&a)["last_viewed_at"],
        t1,
        "a caught-up view writes nothing"
    );

    // A new message: written again, later time.
    chat.post(&bob, &a, "second");
    after(t1);
    let t2 = view(&a, "")[&a].as_i64().unwrap();
    assert!(t2 > t1, "{t2} > {t1}");
    assert_eq!(member(&a)["msg_count"], 2);

    // A mention in b while viewing a with prev_channel_id b: b is written (mention cleared),
    // a is caught up and keeps t2.
    chat.post(&bob, &b, "hello @valice");
    assert_eq!(member(&b)["mention_count"], 1);
    after(t2);
    let both = view(&a, &b);
    assert_eq!(both[&a], t2);
    let tb = both[&b].as_i64().expect("time for b");
    assert!(tb > t2, "{tb} > {t2}");
    let mb = member(&b);
    assert_eq!(
        (mb["mention_count"].clone(), mb["msg_count"].clone()),
        (json!(0), json!(1))
    );
    assert_eq!(mb["last_viewed_at"], tb);

    // A channel alice is not a member of (public, same team) is not in the answer.
    let c = chat.channel(&admin, &team, "view-c", "public");
    assert!(view(&c, "").get(&c).is_none());
});
