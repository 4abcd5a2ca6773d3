//! svc-edge's metric families (spec §5.1), registered once on the ron-metrics registry
//! with every labelled child pre-created, and hot-path handles resolved up front so
//! recording takes no lock and no allocation.

use std::sync::Arc;

use ron_metrics::{Counter, CounterVec, Histogram, HistogramVec, IntGauge, IntGaugeVec, Metrics};

/// Route labels of `http_requests_total` and `request_latency_seconds`.
pub const ROUTES: [&str; 8] = [
    "assets", "tiles", "tilejson", "cas", "live", "healthz", "readyz", "other",
];
/// Method labels.
pub const METHODS: [&str; 4] = ["GET", "HEAD", "OPTIONS", "other"];
/// Statuses pre-created for `http_requests_total`.
pub const STATUSES: [&str; 20] = [
    "200", "204", "206", "304", "400", "403", "404", "405", "406", "412", "413", "414", "416",
    "429", "431", "500", "502", "503", "501", "505",
];
/// Every `reason` of spec §3.3.
pub const REASONS: [&str; 23] = [
    "bad_path",
    "bad_request",
    "not_allowed",
    "cors",
    "method",
    "decompress_cap",
    "body_cap",
    "invalid_range",
    "rate_limit",
    "busy",
    "integrity",
    "internal",
    "upstream_4xx",
    "upstream_5xx",
    "upstream",
    "digest_mismatch",
    "too_large",
    "timeout",
    "io",
    "amnesia",
    "draining",
    "not_ready",
    "uri_too_long",
];
/// Content endpoints of `busy_rejections_total`.
pub const CONTENT_ENDPOINTS: [&str; 5] = ["assets", "tiles", "tilejson", "cas", "live"];
/// Ops of `io_timeouts_total`.
pub const TIMEOUT_OPS: [&str; 5] = ["read", "write", "fill", "connect", "client_header"];
/// Kinds of cache hit/miss counters.
pub const CACHE_KINDS: [&str; 4] = ["pack", "tile", "cas", "live"];

/// Index of a `kind` label in [`CACHE_KINDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheKind {
    /// Directory-pack files and whole archives.
    Pack = 0,
    /// Tiles.
    Tile = 1,
    /// CAS objects.
    Cas = 2,
    /// Live-route objects.
    Live = 3,
}
/// Results of `edge_range_requests_total`.
pub const RANGE_RESULTS: [&str; 5] = ["206", "multipart", "416", "ignored", "malformed"];
/// Latency buckets of `request_latency_seconds`.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12,
];

/// Handles of every svc-edge family.
pub struct EdgeMetrics {
    /// The underlying ron-metrics instance (base labels, exposer).
    pub metrics: Arc<Metrics>,
    /// `http_requests_total{route,method,status}`.
    pub requests: CounterVec,
    /// Cached children of `requests` for every (route, method, pre-created status).
    requests_cached: Vec<Counter>,
    /// `request_latency_seconds{route,method}`, cached per (route, method).
    latency: Vec<Histogram>,
    /// Children of `hits` and `misses` per [`CacheKind`], and of `bytes_out` per route.
    hits_cached: Vec<Counter>,
    misses_cached: Vec<Counter>,
    bytes_cached: Vec<Counter>,
    /// `rejected_total{reason}`.
    pub rejected: CounterVec,
    /// `busy_rejections_total{endpoint}`.
    pub busy: CounterVec,
    /// `edge_inflight`.
    pub inflight: IntGauge,
    /// `edge_inflight_limit`: the configured `ingress.max_inflight`, so "inflight ≥ 80 % of
    /// the cap" (runbook §10) is a PromQL ratio.
    pub inflight_limit: IntGauge,
    /// `edge_queue_depth{queue="fill"}`.
    pub queue_depth: IntGauge,
    /// `edge_queue_dropped_total{queue="fill"}`.
    pub queue_dropped: Counter,
    /// `io_timeouts_total{op}`.
    pub io_timeouts: CounterVec,
    /// `edge_cache_hits_total{kind}`.
    pub hits: CounterVec,
    /// `edge_cache_misses_total{kind}`.
    pub misses: CounterVec,
    /// `edge_range_requests_total{result}`.
    pub ranges: CounterVec,
    /// `edge_live_fill_attempts_total{host}`.
    pub fill_attempts: CounterVec,
    /// `edge_live_fill_success_total{host}`.
    pub fill_success: CounterVec,
    /// `edge_live_fill_retries_total{host}`.
    pub fill_retries: CounterVec,
    /// `edge_live_fill_coalesced_total`.
    pub fill_coalesced: Counter,
    /// `edge_tls_handshake_failures_total{side}`: the side breakdown of the golden
    /// unlabelled `tls_handshake_failures_total`, which counts every failure too.
    pub tls_failures: CounterVec,
    /// `edge_bytes_out_total{route}`.
    pub bytes_out: CounterVec,
    /// `edge_cas_writes_total{status}`.
    pub cas_writes: CounterVec,
    /// `edge_integrity_failures_total{kind}`.
    pub integrity: CounterVec,
    /// `edge_pack_mounts_total{result}`.
    pub pack_mounts: CounterVec,
    /// `edge_packs_mounted{kind}`.
    pub packs_mounted: IntGaugeVec,
    /// `edge_ram_cache_bytes`.
    pub ram_cache_bytes: IntGauge,
    /// `edge_ready`.
    pub ready: IntGauge,
    /// `config_reloads_total{result}`.
    pub reloads: CounterVec,
}

impl EdgeMetrics {
    /// Registers every family on `metrics` and pre-creates the children.
    pub fn register(
        metrics: Arc<Metrics>,
        allow_hosts: &[String],
    ) -> Result<EdgeMetrics, ron_metrics::MetricsError> {
        let r = metrics.registry();
        let requests = r.counter_vec(
            "http_requests_total",
            "API responses by route, method and status.",
            &["route", "method", "status"],
        )?;
        let mut requests_cached = Vec::with_capacity(ROUTES.len() * METHODS.len() * STATUSES.len());
        for route in ROUTES {
            for method in METHODS {
                for status in STATUSES {
                    requests_cached.push(requests.with_label_values(&[route, method, status]));
                }
            }
        }
        // ron-metrics owns request_latency_seconds (svc-edge builds it with LATENCY_BUCKETS);
        // svc-edge records into it with its own route names.
        let latency_vec: &HistogramVec = &metrics.request_latency_seconds;
        let latency = ROUTES
            .iter()
            .flat_map(|route| METHODS.iter().map(move |m| (*route, *m)))
            .map(|(route, m)| latency_vec.with_label_values(&[route, m]))
            .collect();
        // rejected_total and io_timeouts_total are ron-metrics golden families; svc-edge adds
        // its own reasons and ops to them so the runbook's greps find one family each.
        let rejected = metrics.rejected_total.clone();
        for reason in REASONS {
            rejected.with_label_values(&[reason]);
        }
        let busy = pre(
            r.counter_vec(
                "busy_rejections_total",
                "Inflight-cap and fill-queue 429s.",
                &["endpoint"],
            ),
            &CONTENT_ENDPOINTS,
        )?;
        let inflight = r.int_gauge("edge_inflight", "Admission permits held.")?;
        let inflight_limit = r.int_gauge(
            "edge_inflight_limit",
            "Admission permits configured (ingress.max_inflight; follows SIGHUP).",
        )?;
        let depth = r.int_gauge_vec("edge_queue_depth", "Fill jobs waiting.", &["queue"])?;
        let queue_depth = depth.with_label_values(&["fill"]);
        let dropped = r.counter_vec(
            "edge_queue_dropped_total",
            "Fill jobs refused because the queue was full.",
            &["queue"],
        )?;
        let queue_dropped = dropped.with_label_values(&["fill"]);
        let io_timeouts = metrics.io_timeouts_total.clone();
        for op in TIMEOUT_OPS {
            io_timeouts.with_label_values(&[op]);
        }
        let hits = pre(
            r.counter_vec("edge_cache_hits_total", "Objects found.", &["kind"]),
            &CACHE_KINDS,
        )?;
        let misses = pre(
            r.counter_vec(
                "edge_cache_misses_total",
                "Objects not found or needing a fill.",
                &["kind"],
            ),
            &CACHE_KINDS,
        )?;
        let ranges = pre(
            r.counter_vec(
                "edge_range_requests_total",
                "GET requests with Range, by outcome.",
                &["result"],
            ),
            &RANGE_RESULTS,
        )?;
        let hosts: Vec<&str> = allow_hosts.iter().map(String::as_str).collect();
        let fill_attempts = pre(
            r.counter_vec(
                "edge_live_fill_attempts_total",
                "Live fills started.",
                &["host"],
            ),
            &hosts,
        )?;
        let fill_success = pre(
            r.counter_vec(
                "edge_live_fill_success_total",
                "Live fills stored.",
                &["host"],
            ),
            &hosts,
        )?;
        let fill_retries = pre(
            r.counter_vec(
                "edge_live_fill_retries_total",
                "Live fill retries.",
                &["host"],
            ),
            &hosts,
        )?;
        let fill_coalesced = r.counter(
            "edge_live_fill_coalesced_total",
            "Requests that joined an in-flight fill.",
        )?;
        let tls_failures = pre(
            r.counter_vec(
                "edge_tls_handshake_failures_total",
                "TLS handshake failures by side (outbound = live fill).",
                &["side"],
            ),
            &["outbound", "inbound"],
        )?;
        let bytes_out = pre(
            r.counter_vec("edge_bytes_out_total", "Body bytes written.", &["route"]),
            &ROUTES,
        )?;
        let cas_writes = pre(
            r.counter_vec(
                "edge_cas_writes_total",
                "CAS commits by outcome.",
                &["status"],
            ),
            &["ok", "dedup", "error"],
        )?;
        let integrity = pre(
            r.counter_vec(
                "edge_integrity_failures_total",
                "Digest mismatches found at serve time.",
                &["kind"],
            ),
            &["pack", "cas"],
        )?;
        let pack_mounts = pre(
            r.counter_vec(
                "edge_pack_mounts_total",
                "Pack mounts by outcome.",
                &["result"],
            ),
            &["ok", "error"],
        )?;
        let packs_mounted =
            r.int_gauge_vec("edge_packs_mounted", "Packs in the current set.", &["kind"])?;
        for k in ["pmtiles", "dir"] {
            packs_mounted.with_label_values(&[k]);
        }
        let ram_cache_bytes = r.int_gauge("edge_ram_cache_bytes", "Amnesia RAM cache in use.")?;
        let ready = r.int_gauge("edge_ready", "1 when /readyz answers 200.")?;
        let reloads = pre(
            r.counter_vec(
                "config_reloads_total",
                "SIGHUP reload outcomes.",
                &["result"],
            ),
            &["ok", "error"],
        )?;
        let hits_cached = CACHE_KINDS
            .iter()
            .map(|k| hits.with_label_values(&[k]))
            .collect();
        let misses_cached = CACHE_KINDS
            .iter()
            .map(|k| misses.with_label_values(&[k]))
            .collect();
        let bytes_cached = ROUTES
            .iter()
            .map(|r| bytes_out.with_label_values(&[r]))
            .collect();
        Ok(EdgeMetrics {
            metrics,
            hits_cached,
            misses_cached,
            bytes_cached,
            requests,
            requests_cached,
            latency,
            rejected,
            busy,
            inflight,
            inflight_limit,
            queue_depth,
            queue_dropped,
            io_timeouts,
            hits,
            misses,
            ranges,
            fill_attempts,
            fill_success,
            fill_retries,
            fill_coalesced,
            tls_failures,
            bytes_out,
            cas_writes,
            integrity,
            pack_mounts,
            packs_mounted,
            ram_cache_bytes,
            ready,
            reloads,
        })
    }

    /// Counts one response in `http_requests_total`, through a cached child when the
    /// status is one of the pre-created ones (no lookup on the hot path).
    pub fn count_request(&self, route: usize, method: usize, status: http::StatusCode) {
        let text = status.as_str();
        match STATUSES.iter().position(|s| *s == text) {
            Some(i) => {
                self.requests_cached[(route * METHODS.len() + method) * STATUSES.len() + i].inc()
            }
            None => self
                .requests
                .with_label_values(&[ROUTES[route], METHODS[method], text])
                .inc(),
        }
    }

    /// `edge_cache_hits_total{kind}` +1, through a cached child.
    pub fn hit(&self, kind: CacheKind) {
        self.hits_cached[kind as usize].inc();
    }

    /// `edge_cache_misses_total{kind}` +1, through a cached child.
    pub fn miss(&self, kind: CacheKind) {
        self.misses_cached[kind as usize].inc();
    }

    /// `edge_bytes_out_total{route}` + `n` for route index `route`.
    pub fn bytes(&self, route: usize, n: u64) {
        self.bytes_cached[route].inc_by(n);
    }

    /// The cached latency histogram for (route index, method index).
    pub fn latency(&self, route: usize, method: usize) -> &Histogram {
        &self.latency[route * METHODS.len() + method]
    }
}

fn pre(
    vec: Result<CounterVec, ron_metrics::MetricsError>,
    values: &[&str],
) -> Result<CounterVec, ron_metrics::MetricsError> {
    let vec = vec?;
    for v in values {
        vec.with_label_values(&[v]);
    }
    Ok(vec)
}
