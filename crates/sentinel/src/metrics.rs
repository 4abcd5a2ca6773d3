//! Sentinel's metric families (spec §5 SEN-R44) on the ron-metrics registry, which adds
//! the base labels `service`, `instance`, `build_version` and `amnesia` to every sample.
//!
//! Families are registered at startup. Their static label sets are created by
//! [`SentinelMetrics::refresh`], which the admin listener runs before every scrape against
//! the running snapshot: per configured route (and `_builtin`, `_unmatched`), per listener,
//! per upstream and per target, so every series appears before traffic.
//!
//! Values owned elsewhere are read at scrape time rather than recorded twice on the hot
//! path: the pool families from the [`PoolStats`] atomics of each target, the memory gauge
//! from /proc/self/statm, the error rate and quantiles from [`window`]. The request path
//! records a finished request once through [`SentinelMetrics::observe_request`].
//!
//! The per-target gauges (`sentinel_upstream_health`, `sentinel_upstream_in_flight`,
//! `sentinel_circuit_breaker_state`) are `prometheus`-crate vectors registered as foreign
//! collectors, because a reload must remove the series of removed targets (SEN-R36 step 5)
//! and ron-metrics families cannot drop a series; [`SentinelMetrics::refresh`] removes them.

mod window;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;
use ron_metrics::{
    Counter, CounterVec, Gauge, HistogramVec, IntGauge, IntGaugeVec, Metrics, MetricsError,
};

use crate::pool::PoolStats;
use crate::snapshot::{Snapshot, UpstreamRt};

pub use window::{QUANTILES, SUMMARY_NAME};

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
    /// `sentinel_upstream_in_flight{upstream,target}` (removable series).
    pub upstream_in_flight: prometheus::IntGaugeVec,
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
    /// `sentinel_upstream_health{upstream,target}` (removable series).
    pub upstream_health: prometheus::IntGaugeVec,
    /// `sentinel_health_checks_total{upstream,target,result}`.
    pub health_checks: CounterVec,
    /// `sentinel_passive_ejections_total{upstream,target}`.
    pub passive_ejections: CounterVec,
    /// `sentinel_circuit_breaker_state{component,upstream,target}` (removable series).
    pub breaker_state: prometheus::IntGaugeVec,
    /// `sentinel_circuit_breaker_trips_total{component,upstream,target}`.
    pub breaker_trips: CounterVec,
    /// `sentinel_connections_rejected_total{listener,reason}`.
    pub connections_rejected: CounterVec,
    /// `sentinel_connections_max` (set from `limits.max-total-connections` at scrape).
    pub connections_max: IntGauge,
    /// `sentinel_rate_limited_total{route}`.
    pub rate_limited: CounterVec,
    /// `sentinel_rate_limit_keys{route}`.
    pub rate_limit_keys: IntGaugeVec,
    /// `sentinel_connection_pool_open{upstream}` (computed at scrape).
    pub pool_open: IntGaugeVec,
    /// `sentinel_connection_pool_in_use{upstream}` (computed at scrape).
    pub pool_in_use: IntGaugeVec,
    /// `sentinel_connection_pool_idle{upstream}` (computed at scrape).
    pub pool_idle: IntGaugeVec,
    /// `sentinel_connection_pool_connects_total{upstream,result}` (synced at scrape).
    pub pool_connects: CounterVec,
    /// `sentinel_connection_pool_reused_total{upstream}` (synced at scrape).
    pub pool_reused: CounterVec,
    /// `sentinel_connection_pool_exhausted_total{upstream}` (synced at scrape).
    pub pool_exhausted: CounterVec,
    /// `sentinel_open_tunnels`.
    pub open_tunnels: IntGauge,
    /// `sentinel_memory_usage_bytes` (read at scrape).
    pub memory: IntGauge,
    /// `sentinel_access_log_dropped_total`.
    pub access_log_dropped: Counter,
    /// `sentinel_log_write_errors_total`.
    pub log_write_errors: Counter,
    /// `sentinel_error_rate` (computed at scrape).
    pub error_rate: Gauge,
    /// Quantile and error-rate windows.
    windows: Arc<window::Windows>,
    /// Pool counter values already added to the counters, per (upstream, target).
    pool_seen: Mutex<PoolSeen>,
}

/// Connection-level error kinds of `sentinel_downstream_errors_total`.
pub const DOWNSTREAM_KINDS: [&str; 6] = [
    "parse",
    "header_timeout",
    "tls_handshake",
    "h2_protocol",
    "io",
    "send_timeout",
];
/// Reasons of `sentinel_connections_rejected_total`.
pub const REJECT_REASONS: [&str; 3] = ["max_total", "max_listener", "max_per_client"];
/// Outcomes of `sentinel_upstream_attempts_total`.
pub const ATTEMPT_OUTCOMES: [&str; 7] = [
    "success",
    "connect_error",
    "connect_timeout",
    "timeout",
    "closed",
    "protocol_error",
    "status_5xx",
];

#[derive(Default)]
struct PoolSeen {
    targets: HashMap<(String, String), SeenTarget>,
    upstreams: HashSet<String>,
}

/// The counters of one target's [`PoolStats`] as last added to the families. The stats
/// object is kept to notice a target that was replaced (its counters restart at 0).
struct SeenTarget {
    stats: Arc<PoolStats>,
    last: [i64; 5],
}

fn pool_counters(s: &PoolStats) -> [i64; 5] {
    [
        s.connects_ok.load(Ordering::Relaxed),
        s.connects_error.load(Ordering::Relaxed),
        s.connects_timeout.load(Ordering::Relaxed),
        s.reused.load(Ordering::Relaxed),
        s.exhausted.load(Ordering::Relaxed),
    ]
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
        let windows = Arc::new(window::Windows::default());
        let summary = window::SummaryCollector::new(windows.clone())
            .map_err(|e| MetricsError::InvalidName(format!("{SUMMARY_NAME}: {e}")))?;
        r.register_collector(Box::new(summary))?;
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
            upstream_in_flight: removable_gauge_vec(
                &metrics,
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
            upstream_health: removable_gauge_vec(
                &metrics,
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
            breaker_state: removable_gauge_vec(
                &metrics,
                "sentinel_circuit_breaker_state",
                "0 closed, 1 open, 2 half-open.",
                &["component", "upstream", "target"],
            )?,
            breaker_trips: r.counter_vec(
                "sentinel_circuit_breaker_trips_total",
                "Entries into the open state.",
                &["component", "upstream", "target"],
            )?,
            connections_rejected: r.counter_vec(
                "sentinel_connections_rejected_total",
                "Connections closed at accept by a connection cap.",
                &["listener", "reason"],
            )?,
            connections_max: r.int_gauge(
                "sentinel_connections_max",
                "Current limits.max-total-connections.",
            )?,
            rate_limited: r.counter_vec(
                "sentinel_rate_limited_total",
                "Requests answered 429 by a route rate limit.",
                &["route"],
            )?,
            rate_limit_keys: r.int_gauge_vec(
                "sentinel_rate_limit_keys",
                "Live rate-limiter keys by route.",
                &["route"],
            )?,
            pool_open: r.int_gauge_vec(
                "sentinel_connection_pool_open",
                "Open upstream sockets by upstream.",
                &["upstream"],
            )?,
            pool_in_use: r.int_gauge_vec(
                "sentinel_connection_pool_in_use",
                "Held upstream pool slots by upstream.",
                &["upstream"],
            )?,
            pool_idle: r.int_gauge_vec(
                "sentinel_connection_pool_idle",
                "Open minus in-use upstream connections by upstream.",
                &["upstream"],
            )?,
            pool_connects: r.counter_vec(
                "sentinel_connection_pool_connects_total",
                "New upstream connections by result.",
                &["upstream", "result"],
            )?,
            pool_reused: r.counter_vec(
                "sentinel_connection_pool_reused_total",
                "Upstream attempts served on an existing connection.",
                &["upstream"],
            )?,
            pool_exhausted: r.counter_vec(
                "sentinel_connection_pool_exhausted_total",
                "Requests answered 503 pool_exhausted.",
                &["upstream"],
            )?,
            open_tunnels: r.int_gauge("sentinel_open_tunnels", "Upgraded connections.")?,
            memory: r.int_gauge(
                "sentinel_memory_usage_bytes",
                "Resident set size, read at scrape.",
            )?,
            access_log_dropped: r.counter(
                "sentinel_access_log_dropped_total",
                "Access-log lines dropped because the writer queue was full.",
            )?,
            log_write_errors: r.counter(
                "sentinel_log_write_errors_total",
                "Failed writes to log files.",
            )?,
            error_rate: r.gauge(
                "sentinel_error_rate",
                "5xx responses / all responses over the last 60 s; 0 when idle.",
            )?,
            windows,
            pool_seen: Mutex::default(),
            metrics,
        })
    }

    /// Records one finished request for the quantile summary and the error rate (the
    /// counter and histogram are recorded by the caller).
    pub fn observe_request(&self, route: &str, status: u16, secs: f64) {
        self.windows.record(route, status, secs);
    }

    /// Brings the scrape-time values up to date with `snap`: creates the static label
    /// sets of its routes, listeners, upstreams and targets, syncs the pool families from
    /// the targets' [`PoolStats`], and sets the memory, limit and error-rate gauges.
    pub fn refresh(&self, snap: &Snapshot) {
        let config = &snap.config;
        let routes = config.routes.iter().map(|r| r.name.as_str());
        for route in routes.clone().chain([ROUTE_BUILTIN, ROUTE_UNMATCHED]) {
            self.duration.with_label_values(&[route]);
            self.retries.with_label_values(&[route]);
            self.windows.prime(route);
        }
        for route in routes {
            self.rate_limited.with_label_values(&[route]);
            self.rate_limit_keys.with_label_values(&[route]);
        }
        let listeners = config.listeners.iter().map(|l| l.name.as_str());
        for listener in listeners.chain(["main"]) {
            self.open_connections.with_label_values(&[listener]);
            self.connections.with_label_values(&[listener]);
            for reason in REJECT_REASONS {
                self.connections_rejected
                    .with_label_values(&[listener, reason]);
            }
            for kind in DOWNSTREAM_KINDS {
                self.downstream_errors.with_label_values(&[listener, kind]);
            }
        }
        self.connections_max
            .set(i64::from(config.limits.max_total_connections));
        self.sync_pools(snap);
        self.remove_gone_targets(snap);
        if let Some(rss) = rss_bytes() {
            self.memory.set(rss as i64);
        }
        self.error_rate.set(self.windows.error_rate());
    }

    /// Pool gauges are sums over the targets now; counters grow by what each target's
    /// stats gained since the last scrape, so they stay monotonic when targets come and
    /// go (a removed target's increments after the last scrape are lost).
    fn sync_pools(&self, snap: &Snapshot) {
        let mut seen = self.pool_seen.lock();
        let mut live_targets = HashSet::new();
        let mut live_upstreams = HashSet::new();
        for u in &snap.config.upstreams {
            let Some(UpstreamRt::Proxy(p)) = snap.upstreams.get(&u.name).map(|u| u.as_ref()) else {
                continue;
            };
            let name = u.name.as_str();
            let (mut open, mut in_use) = (0i64, 0i64);
            let mut gained = [0u64; 5];
            for t in &p.targets {
                let stats = &t.state.pool_stats;
                open += stats.open.load(Ordering::Relaxed).max(0);
                in_use += stats.in_use.load(Ordering::Relaxed).max(0);
                let key = (u.name.clone(), t.address.clone());
                let now = pool_counters(stats);
                let entry = seen
                    .targets
                    .entry(key.clone())
                    .or_insert_with(|| SeenTarget {
                        stats: stats.clone(),
                        last: [0; 5],
                    });
                if !Arc::ptr_eq(&entry.stats, stats) {
                    *entry = SeenTarget {
                        stats: stats.clone(),
                        last: [0; 5],
                    };
                }
                for ((g, n), l) in gained.iter_mut().zip(now).zip(entry.last.iter_mut()) {
                    if n > *l {
                        *g += (n - *l) as u64;
                        *l = n;
                    }
                }
                live_targets.insert(key);
            }
            self.pool_open.with_label_values(&[name]).set(open);
            self.pool_in_use.with_label_values(&[name]).set(in_use);
            self.pool_idle
                .with_label_values(&[name])
                .set((open - in_use).max(0));
            let [ok, error, timeout, reused, exhausted] = gained;
            for (result, n) in [("ok", ok), ("error", error), ("timeout", timeout)] {
                self.pool_connects
                    .with_label_values(&[name, result])
                    .inc_by(n);
            }
            self.pool_reused.with_label_values(&[name]).inc_by(reused);
            self.pool_exhausted
                .with_label_values(&[name])
                .inc_by(exhausted);
            for t in &p.targets {
                for outcome in ATTEMPT_OUTCOMES {
                    self.attempts
                        .with_label_values(&[name, &t.address, outcome]);
                }
            }
            live_upstreams.insert(u.name.clone());
        }
        // Series of removed upstreams cannot be deleted from the registry; their gauges
        // read 0 instead of a stale count.
        for gone in seen.upstreams.difference(&live_upstreams) {
            for g in [&self.pool_open, &self.pool_in_use, &self.pool_idle] {
                g.with_label_values(&[gone]).set(0);
            }
        }
        seen.targets.retain(|k, _| live_targets.contains(k));
        seen.upstreams = live_upstreams;
    }
}

impl SentinelMetrics {
    /// SEN-R36 step 5: drops the per-target gauge series of targets the running snapshot
    /// no longer has (removed targets or upstreams). Run before every scrape, it also drops
    /// a series that a late update from an old snapshot (a request or probe finishing after
    /// the reload) created again.
    fn remove_gone_targets(&self, snap: &Snapshot) {
        let live: HashSet<(&str, &str)> = snap
            .proxies()
            .flat_map(|(name, p)| p.targets.iter().map(move |t| (name, t.address.as_str())))
            .collect();
        for vec in [
            &self.upstream_health,
            &self.upstream_in_flight,
            &self.breaker_state,
        ] {
            use prometheus::core::Collector;
            for family in vec.collect() {
                for m in family.get_metric() {
                    let label = |n: &str| {
                        m.get_label()
                            .iter()
                            .find(|l| l.name() == n)
                            .map_or("", |l| l.value())
                    };
                    if live.contains(&(label("upstream"), label("target"))) {
                        continue;
                    }
                    // Label values in the vector's declaration order.
                    let values: Vec<&str> = vec
                        .desc()
                        .first()
                        .map(|d| d.variable_labels.iter().map(|n| label(n)).collect())
                        .unwrap_or_default();
                    let _ = vec.remove_label_values(&values);
                }
            }
        }
    }
}

/// A `prometheus`-crate gauge vector registered on `metrics` as a foreign collector (the
/// base labels are added when rendered), so its series can be removed.
fn removable_gauge_vec(
    metrics: &Metrics,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<prometheus::IntGaugeVec, MetricsError> {
    let vec = prometheus::IntGaugeVec::new(prometheus::Opts::new(name, help), labels)
        .map_err(|e| MetricsError::InvalidName(format!("{name}: {e}")))?;
    metrics
        .registry()
        .register_collector(Box::new(vec.clone()))?;
    Ok(vec)
}

/// Resident set size from /proc/self/statm (pages × page size), if readable.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(page_size()))
}

#[allow(unsafe_code)]
fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).ok().filter(|n| *n > 0).unwrap_or(4096)
}
