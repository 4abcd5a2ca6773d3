//! OTLP push (feature `otel`): every [`DEFAULT_OTEL_INTERVAL`] the registry is snapshotted
//! and sent to `RON_OTEL_ENDPOINT` as an OTLP `ExportMetricsServiceRequest`, over gRPC or
//! HTTP/protobuf depending on the endpoint's form.
//!
//! What it is for: getting the same values `/metrics` shows into an OpenTelemetry
//! collector, with bounded memory and without ever slowing scrapes or recording.
//! What it is not for: traces or logs, delta temporality, or retrying indefinitely: at most
//! [`OTEL_QUEUE_CAPACITY`] snapshots wait, and the oldest goes first when the collector is
//! slow (`otel_export_dropped_total`).

mod client;
mod endpoint;
mod exporter;
mod queue;
mod snapshot;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use ron_kernel::config::ConfigError;

use crate::env::{self, EnvSource};
use crate::handles::{Counter, IntGauge};
use crate::registry::Registry;

pub use client::CONTENT_TYPE_PROTOBUF;
pub use endpoint::OTLP_HTTP_PATH;
pub use snapshot::RESOURCE_ATTRIBUTES;

/// Time between snapshots unless the builder's `otel_interval` says otherwise.
pub const DEFAULT_OTEL_INTERVAL: Duration = Duration::from_secs(10);
/// Snapshots waiting for export; a push into a full queue drops the oldest.
pub const OTEL_QUEUE_CAPACITY: usize = 4;
/// Longest one export may take before it counts as failed.
pub const OTEL_EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// First delay after a failed export; it doubles per failure.
pub const OTEL_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// Longest delay between failed exports.
pub const OTEL_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// At most one `otel_export_failed` (and one `otel_fallback`) line per this period.
pub const OTEL_LOG_EVERY: Duration = Duration::from_secs(60);

/// Family `otel_exports_total{result}`.
pub const OTEL_EXPORTS_TOTAL: &str = "otel_exports_total";
/// Family `otel_export_dropped_total`.
pub const OTEL_EXPORT_DROPPED_TOTAL: &str = "otel_export_dropped_total";
/// Family `otel_export_queue_depth`.
pub const OTEL_EXPORT_QUEUE_DEPTH: &str = "otel_export_queue_depth";

/// The OTLP part of a `Metrics`: its families always, its exporter when configured.
pub(crate) struct Otel {
    families: OtelFamilies,
    exporter: OnceLock<OtelExporter>,
    /// Start of every cumulative series: when the registry's golden families were made.
    start: SystemTime,
}

/// Cached handles of the three exporter families.
#[derive(Clone)]
pub(crate) struct OtelFamilies {
    pub(crate) ok: Counter,
    pub(crate) error: Counter,
    pub(crate) dropped: Counter,
    pub(crate) depth: IntGauge,
}

/// A parsed endpoint with its clients and the snapshot interval.
pub(crate) struct OtelExporter {
    pub(crate) endpoint: endpoint::OtelEndpoint,
    pub(crate) client: client::OtlpClient,
    pub(crate) interval: Duration,
}

impl Otel {
    /// Registers the exporter families (at zero, `result` pre-created as `ok`, `error`).
    pub(crate) fn register(r: &Registry) -> Result<Otel, crate::MetricsError> {
        let exports = r.counter_vec(
            OTEL_EXPORTS_TOTAL,
            "OTLP exports attempted, by result.",
            &["result"],
        )?;
        let families = OtelFamilies {
            ok: exports.with_label_values(&["ok"]),
            error: exports.with_label_values(&["error"]),
            dropped: r.counter(
                OTEL_EXPORT_DROPPED_TOTAL,
                "OTLP snapshots dropped because the export queue was full.",
            )?,
            depth: r.int_gauge(
                OTEL_EXPORT_QUEUE_DEPTH,
                "OTLP snapshots waiting for export.",
            )?,
        };
        Ok(Otel {
            families,
            exporter: OnceLock::new(),
            start: SystemTime::now(),
        })
    }

    /// Sets the exporter `build()` parsed; called once, before any task can start.
    pub(crate) fn configure(&self, exporter: Option<OtelExporter>) {
        if let Some(e) = exporter {
            let _ = self.exporter.set(e);
        }
    }

    /// Starts the ticker and exporter when an endpoint is configured. Called once, from
    /// `Metrics::ensure_tasks`, inside a tokio runtime.
    pub(crate) fn spawn(&self, registry: &Registry) {
        if let Some(e) = self.exporter.get() {
            exporter::spawn(
                e,
                &self.families,
                Arc::downgrade(&registry.inner),
                self.start,
            );
        }
    }
}

impl OtelExporter {
    /// `RON_OTEL_ENDPOINT` parsed, or `None` when unset. `interval` comes from the builder.
    pub(crate) fn from_env(
        env: &EnvSource,
        interval: Option<Duration>,
    ) -> Result<Option<OtelExporter>, ConfigError> {
        let interval = interval.unwrap_or(DEFAULT_OTEL_INTERVAL);
        if interval.is_zero() {
            return Err(ConfigError::new(
                "otel_interval",
                format!("{interval:?}"),
                "builder",
                "expected a non-zero interval, such as 10s",
            ));
        }
        let Some(raw) = env.get(env::ENV_OTEL_ENDPOINT) else {
            return Ok(None);
        };
        let shown = endpoint::redact_raw(&raw);
        let endpoint = endpoint::OtelEndpoint::parse(&raw)
            .map_err(|why| env::error(env::ENV_OTEL_ENDPOINT, &shown, &why))?;
        let client = client::OtlpClient::new(&endpoint)
            .map_err(|why| env::error(env::ENV_OTEL_ENDPOINT, &shown, &why))?;
        Ok(Some(OtelExporter {
            endpoint,
            client,
            interval,
        }))
    }
}
