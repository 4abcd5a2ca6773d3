//! Liveness and readiness (MNG-R29), computed by the `mg-monitor` thread every
//! `checkIntervalMs` from counters the agents already keep (no clocks on the agents).
//!
//! Liveness: an agent is stale when its `duty_cycles` has not moved for `agentStaleMs`.
//! Readiness: ready exactly when `missing` is empty; `missing` is sorted and holds
//! `starting`, `shutting_down`, `group:NAME`, `backlog:F/G` (set at depth ≥ threshold,
//! cleared at the first sample below ⌊threshold/2⌋), `disconnected:F/G` and `agent:NAME`.
//! `since` moves on every ready↔degraded flip; `retry_after` is `retryAfterS` while
//! degraded, else 0.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use crate::group::{AgentStats, GroupShared, PROC_RUNNING};
use crate::publish::FeedShared;
use crate::queue::{DISCONNECTED, DROP_LABELS, SubShared};

/// `backpressure_drops` is logged at most once per (feed, group, policy) per this period.
pub const BACKPRESSURE_LOG_EVERY: Duration = Duration::from_secs(10);

/// Health settings (`health.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// Check period.
    pub check_interval: Duration,
    /// Staleness limit.
    pub agent_stale: Duration,
    /// `Retry-After` while degraded, seconds.
    pub retry_after_s: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            check_interval: Duration::from_millis(250),
            agent_stale: Duration::from_millis(5000),
            retry_after_s: 5,
        }
    }
}

/// One health answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// No agent is stale.
    pub alive: bool,
    /// Stale agents, sorted.
    pub stale: Vec<String>,
    /// `missing` is empty.
    pub ready: bool,
    /// Readiness keys, sorted.
    pub missing: Vec<String>,
    /// Last ready↔degraded flip.
    pub since: SystemTime,
    /// Seconds for `Retry-After` (0 when ready).
    pub retry_after: u32,
}

struct State {
    missing: BTreeSet<String>,
    stale: Vec<String>,
    ready: bool,
    since: SystemTime,
}

/// Shared health state, updated by the monitor.
pub struct Health {
    cfg: Mutex<HealthConfig>,
    state: Mutex<State>,
    shutting_down: AtomicBool,
    started: AtomicBool,
}

impl Health {
    /// A health state that reports `starting` until [`Health::set_started`].
    pub fn new(cfg: HealthConfig) -> Arc<Self> {
        let mut missing = BTreeSet::new();
        missing.insert("starting".to_string());
        Arc::new(Health {
            cfg: Mutex::new(cfg),
            state: Mutex::new(State {
                missing,
                stale: Vec::new(),
                ready: false,
                since: SystemTime::now(),
            }),
            shutting_down: AtomicBool::new(false),
            started: AtomicBool::new(false),
        })
    }

    /// Startup finished.
    pub fn set_started(&self) {
        self.started.store(true, Ordering::Release);
    }

    /// The current settings.
    pub fn config(&self) -> HealthConfig {
        *self.cfg.lock()
    }

    /// New settings (reload); the monitor uses them from its next check.
    pub fn set_config(&self, c: HealthConfig) {
        *self.cfg.lock() = c;
    }

    /// Whether shutdown began.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Shutdown began: readiness fails first.
    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
        let mut s = self.state.lock();
        s.missing.insert("shutting_down".into());
        self.flip(&mut s);
    }

    fn flip(&self, s: &mut State) {
        let ready = s.missing.is_empty();
        if ready != s.ready {
            s.ready = ready;
            s.since = SystemTime::now();
        }
    }

    /// The current answer.
    pub fn report(&self) -> HealthReport {
        let s = self.state.lock();
        HealthReport {
            alive: s.stale.is_empty(),
            stale: s.stale.clone(),
            ready: s.ready,
            missing: s.missing.iter().cloned().collect(),
            since: s.since,
            retry_after: if s.ready {
                0
            } else {
                self.cfg.lock().retry_after_s
            },
        }
    }
}

/// What the monitor watches.
pub struct Watched {
    /// Groups.
    pub groups: Vec<Arc<GroupShared>>,
    /// Subscriptions.
    pub subs: Vec<Arc<SubShared>>,
    /// Agents other than groups (`feeds`, `sinks`): staleness only.
    pub agents: Vec<(&'static str, Arc<AgentStats>)>,
    /// Feeds and whether each is critical (`feed:NAME` while a critical one is down).
    pub feeds: Vec<(Arc<FeedShared>, bool)>,
    /// Services (`service:NAME` while a critical one is not started or not healthy).
    pub services: Vec<Arc<crate::service::ServiceEntry>>,
}

struct Seen {
    cycles: u64,
    changed: Instant,
}

/// Runs the monitor until `stop`; `first_pass` hears once the first check has updated the
/// state, so a caller can make readiness current before it returns.
pub fn spawn_monitor(
    health: Arc<Health>,
    watched: Watched,
    stop: Arc<AtomicBool>,
    first_pass: std::sync::mpsc::SyncSender<()>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("mg-monitor".into())
        .spawn(move || {
            let mut seen: HashMap<&'static str, Seen> = HashMap::new();
            let mut backlog: BTreeSet<String> = BTreeSet::new();
            let mut stale_logged: BTreeSet<String> = BTreeSet::new();
            // Per (subscription, drop label): drops already reported, and when.
            let mut drops_logged: HashMap<(usize, usize), (u64, Instant)> = HashMap::new();
            while !stop.load(Ordering::Acquire) {
                let now = Instant::now();
                let cfg = health.config();
                let mut missing: BTreeSet<String> = BTreeSet::new();
                let mut stale = Vec::new();
                for g in &watched.groups {
                    let cycles = g.agent.duty_cycles.load(Ordering::Relaxed);
                    let e = seen.entry(g.name).or_insert(Seen {
                        cycles,
                        changed: now,
                    });
                    if e.cycles != cycles {
                        e.cycles = cycles;
                        e.changed = now;
                    }
                    let exited = g.exited.load(Ordering::Acquire);
                    let age = now.duration_since(e.changed);
                    g.agent
                        .heartbeat_age_ms
                        .store(age.as_millis() as u64, Ordering::Relaxed);
                    if !exited && age >= cfg.agent_stale {
                        stale.push(g.name.to_string());
                        missing.insert(format!("agent:{}", g.name));
                        if stale_logged.insert(g.name.to_string()) {
                            tracing::error!(
                                agent = g.name,
                                age_ms = age.as_millis() as u64,
                                "agent_stale"
                            );
                        }
                    } else {
                        stale_logged.remove(g.name);
                    }
                    let running = g
                        .procs
                        .lock()
                        .iter()
                        .any(|p| p.state.load(Ordering::Relaxed) == PROC_RUNNING);
                    if exited || !running {
                        missing.insert(format!("group:{}", g.name));
                    }
                }
                for (name, a) in &watched.agents {
                    let cycles = a.duty_cycles.load(Ordering::Relaxed);
                    let e = seen.entry(name).or_insert(Seen {
                        cycles,
                        changed: now,
                    });
                    if e.cycles != cycles {
                        e.cycles = cycles;
                        e.changed = now;
                    }
                    let age = now.duration_since(e.changed);
                    a.heartbeat_age_ms
                        .store(age.as_millis() as u64, Ordering::Relaxed);
                    if age >= cfg.agent_stale {
                        stale.push(name.to_string());
                        missing.insert(format!("agent:{name}"));
                        if stale_logged.insert(name.to_string()) {
                            tracing::error!(
                                agent = *name,
                                age_ms = age.as_millis() as u64,
                                "agent_stale"
                            );
                        }
                    } else {
                        stale_logged.remove(*name);
                    }
                }
                for sv in watched.services.iter().filter(|s| s.critical) {
                    if !sv.up() {
                        missing.insert(format!("service:{}", sv.name));
                    }
                }
                for (f, critical) in &watched.feeds {
                    if *critical && !f.connected.load(Ordering::Acquire) {
                        missing.insert(format!("feed:{}", f.name));
                    }
                }
                for (si, s) in watched.subs.iter().enumerate() {
                    for (pi, policy) in DROP_LABELS.iter().enumerate().skip(1) {
                        let total = s.drops(pi);
                        let (reported, at) = match drops_logged.get(&(si, pi)) {
                            Some((n, t)) => (*n, Some(*t)),
                            None => (0, None),
                        };
                        let due =
                            at.is_none_or(|t| now.duration_since(t) >= BACKPRESSURE_LOG_EVERY);
                        if total > reported && due {
                            tracing::warn!(
                                feed = s.feed,
                                group = s.group,
                                policy,
                                count = total - reported,
                                window_s = BACKPRESSURE_LOG_EVERY.as_secs(),
                                "backpressure_drops"
                            );
                            drops_logged.insert((si, pi), (total, now));
                        }
                    }
                }
                for s in &watched.subs {
                    let key = format!("{}/{}", s.feed, s.group);
                    let depth = s.depth();
                    let threshold = u64::from(s.threshold.load(Ordering::Relaxed));
                    if depth >= threshold {
                        backlog.insert(key.clone());
                    } else if depth < threshold / 2 {
                        backlog.remove(&key);
                    }
                    if backlog.contains(&key) {
                        missing.insert(format!("backlog:{key}"));
                    }
                    if s.state.load(Ordering::Acquire) == DISCONNECTED {
                        missing.insert(format!("disconnected:{key}"));
                    }
                }
                if !health.started.load(Ordering::Acquire) {
                    missing.insert("starting".into());
                }
                if health.shutting_down.load(Ordering::Acquire) {
                    missing.insert("shutting_down".into());
                }
                stale.sort();
                {
                    let mut st = health.state.lock();
                    st.missing = missing;
                    st.stale = stale;
                    health.flip(&mut st);
                }
                let _ = first_pass.try_send(());
                // Parked, not slept, so a stopping server can wake it at once.
                std::thread::park_timeout(cfg.check_interval);
            }
        })
}
