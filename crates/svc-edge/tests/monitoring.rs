//! The shipped monitoring files under deploy/svc-edge/ (spec §5; runbook §4 "Alert", §10 SLO
//! reference, §12 Alert → Action, Appendix C panels): the Prometheus rules pass
//! `promtool check rules` and their `promtool test rules` unit tests, carry every runbook
//! alert with its threshold, and read only metrics the running binary exports; the Grafana
//! dashboard uses the datasource and instance variables; every family the binary exports is
//! on the svc-edge dashboard or on the ron-metrics exposer dashboard.

mod common;

use std::collections::BTreeMap;

use common::edge::Edge;
use common::{external, repo_root};
use test_support::monitoring::{Deploy, families};
use test_support::{get, temp_dir};

fn deploy() -> Deploy {
    Deploy::new(&repo_root(), "svc-edge")
}

/// Every alert row of the runbook: the alert and the query text and threshold it must hold.
const RUNBOOK_ALERTS: [(&str, &[&str]); 11] = [
    // §12 A, §10: 5xx > 0.1% for 10m.
    (
        "EdgeHighErrorRate",
        &["job:edge_http_5xx:ratio_rate10m > 0.001"],
    ),
    // §12 B, §4 429 row, §10: rejects (rate_limit|busy|draining) / requests > 1% for 15m.
    (
        "EdgeExcessiveShedding",
        &["job:edge_shed:ratio_rate15m > 0.01"],
    ),
    // §12 C: /readyz failing > 5m.
    ("EdgeNotReady", &[r#"edge_ready{service="svc-edge"} == 0"#]),
    // §4 503 row: io_timeouts_total{op="fill|read|connect"}, any sustained.
    (
        "EdgeIoTimeouts",
        &[r#"rate(io_timeouts_total{service="svc-edge",op=~"fill|read|connect"}[5m])) > 0"#],
    ),
    // §4 Ready but slow: p95 > 40ms 10m.
    (
        "EdgeSlowP95",
        &["job:edge_request_latency_seconds:p95_10m > 0.04"],
    ),
    // §10 SLO: p99 < 80ms.
    (
        "EdgeSlowP99",
        &["job:edge_request_latency_seconds:p99_10m > 0.08"],
    ),
    // §4 Live fill frequently failing: success < 99%/h.
    (
        "EdgeLiveFillFailing",
        &["job:edge_live_fill_success:ratio_rate1h < 0.99"],
    ),
    // §4 High cache miss on hot paths: trend ↑.
    (
        "EdgeCacheMissRising",
        &["job:edge_cache_miss:ratio_rate1h offset 1d"],
    ),
    // §4 Readiness flaps under amnesia mode: any flap.
    (
        "EdgeAmnesiaReadinessFlap",
        &[r#"changes(edge_ready{service="svc-edge",amnesia="on"}[15m]) >= 2"#],
    ),
    (
        "EdgeAmnesiaRejects",
        &[r#"increase(rejected_total{service="svc-edge",reason="amnesia"}[15m])) > 0"#],
    ),
    // §10 autoscaling signal: edge_inflight ≥ 80% of the configured cap for 3m.
    (
        "EdgeInflightNearCap",
        &["instance:edge_inflight:ratio >= 0.8"],
    ),
];

/// The recording rules' expressions, for the alerts above that read them.
const RECORDED: [(&str, &[&str]); 4] = [
    (
        "job:edge_http_5xx:ratio_rate10m",
        &[r#"rate(http_requests_total{service="svc-edge",status=~"5.."}[10m])"#],
    ),
    (
        "job:edge_shed:ratio_rate15m",
        &[r#"rejected_total{service="svc-edge",reason=~"rate_limit|busy|draining"}[15m]"#],
    ),
    (
        "job:edge_request_latency_seconds:p95_10m",
        &["histogram_quantile(0.95,", "request_latency_seconds_bucket"],
    ),
    (
        "instance:edge_inflight:ratio",
        &[
            r#"edge_inflight{service="svc-edge"} / on (job, instance) edge_inflight_limit{service="svc-edge"}"#,
        ],
    ),
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
    d.assert_runbook_alerts(&RUNBOOK_ALERTS);
    let rules: BTreeMap<String, String> = d
        .rules()
        .iter()
        .filter_map(|r| Some((r["record"].as_str()?.into(), r["expr"].as_str()?.into())))
        .collect();
    for (record, fragments) in RECORDED {
        let expr = test_support::monitoring::squeeze(&rules[record]);
        for f in fragments {
            assert!(expr.contains(f), "{record}: {expr:?} lacks {f:?}");
        }
    }
    d.check_alert_annotations(&["page", "ticket"]);
    d.check_unit_test_coverage();
}

#[test]
fn the_dashboard_uses_the_datasource_and_instance_variables() {
    deploy().check_dashboard_shape(25);
}

/// Every metric the rules and the dashboard read is a family a running svc-edge exports
/// (all are registered at start), and every family it exports is on its dashboard or on the
/// exposer's (ron-metrics) dashboard.
#[test]
fn every_metric_read_is_exported_and_every_family_is_on_a_dashboard() {
    let dir = temp_dir("edge-monitoring");
    let packs = repo_root().join("data/world.pmtiles");
    // An allow-listed origin gives the per-host live-fill families their children (offline
    // mode never contacts it).
    let e = Edge::start(
        &dir,
        &format!(
            "[edge]\npacks = [\"{}\"]\nallow = [\"tiles.example.com\"]\n",
            packs.display()
        ),
        &[],
    );
    e.wait_ready();
    assert_eq!(get(e.api, "/edge/tiles/world/0/0/0.mvt", &[]).status, 200);
    let page = get(e.metrics, "/metrics", &[]).text();
    assert!(families(&page).contains_key("edge_ready"), "{page}");

    let d = deploy();
    let read = d.check_reads_only_exported(&page, &[], |_| false);
    assert!(read.len() >= 25, "{read:?}");
    let exposer = Deploy::new(&repo_root(), "ron-metrics");
    d.check_dashboards_cover(&page, &[&exposer], |_| true);
    // The svc-edge dashboard alone shows every family svc-edge registers itself.
    let own = d.dashboard_families(&families(&page));
    for family in [
        "http_requests_total",
        "request_latency_seconds",
        "rejected_total",
        "io_timeouts_total",
        "tls_handshake_failures_total",
        "config_reloads_total",
    ] {
        assert!(
            own.contains(family),
            "{family} is not on the svc-edge dashboard"
        );
    }
    drop(e);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_deploy_readme_lists_every_file() {
    deploy().check_readme_lists_every_file();
}
