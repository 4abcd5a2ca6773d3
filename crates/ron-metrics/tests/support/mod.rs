//! Shared helpers of the ron-metrics black-box tests.
#![allow(dead_code)]

pub mod expfmt;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ron_kernel::{HealthState, ShutdownCoordinator};
use ron_metrics::{BoundAddr, EnvSource, Metrics, ServeOptions};
use test_support::{run_with_stdin, tool};

/// The example binary cargo built beside this test.
pub fn example_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe path");
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    let bin = dir.join("examples").join("exposer");
    assert!(bin.is_file(), "example not built at {}", bin.display());
    bin
}

/// A metrics instance with fixed labels and no environment influence.
pub fn metrics() -> Arc<Metrics> {
    Metrics::builder()
        .env(EnvSource::fixed::<&str, &str>([]))
        .service("svc-test")
        .instance("node-1")
        .build()
        .expect("metrics")
}

/// An in-process standalone exposer on 127.0.0.1:0 with its own coordinator.
pub struct Running {
    pub metrics: Arc<Metrics>,
    pub health: Arc<HealthState>,
    pub coord: ShutdownCoordinator,
    pub addr: SocketAddr,
    pub handle: tokio::task::JoinHandle<()>,
}

pub async fn start(opts: impl FnOnce(ServeOptions) -> ServeOptions) -> Running {
    start_with(metrics(), opts).await
}

pub async fn start_with(
    metrics: Arc<Metrics>,
    opts: impl FnOnce(ServeOptions) -> ServeOptions,
) -> Running {
    let health = HealthState::new();
    health.set("config_loaded", true);
    let coord = ShutdownCoordinator::new();
    coord.attach(health.clone());
    let o = opts(ServeOptions::default().shutdown(coord.token()));
    let (handle, bound) = metrics
        .clone()
        .serve_with(
            "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
            health.clone(),
            o,
        )
        .await
        .expect("serve");
    let BoundAddr::Tcp(addr) = bound else {
        panic!("expected TCP")
    };
    Running {
        metrics,
        health,
        coord,
        addr,
        handle,
    }
}

/// Runs a blocking client closure off the runtime's threads.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("client thread")
}

/// `promtool check metrics` on `text`: Some((status, stdout+stderr)) or None when absent.
pub fn promtool_check(text: &str, extended: bool) -> Option<(i32, String)> {
    let p = tool("promtool")?;
    let args: &[&str] = if extended {
        &["check", "metrics", "--extended"]
    } else {
        &["check", "metrics"]
    };
    let (code, out, err) = run_with_stdin(&p, args, text.as_bytes());
    Some((code, format!("{out}{err}")))
}

/// Parses `text` with the Python OpenMetrics parser; Some(Err) with its message on failure.
pub fn python_openmetrics_parse(text: &str) -> Option<Result<usize, String>> {
    if !test_support::python_openmetrics() {
        return None;
    }
    let script = "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as p\nn=sum(len(f.samples) for f in p(sys.stdin.read()))\nprint(n)\n";
    let (code, out, err) = run_with_stdin(
        std::path::Path::new("python3"),
        &["-c", script],
        text.as_bytes(),
    );
    Some(if code == 0 {
        out.trim().parse().map_err(|_| out)
    } else {
        Err(err)
    })
}

/// Every sample line matches the runbook's ordered label grep.
pub fn runbook_label_grep_matches_every_sample(text: &str) -> bool {
    let re = |l: &str| {
        let (Some(s), Some(i), Some(b), Some(a)) = (
            l.find("service="),
            l.find("instance="),
            l.find("build_version="),
            l.find("amnesia="),
        ) else {
            return false;
        };
        l.contains('{') && l.contains('}') && s < i && i < b && b < a
    };
    text.lines().filter(|l| !l.starts_with('#')).all(re)
}
