//! The running configuration as the request path uses it (spec §4.8 R37, R38): routes in
//! match order, upstreams with their balancers, targets with pools and health state, and
//! static responses; swapped atomically on reload while each request keeps the snapshot it
//! started with.
//!
//! A target keeps its state (health, in-flight count) across reloads when its (upstream,
//! address) pair is unchanged, and its pool too when the pool settings, protocol and
//! connect timeout are unchanged. Targets that disappear or drop to weight 0 get their idle
//! connections closed and later releases closed as well (R34).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use ron_kernel::breaker::CircuitBreaker;

use crate::config::{
    Config, PassiveHealth, ProxyUpstream, StaticBody, StaticResponse, Timeouts, UpstreamKind,
    UpstreamProtocol,
};
use crate::health::{self, HealthBook, TargetId};
use crate::lb::Balancer;
use crate::metrics::SentinelMetrics;
use crate::pool::{PoolStats, TargetPool};
use crate::ratelimit::RouteLimiter;
use crate::routing::{RouteTable, Shadowed};

/// Mutable per-target state that outlives reloads.
pub struct TargetState {
    /// `sentinel_upstream_in_flight{upstream,target}`, kept equal to `in_flight`.
    pub in_flight_gauge: prometheus::IntGauge,
    /// Attempts in progress.
    pub in_flight: AtomicU64,
    /// Active health (new targets start healthy).
    pub active_healthy: AtomicBool,
    /// Passively ejected.
    pub passive_ejected: AtomicBool,
    /// Pool counters (kept across pool replacement).
    pub pool_stats: Arc<PoolStats>,
    /// Probe thresholds, the passive ring and the last probe.
    pub health: HealthBook,
}

/// One target of a proxying upstream.
pub struct TargetRt {
    /// Address as configured.
    pub address: String,
    /// Resolved socket address.
    pub addr: SocketAddr,
    /// Weight (0 = drain).
    pub weight: u32,
    /// Carried-over state.
    pub state: Arc<TargetState>,
    /// Connection pool.
    pub pool: Arc<TargetPool>,
    /// Circuit breaker (kept across reloads while its settings are unchanged).
    pub breaker: Arc<CircuitBreaker>,
    breaker_cfg: crate::config::CircuitBreaker,
    /// Metric and log labels.
    pub id: TargetId,
    /// `sentinel_upstream_attempts_total{…,outcome="success"}`, resolved once.
    pub attempts_success: ron_metrics::Counter,
}

impl TargetState {
    /// One more attempt in progress.
    pub fn begin(&self) {
        let n = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.in_flight_gauge.set(n as i64);
    }

    /// One attempt fewer in progress.
    pub fn end(&self) {
        let n = self
            .in_flight
            .fetch_sub(1, Ordering::Relaxed)
            .saturating_sub(1);
        self.in_flight_gauge.set(n as i64);
    }
}

impl TargetRt {
    /// Healthy by both active and passive checks.
    pub fn healthy(&self) -> bool {
        self.state.active_healthy.load(Ordering::Relaxed)
            && !self.state.passive_ejected.load(Ordering::Relaxed)
    }
}

/// A proxying upstream.
pub struct ProxyRt {
    /// Targets in config order.
    pub targets: Vec<TargetRt>,
    /// The load balancer.
    pub balancer: Balancer,
    /// Wire protocol.
    pub protocol: UpstreamProtocol,
    /// Effective timeouts.
    pub timeouts: Timeouts,
    /// Passive health settings.
    pub passive: PassiveHealth,
    /// Whether active checks run.
    pub active_checks: bool,
}

/// A static upstream, ready to answer.
pub struct StaticRt {
    /// Status.
    pub status: http::StatusCode,
    /// Configured headers plus Content-Type.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

/// What an upstream is at runtime.
pub enum UpstreamRt {
    /// Targets.
    Proxy(ProxyRt),
    /// In-process answer.
    Static(StaticRt),
}

/// One immutable generation of the running configuration.
pub struct Snapshot {
    /// 1 at start, +1 per successful reload.
    pub generation: u64,
    /// The effective config.
    pub config: Arc<Config>,
    /// Routes in match order.
    pub routes: RouteTable,
    /// Upstreams by name.
    pub upstreams: HashMap<String, Arc<UpstreamRt>>,
    /// Routes shadowed by an earlier catch-all (logged at load).
    pub shadowed: Vec<Shadowed>,
    /// Rate limiters by route name (kept across reloads while name and settings match).
    pub limiters: HashMap<String, Arc<RouteLimiter>>,
}

impl Snapshot {
    /// Builds generation `generation` from `config` (targets resolved through `resolve`),
    /// carrying target state over from `previous`.
    pub fn build(
        config: Arc<Config>,
        resolve: impl Fn(&str) -> Option<SocketAddr>,
        generation: u64,
        previous: Option<&Snapshot>,
        metrics: &Arc<SentinelMetrics>,
    ) -> Snapshot {
        let (routes, shadowed) = RouteTable::build(&config.routes);
        let mut upstreams = HashMap::new();
        for u in &config.upstreams {
            let rt = match &u.kind {
                UpstreamKind::Proxy(p) => {
                    UpstreamRt::Proxy(build_proxy(&u.name, p, &resolve, previous, metrics))
                }
                UpstreamKind::Static(s) => UpstreamRt::Static(build_static(s)),
            };
            upstreams.insert(u.name.clone(), Arc::new(rt));
        }
        let mut limiters = HashMap::new();
        for r in &config.routes {
            let Some(rl) = &r.policies.rate_limit else {
                continue;
            };
            let kept = previous
                .and_then(|p| p.limiters.get(&r.name))
                .filter(|l| l.cfg == *rl)
                .cloned();
            limiters.insert(
                r.name.clone(),
                kept.unwrap_or_else(|| Arc::new(RouteLimiter::new(rl))),
            );
        }
        let next = Snapshot {
            generation,
            config,
            routes,
            upstreams,
            shadowed,
            limiters,
        };
        if let Some(prev) = previous {
            retire_dropped(prev, &next);
        }
        next
    }

    /// A target of the previous generation with the same (upstream, address).
    fn find_target(&self, upstream: &str, address: &str) -> Option<&TargetRt> {
        match self.upstreams.get(upstream)?.as_ref() {
            UpstreamRt::Proxy(p) => p.targets.iter().find(|t| t.address == address),
            UpstreamRt::Static(_) => None,
        }
    }

    /// Every proxying upstream with its name, in no particular order.
    pub fn proxies(&self) -> impl Iterator<Item = (&str, &ProxyRt)> {
        self.upstreams.iter().filter_map(|(n, u)| match u.as_ref() {
            UpstreamRt::Proxy(p) => Some((n.as_str(), p)),
            UpstreamRt::Static(_) => None,
        })
    }
}

fn build_proxy(
    name: &str,
    p: &ProxyUpstream,
    resolve: &impl Fn(&str) -> Option<SocketAddr>,
    previous: Option<&Snapshot>,
    metrics: &Arc<SentinelMetrics>,
) -> ProxyRt {
    let connect = Duration::from_secs(p.timeouts.connect_secs);
    let targets = p
        .targets
        .iter()
        .filter_map(|t| {
            // Load resolved every host already; an address missing here cannot be used.
            let addr = resolve(&t.address)?;
            let old = previous.and_then(|s| s.find_target(name, &t.address));
            let state = old.map(|o| o.state.clone()).unwrap_or_else(|| {
                Arc::new(TargetState {
                    in_flight_gauge: metrics
                        .upstream_in_flight
                        .with_label_values(&[name, &t.address]),
                    in_flight: AtomicU64::new(0),
                    active_healthy: AtomicBool::new(true),
                    passive_ejected: AtomicBool::new(false),
                    pool_stats: Arc::default(),
                    health: HealthBook::default(),
                })
            });
            let pool = match old {
                Some(o) if o.addr == addr && o.pool.same_settings(&p.pool, p.protocol, connect) => {
                    o.pool.clone()
                }
                _ => TargetPool::new(
                    addr,
                    p.protocol,
                    p.pool.clone(),
                    connect,
                    state.pool_stats.clone(),
                ),
            };
            if t.weight > 0 {
                pool.reinstate();
            }
            let id = TargetId {
                upstream: Arc::from(name),
                target: Arc::from(t.address.as_str()),
            };
            let breaker = match old {
                Some(o) if o.breaker_cfg == p.circuit_breaker => o.breaker.clone(),
                _ => Arc::new(health::breaker(&p.circuit_breaker, &id, metrics)),
            };
            let healthy = state.active_healthy.load(Ordering::Relaxed)
                && !state.passive_ejected.load(Ordering::Relaxed);
            metrics
                .upstream_health
                .with_label_values(&[name, &t.address])
                .set(i64::from(healthy));
            // Every per-target series exists from the first scrape (SEN-R44).
            metrics
                .passive_ejections
                .with_label_values(&[name, &t.address]);
            metrics
                .upstream_in_flight
                .with_label_values(&[name, &t.address]);
            for result in ["success", "failure"] {
                metrics
                    .health_checks
                    .with_label_values(&[name, &t.address, result]);
            }
            metrics
                .breaker_trips
                .with_label_values(&[&id.component(), name, &t.address]);
            Some(TargetRt {
                address: t.address.clone(),
                addr,
                weight: t.weight,
                state,
                pool,
                breaker,
                breaker_cfg: p.circuit_breaker.clone(),
                attempts_success: metrics
                    .attempts
                    .with_label_values(&[name, &t.address, "success"]),
                id,
            })
        })
        .collect::<Vec<_>>();
    ProxyRt {
        balancer: Balancer::new(p.load_balancing, targets.len()),
        targets,
        protocol: p.protocol,
        timeouts: p.timeouts.clone(),
        passive: p.passive_health.clone(),
        active_checks: p.health_check.is_some(),
    }
}

fn build_static(s: &StaticResponse) -> StaticRt {
    let mut headers = HeaderMap::new();
    for (k, v) in &s.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.append(k, v);
        }
    }
    if let Ok(ct) = HeaderValue::from_str(&s.content_type) {
        headers.insert(CONTENT_TYPE, ct);
    }
    let body = match &s.body {
        StaticBody::Inline(text) => Bytes::from(text.clone()),
        StaticBody::File { bytes, .. } => Bytes::from(bytes.clone().unwrap_or_default()),
    };
    StaticRt {
        status: http::StatusCode::from_u16(s.status)
            .unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE),
        headers,
        body,
    }
}

/// Closes idle connections of targets that left, changed pools or went to weight 0.
fn retire_dropped(prev: &Snapshot, next: &Snapshot) {
    for (name, p) in prev.proxies() {
        for t in &p.targets {
            let kept = next
                .find_target(name, &t.address)
                .filter(|n| n.weight > 0 && Arc::ptr_eq(&n.pool, &t.pool));
            if kept.is_none() {
                t.pool.close_idle(true);
            }
        }
    }
}
