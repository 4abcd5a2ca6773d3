//! `Metrics::serve*`: the standalone exposer entry points.

use std::net::SocketAddr;
use std::sync::Arc;

use ron_kernel::HealthState;
use tokio::task::JoinHandle;

use crate::options::{BindTarget, BoundAddr, ServeOptions};
use crate::{Metrics, server};

impl Metrics {
    /// Serves `/metrics`, `/healthz` and `/readyz` on `bind` with default options.
    pub async fn serve(
        self: Arc<Self>,
        bind: impl Into<BindTarget>,
        health: Arc<HealthState>,
    ) -> anyhow::Result<(JoinHandle<()>, BoundAddr)> {
        self.serve_with(bind, health, ServeOptions::default()).await
    }

    /// Serves with explicit options; invalid options fail before binding.
    pub async fn serve_with(
        self: Arc<Self>,
        bind: impl Into<BindTarget>,
        health: Arc<HealthState>,
        opts: ServeOptions,
    ) -> anyhow::Result<(JoinHandle<()>, BoundAddr)> {
        self.ensure_tasks();
        server::serve_with(self, bind.into(), health, opts).await
    }

    /// Serves where `RON_METRICS_ADDR`/`RON_METRICS_UDS` say (else `default_addr`), with
    /// TLS when `RON_METRICS_TLS_CERT` and `RON_METRICS_TLS_KEY` are set.
    pub async fn serve_from_env(
        self: Arc<Self>,
        health: Arc<HealthState>,
        default_addr: SocketAddr,
    ) -> anyhow::Result<(JoinHandle<()>, BoundAddr)> {
        let opts = ServeOptions::from_env()?;
        let bind = opts
            .env_bind()
            .cloned()
            .unwrap_or(BindTarget::Tcp(default_addr));
        self.serve_with(bind, health, opts).await
    }
}
