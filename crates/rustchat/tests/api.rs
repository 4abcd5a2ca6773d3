//! Native API acceptance tests (spec shared/specs/rustchat.md §10), each run on SQLite and
//! on PostgreSQL against the real binary.

mod common;

use common::{Chat, Db, JWT_SECRET};
use serde_json::json;

fn forge(claims: serde_json::Value, alg: jsonwebtoken::Algorithm, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn secret() -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(JWT_SECRET)
        .unwrap_or_else(|_| JWT_SECRET.as_bytes().to_vec())
}

// CHAT test 17 (R7, R21): register -> login -> me; logout -> the same JWT is 401; the first
// account is system_admin, the second a member.
both!(register_login_me_logout_and_first_user_is_admin, |db| {
    let Some(chat) = Chat::start(db, &[]) else {
        return;
    };
    let (alice, _) = chat.user("alice");
    let me = chat.call("GET", "/api/v1/auth/me", Some(&alice), None);
    assert_eq!(me.status, 200);
    assert_eq!(me.json["username"], "alice");
    assert_eq!(me.json["role"], "system_admin");
    assert_eq!(me.header("cache-control"), Some("no-store"));
    let (bob, _) = chat.user("bob");
    assert_eq!(
        chat.call("GET", "/api/v1/auth/me", Some(&bob), None).json["role"],
        "member"
    );
    let out = chat.call("POST", "/api/v1/auth/logout", Some(&alice), None);
    assert_eq!(out.status, 200);
    assert_eq!(out.json["status"], "ok");
    assert_eq!(
        chat.call("GET", "/api/v1/auth/me", Some(&alice), None)
            .status,
        401
    );
    // A taken name is 409; a bad password is 401 with the same body as an unknown user.
    let dup = chat.call(
        "POST",
        "/api/v1/auth/register",
        None,
        Some(&json!({"username":"alice","email":"x@example.com","password":"password-123"})),
    );
    assert_eq!(dup.status, 409, "{}", dup.text);
    let bad = chat.call(
        "POST",
        "/api/v1/auth/login",
        None,
        Some(&json!({"login":"alice","password":"wrong-password"})),
    );
    let unknown = chat.call(
        "POST",
        "/api/v1/auth/login",
        None,
        Some(&json!({"login":"nobody","password":"wrong-password"})),
    );
    assert_eq!((bad.status, unknown.status), (401, 401));
    assert_eq!(bad.json["message"], unknown.json["message"]);
});

// CHAT test 18 (R21): wrong iss, wrong aud, alg none, HS512, expired, unknown sid -> 401.
both!(forged_and_expired_jwts_are_refused, |db| {
    let Some(chat) = Chat::start(db, &[]) else {
        return;
    };
    let (good, uid) = chat.user("carol");
    let sid = {
        let r = chat.call("GET", "/api/v1/auth/sessions", Some(&good), None);
        r.json[0]["id"].as_str().unwrap().to_string()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = |iss: &str, aud: &str, sid: &str, exp: i64| json!({"iss": iss, "aud": aud, "sub": uid, "sid": sid, "iat": now, "exp": exp});
    let hs256 = jsonwebtoken::Algorithm::HS256;
    // Control: a token we forge correctly is accepted, so the refusals below are about the
    // one field each changes.
    let ok = forge(
        claims("rustchat", "rustchat", &sid, now + 600),
        hs256,
        &secret(),
    );
    assert_eq!(
        chat.call("GET", "/api/v1/auth/me", Some(&ok), None).status,
        200
    );
    let bad = [
        forge(
            claims("evil", "rustchat", &sid, now + 600),
            hs256,
            &secret(),
        ),
        forge(
            claims("rustchat", "evil", &sid, now + 600),
            hs256,
            &secret(),
        ),
        forge(
            claims("rustchat", "rustchat", &sid, now + 600),
            jsonwebtoken::Algorithm::HS512,
            &secret(),
        ),
        forge(
            claims("rustchat", "rustchat", &sid, now - 3600),
            hs256,
            &secret(),
        ),
        forge(
            claims(
                "rustchat",
                "rustchat",
                "ybndrfg8ejkmcpqxot1uwisza4",
                now + 600,
            ),
            hs256,
            &secret(),
        ),
        forge(
            claims("rustchat", "rustchat", &sid, now + 600),
            hs256,
            b"some-other-secret-some-other-secret!!",
        ),
        {
            use base64::Engine;
            let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!(
                "{}.{}.",
                b.encode(r#"{"alg":"none","typ":"JWT"}"#),
                b.encode(claims("rustchat", "rustchat", &sid, now + 600).to_string())
            )
        },
        "garbage".to_string(),
    ];
    for (i, t) in bad.iter().enumerate() {
        let r = chat.call("GET", "/api/v1/auth/me", Some(t), None);
        assert_eq!(r.status, 401, "token {i}: {}", r.text);
        assert_eq!(r.json["code"], "unauthorized");
        assert!(r.json["corr_id"].as_str().is_some_and(|c| !c.is_empty()));
    }
});

fn team_with(chat: &Chat, admin: &str, name: &str) -> String {
    let r = chat.call(
        "POST",
        "/api/v1/teams",
        Some(admin),
        Some(&json!({"name": name, "display_name": name})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

fn channel(chat: &Chat, tok: &str, team: &str, name: &str, kind: &str) -> String {
    let r = chat.call(
        "POST",
        &format!("/api/v1/teams/{team}/channels"),
        Some(tok),
        Some(&json!({"name": name, "display_name": name, "type": kind})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

// CHAT test 25 (R7, R24): teams, public/private channels, DM and GM; a non-member gets 404
// on a private channel.
both!(
    teams_channels_dm_gm_and_private_channels_hide_from_non_members,
    |db| {
        let Some(chat) = Chat::start(db, &[]) else {
            return;
        };
        let (a, _) = chat.user("anna");
        let (b, bid) = chat.user("bert");
        let (c, cid) = chat.user("cleo");
        let team = team_with(&chat, &a, "core");
        let add = chat.call(
            "POST",
            &format!("/api/v1/teams/{team}/members"),
            Some(&a),
            Some(&json!({"user_id": bid})),
        );
        assert_eq!(add.status, 201, "{}", add.text);
        let public = channel(&chat, &a, &team, "general-talk", "public");
        let private = channel(&chat, &a, &team, "secret-plans", "private");
        assert_eq!(
            chat.call("GET", &format!("/api/v1/channels/{public}"), Some(&b), None)
                .status,
            200
        );
        let hidden = chat.call(
            "GET",
            &format!("/api/v1/channels/{private}"),
            Some(&b),
            None,
        );
        assert_eq!(hidden.status, 404, "{}", hidden.text);
        assert_eq!(
            chat.call(
                "GET",
                &format!("/api/v1/channels/{private}/posts"),
                Some(&b),
                None
            )
            .status,
            404
        );
        // cleo is not in the team at all: even the public channel is invisible.
        assert_eq!(
            chat.call("GET", &format!("/api/v1/channels/{public}"), Some(&c), None)
                .status,
            404
        );
        // Joining the public channel makes it listed as bert's.
        assert_eq!(
            chat.call(
                "POST",
                &format!("/api/v1/channels/{public}/join"),
                Some(&b),
                None
            )
            .status,
            200
        );
        let mine = chat.call(
            "GET",
            &format!("/api/v1/teams/{team}/channels"),
            Some(&b),
            None,
        );
        let names: Vec<&str> = mine
            .json
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"general-talk")
                && names.contains(&"town-square")
                && !names.contains(&"secret-plans"),
            "{names:?}"
        );
        // DM: 201 new, 200 existing, same id; name is the sorted ids joined by "__".
        let dm1 = chat.call(
            "POST",
            "/api/v1/channels/direct",
            Some(&a),
            Some(&json!({"user_id": bid})),
        );
        let dm2 = chat.call(
            "POST",
            "/api/v1/channels/direct",
            Some(&b),
            Some(&json!({"user_id": dm1.json["creator_id"]})),
        );
        assert_eq!(
            (dm1.status, dm2.status),
            (201, 200),
            "{} {}",
            dm1.text,
            dm2.text
        );
        assert_eq!(dm1.json["id"], dm2.json["id"]);
        assert_eq!(dm1.json["type"], "direct");
        // GM needs 3-8 members.
        let gm = chat.call(
            "POST",
            "/api/v1/channels/group",
            Some(&a),
            Some(&json!({"user_ids": [bid, cid]})),
        );
        assert_eq!(gm.status, 201, "{}", gm.text);
        assert_eq!(gm.json["type"], "group");
        let small = chat.call(
            "POST",
            "/api/v1/channels/group",
            Some(&a),
            Some(&json!({"user_ids": [bid]})),
        );
        assert_eq!(small.status, 400);
        // Duplicate names conflict; bad names are validation errors naming the field.
        let dup = chat.call(
            "POST",
            &format!("/api/v1/teams/{team}/channels"),
            Some(&a),
            Some(&json!({"name": "general-talk", "display_name": "x", "type": "public"})),
        );
        assert_eq!(dup.status, 409);
        let bad = chat.call(
            "POST",
            &format!("/api/v1/teams/{team}/channels"),
            Some(&a),
            Some(&json!({"name": "Bad Name", "display_name": "x", "type": "public"})),
        );
        assert_eq!(
            (bad.status, bad.json["field"].as_str()),
            (400, Some("name"))
        );
    }
);

// CHAT tests 26 (idempotent client_msg_id), 27 (threads, reactions), 29 (unread and view).
both!(posts_threads_reactions_and_unread_counts, |db| {
    let Some(chat) = Chat::start(db, &[]) else {
        return;
    };
    let (a, _) = chat.user("dana");
    let (b, bid) = chat.user("eric");
    let team = team_with(&chat, &a, "ops");
    chat.call(
        "POST",
        &format!("/api/v1/teams/{team}/members"),
        Some(&a),
        Some(&json!({"user_id": bid})),
    );
    let ch = channel(&chat, &a, &team, "deploys", "public");
    assert_eq!(
        chat.call(
            "POST",
            &format!("/api/v1/channels/{ch}/join"),
            Some(&b),
            None
        )
        .status,
        200
    );
    let path = format!("/api/v1/channels/{ch}/posts");
    let p1 = chat.call(
        "POST",
        &path,
        Some(&a),
        Some(&json!({"message": "one @eric", "client_msg_id": "c-1"})),
    );
    assert_eq!(p1.status, 201, "{}", p1.text);
    let again = chat.call(
        "POST",
        &path,
        Some(&a),
        Some(&json!({"message": "one @eric", "client_msg_id": "c-1"})),
    );
    assert_eq!(again.status, 200);
    assert_eq!(again.json["id"], p1.json["id"]);
    chat.call("POST", &path, Some(&a), Some(&json!({"message": "two"})));
    chat.call(
        "POST",
        &path,
        Some(&a),
        Some(&json!({"message": "three @channel"})),
    );
    let unreads = chat.call(
        "GET",
        &format!("/api/v1/users/me/unreads?team_id={team}"),
        Some(&b),
        None,
    );
    let row = unreads
        .json
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["channel_id"] == ch.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (row["unread_count"].as_i64(), row["mention_count"].as_i64()),
        (Some(3), Some(2)),
        "{row}"
    );
    let viewed = chat.call(
        "POST",
        &format!("/api/v1/channels/{ch}/view"),
        Some(&b),
        None,
    );
    assert!(viewed.json["last_viewed_at"].as_i64().unwrap() > 0);
    let unreads = chat.call(
        "GET",
        &format!("/api/v1/users/me/unreads?team_id={team}"),
        Some(&b),
        None,
    );
    let row = unreads
        .json
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["channel_id"] == ch.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (row["unread_count"].as_i64(), row["mention_count"].as_i64()),
        (Some(0), Some(0))
    );
    // Listing: oldest first, exactly three posts, strictly increasing created_at.
    let list = chat.call("GET", &path, Some(&b), None);
    let posts = list.json["posts"].as_array().unwrap();
    assert_eq!(posts.len(), 3);
    assert!(
        posts
            .windows(2)
            .all(|w| w[0]["created_at"].as_i64() < w[1]["created_at"].as_i64())
    );
    // Threads: a reply counts on its root; a reply to a reply is 400.
    let root = p1.json["id"].as_str().unwrap();
    let reply = chat.call(
        "POST",
        &path,
        Some(&b),
        Some(&json!({"message": "re", "root_id": root})),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    let nested = chat.call(
        "POST",
        &path,
        Some(&b),
        Some(&json!({"message": "re re", "root_id": reply.json["id"]})),
    );
    assert_eq!(nested.status, 400);
    let thread = chat.call(
        "GET",
        &format!("/api/v1/posts/{root}/thread"),
        Some(&a),
        None,
    );
    assert_eq!(thread.json["root"]["reply_count"], 1);
    assert_eq!(thread.json["replies"].as_array().unwrap().len(), 1);
    // Reactions: idempotent add, the 51st distinct emoji is 400, removal works.
    let rpath = format!("/api/v1/posts/{root}/reactions");
    assert_eq!(
        chat.call("PUT", &format!("{rpath}/thumbsup"), Some(&b), None)
            .status,
        201
    );
    assert_eq!(
        chat.call("PUT", &format!("{rpath}/thumbsup"), Some(&b), None)
            .status,
        200
    );
    for i in 1..50 {
        assert_eq!(
            chat.call("PUT", &format!("{rpath}/e{i}"), Some(&a), None)
                .status,
            201
        );
    }
    let over = chat.call("PUT", &format!("{rpath}/one-too-many"), Some(&a), None);
    assert_eq!(over.status, 400, "{}", over.text);
    assert_eq!(
        chat.call("GET", &rpath, Some(&a), None)
            .json
            .as_array()
            .unwrap()
            .len(),
        50
    );
    assert_eq!(
        chat.call("DELETE", &format!("{rpath}/thumbsup"), Some(&b), None)
            .status,
        200
    );
    assert_eq!(
        chat.call("GET", &rpath, Some(&a), None)
            .json
            .as_array()
            .unwrap()
            .len(),
        49
    );
    // Edits by the author only; deletes hide the post.
    let pid = p1.json["id"].as_str().unwrap();
    assert_eq!(
        chat.call(
            "PATCH",
            &format!("/api/v1/posts/{pid}"),
            Some(&b),
            Some(&json!({"message": "x"}))
        )
        .status,
        403
    );
    let edited = chat.call(
        "PATCH",
        &format!("/api/v1/posts/{pid}"),
        Some(&a),
        Some(&json!({"message": "edited"})),
    );
    assert!(edited.json["edited_at"].as_i64().unwrap() > 0);
    assert_eq!(
        chat.call("DELETE", &format!("/api/v1/posts/{pid}"), Some(&b), None)
            .status,
        403
    );
    assert_eq!(
        chat.call("DELETE", &format!("/api/v1/posts/{pid}"), Some(&a), None)
            .status,
        200
    );
    assert_eq!(
        chat.call("GET", &format!("/api/v1/posts/{pid}"), Some(&a), None)
            .status,
        404
    );
});

// CHAT test 28 (R15): which texts mention alice, counted through her mention badge.
both!(mentions_are_tokenised_not_substrings, |db| {
    let Some(chat) = Chat::start(db, &[]) else {
        return;
    };
    let (a, _) = chat.user("alice");
    let (x, xid) = chat.user("alicex");
    let (b, bid) = chat.user("bob");
    let aid = chat.call("GET", "/api/v1/auth/me", Some(&a), None).json["id"]
        .as_str()
        .unwrap()
        .to_string();
    let team = team_with(&chat, &b, "mentions");
    for u in [&aid, &xid] {
        chat.call(
            "POST",
            &format!("/api/v1/teams/{team}/members"),
            Some(&b),
            Some(&json!({"user_id": u})),
        );
    }
    let ch = channel(&chat, &b, &team, "talk", "public");
    chat.call(
        "POST",
        &format!("/api/v1/channels/{ch}/join"),
        Some(&a),
        None,
    );
    chat.call(
        "POST",
        &format!("/api/v1/channels/{ch}/join"),
        Some(&x),
        None,
    );
    let path = format!("/api/v1/channels/{ch}/posts");
    let mentions = [
        "@alice hi",
        "(@alice)",
        "ping @alice.",
        "@ALICE",
        "@aliceさん",
    ];
    let not = [
        "bob@alice.com",
        "`@alice`",
        "```\n@alice\n```",
        "https://x.io/@alice",
    ];
    for m in mentions.iter().chain(not.iter()) {
        assert_eq!(
            chat.call("POST", &path, Some(&b), Some(&json!({"message": m})))
                .status,
            201
        );
    }
    let badge = |tok: &str| -> i64 {
        let r = chat.call(
            "GET",
            &format!("/api/v1/users/me/unreads?team_id={team}"),
            Some(tok),
            None,
        );
        r.json
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["channel_id"] == ch.as_str())
            .unwrap()["mention_count"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(badge(&a), mentions.len() as i64);
    // alicex is named only where "@alicex" appears, which is nowhere above.
    assert_eq!(badge(&x), 0);
    let _ = bid;
});

// CHAT test 36 (R30): SQL-injection strings in string fields and parameters give 2xx/4xx,
// never 500, and leave the row counts unchanged except for what was legitimately created.
both!(sql_injection_strings_are_data_not_sql, |db| {
    let Some(chat) = Chat::start(db, &[]) else {
        return;
    };
    let (a, _) = chat.user("mallory");
    let team = team_with(&chat, &a, "inj");
    let ch = channel(&chat, &a, &team, "inj-chan", "public");
    let corpus = [
        "' OR 1=1 --",
        "\"; DROP TABLE posts; --",
        "%_\\",
        "NEAR(",
        "\"",
        "*",
        "-",
        "AND OR NOT",
        "a\u{0}b",
    ];
    let path = format!("/api/v1/channels/{ch}/posts");
    let mut created = 0;
    for s in corpus {
        let r = chat.call("POST", &path, Some(&a), Some(&json!({"message": s})));
        assert!(r.status < 500, "{s:?}: {}", r.text);
        if r.status == 201 {
            created += 1;
            assert_eq!(r.json["message"], s);
        }
        for (m, p, body) in [
            (
                "POST",
                "/api/v1/auth/login".to_string(),
                Some(json!({"login": s, "password": s})),
            ),
            (
                "POST",
                format!("/api/v1/teams/{team}/channels"),
                Some(json!({"name": s, "display_name": s, "type": "public"})),
            ),
            (
                "GET",
                format!("/api/v1/channels/{}/posts", common::urlencode(s)),
                None,
            ),
            (
                "GET",
                format!("/api/v1/teams?scope={}", common::urlencode(s)),
                None,
            ),
            (
                "POST",
                "/api/v1/auth/register".to_string(),
                Some(json!({"username": s, "email": s, "password": s})),
            ),
        ] {
            let r = chat.call(m, &p, Some(&a), body.as_ref());
            assert!(
                r.status < 500 && r.status >= 200,
                "{m} {p} {s:?}: {} {}",
                r.status,
                r.text
            );
        }
    }
    let list = chat.call("GET", &format!("{path}?limit=200"), Some(&a), None);
    assert_eq!(list.json["posts"].as_array().unwrap().len(), created);
    let me = chat.call("GET", "/api/v1/auth/me", Some(&a), None);
    assert_eq!(me.status, 200);
    if db == Db::Postgres {
        assert_eq!(chat.pg_count("SELECT count(*) FROM users"), 1);
        assert_eq!(chat.pg_count("SELECT count(*) FROM posts"), created as i64);
    }
});

// CHAT R6: malformed JSON, wrong types, unknown fields, oversize bodies, bad ids.
both!(bad_input_gets_the_documented_4xx, |db| {
    let Some(chat) = Chat::start(db, &[]) else {
        return;
    };
    let (a, _) = chat.user("victor");
    let r = chat.call_raw("POST", "/api/v1/teams", Some(&a), Some("{not json"), &[]);
    assert_eq!(
        (r.status, r.json["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let r = chat.call(
        "POST",
        "/api/v1/teams",
        Some(&a),
        Some(&json!({"name": 5, "display_name": "x"})),
    );
    assert_eq!(
        (r.status, r.json["code"].as_str(), r.json["field"].as_str()),
        (400, Some("validation_failed"), Some("name"))
    );
    let r = chat.call(
        "POST",
        "/api/v1/teams",
        Some(&a),
        Some(&json!({"name": "ok-name", "display_name": "x", "colour": "red"})),
    );
    assert_eq!(r.status, 400);
    assert!(r.text.contains("colour"));
    let big = format!(
        "{{\"name\":\"x\",\"display_name\":\"{}\"}}",
        "y".repeat(70 * 1024)
    );
    assert_eq!(
        chat.call_raw("POST", "/api/v1/teams", Some(&a), Some(&big), &[])
            .status,
        413
    );
    assert_eq!(
        chat.call("GET", "/api/v1/channels/not-an-id", Some(&a), None)
            .status,
        400
    );
    assert_eq!(
        chat.call("GET", "/api/v1/no/such/route", Some(&a), None)
            .status,
        404
    );
    assert_eq!(
        chat.call("DELETE", "/api/v1/auth/me", Some(&a), None)
            .status,
        405
    );
    let long = "z".repeat(16_384);
    let team = team_with(&chat, &a, "limits");
    let ch = channel(&chat, &a, &team, "limits", "public");
    let r = chat.call(
        "POST",
        &format!("/api/v1/channels/{ch}/posts"),
        Some(&a),
        Some(&json!({"message": long})),
    );
    assert_eq!((r.status, r.json["field"].as_str()), (400, Some("message")));
    // The request id is echoed when well-formed and replaced when not.
    let r = chat.call_raw(
        "GET",
        "/api/v1/health/live",
        None,
        None,
        &["X-Request-Id: abc.DEF_1-2"],
    );
    assert_eq!(r.header("x-request-id"), Some("abc.DEF_1-2"));
    let r = chat.call_raw(
        "GET",
        "/api/v1/health/live",
        None,
        None,
        &["X-Request-Id: bad id!"],
    );
    assert_ne!(r.header("x-request-id"), Some("bad id!"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
});
