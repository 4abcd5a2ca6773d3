//! Black-box tests of hostile and oversized input, timeouts, retries and connection caps
//! against the real binary (SEN-T10, T11, T12, T13 and T22 as far as they run here).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::Proxy;
use common::upstream::{Upstream, refusing_addr};
use test_support::{get, http_raw, json_field, read_response, request, temp_dir};

fn config(upstreams: &str, routes: &str, extra: &str) -> String {
    format!(
        "{extra}server {{\n    listen \"127.0.0.1:0\"\n}}\nmetrics {{\n    address \"127.0.0.1:0\"\n}}\n{upstreams}\n{routes}\n"
    )
}

fn one_upstream(addr: SocketAddr) -> String {
    format!("upstream \"app\" {{\n    targets {{\n        target \"{addr}\"\n    }}\n}}")
}

const ALL: &str = "route \"all\" {\n    upstream \"app\"\n}";

/// Sends raw bytes and reads one response; `None` when the proxy closed without one.
fn raw(addr: SocketAddr, bytes: &[u8]) -> Option<test_support::Response> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).unwrap();
    read_response(&mut s, false).ok().filter(|r| r.status > 0)
}

#[test]
fn smuggling_and_malformed_requests_are_refused_and_the_process_survives() {
    let dir = temp_dir("sen-smuggle");
    let up = Upstream::start(|seen| (200, format!("len={}", seen.body.len())));
    let p = Proxy::start(&dir, &config(&one_upstream(up.addr), ALL, ""), &[], 0);
    let cases: [(&str, &[u8], u16); 7] = [
        (
            "TE gzip",
            b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
            400,
        ),
        (
            "TE on HTTP/1.0",
            b"POST /x HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            "differing CLs",
            b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            400,
        ),
        (
            "NUL in a header",
            b"GET /x HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n",
            400,
        ),
        (
            "obs-fold",
            b"GET /x HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n",
            400,
        ),
        ("asterisk target", b"GET * HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        ("no Host on HTTP/1.1", b"GET /x HTTP/1.1\r\n\r\n", 400),
    ];
    for (name, bytes, want) in cases {
        let got = raw(p.addr, bytes).map(|r| r.status);
        assert_eq!(got, Some(want), "{name}");
    }
    assert_eq!(up.hits(), 0, "nothing malformed reached the upstream");
    for m in ["CONNECT", "TRACE"] {
        let r = raw(
            p.addr,
            format!("{m} /x HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 405, "{m}");
    }
    let r = get(p.addr, "/a/%2e%2E/b", &[]);
    assert_eq!(
        json_field(&r.text(), "code").as_deref(),
        Some("invalid_path")
    );
    // A chunked body is re-framed: the upstream sees consistent framing and every byte.
    let r = raw(
        p.addr,
        b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.text(), "len=5");
    let seen = up.seen.lock()[0].clone();
    assert!(
        seen.headers.get("content-length").is_none()
            || seen.headers.get("transfer-encoding").is_none()
    );
    // Content-Length together with Transfer-Encoding, in either order: hyper's codec drops
    // the length, reads the chunked body and closes the connection after the answer, so no
    // second request can hide in the body (crate docs, "Decisions").
    for (name, bytes) in [
        ("CL before TE", &b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"[..]),
        ("TE before CL", &b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"[..]),
    ] {
        let mut s = TcpStream::connect(p.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(bytes).unwrap();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        let text = String::from_utf8_lossy(&all);
        assert!(text.starts_with("HTTP/1.1 200"), "{name}: {text}");
        assert!(text.contains("len=3"), "{name}: the chunked body is what counts: {text}");
        assert_eq!(text.matches("HTTP/1.1").count(), 1, "{name}: one answer, then close");
    }
    assert!(
        up.seen.lock().iter().all(|r| r.target != "/smuggled"),
        "nothing smuggled reached the upstream"
    );
    assert_eq!(get(p.addr, "/x", &[]).status, 200, "still serving");
    assert_eq!(p.metric("sentinel_panics_total"), 0.0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn limits_answer_431_414_413_and_503_overloaded() {
    let dir = temp_dir("sen-limits");
    let up = Upstream::start(|seen| {
        if seen.target.starts_with("/slow") {
            std::thread::sleep(Duration::from_millis(800));
        }
        (200, "ok".into())
    });
    let p = Proxy::start(
        &dir,
        &config(
            &one_upstream(up.addr),
            ALL,
            "limits {\n    max-in-flight-requests 2\n}\n",
        ),
        &[],
        0,
    );
    let big_header = format!("X-Big: {}", "a".repeat(20 * 1024));
    let r = http_raw(
        p.addr,
        request("GET", "/x", &[&big_header]).as_bytes(),
        false,
    )
    .unwrap();
    assert_eq!(r.status, 431, "20 KiB head");
    let many: Vec<String> = (0..101).map(|i| format!("X-H{i}: v")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let r = http_raw(p.addr, request("GET", "/x", &many).as_bytes(), false).unwrap();
    assert_eq!(r.status, 431, "101 headers");
    let long = format!("/{}", "u".repeat(9 * 1024));
    let r = get(p.addr, &long, &[]);
    assert_eq!(r.status, 414);
    assert_eq!(
        json_field(&r.text(), "code").as_deref(),
        Some("uri_too_long")
    );
    let r = http_raw(
        p.addr,
        request("POST", "/x", &["Content-Length: 11534336"]).as_bytes(),
        false,
    )
    .unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(up.hits(), 0, "the upstream was never contacted");

    // An 11 MiB chunked body is cut off: 413 if the answer has not started, else an abort.
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let chunk = vec![b'z'; 64 * 1024];
    let mut refused = false;
    for _ in 0..(11 * 16) {
        let head = format!("{:x}\r\n", chunk.len());
        if s.write_all(head.as_bytes()).is_err()
            || s.write_all(&chunk).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            refused = true;
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(
        refused || text.starts_with("HTTP/1.1 413") || text.is_empty(),
        "{text}"
    );
    assert!(
        !text.starts_with("HTTP/1.1 200"),
        "an oversized body is never accepted"
    );

    // Two slow requests fill the in-flight cap; the third is shed.
    let addr = p.addr;
    let slow: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || get(addr, "/slow", &[]).status))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let r = get(p.addr, "/x", &[]);
    assert_eq!(r.status, 503);
    assert_eq!(json_field(&r.text(), "code").as_deref(), Some("overloaded"));
    assert!(r.header("retry-after").is_some());
    for t in slow {
        assert_eq!(t.join().unwrap(), 200);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn timeouts_and_connect_failures_map_to_504_and_502() {
    let dir = temp_dir("sen-timeouts");
    let up = Upstream::start(|_| {
        std::thread::sleep(Duration::from_secs(3));
        (200, "late".into())
    });
    let dead = refusing_addr();
    let upstreams = format!(
        "{}\nupstream \"dead\" {{\n    targets {{\n        target \"{dead}\"\n    }}\n}}",
        one_upstream(up.addr)
    );
    let routes = "route \"slow\" {\n    matches {\n        path-prefix \"/slow\"\n    }\n    upstream \"app\"\n    policies {\n        timeout-secs 1\n        retries 0\n    }\n}\nroute \"dead\" {\n    matches {\n        path-prefix \"/dead\"\n    }\n    upstream \"dead\"\n}";
    let p = Proxy::start(&dir, &config(&upstreams, routes, ""), &[], 0);
    let started = std::time::Instant::now();
    let r = get(p.addr, "/slow", &[]);
    assert_eq!(r.status, 504);
    assert_eq!(
        json_field(&r.text(), "code").as_deref(),
        Some("upstream_timeout")
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered before the upstream"
    );
    let r = get(p.addr, "/dead", &[]);
    assert_eq!(r.status, 502);
    assert_eq!(
        json_field(&r.text(), "code").as_deref(),
        Some("upstream_connect_failed")
    );
    assert!(
        !r.text().contains(&dead.to_string()),
        "no target address in the message"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// An upstream that reads a request head and closes without answering.
fn closing_upstream() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if c.read(&mut b).unwrap_or(0) == 0 {
                    break;
                }
                head.push(b[0]);
            }
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    (addr, hits)
}

#[test]
fn retries_only_where_safe_and_a_final_503_is_forwarded() {
    let dir = temp_dir("sen-retries");
    let (closing, hits) = closing_upstream();
    let busy = Upstream::start(|_| (503, "busy".into()));
    let upstreams = format!(
        "upstream \"closing\" {{\n    targets {{\n        target \"{closing}\"\n    }}\n}}\nupstream \"busy\" {{\n    targets {{\n        target \"{}\"\n    }}\n}}",
        busy.addr
    );
    let routes = "route \"closing\" {\n    matches {\n        path-prefix \"/closing\"\n    }\n    upstream \"closing\"\n}\nroute \"busy\" {\n    matches {\n        path-prefix \"/busy\"\n    }\n    upstream \"busy\"\n}";
    let p = Proxy::start(&dir, &config(&upstreams, routes, ""), &[], 0);
    let r = http_raw(
        p.addr,
        request("POST", "/closing", &["Content-Length: 5"])
            .replace("\r\n\r\n", "\r\n\r\nhello")
            .as_bytes(),
        false,
    )
    .unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(
        json_field(&r.text(), "code").as_deref(),
        Some("upstream_closed")
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a POST with a body is never retried once sent"
    );
    let r = get(p.addr, "/busy", &[]);
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "busy", "the upstream's last 503 is forwarded");
    assert_eq!(busy.hits(), 2, "a bodiless GET is retried once (retries 1)");
    assert_eq!(p.metric("sentinel_retries_total{route=\"busy\""), 1.0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn connection_caps_close_at_accept_and_follow_a_reload() {
    let dir = temp_dir("sen-caps");
    let up = Upstream::start(|_| (200, "ok".into()));
    let base = config(&one_upstream(up.addr), ALL, "");
    let mut p = Proxy::start(
        &dir,
        &format!("limits {{\n    max-total-connections 10\n}}\n{base}"),
        &[],
        0,
    );
    // The launcher's readiness connection must be gone before counting starts.
    let open = "sentinel_open_connections{listener=\"main\"";
    p.wait_metric(open, 0.0);
    let held: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(p.addr).unwrap())
        .collect();
    // All ten admitted before the 11th.
    p.wait_metric(open, 10.0);
    let mut extra = TcpStream::connect(p.addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = extra.write_all(request("GET", "/x", &[]).as_bytes());
    let mut buf = Vec::new();
    let _ = extra.read_to_end(&mut buf);
    assert!(
        buf.is_empty(),
        "the 11th connection gets EOF with no bytes: {}",
        String::from_utf8_lossy(&buf)
    );
    assert_eq!(
        p.metric("sentinel_connections_rejected_total{listener=\"main\",reason=\"max_total\""),
        1.0
    );
    drop(held);
    p.wait_metric(open, 0.0);
    assert_eq!(get(p.addr, "/x", &[]).status, 200);

    // The runbook's prepend: the first occurrence wins, and applies to new accepts.
    std::fs::write(&p.config, format!("limits {{\n    max-total-connections 5\n}}\nlimits {{\n    max-total-connections 10\n}}\n{base}")).unwrap();
    p.svc.signal(libc::SIGHUP);
    assert_eq!(
        p.lines_with("Configuration reload completed", Duration::from_secs(2))
            .len(),
        1
    );
    p.wait_metric(open, 0.0);
    let held: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect(p.addr).unwrap())
        .collect();
    p.wait_metric(open, 5.0);
    let mut sixth = TcpStream::connect(p.addr).unwrap();
    sixth
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = sixth.write_all(request("GET", "/x", &[]).as_bytes());
    let mut buf = Vec::new();
    let _ = sixth.read_to_end(&mut buf);
    assert!(buf.is_empty(), "the reloaded cap of 5 applies");
    drop(held);
    std::fs::remove_dir_all(dir).unwrap();
}
