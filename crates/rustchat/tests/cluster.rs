//! Cluster mode (spec §4.8, CHAT-R19): two rustchat processes on one real PostgreSQL and one
//! real Redis. Test 46: a post on node A reaches a WebSocket client on node B, both
//! `rustchat:cluster:*` channels exist, each node logs `cluster heartbeat`, `/stats` counts
//! both nodes. Test 12 (Redis half): with Redis stopped, `/ready` stays 200 with
//! `checks.redis.status = "degraded"` and a `redis` warning, and same-node delivery works;
//! after Redis returns, cross-node delivery resumes. Test 10 (Redis half) and §4.8: the
//! `redis` breaker shows in `/stats`, opens while Redis is stopped (counted in
//! `rustchat_circuit_breaker_state_changes_total`, logged as `circuit breaker state
//! changed`) and closes after it returns; meanwhile `active_users` falls back to the
//! node-local count.

mod common;

use std::time::{Duration, Instant};

use common::{Chat, Db};
use futures_util::StreamExt;
use serde_json::{Value, json};
use test_support::RedisServer;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const KEY: &str = "cluster-test-encryption-key-0123456789abcdef";

async fn connect(chat: &Chat, token: &str) -> Ws {
    let mut req = format!("ws://{}/api/v1/ws", chat.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let mut ws = tokio_tungstenite::connect_async(req).await.unwrap().0;
    // The server registers the connection before it sends `hello`: events published from
    // now on reach it.
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("\"event\":\"hello\"") => return ws,
            Ok(Some(Ok(_))) => continue,
            other => panic!("no hello: {other:?}"),
        }
    }
}

/// Waits up to `secs` for an event named `name` whose post message is `message`.
async fn wait_posted(ws: &mut Ws, message: &str, secs: u64) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, ws.next()).await else {
            return false;
        };
        let Message::Text(t) = m else { continue };
        let Ok(v) = serde_json::from_str::<Value>(&t) else {
            continue;
        };
        if v["event"] == "posted" && t.contains(message) {
            return true;
        }
    }
}

/// The close code the server sends within `secs`, if any.
async fn wait_close(ws: &mut Ws, secs: u64) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Close(f)))) => return f.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

fn wait(what: &str, secs: u64, f: impl Fn() -> bool) {
    let d = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < d {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

fn node(dir: &str, url: &str, redis: &str, id: &str) -> Chat {
    Chat::start_in(
        test_support::temp_dir(dir),
        Db::Postgres,
        Some(url.to_string()),
        &[
            ("RUSTCHAT_REDIS_URL", redis),
            ("RUSTCHAT_CLUSTER_NODE_ID", id),
            ("RUSTCHAT_CLUSTER_HEARTBEAT_INTERVAL_SECONDS", "1"),
            ("RUSTCHAT_ENCRYPTION_KEY", KEY),
        ],
    )
}

#[test]
fn two_nodes_share_events_heartbeats_and_survive_a_redis_outage() {
    let (Some(url), Some(redis)) = (common::pg_url(), RedisServer::start()) else {
        return;
    };
    let a = node("cluster-a", &url, &redis.url(), "node-a");
    let b = node("cluster-b", &url, &redis.url(), "node-b");

    let (amy, _) = a.user("amy");
    let (ben, ben_id) = a.user("ben");
    let team = a.team(&amy, "cl");
    a.add_to_team(&amy, &team, &ben_id);
    let channel = a.channel(&amy, &team, "live", "public");
    b.join(&ben, &channel);

    // Both channels exist once both nodes subscribed and published.
    wait("both rustchat:cluster channels", 10, || {
        let ch = redis.cli(&["PUBSUB", "CHANNELS", "rustchat:*"]);
        ch.contains("rustchat:cluster:ws:broadcast") && ch.contains("rustchat:cluster:heartbeat")
    });
    wait("/stats counts both nodes", 10, || {
        a.call("GET", "/api/v1/health/stats", Some(&amy), None).json["cluster_nodes"] == 2
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // A post on A reaches ben's WebSocket on B.
        let mut on_b = connect(&b, &ben).await;
        let mut on_a = connect(&a, &ben).await;
        a.post(&amy, &channel, "hello from node a");
        assert!(
            wait_posted(&mut on_b, "hello from node a", 10).await,
            "node B's client got node A's post"
        );
        assert!(wait_posted(&mut on_a, "hello from node a", 10).await);

        // Cluster-wide active_users on B: ben (both nodes) and amy (A only).
        assert_eq!(
            a.call("GET", "/api/v1/health/stats", None, None).json["circuit_breakers"]["redis"],
            "closed"
        );
        let _amy_on_a = connect(&a, &amy).await;
        wait("cluster-wide active_users on B", 15, || {
            b.call("GET", "/api/v1/health/stats", None, None).json["active_users"] == 2
        });

        // Redis down: A stays ready with a redis warning; same-node delivery continues.
        redis.stop();
        wait("redis breaker open on A", 20, || {
            a.call("GET", "/api/v1/health/stats", None, None).json["circuit_breakers"]["redis"]
                == "open"
        });
        assert!(
            a.metric(
                r#"rustchat_circuit_breaker_state_changes_total{breaker="redis",from="closed",to="open"}"#
            ) >= 1.0
        );
        wait("node-local active_users on B", 15, || {
            b.call("GET", "/api/v1/health/stats", None, None).json["active_users"] == 1
        });
        wait("redis degraded on A", 15, || {
            let r = a.call("GET", "/api/v1/health/ready", None, None);
            r.status == 200
                && r.json["checks"]["redis"]["status"] == "degraded"
                && r.json["warnings"] == json!(["redis"])
        });
        a.post(&amy, &channel, "local while redis is down");
        assert!(
            wait_posted(&mut on_a, "local while redis is down", 10).await,
            "same-node delivery without Redis"
        );

        // Redis back: the bus reconnects and cross-node delivery resumes.
        redis.restart();
        wait("redis ok on B", 30, || {
            b.call("GET", "/api/v1/health/ready", None, None).json["checks"]["redis"]["status"]
                == "ok"
        });
        wait("redis ok on A", 30, || {
            a.call("GET", "/api/v1/health/ready", None, None).json["checks"]["redis"]["status"]
                == "ok"
        });
        for (name, chat) in [("A", &a), ("B", &b)] {
            wait(&format!("redis breaker closed on {name}"), 30, || {
                chat.call("GET", "/api/v1/health/stats", None, None).json["circuit_breakers"]
                    ["redis"]
                    == "closed"
            });
        }
        // Test 47: after the gap both nodes close their sockets with 1012 so clients resync.
        assert_eq!(
            wait_close(&mut on_a, 40).await,
            Some(1012),
            "A resyncs its clients"
        );
        assert_eq!(
            wait_close(&mut on_b, 40).await,
            Some(1012),
            "B resyncs its clients"
        );
        let mut on_b = connect(&b, &ben).await;
        a.post(&amy, &channel, "after the outage");
        assert!(
            wait_posted(&mut on_b, "after the outage", 10).await,
            "cross-node delivery resumed"
        );
        // REST on B shows every post, including the one made while Redis was away.
        let posts = b.call(
            "GET",
            &format!("/api/v1/channels/{channel}/posts"),
            Some(&ben),
            None,
        );
        assert_eq!(posts.status, 200, "{}", posts.text);
        for m in [
            "hello from node a",
            "local while redis is down",
            "after the outage",
        ] {
            assert!(posts.text.contains(m), "{m} missing: {}", posts.text);
        }

        // Test 19: a logout on A closes that session's WebSocket on B with 1008, and B no
        // longer accepts the token (its session cache entry is gone too).
        let me_on_b = b.call("GET", "/api/v1/auth/me", Some(&ben), None);
        assert_eq!(me_on_b.status, 200, "cached on B: {}", me_on_b.text);
        let out = a.call("POST", "/api/v1/auth/logout", Some(&ben), None);
        assert!(out.status < 300, "{}", out.text);
        let code = wait_close(&mut on_b, 10).await;
        assert_eq!(code, Some(1008), "B closed the revoked session's socket");
        assert_eq!(
            b.call("GET", "/api/v1/auth/me", Some(&ben), None).status,
            401
        );
    });

    for chat in [&a, &b] {
        let lines = chat.svc.drain_lines(Duration::from_millis(200));
        let beats = lines
            .iter()
            .filter(|l| l.contains("\"message\":\"cluster heartbeat\""))
            .count();
        assert!(beats >= 2, "{beats} heartbeat lines");
        // A's breaker was seen open above (B's may not have failed often enough).
        if std::ptr::eq(chat, &a) {
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("circuit breaker state changed")
                        && l.contains("\"breaker\":\"redis\"")),
                "redis breaker transitions are logged"
            );
        }
    }
    assert!(
        a.metric(r#"rustchat_cluster_messages_total{direction="published",kind="event"}"#) >= 1.0
    );
    assert!(
        b.metric(r#"rustchat_cluster_messages_total{direction="received",kind="event"}"#) >= 1.0
    );
}
