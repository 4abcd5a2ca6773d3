//! PostgreSQL outages (spec shared/specs/rustchat.md §10 tests 11 and 43, CHAT-R29) against
//! a private PostgreSQL server the test stops and restarts.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Chat, Db};
use serde_json::{Value, json};
use test_support::PgServer;

fn wait_ready_status(chat: &Chat, want: u16, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let r = chat.call("GET", "/api/v1/health/ready", None, None);
        if r.status == want {
            if want == 503 {
                assert!(r.header("retry-after").is_some(), "503 without Retry-After");
            }
            return r.json;
        }
        assert!(
            Instant::now() < deadline,
            "/ready did not become {want} in {within:?}: {}",
            r.text
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// Tests 11 and 43: stop PostgreSQL under a 20 posts/s stream. /ready turns 503 naming
// `database` (same body shape), failed posts are 503 JSON, the breaker opens; PostgreSQL back
// -> /ready 200 within 10 s, and every 201-acknowledged post exists exactly once.
#[test]
fn postgres_outage_is_503_json_and_loses_no_acknowledged_post() {
    let Some(pg) = PgServer::start_private() else {
        return;
    };
    let url = pg.fresh_database();
    let db = url.rsplit('/').next().unwrap().to_string();
    let chat = Chat::start_in(
        test_support::temp_dir("rustchat-outage"),
        Db::Postgres,
        Some(url),
        &[("RUSTCHAT_DB_POOL_ACQUIRE_TIMEOUT_MS", "500")],
    );
    let (t, _) = chat.user("steady");
    let team = chat.call(
        "POST",
        "/api/v1/teams",
        Some(&t),
        Some(&json!({"name": "ops", "display_name": "ops"})),
    );
    let team = team.json["id"].as_str().unwrap().to_string();
    let ch = chat
        .call(
            "GET",
            &format!("/api/v1/teams/{team}/channels"),
            Some(&t),
            None,
        )
        .json[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let (addr, tok, path, stop2) = (
        chat.addr,
        t.clone(),
        format!("/api/v1/channels/{ch}/posts"),
        stop.clone(),
    );
    // 20 posts/s; every post carries its own client_msg_id so a retry could never duplicate.
    let stream = std::thread::spawn(move || {
        let mut acked: Vec<String> = Vec::new();
        let mut failures: HashMap<(u16, String), u32> = HashMap::new();
        let mut i = 0u32;
        while !stop2.load(Ordering::Relaxed) {
            let body =
                json!({"message": format!("m{i}"), "client_msg_id": format!("c{i}")}).to_string();
            let raw = format!(
                "POST {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {tok}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            match test_support::http_raw(addr, raw.as_bytes(), false) {
                Ok(r) if r.status == 201 => {
                    let v: Value = serde_json::from_slice(&r.body).unwrap();
                    acked.push(v["id"].as_str().unwrap().to_string());
                }
                Ok(r) => {
                    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                    *failures
                        .entry((
                            r.status,
                            v["code"].as_str().unwrap_or("not json").to_string(),
                        ))
                        .or_default() += 1;
                }
                Err(e) => *failures.entry((0, e.to_string())).or_default() += 1,
            }
            i += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        (acked, failures)
    });
    std::thread::sleep(Duration::from_secs(1));
    pg.stop();
    let body = wait_ready_status(&chat, 503, Duration::from_secs(10));
    assert_eq!(body["missing"], json!(["database"]));
    assert_eq!(body["checks"]["database"]["status"], "down");
    for key in [
        "status",
        "degraded",
        "missing",
        "retry_after",
        "since",
        "warnings",
        "checks",
    ] {
        assert!(body.get(key).is_some(), "{key} missing from the 503 body");
    }
    std::thread::sleep(Duration::from_secs(3));
    let stats = chat.call("GET", "/api/v1/health/stats", None, None);
    assert_eq!(
        stats.json["circuit_breakers"]["database"], "open",
        "{}",
        stats.text
    );
    pg.restart();
    let back = Instant::now();
    wait_ready_status(&chat, 200, Duration::from_secs(10));
    assert!(back.elapsed() <= Duration::from_secs(10));
    // The open breaker probes again after its 2 s window; then posts flow.
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::Relaxed);
    let (acked, failures) = stream.join().unwrap();
    assert!(!failures.is_empty(), "the outage produced no failed post");
    for ((status, code), n) in &failures {
        assert!(
            *status == 503 && (code == "db_unavailable" || code == "unavailable"),
            "{n} failures were {status} {code}"
        );
    }
    assert!(acked.len() > 20, "only {} posts acknowledged", acked.len());
    let metrics = chat.call("GET", "/api/v1/health/metrics", None, None).text;
    assert!(
        test_support::sample_value(
            &metrics,
            r#"rustchat_circuit_breaker_state_changes_total{breaker="database",from="closed",to="open"}"#
        ) >= 1.0,
        "breaker transition not counted"
    );
    // Exactly once each, straight from the database.
    for id in &acked {
        let n = pg.psql(
            &db,
            &format!("SELECT count(*) FROM posts WHERE id = '{id}'"),
        );
        assert_eq!(n, "1", "post {id} stored {n} times");
    }
}

// Decision 14 (R12): with PostgreSQL down at start the process keeps retrying (live 200,
// ready 503 naming database, ERROR `database unreachable`) and serves once it is up.
#[test]
fn starting_with_postgres_down_waits_for_it() {
    let Some(pg) = PgServer::start_private() else {
        return;
    };
    let url = pg.fresh_database();
    pg.stop();
    let chat = {
        let dir = test_support::temp_dir("rustchat-late-db");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
            .to_string();
        let mut cmd = test_support::command(
            &common::bin(),
            &[
                ("RUSTCHAT_HOST", "127.0.0.1"),
                ("RUSTCHAT_PORT", &port),
                ("RUSTCHAT_DATABASE_URL", &url),
                ("RUSTCHAT_JWT_SECRET", common::JWT_SECRET),
            ],
        );
        cmd.current_dir(&dir);
        let (svc, seen) = test_support::Service::start(cmd, "rustchat listening", 1);
        let addr = test_support::json_field(&seen[0], "bound_addr")
            .unwrap()
            .parse()
            .unwrap();
        (svc, addr)
    };
    let (svc, addr): (test_support::Service, std::net::SocketAddr) = chat;
    let get = |p: &str| test_support::get(addr, p, &[]);
    assert_eq!(get("/api/v1/health/live").status, 200);
    let r = get("/api/v1/health/ready");
    assert_eq!(r.status, 503);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(
        v["missing"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "database"),
        "{v}"
    );
    // Other routes answer 503 until the database is there.
    assert_eq!(get("/api/v1/auth/me").status, 503);
    let lines = svc.drain_lines(Duration::from_secs(5));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"message\":\"database unreachable\"")
                && l.contains("\"level\":\"ERROR\""))
    );
    pg.restart();
    let deadline = Instant::now() + Duration::from_secs(40);
    while get("/api/v1/health/ready").status != 200 {
        assert!(
            Instant::now() < deadline,
            "never became ready after PostgreSQL came up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(svc);
}
