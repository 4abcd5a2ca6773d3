//! [`Metrics`]: the registry plus the golden families every service exposes, created at
//! zero so they always appear, and the exposer's own families.

use std::sync::{Arc, OnceLock};

use ron_kernel::HealthState;
use ron_kernel::config::ConfigError;

use crate::env::{self, EnvSource};
use crate::handles::*;
use crate::labels::{
    BaseLabels, MAX_BASE_VALUE_LEN, MAX_EXTRA_LABELS, default_build_version, default_instance,
    default_service, is_ident_value, is_version_value,
};
use crate::registry::{DEFAULT_MAX_SERIES_PER_FAMILY, Registry};
use crate::text::is_label_name;
use crate::{Format, synthetic};

/// Buckets of `request_latency_seconds`.
pub const DEFAULT_REQUEST_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of `exposition_latency_seconds`.
pub const EXPOSITION_BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
/// Buckets of `tls_handshake_seconds`.
pub const TLS_HANDSHAKE_BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0,
];
/// Buckets of `zk_proof_latency_seconds`.
pub const ZK_PROOF_BUCKETS: [f64; 9] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Placeholder value of pre-created children.
pub const PLACEHOLDER: &str = "none";
/// Reasons counted in `rejected_total`, all pre-created.
pub const REJECT_REASONS: [&str; 7] = [
    "method",
    "body",
    "not_found",
    "conn_limit",
    "header_too_large",
    "bad_request",
    "protocol",
];

/// The metrics of one process: golden families, exposer families and host families.
pub struct Metrics {
    /// Requests served, by logical route and method.
    pub request_latency_seconds: HistogramVec,
    /// Encode (plus compress) time per scrape.
    pub exposition_latency_seconds: HistogramVec,
    /// Broadcast receiver lag, by bus.
    pub bus_lagged_total: CounterVec,
    /// Component restarts, by component.
    pub service_restarts_total: CounterVec,
    /// Exposer rejections, by reason.
    pub rejected_total: CounterVec,
    /// Read/write deadline hits, by op.
    pub io_timeouts_total: CounterVec,
    /// Failed TLS handshakes.
    pub tls_handshake_failures_total: Counter,
    /// Post-quantum key exchange failures.
    pub pq_kex_failures_total: CounterVec,
    /// Post-quantum signature verification failures.
    pub pq_verify_failures_total: CounterVec,
    /// Zero-knowledge verification failures.
    pub zk_verify_failures_total: CounterVec,
    /// Zero-knowledge proof time.
    pub zk_proof_latency_seconds: HistogramVec,
    registry: Registry,
    pub(crate) internal: Internal,
    synthetic_load: bool,
    tasks_started: OnceLock<()>,
}

/// Exposer-internal handles, cached so the request path never looks them up.
pub(crate) struct Internal {
    pub(crate) exposition_size_bytes: IntGauge,
    pub(crate) exposition_series: IntGauge,
    pub(crate) exposition_metrics: Histogram,
    pub(crate) tls_handshake_seconds: Histogram,
    pub(crate) exposer_connections: IntGauge,
    pub(crate) io_read: Counter,
    pub(crate) io_write: Counter,
    pub(crate) synthetic: OnceLock<synthetic::Synthetic>,
    // otel: exporter families and the parsed endpoint (see crate::otel).
    #[cfg(feature = "otel")]
    pub(crate) otel: crate::otel::Otel,
}

/// Builds a [`Metrics`]; unset labels come from the environment, then defaults.
#[derive(Debug, Clone, Default)]
pub struct MetricsBuilder {
    service: Option<String>,
    instance: Option<String>,
    build_version: Option<String>,
    amnesia: Option<bool>,
    extra: Vec<(String, String)>,
    request_buckets: Option<Vec<f64>>,
    max_series: Option<usize>,
    synthetic_load: Option<bool>,
    env: Option<EnvSource>,
    // otel: snapshot interval override.
    #[cfg(feature = "otel")]
    otel_interval: Option<std::time::Duration>,
}

impl Metrics {
    /// Metrics labelled from the environment. A bad `RON_*` value prints one stderr line
    /// and exits with status 2; use [`Metrics::try_new`] to handle it instead.
    pub fn new() -> Arc<Metrics> {
        match Metrics::try_new() {
            Ok(m) => m,
            Err(e) => ron_kernel::config::exit_on_error(&binary_name(), &e),
        }
    }

    /// Metrics labelled from the environment, or the first bad variable.
    pub fn try_new() -> Result<Arc<Metrics>, ConfigError> {
        Metrics::builder().build()
    }

    /// A builder.
    pub fn builder() -> MetricsBuilder {
        MetricsBuilder::default()
    }

    /// The registry for host families: same base labels, same exposition.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The base labels.
    pub fn base_labels(&self) -> &BaseLabels {
        self.registry.base_labels()
    }

    /// Whether the synthetic `ron_synthetic_*` families are on.
    pub fn synthetic_load(&self) -> bool {
        self.synthetic_load
    }

    /// Appends the whole exposition (health gauges included when `health` is given).
    pub fn encode(&self, health: Option<&HealthState>, fmt: Format, out: &mut Vec<u8>) {
        self.registry.encode_into(health, fmt, out);
    }

    /// Starts background tasks (synthetic bumps, OTLP export) once a runtime exists.
    pub(crate) fn ensure_tasks(self: &Arc<Self>) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        self.tasks_started.get_or_init(|| {
            if let Some(s) = self.internal.synthetic.get() {
                s.spawn_bumper();
            }
            // otel: the ticker and exporter, when RON_OTEL_ENDPOINT is set.
            #[cfg(feature = "otel")]
            self.internal.otel.spawn(&self.registry);
        });
    }
}

impl MetricsBuilder {
    /// Label `service`.
    pub fn service(mut self, v: impl Into<String>) -> Self {
        self.service = Some(v.into());
        self
    }
    /// Label `instance`.
    pub fn instance(mut self, v: impl Into<String>) -> Self {
        self.instance = Some(v.into());
        self
    }
    /// Label `build_version`.
    pub fn build_version(mut self, v: impl Into<String>) -> Self {
        self.build_version = Some(v.into());
        self
    }
    /// Label `amnesia`.
    pub fn amnesia(mut self, v: bool) -> Self {
        self.amnesia = Some(v);
        self
    }
    /// An extra constant label (at most 4; never a base label name).
    pub fn extra_label(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.extra.push((k.into(), v.into()));
        self
    }
    /// Buckets of `request_latency_seconds`.
    pub fn request_buckets(mut self, b: Vec<f64>) -> Self {
        self.request_buckets = Some(b);
        self
    }
    /// Per-family series cap (default 10,000).
    pub fn max_series_per_family(mut self, n: usize) -> Self {
        self.max_series = Some(n);
        self
    }
    /// Adds the synthetic `ron_synthetic_*` families (as `RON_METRICS_LOAD=large`).
    pub fn synthetic_load(mut self, on: bool) -> Self {
        self.synthetic_load = Some(on);
        self
    }
    /// Reads variables from `env` instead of the process environment.
    pub fn env(mut self, env: EnvSource) -> Self {
        self.env = Some(env);
        self
    }
    // otel: builder knob.
    /// Time between OTLP snapshots (default [`crate::DEFAULT_OTEL_INTERVAL`], 10 s); must be
    /// non-zero. Tests shorten it; operators rarely need to.
    #[cfg(feature = "otel")]
    pub fn otel_interval(mut self, every: std::time::Duration) -> Self {
        self.otel_interval = Some(every);
        self
    }

    /// Validates labels and environment and creates every golden family at zero.
    pub fn build(self) -> Result<Arc<Metrics>, ConfigError> {
        let env = self.env.clone().unwrap_or_else(EnvSource::process);
        env.check_unknown_metrics_vars()?;
        let service = pick(
            self.service,
            &env,
            env::ENV_SERVICE,
            default_service,
            is_ident_value,
        )?;
        let instance = pick(
            self.instance,
            &env,
            env::ENV_INSTANCE,
            default_instance,
            is_ident_value,
        )?;
        let build_version = match self.build_version {
            Some(v) if is_version_value(&v) => v,
            Some(v) => {
                return Err(ConfigError::new(
                    "build_version",
                    v,
                    "builder",
                    "expected [0-9A-Za-z.+-]{1,64}",
                ));
            }
            None => default_build_version(),
        };
        let amnesia = match self.amnesia {
            Some(a) => a,
            None => env::parse_amnesia(&env)?.unwrap_or(false),
        };
        let synthetic_load = match self.synthetic_load {
            Some(s) => s,
            None => env::parse_load(&env)?,
        };
        #[cfg(not(feature = "otel"))]
        if let Some(v) = env.get(env::ENV_OTEL_ENDPOINT) {
            return Err(env::error(
                env::ENV_OTEL_ENDPOINT,
                &v,
                "OTLP export needs ron-metrics built with the `otel` feature; unset the variable or enable the feature",
            ));
        }
        // otel: parse RON_OTEL_ENDPOINT (a bad value is a config error).
        #[cfg(feature = "otel")]
        let otel_exporter = crate::otel::OtelExporter::from_env(&env, self.otel_interval)?;
        let mut base = BaseLabels::new(service, instance, build_version, amnesia);
        base.extra = check_extra(self.extra)?;
        let buckets = self
            .request_buckets
            .unwrap_or_else(|| DEFAULT_REQUEST_BUCKETS.to_vec());
        let registry = Registry::with_series_cap(
            base,
            self.max_series.unwrap_or(DEFAULT_MAX_SERIES_PER_FAMILY),
        );
        let m = golden(registry, &buckets, synthetic_load).map_err(|e| {
            ConfigError::new(
                "request_buckets",
                format!("{buckets:?}"),
                "builder",
                e.to_string(),
            )
        })?;
        #[cfg(feature = "otel")]
        m.internal.otel.configure(otel_exporter);
        let m = Arc::new(m);
        m.ensure_tasks();
        Ok(m)
    }
}

fn pick(
    given: Option<String>,
    env: &EnvSource,
    var: &str,
    default: fn() -> String,
    valid: fn(&str) -> bool,
) -> Result<String, ConfigError> {
    if let Some(v) = given {
        return if valid(&v) {
            Ok(v)
        } else {
            Err(ConfigError::new(
                var,
                v,
                "builder",
                "expected [A-Za-z0-9._-]{1,64}",
            ))
        };
    }
    match env.get(var) {
        Some(v) if valid(&v) => Ok(v),
        Some(v) => Err(env::error(var, &v, "expected [A-Za-z0-9._-]{1,64}")),
        None => Ok(default()),
    }
}

fn check_extra(extra: Vec<(String, String)>) -> Result<Vec<(String, String)>, ConfigError> {
    if extra.len() > MAX_EXTRA_LABELS {
        return Err(ConfigError::new(
            "extra_label",
            extra[MAX_EXTRA_LABELS].0.clone(),
            "builder",
            "at most 4 extra labels",
        ));
    }
    for (i, (k, v)) in extra.iter().enumerate() {
        let bad_name = !is_label_name(k)
            || crate::labels::BASE_LABEL_NAMES.contains(&k.as_str())
            || k == "le"
            || k == "quantile"
            || extra[..i].iter().any(|(p, _)| p == k);
        if bad_name {
            return Err(ConfigError::new(
                "extra_label",
                k.clone(),
                "builder",
                "expected a unique label name that is not a base label, le or quantile",
            ));
        }
        if v.len() > MAX_BASE_VALUE_LEN {
            return Err(ConfigError::new(
                format!("extra_label.{k}"),
                v.clone(),
                "builder",
                "values are at most 64 bytes",
            ));
        }
    }
    Ok(extra)
}

fn golden(
    registry: Registry,
    request_buckets: &[f64],
    synthetic_load: bool,
) -> Result<Metrics, crate::MetricsError> {
    let r = &registry;
    // Registered first so every vector family after it gets its overflow child.
    let overflow = r.counter_vec(
        "metrics_series_overflow_total",
        "Label sets refused by the per-family series cap.",
        &["family"],
    )?;
    r.set_overflow_family(overflow.clone());
    overflow.with_label_values(&["metrics_series_overflow_total"]);
    let errors = r.counter_vec(
        "metrics_exposition_errors_total",
        "Foreign families skipped at scrape time.",
        &["cause"],
    )?;
    r.set_errors_family(errors.clone());
    for c in ["foreign_invalid", "foreign_panic"] {
        errors.with_label_values(&[c]);
    }

    let request_latency_seconds = r.histogram_vec(
        "request_latency_seconds",
        "Request latency in seconds.",
        &["route", "method"],
        request_buckets,
    )?;
    for route in ["/metrics", "/healthz", "/readyz"] {
        request_latency_seconds.with_label_values(&[route, "GET"]);
    }
    let exposition_latency_seconds = r.histogram_vec(
        "exposition_latency_seconds",
        "Time to encode and compress one exposition.",
        &["endpoint"],
        &EXPOSITION_BUCKETS,
    )?;
    let exposition_metrics = exposition_latency_seconds.with_label_values(&["/metrics"]);
    let exposition_size_bytes = r.int_gauge(
        "exposition_size_bytes",
        "Size of the last identity-encoded exposition.",
    )?;
    let exposition_series = r.int_gauge("exposition_series", "Series in the last exposition.")?;
    let bus_lagged_total = r.counter_vec(
        "bus_lagged_total",
        "Messages missed by lagging broadcast receivers.",
        &["bus"],
    )?;
    bus_lagged_total.with_label_values(&[PLACEHOLDER]);
    let service_restarts_total = r.counter_vec(
        "service_restarts_total",
        "Restarts of supervised components.",
        &["component"],
    )?;
    service_restarts_total.with_label_values(&[PLACEHOLDER]);
    let rejected_total = r.counter_vec(
        "rejected_total",
        "Requests and connections the exposer refused.",
        &["reason"],
    )?;
    for reason in REJECT_REASONS {
        rejected_total.with_label_values(&[reason]);
    }
    let io_timeouts_total = r.counter_vec(
        "io_timeouts_total",
        "Read or write deadlines hit on exposer connections.",
        &["op"],
    )?;
    let io_read = io_timeouts_total.with_label_values(&["read"]);
    let io_write = io_timeouts_total.with_label_values(&["write"]);
    let tls_handshake_failures_total = r.counter(
        "tls_handshake_failures_total",
        "TLS handshakes that failed or timed out.",
    )?;
    let tls_handshake_seconds = r.histogram(
        "tls_handshake_seconds",
        "TLS handshake time.",
        &TLS_HANDSHAKE_BUCKETS,
    )?;
    let pq_kex_failures_total = r.counter_vec(
        "pq_kex_failures_total",
        "Post-quantum key exchange failures.",
        &["algo", "role"],
    )?;
    pq_kex_failures_total.with_label_values(&[PLACEHOLDER, PLACEHOLDER]);
    let pq_verify_failures_total = r.counter_vec(
        "pq_verify_failures_total",
        "Post-quantum signature verification failures.",
        &["algo", "role"],
    )?;
    pq_verify_failures_total.with_label_values(&[PLACEHOLDER, PLACEHOLDER]);
    let zk_verify_failures_total = r.counter_vec(
        "zk_verify_failures_total",
        "Zero-knowledge proof verification failures.",
        &["scheme"],
    )?;
    zk_verify_failures_total.with_label_values(&[PLACEHOLDER]);
    let zk_proof_latency_seconds = r.histogram_vec(
        "zk_proof_latency_seconds",
        "Zero-knowledge proof time.",
        &["scheme"],
        &ZK_PROOF_BUCKETS,
    )?;
    zk_proof_latency_seconds.with_label_values(&[PLACEHOLDER]);
    let exposer_connections = r.int_gauge(
        "exposer_connections",
        "Open connections to the standalone exposer.",
    )?;
    // otel: otel_exports_total{result}, otel_export_dropped_total, otel_export_queue_depth.
    #[cfg(feature = "otel")]
    let otel = crate::otel::Otel::register(r)?;

    let internal = Internal {
        exposition_size_bytes,
        exposition_series,
        exposition_metrics,
        tls_handshake_seconds,
        exposer_connections,
        io_read,
        io_write,
        synthetic: OnceLock::new(),
        #[cfg(feature = "otel")]
        otel,
    };
    if synthetic_load {
        let _ = internal.synthetic.set(synthetic::Synthetic::register(r)?);
    }
    Ok(Metrics {
        request_latency_seconds,
        exposition_latency_seconds,
        bus_lagged_total,
        service_restarts_total,
        rejected_total,
        io_timeouts_total,
        tls_handshake_failures_total,
        pq_kex_failures_total,
        pq_verify_failures_total,
        zk_verify_failures_total,
        zk_proof_latency_seconds,
        registry,
        internal,
        synthetic_load,
        tasks_started: OnceLock::new(),
    })
}

/// The running executable's file name, for config error lines.
pub(crate) fn binary_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "ron-metrics".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(vars: &[(&str, &str)]) -> Result<Arc<Metrics>, ConfigError> {
        Metrics::builder()
            .env(EnvSource::fixed(vars.iter().copied()))
            .build()
    }

    #[test]
    fn env_labels_appear_on_every_sample() {
        let m = build(&[
            ("RON_SERVICE", "svc-x"),
            ("RON_INSTANCE", "n1"),
            ("RON_AMNESIA", "TRUE"),
        ])
        .unwrap();
        let mut out = Vec::new();
        m.encode(None, Format::Text004, &mut out);
        let s = String::from_utf8(out).unwrap();
        for line in s.lines().filter(|l| !l.starts_with('#')) {
            assert!(
                line.contains("{service=\"svc-x\",instance=\"n1\",build_version=\"")
                    && line.contains("amnesia=\"on\""),
                "{line}"
            );
        }
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        for (k, v) in [
            ("RON_AMNESIA", "maybe"),
            ("RON_SERVICE", "a b"),
            ("RON_INSTANCE", "x/y"),
            ("RON_METRICS_LOAD", "huge"),
            ("RON_METRICS_FOO", "1"),
            #[cfg(not(feature = "otel"))]
            ("RON_OTEL_ENDPOINT", "grpc://c:4317"),
            #[cfg(feature = "otel")]
            ("RON_OTEL_ENDPOINT", "grpc://c"),
        ] {
            let err = build(&[(k, v)]).err().expect("must fail").to_string();
            assert!(
                err.starts_with(&format!("{k} = \"{v}\" (env {k}): ")),
                "{err}"
            );
        }
    }

    #[test]
    fn extra_labels_are_limited_and_sorted_after_base() {
        let m = Metrics::builder()
            .env(EnvSource::fixed::<&str, &str>([]))
            .extra_label("zone", "a")
            .extra_label("region", "eu")
            .build()
            .unwrap();
        let mut out = Vec::new();
        m.encode(None, Format::Text004, &mut out);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("amnesia=\"off\",region=\"eu\",zone=\"a\"")
        );
        let too_many = (0..5).fold(Metrics::builder(), |b, i| {
            b.extra_label(format!("x{i}"), "v")
        });
        assert!(
            too_many
                .env(EnvSource::fixed::<&str, &str>([]))
                .build()
                .is_err()
        );
        assert!(
            Metrics::builder()
                .extra_label("service", "x")
                .env(EnvSource::fixed::<&str, &str>([]))
                .build()
                .is_err()
        );
    }
}
