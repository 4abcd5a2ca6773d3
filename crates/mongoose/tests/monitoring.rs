//! The shipped monitoring files under deploy/mongoose/ (MNG-R33, R37; runbook Observability,
//! Backpressure and overload, Health and readiness, Failure handling): the Prometheus rules
//! pass `promtool check rules` and their `promtool test rules` unit tests, carry the
//! runbook's alert conditions (the spec's depth / capacity > 0.8 threshold among them), and
//! read only metrics a running mongoose-server exports; the Grafana dashboard uses the
//! datasource and instance variables and shows every mongoose family the server exports
//! (the mounted ron-metrics exposer's own families are on the ron-metrics dashboard).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use test_support::monitoring::{Deploy, families};
use test_support::{external, get, http_raw, request, temp_dir};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn deploy() -> Deploy {
    Deploy::new(&repo(), "mongoose")
}

/// The runbook's alert conditions and the query text and threshold each rule must hold.
const RUNBOOK_ALERTS: [(&str, &[&str]); 10] = [
    // Backpressure: "trigger alerts when over thresholds" — spec §9: depth / capacity > 0.8.
    (
        "MongooseQueueNearCapacity",
        &["feed_group:mongoose_queue_utilisation:ratio > 0.8"],
    ),
    // ... or readiness showing backlog:* (depth at or above the backlog threshold).
    (
        "MongooseBacklogOverThreshold",
        &[
            r#"mongoose_queue_depth{service="mongoose"} >= mongoose_queue_backlog_threshold{service="mongoose"}"#,
        ],
    ),
    // Readiness.
    (
        "MongooseNotReady",
        &[r#"mongoose_ready{service="mongoose"} == 0"#],
    ),
    // Liveness: agent groups responsive (agentStaleMs default 5 s).
    (
        "MongooseAgentStale",
        &[r#"mongoose_agent_heartbeat_age_seconds{service="mongoose"} > 5"#],
    ),
    // Readiness: critical feeds connected.
    (
        "MongooseFeedDisconnected",
        &[r#"mongoose_feed_connected{service="mongoose"} == 0"#],
    ),
    // Drop/shape traffic.
    (
        "MongooseEventsDropped",
        &[r#"increase(mongoose_feed_dropped_total{service="mongoose"}[5m])) > 0"#],
    ),
    // Runtime errors in handlers.
    (
        "MongooseHandlerErrors",
        &[r#"increase(mongoose_processor_errors_total{service="mongoose"}[5m])) > 0"#],
    ),
    // Circuit breakers for flaky integrations.
    (
        "MongooseSinkCircuitOpen",
        &[r#"mongoose_sink_circuit_state{service="mongoose",state="open"} == 1"#],
    ),
    // Poison events to quarantine.
    (
        "MongooseEventsQuarantined",
        &[r#"increase(mongoose_quarantined_total{service="mongoose"}[5m])) > 0"#],
    ),
    // Verified configuration: a refused SIGHUP reload.
    (
        "MongooseConfigReloadFailed",
        &[
            r#"mongoose_config_reloads_total{service="mongoose",outcome=~"invalid|rejected"}[5m]) > 0"#,
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
    let utilisation = d
        .rules()
        .into_iter()
        .find(|r| r["record"] == "feed_group:mongoose_queue_utilisation:ratio")
        .expect("the utilisation rule");
    assert_eq!(
        utilisation["expr"],
        r#"mongoose_queue_depth{service="mongoose"} / mongoose_queue_capacity{service="mongoose"}"#
    );
    d.check_alert_annotations(&["warning", "critical"]);
    d.check_unit_test_coverage();
}

#[test]
fn the_dashboard_uses_the_datasource_and_instance_variables() {
    deploy().check_dashboard_shape(40);
}

/// A `mongoose-server` child killed on drop; its stderr lines (where the example config's
/// logs go, since it has a stdout sink) arrive on a channel.
struct Server {
    child: Child,
    stderr: Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Runs the shipped example config in `dir` with the admin listener on a free port.
    fn start_example(dir: &Path) -> Server {
        let example = repo().join("configs/mongoose.yaml");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mongoose-server"));
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("MONGOOSE_") || k.starts_with("RON_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("--config")
            .arg(example)
            .args(["--admin-addr", "127.0.0.1:0"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn mongoose-server");
        let pipe = child.stderr.take().expect("piped stderr");
        let (tx, stderr) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Server { child, stderr }
    }

    /// The admin address from the `admin_listening` log line.
    fn admin_addr(&self) -> SocketAddr {
        let deadline = Instant::now() + test_support::START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .stderr
                .recv_timeout(left)
                .expect("no admin_listening log line in time");
            if !line.contains(r#""message":"admin_listening""#) {
                continue;
            }
            return test_support::json_field(&line, "address")
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no address in {line}"));
        }
    }
}

/// Every metric the rules and the dashboard read is a family mongoose-server exports with
/// the shipped example config, and every family it exports is on a dashboard.
/// `mongoose_service_up` (one series per service; no built-in service type exists) and the
/// `alloc-count` build's allocation counters are not exported here, so neither file reads
/// them.
#[test]
fn every_metric_read_is_exported_and_every_family_is_on_the_dashboard() {
    let dir = temp_dir("mg-monitoring");
    let server = Server::start_example(&dir);
    let admin = server.admin_addr();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(admin, "/readyz", &[]).status != 200 {
        assert!(Instant::now() < deadline, "not ready in time");
        std::thread::sleep(Duration::from_millis(50));
    }
    // One operator command (the runbook's `… admin queues`), so the admin counter has a
    // series too.
    let raw = request("POST", "/admin/commands/queues", &["Content-Length: 0"]);
    let queues = http_raw(admin, raw.as_bytes(), false).expect("POST queues");
    assert_eq!(queues.status, 200, "{}", queues.text());
    let page = get(admin, "/metrics", &[]).text();
    assert!(families(&page).contains_key("mongoose_ready"), "{page}");

    let d = deploy();
    let read = d.check_reads_only_exported(&page, &[], |_| false);
    assert!(read.len() >= 40, "{read:?}");
    // The mounted ron-metrics exposer's own families are on the exposer dashboard.
    let exposer = Deploy::new(&repo(), "ron-metrics");
    d.check_dashboards_cover(&page, &[&exposer], |_| true);
    d.check_own_dashboard_covers(&page, "mongoose_");
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_deploy_readme_lists_every_file() {
    deploy().check_readme_lists_every_file();
}
