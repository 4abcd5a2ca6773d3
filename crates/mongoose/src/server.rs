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

fn leak(s: &str) -> &'static str {
    // Names live as long as the process: they label every envelope without a refcount.
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

/// `stop` then `tear_down` on started services, in reverse declaration order.
fn stop_services(services: &[Arc<ServiceEntry>]) {
    for sv in services.iter().rev() {
        if sv.state.swap(SERVICE_STOPPED, Ordering::AcqRel) != SERVICE_STARTED {
            continue;
        }
        let svc = sv.handle.service().clone();
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            svc.stop();
            svc.tear_down();
        }));
    }
}

/// An agent thread running `do_work` of its services every duty cycle until `stop`; a
/// service whose `do_work` panics is marked failed and no longer driven (MNG-R20).
fn spawn_service_agent(
    placement: &AgentPlacement,
    hosted: Vec<Arc<ServiceEntry>>,
    stats: Arc<AgentStats>,
    stop: CancellationToken,
) -> std::io::Result<JoinHandle<()>> {
    let (name, idle, core) = (placement.agent.clone(), placement.idle, placement.core);
    std::thread::Builder::new()
        .name(name.chars().take(15).collect())
        .spawn(move || {
            crate::idle::pin_current(&name, core, &stats.core);
            let mut idler = crate::idle::Idler::new(idle);
            while !stop.is_cancelled() {
                let mut work = 0usize;
                for sv in &hosted {
                    if sv.state.load(Ordering::Acquire) != SERVICE_STARTED {
                        continue;
                    }
                    let svc = sv.handle.service();
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| svc.do_work())) {
                        Ok(n) => work += n,
                        Err(_) => {
                            sv.state.store(SERVICE_FAILED, Ordering::Release);
                            tracing::error!(service = %sv.name, "service do_work panicked; marked failed");
                        }
                    }
                }
                stats
                    .duty_cycles
                    .store(stats.duty_cycles.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                if work == 0 {
                    stats
                        .idle_cycles
                        .store(stats.idle_cycles.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                }
                idler.idle(work, &stats.state);
            }
        })
}

/// "address in use" rather than the OS's wording, so startup lines read the same everywhere.
fn io_error_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => "address in use".into(),
        _ => e.to_string(),
    }
}

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

    fn start_inner(spec: ServerSpec<E>) -> Result<Self, StartError> {
        let t0 = Instant::now();
        let phase = Arc::new(AtomicU8::new(PHASE_STARTING));
        let server: &'static str = leak(&spec.name);
        let feed_names: Arc<Vec<&'static str>> =
            Arc::new(spec.feeds.iter().map(|f| leak(&f.name)).collect());
        let broadcast = Arc::new(spec.feeds.iter().map(|f| f.broadcast).collect::<Vec<_>>());
        let wrap_named = Arc::new(spec.feeds.iter().map(|f| f.wrap_named).collect::<Vec<_>>());
        let quarantine = Arc::new(Quarantine::new(spec.quarantine_capacity));
        let health = crate::health::Health::new(spec.health);
        let metrics = ron_metrics::Metrics::builder()
            .service("mongoose")
            .instance(server)
            .build()
            .map_err(|e| StartError {
                component: "metrics".into(),
                error: e.to_string(),
            })?;
        // The I/O runtime exists only when something needs it (MNG-R18).
        let needs_io =
            spec.admin.address.is_some() || !spec.sinks.is_empty() || !spec.feed_sources.is_empty();
        let runtime = if needs_io {
            Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(usize::from(spec.io_threads.max(1)))
                    .thread_name("mg-io")
                    .enable_all()
                    .build()
                    .map_err(|e| StartError {
                        component: "runtime".into(),
                        error: e.to_string(),
                    })?,
            )
        } else {
            None
        };
        let io = runtime.as_ref().map(|r| r.handle().clone());
        let partial = Partial {
            admin_stop: CancellationToken::new(),
            feeds_stop: CancellationToken::new(),
            runtime,
        };
        macro_rules! fail {
            ($partial:expr, $e:expr) => {{
                $partial.abort();
                return Err($e);
            }};
        }
        // Step 2: admin first, so /readyz answers 503 `starting` while the rest starts.
        let admin = Arc::new(Admin::new(
            AdminCore::empty(server, quarantine.clone(), health.clone()),
            &spec.admin,
        ));
        let admin_addr = match (spec.admin.address, &io) {
            (Some(addr), Some(io)) => {
                let router = crate::admin::http::router(admin.clone(), &metrics);
                match crate::admin::http::serve(router, addr, io, partial.admin_stop.clone()) {
                    Ok(a) => {
                        tracing::info!(server, address = %a, "admin_listening");
                        Some(a)
                    }
                    Err(e) => fail!(
                        partial,
                        StartError {
                            component: "admin".into(),
                            error: format!("{addr}: {}", io_error_text(&e)),
                        }
                    ),
                }
            }
            _ => None,
        };
        // Step 4: sinks.
        let mut sink_map: HashMap<String, SinkHandle<E>> = spec
            .memory_sinks
            .iter()
            .map(|(n, c)| (n.clone(), SinkHandle::memory(leak(n), *c)))
            .collect();
        let mut sink_stats: Vec<crate::metrics::SinkSource<E>> =
            sink_map.values().map(|h| (h.clone(), None)).collect();
        let placement_of = |name: &str, default_agent: &str| {
            spec.placements
                .get(name)
                .cloned()
                .unwrap_or(AgentPlacement {
                    agent: default_agent.into(),
                    idle: spec.agent_idle,
                    core: None,
                })
        };
        // Hosted sinks, one agent per placement, in first-use order (so the agent hosting
        // the quarantine sink, moved last, also drains last).
        let mut by_agent: Vec<(AgentPlacement, Vec<crate::sink_agent::SinkSpec<E>>)> = Vec::new();
        for sk in spec.sinks {
            let pl = placement_of(&sk.name, "sinks");
            match by_agent.iter_mut().find(|(p, _)| p.agent == pl.agent) {
                Some((_, v)) => v.push(sk),
                None => by_agent.push((pl, vec![sk])),
            }
        }
        if let Some(q) = &spec.quarantine_sink
            && let Some(i) = by_agent
                .iter()
                .position(|(_, v)| v.iter().any(|s| s.name == *q))
        {
            let last = by_agent.remove(i);
            by_agent.push(last);
        }
        let mut sink_agents: Vec<(AgentPlacement, crate::sink_agent::SinkAgent, Vec<String>)> =
            Vec::new();
        let stop_sink_agents =
            |agents: Vec<(AgentPlacement, crate::sink_agent::SinkAgent, Vec<String>)>| {
                for (_, mut a, _) in agents.into_iter().rev() {
                    a.shutdown(Duration::ZERO);
                }
            };
        if let Some(io) = &io {
            for (pl, specs) in by_agent {
                let env = crate::sink_agent::SinkEnv {
                    name: "",
                    server,
                    connect_timeout: spec.connect_timeout,
                    io: io.clone(),
                };
                match crate::sink_agent::start(specs, &env, &pl, quarantine.clone()) {
                    Ok((agent, hosted)) => {
                        let mut names = Vec::new();
                        for (h, st) in hosted {
                            names.push(h.name().to_string());
                            sink_map.insert(h.name().to_string(), h.clone());
                            sink_stats.push((h, Some(st)));
                        }
                        sink_agents.push((pl, agent, names));
                    }
                    Err(e) => {
                        stop_sink_agents(sink_agents);
                        fail!(partial, e)
                    }
                }
            }
        }
        for (_, sink) in &spec.pipes {
            let h = SinkHandle::pipe(leak(sink));
            sink_stats.push((h.clone(), None));
            sink_map.insert(sink.clone(), h);
        }
        if let Some(qs) = &spec.quarantine_sink {
            match sink_map.get(qs) {
                Some(h) => {
                    let h = h.clone();
                    quarantine.set_sink(Box::new(move |rec| h.send_record(rec)));
                }
                None => tracing::error!(
                    sink = %qs,
                    "quarantine sink did not start; records go to the memory ring"
                ),
            }
        }
        let sinks: Arc<HashMap<String, SinkHandle<E>>> = Arc::new(sink_map);

        // Step 5: services, in declaration order: init, then start.
        let mut services: Vec<Arc<ServiceEntry>> = Vec::new();
        let mut service_agents: Vec<AgentPlacement> = Vec::new();
        for sv in spec.services {
            let built: Result<
                crate::service::ServiceHandle,
                (String, Option<crate::service::ServiceHandle>),
            > = match (sv.factory)() {
                Err(e) => Err((e, None)),
                Ok(handle) => {
                    let svc = handle.service().clone();
                    let up = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        svc.init().and_then(|()| svc.start())
                    }))
                    .unwrap_or_else(|_| Err("panicked".into()));
                    match up {
                        Ok(()) => Ok(handle),
                        Err(e) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                svc.tear_down()
                            }));
                            Err((e, Some(handle)))
                        }
                    }
                }
            };
            match built {
                Ok(handle) => {
                    tracing::info!(component = %sv.name, kind = %sv.type_name, agent = sv.agent.as_ref().map(|a| a.agent.as_str()), "component_started");
                    if let Some(a) = &sv.agent
                        && !service_agents.iter().any(|p| p.agent == a.agent)
                    {
                        service_agents.push(a.clone());
                    }
                    services.push(Arc::new(ServiceEntry {
                        name: sv.name,
                        type_name: sv.type_name,
                        critical: sv.critical,
                        agent: sv.agent.map(|a| a.agent),
                        handle,
                        state: AtomicU8::new(SERVICE_STARTED),
                    }));
                }
                Err((e, _)) if sv.critical => {
                    stop_services(&services);
                    stop_sink_agents(sink_agents);
                    fail!(
                        partial,
                        StartError {
                            component: format!("service '{}' ({})", sv.name, sv.type_name),
                            error: e,
                        }
                    );
                }
                Err((e, handle)) => {
                    tracing::error!(service = %sv.name, kind = %sv.type_name, error = %e, "service failed to start");
                    // Listed as failed (services.list, service_up 0); readiness ignores it.
                    if let Some(handle) = handle {
                        services.push(Arc::new(ServiceEntry {
                            name: sv.name,
                            type_name: sv.type_name,
                            critical: false,
                            agent: None,
                            handle,
                            state: AtomicU8::new(SERVICE_FAILED),
                        }));
                    }
                }
            }
        }
        let services = Arc::new(services);
        // Step 6: groups build, subscribe, init and start their processors.
        let mut started: Vec<Started<E>> = Vec::new();
        let mut failure: Option<StartError> = None;
        for g in spec.groups {
            let (stx, srx) = sync_channel(1);
            let (wtx, wrx) = sync_channel(1);
            let (gtx, grx) = sync_channel(1);
            let name = g.name;
            let env = GroupEnv {
                server,
                feeds: feed_names.clone(),
                broadcast: broadcast.clone(),
                wrap_named: wrap_named.clone(),
                sinks: sinks.clone(),
                services: services.clone(),
                quarantine: quarantine.clone(),
                startup: stx,
                wiring: wrx,
                go: grx,
            };
            match group::spawn(g, env) {
                Ok((shared, h)) => {
                    shared
                        .latency_enabled
                        .store(spec.latency_enabled, Ordering::Relaxed);
                    shared
                        .snapshot_ms
                        .store(spec.snapshot_ms, Ordering::Relaxed);
                    started.push((shared, h, srx, wtx, gtx))
                }
                Err(e) => {
                    failure = Some(StartError {
                        component: format!("group '{name}'"),
                        error: e.to_string(),
                    });
                    break;
                }
            }
        }
        let mut subscribed: Vec<Vec<u32>> = Vec::new();
        let mut custom: Vec<crate::admin::CustomCommand> = Vec::new();
        if failure.is_none() {
            'groups: for (shared, _, srx, _, _) in &started {
                match srx.recv_timeout(spec.start_timeout) {
                    Ok(StartMsg::Ready(f, commands, taken)) => {
                        // MNG-R23: sending into a pipe this group consumes under `block`
                        // would wait on itself.
                        for (feed, sink) in &spec.pipes {
                            let Some(fi) = spec.feeds.iter().position(|x| x.name == *feed) else {
                                continue;
                            };
                            if taken.contains(sink)
                                && f.contains(&(fi as u32))
                                && spec.feeds[fi].backpressure.policy == crate::queue::Policy::Block
                            {
                                failure = Some(StartError {
                                    component: format!("group '{}'", shared.name),
                                    error: format!(
                                        "sends to pipe '{feed}' and consumes it under `block`: it would wait on itself"
                                    ),
                                });
                                break 'groups;
                            }
                        }
                        subscribed.push(f);
                        for (name, help, processor) in commands {
                            let clash = crate::admin::COMMANDS.iter().any(|(n, ..)| *n == name)
                                || custom.iter().any(|c| c.name == name);
                            if clash {
                                failure = Some(StartError {
                                    component: format!("processor '{processor}'"),
                                    error: format!("admin command {name:?} is already taken"),
                                });
                                break 'groups;
                            }
                            custom.push(crate::admin::CustomCommand {
                                name,
                                help,
                                processor,
                                group: shared.clone(),
                            });
                        }
                    }
                    Ok(StartMsg::Failed(component, error)) => {
                        failure = Some(StartError { component, error });
                        break;
                    }
                    Err(_) => {
                        failure = Some(StartError {
                            component: format!("group '{}'", shared.name),
                            error: "did not start in time".into(),
                        });
                        break;
                    }
                }
            }
        }
        let stop_groups = |started: Vec<Started<E>>| {
            for (_, h, _, wtx, _) in started.into_iter().rev() {
                let _ = wtx.try_send(None);
                let _ = h.join();
            }
        };
        if let Some(f) = failure {
            stop_groups(started);
            stop_services(&services);
            stop_sink_agents(sink_agents);
            fail!(partial, f);
        }
        // Queues: one per (feed, subscribing group).
        let mut feeds: Vec<Arc<FeedShared>> = Vec::new();
        let mut per_feed_tx: Vec<Vec<(queue::Tx<E>, Arc<SubShared>)>> = Vec::new();
        let mut per_group_rx: Vec<Vec<Consumer<E>>> = started.iter().map(|_| Vec::new()).collect();
        let mut subs = Vec::new();
        for (fi, f) in spec.feeds.iter().enumerate() {
            feeds.push(Arc::new(FeedShared::new(
                feed_names[fi],
                fi as u32,
                f.multi,
                phase.clone(),
            )));
            let mut txs = Vec::new();
            for (gi, (shared, ..)) in started.iter().enumerate() {
                if !subscribed[gi].contains(&(fi as u32)) {
                    continue;
                }
                let mpsc = f.multi || f.backpressure.needs_eviction();
                let cap = f.queue_capacity as usize;
                let threshold = f
                    .backlog_threshold
                    .unwrap_or(((cap as u64 * u64::from(DEFAULT_BACKLOG_PCT)) / 100).max(1) as u32);
                let mut sub = SubShared::new(
                    feed_names[fi],
                    shared.name,
                    f.queue_capacity,
                    if mpsc { "mpsc" } else { "spsc" },
                    f.backpressure,
                    threshold,
                );
                sub.track_watermark = f.acknowledged;
                let sh = Arc::new(sub);
                let (tx, rx) = queue::channel(cap, mpsc);
                txs.push((tx, sh.clone()));
                per_group_rx[gi].push(Consumer {
                    feed_idx: fi as u32,
                    rx,
                    shared: sh.clone(),
                    last_seq: 0,
                });
                subs.push(sh);
            }
            per_feed_tx.push(txs);
        }
        let mut publishers = HashMap::new();
        for (fi, txs) in per_feed_tx.into_iter().enumerate() {
            publishers.insert(
                spec.feeds[fi].name.clone(),
                Publisher::new(feeds[fi].clone(), txs),
            );
        }
        for (feed, sink) in &spec.pipes {
            if let (Some(p), Some(h)) = (publishers.remove(feed), sinks.get(sink)) {
                h.install_pipe(p);
            }
        }
        // Step 7: feeds connect; a critical feed that cannot is a startup failure.
        let shutdown_request = CancellationToken::new();
        let mut runners: Vec<(String, FeedRunner<E>, FeedOut<E>)> = Vec::new();
        let mut feed_info: Vec<FeedInfo> = feeds
            .iter()
            .zip(&spec.feeds)
            .map(|(sh, f)| FeedInfo {
                shared: sh.clone(),
                type_name: if spec.pipes.iter().any(|(p, _)| *p == f.name) {
                    "pipe".into()
                } else {
                    "memory".into()
                },
                critical: true,
                broadcast: f.broadcast,
            })
            .collect();
        for src in spec.feed_sources {
            let Some(fi) = spec.feeds.iter().position(|f| f.name == src.feed) else {
                failure = Some(StartError {
                    component: format!("feed '{}' ({})", src.feed, src.type_name),
                    error: "no such feed".into(),
                });
                break;
            };
            feed_info[fi].type_name = src.type_name.clone();
            feed_info[fi].critical = src.critical;
            // Connected until the feed says otherwise: `timer` and `stdin` always are; the
            // others report their own state through `FeedOut::set_connected`.
            let shared = feeds[fi].clone();
            let Some(io) = io.clone() else {
                unreachable!("feed sources create the I/O runtime")
            };
            let env = FeedEnv {
                name: feed_names[fi],
                server,
                critical: src.critical,
                connect_timeout: spec.connect_timeout,
                io,
            };
            match (src.connect)(&env) {
                Ok(runner) => {
                    let publisher = publishers
                        .remove(&src.feed)
                        .expect("one publisher per feed");
                    let req = shutdown_request.clone();
                    let out = FeedOut {
                        subs: subs
                            .iter()
                            .filter(|s| s.feed == shared.name)
                            .cloned()
                            .collect(),
                        publisher,
                        shared,
                        quarantine: quarantine.clone(),
                        server,
                        stop: partial.feeds_stop.clone(),
                        request_shutdown: Arc::new(move || req.cancel()),
                    };
                    runners.push((src.type_name, runner, out));
                }
                Err(e) if src.critical => {
                    failure = Some(StartError {
                        component: format!("feed '{}' ({})", src.feed, src.type_name),
                        error: e,
                    });
                    break;
                }
                Err(e) => {
                    publishers.remove(&src.feed);
                    tracing::error!(feed = %src.feed, kind = %src.type_name, error = %e, "feed failed to start");
                }
            }
        }
        if let Some(f) = failure {
            drop(runners);
            stop_groups(started);
            stop_services(&services);
            stop_sink_agents(sink_agents);
            fail!(partial, f);
        }
        let mut groups = Vec::new();
        let mut threads = Vec::new();
        let mut gos = Vec::new();
        for ((shared, h, _, wtx, gtx), rx) in started.into_iter().zip(per_group_rx) {
            let _ = wtx.send(Some(rx));
            groups.push(shared);
            threads.push(h);
            gos.push(gtx);
        }
        // Step 8: publishers accept events from here; then the feeds run.
        phase.store(PHASE_RUNNING, Ordering::Release);
        for g in gos {
            let _ = g.send(true);
        }
        for sv in services.iter() {
            let svc = sv.handle.service().clone();
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| svc.start_complete()));
        }
        let services_stop = CancellationToken::new();
        let mut service_threads = Vec::new();
        let mut service_agent_stats: Vec<(String, Arc<AgentStats>, crate::idle::IdleStrategy)> =
            Vec::new();
        for pl in service_agents {
            let (agent, idle) = (pl.agent.clone(), pl.idle);
            let hosted: Vec<Arc<ServiceEntry>> = services
                .iter()
                .filter(|s| s.agent.as_deref() == Some(agent.as_str()))
                .cloned()
                .collect();
            let stats = Arc::new(AgentStats {
                core: std::sync::atomic::AtomicI64::new(-1),
                ..Default::default()
            });
            match spawn_service_agent(&pl, hosted, stats.clone(), services_stop.clone()) {
                Ok(h) => {
                    service_threads.push(h);
                    service_agent_stats.push((agent, stats, idle));
                }
                Err(e) => {
                    tracing::error!(agent = %agent, error = %e, "service agent did not start")
                }
            }
        }
        // Agent-run feeds, grouped by the agent their placement names.
        type AgentFeeds<E> = Vec<(Box<dyn crate::feed::AgentFeed<E>>, FeedOut<E>)>;
        let mut feed_agents: Vec<(AgentPlacement, AgentFeeds<E>, Vec<String>)> = Vec::new();
        let mut feed_threads = Vec::new();
        let mut io_done = Vec::new();
        for (kind, runner, out) in runners {
            let name = out.name();
            let pl = placement_of(name, "feeds");
            let hosted_by: String = match &runner {
                FeedRunner::Agent(_) => pl.agent.clone(),
                FeedRunner::Thread(_) => name.to_string(),
                FeedRunner::Io(_) => "io".into(),
            };
            match runner {
                FeedRunner::Agent(f) => {
                    match feed_agents.iter_mut().find(|(p, ..)| p.agent == pl.agent) {
                        Some((_, v, names)) => {
                            v.push((f, out));
                            names.push(name.to_string());
                        }
                        None => feed_agents.push((pl, vec![(f, out)], vec![name.to_string()])),
                    }
                }
                FeedRunner::Thread(run) => {
                    match std::thread::Builder::new()
                        .name(name.chars().take(15).collect())
                        .spawn(move || run(out))
                    {
                        Ok(h) => feed_threads.push(h),
                        Err(e) => {
                            tracing::error!(feed = name, kind, error = %e, "feed thread did not start")
                        }
                    }
                }
                FeedRunner::Io(task) => {
                    if let Some(io) = &io {
                        // Shutdown waits for these: a feed's last act may be an upstream
                        // acknowledgement (redis-stream's final XACK).
                        let (tx, rx) = sync_channel::<()>(1);
                        let fut = task(out);
                        io.spawn(async move {
                            fut.await;
                            let _ = tx.try_send(());
                        });
                        io_done.push(rx);
                    }
                }
            }
            tracing::info!(
                component = name,
                kind,
                agent = %hosted_by,
                "component_started"
            );
        }
        let mut feed_agent_info: Vec<(AgentPlacement, Arc<AgentStats>, Vec<String>)> = Vec::new();
        for (pl, hosted, names) in feed_agents {
            let stats = Arc::new(AgentStats {
                core: std::sync::atomic::AtomicI64::new(-1),
                ..Default::default()
            });
            match crate::feed::spawn_agent(hosted, &pl, stats.clone(), partial.feeds_stop.clone()) {
                Ok(h) => {
                    feed_threads.push(h);
                    feed_agent_info.push((pl, stats, names));
                }
                Err(e) => {
                    tracing::error!(agent = %pl.agent, error = %e, "feeds agent did not start")
                }
            }
        }
        let mut watched_agents: Vec<(&'static str, Arc<AgentStats>)> = Vec::new();
        let mut agents: Vec<AgentInfo> = groups
            .iter()
            .map(|g| AgentInfo {
                name: g.name.to_string(),
                role: "group",
                idle_strategy: g.idle.name(),
                hosts: g.procs.lock().iter().map(|p| p.name.to_string()).collect(),
                source: AgentSource::Group(g.clone()),
            })
            .collect();
        for (pl, stats, names) in feed_agent_info {
            watched_agents.push((leak(&pl.agent), stats.clone()));
            agents.push(AgentInfo {
                name: pl.agent.clone(),
                role: "feeds",
                idle_strategy: pl.idle.name(),
                hosts: names,
                source: AgentSource::Stats(stats),
            });
        }
        for (pl, a, names) in &sink_agents {
            watched_agents.push((leak(&pl.agent), a.agent.clone()));
            agents.push(AgentInfo {
                name: pl.agent.clone(),
                role: "sinks",
                idle_strategy: pl.idle.name(),
                hosts: names.clone(),
                source: AgentSource::Stats(a.agent.clone()),
            });
        }
        for (agent, stats, idle) in &service_agent_stats {
            let leaked: &'static str = leak(agent);
            watched_agents.push((leaked, stats.clone()));
            agents.push(AgentInfo {
                name: agent.clone(),
                role: "service",
                idle_strategy: idle.name(),
                hosts: services
                    .iter()
                    .filter(|s| s.agent.as_deref() == Some(agent.as_str()))
                    .map(|s| s.name.clone())
                    .collect(),
                source: AgentSource::Stats(stats.clone()),
            });
        }
        let watched_agents_for_metrics: Vec<(String, Arc<AgentStats>)> = watched_agents
            .iter()
            .map(|(n, s)| (n.to_string(), s.clone()))
            .collect();
        let monitor_stop = Arc::new(AtomicBool::new(false));
        // Started before the first check, so readiness never shows a stale `starting`.
        health.set_started();
        let (first_tx, first_rx) = sync_channel::<()>(1);
        let monitor = crate::health::spawn_monitor(
            health.clone(),
            crate::health::Watched {
                groups: groups.clone(),
                subs: subs.clone(),
                agents: watched_agents,
                feeds: feed_info
                    .iter()
                    .map(|f| (f.shared.clone(), f.critical))
                    .collect(),
                services: services.iter().cloned().collect(),
            },
            monitor_stop.clone(),
            first_tx,
        )
        .ok();
        // Readiness is current when start returns (the first check has run).
        let _ = first_rx.recv_timeout(Duration::from_secs(1));
        let collector = crate::metrics::MongooseCollector::new(crate::metrics::Sources {
            feeds: feeds.clone(),
            subs: subs.clone(),
            groups: groups.clone(),
            quarantine: quarantine.clone(),
            sinks: sink_stats,
            health: health.clone(),
            admin: Some(admin.clone()),
            services: services.iter().cloned().collect(),
            agents: watched_agents_for_metrics,
        });
        if let Err(e) = metrics.registry().register_collector(Box::new(collector)) {
            tracing::error!(error = %e, "metrics collector not registered");
        }
        admin.set_core(AdminCore {
            server: spec.name.clone(),
            feeds: feed_info,
            subs: subs.clone(),
            groups: groups.clone(),
            agents,
            processor_types: spec.processor_types,
            services: services.iter().cloned().collect(),
            custom,
            quarantine: quarantine.clone(),
            health: health.clone(),
        });
        tracing::info!(
            server,
            startup_ms = t0.elapsed().as_millis() as u64,
            "server_ready"
        );
        let Partial {
            admin_stop,
            feeds_stop,
            runtime,
        } = partial;
        Ok(RunningServer {
            name: spec.name,
            phase,
            feeds,
            publishers: Mutex::new(publishers),
            groups,
            threads: Mutex::new(threads),
            subs,
            sinks,
            quarantine,
            stopped: AtomicBool::new(false),
            sink_agents: Mutex::new(sink_agents.into_iter().map(|(_, a, _)| a).collect()),
            health,
            metrics,
            monitor_stop,
            monitor: Mutex::new(monitor),
            admin,
            admin_addr,
            admin_stop,
            feeds_stop,
            feed_threads: Mutex::new(feed_threads),
            io_done: Mutex::new(io_done),
            services,
            reload_ctx: Mutex::new(None),
            services_stop,
            service_threads: Mutex::new(service_threads),
            shutdown_request,
            runtime: Mutex::new(runtime),
            unrouted: AtomicU64::new(0),
        })
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

    /// Stops feeds, drains groups until `deadline` (leftovers quarantined as
    /// `shutdown_undrained`), stops processors, closes sinks.
    pub fn shutdown(&self, deadline: Duration) {
        self.shutdown_for(deadline, "shutdown()");
    }

    /// Ends a drain in progress now (a second signal, decision 2): groups stop draining at
    /// their next cycle and quarantine what is left as `shutdown_undrained`.
    pub fn force_drain(&self) {
        tracing::warn!(server = %self.name, "second signal: skipping the rest of the drain");
        let now = Instant::now();
        for g in &self.groups {
            if !g.exited.load(Ordering::Acquire) {
                let _ = g.send(Control::Shutdown(now));
            }
        }
    }

    /// [`RunningServer::shutdown`], naming what triggered it in `shutdown_begin`.
    pub fn shutdown_for(&self, deadline: Duration, signal: &str) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::info!(server = %self.name, signal, deadline_ms = deadline.as_millis() as u64, "shutdown_begin");
        let started = Instant::now();
        // MNG-R30: readiness fails first, then the feeds stop: publishes from here on get
        // `Closed`.
        self.health.set_shutting_down();
        self.feeds_stop.cancel();
        self.phase.store(PHASE_CLOSED, Ordering::Release);
        for h in self.feed_threads.lock().drain(..) {
            // A stdin reader blocked in read() cannot be interrupted; it ends with the
            // process, so only finished threads are joined.
            if h.is_finished() || h.thread().name() == Some("feeds") {
                let _ = h.join();
            }
        }
        // A publish that passed the phase check just before CLOSED still lands in a queue;
        // the I/O feeds' tasks end only after their last publish, so waiting for them here,
        // while the groups still consume, puts every accepted event ahead of the drain.
        // redis-stream also sends its final XACK here, once the groups' watermarks cover
        // what it published (step 6).
        let d = started + deadline;
        let io_deadline = Instant::now() + IO_FEED_FINISH;
        for rx in self.io_done.lock().drain(..) {
            let _ = rx.recv_timeout(io_deadline.saturating_duration_since(Instant::now()));
        }
        for g in self.groups.iter().rev() {
            while !g.send(Control::Shutdown(d)) {
                std::thread::yield_now();
            }
        }
        for h in self.threads.lock().drain(..).rev() {
            let _ = h.join();
        }
        // Step 7: services, in reverse order.
        self.services_stop.cancel();
        for h in self.service_threads.lock().drain(..) {
            let _ = h.join();
        }
        stop_services(&self.services);
        // Sinks last: they drain what the groups forwarded, within what is left.
        for mut a in self.sink_agents.lock().drain(..) {
            a.shutdown(d.saturating_duration_since(Instant::now()));
        }
        for s in self.sinks.values() {
            s.close();
        }
        self.monitor_stop.store(true, Ordering::Release);
        if let Some(m) = self.monitor.lock().take() {
            m.thread().unpark();
            let _ = m.join();
        }
        self.admin_stop.cancel();
        if let Some(rt) = self.runtime.lock().take() {
            // Background: this may run inside a caller's runtime, where blocking is banned.
            rt.shutdown_background();
        }
        let undrained: u64 = self
            .subs
            .iter()
            .map(|s| s.shutdown_undrained.load(Ordering::Relaxed))
            .sum();
        tracing::info!(server = %self.name, undrained, duration_ms = started.elapsed().as_millis() as u64, "shutdown_complete");
        NAMES.lock().retain(|n| n != &self.name);
    }
}

impl<E: Event> Drop for RunningServer<E> {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(1));
    }
}
