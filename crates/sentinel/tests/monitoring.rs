//! The shipped monitoring files under deploy/sentinel/ (SEN-R44, R51; runbook "Metrics and
//! Alerting"; spec decision 24): the Prometheus rules pass `promtool check rules` and their
//! `promtool test rules` unit tests, keep the runbook's three alerts verbatim and carry one
//! alert per "Key Metrics" row that has a metric, and read only metrics a running
//! sentinel-proxy exports; the Grafana dashboard uses the datasource and instance
//! variables; every exported family is on the sentinel or the ron-metrics dashboard.

mod common;

use std::path::PathBuf;

use common::upstream::Upstream;
use common::{Proxy, external};
use test_support::monitoring::{Deploy, families};
use test_support::{get, temp_dir};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn deploy() -> Deploy {
    Deploy::new(&repo(), "sentinel")
}

/// The runbook's "Prometheus Alerts" block (verbatim expressions) and one alert per "Key
/// Metrics to Monitor" row, with the metric spec decision 24 names for it. The "Memory
/// usage > 80%" row has none: sentinel exports no memory limit to compare with.
const RUNBOOK_ALERTS: [(&str, &[&str]); 8] = [
    (
        "HighErrorRate",
        &[r#"rate(sentinel_requests_total{status=~"5.."}[1m]) > 0.01"#],
    ),
    ("UpstreamUnhealthy", &["sentinel_upstream_health == 0"]),
    (
        "CircuitBreakerOpen",
        &["sentinel_circuit_breaker_state == 1"],
    ),
    // Error rate > 1%.
    (
        "SentinelHighErrorRatio",
        &["job:sentinel_requests_5xx:ratio_rate5m > 0.01"],
    ),
    // p99 latency > 1s.
    (
        "SentinelHighLatencyP99",
        &["job:sentinel_request_duration_seconds:p99_5m > 1"],
    ),
    // Active connections > 80% limit.
    (
        "SentinelConnectionsNearLimit",
        &["instance:sentinel_open_connections:ratio > 0.8"],
    ),
    // Circuit breaker trips > 10/min.
    (
        "SentinelCircuitBreakerTrips",
        &["increase(sentinel_circuit_breaker_trips_total[1m])) > 10"],
    ),
    // Reload failures: any.
    (
        "SentinelConfigReloadFailed",
        &[r#"increase(sentinel_config_reloads_total{result="failure"}[5m]) > 0"#],
    ),
];

/// The runbook block's `for:` durations, kept as written.
const RUNBOOK_FOR: [(&str, &str); 3] = [
    ("HighErrorRate", "2m"),
    ("UpstreamUnhealthy", "1m"),
    ("CircuitBreakerOpen", "30s"),
];

#[test]
fn rules_pass_promtool_check_and_their_unit_tests() {
    let Some(promtool) = external("promtool") else {
        return;
    };
    deploy().check_with_promtool(&promtool);
}

#[test]
fn every_runbook_alert_has_a_rule_with_its_threshold_and_a_unit_test() {
    let d = deploy();
    let alerts = d.assert_runbook_alerts(&RUNBOOK_ALERTS);
    for (name, duration) in RUNBOOK_FOR {
        assert_eq!(alerts[name]["for"], duration, "{name}");
    }
    let ratio = d
        .rules()
        .into_iter()
        .find(|r| r["record"] == "instance:sentinel_open_connections:ratio")
        .expect("the connection ratio rule");
    let expr = test_support::monitoring::squeeze(ratio["expr"].as_str().unwrap());
    assert!(
        expr.contains("sentinel_open_connections")
            && expr.contains("/ max by (job, instance) (sentinel_connections_max)"),
        "{expr}"
    );
    d.check_alert_annotations(&["warning", "critical"]);
    d.check_unit_test_coverage();
}

#[test]
fn the_dashboard_uses_the_datasource_and_instance_variables() {
    deploy().check_dashboard_shape(35);
}

fn config(upstream: &Upstream) -> String {
    format!(
        r#"server {{
    listen "127.0.0.1:0"
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
route "api" {{
    matches {{
        path-prefix "/api"
    }}
    upstream "app"
    policies {{
        rate-limit {{
            requests-per-second 1000
        }}
    }}
}}
"#,
        addr = upstream.addr
    )
}

/// Every metric the rules and the dashboard read is a family a running sentinel-proxy
/// exports (families are registered at start), and every family it exports is on its
/// dashboard or on the exposer's (ron-metrics) dashboard.
#[test]
fn every_metric_read_is_exported_and_every_family_is_on_a_dashboard() {
    let upstream = Upstream::start(|_| (200, "ok".into()));
    let dir = temp_dir("sen-monitoring");
    let proxy = Proxy::start(&dir, &config(&upstream), &[], 0);
    assert_eq!(get(proxy.addr, "/api/x", &[]).status, 200);
    let page = get(proxy.admin, "/metrics", &[]).text();
    assert!(
        families(&page).contains_key("sentinel_requests_total"),
        "{page}"
    );

    let d = deploy();
    let read = d.check_reads_only_exported(&page, &[], |_| false);
    assert!(read.len() >= 30, "{read:?}");
    let exposer = Deploy::new(&repo(), "ron-metrics");
    d.check_dashboards_cover(&page, &[&exposer], |_| true);
    // Every sentinel_ family is on the sentinel dashboard itself.
    d.check_own_dashboard_covers(&page, "sentinel_");
    drop(proxy);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_deploy_readme_lists_every_file() {
    deploy().check_readme_lists_every_file();
}
