//! Black-box tests of the CAS and live routes against the real binary (EDGE-T14 to T23 and
//! T26 as far as `/cas/b3` and `/edge/live` go), with an in-process HTTPS origin (test CA,
//! `localhost` certificate) reached through `allow_private=true` and `ca_file`.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::edge::{Edge, files_under, object_path};
use common::origin::{Background, Origin, delayed, full, redirect, streamed};
use test_support::{get, http_raw, json_field, request, temp_dir};

fn b3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// A live-mode config for `origin`, storing in `cas` (or RAM under amnesia when `None`),
/// with fast retries; `edge` and `ingress` lines are appended to their tables.
fn live_toml(origin: &Origin, cas: Option<&Path>, edge: &str, ingress: &str) -> String {
    let store = match cas {
        Some(dir) => format!("cas_dir = \"{}\"", dir.display()),
        None => String::new(),
    };
    // One worker: the live tests run on the single-threaded runtime that a one-CPU
    // deployment (and the benchmark) gets; the other test files use the multi-threaded one.
    format!(
        "drain_secs = 3\nworkers = 1\n\
         [edge]\nmode = \"live\"\nallow = [\"{host}\"]\nallow_private = true\n\
         ca_file = \"{ca}\"\n{store}\nfill_backoff_base_ms = 10\nfill_backoff_max_ms = 40\n{edge}\n\
         [ingress]\nrps_limit = 100000\n{ingress}\n\
         [security]\namnesia = {amnesia}\n",
        host = origin.host(),
        ca = origin.ca_file.display(),
        amnesia = cas.is_none(),
    )
}

fn live_path(origin: &Origin, path: &str) -> String {
    format!("/edge/live/{}{path}", origin.host())
}

/// Asserts a spec §3.3 error answer: status, JSON `code`, `X-Reason`, `no-store`, the
/// body's `corr_id` equal to the header, and no file-system path in the body (EDGE-T23).
fn assert_error(r: &test_support::Response, status: u16, code: &str, reason: Option<&str>) {
    assert_eq!(r.status, status, "{}", r.text());
    let body = r.text();
    assert_eq!(json_field(&body, "code").as_deref(), Some(code), "{body}");
    assert_eq!(
        json_field(&body, "corr_id").as_deref(),
        r.header("x-corr-id"),
        "{body}"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-reason"), reason);
    assert!(!body.contains('/'), "an error body names no path: {body}");
}

#[test]
fn edge_t14_cas_route_serves_verified_objects_and_quarantines_corrupt_ones() {
    let dir = temp_dir("live-t14");
    let cas = dir.join("cas");
    let good = b"a content-addressed object".as_slice();
    let good_hex = b3_hex(good);
    let victim_hex = b3_hex(b"victim bytes");
    for (hex, bytes) in [(&good_hex, good), (&victim_hex, b"victim bytez".as_slice())] {
        let path = object_path(&cas, hex);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let e = Edge::start(
        &dir,
        &format!("[edge]\ncas_dir = \"{}\"\n", cas.display()),
        &[],
    );
    e.wait_ready();

    let r = get(e.api, &format!("/cas/b3/{good_hex}"), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, good);
    assert_eq!(
        r.header("etag"),
        Some(format!("\"b3:{good_hex}\"").as_str())
    );
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert!(r.header("last-modified").is_none(), "CAS objects have none");
    let part = get(e.api, &format!("/cas/b3/{good_hex}"), &["Range: bytes=2-8"]);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &good[2..=8]);
    let etag = format!("If-None-Match: \"b3:{good_hex}\"");
    assert_eq!(
        get(e.api, &format!("/cas/b3/{good_hex}"), &[&etag]).status,
        304
    );

    for bad in [good_hex.to_uppercase(), good_hex[..63].to_owned()] {
        let r = get(e.api, &format!("/cas/b3/{bad}"), &[]);
        assert_error(&r, 400, "bad_request", Some("bad_request"));
    }
    let absent = get(e.api, &format!("/cas/b3/{}", "0".repeat(64)), &[]);
    assert_error(&absent, 404, "not_found", None);

    let corrupt = get(e.api, &format!("/cas/b3/{victim_hex}"), &[]);
    assert_error(&corrupt, 500, "integrity", Some("integrity"));
    assert!(!object_path(&cas, &victim_hex).exists());
    assert_eq!(files_under(&cas.join("quarantine")).len(), 1);
    let later = get(e.api, &format!("/cas/b3/{victim_hex}"), &[]);
    assert_error(&later, 404, "not_found", None);
    assert_eq!(e.metric("edge_integrity_failures_total{kind=\"cas\"}"), 1.0);
    assert_eq!(e.metric("edge_cache_hits_total{kind=\"cas\"}"), 3.0);
    assert!(e.metric("edge_cache_misses_total{kind=\"cas\"}") >= 2.0);
    assert_eq!(
        e.metric("http_requests_total{route=\"cas\",method=\"GET\",status=\"200\"}"),
        1.0
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_unusable_cas_dir_fails_cas_reachable() {
    let dir = temp_dir("live-unreachable");
    // A regular file where the CAS directory should be: it can be neither created nor read.
    let cas = dir.join("not-a-dir");
    std::fs::write(&cas, b"x").unwrap();
    let e = Edge::start(
        &dir,
        &format!("[edge]\ncas_dir = \"{}\"\n", cas.display()),
        &[],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = get(e.api, "/readyz", &[]);
        if r.status == 503 && r.text().contains("cas_reachable") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", r.text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(e.metrics, "/readyz", &[]).status, 503);
    assert_eq!(get(e.api, "/healthz", &[]).status, 200);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn edge_t15_a_live_fill_is_stored_with_a_ref_and_served_again_without_the_origin() {
    let origin = Background::start(|_, _| full(200, "tile bytes"));
    let dir = temp_dir("live-t15");
    let cas = dir.join("cas");
    let mut e = Edge::start(&dir, &live_toml(&origin, Some(&cas), "", ""), &[]);
    e.wait_ready();
    let hex = b3_hex(b"tile bytes");
    let path = live_path(&origin, "/tiles/a.txt");

    let first = get(e.api, &path, &[]);
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.text(), "tile bytes");
    assert_eq!(first.header("etag"), Some(format!("\"b3:{hex}\"").as_str()));
    assert_eq!(first.header("content-type"), Some("text/plain"));
    assert_eq!(first.header("cache-control"), Some("public, max-age=300"));
    assert!(first.header("last-modified").is_none());
    assert!(object_path(&cas, &hex).is_file());
    assert_eq!(files_under(&cas.join("refs")).len(), 1);
    assert!(files_under(&cas.join("tmp")).is_empty());

    let second = get(e.api, &path, &[]);
    assert_eq!(second.body, first.body);
    assert_eq!(origin.requests_for("/tiles/a.txt"), 1);
    let inm = format!("If-None-Match: \"b3:{hex}\"");
    assert_eq!(get(e.api, &path, &[&inm]).status, 304);
    // The fill landed in the CAS, so the CAS route serves it too.
    assert_eq!(get(e.api, &format!("/cas/b3/{hex}"), &[]).body, first.body);
    assert_eq!(origin.requests_for("/tiles/a.txt"), 1);

    assert_eq!(
        e.metric("edge_live_fill_attempts_total{host=\"localhost\"}"),
        1.0
    );
    assert_eq!(
        e.metric("edge_live_fill_success_total{host=\"localhost\"}"),
        1.0
    );
    assert_eq!(e.metric("edge_cache_hits_total{kind=\"live\"}"), 2.0);
    assert_eq!(e.metric("edge_cache_misses_total{kind=\"live\"}"), 1.0);
    assert_eq!(e.metric("edge_cas_writes_total{status=\"ok\"}"), 1.0);
    let fills = e.events("live_fill", Duration::from_millis(300));
    assert_eq!(fills.len(), 1, "{fills:?}");
    assert_eq!(
        json_field(&fills[0], "origin_host").as_deref(),
        Some("localhost")
    );
    assert_eq!(json_field(&fills[0], "hash").as_deref(), Some(hex.as_str()));
    assert!(fills[0].contains("\"size\":10"), "{}", fills[0]);
    let requests = e.events("request", Duration::ZERO);
    assert!(
        requests
            .iter()
            .any(|l| l.contains("\"route\":\"live\"") && l.contains(&hex)),
        "access log names the live route and the hash: {requests:?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn edge_t16_fifty_concurrent_requests_share_one_origin_fetch() {
    let origin = Background::start(|_, _| delayed(b"slow object", Duration::from_millis(500)));
    let dir = temp_dir("live-t16");
    let e = Edge::start(
        &dir,
        &live_toml(&origin, Some(&dir.join("cas")), "", ""),
        &[],
    );
    e.wait_ready();
    let path = live_path(&origin, "/slow.bin");
    let api = e.api;
    let bodies: Vec<_> = (0..50)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || get(api, &path, &[]))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    for r in &bodies {
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.body, b"slow object");
    }
    assert_eq!(origin.requests_for("/slow.bin"), 1);
    assert_eq!(
        e.metric("edge_live_fill_attempts_total{host=\"localhost\"}"),
        1.0
    );
    assert_eq!(e.metric("edge_live_fill_coalesced_total"), 49.0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn edge_t17_expected_digests_are_enforced_and_served_offline() {
    let origin = Background::start(|_, _| full(200, "pinned bytes"));
    let dir = temp_dir("live-t17");
    let cas = dir.join("cas");
    let hex = b3_hex(b"pinned bytes");
    {
        let e = Edge::start(&dir, &live_toml(&origin, Some(&cas), "", ""), &[]);
        e.wait_ready();
        let wrong = "ab".repeat(32);
        let r = get(
            e.api,
            &format!("{}?b3={wrong}", live_path(&origin, "/p.bin")),
            &[],
        );
        assert_error(&r, 502, "digest_mismatch", Some("digest_mismatch"));
        assert!(files_under(&cas.join("b3")).is_empty(), "no blob kept");
        assert!(files_under(&cas.join("refs")).is_empty(), "no ref kept");
        assert!(files_under(&cas.join("tmp")).is_empty(), "no temp kept");

        let r = get(
            e.api,
            &format!("{}?b3={hex}", live_path(&origin, "/p.bin")),
            &[],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.body, b"pinned bytes");
        assert_eq!(
            r.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert!(object_path(&cas, &hex).is_file());
    }
    let before = origin.requests_for("/p.bin");
    // Offline now: a pinned digest already in the CAS is served with no origin request,
    // and a miss is 404 without one.
    let offline = live_toml(&origin, Some(&cas), "", "").replace("\"live\"", "\"offline\"");
    let e = Edge::start(&dir, &offline, &[]);
    e.wait_ready();
    let r = get(
        e.api,
        &format!("{}?b3={hex}", live_path(&origin, "/other/name.bin")),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, b"pinned bytes");
    let miss = get(e.api, &live_path(&origin, "/never.bin"), &[]);
    assert_error(&miss, 404, "not_found", None);
    assert_eq!(
        origin.requests_for("/p.bin") + origin.requests_for("/never.bin"),
        before
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn edge_t18_hosts_redirects_and_queries_are_policed() {
    let port = Arc::new(std::sync::atomic::AtomicU16::new(0));
    let p = port.clone();
    let origin = Background::start(move |path, _| {
        let port = p.load(Ordering::SeqCst);
        match path {
            "/moved" => redirect(&format!("https://localhost:{port}/target")),
            "/target" => full(200, "redirect target"),
            "/elsewhere" => redirect(&format!("https://127.0.0.1:{port}/target")),
            "/plain" => redirect(&format!("http://localhost:{port}/target")),
            p if p.starts_with("/hop") => {
                let n: u32 = p[4..].parse().unwrap_or(0);
                redirect(&format!("https://localhost:{port}/hop{}", n + 1))
            }
            _ => full(404, "no"),
        }
    });
    port.store(origin.port, Ordering::SeqCst);
    let dir = temp_dir("live-t18");
    let e = Edge::start(
        &dir,
        &live_toml(&origin, Some(&dir.join("cas")), "", ""),
        &[],
    );
    e.wait_ready();

    let before = origin.connections.load(Ordering::SeqCst);
    let r = get(e.api, "/edge/live/example.org/a.txt", &[]);
    assert_error(&r, 403, "not_allowed", Some("not_allowed"));
    let r = get(
        e.api,
        &format!("/edge/live/127.0.0.1:{}/a.txt", origin.port),
        &[],
    );
    assert_error(&r, 403, "not_allowed", Some("not_allowed"));
    assert_eq!(origin.connections.load(Ordering::SeqCst), before);

    let upper = format!("/edge/live/LOCALHOST:{}/moved", origin.port);
    let r = get(e.api, &upper, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "redirect target");
    for bad in ["/elsewhere", "/plain", "/hop0"] {
        let r = get(e.api, &live_path(&origin, bad), &[]);
        assert_error(&r, 502, "upstream", Some("upstream"));
    }
    assert_eq!(
        origin.requests_for("/hop5"),
        1,
        "five hops followed, no sixth"
    );
    assert_eq!(origin.requests_for("/hop6"), 0);
    for q in ["?x=1", "?b3=zz", &format!("?b3={}&x=1", "a".repeat(64))] {
        let r = get(e.api, &format!("{}{q}", live_path(&origin, "/moved")), &[]);
        assert_error(&r, 400, "bad_request", Some("bad_request"));
    }
    drop(e);

    // With private addresses refused, localhost resolves to nothing usable.
    let strict = live_toml(&origin, Some(&dir.join("cas")), "", "")
        .replace("allow_private = true", "allow_private = false");
    let mut e = Edge::start(&dir, &strict, &[]);
    e.wait_ready();
    let before = origin.connections.load(Ordering::SeqCst);
    let r = get(e.api, &live_path(&origin, "/fresh"), &[]);
    assert_error(&r, 403, "not_allowed", Some("not_allowed"));
    assert_eq!(origin.connections.load(Ordering::SeqCst), before);
    let lines = e.events("request", Duration::from_millis(300));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"detail\":\"private_address\"")),
        "{lines:?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn edge_t19_size_time_status_and_retry_rules() {
    let origin = Background::start(|path, n| match path {
        "/big-declared" => full(200, vec![1u8; 4096]),
        "/big-chunked" => streamed(4, None),
        "/stall" => streamed(0, Some((10, 100))),
        "/flaky" if n <= 2 => full(503, "busy"),
        "/flaky" => full(200, "third time"),
        "/gone" => full(404, "gone"),
        "/forbidden" => full(403, "no"),
        _ => full(500, "?"),
    });
    let dir = temp_dir("live-t19");
    let cas = dir.join("cas");
    let toml = live_toml(
        &origin,
        Some(&cas),
        "max_object_bytes = 2048\nfill_timeout_secs = 1",
        "timeout_secs = 5",
    );
    let e = Edge::start(&dir, &toml, &[]);
    e.wait_ready();

    for big in ["/big-declared", "/big-chunked"] {
        let r = get(e.api, &live_path(&origin, big), &[]);
        assert_error(&r, 502, "too_large", Some("too_large"));
    }
    assert!(files_under(&cas.join("b3")).is_empty());
    assert!(files_under(&cas.join("tmp")).is_empty());

    let timeouts = e.metric("io_timeouts_total{op=\"fill\"}");
    let r = get(e.api, &live_path(&origin, "/stall"), &[]);
    assert_error(&r, 503, "timeout", Some("timeout"));
    assert_eq!(r.header("retry-after"), Some("2"));
    assert_eq!(e.metric("io_timeouts_total{op=\"fill\"}"), timeouts + 1.0);

    let r = get(e.api, &live_path(&origin, "/flaky"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "third time");
    assert_eq!(
        e.metric("edge_live_fill_retries_total{host=\"localhost\"}"),
        2.0
    );
    assert_eq!(origin.requests_for("/flaky"), 3);

    assert_error(
        &get(e.api, &live_path(&origin, "/gone"), &[]),
        404,
        "not_found",
        None,
    );
    assert_error(
        &get(e.api, &live_path(&origin, "/forbidden"), &[]),
        502,
        "upstream",
        Some("upstream_4xx"),
    );
    assert_eq!(origin.requests_for("/forbidden"), 1, "4xx is never retried");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn edge_t20_amnesia_fills_to_ram_and_writes_nothing() {
    let origin = Background::start(|path, _| match path {
        "/small" => full(200, "kept in ram"),
        _ => full(200, vec![9u8; 2000]),
    });
    let cwd = temp_dir("live-t20-cwd");
    let tmp = temp_dir("live-t20-tmp");
    let host = origin.host();
    let ca = origin.ca_file.display().to_string();
    let mut e = Edge::start_env(
        &cwd,
        &[
            ("TMPDIR", tmp.to_str().unwrap()),
            ("SVC_EDGE_EDGE__MODE", "live"),
            ("SVC_EDGE_EDGE__ALLOW", &host),
            ("SVC_EDGE_EDGE__ALLOW_PRIVATE", "true"),
            ("SVC_EDGE_EDGE__CA_FILE", &ca),
            ("SVC_EDGE_EDGE__RAM_CACHE_BYTES", "4096"),
            ("SVC_EDGE_SECURITY__AMNESIA", "true"),
        ],
    );
    e.wait_ready();
    let hex = b3_hex(b"kept in ram");
    let r = get(e.api, &live_path(&origin, "/small"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "kept in ram");
    assert_eq!(get(e.api, &live_path(&origin, "/small"), &[]).status, 200);
    assert_eq!(origin.requests_for("/small"), 1);
    assert_eq!(
        get(e.api, &format!("/cas/b3/{hex}"), &[]).text(),
        "kept in ram"
    );

    let big = get(e.api, &live_path(&origin, "/big"), &[]);
    assert_error(&big, 503, "amnesia", Some("amnesia"));
    assert_eq!(big.header("retry-after"), Some("60"));
    assert_eq!(e.metric("rejected_total{reason=\"amnesia\"}"), 1.0);
    assert!(e.metric("edge_ram_cache_bytes") >= 11.0);
    assert_eq!(get(e.api, "/readyz", &[]).status, 200);
    let text = get(e.metrics, "/metrics", &[]).text();
    assert!(text.contains("edge_ram_cache_bytes{") && text.contains("amnesia=\"on\""));
    let lines = e.events("live_fill", Duration::from_millis(200));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("persistence_required") || l.contains("amnesia")),
        "{lines:?}"
    );
    assert!(files_under(&cwd).is_empty(), "cwd untouched");
    assert!(files_under(&tmp).is_empty(), "TMPDIR untouched");
    std::fs::remove_dir_all(cwd).unwrap();
    std::fs::remove_dir_all(tmp).unwrap();
}

#[test]
fn edge_t21_inflight_cap_and_fill_queue_shed_with_busy() {
    let origin = Background::start(|_, _| delayed(b"slow", Duration::from_millis(1500)));
    let dir = temp_dir("live-t21");
    let toml = live_toml(
        &origin,
        Some(&dir.join("cas")),
        "fill_concurrency = 1\nfill_queue = 1",
        "max_inflight = 2",
    );
    let e = Edge::start(&dir, &toml, &[]);
    e.wait_ready();
    let api = e.api;
    let spawn = |p: &str| {
        let path = live_path(&origin, p);
        std::thread::spawn(move || get(api, &path, &[]))
    };
    let a = spawn("/a");
    std::thread::sleep(Duration::from_millis(150));
    let b = spawn("/b");
    std::thread::sleep(Duration::from_millis(150));
    // Both permits are held: the inflight cap sheds the third request.
    let r = get(e.api, &live_path(&origin, "/c"), &[]);
    assert_error(&r, 429, "busy", Some("busy"));
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(e.metric("busy_rejections_total{endpoint=\"live\"}"), 1.0);
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        let ready = get(e.api, "/readyz", &[]);
        if ready.status == 503 && ready.text().contains("under_pressure") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", ready.text());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get(e.api, "/healthz", &[]).status, 200);
    assert_eq!(a.join().unwrap().status, 200);
    assert_eq!(b.join().unwrap().status, 200);
    drop(e);

    // A full fill queue sheds too: one fill runs, one waits, the third is refused.
    let toml = live_toml(
        &origin,
        Some(&dir.join("cas2")),
        "fill_concurrency = 1\nfill_queue = 1",
        "",
    );
    let e = Edge::start(&dir, &toml, &[]);
    e.wait_ready();
    let api = e.api;
    let spawn = |p: &str| {
        let path = live_path(&origin, p);
        std::thread::spawn(move || get(api, &path, &[]))
    };
    let a = spawn("/q1");
    std::thread::sleep(Duration::from_millis(150));
    let b = spawn("/q2");
    std::thread::sleep(Duration::from_millis(150));
    let r = get(e.api, &live_path(&origin, "/q3"), &[]);
    assert_error(&r, 429, "busy", Some("busy"));
    assert_eq!(e.metric("edge_queue_dropped_total{queue=\"fill\"}"), 1.0);
    assert_eq!(e.metric("busy_rejections_total{endpoint=\"live\"}"), 1.0);
    assert_eq!(e.metric("rejected_total{reason=\"busy\"}"), 1.0);
    assert_eq!(a.join().unwrap().status, 200);
    assert_eq!(b.join().unwrap().status, 200);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn edge_t22_the_request_deadline_answers_503_while_the_fill_goes_on() {
    let origin = Background::start(|_, _| delayed(b"late bytes", Duration::from_millis(2500)));
    let dir = temp_dir("live-t22");
    let toml = live_toml(&origin, Some(&dir.join("cas")), "", "timeout_secs = 1");
    let e = Edge::start(&dir, &toml, &[]);
    e.wait_ready();
    let path = live_path(&origin, "/late");
    let r = get(e.api, &path, &[]);
    assert_error(&r, 503, "timeout", Some("timeout"));
    assert_eq!(e.metric("io_timeouts_total{op=\"fill\"}"), 1.0);
    // The fill finishes and stores; a retry then hits without a second origin request.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while e.metric("edge_live_fill_success_total{host=\"localhost\"}") < 1.0 {
        assert!(std::time::Instant::now() < deadline, "fill never completed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let again = get(e.api, &path, &[]);
    assert_eq!(again.status, 200);
    assert_eq!(again.text(), "late bytes");
    assert_eq!(origin.requests_for("/late"), 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn edge_t26_sigterm_during_a_fill_drains_it_and_exits_zero() {
    let origin = Background::start(|_, _| delayed(b"drained", Duration::from_millis(1000)));
    let dir = temp_dir("live-t26");
    let mut e = Edge::start(
        &dir,
        &live_toml(&origin, Some(&dir.join("cas")), "", ""),
        &[],
    );
    e.wait_ready();
    let (api, path) = (e.api, live_path(&origin, "/drain"));
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let inflight = std::thread::spawn(move || {
        let r = get(api, &path, &[]);
        flag.store(true, Ordering::SeqCst);
        r
    });
    std::thread::sleep(Duration::from_millis(200));
    e.svc.signal(libc::SIGTERM);
    let deadline = std::time::Instant::now() + Duration::from_millis(800);
    loop {
        if get(e.metrics, "/readyz", &[]).status == 503 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "readyz still 200");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!done.load(Ordering::SeqCst), "the fill is still running");
    assert!(
        http_raw(e.api, request("GET", "/healthz", &[]).as_bytes(), false).is_err(),
        "new API connections are refused while draining"
    );
    let r = inflight.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "drained");
    assert_eq!(e.svc.wait_exit(Duration::from_secs(4)), Some(0));
    let shutdown = e.events("shutdown", Duration::from_millis(200));
    assert_eq!(shutdown.len(), 1, "{shutdown:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn edge_t29_redbot_finds_nothing_bad_on_cas_and_live_objects() {
    let Some(redbot) = common::external("redbot") else {
        return;
    };
    let origin = Background::start(|_, _| full(200, "an object filled from the origin\n"));
    let dir = temp_dir("live-t29");
    let e = Edge::start(
        &dir,
        &live_toml(&origin, Some(&dir.join("cas")), "", ""),
        &[],
    );
    e.wait_ready();
    let live = live_path(&origin, "/doc.txt");
    assert_eq!(get(e.api, &live, &[]).status, 200);
    let hex = b3_hex(b"an object filled from the origin\n");
    let mut bad = Vec::new();
    for path in [live, format!("/cas/b3/{hex}")] {
        bad.extend(common::redbot_bad_notes(
            &redbot,
            &format!("http://{}{path}", e.api),
        ));
    }
    assert!(bad.is_empty(), "{bad:#?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn edge_t25_sighup_applies_rps_allow_packs_and_mode_and_keeps_old_on_error() {
    let origin = Background::start(|_, _| full(200, "fresh"));
    let dir = temp_dir("live-t25");
    let cas = dir.join("cas");
    let mut e = Edge::start(&dir, &live_toml(&origin, Some(&cas), "", ""), &[]);
    e.wait_ready();
    assert_eq!(get(e.api, &live_path(&origin, "/one"), &[]).status, 200);
    assert_eq!(get(e.api, "/edge/tiles/world/0/0/0.mvt", &[]).status, 404);

    // Offline, a different allow-list, the sample archive, 3 rps, and a new bind_addr
    // (which needs a restart, so the old port keeps serving).
    let world = common::repo_root().join("data/world.pmtiles");
    let next = format!(
        "bind_addr = \"127.0.0.1:1\"\nmetrics_addr = \"127.0.0.1:0\"\naccess_log = \"all\"\n\
         [edge]\nmode = \"offline\"\nallow = [\"localhost:1\"]\nallow_private = true\n\
         ca_file = \"{}\"\ncas_dir = \"{}\"\npacks = [\"{}\"]\n[ingress]\nrps_limit = 3\n",
        origin.ca_file.display(),
        cas.display(),
        world.display()
    );
    std::fs::write(dir.join("svc-edge.toml"), next).unwrap();
    e.svc.signal(libc::SIGHUP);
    let reloads = e.events("config_reload", Duration::from_millis(1500));
    assert_eq!(reloads.len(), 1, "{reloads:?}");
    assert!(reloads[0].contains("\"result\":\"ok\""), "{}", reloads[0]);
    assert!(
        reloads[0].contains("bind_addr"),
        "restart_required: {}",
        reloads[0]
    );
    assert_eq!(e.metric("config_reloads_total{result=\"ok\"}"), 1.0);

    std::thread::sleep(Duration::from_millis(1100)); // a full token bucket at 3 rps
    let tile = get(e.api, "/edge/tiles/world/0/0/0.mvt", &[]);
    assert_eq!(tile.status, 200, "packs applied, old port still serving");
    let before = origin.requests_for("/two");
    let unlisted = get(e.api, &live_path(&origin, "/two"), &[]);
    assert_error(&unlisted, 403, "not_allowed", Some("not_allowed"));
    let offline_miss = get(e.api, "/edge/live/localhost:1/two", &[]);
    assert_error(&offline_miss, 404, "not_found", None);
    assert_eq!(origin.requests_for("/two"), before, "offline: no egress");
    let statuses: Vec<u16> = (0..8)
        .map(|_| get(e.api, "/edge/assets/world.pmtiles", &["Range: bytes=0-1"]).status)
        .collect();
    assert!(statuses.contains(&429), "rps_limit=3 applied: {statuses:?}");

    std::fs::write(dir.join("svc-edge.toml"), "[edge]\nmode = 7\n").unwrap();
    e.svc.signal(libc::SIGHUP);
    let reloads = e.events("config_reload", Duration::from_millis(1500));
    assert!(
        reloads.iter().any(|l| l.contains("\"result\":\"error\"")),
        "{reloads:?}"
    );
    assert_eq!(e.metric("config_reloads_total{result=\"error\"}"), 1.0);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        get(e.api, "/edge/tiles/world/0/0/0.mvt", &[]).status,
        200,
        "the old config and packs stay whole"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn debug_logging_adds_request_and_range_spans_with_the_corr_id() {
    let dir = temp_dir("live-spans");
    let cas = dir.join("cas");
    let body = b"span test object".as_slice();
    let hex = b3_hex(body);
    let path = object_path(&cas, &hex);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
    let mut e = Edge::start(
        &dir,
        &format!("[edge]\ncas_dir = \"{}\"\n", cas.display()),
        &[("RUST_LOG", "debug")],
    );
    e.wait_ready();
    let r = get(
        e.api,
        &format!("/cas/b3/{hex}"),
        &["Range: bytes=9-2", "X-Corr-ID: span-check-1"],
    );
    assert_eq!(r.status, 200, "a malformed Range is ignored");
    let lines = e.events("range_malformed", Duration::from_millis(400));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        json_field(&lines[0], "corr_id").as_deref(),
        Some("span-check-1")
    );
    assert_eq!(json_field(&lines[0], "range").as_deref(), Some("bytes=9-2"));
    std::fs::remove_dir_all(dir).unwrap();
}
