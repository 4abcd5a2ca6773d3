//! Black-box tests of `/metrics` against the real binary (SEN-T29): after one request
//! every family of spec section 5 has samples carrying the four base labels, the quantile
//! lines are there, `promtool check metrics` accepts the exposition, the runbook's alert
//! rules pass `promtool check rules`, and counters never go down across a SIGHUP reload.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::upstream::Upstream;
use common::{Proxy, external};
use test_support::{get, run_with_stdin, temp_dir};

/// Every family of SEN-R44 with its type.
const FAMILIES: &[(&str, &str)] = &[
    ("sentinel_requests_total", "counter"),
    ("sentinel_request_duration_seconds", "histogram"),
    ("sentinel_request_duration_quantile_seconds", "summary"),
    ("sentinel_error_rate", "gauge"),
    ("sentinel_in_flight_requests", "gauge"),
    ("sentinel_open_connections", "gauge"),
    ("sentinel_connections_total", "counter"),
    ("sentinel_connections_rejected_total", "counter"),
    ("sentinel_connections_max", "gauge"),
    ("sentinel_downstream_errors_total", "counter"),
    ("sentinel_upstream_health", "gauge"),
    ("sentinel_upstream_in_flight", "gauge"),
    ("sentinel_upstream_attempts_total", "counter"),
    ("sentinel_health_checks_total", "counter"),
    ("sentinel_passive_ejections_total", "counter"),
    ("sentinel_circuit_breaker_state", "gauge"),
    ("sentinel_circuit_breaker_trips_total", "counter"),
    ("sentinel_retries_total", "counter"),
    ("sentinel_rate_limited_total", "counter"),
    ("sentinel_rate_limit_keys", "gauge"),
    ("sentinel_connection_pool_open", "gauge"),
    ("sentinel_connection_pool_in_use", "gauge"),
    ("sentinel_connection_pool_idle", "gauge"),
    ("sentinel_connection_pool_connects_total", "counter"),
    ("sentinel_connection_pool_reused_total", "counter"),
    ("sentinel_connection_pool_exhausted_total", "counter"),
    ("sentinel_open_tunnels", "gauge"),
    ("sentinel_config_reloads_total", "counter"),
    ("sentinel_config_generation", "gauge"),
    (
        "sentinel_config_last_reload_success_timestamp_seconds",
        "gauge",
    ),
    ("sentinel_memory_usage_bytes", "gauge"),
    ("sentinel_access_log_dropped_total", "counter"),
    ("sentinel_log_write_errors_total", "counter"),
    ("sentinel_panics_total", "counter"),
];

const BASE_LABELS: [&str; 4] = [
    "service=\"sentinel\"",
    "instance=\"",
    "build_version=\"",
    "amnesia=\"",
];

fn config(up: &Upstream, retries: u32) -> String {
    format!(
        r#"server {{
    listen "127.0.0.1:0"
}}
listeners {{
    listener "side" {{
        address "127.0.0.1:0"
    }}
}}
metrics {{
    address "127.0.0.1:0"
}}
upstream "app" {{
    targets {{
        target "{addr}"
    }}
    health-check {{
        type "tcp"
        interval-secs 3600
    }}
}}
upstream "maint" {{
    static {{
        status 503
        body "later"
    }}
}}
route "api" {{
    matches {{
        path-prefix "/api"
    }}
    upstream "app"
    policies {{
        retries {retries}
        rate-limit {{
            requests-per-second 1000
        }}
    }}
}}
route "down" {{
    matches {{
        path-prefix "/down"
    }}
    upstream "maint"
}}
"#,
        addr = up.addr
    )
}

/// Sample lines (no comments) of the exposition.
fn samples(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect()
}

/// The family a sample belongs to, given the families' names.
fn family_of<'a>(sample: &str, families: &[(&'a str, &str)]) -> Option<&'a str> {
    let name = sample.split(['{', ' ']).next()?;
    families.iter().map(|(f, _)| *f).find(|f| {
        name == *f
            || ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name.strip_prefix(f) == Some(s))
    })
}

/// Counter and summary/histogram `_count`/`_sum` series → value.
fn monotonic_series(text: &str) -> BTreeMap<String, f64> {
    let mut counters = Vec::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            if let (Some(name), Some(kind)) = (it.next(), it.next()) {
                counters.push((name.to_owned(), kind.to_owned()));
            }
        }
    }
    let mut out = BTreeMap::new();
    for s in samples(text) {
        let Some((series, value)) = s.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or_default();
        let monotonic = counters.iter().any(|(n, k)| match k.as_str() {
            "counter" => name == n,
            "histogram" | "summary" => name == format!("{n}_count") || name == format!("{n}_sum"),
            _ => false,
        });
        if monotonic && let Ok(v) = value.parse() {
            out.insert(series.to_owned(), v);
        }
    }
    out
}

fn promtool_check_metrics(promtool: &Path, text: &str) {
    let (code, out, err) = run_with_stdin(promtool, &["check", "metrics"], text.as_bytes());
    assert_eq!(code, 0, "promtool check metrics failed:\n{out}\n{err}");
}

#[test]
fn every_family_is_exposed_with_base_labels_and_passes_promtool() {
    let up = Upstream::start(|_| (200, "ok".into()));
    let dir = temp_dir("sen-metrics");
    let mut p = Proxy::start(&dir, &config(&up, 1), &[], 1);
    assert_eq!(get(p.addr, "/api/x", &[]).status, 200);

    let text = get(p.admin, "/metrics", &[]).text();
    let lines = samples(&text);
    for (family, kind) in FAMILIES {
        assert!(
            text.contains(&format!("# TYPE {family} {kind}\n")),
            "no TYPE line `{family} {kind}`"
        );
        let mine: Vec<&&str> = lines
            .iter()
            .filter(|l| family_of(l, FAMILIES) == Some(family))
            .collect();
        assert!(!mine.is_empty(), "{family} has no samples");
        for l in mine {
            for base in BASE_LABELS {
                assert!(l.contains(base), "{l} lacks {base}");
            }
        }
    }
    // The static label sets exist before traffic touches them.
    for series in [
        "sentinel_config_reloads_total{result=\"failure\"",
        "sentinel_retries_total{route=\"down\"",
        "sentinel_rate_limited_total{route=\"api\"",
        "sentinel_connections_rejected_total{listener=\"side\",reason=\"max_per_client\"",
        "sentinel_connection_pool_connects_total{upstream=\"app\",result=\"timeout\"",
        "sentinel_circuit_breaker_state{component=\"app/",
    ] {
        assert!(p.metric(series) >= 0.0, "{series} is missing");
    }
    // Quantile lines for the route that saw the request, with a real value.
    for q in ["0.5", "0.9", "0.95", "0.99"] {
        let v = p.metric(&format!(
            "sentinel_request_duration_quantile_seconds{{route=\"api\",quantile=\"{q}\""
        ));
        assert!(v > 0.0 && v < 60.0, "quantile {q} = {v}");
    }
    assert_eq!(
        p.metric("sentinel_request_duration_quantile_seconds_count{route=\"api\""),
        1.0
    );
    assert_eq!(
        p.metric("sentinel_connection_pool_connects_total{upstream=\"app\",result=\"ok\""),
        1.0
    );
    assert_eq!(p.metric("sentinel_connections_max"), 10000.0);
    assert!(p.metric("sentinel_memory_usage_bytes") > 1_000_000.0);
    assert_eq!(p.metric("sentinel_error_rate"), 0.0);
    // After a 503 the rate is the 5xx share of every response so far (the launcher's
    // /ready polls count too), all of them inside the 60 s window.
    assert_eq!(get(p.addr, "/down", &[]).status, 503);
    let text = get(p.admin, "/metrics", &[]).text();
    let (mut all, mut errors) = (0.0, 0.0);
    for l in samples(&text)
        .into_iter()
        .filter(|l| l.starts_with("sentinel_requests_total{"))
    {
        let v: f64 = l.rsplit(' ').next().unwrap().parse().unwrap();
        all += v;
        if l.contains("status=\"5") {
            errors += v;
        }
    }
    assert_eq!(errors, 1.0);
    let rate = p.metric("sentinel_error_rate");
    assert!(
        (rate - errors / all).abs() < 1e-9,
        "{rate} vs {errors}/{all}"
    );

    match external("promtool") {
        Some(promtool) => {
            promtool_check_metrics(&promtool, &get(p.admin, "/metrics", &[]).text());
            let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/alerts.yml");
            let out = std::process::Command::new(&promtool)
                .args(["check", "rules"])
                .arg(&rules)
                .output()
                .expect("run promtool");
            assert!(
                out.status.success(),
                "promtool check rules: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        None => eprintln!("notice: promtool checks skipped"),
    }

    // Counters stay monotonic across a reload that changes a route's policies.
    let before = monotonic_series(&get(p.admin, "/metrics", &[]).text());
    assert!(before.len() > 20, "too few counter series: {before:?}");
    std::fs::write(&p.config, config(&up, 0)).unwrap();
    p.svc.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while p
        .lines_with("Configuration reload completed", Duration::from_millis(100))
        .is_empty()
    {
        assert!(Instant::now() < deadline, "no reload within 10 s");
    }
    assert_eq!(get(p.addr, "/api/y", &[]).status, 200);
    let after = monotonic_series(&get(p.admin, "/metrics", &[]).text());
    for (series, v) in &before {
        let now = after
            .get(series)
            .unwrap_or_else(|| panic!("{series} vanished after the reload"));
        assert!(now >= v, "{series} went down: {v} -> {now}");
    }
    assert_eq!(
        p.metric("sentinel_config_reloads_total{result=\"success\""),
        1.0
    );
    assert_eq!(
        p.metric("sentinel_request_duration_quantile_seconds_count{route=\"api\""),
        2.0
    );
    std::fs::remove_dir_all(dir).unwrap();
}
