//! WebSocket acceptance tests (spec shared/specs/rustchat.md §10 tests 16, 19, 26, 29, 32,
//! 33, 42, 45, 48) against the real binary, on SQLite and PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::{Chat, Db};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(chat: &Chat, path: &str, token: Option<&str>) -> Result<Ws, WsError> {
    let mut req = format!("ws://{}{path}", chat.addr)
        .into_client_request()
        .unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// Next JSON text frame within `secs`, or None on timeout/close.
async fn next_json(ws: &mut Ws, secs: u64) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).ok(),
            Ok(Some(Ok(Message::Ping(_)))) | Ok(Some(Ok(Message::Pong(_)))) => continue,
            _ => return None,
        }
    }
}

/// Waits for an event named `name`, checking seq continuity on the way.
async fn wait_event(ws: &mut Ws, name: &str, last_seq: &mut i64, secs: u64) -> Option<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .as_secs()
            .max(1);
        let v = next_json(ws, left).await?;
        if let Some(seq) = v["seq"].as_i64() {
            assert_eq!(seq, *last_seq + 1, "seq skipped before {v}");
            *last_seq = seq;
        }
        if v["event"] == name {
            return Some(v);
        }
    }
    None
}

struct Fixture {
    chat: Chat,
    a: String,
    b: String,
    c: String,
    bid: String,
    channel: String,
}

fn fixture(db: Db) -> Option<Fixture> {
    let chat = Chat::start(db, &[])?;
    let (a, _) = chat.user("amy");
    let (b, bid) = chat.user("ben");
    let (c, _) = chat.user("cal");
    let team = chat.call(
        "POST",
        "/api/v1/teams",
        Some(&a),
        Some(&json!({"name": "rt", "display_name": "rt"})),
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
        &format!("/api/v1/teams/{team}/channels"),
        Some(&a),
        Some(&json!({"name": "live", "display_name": "live", "type": "private"})),
    );
    let channel = ch.json["id"].as_str().unwrap().to_string();
    let add = chat.call(
        "POST",
        &format!("/api/v1/channels/{channel}/members"),
        Some(&a),
        Some(&json!({"user_id": bid})),
    );
    assert_eq!(add.status, 201, "{}", add.text);
    Some(Fixture {
        chat,
        a,
        b,
        c,
        bid,
        channel,
    })
}

// Tests 26, 32, 29: posted reaches the other member and not a non-member; typing reaches the
// others, not the sender; a view sends channel_viewed to the viewer's other connection.
both!(
    posted_typing_and_viewed_reach_exactly_the_right_connections,
    |db| {
        let Some(f) = fixture(db) else { return };
        rt().block_on(async {
        let mut wa = connect(&f.chat, "/api/v1/ws", Some(&f.a)).await.unwrap();
        let mut wb = connect(&f.chat, "/api/v1/ws", Some(&f.b)).await.unwrap();
        let mut wb2 = connect(&f.chat, "/api/v1/ws", Some(&f.b)).await.unwrap();
        let mut wc = connect(&f.chat, "/api/v1/ws", Some(&f.c)).await.unwrap();
        let (mut sa, mut sb, mut sb2, mut sc) = (-1i64, -1i64, -1i64, -1i64);
        for (ws, s) in [(&mut wa, &mut sa), (&mut wb, &mut sb), (&mut wb2, &mut sb2), (&mut wc, &mut sc)] {
            let hello = wait_event(ws, "hello", s, 5).await.expect("hello");
            assert_eq!(hello["seq"], 0);
            assert!(hello["data"]["server_version"].as_str().unwrap().starts_with("10.11.10."));
        }
        let r = f.chat.call("POST", &format!("/api/v1/channels/{}/posts", f.channel), Some(&f.a), Some(&json!({"message": "hi @ben"})));
        assert_eq!(r.status, 201);
        let ev = wait_event(&mut wb, "posted", &mut sb, 5).await.expect("posted at ben");
        assert_eq!(ev["data"]["post"]["message"], "hi @ben");
        assert_eq!(ev["data"]["sender_name"], "@amy");
        assert_eq!(ev["data"]["channel_type"], "P");
        assert_eq!(ev["data"]["mentions"], json!([f.bid]));
        assert_eq!(ev["broadcast"]["channel_id"], f.channel.as_str());
        assert!(wait_event(&mut wa, "posted", &mut sa, 5).await.is_some(), "the author's own connection gets posted too");
        // typing: from amy to ben, never back to amy.
        wa.send(Message::Text(json!({"action": "user_typing", "seq": 1, "data": {"channel_id": f.channel, "parent_id": ""}}).to_string().into())).await.unwrap();
        let reply = next_json(&mut wa, 5).await.unwrap();
        assert_eq!((reply["status"].as_str(), reply["seq_reply"].as_i64()), (Some("OK"), Some(1)));
        let t = wait_event(&mut wb, "typing", &mut sb, 5).await.expect("typing at ben");
        assert_eq!(t["data"]["user_id"], f.chat.call("GET", "/api/v1/auth/me", Some(&f.a), None).json["id"]);
        // ben views on one connection; the other gets channel_viewed.
        f.chat.call("POST", &format!("/api/v1/channels/{}/view", f.channel), Some(&f.b), None);
        let v = wait_event(&mut wb2, "channel_viewed", &mut sb2, 5).await.expect("channel_viewed");
        assert_eq!(v["data"]["channel_id"], f.channel.as_str());
        // cal (not a member) saw none of it; amy saw no typing of her own.
        while let Some(v) = next_json(&mut wc, 1).await {
            assert!(!["posted", "typing"].contains(&v["event"].as_str().unwrap_or("")), "non-member got {v}");
        }
        while let Some(v) = next_json(&mut wa, 1).await {
            assert_ne!(v["event"], "typing", "sender got its own typing");
        }
        // Unknown actions fail with Mattermost's id; ping answers pong.
        wa.send(Message::Text(json!({"action": "nope", "seq": 2}).to_string().into())).await.unwrap();
        let r = next_json(&mut wa, 5).await.unwrap();
        assert_eq!(r["error"]["id"], "api.web_socket_router.bad_action.app_error");
        wa.send(Message::Text(json!({"action": "ping", "seq": 3}).to_string().into())).await.unwrap();
        assert_eq!(next_json(&mut wa, 5).await.unwrap()["data"]["text"], "pong");
    });
    }
);

// Test 16: the sixth WebSocket of one user on one node is 429 "Too many connections" and
// logged; unauthenticated upgrades are 401.
#[test]
fn sixth_connection_of_a_user_is_refused_with_429() {
    let f = fixture(Db::Sqlite).unwrap();
    rt().block_on(async {
        let mut open = Vec::new();
        for _ in 0..5 {
            open.push(
                connect(&f.chat, "/api/v1/ws", Some(&f.a))
                    .await
                    .expect("within the cap"),
            );
        }
        match connect(&f.chat, "/api/v1/ws", Some(&f.a)).await {
            Err(WsError::Http(resp)) => {
                assert_eq!(resp.status(), 429);
                let body =
                    String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).to_string();
                assert!(body.contains("Too many connections"), "{body}");
            }
            other => panic!("sixth connection: {:?}", other.map(|_| "connected")),
        }
        // Another user is unaffected.
        assert!(connect(&f.chat, "/api/v1/ws", Some(&f.b)).await.is_ok());
        match connect(&f.chat, "/api/v1/ws", None).await {
            Err(WsError::Http(resp)) => assert_eq!(resp.status(), 401),
            other => panic!("anonymous: {:?}", other.map(|_| "connected")),
        }
        drop(open);
    });
    let lines = f.chat.svc.drain_lines(Duration::from_millis(300));
    let warn: serde_json::Value = lines
        .iter()
        .find(|l| l.contains("\"message\":\"ws: Too many connections\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .expect("no WARN line");
    // Like every `ws …` line it sits in span ws_handler (the runbook's WebSocket-events query
    // selects `.span.name=="ws_handler"`), and as a cap hit it names the client ip at the top
    // level (CHAT-R27, R29); it once came from the request span without an ip.
    assert_eq!(warn["level"], "WARN", "{warn}");
    assert_eq!(warn["span"]["name"], "ws_handler", "{warn}");
    assert_eq!(warn["span"]["user_id"], warn["fields"]["user_id"], "{warn}");
    assert!(
        warn["span"]["conn_id"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{warn}"
    );
    assert_eq!(warn["span"]["api"], "v1", "{warn}");
    assert_eq!(warn["ip"], "127.0.0.1", "{warn}");
}

// Test 42: the v4 challenge answers OK then hello with seq 0; a bad token FAILs and closes
// with 1008.
#[test]
fn v4_authentication_challenge() {
    let f = fixture(Db::Sqlite).unwrap();
    rt().block_on(async {
        let mut ws = connect(&f.chat, "/api/v4/websocket", None).await.unwrap();
        ws.send(Message::Text(
            json!({"seq": 1, "action": "authentication_challenge", "data": {"token": f.a}})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        assert_eq!(
            next_json(&mut ws, 5).await.unwrap(),
            json!({"status": "OK", "seq_reply": 1})
        );
        let hello = next_json(&mut ws, 5).await.unwrap();
        assert_eq!(
            (hello["event"].as_str(), hello["seq"].as_i64()),
            (Some("hello"), Some(0))
        );
        // v4 dialect: posted.data.post is a JSON string.
        f.chat.call(
            "POST",
            &format!("/api/v1/channels/{}/posts", f.channel),
            Some(&f.b),
            Some(&json!({"message": "v4 hi"})),
        );
        let mut s = 0;
        let ev = wait_event(&mut ws, "posted", &mut s, 5).await.unwrap();
        let post: Value =
            serde_json::from_str(ev["data"]["post"].as_str().expect("string post")).unwrap();
        assert_eq!(post["message"], "v4 hi");
        assert!(post.get("create_at").is_some());

        let mut bad = connect(&f.chat, "/api/v4/websocket", None).await.unwrap();
        bad.send(Message::Text(
            json!({"seq": 1, "action": "authentication_challenge", "data": {"token": "nope"}})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        let r = next_json(&mut bad, 5).await.unwrap();
        assert_eq!(
            (r["status"].as_str(), r["seq_reply"].as_i64()),
            (Some("FAIL"), Some(1))
        );
        match tokio::time::timeout(Duration::from_secs(5), bad.next()).await {
            Ok(Some(Ok(Message::Close(Some(cf))))) => assert_eq!(u16::from(cf.code), 1008),
            other => panic!("expected close 1008, got {other:?}"),
        }
    });
}

// Test 19 (single node): logging out closes that session's WebSockets with 1008.
#[test]
fn logout_closes_the_sessions_websockets_with_1008() {
    let f = fixture(Db::Sqlite).unwrap();
    rt().block_on(async {
        let mut ws = connect(&f.chat, "/api/v1/ws", Some(&f.b)).await.unwrap();
        assert!(next_json(&mut ws, 5).await.is_some());
        assert_eq!(
            f.chat
                .call("POST", "/api/v1/auth/logout", Some(&f.b), None)
                .status,
            200
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, ws.next()).await {
                Ok(Some(Ok(Message::Close(Some(cf))))) => {
                    assert_eq!(u16::from(cf.code), 1008);
                    assert_eq!(cf.reason.as_str(), "session revoked");
                    break;
                }
                Ok(Some(Ok(_))) => continue,
                other => panic!("expected close 1008, got {other:?}"),
            }
        }
    });
}

/// The next status_change about `uid` (the watcher also hears about itself).
async fn ben_status(ws: &mut Ws, seq: &mut i64, uid: &str, secs: u64) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .as_secs()
            .max(1);
        let ev = wait_event(ws, "status_change", seq, left).await?;
        if ev["data"]["user_id"] == uid {
            return ev["data"]["status"].as_str().map(str::to_string);
        }
    }
    None
}

// Test 33: connect -> status_change online at a teammate; disconnect -> offline within 10 s;
// a manual dnd survives reconnects.
#[test]
fn presence_online_offline_and_sticky_dnd() {
    let f = fixture(Db::Sqlite).unwrap();
    rt().block_on(async {
        let mut watcher = connect(&f.chat, "/api/v1/ws", Some(&f.a)).await.unwrap();
        let mut s = -1;
        wait_event(&mut watcher, "hello", &mut s, 5).await.unwrap();
        let ben = connect(&f.chat, "/api/v1/ws", Some(&f.b)).await.unwrap();
        let ev = ben_status(&mut watcher, &mut s, &f.bid, 5).await;
        assert_eq!(ev.as_deref(), Some("online"));
        drop(ben);
        let ev = ben_status(&mut watcher, &mut s, &f.bid, 10).await;
        assert_eq!(ev.as_deref(), Some("offline"));
        let r = f.chat.call(
            "PUT",
            "/api/v1/users/me/status",
            Some(&f.b),
            Some(&json!({"status": "dnd"})),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        let ev = ben_status(&mut watcher, &mut s, &f.bid, 5).await;
        assert_eq!(ev.as_deref(), Some("dnd"));
        let _again = connect(&f.chat, "/api/v1/ws", Some(&f.b)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let st = f.chat.call(
            "GET",
            &format!("/api/v1/users/status?ids={}", f.bid),
            Some(&f.a),
            None,
        );
        assert_eq!(st.json[0]["status"], "dnd", "{}", st.text);
    });
}

// Test 45: a client that never reads is closed (1013, slow_client) while a healthy client in
// the same channel gets every post in order.
#[test]
fn a_stalled_reader_is_closed_and_a_healthy_one_gets_every_post_in_order() {
    let f = fixture(Db::Sqlite).unwrap();
    let rss = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    };
    let rss_before = rss(f.chat.svc.child.id());
    let before = f
        .chat
        .call("GET", "/api/v1/health/metrics", None, None)
        .text;
    rt().block_on(async {
        let mut healthy = connect(&f.chat, "/api/v1/ws", Some(&f.a)).await.unwrap();
        let stalled = connect(&f.chat, "/api/v1/ws", Some(&f.b)).await.unwrap();
        let mut s = -1;
        wait_event(&mut healthy, "hello", &mut s, 5).await.unwrap();
        // Big posts fill the stalled socket's buffers, then its queue (256 frames).
        let body = "x".repeat(16_000);
        let n = 1500;
        let addr = f.chat.addr;
        let (tok, ch) = (f.a.clone(), f.channel.clone());
        let poster = tokio::task::spawn_blocking(move || {
            for i in 0..n {
                let msg = json!({"message": format!("{i} {body}")}).to_string();
                let raw = format!(
                    "POST /api/v1/channels/{ch}/posts HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {tok}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{msg}",
                    msg.len()
                );
                let r = test_support::http_raw(addr, raw.as_bytes(), false).unwrap();
                assert_eq!(r.status, 201);
            }
        });
        let mut got = 0;
        while got < n {
            let v = wait_event(&mut healthy, "posted", &mut s, 30).await.expect("healthy client fell behind");
            let msg = v["data"]["post"]["message"].as_str().unwrap();
            assert!(msg.starts_with(&format!("{got} ")), "out of order: wanted {got}, got {}", &msg[..10]);
            got += 1;
        }
        poster.await.unwrap();
        drop(stalled);
    });
    let slow = |t: &str| {
        test_support::sample_value(
            t,
            r#"rustchat_websocket_disconnects_total{reason="slow_client"}"#,
        )
    };
    // The disconnect is counted when the connection's task ends, which can trail the 1013
    // decision by the close frame's bounded write on a loaded machine: wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let after = f
            .chat
            .call("GET", "/api/v1/health/metrics", None, None)
            .text;
        if slow(&after) - slow(&before).max(0.0) >= 1.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stalled client was not closed as slow"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Bounded queues: the stalled connection cannot make the server hoard its backlog.
    let grown = rss(f.chat.svc.child.id()).saturating_sub(rss_before);
    assert!(
        grown < 50 * 1024 * 1024,
        "server RSS grew {} MiB",
        grown / (1024 * 1024)
    );
}

// Test 48: SIGTERM -> /ready 503 at once, WebSocket clients get 1001, exit 0.
#[test]
fn sigterm_closes_websockets_with_1001_and_exits_0() {
    let f = fixture(Db::Sqlite).unwrap();
    let mut chat = f.chat;
    rt().block_on(async {
        let mut ws = connect(&chat, "/api/v1/ws", Some(&f.a)).await.unwrap();
        assert!(next_json(&mut ws, 5).await.is_some());
        chat.svc.signal(15);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, ws.next()).await {
                Ok(Some(Ok(Message::Close(Some(cf))))) => {
                    assert_eq!(u16::from(cf.code), 1001);
                    break;
                }
                Ok(Some(Ok(_))) => continue,
                other => panic!("expected close 1001, got {other:?}"),
            }
        }
    });
    assert_eq!(chat.svc.wait_exit(Duration::from_secs(35)), Some(0));
    let _ = &mut chat;
}

// Test 16, second half (R4): the runbook's SQL raises the per-user cap to 10 and, within one
// refresh period and without a restart, the sixth connection succeeds.
#[test]
fn runbook_sql_raises_the_per_user_cap_without_restart() {
    let Some(url) = common::pg_url() else { return };
    let db = url.rsplit('/').next().unwrap().to_string();
    let chat = Chat::start_in(
        test_support::temp_dir("rustchat-cap"),
        Db::Postgres,
        Some(url),
        &[("RUSTCHAT_SERVER_CONFIG_REFRESH_SECONDS", "1")],
    );
    let (t, _) = chat.user("capped");
    rt().block_on(async {
        let mut open = Vec::new();
        for _ in 0..5 {
            open.push(connect(&chat, "/api/v1/ws", Some(&t)).await.unwrap());
        }
        assert!(matches!(connect(&chat, "/api/v1/ws", Some(&t)).await, Err(WsError::Http(r)) if r.status() == 429));
        test_support::PgServer::shared().unwrap().psql(
            &db,
            "UPDATE server_config SET site = jsonb_set(site, '{max_simultaneous_connections}', '10') WHERE id = 'default'",
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match connect(&chat, "/api/v1/ws", Some(&t)).await {
                Ok(ws) => {
                    open.push(ws);
                    break;
                }
                Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(e) => panic!("cap not raised: {e}"),
            }
        }
        assert_eq!(open.len(), 6);
    });
    let cfg = chat.call("GET", "/api/v1/admin/config", Some(&t), None);
    assert_eq!(
        cfg.json["site"]["max_simultaneous_connections"], 10,
        "{}",
        cfg.text
    );
    // An invalid value keeps the previous one and is logged.
    let bad = chat.call(
        "PATCH",
        "/api/v1/admin/config",
        Some(&t),
        Some(&json!({"site": {"max_simultaneous_connections": 0}})),
    );
    assert_eq!(
        (bad.status, bad.json["field"].as_str()),
        (400, Some("site.max_simultaneous_connections"))
    );
}

// Test 28, the presence-dependent part: `@here` mentions only members online now; every DM
// post is a mention for the other member.
both!(
    here_mentions_online_members_and_dm_posts_always_mention,
    |db| {
        let Some(f) = fixture(db) else { return };
        // cal joins the team and the channel but stays offline; ben connects.
        let cal_id = f.chat.call("GET", "/api/v1/auth/me", Some(&f.c), None).json["id"]
            .as_str()
            .unwrap()
            .to_string();
        let team = f.chat.call("GET", "/api/v1/teams", Some(&f.a), None).json[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        f.chat.call(
            "POST",
            &format!("/api/v1/teams/{team}/members"),
            Some(&f.a),
            Some(&json!({"user_id": cal_id})),
        );
        let add = f.chat.call(
            "POST",
            &format!("/api/v1/channels/{}/members", f.channel),
            Some(&f.a),
            Some(&json!({"user_id": cal_id})),
        );
        assert_eq!(add.status, 201);
        let badge = |tok: &str, ch: &str| -> i64 {
            let r = f
                .chat
                .call("GET", "/api/v1/users/me/unreads", Some(tok), None);
            r.json
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["channel_id"] == ch)
                .unwrap()["mention_count"]
                .as_i64()
                .unwrap()
        };
        rt().block_on(async {
            let mut ben = connect(&f.chat, "/api/v1/ws", Some(&f.b)).await.unwrap();
            assert!(next_json(&mut ben, 5).await.is_some());
            let r = f.chat.call(
                "POST",
                &format!("/api/v1/channels/{}/posts", f.channel),
                Some(&f.a),
                Some(&json!({"message": "@here standup"})),
            );
            assert_eq!(r.status, 201);
        });
        assert_eq!(
            badge(&f.b, &f.channel),
            1,
            "online member mentioned by @here"
        );
        assert_eq!(
            badge(&f.c, &f.channel),
            0,
            "offline member not mentioned by @here"
        );
        let dm = f.chat.call(
            "POST",
            "/api/v1/channels/direct",
            Some(&f.a),
            Some(&json!({"user_id": cal_id})),
        );
        let dm = dm.json["id"].as_str().unwrap().to_string();
        f.chat.call(
            "POST",
            &format!("/api/v1/channels/{dm}/posts"),
            Some(&f.a),
            Some(&json!({"message": "plain words"})),
        );
        assert_eq!(badge(&f.c, &dm), 1, "a DM post is a mention");
        assert_eq!(badge(&f.a, &dm), 0, "never the author");
    }
);

// The per-socket read buffer starts small (WS_READ_BUFFER_BYTES, 4 KiB; spec §8 P3), so a
// frame many times that size must still be read whole, up to the 64 KiB inbound limit;
// one past the limit closes with 1009.
#[test]
fn inbound_frames_bigger_than_the_read_buffer_are_read_whole_up_to_the_limit() {
    let f = fixture(Db::Sqlite).unwrap();
    rt().block_on(async {
        let mut ws = connect(&f.chat, "/api/v1/ws", Some(&f.a)).await.unwrap();
        let mut seq = -1i64;
        wait_event(&mut ws, "hello", &mut seq, 5)
            .await
            .expect("hello");
        let frame = |n: i64, pad: usize| {
            json!({"action": "ping", "seq": n, "data": {"pad": "x".repeat(pad)}}).to_string()
        };
        for (n, pad) in [(1, 3 * 1024), (2, 20 * 1024), (3, 60 * 1024)] {
            ws.send(Message::Text(frame(n, pad).into())).await.unwrap();
            let r = loop {
                let v = next_json(&mut ws, 5).await.expect("pong");
                if v.get("seq_reply").is_some() {
                    break v;
                }
            };
            assert_eq!(
                (
                    r["status"].as_str(),
                    r["seq_reply"].as_i64(),
                    r["data"]["text"].as_str()
                ),
                (Some("OK"), Some(n), Some("pong")),
                "{pad}-byte pad: {r}"
            );
        }
        ws.send(Message::Text(frame(4, 65 * 1024).into()))
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let code = loop {
            match tokio::time::timeout_at(deadline, ws.next()).await {
                Ok(Some(Ok(Message::Close(Some(c))))) => break Some(u16::from(c.code)),
                Ok(Some(Ok(Message::Close(None)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => {
                    break None;
                }
                Ok(Some(Ok(_))) => continue,
            }
        };
        assert_eq!(code, Some(1009));
    });
}
