//! Sentinel's metric families (spec §5 SEN-R44) on the ron-metrics registry, which adds
//! the base labels `service`, `instance`, `build_version` and `amnesia` to every sample.
//!
//! Families and their static label sets are registered at startup so they appear before
//! traffic; per-route children are created for every configured route (and `_builtin`,
//! `_unmatched`) when a snapshot is installed.

use std::sync::Arc;

use ron_metrics::{
    Counter, CounterVec, HistogramVec, IntGauge, IntGaugeVec, Metrics, MetricsError,
};

/// Duration buckets of `sentinel_request_duration_seconds`.
pub const DURATION_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Route label of the reserved paths.
pub const ROUTE_BUILTIN: &str = "_builtin";
/// Route label of rejected or unmatched requests.
pub const ROUTE_UNMATCHED: &str = "_unmatched";

/// Handles of the families.
pub struct SentinelMetrics {
    /// The ron-metrics instance (exposer, base labels).
    pub metrics: Arc<Metrics>,
    /// `sentinel_requests_total{route,status}`.
    pub requests: CounterVec,
    /// `sentinel_request_duration_seconds{route}`.
    pub duration: HistogramVec,
    /// `sentinel_in_flight_requests`.
    pub in_flight: IntGauge,
    /// `sentinel_open_connections{listener}`.
    pub open_connections: IntGaugeVec,
    /// `sentinel_connections_total{listener}`.
    pub connections: CounterVec,
    /// `sentinel_downstream_errors_total{listener,kind}`.
    pub downstream_errors: CounterVec,
    /// `sentinel_upstream_attempts_total{upstream,target,outcome}`.
    pub attempts: CounterVec,
    /// `sentinel_upstream_in_flight{upstream,target}`.
    pub upstream_in_flight: IntGaugeVec,
    /// `sentinel_retries_total{route}`.
    pub retries: CounterVec,
    /// `sentinel_config_reloads_total{result}`.
    pub reloads: CounterVec,
    /// `sentinel_config_generation`.
    pub generation: IntGauge,
    /// `sentinel_config_last_reload_success_timestamp_seconds`.
    pub last_reload: IntGauge,
    /// `sentinel_panics_total`.
    pub panics: Counter,
    /// `sentinel_upstream_health{upstream,target}`.
    pub upstream_health: IntGaugeVec,
    /// `sentinel_health_checks_total{upstream,target,result}`.
    pub health_checks: CounterVec,
    /// `sentinel_passive_ejections_total{upstream,target}`.
    pub passive_ejections: CounterVec,
    /// `sentinel_circuit_breaker_state{component,upstream,target}`.
    pub breaker_state: IntGaugeVec,
    /// `sentinel_circuit_breaker_trips_total{component,upstream,target}`.
    pub breaker_trips: CounterVec,
}

impl SentinelMetrics {
    /// Registers every family on `metrics`.
    pub fn register(metrics: Arc<Metrics>) -> Result<SentinelMetrics, MetricsError> {
        let r = metrics.registry();
        let reloads = r.counter_vec(
            "sentinel_config_reloads_total",
            "SIGHUP reload outcomes.",
            &["result"],
        )?;
        for result in ["success", "failure"] {
            reloads.with_label_values(&[result]);
        }
        Ok(SentinelMetrics {
            requests: r.counter_vec(
                "sentinel_requests_total",
                "Responses by route and status (499 = the client went away).",
                &["route", "status"],
            )?,
            duration: r.histogram_vec(
                "sentinel_request_duration_seconds",
                "Head received to last response byte, by route.",
                &["route"],
                &DURATION_BUCKETS,
            )?,
            in_flight: r.int_gauge(
                "sentinel_in_flight_requests",
                "Admitted requests not finished.",
            )?,
            open_connections: r.int_gauge_vec(
                "sentinel_open_connections",
                "Open downstream connections by listener.",
                &["listener"],
            )?,
            connections: r.counter_vec(
                "sentinel_connections_total",
                "Accepted downstream connections by listener.",
                &["listener"],
            )?,
            downstream_errors: r.counter_vec(
                "sentinel_downstream_errors_total",
                "Connection-level client errors.",
                &["listener", "kind"],
            )?,
            attempts: r.counter_vec(
                "sentinel_upstream_attempts_total",
                "Upstream attempts by outcome.",
                &["upstream", "target", "outcome"],
            )?,
            upstream_in_flight: r.int_gauge_vec(
                "sentinel_upstream_in_flight",
                "Upstream attempts in progress.",
                &["upstream", "target"],
            )?,
            retries: r.counter_vec(
                "sentinel_retries_total",
                "Retry attempts by route.",
                &["route"],
            )?,
            reloads,
            generation: r.int_gauge(
                "sentinel_config_generation",
                "1 at start, +1 per successful reload.",
            )?,
            last_reload: r.int_gauge(
                "sentinel_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful configuration load.",
            )?,
            panics: r.counter("sentinel_panics_total", "Caught task panics.")?,
            upstream_health: r.int_gauge_vec(
                "sentinel_upstream_health",
                "1 healthy, 0 unhealthy (active or passive).",
                &["upstream", "target"],
            )?,
            health_checks: r.counter_vec(
                "sentinel_health_checks_total",
                "Active probes by result.",
                &["upstream", "target", "result"],
            )?,
            passive_ejections: r.counter_vec(
                "sentinel_passive_ejections_total",
                "Passive ejections.",
                &["upstream", "target"],
            )?,
            breaker_state: r.int_gauge_vec(
                "sentinel_circuit_breaker_state",
                "0 closed, 1 open, 2 half-open.",
                &["component", "upstream", "target"],
            )?,
            breaker_trips: r.counter_vec(
                "sentinel_circuit_breaker_trips_total",
                "Entries into the open state.",
                &["component", "upstream", "target"],
            )?,
            metrics,
        })
    }
}
