//! Black-box tests of the proxy path against the real binary with in-test upstreams:
//! reserved paths (SEN-T06 part), forwarded headers and correlation ids (T07), round-robin
//! and weight 0 (T15 part), retries (T13 part), static upstreams, request checks (T10
//! part), reload (T23 part) and drain with the pid file (T25 part).

mod common;

use std::time::Duration;

use common::Proxy;
use common::upstream::{Upstream, refusing_addr};
use test_support::{get, http_raw, json_field, request, temp_dir};

fn base_kdl(pid: &std::path::Path, upstreams: &str, routes: &str) -> String {
    format!(
        "server {{\n    listen \"127.0.0.1:0\"\n    pid-file \"{}\"\n}}\nmetrics {{\n    address \"127.0.0.1:0\"\n}}\n{upstreams}\n{routes}\n",
        pid.display()
    )
}

#[test]
fn reserved_paths_answer_before_any_route() {
    let dir = temp_dir("sen-reserved");
    let up = Upstream::start(|_| (200, "app".into()));
    let kdl = base_kdl(
        &dir.join("s.pid"),
        &format!(
            "upstream \"app\" {{\n    targets {{\n        target \"{}\"\n    }}\n}}",
            up.addr
        ),
        "route \"all\" {\n    priority \"critical\"\n    matches {\n        path-prefix \"/\"\n    }\n    upstream \"app\"\n}",
    );
    let p = Proxy::start(&dir, &kdl, &[], 0);
    let h = get(p.addr, "/health", &[]);
    assert_eq!(h.status, 200);
    assert_eq!(h.text(), "{\"status\":\"ok\"}");
    let r = get(p.addr, "/ready?x=1", &[]);
    assert_eq!(r.status, 200);
    assert!(
        r.text()
            .starts_with("{\"degraded\":false,\"missing\":[],\"retry_after\":0,\"since\":\"")
    );
    let post = http_raw(
        p.addr,
        request("POST", "/health", &["Content-Length: 0"]).as_bytes(),
        false,
    )
    .unwrap();
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    assert_eq!(up.hits(), 0, "reserved paths never reach the upstream");
    assert_eq!(get(p.addr, "/anything", &[]).text(), "app");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn forwarded_requests_carry_end_to_end_headers_and_correlation_ids() {
    let dir = temp_dir("sen-headers");
    let up = Upstream::start(|_| (200, "ok".into()));
    let kdl = base_kdl(
        &dir.join("s.pid"),
        &format!(
            "upstream \"app\" {{\n    targets {{\n        target \"{}\"\n    }}\n}}",
            up.addr
        ),
        "route \"api\" {\n    matches {\n        path-prefix \"/api\"\n    }\n    upstream \"app\"\n}",
    );
    let p = Proxy::start(&dir, &kdl, &[], 0);
    let r = get(
        p.addr,
        "/api/x?q=1",
        &[
            "Connection: close, X-Secret",
            "X-Secret: 1",
            "Keep-Alive: timeout=5",
            "Proxy-Authorization: Basic eA==",
            "X-Forwarded-For: 1.2.3.4",
            "X-Forwarded-Proto: https",
            "X-Forwarded-Host: evil",
            "X-Correlation-Id: req-1",
            "X-Keep: yes",
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-correlation-id"), Some("req-1"));
    let seen = up.seen.lock()[0].clone();
    assert_eq!(seen.target, "/api/x?q=1");
    let h = &seen.headers;
    for gone in [
        "x-secret",
        "keep-alive",
        "proxy-authorization",
        "connection",
    ] {
        assert!(h.get(gone).is_none(), "{gone} must not be forwarded");
    }
    assert_eq!(h.get("host").unwrap(), "test", "Host is preserved");
    assert_eq!(h.get("x-forwarded-for").unwrap(), "1.2.3.4, 127.0.0.1");
    assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
    assert_eq!(h.get("x-forwarded-host").unwrap(), "test");
    assert_eq!(h.get("x-correlation-id").unwrap(), "req-1");
    assert_eq!(h.get("x-corr-id").unwrap(), "req-1");
    assert_eq!(h.get("x-keep").unwrap(), "yes");

    // An invalid id is replaced by a fresh one, and error bodies carry the same id.
    let r = get(p.addr, "/nowhere", &["X-Correlation-Id: a b"]);
    assert_eq!(r.status, 404);
    let id = r.header("x-correlation-id").unwrap().to_owned();
    assert_eq!(id.len(), 26);
    assert_eq!(
        json_field(&r.text(), "corr_id").as_deref(),
        Some(id.as_str())
    );
    assert_eq!(json_field(&r.text(), "code").as_deref(), Some("no_route"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn round_robin_alternates_weight_zero_is_skipped_and_a_refusing_target_is_retried() {
    let dir = temp_dir("sen-lb");
    let a = Upstream::start(|_| (200, "a".into()));
    let b = Upstream::start(|_| (200, "b".into()));
    let drained = Upstream::start(|_| (200, "drained".into()));
    let dead = refusing_addr();
    let kdl = base_kdl(
        &dir.join("s.pid"),
        &format!(
            "upstream \"rr\" {{\n    targets {{\n        target \"{}\"\n        target \"{}\"\n        target \"{}\" weight=0\n    }}\n}}\nupstream \"flaky\" {{\n    targets {{\n        target \"{dead}\"\n        target \"{}\"\n    }}\n}}",
            a.addr, b.addr, drained.addr, b.addr
        ),
        "route \"rr\" {\n    matches {\n        path-prefix \"/rr\"\n    }\n    upstream \"rr\"\n}\nroute \"flaky\" {\n    matches {\n        path-prefix \"/flaky\"\n    }\n    upstream \"flaky\"\n}",
    );
    let p = Proxy::start(&dir, &kdl, &[], 0);
    let seq: Vec<String> = (0..4).map(|_| get(p.addr, "/rr", &[]).text()).collect();
    assert!(
        seq == ["a", "b", "a", "b"] || seq == ["b", "a", "b", "a"],
        "{seq:?}"
    );
    assert_eq!(drained.hits(), 0, "weight 0 is never picked");
    // The dead target refuses; GETs land on b after a retry.
    let before = b.hits();
    for _ in 0..4 {
        let r = get(p.addr, "/flaky", &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), "b");
    }
    assert_eq!(b.hits(), before + 4);
    assert!(p.metric("sentinel_retries_total{route=\"flaky\"}") >= 1.0);
    assert!(
        p.metric("sentinel_upstream_attempts_total{upstream=\"flaky\",outcome=\"connect_error\"}")
            >= 1.0
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn static_upstreams_and_request_checks_answer_in_process() {
    let dir = temp_dir("sen-static");
    let up = Upstream::start(|_| (200, "app".into()));
    let kdl = base_kdl(
        &dir.join("s.pid"),
        &format!(
            "upstream \"app\" {{\n    targets {{\n        target \"{}\"\n    }}\n}}\nupstream \"maintenance-page\" {{\n    static {{\n        status 503\n        body \"<h1>Back soon</h1>\"\n        content-type \"text/html; charset=utf-8\"\n        header \"Retry-After\" \"600\"\n    }}\n}}",
            up.addr
        ),
        "route \"maint\" {\n    matches {\n        path-prefix \"/maint\"\n    }\n    upstream \"maintenance-page\"\n}\nroute \"app\" {\n    upstream \"app\"\n}",
    );
    let p = Proxy::start(&dir, &kdl, &[], 0);
    let r = get(p.addr, "/maint/x", &[]);
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "<h1>Back soon</h1>");
    assert_eq!(r.header("retry-after"), Some("600"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.header("x-correlation-id").is_some());
    for (path, code) in [
        ("/a/../b", "invalid_path"),
        ("/a/%2E%2E/b", "invalid_path"),
        ("/x%00", "invalid_path"),
    ] {
        let r = get(p.addr, path, &[]);
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(
            json_field(&r.text(), "code").as_deref(),
            Some(code),
            "{path}"
        );
    }
    let trace = http_raw(p.addr, request("TRACE", "/", &[]).as_bytes(), false).unwrap();
    assert_eq!(trace.status, 405);
    let big = http_raw(
        p.addr,
        request("POST", "/upload", &["Content-Length: 11534336"]).as_bytes(),
        false,
    )
    .unwrap();
    assert_eq!(big.status, 413);
    assert_eq!(up.hits(), 0, "rejected requests never reach the upstream");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn sighup_swaps_routes_and_sigterm_drains_and_removes_the_pid_file() {
    let dir = temp_dir("sen-reload");
    let up = Upstream::start(|_| (200, "app".into()));
    let pid = dir.join("run/sentinel.pid");
    let upstreams = format!(
        "upstream \"app\" {{\n    targets {{\n        target \"{}\"\n    }}\n}}",
        up.addr
    );
    let kdl = base_kdl(
        &pid,
        &upstreams,
        "route \"old\" {\n    matches {\n        path \"/old\"\n    }\n    upstream \"app\"\n}",
    );
    let mut p = Proxy::start(&dir, &kdl, &[], 0);
    assert_eq!(
        std::fs::read_to_string(&pid).unwrap(),
        format!("{}\n", p.svc.child.id())
    );
    assert_eq!(get(p.addr, "/new", &[]).status, 404);
    let next = base_kdl(
        &pid,
        &upstreams,
        "route \"new\" {\n    matches {\n        path \"/new\"\n    }\n    upstream \"app\"\n}",
    );
    std::fs::write(&p.config, next).unwrap();
    p.svc.signal(libc::SIGHUP);
    let done = p.lines_with("Configuration reload completed", Duration::from_secs(2));
    assert_eq!(done.len(), 1, "{:?}", p.log);
    assert!(done[0].contains("\"generation\":2"), "{}", done[0]);
    assert_eq!(get(p.addr, "/new", &[]).status, 200);
    assert_eq!(get(p.addr, "/old", &[]).status, 404);
    assert_eq!(
        p.metric("sentinel_config_reloads_total{result=\"success\"}"),
        1.0
    );
    assert_eq!(p.metric("sentinel_config_generation"), 2.0);
    // The running config, as /admin/config renders it, has the new route.
    let shown = get(p.admin, "/admin/config", &[]);
    assert_eq!(shown.header("x-config-generation"), Some("2"));
    assert!(shown.text().contains("route \"new\""), "{}", shown.text());

    std::fs::write(&p.config, "server { nope 1 }\n").unwrap();
    p.svc.signal(libc::SIGHUP);
    let failed = p.lines_with("Configuration reload failed", Duration::from_secs(2));
    assert_eq!(failed.len(), 1, "{:?}", p.log);
    assert!(
        failed[0].contains(":1:10:"),
        "the failure names line:col: {}",
        failed[0]
    );
    assert_eq!(
        get(p.addr, "/new", &[]).status,
        200,
        "the old snapshot keeps serving"
    );
    assert_eq!(
        p.metric("sentinel_config_reloads_total{result=\"failure\"}"),
        1.0
    );

    // A restart-only key changes: the reload completes and says what needs a restart.
    let moved = base_kdl(
        &pid,
        &upstreams,
        "route \"new\" {\n    matches {\n        path \"/new\"\n    }\n    upstream \"app\"\n}",
    )
    .replace("listen \"127.0.0.1:0\"", "listen \"127.0.0.1:1\"");
    std::fs::write(&p.config, moved).unwrap();
    p.svc.signal(libc::SIGHUP);
    let done = p.lines_with("Configuration reload completed", Duration::from_secs(2));
    assert_eq!(done.len(), 2, "{:?}", p.log);
    assert!(
        done[1].contains("server.listen"),
        "restart_required: {}",
        done[1]
    );
    assert_eq!(
        get(p.addr, "/new", &[]).status,
        200,
        "the old port keeps serving"
    );

    p.svc.signal(libc::SIGTERM);
    assert_eq!(p.svc.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(!pid.exists(), "pid file removed at exit");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A raw upstream that answers any request with 101 and then echoes bytes back.
fn echo_upstream() -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { return };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if c.read(&mut b).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                let _ = c.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n");
                let mut buf = [0u8; 1024];
                loop {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if c.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn upgrades_tunnel_bytes_and_h2c_upstreams_refuse_them() {
    use std::io::{Read, Write};
    let dir = temp_dir("sen-upgrade");
    let echo = echo_upstream();
    let h2 = Upstream::start(|_| (200, "h2".into()));
    let kdl = base_kdl(
        &dir.join("s.pid"),
        &format!(
            "upstream \"ws\" {{\n    targets {{\n        target \"{echo}\"\n    }}\n}}\nupstream \"h2\" {{\n    protocol \"h2c\"\n    targets {{\n        target \"{}\"\n    }}\n}}",
            h2.addr
        ),
        "route \"ws\" {\n    matches {\n        path-prefix \"/ws\"\n    }\n    upstream \"ws\"\n}\nroute \"h2\" {\n    matches {\n        path-prefix \"/h2\"\n    }\n    upstream \"h2\"\n}",
    );
    let p = Proxy::start(&dir, &kdl, &[], 0);
    let mut c = std::net::TcpStream::connect(p.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(c.read(&mut b).unwrap(), 1, "proxy closed before the 101");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    c.write_all(b"ping through the tunnel").unwrap();
    let mut got = [0u8; 23];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping through the tunnel");
    drop(c);

    let r = http_raw(
        p.addr,
        request("GET", "/h2", &["Connection: Upgrade", "Upgrade: websocket"])
            .replace("Connection: close\r\n", "")
            .as_bytes(),
        false,
    )
    .unwrap();
    assert_eq!(r.status, 501);
    assert_eq!(
        json_field(&r.text(), "code").as_deref(),
        Some("upgrade_not_supported")
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn rate_limits_answer_429_per_client_and_per_header_key() {
    let dir = temp_dir("sen-rate");
    let up = Upstream::start(|_| (200, "ok".into()));
    let kdl = base_kdl(
        &dir.join("s.pid"),
        &format!(
            "upstream \"app\" {{\n    targets {{\n        target \"{}\"\n    }}\n}}",
            up.addr
        ),
        "route \"ip\" {\n    matches {\n        path-prefix \"/ip\"\n    }\n    upstream \"app\"\n    policies {\n        rate-limit {\n            requests-per-second 1\n            burst 10\n            key \"client_ip\"\n        }\n    }\n}\nroute \"hdr\" {\n    matches {\n        path-prefix \"/hdr\"\n    }\n    upstream \"app\"\n    policies {\n        rate-limit {\n            requests-per-second 1\n            key \"header\" \"X-Api-Key\"\n        }\n    }\n}",
    );
    let p = Proxy::start(&dir, &kdl, &[], 0);
    let statuses: Vec<(u16, Option<String>)> = (0..30)
        .map(|_| {
            let r = get(p.addr, "/ip", &[]);
            (r.status, r.header("retry-after").map(str::to_owned))
        })
        .collect();
    // The burst of 10 passes; at 1 token/s at most one more can have been earned while the
    // 30 requests ran, so 10 or 11 pass and every other one is limited.
    let passed = statuses.iter().filter(|(s, _)| *s == 200).count();
    assert!((10..=11).contains(&passed), "{statuses:?}");
    let limited: Vec<_> = statuses.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!(limited.len(), 30 - passed);
    assert!(limited.iter().all(|(_, ra)| {
        ra.as_deref()
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|v| v >= 1)
    }));
    assert_eq!(
        p.metric("sentinel_rate_limited_total{route=\"ip\""),
        (30 - passed) as f64
    );
    // Header keys isolate clients.
    assert_eq!(get(p.addr, "/hdr", &["X-Api-Key: a"]).status, 200);
    assert_eq!(get(p.addr, "/hdr", &["X-Api-Key: a"]).status, 429);
    assert_eq!(get(p.addr, "/hdr", &["X-Api-Key: b"]).status, 200);
    let r = get(p.addr, "/hdr", &["X-Api-Key: a"]);
    assert_eq!(
        json_field(&r.text(), "code").as_deref(),
        Some("rate_limited")
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_access_log_has_one_line_per_request_with_the_correlation_id() {
    let dir = temp_dir("sen-access");
    let up = Upstream::start(|_| (200, "0123456789".into()));
    let dead = refusing_addr();
    let log = dir.join("logs/access.log");
    let kdl = format!(
        "{}logging {{\n    access-log \"{}\"\n}}\n",
        base_kdl(
            &dir.join("s.pid"),
            &format!(
                "upstream \"app\" {{\n    load-balancing \"round-robin\"\n    targets {{\n        target \"{dead}\"\n        target \"{}\"\n    }}\n}}",
                up.addr
            ),
            "route \"api\" {\n    upstream \"app\"\n}",
        ),
        log.display()
    );
    let mut p = Proxy::start(&dir, &kdl, &[], 0);
    let mut ids = Vec::new();
    for i in 0..3 {
        let r = get(
            p.addr,
            &format!("/a/{i}?secret=1"),
            &[
                "User-Agent: t/1",
                "X-Correlation-Id: req-{i}"
                    .replace("{i}", &i.to_string())
                    .as_str(),
            ],
        );
        assert_eq!(r.status, 200);
        ids.push(r.header("x-correlation-id").unwrap().to_owned());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let lines = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        // The launcher's /ready probe is logged too (route _builtin); keep the api lines.
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.contains("\"route\":\"api\""))
            .map(str::to_owned)
            .collect();
        if lines.len() >= 3 || std::time::Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (line, id) in lines.iter().zip(&ids) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for k in [
            "ts",
            "correlation_id",
            "client_ip",
            "method",
            "host",
            "path",
            "protocol",
            "route",
            "upstream",
            "target",
            "status",
            "latency_ms",
            "upstream_latency_ms",
            "bytes_in",
            "bytes_out",
            "attempts",
            "error",
            "user_agent",
        ] {
            assert!(v.get(k).is_some(), "{k} missing in {line}");
        }
        assert_eq!(v["correlation_id"], id.as_str());
        assert_eq!(v["route"], "api");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes_out"], 10);
        assert!(v["latency_ms"].is_f64());
        assert!(
            !v["path"].as_str().unwrap().contains('?'),
            "no query in path"
        );
        assert_eq!(v["user_agent"], "t/1");
    }
    // A request that needed a retry has attempts 2, and its WARN line carries the same id.
    let retried: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("\"attempts\":2"))
        .collect();
    assert!(!retried.is_empty(), "{lines:?}");
    let v: serde_json::Value = serde_json::from_str(retried[0]).unwrap();
    let id = v["correlation_id"].as_str().unwrap().to_owned();
    let warns = p.lines_with("upstream attempt failed", Duration::from_millis(200));
    assert!(warns.iter().any(|w| w.contains(&id)), "{warns:?}");
    std::fs::remove_dir_all(dir).unwrap();
}
