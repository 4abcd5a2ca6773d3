//! Target health (spec §4.6 SEN-R31..R33): active probes on a fixed tick, the passive
//! ring of the last attempt outcomes, and the per-target circuit breaker, all visible in
//! metrics and logs.
//!
//! What it is for: deciding `active_healthy` and `passive_ejected` for each target and
//! building its breaker. What it is not for: picking targets (the balancer and
//! [`crate::proxy`] read these flags) or the admin API.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use ron_kernel::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::config::{self, HealthCheck, PassiveHealth, Probe};
use crate::metrics::SentinelMetrics;
use crate::snapshot::{Snapshot, TargetRt, TargetState};

/// Most probe-response body bytes read (and ignored).
pub const PROBE_BODY_LIMIT: usize = 4096;

/// The last result of an active probe, for the admin API.
#[derive(Debug, Clone)]
pub struct LastCheck {
    /// When it finished.
    pub at: std::time::SystemTime,
    /// Success.
    pub ok: bool,
    /// HTTP status, for http probes that got one.
    pub status: Option<u16>,
    /// Duration.
    pub latency_ms: f64,
    /// Why it failed.
    pub error: Option<String>,
}

/// Health bookkeeping of one target, carried across reloads with its [`TargetState`].
#[derive(Debug, Default)]
pub struct HealthBook {
    /// Consecutive probe successes.
    pub successes: AtomicU32,
    /// Consecutive probe failures.
    pub failures: AtomicU32,
    /// Recent attempt outcomes (`true` = failure), newest last.
    pub ring: Mutex<VecDeque<bool>>,
    /// When the target was passively ejected.
    pub ejected_at: Mutex<Option<Instant>>,
    /// The last probe.
    pub last_check: Mutex<Option<LastCheck>>,
    /// Probes run.
    pub probes: AtomicU32,
}

/// Labels of a target in metrics and logs.
#[derive(Debug, Clone)]
pub struct TargetId {
    /// Upstream name.
    pub upstream: Arc<str>,
    /// Target address as configured.
    pub target: Arc<str>,
}

impl TargetId {
    /// `<upstream>/<target>` (the `component` label).
    pub fn component(&self) -> String {
        format!("{}/{}", self.upstream, self.target)
    }
}

/// Records one attempt outcome in the passive ring; ejects the target when the ring holds
/// at least `min-requests` entries and the failure share reaches `failure-ratio`.
pub fn record_attempt(
    state: &TargetState,
    id: &TargetId,
    cfg: &PassiveHealth,
    failed: bool,
    metrics: &SentinelMetrics,
) {
    if !cfg.enabled {
        return;
    }
    let eject = {
        let mut ring = state.health.ring.lock();
        ring.push_back(failed);
        while ring.len() > cfg.window as usize {
            ring.pop_front();
        }
        let failures = ring.iter().filter(|f| **f).count();
        let eject = ring.len() >= cfg.min_requests as usize
            && failures as f64 >= cfg.failure_ratio * ring.len() as f64;
        if eject {
            ring.clear();
        }
        eject
    };
    if eject && !state.passive_ejected.swap(true, Ordering::AcqRel) {
        *state.health.ejected_at.lock() = Some(Instant::now());
        state.health.successes.store(0, Ordering::Relaxed);
        metrics
            .passive_ejections
            .with_label_values(&[&id.upstream, &id.target])
            .inc();
        metrics
            .upstream_health
            .with_label_values(&[&id.upstream, &id.target])
            .set(0);
        tracing::warn!(upstream = %id.upstream, target = %id.target, healthy = false, reason = "passive", "target health changed");
    }
}

/// Ends a passive ejection after `cooldown-secs` when the upstream has no active checks
/// (with active checks, probe successes end it). Called on the request path.
pub fn passive_cooldown(
    state: &TargetState,
    id: &TargetId,
    cfg: &PassiveHealth,
    active: bool,
    metrics: &SentinelMetrics,
) {
    if active || !state.passive_ejected.load(Ordering::Acquire) {
        return;
    }
    let due = state
        .health
        .ejected_at
        .lock()
        .is_some_and(|t| t.elapsed() >= Duration::from_secs(cfg.cooldown_secs));
    if due && state.passive_ejected.swap(false, Ordering::AcqRel) {
        metrics
            .upstream_health
            .with_label_values(&[&id.upstream, &id.target])
            .set(i64::from(state.active_healthy.load(Ordering::Relaxed)));
        tracing::warn!(upstream = %id.upstream, target = %id.target, healthy = true, reason = "cooldown", "target health changed");
    }
}

/// The breaker of a target, reporting transitions to metrics and the log.
pub fn breaker(
    cfg: &config::CircuitBreaker,
    id: &TargetId,
    metrics: &Arc<SentinelMetrics>,
) -> CircuitBreaker {
    let config = BreakerConfig {
        // A disabled breaker never opens.
        failure_threshold: if cfg.enabled {
            cfg.failure_threshold
        } else {
            0
        },
        open_for: Duration::from_secs(cfg.timeout_secs),
        half_open_max_probes: cfg.half_open_max_requests,
        success_threshold: cfg.success_threshold,
    };
    let (m, hook_id) = (metrics.clone(), id.clone());
    let gauge = metrics.breaker_state.with_label_values(&[
        id.component().as_str(),
        &id.upstream,
        &id.target,
    ]);
    gauge.set(0);
    CircuitBreaker::new(id.component(), config)
        .log_transitions(false)
        .on_transition(Arc::new(move |_, from, to, failures| {
            let labels = [
                hook_id.component(),
                hook_id.upstream.to_string(),
                hook_id.target.to_string(),
            ];
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            m.breaker_state
                .with_label_values(&labels)
                .set(spec_gauge(to));
            if to == BreakerState::Open {
                m.breaker_trips.with_label_values(&labels).inc();
            }
            tracing::warn!(
                upstream = %hook_id.upstream,
                target = %hook_id.target,
                from = from.as_str(),
                to = to.as_str(),
                failures,
                "circuit breaker state changed"
            );
        }))
}

/// The spec's gauge encoding: 0 closed, 1 open, 2 half-open.
pub fn spec_gauge(s: BreakerState) -> i64 {
    match s {
        BreakerState::Closed => 0,
        BreakerState::Open => 1,
        BreakerState::HalfOpen => 2,
    }
}

/// Active checkers of one snapshot; dropping (or [`Checkers::stop`]) ends them.
pub struct Checkers {
    tasks: JoinSet<()>,
}

impl Checkers {
    /// Starts one checker per target of every upstream with a `health-check`; the first
    /// probe runs at once, then every `interval-secs` (a missed tick is delayed).
    pub fn start(snapshot: &Snapshot, metrics: &Arc<SentinelMetrics>) -> Checkers {
        let mut tasks = JoinSet::new();
        for u in &snapshot.config.upstreams {
            let config::UpstreamKind::Proxy(p) = &u.kind else {
                continue;
            };
            let Some(hc) = p.health_check.clone() else {
                continue;
            };
            let Some((_, rt)) = snapshot.proxies().find(|(n, _)| *n == u.name) else {
                continue;
            };
            for t in &rt.targets {
                let job = Probing {
                    id: TargetId {
                        upstream: Arc::from(u.name.as_str()),
                        target: Arc::from(t.address.as_str()),
                    },
                    addr: t.addr,
                    state: t.state.clone(),
                    hc: hc.clone(),
                    metrics: metrics.clone(),
                };
                tasks.spawn(job.run());
            }
        }
        Checkers { tasks }
    }

    /// Stops every checker.
    pub fn stop(mut self) {
        self.tasks.abort_all();
    }
}

struct Probing {
    id: TargetId,
    addr: SocketAddr,
    state: Arc<TargetState>,
    hc: HealthCheck,
    metrics: Arc<SentinelMetrics>,
}

impl Probing {
    async fn run(self) {
        let mut tick = tokio::time::interval(Duration::from_secs(self.hc.interval_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.once().await;
        }
    }

    /// One probe and its threshold bookkeeping.
    pub async fn once(&self) {
        let started = Instant::now();
        let timeout = Duration::from_secs(self.hc.timeout_secs);
        let result =
            tokio::time::timeout(timeout, probe(self.addr, &self.hc.probe, &self.id)).await;
        let (ok, status, error) = match result {
            Ok(Ok(status)) => (true, status, None),
            Ok(Err((status, e))) => (false, status, Some(e)),
            Err(_) => (false, None, Some("timeout".to_owned())),
        };
        apply_probe(&self.state, &self.id, &self.hc, ok, &self.metrics);
        self.state.health.probes.fetch_add(1, Ordering::Relaxed);
        *self.state.health.last_check.lock() = Some(LastCheck {
            at: std::time::SystemTime::now(),
            ok,
            status,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            error,
        });
    }
}

/// Runs one probe of `t` now (admin POST …/check).
pub async fn probe_now(
    t: &TargetRt,
    upstream: &str,
    hc: &HealthCheck,
    metrics: &Arc<SentinelMetrics>,
) {
    let job = Probing {
        id: TargetId {
            upstream: Arc::from(upstream),
            target: Arc::from(t.address.as_str()),
        },
        addr: t.addr,
        state: t.state.clone(),
        hc: hc.clone(),
        metrics: metrics.clone(),
    };
    job.once().await;
}

/// Consecutive-threshold bookkeeping of SEN-R31 (and the active recovery of R32).
fn apply_probe(
    state: &TargetState,
    id: &TargetId,
    hc: &HealthCheck,
    ok: bool,
    metrics: &SentinelMetrics,
) {
    let labels = [id.upstream.as_ref(), id.target.as_ref()];
    metrics
        .health_checks
        .with_label_values(&[labels[0], labels[1], if ok { "success" } else { "failure" }])
        .inc();
    let h = &state.health;
    let mut changed = None;
    if ok {
        h.failures.store(0, Ordering::Relaxed);
        let n = h.successes.fetch_add(1, Ordering::AcqRel) + 1;
        if n >= hc.healthy_threshold {
            if !state.active_healthy.swap(true, Ordering::AcqRel) {
                changed = Some((true, "active"));
            }
            if state.passive_ejected.swap(false, Ordering::AcqRel) {
                changed = Some((true, "active"));
            }
        }
    } else {
        h.successes.store(0, Ordering::Relaxed);
        let n = h.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if n >= hc.unhealthy_threshold && state.active_healthy.swap(false, Ordering::AcqRel) {
            changed = Some((false, "active"));
        }
    }
    let healthy = state.active_healthy.load(Ordering::Relaxed)
        && !state.passive_ejected.load(Ordering::Relaxed);
    metrics
        .upstream_health
        .with_label_values(&labels)
        .set(i64::from(healthy));
    if let Some((up, reason)) = changed {
        tracing::warn!(upstream = %id.upstream, target = %id.target, healthy = up, reason, "target health changed");
    }
}

/// Ok(status) on success; Err((status, why)) on failure.
async fn probe(
    addr: SocketAddr,
    probe: &Probe,
    id: &TargetId,
) -> Result<Option<u16>, (Option<u16>, String)> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| (None, format!("connect: {}", e.kind())))?;
    let Probe::Http {
        path,
        expected_status,
        host,
    } = probe
    else {
        return Ok(None);
    };
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| (None, format!("handshake: {e}")))?;
    tokio::spawn(conn);
    let req = Request::get(path.as_str())
        .header(http::header::HOST, host.as_deref().unwrap_or(&id.target))
        .header(
            http::header::USER_AGENT,
            concat!("sentinel-health-check/", env!("CARGO_PKG_VERSION")),
        )
        .header(http::header::CONNECTION, "close")
        .body(Empty::new())
        .map_err(|e| (None, e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| (None, format!("request: {e}")))?;
    let status = resp.status().as_u16();
    // Read (and ignore) at most 4 KiB of the body.
    let mut body = resp.into_body();
    let mut read = 0usize;
    while read < PROBE_BODY_LIMIT {
        match body.frame().await {
            Some(Ok(f)) => read += f.data_ref().map_or(0, Bytes::len),
            _ => break,
        }
    }
    if expected_status.contains(&status) {
        Ok(Some(status))
    } else {
        Err((Some(status), format!("status {status}")))
    }
}
