//! Rate limits and caps (spec shared/specs/rustchat.md §10 tests 4 and 15, CHAT-R23).

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use common::{Chat, Db};
use serde_json::json;

/// One HTTP/1.1 request from a chosen source address.
fn from_source(src: IpAddr, to: SocketAddr, raw: &str) -> test_support::Response {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::new(src, 0).into()).unwrap();
    sock.connect(&to.into()).unwrap();
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    test_support::read_response(&mut buf.as_slice(), false).unwrap()
}

fn login_raw(name: &str) -> String {
    let body = json!({"login": name, "password": "password-123"}).to_string();
    format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

// Test 4: RUSTCHAT_SECURITY_RATE_LIMIT_AUTH_PER_MINUTE=20 (and the `__` spelling): 20 logins
// from one IP pass, the 21st is 429.
#[test]
fn auth_limit_is_honoured_in_both_spellings() {
    for var in [
        "RUSTCHAT_SECURITY_RATE_LIMIT_AUTH_PER_MINUTE",
        "RUSTCHAT_SECURITY__RATE_LIMIT_AUTH_PER_MINUTE",
    ] {
        let chat = Chat::start(Db::Sqlite, &[(var, "20")]).unwrap();
        // Registration is an auth-class request too: one token spent here.
        chat.call(
            "POST",
            "/api/v1/auth/register",
            None,
            Some(&json!({"username": "lim", "email": "l@example.com", "password": "password-123"})),
        );
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut statuses = Vec::new();
        for _ in 0..20 {
            statuses.push(from_source(ip, chat.addr, &login_raw("lim")).status);
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            19,
            "{var}: {statuses:?}"
        );
        assert_eq!(
            statuses.last(),
            Some(&429),
            "{var}: the 21st auth request is refused"
        );
    }
}

// Test 15: the 11th login from 127.0.0.1 within a minute is 429 with the headers and a
// `Rate limit exceeded` line carrying a top-level "ip"; 127.0.0.2 is unaffected; the 31st
// WebSocket upgrade in a minute is 429.
#[test]
fn default_limits_refuse_the_11th_login_and_the_31st_upgrade_per_ip() {
    let chat = Chat::start(
        Db::Sqlite,
        &[("RUSTCHAT_SECURITY_RATE_LIMIT_ENABLED", "true")],
    )
    .unwrap();
    let a: IpAddr = "127.0.0.1".parse().unwrap();
    let b: IpAddr = "127.0.0.2".parse().unwrap();
    let reg = json!({"username": "rlx", "email": "rl@example.com", "password": "password-123"})
        .to_string();
    let raw = format!(
        "POST /api/v1/auth/register HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reg}",
        reg.len()
    );
    assert_eq!(from_source(b, chat.addr, &raw).status, 201);
    let mut last = None;
    for i in 1..=11 {
        let r = from_source(a, chat.addr, &login_raw("rlx"));
        if i <= 10 {
            assert_eq!(r.status, 200, "login {i}: {}", r.text());
            assert_eq!(r.header("x-ratelimit-limit"), Some("10"));
            assert_eq!(
                r.header("x-ratelimit-remaining"),
                Some(&*(10 - i).to_string())
            );
        }
        last = Some(r);
    }
    let r = last.unwrap();
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("x-ratelimit-limit"), Some("10"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert!(
        r.header("x-ratelimit-reset")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["code"], "rate_limited");
    // Another address has its own bucket.
    assert_eq!(from_source(b, chat.addr, &login_raw("rlx")).status, 200);
    let lines = chat.svc.drain_lines(Duration::from_millis(300));
    let warn = lines
        .iter()
        .find(|l| l.contains("\"message\":\"Rate limit exceeded\""))
        .expect("a Rate limit exceeded line");
    let v: serde_json::Value = serde_json::from_str(warn).unwrap();
    assert_eq!(v["ip"], "127.0.0.1");
    assert_eq!(v["level"], "WARN");
    let metrics = chat.call("GET", "/api/v1/health/metrics", None, None).text;
    assert!(
        test_support::sample_value(
            &metrics,
            r#"rustchat_rate_limit_hits_total{endpoint="auth",limit_type="ip"}"#
        ) >= 1.0
    );
    // WebSocket upgrades: 30 a minute per IP; the 31st is 429 before authentication.
    let token = {
        let r = from_source(b, chat.addr, &login_raw("rlx"));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["token"].as_str().unwrap().to_string()
    };
    let upgrade = format!(
        "GET /api/v1/ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    let mut codes = Vec::new();
    for _ in 0..31 {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.bind(&SocketAddr::new(a, 0).into()).unwrap();
        sock.connect(&chat.addr.into()).unwrap();
        let mut s: TcpStream = sock.into();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(upgrade.as_bytes()).unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        codes.push(String::from_utf8_lossy(&head[9..12]).to_string());
    }
    assert!(
        codes[..30].iter().all(|c| c == "101" || c == "429"),
        "{codes:?}"
    );
    assert_eq!(codes.last().map(String::as_str), Some("429"), "{codes:?}");
}

// CHAT-R23 webhook class: keyed by hook, RUSTCHAT_SECURITY_RATE_LIMIT_WEBHOOK_PER_MINUTE per
// minute; the next execution is 429 with the rate headers and counted with limit_type=hook.
#[test]
fn webhook_executions_are_limited_per_hook() {
    let chat = Chat::start(
        Db::Sqlite,
        &[
            ("RUSTCHAT_SECURITY_RATE_LIMIT_WEBHOOK_PER_MINUTE", "3"),
            ("RUSTCHAT_SECURITY_RATE_LIMIT_AUTH_PER_MINUTE", "1000"),
        ],
    )
    .unwrap();
    let (t, _) = chat.user("hooker");
    let team = chat.team(&t, "hooks");
    let ch = chat.channel(&t, &team, "hooked", "public");
    let mk = || {
        let r = chat.call(
            "POST",
            "/api/v1/hooks/incoming",
            Some(&t),
            Some(&json!({"channel_id": ch, "display_name": "h"})),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        format!(
            "/hooks/{}",
            r.json["url"].as_str().unwrap().rsplit('/').next().unwrap()
        )
    };
    let (h1, h2) = (mk(), mk());
    for i in 1..=3 {
        let r = chat.call_raw("POST", &h1, None, Some(r#"{"text":"x"}"#), &[]);
        assert_eq!(r.status, 200, "execution {i}");
        assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
    }
    let r = chat.call_raw("POST", &h1, None, Some(r#"{"text":"x"}"#), &[]);
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        chat.call_raw("POST", &h2, None, Some(r#"{"text":"x"}"#), &[])
            .status,
        200,
        "another hook has its own bucket"
    );
    assert!(
        chat.metric(r#"rustchat_rate_limit_hits_total{endpoint="webhook",limit_type="hook"}"#)
            >= 1.0
    );
}
