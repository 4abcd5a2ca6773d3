//! Wiring and lifecycle of one server (MNG-R08, R19, R30) for embedders: feeds, groups,
//! sinks and the quarantine, started fail-fast and shut down with a bounded drain.
//!
//! Startup: every group thread builds, subscribes, inits and starts its processors and
//! reports the feeds it subscribed; only then are the queues created (one per feed and
//! consuming group) and handed out; then `start_complete` runs and publishers accept
//! events. A critical failure stops what started, in reverse, and returns the component.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use parking_lot::Mutex;

use crate::admin::{Admin, AdminCore, AdminSpec, AgentInfo, AgentSource, FeedInfo};
use crate::event::Event;
use crate::feed::{FeedEnv, FeedOut, FeedRunner};
use crate::group::AgentStats;
use crate::group::{
    self, Consumer, Control, GroupEnv, GroupShared, GroupSpec, StartMsg, StopError,
};
use crate::publish::{FeedShared, PHASE_CLOSED, PHASE_RUNNING, PHASE_STARTING, Publisher};
use crate::quarantine::Quarantine;
use crate::queue::{self, Backpressure, SubShared};
use crate::service::{SERVICE_FAILED, SERVICE_STARTED, SERVICE_STOPPED, ServiceEntry, ServiceSpec};
use crate::sink::SinkHandle;

mod shutdown;
mod start;

/// Default readiness threshold, percent of capacity.
pub const DEFAULT_BACKLOG_PCT: u32 = 80;
/// How long shutdown waits for the I/O feeds' last publishes (and redis-stream's final
/// acknowledgement) before the groups drain.
pub const IO_FEED_FINISH: Duration = Duration::from_secs(15);
/// How long a routed admin command may take.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(2000);

/// A `memory` feed.
#[derive(Debug, Clone)]
pub struct FeedSpec {
    /// Name (unique among feeds, sinks, services, pipes).
    pub name: String,
    /// `producers: multi`.
    pub multi: bool,
    /// Queue capacity per subscription (power of two).
    pub queue_capacity: u32,
    /// Backpressure setting.
    pub backpressure: Backpressure,
    /// Readiness threshold; None = 80 % of capacity.
    pub backlog_threshold: Option<u32>,
    /// Every processor of every group receives it.
    pub broadcast: bool,
    /// The feed acknowledges upstream once its groups processed an event (redis-stream):
    /// groups publish watermarks for it.
    pub acknowledged: bool,
    /// `wrapWithNamedEvent`: built-ins forward and render `{"feed","seq","data"}`.
    pub wrap_named: bool,
}

impl FeedSpec {
    /// A single-producer memory feed with defaults.
    pub fn memory(name: &str) -> Self {
        FeedSpec {
            name: name.into(),
            multi: false,
            queue_capacity: 1024,
            backpressure: Backpressure::default(),
            backlog_threshold: None,
            broadcast: false,
            acknowledged: false,
            wrap_named: false,
        }
    }
}

/// Everything a server is made of.
pub struct ServerSpec<E: Event> {
    /// Server name (unique per process).
    pub name: String,
    /// Feeds.
    pub feeds: Vec<FeedSpec>,
    /// Handler groups.
    pub groups: Vec<GroupSpec<E>>,
    /// Memory sinks: (name, capacity).
    pub memory_sinks: Vec<(String, usize)>,
    /// Agent-hosted sinks (started before the groups, hosted on the `sinks` agent).
    pub sinks: Vec<crate::sink_agent::SinkSpec<E>>,
    /// Quarantine ring size.
    pub quarantine_capacity: usize,
    /// How long a group may take to start.
    pub start_timeout: Duration,
    /// Health checks.
    pub health: crate::health::HealthConfig,
    /// How non-memory feeds connect; a feed without a source is a `memory` feed whose
    /// publisher [`RunningServer::publisher`] hands out.
    pub feed_sources: Vec<FeedSource<E>>,
    /// The admin surface; `address: None` binds nothing (the router can still be mounted).
    pub admin: AdminSpec,
    /// Tokio workers of the I/O runtime (created only when admin, sinks or I/O feeds need
    /// it).
    pub io_threads: u16,
    /// `startup.connectTimeoutMs`.
    pub connect_timeout: Duration,
    /// `quarantine.sink`: the name of a hosted sink that receives quarantine records.
    pub quarantine_sink: Option<String>,
    /// Registered type of each processor (for `processors.list`).
    pub processor_types: HashMap<String, String>,
    /// Idle strategy of the `feeds` and `sinks` agents.
    pub agent_idle: crate::idle::IdleStrategy,
    /// Where agent-run feeds and hosted sinks run, by their name; the default is the
    /// `feeds` / `sinks` agent with `agent_idle` and no pinning.
    pub placements: HashMap<String, AgentPlacement>,
    /// Pipes (MNG-R28): (feed, sink) name pairs; the feed must be in `feeds` and
    /// multi-producer.
    pub pipes: Vec<(String, String)>,
    /// Services, in declaration order (MNG-R06).
    pub services: Vec<ServiceSpec>,
    /// `latency.enabled`: record per-processor latency from the start.
    pub latency_enabled: bool,
    /// `latency.snapshotMs`: the interval window of `latency.status` and the period of the
    /// figures scrapes read.
    pub snapshot_ms: u32,
}

impl<E: Event> Default for ServerSpec<E> {
    /// A server named `mongoose` with nothing in it, no admin listener, the §2.3 defaults.
    fn default() -> Self {
        ServerSpec {
            name: "mongoose".into(),
            feeds: Vec::new(),
            groups: Vec::new(),
            memory_sinks: Vec::new(),
            sinks: Vec::new(),
            quarantine_capacity: 1000,
            start_timeout: Duration::from_secs(10),
            health: Default::default(),
            feed_sources: Vec::new(),
            admin: AdminSpec {
                address: None,
                ..AdminSpec::default()
            },
            io_threads: 2,
            connect_timeout: Duration::from_secs(5),
            quarantine_sink: None,
            processor_types: HashMap::new(),
            agent_idle: crate::idle::IdleStrategy::default(),
            pipes: Vec::new(),
            placements: HashMap::new(),
            services: Vec::new(),
            latency_enabled: true,
            snapshot_ms: crate::group::DEFAULT_SNAPSHOT_MS,
        }
    }
}

/// Which agent thread hosts a feed or sink, with that agent's idle strategy and core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPlacement {
    /// Agent (and thread) name.
    pub agent: String,
    /// Its idle strategy.
    pub idle: crate::idle::IdleStrategy,
    /// The core it pins itself to, if any.
    pub core: Option<usize>,
}

/// Connects one feed instance (its config already bound in).
pub type FeedConnect<E> = Box<dyn FnOnce(&FeedEnv) -> Result<FeedRunner<E>, String> + Send>;

/// How one non-memory feed connects at startup step 7.
pub struct FeedSource<E: Event> {
    /// The [`FeedSpec`] it feeds.
    pub feed: String,
    /// Registered type (for messages and `event-sources`).
    pub type_name: String,
    /// A critical feed that cannot connect fails startup.
    pub critical: bool,
    /// Connects and returns the runner.
    pub connect: FeedConnect<E>,
}

/// Why a server did not start.
#[derive(Debug, thiserror::Error)]
#[error("{component}: {error}")]
pub struct StartError {
    /// The failing component, e.g. `processor 'p1'`.
    pub component: String,
    /// What went wrong.
    pub error: String,
}

/// A name that lives as long as the process: names label every envelope without a refcount.
pub(crate) fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

static NAMES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A group thread during startup: its shared state, thread, startup report, and the
/// channels that hand it its queues and the go signal.
type Started<E> = (
    Arc<GroupShared>,
    JoinHandle<()>,
    Receiver<StartMsg>,
    std::sync::mpsc::SyncSender<Option<Vec<Consumer<E>>>>,
    std::sync::mpsc::SyncSender<bool>,
);

/// `queues.reconnect` refused: no such subscription, or it was not disconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("subscription is not disconnected")]
pub struct NotDisconnected;

/// A running server.
pub struct RunningServer<E: Event> {
    name: String,
    phase: Arc<AtomicU8>,
    feeds: Vec<Arc<FeedShared>>,
    publishers: Mutex<HashMap<String, Publisher<E>>>,
    groups: Vec<Arc<GroupShared>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    subs: Vec<Arc<SubShared>>,
    sinks: Arc<HashMap<String, SinkHandle<E>>>,
    quarantine: Arc<Quarantine>,
    stopped: AtomicBool,
    sink_agents: Mutex<Vec<crate::sink_agent::SinkAgent>>,
    health: Arc<crate::health::Health>,
    metrics: Arc<ron_metrics::Metrics>,
    monitor_stop: Arc<AtomicBool>,
    monitor: Mutex<Option<JoinHandle<()>>>,
    admin: Arc<Admin>,
    admin_addr: Option<std::net::SocketAddr>,
    admin_stop: CancellationToken,
    feeds_stop: CancellationToken,
    feed_threads: Mutex<Vec<JoinHandle<()>>>,
    io_done: Mutex<Vec<Receiver<()>>>,
    services: Arc<Vec<Arc<ServiceEntry>>>,
    /// The running config and the registry it was built with (servers started from a
    /// config; [`RunningServer::reload`] needs both).
    reload_ctx: Mutex<
        Option<(
            crate::config::ServerConfig,
            Arc<crate::registry::Registry<E>>,
        )>,
    >,
    services_stop: CancellationToken,
    service_threads: Mutex<Vec<JoinHandle<()>>>,
    shutdown_request: CancellationToken,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    /// Published with no subscriber, per feed (also in `FeedShared`).
    pub unrouted: AtomicU64,
}

/// What startup has built so far, torn down in reverse on a critical failure.
struct Partial {
    admin_stop: CancellationToken,
    feeds_stop: CancellationToken,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Partial {
    fn abort(self) {
        self.feeds_stop.cancel();
        self.admin_stop.cancel();
        if let Some(rt) = self.runtime {
            rt.shutdown_background();
        }
    }
}

impl<E: Event> RunningServer<E> {
    /// Starts `spec` fail-fast.
    pub fn start(spec: ServerSpec<E>) -> Result<Self, StartError> {
        {
            let mut names = NAMES.lock();
            if names.contains(&spec.name) {
                return Err(StartError {
                    component: format!("server '{}'", spec.name),
                    error: "a server with this name already runs in this process".into(),
                });
            }
            names.push(spec.name.clone());
        }
        let name = spec.name.clone();
        let out = Self::start_inner(spec);
        if let Err(e) = &out {
            // The component's kind is its first word: feed, sink, group, processor, service...
            let kind = e.component.split_whitespace().next().unwrap_or("");
            tracing::error!(component = %e.component, kind, error = %e.error, "startup_failed");
            NAMES.lock().retain(|n| *n != name);
        }
        out
    }

    /// The publisher of a memory feed: once for single-producer feeds, a clone each time
    /// for multi-producer ones.
    pub fn publisher(&self, feed: &str) -> Option<Publisher<E>> {
        let mut p = self.publishers.lock();
        let multi = self.feeds.iter().find(|f| f.name == feed)?.multi;
        if multi {
            p.get(feed)?.try_clone()
        } else {
            p.remove(feed)
        }
    }

    /// A sink handle (for memory sink snapshots).
    pub fn memory_sink(&self, name: &str) -> Option<SinkHandle<E>> {
        self.sinks.get(name).cloned()
    }

    /// This server's metrics registry (base labels service, instance, build_version,
    /// amnesia).
    pub fn metrics(&self) -> &Arc<ron_metrics::Metrics> {
        &self.metrics
    }

    /// The Prometheus text exposition (0.0.4).
    pub fn metrics_text(&self) -> String {
        let mut out = Vec::new();
        self.metrics
            .encode(None, ron_metrics::Format::Text004, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The health state (settings and flags).
    pub fn health_state(&self) -> &Arc<crate::health::Health> {
        &self.health
    }

    /// Liveness and readiness.
    pub fn health(&self) -> crate::health::HealthReport {
        self.health.report()
    }

    /// The quarantine.
    pub fn quarantine(&self) -> &Quarantine {
        &self.quarantine
    }

    /// Every subscription's counters.
    pub fn subscriptions(&self) -> &[Arc<SubShared>] {
        &self.subs
    }

    /// One subscription's counters.
    pub fn subscription(&self, feed: &str, group: &str) -> Option<Arc<SubShared>> {
        self.subs
            .iter()
            .find(|s| s.feed == feed && s.group == group)
            .cloned()
    }

    /// The groups.
    pub fn groups(&self) -> &[Arc<GroupShared>] {
        &self.groups
    }

    /// One group.
    pub fn group(&self, name: &str) -> Option<Arc<GroupShared>> {
        self.groups.iter().find(|g| g.name == name).cloned()
    }

    /// The feeds.
    pub fn feeds(&self) -> &[Arc<FeedShared>] {
        &self.feeds
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The command surface, for direct calls ([`Admin::exec`]).
    pub fn admin(&self) -> &Arc<Admin> {
        &self.admin
    }

    /// The admin router (health, readiness, metrics, commands) for mounting in a host's
    /// axum router. Peers it cannot identify as loopback need the token.
    pub fn admin_router(&self) -> axum::Router {
        crate::admin::http::router(self.admin.clone(), &self.metrics)
    }

    /// Where the admin listener is bound, when it is.
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin_addr
    }

    /// Remembers the config and registry this server was built from, for `reload`.
    pub fn set_reload_context(
        &self,
        cfg: crate::config::ServerConfig,
        reg: Arc<crate::registry::Registry<E>>,
    ) {
        *self.reload_ctx.lock() = Some((cfg, reg));
    }

    /// The config the server runs with, when it was started from one.
    pub fn running_config(&self) -> Option<crate::config::ServerConfig> {
        self.reload_ctx.lock().as_ref().map(|(c, _)| c.clone())
    }

    /// Applies the reloadable subset of `cfg` (MNG-R31); on `ok` it becomes the running
    /// config. A server started from a bare [`ServerSpec`] has no config to diff against,
    /// so its reloads are `rejected`.
    pub fn reload(&self, cfg: crate::config::ServerConfig) -> crate::reload::Outcome {
        let Some((running, reg)) = self.reload_ctx.lock().clone() else {
            self.admin.count_reload("rejected");
            return crate::reload::Outcome::Rejected {
                keys: Vec::new(),
                error: "this server was started from a ServerSpec, not a config".into(),
            };
        };
        let out = crate::reload::reload(self, &running, &cfg, &reg);
        if matches!(out, crate::reload::Outcome::Ok(_)) {
            *self.reload_ctx.lock() = Some((cfg, reg));
        }
        out
    }

    /// Cancelled when a component asks the server to stop (`stdin` with `exitOnEof`).
    pub fn shutdown_requested(&self) -> CancellationToken {
        self.shutdown_request.clone()
    }

    /// `processors.stop NAME`, routed to its group thread.
    pub fn stop_processor(&self, name: &str, timeout: Duration) -> Result<(), StopError> {
        for g in &self.groups {
            if !g.procs.lock().iter().any(|p| p.name == name) {
                continue;
            }
            let (tx, rx) = sync_channel(1);
            if !g.send(Control::StopProcessor(name.into(), tx)) {
                return Err(StopError::NotFound);
            }
            return rx.recv_timeout(timeout).unwrap_or(Err(StopError::NotFound));
        }
        Err(StopError::NotFound)
    }

    /// `queues.reconnect FEED GROUP`: Ok when it was disconnected.
    pub fn reconnect(
        &self,
        feed: &str,
        group: &str,
        timeout: Duration,
    ) -> Result<(), NotDisconnected> {
        let g = self.group(group).ok_or(NotDisconnected)?;
        let (tx, rx) = sync_channel(1);
        if !g.send(Control::Reconnect(feed.into(), tx)) {
            return Err(NotDisconnected);
        }
        rx.recv_timeout(timeout)
            .unwrap_or(Err(()))
            .map_err(|()| NotDisconnected)
    }

    /// Stops a group from draining (it keeps cycling) — deterministic stalls for tests.
    #[cfg(feature = "test-util")]
    pub fn pause_group(&self, name: &str) {
        if let Some(g) = self.group(name) {
            g.paused.store(true, Ordering::Release);
        }
    }

    /// Lets a paused group drain again.
    #[cfg(feature = "test-util")]
    pub fn resume_group(&self, name: &str) {
        if let Some(g) = self.group(name) {
            g.paused.store(false, Ordering::Release);
        }
    }
}
