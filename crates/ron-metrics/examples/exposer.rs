//! The ron-metrics demo exposer: what the runbook's `cargo run -p ron-metrics --example
//! exposer` starts. Serves `/metrics`, `/healthz` and `/readyz` on 127.0.0.1:9100 (or
//! `RON_METRICS_ADDR`, `RON_METRICS_UDS`; 127.0.0.1:9443 with TLS), drains on SIGTERM/SIGINT
//! with a 1 s grace, and records one demo request latency per second.
//!
//! Exit status: 0 after a drain, 1 when the listener cannot bind, 2 on a config error.

use std::net::SocketAddr;
use std::time::Duration;

use ron_kernel::HealthState;
use ron_kernel::config::exit_on_error;
use ron_kernel::logging::{self, LogConfig};
use ron_kernel::shutdown::{DrainConfig, ShutdownCoordinator};
use ron_kernel::signals::{self, Hooks};
use ron_metrics::{BindTarget, Metrics, ServeOptions};

const BIN: &str = "exposer";
const DEFAULT_ADDR: &str = "127.0.0.1:9100";
const DEFAULT_TLS_ADDR: &str = "127.0.0.1:9443";
const GRACE: Duration = Duration::from_secs(1);
const DEMO_EVERY: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() {
    let service = std::env::var("RON_SERVICE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| BIN.to_owned());
    let log = match logging::init(LogConfig {
        service,
        ..LogConfig::default()
    }) {
        Ok(h) => h,
        Err(e) => exit_on_error(BIN, &e),
    };
    let health = HealthState::new();
    let coord = ShutdownCoordinator::global();
    coord.configure(DrainConfig {
        grace: GRACE,
        ..DrainConfig::default()
    });
    coord.attach(health.clone());
    if let Err(e) = signals::install(coord, Hooks::new(log)) {
        tracing::error!(error = %e, "cannot install signal handlers");
        std::process::exit(1);
    }
    for check in ["config_loaded", "port_bound"] {
        let _ = health.register(check);
    }

    let metrics = Metrics::try_new().unwrap_or_else(|e| exit_on_error(BIN, &e));
    let opts = ServeOptions::from_env().unwrap_or_else(|e| exit_on_error(BIN, &e));
    let bind = opts.env_bind().cloned().unwrap_or_else(|| {
        let addr = if opts.tls_enabled() {
            DEFAULT_TLS_ADDR
        } else {
            DEFAULT_ADDR
        };
        BindTarget::Tcp(addr.parse::<SocketAddr>().expect("constant address parses"))
    });
    health.set("config_loaded", true);

    let (exposer, _bound) = match metrics
        .clone()
        .serve_with(bind.clone(), health.clone(), opts)
        .await
    {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(addr = %bind, error = %e, "metrics exposer bind failed");
            std::process::exit(1);
        }
    };
    health.set("port_bound", true);

    let demo = metrics
        .request_latency_seconds
        .with_label_values(&["/demo", "GET"]);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(DEMO_EVERY);
        let mut n = 0u64;
        loop {
            tick.tick().await;
            n += 1;
            demo.observe(0.001 * (1 + n % 50) as f64);
        }
    });

    let outcome = coord.wait().await;
    let _ = exposer.await;
    tracing::info!(
        clean = outcome.clean,
        elapsed_ms = outcome.elapsed.as_millis() as u64,
        "shutdown complete"
    );
    std::process::exit(0);
}
