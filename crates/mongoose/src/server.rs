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

use parking_lot::Mutex;

use crate::event::Event;
use crate::group::{
    self, Consumer, Control, GroupEnv, GroupShared, GroupSpec, StartMsg, StopError,
};
use crate::publish::{FeedShared, PHASE_CLOSED, PHASE_RUNNING, PHASE_STARTING, Publisher};
use crate::quarantine::Quarantine;
use crate::queue::{self, Backpressure, SubShared};
use crate::sink::SinkHandle;

/// Default readiness threshold, percent of capacity.
pub const DEFAULT_BACKLOG_PCT: u32 = 80;
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
        }
    }
}

/// Everything a server is made of.
pub struct ServerSpec<E> {
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
    sink_agent: Mutex<Option<crate::sink_agent::SinkAgent>>,
    health: Arc<crate::health::Health>,
    metrics: Arc<ron_metrics::Metrics>,
    monitor_stop: Arc<AtomicBool>,
    monitor: Mutex<Option<JoinHandle<()>>>,
    /// Published with no subscriber, per feed (also in `FeedShared`).
    pub unrouted: AtomicU64,
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
            tracing::error!(component = %e.component, error = %e.error, "startup_failed");
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
        let quarantine = Arc::new(Quarantine::new(spec.quarantine_capacity));
        let mut sink_map: HashMap<String, SinkHandle<E>> = spec
            .memory_sinks
            .iter()
            .map(|(n, c)| (n.clone(), SinkHandle::memory(leak(n), *c)))
            .collect();
        let mut sink_stats: Vec<crate::metrics::SinkSource<E>> =
            sink_map.values().map(|h| (h.clone(), None)).collect();
        let sink_agent = if spec.sinks.is_empty() {
            None
        } else {
            let (agent, hosted) = crate::sink_agent::start(
                spec.sinks,
                server,
                crate::idle::IdleStrategy::default(),
                quarantine.clone(),
            )?;
            for (h, st) in hosted {
                sink_map.insert(h.name().to_string(), h.clone());
                sink_stats.push((h, Some(st)));
            }
            Some(agent)
        };
        let sinks: Arc<HashMap<String, SinkHandle<E>>> = Arc::new(sink_map);
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
                sinks: sinks.clone(),
                quarantine: quarantine.clone(),
                startup: stx,
                wiring: wrx,
                go: grx,
            };
            match group::spawn(g, env) {
                Ok((shared, h)) => started.push((shared, h, srx, wtx, gtx)),
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
        if failure.is_none() {
            for (shared, _, srx, _, _) in &started {
                match srx.recv_timeout(spec.start_timeout) {
                    Ok(StartMsg::Ready(f)) => subscribed.push(f),
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
        if let Some(f) = failure {
            for (_, h, _, wtx, _) in started.into_iter().rev() {
                let _ = wtx.try_send(None);
                let _ = h.join();
            }
            if let Some(mut a) = sink_agent {
                a.shutdown(Duration::ZERO);
            }
            return Err(f);
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
                let sh = Arc::new(SubShared::new(
                    feed_names[fi],
                    shared.name,
                    f.queue_capacity,
                    if mpsc { "mpsc" } else { "spsc" },
                    f.backpressure,
                    threshold,
                ));
                let (tx, rx) = queue::channel(cap, mpsc);
                txs.push((tx, sh.clone()));
                per_group_rx[gi].push(Consumer {
                    feed_idx: fi as u32,
                    rx,
                    shared: sh.clone(),
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
        let mut groups = Vec::new();
        let mut threads = Vec::new();
        let mut gos = Vec::new();
        for ((shared, h, _, wtx, gtx), rx) in started.into_iter().zip(per_group_rx) {
            let _ = wtx.send(Some(rx));
            groups.push(shared);
            threads.push(h);
            gos.push(gtx);
        }
        phase.store(PHASE_RUNNING, Ordering::Release);
        for g in gos {
            let _ = g.send(true);
        }
        let health = crate::health::Health::new(spec.health);
        let monitor_stop = Arc::new(AtomicBool::new(false));
        let monitor = crate::health::spawn_monitor(
            health.clone(),
            crate::health::Watched {
                groups: groups.clone(),
                subs: subs.clone(),
            },
            monitor_stop.clone(),
        )
        .ok();
        health.set_started();
        let metrics = ron_metrics::Metrics::builder()
            .service("mongoose")
            .instance(server)
            .build()
            .map_err(|e| StartError {
                component: "metrics".into(),
                error: e.to_string(),
            })?;
        let collector = crate::metrics::MongooseCollector::new(crate::metrics::Sources {
            feeds: feeds.clone(),
            subs: subs.clone(),
            groups: groups.clone(),
            quarantine: quarantine.clone(),
            sinks: sink_stats,
            health: health.clone(),
        });
        metrics
            .registry()
            .register_collector(Box::new(collector))
            .map_err(|e| StartError {
                component: "metrics".into(),
                error: e.to_string(),
            })?;
        tracing::info!(
            server,
            startup_ms = t0.elapsed().as_millis() as u64,
            "server_ready"
        );
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
            sink_agent: Mutex::new(sink_agent),
            health,
            metrics,
            monitor_stop,
            monitor: Mutex::new(monitor),
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
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::info!(server = %self.name, deadline_ms = deadline.as_millis() as u64, "shutdown_begin");
        let started = Instant::now();
        self.health.set_shutting_down();
        self.phase.store(PHASE_CLOSED, Ordering::Release);
        let d = started + deadline;
        for g in self.groups.iter().rev() {
            while !g.send(Control::Shutdown(d)) {
                std::thread::yield_now();
            }
        }
        for h in self.threads.lock().drain(..).rev() {
            let _ = h.join();
        }
        // Sinks last: they drain what the groups forwarded, within what is left.
        if let Some(mut a) = self.sink_agent.lock().take() {
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
