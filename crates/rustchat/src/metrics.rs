//! rustchat's metric families (spec §5.1, CHAT-R26), each named once here.
//!
//! Every family carries the base labels (`service="rustchat"`, `instance=<node_id>`,
//! `build_version`, `amnesia`) from the ron-metrics registry, and every known label
//! combination is created at registration, so a family is visible before its first event.
//! Routes are the matched templates (`/api/v1/channels/{id}/posts`), never raw paths, so
//! the series count is bounded by the route table.

use std::sync::Arc;

use ron_metrics::{
    Counter, CounterVec, Gauge, GaugeVec, HistogramVec, IntGauge, IntGaugeVec, Metrics,
    MetricsError,
};

/// Buckets of `rustchat_http_request_duration_seconds`: 1 ms to 10 s.
pub const DURATION_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of `rustchat_websocket_delivery_seconds`.
pub const DELIVERY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Route label of requests no route matched.
pub const ROUTE_UNMATCHED: &str = "unmatched";
/// Route label of the Mattermost-shaped 501 fallback.
pub const ROUTE_V4_FALLBACK: &str = "/api/v4/*";

/// The registered families.
pub struct ChatMetrics {
    pub metrics: Arc<Metrics>,
    pub http_requests: CounterVec,
    pub http_duration: HistogramVec,
    pub pool_saturation: GaugeVec,
    pub pool_connections: IntGaugeVec,
    pub ws_active: IntGauge,
    pub ws_limit: IntGauge,
    pub ws_connections: CounterVec,
    pub ws_disconnects: CounterVec,
    pub ws_delivery: HistogramVec,
    pub messages_sent: CounterVec,
    pub breaker_changes: CounterVec,
    pub breaker_state: IntGaugeVec,
    pub rate_limit_hits: CounterVec,
    pub auth_attempts: CounterVec,
    pub active_users: IntGauge,
    pub cluster_nodes: IntGauge,
    pub cluster_messages: CounterVec,
    pub upload_bytes: Counter,
    pub config_reloads: CounterVec,
    pub build_info: Gauge,
}

impl ChatMetrics {
    /// Pre-registers every transition series of breaker `name` at 0 (CHAT-R26: families
    /// are visible before the first event, so `increase()` alerts see the first change).
    pub fn register_breaker_transitions(m: &ChatMetrics, name: &str) {
        for (from, to) in [
            ("closed", "open"),
            ("open", "half_open"),
            ("half_open", "closed"),
            ("half_open", "open"),
        ] {
            m.breaker_changes.with_label_values(&[name, from, to]);
        }
    }

    /// The transition hook of breaker `name`: counts each change in
    /// `rustchat_circuit_breaker_state_changes_total` and sets `rustchat_circuit_breaker_state`
    /// (besides ron-kernel's WARN `circuit breaker state changed` line). Registers the
    /// breaker's series at 0 (closed) first.
    pub fn breaker_hook(m: &Arc<ChatMetrics>, name: &str) -> ron_kernel::breaker::TransitionHook {
        m.breaker_state.with_label_values(&[name]).set(0);
        Self::register_breaker_transitions(m, name);
        let m = m.clone();
        Arc::new(move |name, from, to, _| {
            m.breaker_changes
                .with_label_values(&[name, from.as_str(), to.as_str()])
                .inc();
            m.breaker_state
                .with_label_values(&[name])
                .set(to.as_gauge());
        })
    }

    /// Registers every family on `metrics` with its known label sets at zero.
    pub fn register(
        metrics: Arc<Metrics>,
        pools: &[&str],
        mm_version: &str,
    ) -> Result<Self, MetricsError> {
        let r = metrics.registry();
        let m = ChatMetrics {
            http_requests: r.counter_vec(
                "rustchat_http_requests_total",
                "HTTP responses by method, matched route template and status.",
                &["method", "route", "status"],
            )?,
            http_duration: r.histogram_vec(
                "rustchat_http_request_duration_seconds",
                "Time to the response head by method and route (WebSocket: to the 101).",
                &["method", "route"],
                &DURATION_BUCKETS,
            )?,
            pool_saturation: r.gauge_vec(
                "rustchat_db_pool_saturation_ratio",
                "In-use/max database connections, sampled every 100 ms, mean of the last 10 (SQLite writer: busy fraction).",
                &["pool"],
            )?,
            pool_connections: r.int_gauge_vec(
                "rustchat_db_pool_connections",
                "Database connections by pool and state.",
                &["pool", "state"],
            )?,
            ws_active: r.int_gauge(
                "rustchat_websocket_active_connections",
                "Open WebSocket connections on this node.",
            )?,
            ws_limit: r.int_gauge(
                "rustchat_websocket_connection_limit",
                "Node-wide WebSocket connection cap (ws.max_connections_per_node).",
            )?,
            ws_connections: r.counter_vec(
                "rustchat_websocket_connections_total",
                "WebSocket upgrade attempts by API and result.",
                &["api", "result"],
            )?,
            ws_disconnects: r.counter_vec(
                "rustchat_websocket_disconnects_total",
                "WebSocket closes by reason.",
                &["reason"],
            )?,
            ws_delivery: r.histogram_vec(
                "rustchat_websocket_delivery_seconds",
                "Event publish to frame written, per recipient.",
                &[],
                &DELIVERY_BUCKETS,
            )?,
            messages_sent: r.counter_vec(
                "rustchat_messages_sent_total",
                "Acknowledged posts by source.",
                &["source"],
            )?,
            breaker_changes: r.counter_vec(
                "rustchat_circuit_breaker_state_changes_total",
                "Circuit breaker transitions.",
                &["breaker", "from", "to"],
            )?,
            breaker_state: r.int_gauge_vec(
                "rustchat_circuit_breaker_state",
                "Circuit breaker state: 0 closed, 1 half_open, 2 open.",
                &["breaker"],
            )?,
            rate_limit_hits: r.counter_vec(
                "rustchat_rate_limit_hits_total",
                "Requests refused with 429 by a rate limit.",
                &["endpoint", "limit_type"],
            )?,
            auth_attempts: r.counter_vec(
                "rustchat_auth_attempts_total",
                "Authentication attempts by method and result.",
                &["method", "result"],
            )?,
            active_users: r.int_gauge(
                "rustchat_active_users",
                "Users with at least one live WebSocket connection.",
            )?,
            cluster_nodes: r.int_gauge("rustchat_cluster_nodes", "Live cluster nodes, this one included.")?,
            cluster_messages: r.counter_vec(
                "rustchat_cluster_messages_total",
                "Cluster bus messages by direction and kind.",
                &["direction", "kind"],
            )?,
            upload_bytes: r.counter("rustchat_file_uploads_bytes_total", "Stored upload bytes.")?,
            config_reloads: r.counter_vec(
                "rustchat_config_reloads_total",
                "SIGHUP reload outcomes.",
                &["result"],
            )?,
            build_info: r.gauge_vec(
                "rustchat_build_info",
                "Build information (always 1).",
                &["version", "mattermost_version"],
            )?
            .with_label_values(&[env!("CARGO_PKG_VERSION"), mm_version]),
            metrics: metrics.clone(),
        };
        m.build_info.set(1.0);
        for pool in pools {
            m.pool_saturation.with_label_values(&[pool]);
            for state in ["idle", "in_use"] {
                m.pool_connections.with_label_values(&[pool, state]);
            }
        }
        for api in ["v1", "v4"] {
            for result in ["accepted", "rate_limited", "over_limit", "unauthorized"] {
                m.ws_connections.with_label_values(&[api, result]);
            }
        }
        for reason in [
            "client",
            "slow_client",
            "expired",
            "revoked",
            "shutdown",
            "resync",
            "error",
        ] {
            m.ws_disconnects.with_label_values(&[reason]);
        }
        m.ws_delivery.with_label_values(&[]);
        for source in ["api_v1", "api_v4", "webhook"] {
            m.messages_sent.with_label_values(&[source]);
        }
        m.breaker_state.with_label_values(&["database"]);
        Self::register_breaker_transitions(&m, "database");
        for (endpoint, kind) in [("auth", "ip"), ("ws", "ip"), ("webhook", "hook")] {
            m.rate_limit_hits.with_label_values(&[endpoint, kind]);
        }
        for method in ["password", "oidc", "token"] {
            for result in ["success", "failure"] {
                m.auth_attempts.with_label_values(&[method, result]);
            }
        }
        for result in ["ok", "error"] {
            m.config_reloads.with_label_values(&[result]);
        }
        for direction in ["published", "received"] {
            for kind in ["event", "heartbeat", "session_revoked", "config_changed"] {
                m.cluster_messages.with_label_values(&[direction, kind]);
            }
        }
        m.cluster_nodes.set(1);
        Ok(m)
    }

    /// Counts one authentication attempt.
    pub fn auth_attempt(&self, method: &str, ok: bool) {
        self.auth_attempts
            .with_label_values(&[method, if ok { "success" } else { "failure" }])
            .inc();
    }
}
