//! Black-box HTTP tests of the standalone exposer (MET-T1, T3, T4, T5, T17, T24, T25).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::{blocking, expfmt, promtool_check, python_openmetrics_parse, start};
use test_support::{get, http_raw, request};

const PROM3_ACCEPT: &str = "Accept: application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

fn assert_common_headers(r: &test_support::Response) {
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(r.header("content-type").is_some());
    assert!(r.header("content-length").is_some());
    assert!(r.header("date").is_some());
    assert!(r.header("x-corr-id").is_some());
    assert!(r.header("transfer-encoding").is_none());
    for h in ["server", "set-cookie", "access-control-allow-origin"] {
        assert!(r.header(h).is_none(), "unexpected header {h}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_ok_and_head_has_same_headers_without_body() {
    let s = start(|o| o).await;
    let addr = s.addr;
    let (get_r, head_r) = blocking(move || {
        let g = get(addr, "/healthz", &[]);
        let h = http_raw(addr, request("HEAD", "/healthz", &[]).as_bytes(), true).unwrap();
        (g, h)
    })
    .await;
    assert_eq!(get_r.status, 200);
    assert_eq!(get_r.text(), "ok");
    assert_eq!(
        get_r.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_common_headers(&get_r);
    assert_eq!(head_r.status, 200);
    assert_eq!(head_r.header("content-length"), Some("2"));
    assert_eq!(head_r.header("content-type"), get_r.header("content-type"));
    assert!(head_r.body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_text_passes_expfmt_promtool_and_the_runbook_greps() {
    let s = start(|o| o).await;
    let addr = s.addr;
    let r = blocking(move || get(addr, "/metrics", &[])).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(r.header("vary"), Some("Accept, Accept-Encoding"));
    assert_common_headers(&r);
    let text = r.text();
    expfmt::check(&text, false).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(support::runbook_label_grep_matches_every_sample(&text));
    for fam in [
        "pq_kex_failures_total",
        "pq_verify_failures_total",
        "zk_verify_failures_total",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{fam}{{")))
            .unwrap_or_else(|| panic!("{fam} missing"));
        assert!(line.ends_with(" 0"), "{line}");
    }
    if let Some((code, out)) = promtool_check(&text, false) {
        assert_eq!((code, out.as_str()), (0, ""), "promtool rejected:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_golden_family_and_child_exists_at_start_and_health_gauges_follow_state() {
    let s = start(|o| o).await;
    s.health.set("config_loaded", false);
    let addr = s.addr;
    let text = blocking(move || get(addr, "/metrics", &[]).text()).await;
    for needle in [
        "request_latency_seconds_bucket{",
        "route=\"/metrics\",method=\"GET\"",
        "route=\"/healthz\",method=\"GET\"",
        "route=\"/readyz\",method=\"GET\"",
        "exposition_latency_seconds_count{",
        "exposition_size_bytes{",
        "exposition_series{",
        "bus_lagged_total{",
        "service_restarts_total{",
        "component=\"none\"",
        "io_timeouts_total{",
        "op=\"read\"",
        "op=\"write\"",
        "tls_handshake_failures_total{",
        "tls_handshake_seconds_count{",
        "zk_proof_latency_seconds_count{",
        "exposer_connections{",
        "metrics_series_overflow_total{",
        "metrics_exposition_errors_total{",
        "cause=\"foreign_invalid\"",
        "cause=\"foreign_panic\"",
        "health_degraded{",
    ] {
        assert!(text.contains(needle), "missing {needle}");
    }
    for reason in ron_metrics::REJECT_REASONS {
        assert!(
            text.contains(&format!("reason=\"{reason}\"}} 0")),
            "{reason}"
        );
    }
    assert!(text.contains("check=\"config_loaded\"} 0"));
    s.health.set("config_loaded", true);
    let text = blocking(move || get(addr, "/metrics", &[]).text()).await;
    assert!(text.contains("check=\"config_loaded\"} 1"));
    assert!(
        text.lines()
            .any(|l| l.starts_with("health_degraded{") && l.ends_with(" 0"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_get_methods_bodies_and_unknown_paths_are_refused_and_counted() {
    let s = start(|o| o).await;
    let addr = s.addr;
    let results = blocking(move || {
        let mut out = Vec::new();
        for path in ["/metrics", "/healthz", "/readyz"] {
            for m in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
                let r = http_raw(
                    addr,
                    request(m, path, &["Content-Length: 0"]).as_bytes(),
                    false,
                )
                .unwrap();
                out.push((format!("{m} {path}"), r));
            }
        }
        let r = http_raw(
            addr,
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            false,
        )
        .unwrap();
        out.push(("GET with body".into(), r));
        let r = http_raw(
            addr,
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            false,
        )
        .unwrap();
        out.push(("chunked GET".into(), r));
        out.push(("404".into(), get(addr, "/nope", &[])));
        for p in ["/metrics/", "/METRICS", "/"] {
            out.push((p.into(), get(addr, p, &[])));
        }
        out.push(("query".into(), get(addr, "/healthz?x=1", &[])));
        out
    })
    .await;
    for (what, r) in &results[..15] {
        assert_eq!(r.status, 405, "{what}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{what}");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["code"], "method_not_allowed");
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys.len(), 3);
        assert_eq!(v["corr_id"], r.header("x-corr-id").unwrap());
    }
    for (what, r) in &results[15..17] {
        assert_eq!(r.status, 415, "{what}");
        assert_eq!(r.header("connection"), Some("close"));
        assert!(r.text().contains("unsupported_media_type"));
    }
    for (what, r) in &results[17..21] {
        assert_eq!(r.status, 404, "{what}");
        assert!(r.text().contains("\"code\":\"not_found\""));
    }
    assert_eq!(results[21].1.status, 200, "query string is ignored");
    let count = |reason: &str| s.metrics.rejected_total.with_label_values(&[reason]).get();
    assert_eq!(count("method"), 15);
    assert_eq!(count("body"), 2);
    assert_eq!(count("not_found"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_continue_gets_no_100_and_the_body_is_never_read() {
    let s = start(|o| o).await;
    let addr = s.addr;
    let head = blocking(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n")
            .unwrap();
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
    .await;
    assert!(head.starts_with("HTTP/1.1 415 "), "{head}");
    assert!(!head.contains("100 Continue"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus3_accept_gets_openmetrics_and_others_get_text() {
    let s = start(|o| o).await;
    let addr = s.addr;
    let (om, others) = blocking(move || {
        let om = get(addr, "/metrics", &[PROM3_ACCEPT]);
        let others: Vec<_> = [
            "Accept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
            "Accept: */*",
            "Accept: ;;;garbage==,",
        ]
        .iter()
        .map(|h| get(addr, "/metrics", &[h]))
        .collect();
        (om, others)
    })
    .await;
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = om.text();
    assert!(text.ends_with("# EOF\n"));
    assert!(text.contains("# TYPE rejected counter\n"));
    assert!(text.contains("\nrejected_total{"));
    expfmt::check(&text, true).unwrap_or_else(|e| panic!("{e}"));
    if let Some(parsed) = python_openmetrics_parse(&text) {
        let n = parsed.unwrap_or_else(|e| panic!("python parser rejected: {e}"));
        assert!(n > 50);
    }
    for r in others {
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_applies_to_large_bodies_only() {
    let m = ron_metrics::Metrics::builder()
        .env(ron_metrics::EnvSource::fixed::<&str, &str>([]))
        .synthetic_load(true)
        .build()
        .unwrap();
    let s = support::start_with(m, |o| o).await;
    let addr = s.addr;
    let (big, small) = blocking(move || {
        (
            get(addr, "/metrics", &["Accept-Encoding: gzip"]),
            get(addr, "/healthz", &["Accept-Encoding: gzip"]),
        )
    })
    .await;
    assert_eq!(big.header("content-encoding"), Some("gzip"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&big.body[..])
        .read_to_string(&mut text)
        .unwrap();
    expfmt::check(&text, false).unwrap_or_else(|e| panic!("{e}"));
    assert!(small.header("content-encoding").is_none());

    // A body under gzip_min_bytes stays identity even when gzip is offered.
    let s2 = start(|o| o.gzip_min_bytes(1_000_000)).await;
    let addr2 = s2.addr;
    let r = blocking(move || get(addr2, "/metrics", &["Accept-Encoding: gzip"])).await;
    assert!(r.header("content-encoding").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlation_ids_are_echoed_when_valid_and_replaced_by_ulids_otherwise() {
    let s = start(|o| o).await;
    let addr = s.addr;
    let long = format!("X-Corr-ID: {}", "a".repeat(65));
    let (ok, spaced, too_long) = blocking(move || {
        (
            get(addr, "/healthz", &["X-Corr-ID: abc-1"]),
            http_raw(
                addr,
                b"POST /metrics HTTP/1.1\r\nHost: x\r\nX-Corr-ID: a b\r\nConnection: close\r\n\r\n",
                false,
            )
            .unwrap(),
            get(addr, "/nope", &[&long]),
        )
    })
    .await;
    assert_eq!(ok.header("x-corr-id"), Some("abc-1"));
    for r in [&spaced, &too_long] {
        let id = r.header("x-corr-id").unwrap();
        assert_eq!(id.len(), 26, "{id}");
        assert!(r.text().contains(&format!("\"corr_id\":\"{id}\"")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_h2_prefaces_and_oversized_headers_never_get_special_service() {
    let s = start(|o| o).await;
    let addr = s.addr;
    let (ws, h2, big, garbage) = blocking(move || {
        let ws = http_raw(
            addr,
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            false,
        )
        .unwrap();
        let h2 = http_raw(addr, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", false);
        let filler = format!("X-Fill: {}", "y".repeat(9 * 1024));
        let big = http_raw(addr, request("GET", "/metrics", &[&filler]).as_bytes(), false).unwrap();
        let garbage = http_raw(addr, b"\x00\x01\x02 nonsense\r\n\r\n", false);
        (ws, h2, big, garbage)
    })
    .await;
    assert_eq!(ws.status, 200);
    assert_eq!(ws.header("connection"), Some("close"));
    // A close without an answer is allowed too; HTTP/2 service never is.
    if let Ok(r) = h2 {
        assert!(r.status == 400 || r.status == 505, "h2 got {}", r.status);
    }
    assert_eq!(big.status, 431);
    if let Ok(r) = garbage {
        assert_eq!(r.status, 400);
    }
    let count = |reason: &str| s.metrics.rejected_total.with_label_values(&[reason]).get();
    assert_eq!(count("header_too_large"), 1);
    assert_eq!(count("protocol"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_serves_pipelined_requests_in_order() {
    let s = start(|o| o).await;
    let addr = s.addr;
    let all = blocking(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut buf = Vec::new();
        c.read_to_end(&mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    })
    .await;
    let first = all.find("\r\n\r\nok").expect("healthz answer");
    let second = all.find("{\"degraded\":false").expect("readyz answer");
    assert!(first < second);
    assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 2);
}
