//! Browser-facing defences and containment (spec shared/specs/rustchat.md §10 test 38,
//! CHAT-R29, R30).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Chat, Db};
use serde_json::json;

fn cookies(set_cookie: &[&str]) -> (String, String) {
    let get = |name: &str| {
        set_cookie
            .iter()
            .find_map(|c| c.strip_prefix(&format!("{name}=")))
            .map(|v| v.split(';').next().unwrap().to_string())
            .unwrap_or_else(|| panic!("no {name} cookie in {set_cookie:?}"))
    };
    (get("rustchat_session"), get("rustchat_csrf"))
}

fn upgrade_status(chat: &Chat, cookie: &str, origin: &str) -> String {
    let mut s = TcpStream::connect(chat.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "GET /api/v1/ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: {cookie}\r\nOrigin: {origin}\r\n\r\n",
        chat.addr
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    String::from_utf8_lossy(&head[9..12]).to_string()
}

// Test 38 (R30): a cookie-authenticated POST without X-CSRF-Token is 403 (with it, it
// works); a cookie WebSocket upgrade with a foreign Origin is 403 (same origin: 101). The
// session cookie is HttpOnly and SameSite=Lax.
#[test]
fn cookie_sessions_need_csrf_tokens_and_same_origin_websockets() {
    let chat = Chat::start(Db::Sqlite, &[]).unwrap();
    chat.user("cookie");
    let r = chat.call(
        "POST",
        "/api/v1/auth/login",
        None,
        Some(&json!({"login": "cookie", "password": "password-123", "cookie": true})),
    );
    assert_eq!(r.status, 200);
    let set: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.as_str())
        .collect();
    let session_line = set
        .iter()
        .find(|c| c.starts_with("rustchat_session="))
        .unwrap();
    assert!(
        session_line.contains("HttpOnly") && session_line.contains("SameSite=Lax"),
        "{session_line}"
    );
    let (session, csrf) = cookies(&set);
    let cookie = format!("Cookie: rustchat_session={session}; rustchat_csrf={csrf}");
    let me = chat.call_raw("GET", "/api/v1/auth/me", None, None, &[&cookie]);
    assert_eq!(me.status, 200, "cookie auth for a safe method");
    let body = json!({"name": "csrf-team", "display_name": "x"}).to_string();
    let no_token = chat.call_raw("POST", "/api/v1/teams", None, Some(&body), &[&cookie]);
    assert_eq!(no_token.status, 403, "{}", no_token.text);
    let wrong = chat.call_raw(
        "POST",
        "/api/v1/teams",
        None,
        Some(&body),
        &[&cookie, "X-CSRF-Token: not-it"],
    );
    assert_eq!(wrong.status, 403);
    let header = format!("X-CSRF-Token: {csrf}");
    let ok = chat.call_raw(
        "POST",
        "/api/v1/teams",
        None,
        Some(&body),
        &[&cookie, &header],
    );
    assert_eq!(ok.status, 201, "{}", ok.text);
    let cookie_value = format!("rustchat_session={session}; rustchat_csrf={csrf}");
    assert_eq!(
        upgrade_status(&chat, &cookie_value, "http://evil.example"),
        "403"
    );
    assert_eq!(
        upgrade_status(&chat, &cookie_value, &format!("http://{}", chat.addr)),
        "101"
    );
}

// CHAT-R29: a handler panic answers 500 JSON for that request only and is logged with the
// correlation id; the process keeps serving.
#[test]
fn a_handler_panic_is_a_500_for_that_request_only() {
    let chat = Chat::start(Db::Sqlite, &[("RUSTCHAT_TEST_PANIC_ROUTE", "1")]).unwrap();
    let r = chat.call_raw(
        "GET",
        "/api/v1/__test/panic",
        None,
        None,
        &["X-Request-Id: panic-1"],
    );
    assert_eq!(r.status, 500);
    assert_eq!(r.json["code"], "internal");
    assert_eq!(r.json["corr_id"], "panic-1");
    assert_eq!(
        chat.call("GET", "/api/v1/health/live", None, None).status,
        200
    );
    let lines = chat.svc.drain_lines(Duration::from_millis(300));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"message\":\"handler panicked\"")
                && l.contains("\"corr_id\":\"panic-1\"")),
        "no ERROR line with the corr_id"
    );
}

// CHAT-R30: CORS is off unless origins are configured; a listed origin gets the allow and
// expose headers and its preflight is answered; others get nothing.
#[test]
fn cors_only_for_configured_origins() {
    let chat = Chat::start(
        Db::Sqlite,
        &[(
            "RUSTCHAT_SECURITY_CORS_ALLOWED_ORIGINS",
            "http://app.example",
        )],
    )
    .unwrap();
    let pre = chat.call_raw(
        "OPTIONS",
        "/api/v1/auth/me",
        None,
        None,
        &[
            "Origin: http://app.example",
            "Access-Control-Request-Method: GET",
            "Access-Control-Request-Headers: authorization",
        ],
    );
    assert_eq!(pre.status, 204);
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("http://app.example")
    );
    assert!(
        pre.header("access-control-allow-headers")
            .unwrap()
            .contains("X-CSRF-Token")
    );
    let get = chat.call_raw(
        "GET",
        "/api/v1/health/live",
        None,
        None,
        &["Origin: http://app.example"],
    );
    assert_eq!(
        get.header("access-control-allow-origin"),
        Some("http://app.example")
    );
    assert!(
        get.header("access-control-expose-headers")
            .unwrap()
            .contains("X-Request-Id")
    );
    let other = chat.call_raw(
        "GET",
        "/api/v1/health/live",
        None,
        None,
        &["Origin: http://evil.example"],
    );
    assert!(other.header("access-control-allow-origin").is_none());
    let off = Chat::start(Db::Sqlite, &[]).unwrap();
    let r = off.call_raw(
        "GET",
        "/api/v1/health/live",
        None,
        None,
        &["Origin: http://app.example"],
    );
    assert!(
        r.header("access-control-allow-origin").is_none(),
        "CORS must be off by default"
    );
}

// CHAT-R6: HSTS in production with an https site_url, never in development.
#[test]
fn hsts_only_in_production_with_an_https_site() {
    let prod = Chat::start(
        Db::Sqlite,
        &[
            ("RUSTCHAT_ENVIRONMENT", "production"),
            (
                "RUSTCHAT_ENCRYPTION_KEY",
                "ZW5jcnlwdGlvbi1rZXktZm9yLXRlc3RzLW9ubHktcmFuZG9tLWJ5dGVzLVFXRVJUWVVJT1A=",
            ),
            ("RUSTCHAT_SITE_URL", "https://chat.example.com"),
        ],
    )
    .unwrap();
    let r = prod.call("GET", "/api/v1/health/live", None, None);
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    let dev = Chat::start(Db::Sqlite, &[]).unwrap();
    assert!(
        dev.call("GET", "/api/v1/health/live", None, None)
            .header("strict-transport-security")
            .is_none()
    );
}

// CHAT-R27: with log.slow_query_ms=0 every store call logs `slow query` with numeric
// latency_ms and the statement group in `op`.
#[test]
fn slow_queries_are_logged_with_their_op() {
    let chat = Chat::start(Db::Sqlite, &[("RUSTCHAT_LOG__SLOW_QUERY_MS", "0")]).unwrap();
    chat.user("slowpoke");
    let lines = chat.svc.drain_lines(Duration::from_millis(300));
    let slow: Vec<serde_json::Value> = lines
        .iter()
        .filter(|l| l.contains("\"message\":\"slow query\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        slow.iter().any(|v| v["fields"]["op"] == "create_user"),
        "{slow:?}"
    );
    assert!(slow.iter().all(|v| v["fields"]["latency_ms"].is_u64()));
}
