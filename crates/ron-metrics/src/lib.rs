//! `ron-metrics`: the workspace's observability library.
//!
//! What it is for: a metrics registry whose every family carries the base labels
//! `service`, `instance`, `build_version`, `amnesia` (first, in that order, so the
//! runbook's ordered grep matches every sample), golden families that exist at zero, and a
//! small GET-only exposer for `/metrics`, `/healthz` and `/readyz` over TCP, TLS or a Unix
//! socket, or mounted into a host's axum router.
//!
//! What it is not for: authentication (remote scrapes go through a gateway), push
//! gateways or remote write, and any on-disk state (the only file written is the UDS
//! socket).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::{net::SocketAddr, sync::Arc};
//! use ron_kernel::HealthState;
//! use ron_metrics::Metrics;
//!
//! let metrics: Arc<Metrics> = Metrics::new();
//! let health: Arc<HealthState> = HealthState::new();
//! let addr: SocketAddr = "127.0.0.1:9100".parse().unwrap();
//!
//! let (_jh, bound_addr) = metrics.clone().serve(addr, health.clone()).await?;
//! tracing::info!(%bound_addr, "metrics exposer started");
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod collector;
mod conn;
mod encode;
pub mod env;
mod exposer;
mod family;
mod foreign;
mod handles;
mod labels;
mod metrics;
pub mod negotiate;
mod options;
#[cfg(feature = "otel")]
mod otel;
pub mod readyz;
mod registry;
mod router;
mod serve;
mod server;
mod synthetic;
mod text;
#[cfg(feature = "tls")]
mod tls;
mod uds;

pub use encode::{CONTENT_TYPE_OPENMETRICS, CONTENT_TYPE_TEXT, Format};
pub use env::EnvSource;
pub use family::OVERFLOW_LABEL_VALUE;
pub use handles::{
    Counter, CounterVec, FloatCounter, FloatCounterVec, Gauge, GaugeVec, Histogram, HistogramTimer,
    HistogramVec, IntGauge, IntGaugeVec,
};
pub use labels::{BASE_LABEL_NAMES, BaseLabels};
pub use metrics::{DEFAULT_REQUEST_BUCKETS, Metrics, MetricsBuilder, REJECT_REASONS};
pub use options::{BindTarget, BoundAddr, Endpoint, MountOptions, ServeOptions};
#[cfg(feature = "otel")]
pub use otel::{
    CONTENT_TYPE_PROTOBUF, DEFAULT_OTEL_INTERVAL, OTEL_BACKOFF_INITIAL, OTEL_BACKOFF_MAX,
    OTEL_EXPORT_DROPPED_TOTAL, OTEL_EXPORT_QUEUE_DEPTH, OTEL_EXPORT_TIMEOUT, OTEL_EXPORTS_TOTAL,
    OTEL_LOG_EVERY, OTEL_QUEUE_CAPACITY, OTLP_HTTP_PATH, RESOURCE_ATTRIBUTES,
};
pub use registry::{DEFAULT_MAX_SERIES_PER_FAMILY, MetricsError, Registry};
pub use ron_kernel::HealthState;
pub use ron_kernel::config::ConfigError;
pub use router::ExposerService;
