//! OIDC login, black-box (spec shared/specs/rustchat.md CHAT-R22; acceptance tests 21-24):
//! the real binary against two identity providers started by the test from
//! `tests/oidc/`: node-oidc-provider (`real.mjs`, a genuine provider) and a jose-based one
//! (`fake.mjs`) that issues bad ID tokens or plays dead on demand. A small cookie-jar
//! "browser" follows the redirects the way a browser would.
//!
//! Needs `node` and `tests/oidc/node_modules` (scripts/test.sh runs `npm ci`); skips
//! without them unless RON_REQUIRE_EXTERNAL_TOOLS is set. The Redis-mode test also needs
//! PostgreSQL and redis-server.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Chat, Db};
use serde_json::{Value, json};
use test_support::{RedisServer, Response, Service, http_raw, json_field, temp_dir};

const CLIENT_SECRET: &str = "oidc-test-client-secret-3f9a8b7c6d5e";

fn harness_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// `node` with the harness packages installed, or None after a skip notice.
fn node() -> Option<PathBuf> {
    let node = test_support::external("node")?;
    let pkg = harness_dir().join("node_modules/oidc-provider/package.json");
    if !pkg.is_file() {
        assert!(
            !test_support::external_tools_required(),
            "{} is missing; run `npm ci --prefix crates/rustchat/tests/oidc` (scripts/test.sh does)",
            pkg.display()
        );
        eprintln!("skipping: tests/oidc/node_modules not installed");
        return None;
    }
    Some(node)
}

/// A running identity provider.
struct Idp {
    // Held for its lifetime: dropping it kills the provider.
    _svc: Service,
    issuer: String,
}

impl Idp {
    fn start(node: &Path, script: &str, redirect_uri: &str) -> Idp {
        let mut cmd = std::process::Command::new(node);
        cmd.arg(harness_dir().join(script))
            .current_dir(harness_dir())
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env("REDIRECT_URI", redirect_uri)
            .stdin(std::process::Stdio::null());
        let (svc, seen) = Service::start(cmd, "idp ready", 1);
        let issuer = json_field(&seen[0], "issuer").expect("issuer");
        Idp { _svc: svc, issuer }
    }

    fn addr(&self) -> SocketAddr {
        self.issuer
            .trim_start_matches("http://")
            .parse()
            .expect("issuer address")
    }

    fn control(&self, path: &str, body: Option<&Value>) -> String {
        let raw = match body {
            Some(b) => {
                let b = b.to_string();
                format!(
                    "POST {path} HTTP/1.1\r\nHost: idp\r\nConnection: close\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
                    b.len()
                )
            }
            None => test_support::request("GET", path, &[]),
        };
        http_raw(self.addr(), raw.as_bytes(), false)
            .expect("idp control")
            .text()
    }

    fn mode(&self, mode: &str) {
        assert_eq!(
            self.control("/_test/mode", Some(&json!({"mode": mode}))),
            "ok"
        );
    }

    fn requests(&self) -> u64 {
        self.control("/_test/requests", None)
            .trim()
            .parse()
            .expect("request count")
    }
}

/// A free loopback port for rustchat, chosen before start because the redirect URI (and
/// so `site_url`) must be known to the provider first.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

struct Setup {
    chat: Chat,
    idp: Idp,
    base: String,
}

/// Starts a provider (`script`) and rustchat configured with it as provider `name`.
fn setup(
    node: &Path,
    script: &str,
    name: &str,
    db: Db,
    db_url: Option<String>,
    extra: &[(&str, &str)],
) -> Setup {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let redirect = format!("{base}/api/v1/oauth2/{name}/callback");
    let idp = Idp::start(node, script, &redirect);
    let upper = name.to_uppercase();
    let keys = [
        format!("RUSTCHAT_OAUTH__PROVIDERS__{upper}__ISSUER_URL"),
        format!("RUSTCHAT_OAUTH__PROVIDERS__{upper}__CLIENT_ID"),
        format!("RUSTCHAT_OAUTH__PROVIDERS__{upper}__CLIENT_SECRET"),
        format!("RUSTCHAT_OAUTH__PROVIDERS__{upper}__DISPLAY_NAME"),
    ];
    let port_s = port.to_string();
    let mut env: Vec<(&str, &str)> = vec![
        ("RUSTCHAT_PORT", &port_s),
        ("RUSTCHAT_SITE_URL", &base),
        (&keys[0], &idp.issuer),
        (&keys[1], "rustchat"),
        (&keys[2], CLIENT_SECRET),
        (&keys[3], "Test IdP"),
    ];
    env.extend_from_slice(extra);
    let chat = Chat::start_in(temp_dir("rustchat-oidc"), db, db_url, &env);
    Setup { chat, idp, base }
}

/// A cookie jar per origin that follows the flow the way a browser would.
#[derive(Default)]
struct Browser {
    jar: BTreeMap<String, BTreeMap<String, String>>,
    html: bool,
}

fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest.to_string(), "/".to_string()),
    }
}

impl Browser {
    fn send(&mut self, method: &str, url: &str) -> Response {
        let (authority, path) = split_url(url);
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
        head.push_str(if self.html {
            "Accept: text/html,application/xhtml+xml\r\n"
        } else {
            "Accept: application/json\r\n"
        });
        if let Some(c) = self.jar.get(&authority).filter(|c| !c.is_empty()) {
            let line: Vec<String> = c.iter().map(|(k, v)| format!("{k}={v}")).collect();
            head.push_str(&format!("Cookie: {}\r\n", line.join("; ")));
        }
        if method == "POST" {
            head.push_str("Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
        } else {
            head.push_str("\r\n");
        }
        let addr: SocketAddr = authority.parse().expect("loopback authority");
        let resp = http_raw(addr, head.as_bytes(), false).expect("request");
        let cookies = self.jar.entry(authority).or_default();
        for (k, v) in &resp.headers {
            if k != "set-cookie" {
                continue;
            }
            let first = v.split(';').next().unwrap_or("");
            if let Some((name, value)) = first.split_once('=') {
                let expired = v.to_ascii_lowercase().contains("max-age=0");
                if value.is_empty() || expired {
                    cookies.remove(name.trim());
                } else {
                    cookies.insert(name.trim().to_string(), value.to_string());
                }
            }
        }
        resp
    }

    /// Copies the cookies of one origin to another (two nodes behind one site name).
    fn share_cookies(&mut self, from: &str, to: &str) {
        let (a, b) = (split_url(from).0, split_url(to).0);
        let cookies = self.jar.get(&a).cloned().unwrap_or_default();
        self.jar.entry(b).or_default().extend(cookies);
    }

    fn cookie(&self, base: &str, name: &str) -> Option<String> {
        let (authority, _) = split_url(base);
        self.jar.get(&authority)?.get(name).cloned()
    }

    /// GET `login_url` on rustchat, then follow the provider's redirects until it sends
    /// the browser back to rustchat; returns the Location of that last hop (the callback
    /// URL) without requesting it.
    fn follow_to_callback(&mut self, base: &str, login_path: &str) -> String {
        let r = self.send("GET", &format!("{base}{login_path}"));
        assert_eq!(r.status, 302, "login: {}", r.text());
        let mut loc = r.header("location").expect("location").to_string();
        for _ in 0..12 {
            if loc.starts_with(base) {
                return loc;
            }
            let r = self.send("GET", &loc);
            assert!(
                (300..400).contains(&r.status),
                "provider step {loc} answered {}: {}",
                r.status,
                r.text()
            );
            let next = r.header("location").expect("provider location");
            loc = if next.starts_with("http") {
                next.to_string()
            } else {
                let (authority, _) = split_url(&loc);
                format!("http://{authority}{next}")
            };
        }
        panic!("the provider never redirected back to rustchat");
    }
}

fn query_param(url: &str, key: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

fn set_cookie<'a>(r: &'a Response, name: &str) -> &'a str {
    r.headers
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.starts_with(&format!("{name}=")))
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no Set-Cookie {name}: {:?}", r.headers))
}

/// Lines the server logged so far (non-blocking beyond `wait`).
fn logged(chat: &Chat, wait: Duration) -> Vec<String> {
    chat.svc.drain_lines(wait)
}

/// One complete login through `login_path`; returns the exchange response.
fn full_login(b: &mut Browser, s: &Setup, login_path: &str) -> Response {
    let cb = b.follow_to_callback(&s.base, login_path);
    let r = b.send("GET", &cb);
    assert_eq!(r.status, 302, "callback: {}", r.text());
    b.send("POST", &format!("{}/api/v1/oauth2/exchange", s.base))
}

/// Test 21: authorization code + PKCE S256 + state + nonce against node-oidc-provider;
/// HttpOnly SameSite=Lax cookies; no token or code in any URL rustchat sends the browser to.
#[test]
fn t21_code_flow_against_a_real_provider() {
    let Some(node) = node() else { return };
    let s = setup(&node, "real.mjs", "test", Db::Sqlite, None, &[]);
    let list = s.chat.call("GET", "/api/v1/oauth2/providers", None, None);
    assert_eq!(list.status, 200);
    assert_eq!(
        list.json,
        json!([{"name": "test", "display_name": "Test IdP", "login_url": "/api/v1/oauth2/test/login"}])
    );

    let mut b = Browser::default();
    let r = b.send(
        "GET",
        &format!("{}/api/v1/oauth2/test/login?redirect=/channels/x", s.base),
    );
    assert_eq!(r.status, 302);
    let auth = r.header("location").unwrap().to_string();
    assert!(auth.starts_with(&s.idp.issuer), "{auth}");
    assert_eq!(
        query_param(&auth, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(query_param(&auth, "response_type").as_deref(), Some("code"));
    for p in ["state", "nonce", "code_challenge"] {
        assert!(
            query_param(&auth, p).is_some_and(|v| v.len() >= 43),
            "{p} in {auth}"
        );
    }
    let state_cookie = set_cookie(&r, "rustchat_oauth_state");
    for attr in [
        "HttpOnly",
        "SameSite=Lax",
        "Max-Age=300",
        "Path=/api/v1/oauth2/",
    ] {
        assert!(state_cookie.contains(attr), "{state_cookie}");
    }
    assert_eq!(
        b.cookie(&s.base, "rustchat_oauth_state"),
        query_param(&auth, "state")
    );

    // Follow the provider (login and consent interactions) back to the callback.
    let mut loc = auth.clone();
    while !loc.starts_with(&s.base) {
        let r = b.send("GET", &loc);
        assert!(
            (300..400).contains(&r.status),
            "{loc}: {} {}",
            r.status,
            r.text()
        );
        let next = r.header("location").unwrap();
        loc = if next.starts_with("http") {
            next.to_string()
        } else {
            format!("{}{next}", s.idp.issuer)
        };
    }
    assert!(query_param(&loc, "code").is_some());
    let r = b.send("GET", &loc);
    assert_eq!(r.status, 302, "callback: {}", r.text());
    let complete = r.header("location").unwrap();
    assert_eq!(complete, "/login/complete?next=%2Fchannels%2Fx");
    let code_cookie = set_cookie(&r, "rustchat_oauth_code");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/api/v1/oauth2/exchange"] {
        assert!(code_cookie.contains(attr), "{code_cookie}");
    }
    let code = b
        .cookie(&s.base, "rustchat_oauth_code")
        .expect("code cookie");
    assert!(
        !complete.contains(&code),
        "the exchange code must not be in a URL"
    );
    assert!(
        b.cookie(&s.base, "rustchat_oauth_state").is_none(),
        "state cookie cleared"
    );

    let r = b.send("POST", &format!("{}/api/v1/oauth2/exchange", s.base));
    assert_eq!(r.status, 200, "exchange: {}", r.text());
    let user: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(user["username"], "alice");
    assert_eq!(user["redirect"], "/channels/x");
    let session = set_cookie(&r, "rustchat_session");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    assert!(
        r.header("location").is_none(),
        "the exchange answers, it does not redirect"
    );
    let token = b.cookie(&s.base, "rustchat_session").unwrap();
    let me = s.chat.call("GET", "/api/v1/auth/me", Some(&token), None);
    assert_eq!(me.status, 200);
    assert_eq!(me.json["id"], user["id"]);
    let sessions = s
        .chat
        .call("GET", "/api/v1/auth/sessions", Some(&token), None);
    assert_eq!(sessions.json[0]["kind"], "oidc");

    // The exchange code is single-use.
    let again = s.chat.call_raw(
        "POST",
        "/api/v1/oauth2/exchange",
        None,
        Some("{}"),
        &[&format!("Cookie: rustchat_oauth_code={code}")],
    );
    assert_eq!(again.status, 400, "{}", again.text);

    // A second login with the same subject lands on the same account.
    let mut b2 = Browser::default();
    let r = full_login(&mut b2, &s, "/api/v1/oauth2/test/login");
    assert_eq!(r.status, 200, "{}", r.text());
    let again: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(again["id"], user["id"]);

    // Another subject with a colliding preferred_username gets a deduplicated name.
    s.idp.control(
        "/_test/account",
        Some(&json!({"sub": "sub-alice-2", "email": "alice2@example.com"})),
    );
    let r = full_login(&mut Browser::default(), &s, "/api/v1/oauth2/test/login");
    assert_eq!(r.status, 200, "{}", r.text());
    let second: Value = serde_json::from_slice(&r.body).unwrap();
    assert_ne!(second["id"], user["id"]);
    assert_eq!(second["username"], "alice2");
    assert_eq!(
        s.chat
            .metric(r#"rustchat_auth_attempts_total{method="oidc",result="success"}"#),
        3.0
    );
    let lines = logged(&s.chat, Duration::from_millis(300));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("auth: OAuth provider enabled")
                && l.contains("/api/v1/oauth2/test/callback")),
        "the start log names the redirect URI"
    );
}

/// Test 21 (Redis mode): states and codes live under `rustchat:oauth:state:*` (TTL ≤ 300)
/// and `rustchat:oauth:code:*` (TTL ≤ 60) while the flow is under way, then are gone.
#[test]
fn t21_redis_keys_and_ttls_during_the_flow() {
    let Some(node) = node() else { return };
    let Some(url) = common::pg_url() else { return };
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let redis_url = redis.url();
    let s = setup(
        &node,
        "fake.mjs",
        "fake",
        Db::Postgres,
        Some(url),
        &[("RUSTCHAT_REDIS_URL", &redis_url)],
    );
    let mut b = Browser::default();
    let cb = b.follow_to_callback(&s.base, "/api/v1/oauth2/fake/login");
    let state = query_param(&cb, "state").unwrap();
    let ttl: i64 = redis
        .cli(&["TTL", &format!("rustchat:oauth:state:{state}")])
        .parse()
        .unwrap();
    assert!((1..=300).contains(&ttl), "state TTL {ttl}");
    assert_eq!(s.chat.pg_count("SELECT COUNT(*) FROM oauth_pending"), 0);
    let r = b.send("GET", &cb);
    assert_eq!(r.status, 302, "{}", r.text());
    assert_eq!(
        redis.cli(&["EXISTS", &format!("rustchat:oauth:state:{state}")]),
        "0"
    );
    let keys = redis.cli(&["KEYS", "rustchat:oauth:code:*"]);
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let ttl: i64 = redis.cli(&["TTL", keys[0]]).parse().unwrap();
    assert!((1..=60).contains(&ttl), "code TTL {ttl}");
    let code = b.cookie(&s.base, "rustchat_oauth_code").unwrap();
    assert!(
        !keys[0].contains(&code),
        "the key holds the code's digest, not the code"
    );
    let r = b.send("POST", &format!("{}/api/v1/oauth2/exchange", s.base));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(redis.cli(&["EXISTS", keys[0]]), "0");

    // Redis down: the flow still completes through the database, which holds the state.
    redis.stop();
    let mut b = Browser::default();
    let cb = b.follow_to_callback(&s.base, "/api/v1/oauth2/fake/login");
    assert_eq!(s.chat.pg_count("SELECT COUNT(*) FROM oauth_pending"), 1);
    let r = b.send("GET", &cb);
    assert_eq!(r.status, 302, "{}", r.text());
    let r = b.send("POST", &format!("{}/api/v1/oauth2/exchange", s.base));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.chat.pg_count("SELECT COUNT(*) FROM oauth_pending"), 0);
}

/// Cluster (CHAT-R19, R22): a login started on node A finishes on node B (the callback and
/// the exchange may land on any node behind the load balancer): states and codes are shared
/// through Redis, the verifier sealed with the shared encryption key.
#[test]
fn t21_a_login_started_on_one_node_finishes_on_another() {
    let Some(node) = node() else { return };
    let Some(url) = common::pg_url() else { return };
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let redis_url = redis.url();
    let key = "b2lkYy1jbHVzdGVyLXRlc3Qta2V5LTAxMjM0NTY3ODlhYmNkZWZnaGlqa2xtbm9w";
    let s = setup(
        &node,
        "fake.mjs",
        "fake",
        Db::Postgres,
        Some(url.clone()),
        &[
            ("RUSTCHAT_REDIS_URL", &redis_url),
            ("RUSTCHAT_ENCRYPTION_KEY", key),
        ],
    );
    let b_node = Chat::start_in(
        temp_dir("rustchat-oidc-b"),
        Db::Postgres,
        Some(url),
        &[
            ("RUSTCHAT_SITE_URL", &s.base),
            ("RUSTCHAT_REDIS_URL", &redis_url),
            ("RUSTCHAT_ENCRYPTION_KEY", key),
            ("RUSTCHAT_OAUTH__PROVIDERS__FAKE__ISSUER_URL", &s.idp.issuer),
            ("RUSTCHAT_OAUTH__PROVIDERS__FAKE__CLIENT_ID", "rustchat"),
            (
                "RUSTCHAT_OAUTH__PROVIDERS__FAKE__CLIENT_SECRET",
                CLIENT_SECRET,
            ),
        ],
    );
    let base_b = format!("http://{}", b_node.addr);
    let mut b = Browser::default();
    let cb = b.follow_to_callback(&s.base, "/api/v1/oauth2/fake/login");
    b.share_cookies(&s.base, &base_b);
    let r = b.send("GET", &cb.replacen(&s.base, &base_b, 1));
    assert_eq!(r.status, 302, "callback on node B: {}", r.text());
    b.share_cookies(&base_b, &s.base);
    let r = b.send("POST", &format!("{}/api/v1/oauth2/exchange", s.base));
    assert_eq!(r.status, 200, "exchange on node A: {}", r.text());
    let token = b.cookie(&s.base, "rustchat_session").unwrap();
    assert_eq!(
        b_node
            .call("GET", "/api/v1/auth/me", Some(&token), None)
            .status,
        200
    );
}

/// Test 22: tampered, missing or replayed state → 400 and an ERROR `OAuth state` line.
#[test]
fn t22_bad_state_is_refused_and_logged() {
    let Some(node) = node() else { return };
    let s = setup(&node, "fake.mjs", "fake", Db::Sqlite, None, &[]);
    let login = "/api/v1/oauth2/fake/login";

    // Tampered: the query state differs from the cookie.
    let mut b = Browser::default();
    let cb = b.follow_to_callback(&s.base, login);
    let state = query_param(&cb, "state").unwrap();
    let mut forged = state.clone();
    forged.replace_range(0..1, if state.starts_with('A') { "B" } else { "A" });
    let r = b.send("GET", &cb.replace(&state, &forged));
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).unwrap()["field"],
        "state"
    );

    // Missing: no state cookie at all (another browser).
    let mut b = Browser::default();
    let cb = b.follow_to_callback(&s.base, login);
    let r = Browser::default().send("GET", &cb);
    assert_eq!(r.status, 400, "{}", r.text());

    // Replayed: a completed callback used a second time.
    let mut b = Browser::default();
    let cb = b.follow_to_callback(&s.base, login);
    let state = query_param(&cb, "state").unwrap();
    let r = b.send("GET", &cb);
    assert_eq!(r.status, 302, "{}", r.text());
    let replay = s.chat.call_raw(
        "GET",
        &cb[s.base.len()..],
        None,
        None,
        &[&format!("Cookie: rustchat_oauth_state={state}")],
    );
    assert_eq!(replay.status, 400, "{}", replay.text);

    // A browser is sent back to the login page instead of a JSON error.
    let mut b = Browser {
        html: true,
        ..Default::default()
    };
    let cb = b.follow_to_callback(&s.base, login);
    let r = Browser {
        html: true,
        ..Default::default()
    }
    .send("GET", &cb);
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/login?error=state_invalid"));

    let lines = logged(&s.chat, Duration::from_millis(300));
    let errors: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("\"level\":\"ERROR\"") && l.contains("OAuth state"))
        .collect();
    assert!(
        errors.len() >= 4,
        "ERROR lines with `OAuth state`: {errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|l| l.contains("auth: OAuth state mismatch"))
    );
    assert!(
        errors
            .iter()
            .any(|l| l.contains("auth: OAuth state missing"))
    );
}

/// Test 23: ID tokens with a bad signature, wrong aud, expired, wrong nonce, unverified
/// email, HS256, alg none or a stale iat are all refused, and so is a login the user denied
/// at the provider; no session is created.
#[test]
fn t23_bad_id_tokens_are_refused() {
    let Some(node) = node() else { return };
    let s = setup(&node, "fake.mjs", "fake", Db::Sqlite, None, &[]);
    for mode in [
        "bad_signature",
        "wrong_aud",
        "expired",
        "wrong_nonce",
        "unverified_email",
        "hs256",
        "none",
        "stale_iat",
        "deny",
    ] {
        s.idp.mode(mode);
        let mut b = Browser::default();
        let cb = b.follow_to_callback(&s.base, "/api/v1/oauth2/fake/login");
        let r = b.send("GET", &cb);
        assert_eq!(r.status, 401, "{mode}: {}", r.text());
        assert!(b.cookie(&s.base, "rustchat_oauth_code").is_none(), "{mode}");
        let r = b.send("POST", &format!("{}/api/v1/oauth2/exchange", s.base));
        assert_eq!(r.status, 400, "{mode}: no session without a code");
        assert!(b.cookie(&s.base, "rustchat_session").is_none(), "{mode}");
    }
    assert_eq!(
        s.chat
            .metric(r#"rustchat_auth_attempts_total{method="oidc",result="failure"}"#),
        9.0,
        "one failure counted per refused login"
    );
    // The same provider in order: a good token now logs in.
    s.idp.mode("ok");
    let r = full_login(&mut Browser::default(), &s, "/api/v1/oauth2/fake/login");
    assert_eq!(r.status, 200, "{}", r.text());
    let lines = logged(&s.chat, Duration::from_millis(300));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("auth: OAuth login refused"))
    );
}

/// Test 24: the provider down → after 5 failures `/stats` shows `oidc:fake` open, the
/// counter and a `circuit.*oidc` line record it, the next login is 503 without contacting
/// the provider; provider back with `breaker_open_seconds=2` → closed again.
#[test]
fn t24_breaker_opens_while_the_provider_is_down_and_recovers() {
    let Some(node) = node() else { return };
    let s = setup(
        &node,
        "fake.mjs",
        "fake",
        Db::Sqlite,
        None,
        &[("RUSTCHAT_OAUTH__BREAKER_OPEN_SECONDS", "2")],
    );
    let stats = s.chat.call("GET", "/api/v1/health/stats", None, None);
    assert_eq!(stats.json["circuit_breakers"]["oidc:fake"], "closed");
    s.idp.mode("down");
    for i in 0..5 {
        let r = s.chat.call("GET", "/api/v1/oauth2/fake/login", None, None);
        assert_eq!(r.status, 503, "attempt {i}: {}", r.text);
        assert!(r.header("retry-after").is_some());
    }
    let stats = s.chat.call("GET", "/api/v1/health/stats", None, None);
    assert_eq!(stats.json["circuit_breakers"]["oidc:fake"], "open");
    assert!(
        s.chat.metric(
            r#"rustchat_circuit_breaker_state_changes_total{breaker="oidc:fake",from="closed",to="open"}"#
        ) >= 1.0
    );
    let seen = s.idp.requests();
    let r = s.chat.call("GET", "/api/v1/oauth2/fake/login", None, None);
    assert_eq!(r.status, 503);
    assert_eq!(s.idp.requests(), seen, "an open breaker sends nothing");
    let html = Browser {
        html: true,
        ..Default::default()
    }
    .send("GET", &format!("{}/api/v1/oauth2/fake/login", s.base));
    assert_eq!(html.status, 302);
    assert_eq!(
        html.header("location"),
        Some("/login?error=provider_unavailable")
    );
    let lines = logged(&s.chat, Duration::from_millis(300));
    let re_like = |l: &String| l.find("circuit").is_some_and(|i| l[i..].contains("oidc"));
    assert!(lines.iter().any(re_like), "a line matching circuit.*oidc");

    s.idp.mode("ok");
    std::thread::sleep(Duration::from_millis(2200));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = full_login(&mut Browser::default(), &s, "/api/v1/oauth2/fake/login");
        let state = s.chat.call("GET", "/api/v1/health/stats", None, None).json["circuit_breakers"]
            ["oidc:fake"]
            .clone();
        if r.status == 200 && state == "closed" {
            break;
        }
        assert!(Instant::now() < deadline, "breaker did not close: {state}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Providers added through the admin API: secret sealed at rest, offered for login, a
/// working login, removal; only system_admin may manage them.
#[test]
fn admin_api_manages_providers_with_sealed_secrets() {
    let Some(node) = node() else { return };
    let Some(url) = common::pg_url() else { return };
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let idp = Idp::start(
        &node,
        "fake.mjs",
        &format!("{base}/api/v1/oauth2/fake/callback"),
    );
    let port_s = port.to_string();
    let chat = Chat::start_in(
        temp_dir("rustchat-oidc"),
        Db::Postgres,
        Some(url),
        &[("RUSTCHAT_PORT", &port_s), ("RUSTCHAT_SITE_URL", &base)],
    );
    let (admin, _) = chat.user("root");
    let (member, _) = chat.user("mallory");
    let body = json!({"name": "fake", "issuer_url": idp.issuer, "client_id": "rustchat",
        "client_secret": CLIENT_SECRET, "display_name": "Fake IdP"});
    let r = chat.call(
        "POST",
        "/api/v1/admin/oauth/providers",
        Some(&member),
        Some(&body),
    );
    assert_eq!(r.status, 403);
    let bad = json!({"name": "Bad Name", "issuer_url": "ftp://x", "client_id": "c", "client_secret": "s"});
    let r = chat.call(
        "POST",
        "/api/v1/admin/oauth/providers",
        Some(&admin),
        Some(&bad),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let unknown = json!({"name": "x", "issuer_url": idp.issuer, "client_id": "c", "client_secret": "s", "colour": 1});
    let r = chat.call(
        "POST",
        "/api/v1/admin/oauth/providers",
        Some(&admin),
        Some(&unknown),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = chat.call(
        "POST",
        "/api/v1/admin/oauth/providers",
        Some(&admin),
        Some(&body),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.json.get("client_secret").is_none());
    assert_eq!(
        r.json["redirect_uri"],
        format!("{base}/api/v1/oauth2/fake/callback")
    );
    let r = chat.call(
        "POST",
        "/api/v1/admin/oauth/providers",
        Some(&admin),
        Some(&body),
    );
    assert_eq!(r.status, 409);
    assert_eq!(
        chat.pg_count(&format!(
            "SELECT COUNT(*) FROM oauth_providers WHERE client_secret_enc LIKE 'enc:v1:%' \
             AND position('{CLIENT_SECRET}' in client_secret_enc) = 0"
        )),
        1
    );
    let list = chat.call("GET", "/api/v1/oauth2/providers", None, None);
    assert_eq!(list.json[0]["name"], "fake");
    let s = Setup {
        chat,
        idp,
        base: base.clone(),
    };
    let r = full_login(&mut Browser::default(), &s, "/api/v1/oauth2/fake/login");
    assert_eq!(r.status, 200, "{}", r.text());
    let stats = s.chat.call("GET", "/api/v1/health/stats", None, None);
    assert_eq!(stats.json["circuit_breakers"]["oidc:fake"], "closed");

    let r = s.chat.call(
        "DELETE",
        "/api/v1/admin/oauth/providers/fake",
        Some(&admin),
        None,
    );
    assert_eq!(r.status, 200);
    let r = s.chat.call("GET", "/api/v1/oauth2/fake/login", None, None);
    assert_eq!(r.status, 404);
    assert_eq!(
        s.chat
            .call("GET", "/api/v1/oauth2/providers", None, None)
            .json,
        json!([])
    );
}

/// `--check-config` probes each provider's discovery document and prints its redirect URI
/// (runbook: "SITE_URL matches redirect URI"); an unreachable provider is an error line.
#[test]
fn check_config_probes_discovery_and_prints_redirect_uris() {
    let Some(node) = node() else { return };
    let dir = temp_dir("rustchat-oidc-check");
    let idp = Idp::start(&node, "fake.mjs", "http://127.0.0.1:1/cb");
    let env = |issuer: &str| -> Vec<(String, String)> {
        vec![
            (
                "RUSTCHAT_SITE_URL".into(),
                "https://chat.example.com".into(),
            ),
            (
                "RUSTCHAT_OAUTH__PROVIDERS__CORP__ISSUER_URL".into(),
                issuer.into(),
            ),
            (
                "RUSTCHAT_OAUTH__PROVIDERS__CORP__CLIENT_ID".into(),
                "rustchat".into(),
            ),
            (
                "RUSTCHAT_OAUTH__PROVIDERS__CORP__CLIENT_SECRET".into(),
                CLIENT_SECRET.into(),
            ),
        ]
    };
    let run = |issuer: &str| {
        let owned = env(issuer);
        let pairs: Vec<(&str, &str)> = owned
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        common::run_cli(&dir, &["--check-config"], &pairs)
    };
    let (code, out, err) = run(&idp.issuer);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines().any(
            |l| l.starts_with("ok     oauth.providers.corp: discovery ok")
                && l.ends_with("redirect_uri https://chat.example.com/api/v1/oauth2/corp/callback")
        ),
        "{out}"
    );
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (code, out, _) = run(&dead);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("error  oauth.providers.corp:")),
        "{out}"
    );
}
