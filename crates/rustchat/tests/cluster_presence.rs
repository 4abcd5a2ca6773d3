//! Cluster halves of acceptance tests 33 and 16 (spec §4.9 CHAT-R20, §4.12 CHAT-R23, §2.4
//! CHAT-R4, §4.8 CHAT-R19): two rustchat processes on one real PostgreSQL and one real Redis.
//!
//! Presence: `/stats.active_users` on node B counts a user connected only to node A; a user
//! connected on both nodes who leaves one stays online at a teammate, and leaving the other
//! too turns them offline within 10 s, announced once; closing on both nodes at once is
//! also announced once; a manual `dnd` sticks across nodes; a SIGKILLed node's users are taken offline by the survivor's
//! sweeper; `@here` posted on one node mentions members online on another. The nodes run with the test-only `RUSTCHAT_TEST_PRESENCE_TIMING` (refresh 1 s,
//! lifetime 3 s, sweep 1 s) instead of 20/60/15 s so the crash case takes seconds, not
//! minutes.
//!
//! Caps and `config_changed`: the per-user WebSocket cap is counted per node, and a PATCH
//! of `site.max_simultaneous_connections` on node A changes node B's cap at once although
//! B re-reads `server_config` only hourly.

mod common;

use std::time::{Duration, Instant};

use common::{Chat, Db};
use futures_util::StreamExt;
use serde_json::{Value, json};
use test_support::RedisServer;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const KEY: &str = "cluster-test-encryption-key-0123456789abcdef";
/// refresh 1 s, lifetime 3 s, sweep 1 s (test-only; production is 20 s, 60 s, 15 s).
const FAST_PRESENCE: &str = "1000,3000,1000";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn node(dir: &str, url: &str, redis: &str, id: &str, extra: &[(&str, &str)]) -> Chat {
    let mut env = vec![
        ("RUSTCHAT_REDIS_URL", redis),
        ("RUSTCHAT_CLUSTER_NODE_ID", id),
        ("RUSTCHAT_CLUSTER_HEARTBEAT_INTERVAL_SECONDS", "1"),
        ("RUSTCHAT_ENCRYPTION_KEY", KEY),
    ];
    env.extend_from_slice(extra);
    Chat::start_in(
        test_support::temp_dir(dir),
        Db::Postgres,
        Some(url.to_string()),
        &env,
    )
}

async fn try_connect(chat: &Chat, token: &str) -> Result<Ws, WsError> {
    let mut req = format!("ws://{}/api/v1/ws", chat.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

async fn connect(chat: &Chat, token: &str) -> Ws {
    try_connect(chat, token).await.expect("websocket upgrade")
}

/// The next `status_change` about `uid` within `secs`.
async fn next_status(ws: &mut Ws, uid: &str, secs: u64) -> Option<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, ws.next()).await else {
            return None;
        };
        let Message::Text(t) = m else { continue };
        let Ok(v) = serde_json::from_str::<Value>(&t) else {
            continue;
        };
        if v["event"] == "status_change" && v["data"]["user_id"] == uid {
            return v["data"]["status"].as_str().map(str::to_string);
        }
    }
}

/// Every `status_change` about `uid` during the next `secs`.
async fn statuses_during(ws: &mut Ws, uid: &str, secs: u64) -> Vec<String> {
    let until = Instant::now() + Duration::from_secs(secs);
    let mut got = Vec::new();
    while Instant::now() < until {
        let left = until.saturating_duration_since(Instant::now()).as_secs();
        match next_status(ws, uid, left.max(1)).await {
            Some(s) => got.push(s),
            None => break,
        }
    }
    got
}

fn wait(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let d = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < d {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn stats(chat: &Chat) -> Value {
    chat.call("GET", "/api/v1/health/stats", None, None).json
}

fn status_of(chat: &Chat, token: &str, uid: &str) -> Value {
    let r = chat.call(
        "GET",
        &format!("/api/v1/users/status?ids={uid}"),
        Some(token),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.json[0]["status"].clone()
}

async fn close(mut ws: Ws) {
    let _ = ws.close(None).await;
    // Read until the server's close arrives so the server has seen the close.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

// Test 33, cluster half (CHAT-R20).
#[test]
fn presence_is_cluster_wide_and_each_transition_is_announced_once() {
    let (Some(url), Some(redis)) = (common::pg_url(), RedisServer::start()) else {
        return;
    };
    let timing = [("RUSTCHAT_TEST_PRESENCE_TIMING", FAST_PRESENCE)];
    let mut a = node("presence-a", &url, &redis.url(), "pres-a", &timing);
    let b = node("presence-b", &url, &redis.url(), "pres-b", &timing);
    let (amy, amy_id) = b.user("amy");
    let (ben, ben_id) = b.user("ben");
    let team = b.team(&amy, "pres");
    b.add_to_team(&amy, &team, &ben_id);
    let room = b.channel(&amy, &team, "room", "public");
    b.join(&ben, &room);
    wait("both nodes see each other", 15, || {
        stats(&a)["cluster_nodes"] == 2 && stats(&b)["cluster_nodes"] == 2
    });
    let mentions = |chat: &Chat| -> i64 {
        let r = chat.call("GET", "/api/v1/users/me/unreads", Some(&ben), None);
        r.json
            .as_array()
            .and_then(|a| a.iter().find(|u| u["channel_id"] == room.as_str()))
            .and_then(|u| u["mention_count"].as_i64())
            .unwrap_or_else(|| panic!("no unread row for the room: {}", r.text))
    };

    rt().block_on(async {
        // amy watches from node B; ben connects to node A only.
        let mut watcher = connect(&b, &amy).await;
        assert_eq!(
            next_status(&mut watcher, &amy_id, 10).await.as_deref(),
            Some("online")
        );
        let ben_a = connect(&a, &ben).await;
        assert_eq!(
            next_status(&mut watcher, &ben_id, 10).await.as_deref(),
            Some("online"),
            "ben's online on A reaches amy on B"
        );
        // B counts ben although he is connected only to A (amy makes two).
        wait("cluster-wide active_users on B", 15, || {
            stats(&b)["active_users"] == 2 && b.metric("rustchat_active_users") == 2.0
        });
        assert_eq!(stats(&b)["websocket_connections"], 1, "B's own sockets");
        assert_eq!(status_of(&b, &amy, &ben_id), "online", "REST on B");
        // Test 28 in a cluster: `@here` posted on B mentions ben, online on A only.
        b.post(&amy, &room, "@here standup");
        assert_eq!(mentions(&a), 1, "@here counts users online on other nodes");

        // A second connection on B is not a new `online`; leaving A keeps ben online.
        let ben_b = connect(&b, &ben).await;
        close(ben_a).await;
        let seen = statuses_during(&mut watcher, &ben_id, 8).await;
        assert!(seen.is_empty(), "ben stays online: {seen:?}");
        assert_eq!(status_of(&a, &amy, &ben_id), "online", "REST on A");

        // Leaving B too: offline within 10 s, exactly once.
        close(ben_b).await;
        assert_eq!(
            next_status(&mut watcher, &ben_id, 10).await.as_deref(),
            Some("offline")
        );
        let again = statuses_during(&mut watcher, &ben_id, 4).await;
        assert!(again.is_empty(), "one offline per transition: {again:?}");
        assert_eq!(status_of(&a, &amy, &ben_id), "offline");

        // Connecting and closing on both nodes at once: one online, one offline.
        let (x, y) = tokio::join!(connect(&a, &ben), connect(&b, &ben));
        let seen = statuses_during(&mut watcher, &ben_id, 3).await;
        assert_eq!(seen, ["online"], "one online for two first connections");
        tokio::join!(close(x), close(y));
        let seen = statuses_during(&mut watcher, &ben_id, 12).await;
        assert_eq!(seen, ["offline"], "one offline for two last closes");

        // A manual status sticks in the cluster too: no automatic online or offline.
        let set = |status: &str| {
            let r = b.call(
                "PUT",
                "/api/v1/users/me/status",
                Some(&ben),
                Some(&json!({ "status": status })),
            );
            assert_eq!(r.status, 200, "{}", r.text);
        };
        set("dnd");
        assert_eq!(
            next_status(&mut watcher, &ben_id, 10).await.as_deref(),
            Some("dnd")
        );
        let x = connect(&a, &ben).await;
        let seen = statuses_during(&mut watcher, &ben_id, 3).await;
        assert!(seen.is_empty(), "dnd sticks on connect: {seen:?}");
        close(x).await;
        let seen = statuses_during(&mut watcher, &ben_id, 8).await;
        assert!(seen.is_empty(), "dnd sticks on disconnect: {seen:?}");
        assert_eq!(status_of(&a, &amy, &ben_id), "dnd");
        set("online");
        assert_eq!(
            next_status(&mut watcher, &ben_id, 10).await.as_deref(),
            Some("offline"),
            "back to automatic while connected nowhere"
        );

        // A node dies with ben's only connection: B's sweeper takes him offline.
        let _ben_a = connect(&a, &ben).await;
        assert_eq!(
            next_status(&mut watcher, &ben_id, 10).await.as_deref(),
            Some("online")
        );
        a.svc.child.kill().expect("SIGKILL node A");
        let _ = a.svc.child.wait();
        assert_eq!(
            next_status(&mut watcher, &ben_id, 30).await.as_deref(),
            Some("offline"),
            "the surviving node's sweeper announces offline"
        );
        wait("active_users back to amy alone", 15, || {
            stats(&b)["active_users"] == 1
        });
    });
    assert_eq!(
        redis.cli(&["ZSCORE", "rustchat:presence:online", &ben_id]),
        "",
        "ben left the online set"
    );
    assert_ne!(
        redis.cli(&["ZSCORE", "rustchat:presence:online", &amy_id]),
        "",
        "amy is still in it"
    );
}

// Test 16, cluster half (CHAT-R23, R4, R19): the per-user cap is per node, and an admin
// change on A reaches B through `config_changed` long before B's hourly refresh.
#[test]
fn per_user_cap_counts_per_node_and_config_changed_reaches_every_node() {
    let (Some(url), Some(redis)) = (common::pg_url(), RedisServer::start()) else {
        return;
    };
    let slow_refresh = [("RUSTCHAT_SERVER_CONFIG_REFRESH_SECONDS", "3600")];
    let a = node("cap-a", &url, &redis.url(), "cap-a", &slow_refresh);
    let b = node("cap-b", &url, &redis.url(), "cap-b", &slow_refresh);
    let (admin, _) = a.user("root");
    let (cat, _) = a.user("cat");
    wait("both nodes see each other", 15, || {
        stats(&a)["cluster_nodes"] == 2 && stats(&b)["cluster_nodes"] == 2
    });

    rt().block_on(async {
        let mut open = Vec::new();
        for chat in [&a, &b] {
            for _ in 0..5 {
                open.push(connect(chat, &cat).await);
            }
            assert!(
                matches!(try_connect(chat, &cat).await, Err(WsError::Http(r)) if r.status() == 429),
                "sixth connection on one node"
            );
        }
        let patch = a.call(
            "PATCH",
            "/api/v1/admin/config",
            Some(&admin),
            Some(&json!({"site": {"max_simultaneous_connections": 6}})),
        );
        assert_eq!(patch.status, 200, "{}", patch.text);
        open.push(connect(&a, &cat).await);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match try_connect(&b, &cat).await {
                Ok(ws) => {
                    open.push(ws);
                    break;
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("node B did not pick up the new cap: {e}"),
            }
        }
        assert_eq!(open.len(), 12);
        assert!(
            matches!(try_connect(&b, &cat).await, Err(WsError::Http(r)) if r.status() == 429),
            "the new cap holds on B"
        );
    });
    assert!(
        a.metric(r#"rustchat_cluster_messages_total{direction="published",kind="config_changed"}"#)
            >= 1.0
    );
    assert!(
        b.metric(r#"rustchat_cluster_messages_total{direction="received",kind="config_changed"}"#)
            >= 1.0
    );
    let lines = b.svc.drain_lines(Duration::from_millis(200));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("ws: Too many connections") && l.contains("\"scope\":\"user\"")),
        "B logs its cap hits"
    );
}
