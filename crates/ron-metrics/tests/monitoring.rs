//! The shipped monitoring files under deploy/ron-metrics/ (MET-R22, R27 gate K; runbook §4
//! "Alert Threshold" column): rules for the exposer every service embeds, applicable to any
//! scrape job. They pass `promtool check rules` and their `promtool test rules` unit tests,
//! carry every runbook row that has a metric with its threshold, and read only families a
//! standalone exposer (the library API, served in-process on 127.0.0.1:0) exports; the
//! Grafana dashboard uses the datasource and instance variables and shows every family the
//! exposer exports.
//!
//! The OTLP families exist only in builds with the `otel` feature: built with it
//! (`cargo test -p ron-metrics --features otel --test monitoring`, as scripts/test.sh does)
//! the host's `RON_OTEL_ENDPOINT` points at a closed port and they are checked like the
//! rest; built without it, they are the only names allowed to be absent.

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use ron_metrics::{EnvSource, Metrics};
use support::{blocking, start_with};
use test_support::monitoring::{Deploy, families};
use test_support::{external, get};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn deploy() -> Deploy {
    Deploy::new(&repo(), "ron-metrics")
}

/// Every runbook §4 row with a metric, gate K's alerts, and §6.2: the alert and the query
/// text and threshold it must hold. The rules select no job and no service.
const RUNBOOK_ALERTS: [(&str, &[&str]); 10] = [
    // 405 on /metrics: any.
    (
        "RonMetricsNonGetRequests",
        &[r#"increase(rejected_total{reason="method"}[5m])) > 0"#],
    ),
    // /readyz 503 persistently: > 5 min (the `for:` is checked below).
    ("RonMetricsReadyzDegraded", &["health_degraded == 1"]),
    // Slow /metrics (p95 > 60 ms).
    (
        "RonMetricsSlowExposition",
        &["instance_endpoint:exposition_latency_seconds:p95_10m > 0.06"],
    ),
    // ... alert threshold p95 ↑ > 10%.
    (
        "RonMetricsExpositionLatencyRegression",
        &[
            "instance_endpoint:exposition_latency_seconds:p95_1h > 1.1 * (instance_endpoint:exposition_latency_seconds:p95_1h offset 1d)",
        ],
    ),
    // TLS handshake spikes: p99 > 200 ms.
    (
        "RonMetricsTlsHandshakeSlow",
        &["instance:tls_handshake_seconds:p99_5m > 0.2"],
    ),
    // Missing label amnesia: any.
    ("RonMetricsMissingAmnesiaLabel", &[r#"amnesia="""#]),
    // Memory growth during scrape > 15%/wk, on its cause (series count).
    (
        "RonMetricsSeriesGrowth",
        &["exposition_series > 1.15 * (exposition_series offset 1w)"],
    ),
    // Gate K /metrics size; "Large registry (10 k+ series)".
    ("RonMetricsLargeRegistry", &["exposition_series > 10000"]),
    // §6.2 Registry explosion.
    (
        "RonMetricsSeriesCapHit",
        &["increase(metrics_series_overflow_total[15m])) > 0"],
    ),
    // OTLP export stalls: sustained 5 min.
    (
        "RonMetricsOtlpExportStalled",
        &["otel_export_queue_depth > 0"],
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
    let alerts = d.assert_runbook_alerts(&RUNBOOK_ALERTS);
    assert_eq!(alerts["RonMetricsReadyzDegraded"]["for"], "5m");
    assert_eq!(alerts["RonMetricsOtlpExportStalled"]["for"], "5m");
    // Applicable to any job: no rule selects a job or a service.
    for rule in d.rules() {
        let expr = rule["expr"].as_str().unwrap_or("");
        assert!(
            !expr.contains("job=") && !expr.contains("service="),
            "{expr}"
        );
    }
    d.check_alert_annotations(&["info", "warning", "critical"]);
    d.check_unit_test_coverage();
}

#[test]
fn the_dashboard_uses_the_datasource_and_instance_variables() {
    deploy().check_dashboard_shape(20);
}

/// The metrics of a host: fixed labels, and an OTLP endpoint on a closed port when this
/// build has the OTLP families (they exist only when export is configured).
fn host_metrics() -> Arc<Metrics> {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let endpoint = format!("http://127.0.0.1:{closed}");
    let mut env = Vec::new();
    if cfg!(feature = "otel") {
        env.push(("RON_OTEL_ENDPOINT", endpoint.as_str()));
    }
    Metrics::builder()
        .env(EnvSource::fixed(env))
        .service("svc-host")
        .instance("node-1")
        .build()
        .expect("metrics")
}

/// Every metric the rules and the dashboard read is a family a standalone exposer exports
/// (MET-T24: all are present from the start), and every family it exports is on the
/// dashboard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_read_is_exported_and_every_family_is_on_the_dashboard() {
    let running = start_with(host_metrics(), |o| o).await;
    let addr = running.addr;
    let page = blocking(move || get(addr, "/metrics", &[]).text()).await;
    let exported = families(&page);
    assert!(exported.contains_key("exposition_series"), "{page}");
    assert!(exported.contains_key("health_degraded"), "{page}");
    assert_eq!(
        exported.contains_key("otel_export_queue_depth"),
        cfg!(feature = "otel"),
        "the OTLP families follow the otel feature"
    );

    let d = deploy();
    let without_otel = |name: &str| !cfg!(feature = "otel") && name.starts_with("otel_");
    let read = d.check_reads_only_exported(&page, &["RonMetricsMissingAmnesiaLabel"], without_otel);
    assert!(read.len() >= 15, "{read:?}");
    d.check_dashboards_cover(&page, &[], |_| true);
    running.coord.force();
}

#[test]
fn the_deploy_readme_lists_every_file() {
    deploy().check_readme_lists_every_file();
}
