//! Black-box tests of svc-edge's directory-pack serving against the real binary
//! (EDGE-T2, T3, T4, T5, T6, T7, T8, T22, T23, T26, T27 as far as directory packs go).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use test_support::{
    Service, command, get, http_raw, json_field, request, run_with_stdin, temp_dir, tool,
};

const BIN: &str = env!("CARGO_BIN_EXE_svc-edge");

struct Edge {
    svc: Service,
    api: SocketAddr,
    metrics: SocketAddr,
    dir: PathBuf,
}

fn pack_dir(tag: &str) -> PathBuf {
    let dir = temp_dir(tag);
    let pack = dir.join("static");
    std::fs::create_dir_all(pack.join("sub")).unwrap();
    std::fs::write(pack.join("hello.txt"), b"hello from svc-edge\n").unwrap();
    let thousand: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(pack.join("k.bin"), &thousand).unwrap();
    std::fs::write(pack.join("empty.bin"), b"").unwrap();
    std::fs::write(pack.join("sub/a.json"), b"{\"a\":1}").unwrap();
    std::fs::write(pack.join(".b3sums-not"), b"x").unwrap();
    // An hour-old mtime, so If-Range dates can hold (LM must be ≤ now − 1 s).
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    for f in ["hello.txt", "k.bin"] {
        let file = std::fs::File::options()
            .write(true)
            .open(pack.join(f))
            .unwrap();
        file.set_modified(old).unwrap();
    }
    std::os::unix::fs::symlink("/etc/passwd", pack.join("passwd")).unwrap();
    dir
}

fn start(dir: &Path, extra: &[(&str, &str)]) -> Edge {
    let pack = dir.join("static");
    let mut env = vec![
        ("SVC_EDGE_BIND_ADDR", "127.0.0.1:0"),
        ("SVC_EDGE_METRICS_ADDR", "127.0.0.1:0"),
        ("SVC_EDGE_SECURITY__AMNESIA", "true"),
        ("SVC_EDGE_ACCESS_LOG", "all"),
    ];
    let pack_s = pack.to_str().unwrap().to_owned();
    env.push(("SVC_EDGE_EDGE__PACKS", &pack_s));
    env.extend_from_slice(extra);
    let mut cmd = command(Path::new(BIN), &env);
    cmd.current_dir(dir);
    let (svc, lines) = Service::start(cmd, "listening", 2);
    let addr_of = |which: &str| -> SocketAddr {
        lines
            .iter()
            .find(|l| l.contains(&format!("\"listener\":\"{which}\"")))
            .and_then(|l| json_field(l, "addr"))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no {which} listening line"))
    };
    let e = Edge {
        api: addr_of("api"),
        metrics: addr_of("metrics"),
        svc,
        dir: dir.to_path_buf(),
    };
    wait_ready(e.api);
    e
}

fn wait_ready(addr: SocketAddr) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while get(addr, "/readyz", &[]).status != 200 {
        assert!(std::time::Instant::now() < deadline, "not ready within 5 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn b3(bytes: &[u8]) -> String {
    format!("\"b3:{}\"", blake3::hash(bytes).to_hex())
}

fn metric(e: &Edge, series: &str) -> f64 {
    test_support::scrape(e.metrics, series)
}

#[test]
fn file_responses_carry_strong_b3_etags_and_the_full_header_set() {
    let e = start(&pack_dir("hdr"), &[]);
    let r = get(e.api, "/edge/assets/hello.txt", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello from svc-edge\n");
    assert_eq!(r.header("etag").unwrap(), b3(b"hello from svc-edge\n"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("content-length"), Some("20"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
    assert!(r.header("last-modified").is_some());
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("x-corr-id").unwrap().len(), 26);
    assert!(r.header("server").is_none());
    let head = http_raw(
        e.api,
        request("HEAD", "/edge/assets/hello.txt", &[]).as_bytes(),
        true,
    )
    .unwrap();
    assert_eq!(head.status, 200);
    for h in [
        "etag",
        "content-length",
        "content-type",
        "last-modified",
        "cache-control",
    ] {
        assert_eq!(head.header(h), r.header(h), "{h}");
    }
    assert_eq!(
        get(e.api, "/edge/assets/hello.txt", &["X-Corr-ID: abc.1"]).header("x-corr-id"),
        Some("abc.1")
    );
    assert_eq!(
        get(e.api, "/edge/assets/hello.txt", &["X-Corr-ID: a b"])
            .header("x-corr-id")
            .unwrap()
            .len(),
        26
    );
    if let Some(b3sum) = tool("b3sum") {
        let out = std::process::Command::new(b3sum)
            .arg(e.dir.join("static/hello.txt"))
            .output()
            .unwrap();
        let hex = String::from_utf8_lossy(&out.stdout)
            .split(' ')
            .next()
            .unwrap()
            .to_owned();
        assert_eq!(r.header("etag").unwrap(), format!("\"b3:{hex}\""));
    }
}

#[test]
fn hostile_paths_never_serve_content() {
    let e = start(&pack_dir("paths"), &[]);
    for p in [
        "../hello.txt",
        "%2e%2e/hello.txt",
        "..%2fhello.txt",
        "sub%2Fa.json",
        "sub%5Ca.json",
        "hello%00.txt",
        "%c0%ae%c0%ae/x",
        "sub//a.json",
    ] {
        let r = get(e.api, &format!("/edge/assets/{p}"), &[]);
        assert_eq!(r.status, 400, "{p}");
        assert_eq!(r.header("x-reason"), Some("bad_path"), "{p}");
    }
    for p in [
        "%252e%252e/hello.txt",
        ".b3sums-not",
        "passwd",
        "sub",
        "nope.txt",
    ] {
        let r = get(e.api, &format!("/edge/assets/{p}"), &[]);
        assert_eq!(r.status, 404, "{p}");
        assert!(!r.text().contains("root:"), "{p}");
    }
    let long = format!("/edge/assets/{}", "a".repeat(5000));
    assert_eq!(get(e.api, &long, &[]).status, 414);
}

#[test]
fn range_matrix_on_a_thousand_byte_file() {
    let e = start(&pack_dir("range"), &[]);
    let body: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let r = |v: &str| get(e.api, "/edge/assets/k.bin", &[&format!("Range: {v}")]);
    let one = r("bytes=0-99");
    assert_eq!(
        (one.status, one.header("content-range")),
        (206, Some("bytes 0-99/1000"))
    );
    assert_eq!(one.body, &body[..100]);
    assert_eq!(one.header("etag").unwrap(), b3(&body));
    assert_eq!(
        r("bytes=100-").header("content-range"),
        Some("bytes 100-999/1000")
    );
    assert_eq!(r("bytes=-10").body, &body[990..]);
    assert_eq!(
        r("bytes=990-2000").header("content-range"),
        Some("bytes 990-999/1000")
    );
    for v in ["bytes=1000-", "bytes=-0"] {
        let x = r(v);
        assert_eq!(
            (x.status, x.header("content-range")),
            (416, Some("bytes */1000")),
            "{v}"
        );
        assert!(x.header("etag").is_some());
    }
    for v in ["bytes=5-2", "abc", "items=0-1"] {
        assert_eq!(r(v).status, 200, "{v}");
    }
    let seventeen = (0..17)
        .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(r(&format!("bytes={seventeen}")).status, 200);
    assert_eq!(
        r("bytes=0-1,1000-1001").header("content-range"),
        Some("bytes 0-1/1000")
    );
    assert_eq!(
        r("bytes=0-9,5-20").header("content-range"),
        Some("bytes 0-20/1000")
    );
    assert_eq!(
        r("bytes=0-0,1-1").header("content-range"),
        Some("bytes 0-1/1000")
    );
    let two_lines = get(
        e.api,
        "/edge/assets/k.bin",
        &["Range: bytes=0-1", "Range: bytes=2-3"],
    );
    assert_eq!(two_lines.status, 200);
    let head = http_raw(
        e.api,
        request("HEAD", "/edge/assets/k.bin", &["Range: bytes=0-1"]).as_bytes(),
        true,
    )
    .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(
        get(e.api, "/edge/assets/empty.bin", &["Range: bytes=0-"]).status,
        200
    );
    assert_eq!(metric(&e, "edge_range_requests_total{result=\"416\"}"), 2.0);
    assert_eq!(
        metric(&e, "edge_range_requests_total{result=\"malformed\"}"),
        3.0
    );
    assert_eq!(metric(&e, "rejected_total{reason=\"invalid_range\"}"), 2.0);
}

#[test]
fn multipart_ranges_keep_request_order_with_exact_length() {
    let e = start(&pack_dir("multi"), &[]);
    let body: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    for (spec, order) in [
        ("0-1,10-19", [(0, 1), (10, 19)]),
        ("10-19,0-1", [(10, 19), (0, 1)]),
    ] {
        let r = get(
            e.api,
            "/edge/assets/k.bin",
            &[&format!("Range: bytes={spec}")],
        );
        assert_eq!(r.status, 206);
        let ct = r.header("content-type").unwrap().to_owned();
        let boundary = ct
            .strip_prefix("multipart/byteranges; boundary=")
            .expect(&ct);
        assert_eq!(boundary.len(), 32);
        assert_eq!(
            r.header("content-length")
                .unwrap()
                .parse::<usize>()
                .unwrap(),
            r.body.len()
        );
        let text = r.body.clone();
        let mut at = 0;
        for (a, b) in order {
            let header = format!(
                "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {a}-{b}/1000\r\n\r\n"
            );
            assert_eq!(&text[at..at + header.len()], header.as_bytes());
            at += header.len();
            assert_eq!(&text[at..at + (b - a + 1)], &body[a..=b]);
            at += b - a + 1;
        }
        assert_eq!(&text[at..], format!("\r\n--{boundary}--\r\n").as_bytes());
    }
}

#[test]
fn conditional_requests_follow_rfc_9110_precedence() {
    let e = start(&pack_dir("cond"), &[]);
    let ok = get(e.api, "/edge/assets/hello.txt", &[]);
    let tag = ok.header("etag").unwrap().to_owned();
    let lm = ok.header("last-modified").unwrap().to_owned();
    let h = |hs: &[&str]| get(e.api, "/edge/assets/hello.txt", hs);
    for inm in [
        tag.clone(),
        format!("W/{tag}"),
        format!("\"x\", {tag}"),
        "*".into(),
    ] {
        let r = h(&[&format!("If-None-Match: {inm}")]);
        assert_eq!(r.status, 304, "{inm}");
        assert!(r.body.is_empty());
        assert!(r.header("content-type").is_none());
        assert_eq!(r.header("etag"), Some(tag.as_str()));
        assert!(r.header("cache-control").is_some());
    }
    assert_eq!(
        h(&[&format!(
            "If-None-Match: {}",
            tag.to_uppercase().replace("B3", "b3")
        )])
        .status,
        200
    );
    assert_eq!(h(&[&format!("If-Match: {tag}")]).status, 200);
    assert_eq!(h(&["If-Match: *"]).status, 200);
    assert_eq!(h(&[&format!("If-Match: W/{tag}")]).status, 412);
    assert_eq!(h(&["If-Match: \"nope\""]).status, 412);
    assert_eq!(
        h(&["If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT"]).status,
        412
    );
    assert_eq!(h(&[&format!("If-Modified-Since: {lm}")]).status, 304);
    assert_eq!(
        h(&[
            &format!("If-Modified-Since: {lm}"),
            "If-None-Match: \"other\""
        ])
        .status,
        200
    );
    assert_eq!(h(&["If-Modified-Since: yesterday"]).status, 200);
    assert_eq!(
        h(&[&format!("If-Range: {tag}"), "Range: bytes=0-4"]).status,
        206
    );
    assert_eq!(
        h(&[&format!("If-Range: W/{tag}"), "Range: bytes=0-4"]).status,
        200
    );
    assert_eq!(
        h(&[&format!("If-Range: {lm}"), "Range: bytes=0-4"]).status,
        206
    );
    assert_eq!(
        h(&["If-Match: \"nope\"", &format!("If-None-Match: {tag}")]).status,
        412
    );
    assert_eq!(
        get(
            e.api,
            "/edge/assets/missing.txt",
            &[&format!("If-Match: {tag}")]
        )
        .status,
        404
    );
}

#[test]
fn bodies_methods_and_errors_are_refused_with_json_and_no_store() {
    let e = start(&pack_dir("admit"), &[]);
    let big = "x".repeat(2 << 20);
    let post = http_raw(
        e.api,
        format!("POST /edge/assets/hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", big.len()).as_bytes(),
        false,
    )
    .unwrap();
    assert_eq!(post.status, 413);
    let get_big = http_raw(
        e.api,
        format!("GET /edge/assets/hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", big.len()).as_bytes(),
        false,
    )
    .unwrap();
    assert_eq!(get_big.status, 413);
    let small = http_raw(
        e.api,
        b"GET /edge/assets/hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789",
        false,
    )
    .unwrap();
    assert_eq!(small.status, 200);
    let put = http_raw(
        e.api,
        request("PUT", "/edge/assets/hello.txt", &["Content-Length: 0"]).as_bytes(),
        false,
    )
    .unwrap();
    assert_eq!(put.status, 405);
    assert_eq!(put.header("allow"), Some("GET, HEAD"));
    let opts = http_raw(
        e.api,
        request("OPTIONS", "/edge/assets/hello.txt", &[]).as_bytes(),
        false,
    )
    .unwrap();
    assert_eq!(opts.status, 405);
    assert!(opts.header("access-control-allow-origin").is_none());
    for r in [
        &post,
        &get_big,
        &put,
        &get(e.api, "/edge/assets/nope", &[]),
        &get(e.api, "/edge/assets/..", &[]),
    ] {
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["corr_id"], r.header("x-corr-id").unwrap());
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert!(!r.text().contains(e.dir.to_str().unwrap()));
    }
    assert_eq!(metric(&e, "rejected_total{reason=\"body_cap\"}"), 2.0);
    assert_eq!(metric(&e, "rejected_total{reason=\"method\"}"), 2.0);
}

#[test]
fn rate_limit_sheds_with_retry_after_and_probes_stay_exempt() {
    let e = start(&pack_dir("rps"), &[("SVC_EDGE_INGRESS__RPS_LIMIT", "5")]);
    let statuses: Vec<u16> = (0..10)
        .map(|_| get(e.api, "/edge/assets/hello.txt", &[]).status)
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    let r = (0..10)
        .map(|_| get(e.api, "/edge/assets/hello.txt", &[]))
        .find(|r| r.status == 429)
        .expect("a 429");
    assert_eq!(r.header("x-reason"), Some("rate_limit"));
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert!(r.text().contains("\"code\":\"rate_limit\""));
    assert_eq!(get(e.api, "/healthz", &[]).status, 200);
}

#[test]
fn metrics_pass_promtool_with_every_family_present_and_base_labels() {
    let e = start(&pack_dir("metrics"), &[]);
    let text = get(e.metrics, "/metrics", &[]).text();
    for fam in [
        "http_requests_total",
        "request_latency_seconds",
        "rejected_total",
        "busy_rejections_total",
        "edge_inflight",
        "edge_inflight_limit",
        "edge_queue_depth",
        "edge_queue_dropped_total",
        "io_timeouts_total",
        "edge_cache_hits_total",
        "edge_cache_misses_total",
        "edge_range_requests_total",
        "edge_live_fill_coalesced_total",
        "tls_handshake_failures_total",
        "edge_bytes_out_total",
        "edge_cas_writes_total",
        "edge_integrity_failures_total",
        "edge_pack_mounts_total",
        "edge_packs_mounted",
        "edge_ram_cache_bytes",
        "edge_ready",
        "config_reloads_total",
    ] {
        assert!(text.contains(&format!("# TYPE {fam} ")), "{fam} missing");
    }
    assert!(
        text.lines().filter(|l| !l.starts_with('#')).all(|l| l
            .contains("{service=\"svc-edge\",instance=\"")
            && l.contains("amnesia=\"on\""))
    );
    let runbook = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with("rejected_total")
                || l.starts_with("edge_queue_depth")
                || l.starts_with("edge_queue_dropped")
                || l.starts_with("busy_rejections_total")
        })
        .map(|l| l.split('{').next().unwrap())
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(runbook.len(), 4);
    if let Some(p) = tool("promtool") {
        let (code, out, err) = run_with_stdin(&p, &["check", "metrics"], text.as_bytes());
        assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    }
}

#[test]
fn every_stdout_line_is_json_with_event_and_request_lines_have_numeric_latency() {
    let e = start(&pack_dir("logs"), &[]);
    get(e.api, "/edge/assets/hello.txt", &[]);
    get(e.api, "/edge/assets/nope", &[]);
    let lines = e.svc.drain_lines(Duration::from_millis(400));
    assert!(lines.iter().any(|l| l.contains("\"event\":\"request\"")));
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"));
        for k in ["ts", "level", "message", "event"] {
            assert!(v[k].is_string(), "{k} in {l}");
        }
        assert_eq!(v["service"], "svc-edge");
        if v["event"] == "request" {
            assert!(v["latency_ms"].is_number(), "{l}");
        }
    }
}

/// Runbook §5 "patterns to watch: reason=…": every error's request line carries the reason
/// its `X-Reason` header and `rejected_total` carry, including a 416, which is answered
/// from inside the route (it keeps the representation's ETag and Accept-Ranges).
#[test]
fn error_request_lines_carry_the_reason_of_x_reason() {
    let e = start(
        &pack_dir("reason-log"),
        &[("SVC_EDGE_ACCESS_LOG", "errors")],
    );
    let unsatisfiable = get(e.api, "/edge/assets/k.bin", &["Range: bytes=1000-"]);
    assert_eq!(unsatisfiable.status, 416);
    assert_eq!(unsatisfiable.header("x-reason"), Some("invalid_range"));
    let bad = get(e.api, "/edge/assets/%2e%2e/x", &[]);
    assert_eq!(bad.header("x-reason"), Some("bad_path"));
    let lines = e.svc.drain_lines(Duration::from_millis(400));
    let request = |status: u64| -> serde_json::Value {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["event"] == "request" && v["status"] == status)
            .unwrap_or_else(|| panic!("no {status} request line in {lines:?}"))
    };
    let line = request(416);
    assert_eq!(line["reason"], "invalid_range", "{line}");
    assert_eq!(line["range"], "bytes=1000-");
    assert_eq!(request(400)["reason"], "bad_path");
    assert_eq!(metric(&e, "rejected_total{reason=\"invalid_range\"}"), 1.0);
}

/// Spec §4.2: a request head must arrive within `timeout_secs` (else the connection closes
/// and `io_timeouts_total{op="client_header"}` counts it), but an idle keep-alive
/// connection waits up to 60 s for its next request: it is neither closed after
/// `timeout_secs` nor counted as a slow header (hyper's header timer counted both).
#[test]
fn idle_keep_alive_outlives_the_head_timeout_and_slow_heads_are_cut() {
    use std::io::{Read, Write};
    let e = start(
        &pack_dir("keepalive"),
        &[("SVC_EDGE_INGRESS__TIMEOUT_SECS", "1")],
    );
    let head = b"GET /edge/assets/hello.txt HTTP/1.1\r\nHost: edge\r\n\r\n";
    let read_response = |s: &mut std::net::TcpStream| -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.ends_with(b"hello from svc-edge\n") {
            let n = s.read(&mut buf).expect("response");
            assert!(
                n > 0,
                "closed mid-response: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    };
    let mut s = std::net::TcpStream::connect(e.api).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(head).unwrap();
    assert!(read_response(&mut s).starts_with("HTTP/1.1 200 "));
    // Idle for twice the head timeout, then the same connection serves again.
    std::thread::sleep(Duration::from_millis(2500));
    s.write_all(head).unwrap();
    assert!(read_response(&mut s).starts_with("HTTP/1.1 200 "));
    let client_header = "io_timeouts_total{op=\"client_header\"}";
    assert_eq!(metric(&e, client_header), 0.0);

    // A head that stalls half-way is cut after about timeout_secs, and counted.
    let mut slow = std::net::TcpStream::connect(e.api).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    slow.write_all(b"GET /edge/assets/hello.txt HTTP/1.1\r\nHo")
        .unwrap();
    let t = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = slow.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "no answer to a half head");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(metric(&e, client_header), 1.0);

    // The same after a keep-alive request: the next head's clock starts at its first byte.
    let mut s2 = std::net::TcpStream::connect(e.api).unwrap();
    s2.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s2.write_all(head).unwrap();
    read_response(&mut s2);
    s2.write_all(b"GET /edge/assets/hello.txt HTTP/1.1\r\n")
        .unwrap();
    assert_eq!(s2.read(&mut buf).unwrap_or(0), 0);
    assert_eq!(metric(&e, client_header), 2.0);
}

#[test]
fn sigterm_flips_readiness_then_exits_zero() {
    let mut e = start(&pack_dir("term"), &[]);
    e.svc.signal(libc::SIGTERM);
    assert_eq!(e.svc.wait_exit(Duration::from_secs(5)), Some(0));
}

#[test]
fn bad_config_exits_2_with_one_line_and_check_config_binds_nothing() {
    let dir = temp_dir("cfg");
    let file = dir.join("c.toml");
    std::fs::write(&file, "[edge]\npacks = [\"./static\"]\nnope = 1\n").unwrap();
    let out = command(Path::new(BIN), &[])
        .arg("--config")
        .arg(&file)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("svc-edge: config error: edge.nope"),
        "{err}"
    );
    assert!(err.contains("c.toml:3"), "{err}");
    let out = command(
        Path::new(BIN),
        &[("SVC_EDGE_FOO", "1"), ("SVC_EDGE_EDGE__PACKS", "x")],
    )
    .stderr(Stdio::piped())
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SVC_EDGE_FOO"));

    let d = pack_dir("check");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let pack = d.join("static");
    let out = command(
        Path::new(BIN),
        &[
            ("SVC_EDGE_BIND_ADDR", &addr),
            ("SVC_EDGE_EDGE__PACKS", pack.to_str().unwrap()),
        ],
    )
    .arg("--check-config")
    .output()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::write(
        pack.join(".b3sums"),
        format!("{}  hello.txt\n", blake3::hash(b"other").to_hex()),
    )
    .unwrap();
    let out = command(
        Path::new(BIN),
        &[("SVC_EDGE_EDGE__PACKS", pack.to_str().unwrap())],
    )
    .arg("--check-config")
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn cors_is_deny_by_default_and_listed_origins_get_preflights() {
    let e = start(&pack_dir("cors-off"), &[]);
    let r = get(
        e.api,
        "/edge/assets/hello.txt",
        &["Origin: https://app.example"],
    );
    assert!(
        r.headers
            .iter()
            .all(|(k, _)| !k.starts_with("access-control-"))
    );

    let e = start(
        &pack_dir("cors-on"),
        &[(
            "SVC_EDGE_SECURITY__CORS_ALLOW_ORIGINS",
            "https://app.example",
        )],
    );
    let r = get(
        e.api,
        "/edge/assets/hello.txt",
        &["Origin: https://app.example"],
    );
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    let expose = r.header("access-control-expose-headers").unwrap();
    assert!(expose.contains("ETag") && expose.contains("Content-Range"));
    let pre = |origin: &str| {
        http_raw(
            e.api,
            request(
                "OPTIONS",
                "/edge/assets/hello.txt",
                &[
                    &format!("Origin: {origin}"),
                    "Access-Control-Request-Method: GET",
                ],
            )
            .as_bytes(),
            false,
        )
        .unwrap()
    };
    let ok = pre("https://app.example");
    assert_eq!(ok.status, 204);
    assert_eq!(ok.header("access-control-allow-methods"), Some("GET, HEAD"));
    assert_eq!(ok.header("access-control-max-age"), Some("600"));
    let denied = pre("https://evil.example");
    assert_eq!(denied.status, 403);
    assert_eq!(denied.header("x-reason"), Some("cors"));
}

#[test]
fn sighup_applies_maintenance_and_rate_limit_and_keeps_old_config_when_invalid() {
    let dir = pack_dir("reload");
    let file = dir.join("edge.toml");
    let write = |maintenance: bool, rps: u32, inflight: u32| {
        std::fs::write(
            &file,
            format!(
                "bind_addr = \"127.0.0.1:0\"\nmetrics_addr = \"127.0.0.1:0\"\nmaintenance = {maintenance}\n[ingress]\nrps_limit = {rps}\nmax_inflight = {inflight}\n[edge]\npacks = [\"./static\"]\n[security]\namnesia = true\n"
            ),
        )
        .unwrap();
    };
    write(false, 1000, 64);
    let mut cmd = command(Path::new(BIN), &[]);
    cmd.current_dir(&dir).arg("--config").arg(&file);
    let (svc, lines) = Service::start(cmd, "listening", 2);
    let api: SocketAddr = lines
        .iter()
        .find(|l| l.contains("\"listener\":\"api\""))
        .and_then(|l| json_field(l, "addr"))
        .unwrap()
        .parse()
        .unwrap();
    let metrics: SocketAddr = lines
        .iter()
        .find(|l| l.contains("\"listener\":\"metrics\""))
        .and_then(|l| json_field(l, "addr"))
        .unwrap()
        .parse()
        .unwrap();
    wait_ready(api);
    let limit = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("edge_inflight_limit{"))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    assert_eq!(
        limit(&get(metrics, "/metrics", &[]).text()).as_deref(),
        Some("64")
    );

    write(true, 2, 7);
    svc.signal(libc::SIGHUP);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = get(api, "/readyz", &[]);
        if r.status == 503 {
            assert!(r.text().contains("maintenance"), "{}", r.text());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "maintenance never applied"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Traffic is still served in maintenance; the new rate limit (2/s) applies.
    let statuses: Vec<u16> = (0..6)
        .map(|_| get(api, "/edge/assets/hello.txt", &[]).status)
        .collect();
    assert!(
        statuses.contains(&200) && statuses.contains(&429),
        "{statuses:?}"
    );
    // The exported cap follows max_inflight (runbook §10: inflight ≥ 80 % of the cap).
    assert_eq!(
        limit(&get(metrics, "/metrics", &[]).text()).as_deref(),
        Some("7")
    );

    std::fs::write(&file, "this is = not [valid toml").unwrap();
    svc.signal(libc::SIGHUP);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = get(metrics, "/metrics", &[]).text();
        if text
            .lines()
            .any(|l| l.starts_with("config_reloads_total{") && l.contains("result=\"error\"} 1"))
        {
            assert!(
                text.lines()
                    .any(|l| l.starts_with("config_reloads_total{")
                        && l.contains("result=\"ok\"} 1"))
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "invalid reload not counted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        get(api, "/readyz", &[]).status,
        503,
        "old config (maintenance) kept"
    );
}
