//! Handler groups (MNG-R21, R25): one thread per group running the duty cycle over its
//! subscription queues, timers and retries, dispatching each event in map order to the
//! processors subscribed to its feed.
//!
//! Each processor call runs inside `catch_unwind`. A failed or panicking call does not stop
//! the others from getting the event; the event then waits in the group's pre-allocated
//! retry store (never sleeping the thread) and is quarantined after `1 + maxRetries`
//! failures. Retried events are therefore handled after later events of the same feed.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;

use crate::event::{Envelope, Event};
use crate::idle::{IdleStrategy, Idler};
use crate::processor::{
    ConfigMap, Context, GroupCore, Processor, ProcessorFactory, SubscriptionEvent,
};
use crate::quarantine::{Kind, Quarantine, QuarantineRecord, now_ms};
use crate::queue::{CONNECTED, DETACHED, DISCONNECTED, DROP_DETACHED, Rx, SubShared};
use crate::sink::SinkHandle;
use crate::timer::Timers;

/// `le` bounds of `mongoose_batches_total` (then +Inf).
pub const BATCH_BUCKETS: [u32; 13] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];
/// Control commands a group can hold at once.
pub const CONTROL_CAPACITY: usize = 64;

/// Retry settings (MNG-R11 `retry`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first failure.
    pub max_retries: u8,
    /// First backoff.
    pub initial_backoff_ms: u32,
    /// Growth per retry.
    pub multiplier: f64,
    /// Cap.
    pub max_backoff_ms: u32,
    /// Retry store size per group.
    pub max_pending: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            initial_backoff_ms: 5,
            multiplier: 2.0,
            max_backoff_ms: 100,
            max_pending: 1024,
        }
    }
}

impl RetryPolicy {
    /// `backoff(k) = min(initial * multiplier^(k-1), max)`.
    pub fn backoff(&self, k: u32) -> Duration {
        let ms =
            f64::from(self.initial_backoff_ms) * self.multiplier.powi(k.saturating_sub(1) as i32);
        Duration::from_millis(ms.min(f64::from(self.max_backoff_ms)) as u64)
    }
}

/// One processor in a group, before it is built.
pub struct ProcSpec<E> {
    /// Server-wide unique name.
    pub name: &'static str,
    /// Builds it on the group thread.
    pub factory: ProcessorFactory<E>,
    /// Feeds from config (more may be subscribed in `init`/`start`).
    pub feeds: Vec<String>,
    /// A failing `init`/`start` fails startup.
    pub critical: bool,
    /// `enabled: false` skips it.
    pub enabled: bool,
    /// Its `config`.
    pub config: ConfigMap,
}

/// One group, before it starts.
pub struct GroupSpec<E> {
    /// `agentName`, also the thread name.
    pub name: &'static str,
    /// Idle strategy.
    pub idle: IdleStrategy,
    /// Core to pin to.
    pub core_id: Option<usize>,
    /// Events popped per queue per cycle.
    pub max_batch: u32,
    /// Timer store size.
    pub max_timers: u32,
    /// Retries.
    pub retry: RetryPolicy,
    /// Processors in dispatch order.
    pub processors: Vec<ProcSpec<E>>,
}

/// Processor state: running.
pub const PROC_RUNNING: u8 = 0;
/// Processor state: stopped.
pub const PROC_STOPPED: u8 = 1;
/// Processor state: failed (startup).
pub const PROC_FAILED: u8 = 2;
/// State names.
pub const PROC_STATES: [&str; 3] = ["running", "stopped", "failed"];

/// Counters of one processor.
#[derive(Debug, Default)]
pub struct ProcStats {
    /// Name.
    pub name: &'static str,
    /// `on_event` calls.
    pub events: AtomicU64,
    /// Calls that returned `Err`.
    pub errors: AtomicU64,
    /// Calls that panicked.
    pub panics: AtomicU64,
    /// Retry attempts.
    pub retries: AtomicU64,
    /// Events quarantined after failing here.
    pub quarantined: AtomicU64,
    /// State ([`PROC_RUNNING`], [`PROC_STOPPED`], [`PROC_FAILED`]; for agents an idle state).
    pub state: AtomicU8,
    /// Feeds from config.
    pub feeds: Vec<&'static str>,
    /// Events a routing processor could not route.
    pub unrouted: Arc<AtomicU64>,
    /// Cumulative latency as of the last `snapshotMs` boundary, for scrapes (which then
    /// never touch the group): count, p50, p90, p99, p99.9, max, sum, in ns.
    pub latency: [AtomicU64; 7],
}

/// Agent counters (shared with health and metrics).
#[derive(Debug, Default)]
pub struct AgentStats {
    /// Loop iterations.
    pub duty_cycles: CachePadded<AtomicU64>,
    /// Iterations that found no work.
    pub idle_cycles: CachePadded<AtomicU64>,
    /// State ([`PROC_RUNNING`], [`PROC_STOPPED`], [`PROC_FAILED`]; for agents an idle state).
    pub state: AtomicU8,
    /// Pinned core, or -1.
    pub core: AtomicI64,
    /// Milliseconds since `duty_cycles` last moved (written by the monitor).
    pub heartbeat_age_ms: AtomicU64,
    /// Allocations inside this agent's hot path (feature `alloc-count`).
    pub hot_allocs: AtomicU64,
}

/// What other threads see of a group.
pub struct GroupShared {
    /// Name.
    pub name: &'static str,
    /// The group's agent counters.
    pub agent: AgentStats,
    /// Batches by size bucket (see [`BATCH_BUCKETS`], then +Inf).
    pub batches: [AtomicU64; 14],
    /// Timers fired.
    pub timers_fired: AtomicU64,
    /// Processor counters (locked only by observers).
    pub procs: parking_lot::Mutex<Vec<Arc<ProcStats>>>,
    /// `maxBatch` (reloadable).
    pub max_batch: AtomicU32,
    /// Paused by `pause_group` (keeps cycling, does not drain).
    pub paused: AtomicBool,
    /// Routed commands.
    pub control: ArrayQueue<Control>,
    /// The thread has finished.
    pub exited: AtomicBool,
    /// Record per-processor latency.
    pub latency_enabled: AtomicBool,
    /// `latency.snapshotMs`: the interval window of `latency.status`.
    pub snapshot_ms: AtomicU32,
    /// The idle strategy.
    pub idle: IdleStrategy,
}

/// Count, then p50, p90, p99, p99.9 and max, in ns.
pub type LatencyFigures = (u64, [u64; 5]);

/// One processor's latency as `latency.status` and the summary family report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyRow {
    /// Processor name.
    pub name: String,
    /// The last complete `snapshotMs` window.
    pub interval: LatencyFigures,
    /// Since the last reset.
    pub cumulative: LatencyFigures,
}

/// Default `latency.snapshotMs`.
pub const DEFAULT_SNAPSHOT_MS: u32 = 1000;

/// Reply channel of a routed command.
pub type Reply<T> = SyncSender<T>;

/// Why `processors.stop` failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopError {
    /// No such processor here.
    NotFound,
    /// Already stopped.
    AlreadyStopped,
}

/// Commands routed to the group thread.
pub enum Control {
    /// Stop one processor (then `tear_down`, then out of dispatch).
    StopProcessor(String, Reply<Result<(), StopError>>),
    /// Reattach a disconnected subscription of `feed`.
    Reconnect(String, Reply<Result<(), ()>>),
    /// Clear the latency histograms.
    ResetLatency(Reply<()>),
    /// Latency per processor: the last complete `snapshotMs` window and everything since
    /// the last reset.
    LatencyStatus(Reply<Vec<LatencyRow>>),
    /// Drain until empty or the deadline, then stop.
    Shutdown(Instant),
    /// A processor-registered admin command: (processor, command, args, reply).
    Admin(
        String,
        String,
        Vec<String>,
        Reply<Result<serde_json::Value, String>>,
    ),
    /// Reload: new retry settings (`maxPending` keeps its start value: the store is
    /// pre-allocated).
    SetRetry(RetryPolicy),
    /// Reload: a processor's new `config`; `on_config_change` answers on the group thread.
    ConfigChange(
        String,
        crate::processor::ConfigMap,
        Reply<Result<(), String>>,
    ),
}

impl GroupShared {
    fn new(name: &'static str, max_batch: u32, idle: IdleStrategy) -> Self {
        GroupShared {
            name,
            agent: AgentStats {
                core: AtomicI64::new(-1),
                ..Default::default()
            },
            batches: Default::default(),
            timers_fired: AtomicU64::new(0),
            procs: parking_lot::Mutex::new(Vec::new()),
            max_batch: AtomicU32::new(max_batch),
            paused: AtomicBool::new(false),
            control: ArrayQueue::new(CONTROL_CAPACITY),
            exited: AtomicBool::new(false),
            latency_enabled: AtomicBool::new(true),
            snapshot_ms: AtomicU32::new(DEFAULT_SNAPSHOT_MS),
            idle,
        }
    }

    /// Routes a command to the thread; false when the control queue is full.
    pub fn send(&self, c: Control) -> bool {
        self.control.push(c).is_ok()
    }
}

/// A subscription as the group consumes it.
pub struct Consumer<E> {
    /// Feed index.
    pub feed_idx: u32,
    /// The consuming end.
    pub rx: Rx<E>,
    /// Its counters.
    pub shared: Arc<SubShared>,
    /// Seq of the last envelope taken off the queue (tracked subscriptions only).
    pub last_seq: u64,
}

/// Startup report from the group thread.
pub enum StartMsg {
    /// Built, initialised and started: the feed indices subscribed, the commands registered
    /// (name, help, processor) and the sinks taken.
    Ready(Vec<u32>, Vec<(String, String, String)>, Vec<String>),
    /// A critical component failed: (component, error).
    Failed(String, String),
}

/// Everything a group thread needs from the server.
pub struct GroupEnv<E> {
    /// Server name.
    pub server: &'static str,
    /// Feed names by index.
    pub feeds: Arc<Vec<&'static str>>,
    /// Broadcast flag by feed index.
    pub broadcast: Arc<Vec<bool>>,
    /// `wrapWithNamedEvent` by feed index.
    pub wrap_named: Arc<Vec<bool>>,
    /// Sink handles by name.
    pub sinks: Arc<HashMap<String, SinkHandle<E>>>,
    /// Started services.
    pub services: Arc<Vec<Arc<crate::service::ServiceEntry>>>,
    /// The quarantine.
    pub quarantine: Arc<Quarantine>,
    /// Startup report channel.
    pub startup: SyncSender<StartMsg>,
    /// Where the queues arrive (None: abort).
    pub wiring: Receiver<Option<Vec<Consumer<E>>>>,
    /// The start_complete signal.
    pub go: Receiver<bool>,
}

struct Retry<E> {
    env: Envelope<E>,
    proc: u32,
    attempt: u32,
    error: String,
    panic: bool,
    first_seen_ms: i64,
    due_ns: u64,
}

struct Slot<E> {
    p: Option<Box<dyn Processor<E>>>,
    stats: Arc<ProcStats>,
    /// Everything since the last reset (the only histogram the hot path records into).
    hist: Histogram<u64>,
    /// `hist` as of the last window boundary and the one before: their difference is the
    /// last complete window, kept without a second record per event.
    at_mark: Histogram<u64>,
    before_mark: Histogram<u64>,
    got_batch: bool,
}

impl<E> Slot<E> {
    fn new(p: Option<Box<dyn Processor<E>>>, stats: Arc<ProcStats>) -> Self {
        Slot {
            p,
            stats,
            hist: new_hist(),
            at_mark: new_hist(),
            before_mark: new_hist(),
            got_batch: false,
        }
    }

    /// A window boundary: shift the marks (same bounds, so no allocation) and publish the
    /// cumulative figures for scrapes.
    fn mark(&mut self) {
        self.before_mark.reset();
        let _ = self.before_mark.add(&self.at_mark);
        self.at_mark.reset();
        let _ = self.at_mark.add(&self.hist);
        self.publish_figures();
    }

    fn publish_figures(&self) {
        let h = &self.hist;
        let sum = (h.mean() * h.len() as f64) as u64;
        let v = [
            h.len(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
            sum,
        ];
        for (cell, x) in self.stats.latency.iter().zip(v) {
            cell.store(x, Ordering::Relaxed);
        }
    }

    fn row(&self) -> LatencyRow {
        fn figures(h: &Histogram<u64>) -> LatencyFigures {
            (
                h.len(),
                [
                    h.value_at_quantile(0.5),
                    h.value_at_quantile(0.9),
                    h.value_at_quantile(0.99),
                    h.value_at_quantile(0.999),
                    h.max(),
                ],
            )
        }
        let mut window = self.at_mark.clone();
        if window.subtract(&self.before_mark).is_err() {
            window.reset();
        }
        LatencyRow {
            name: self.stats.name.to_string(),
            interval: figures(&window),
            cumulative: figures(&self.hist),
        }
    }
}

fn new_hist() -> Histogram<u64> {
    // 1 ns to 60 s, 3 significant digits; never resized (recording saturates).
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant bounds")
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Starts a group thread.
pub fn spawn<E: Event>(
    spec: GroupSpec<E>,
    env: GroupEnv<E>,
) -> std::io::Result<(Arc<GroupShared>, std::thread::JoinHandle<()>)> {
    let shared = Arc::new(GroupShared::new(spec.name, spec.max_batch, spec.idle));
    let s2 = shared.clone();
    let thread_name: String = spec.name.chars().take(15).collect();
    let h = std::thread::Builder::new()
        .name(thread_name)
        .spawn(move || run(spec, env, s2))?;
    Ok((shared, h))
}

fn run<E: Event>(spec: GroupSpec<E>, env: GroupEnv<E>, shared: Arc<GroupShared>) {
    if let Some(core) = spec.core_id {
        let ok = core_affinity::set_for_current(core_affinity::CoreId { id: core });
        shared
            .agent
            .core
            .store(if ok { core as i64 } else { -1 }, Ordering::Relaxed);
        // Strict pinning already refused cores outside the affinity set at validation, so a
        // failure here is the best-effort case (or a set that changed since): a WARN.
        if ok {
            tracing::info!(agent = spec.name, core, ok, "pinning");
        } else {
            tracing::warn!(agent = spec.name, core, ok, "pinning");
        }
    }
    let mut core = GroupCore {
        group: spec.name,
        epoch: Instant::now(),
        timers: Timers::new(spec.max_timers as usize),
        sinks: env.sinks.clone(),
        services: env.services.clone(),
        feeds: env.feeds.clone(),
        wrap_named: env.wrap_named.clone(),
        admin_commands: Vec::new(),
        sinks_taken: Vec::new(),
        lat_mark: None,
        names: Vec::new(),
        configs: Vec::new(),
        subscriptions: Vec::new(),
        unrouted: Vec::new(),
        now_ns: 0,
    };
    let mut slots: Vec<Slot<E>> = Vec::new();
    // Build, subscribe, init and start each enabled processor, in map order.
    for ps in spec.processors.into_iter().filter(|p| p.enabled) {
        let idx = slots.len() as u32;
        let stats = Arc::new(ProcStats {
            name: ps.name,
            feeds: ps
                .feeds
                .iter()
                .filter_map(|f| env.feeds.iter().find(|x| **x == f.as_str()).copied())
                .collect(),
            ..Default::default()
        });
        core.names.push(ps.name);
        core.configs.push(ps.config.clone());
        core.unrouted.push(stats.unrouted.clone());
        let built =
            catch_unwind(AssertUnwindSafe(ps.factory)).unwrap_or_else(|p| Err(panic_text(p)));
        let mut p = match built {
            Ok(p) => p,
            Err(e) => {
                let _ = env
                    .startup
                    .send(StartMsg::Failed(format!("processor '{}'", ps.name), e));
                return;
            }
        };
        for f in &ps.feeds {
            match env.feeds.iter().position(|x| *x == f.as_str()) {
                Some(fi) => core.subscriptions.push((idx, fi as u32)),
                None => {
                    let _ = env.startup.send(StartMsg::Failed(
                        format!("processor '{}'", ps.name),
                        format!("unknown feed {f}"),
                    ));
                    return;
                }
            }
        }
        let mut ctx = Context {
            core: &mut core,
            proc: idx,
            starting: true,
            origin: None,
        };
        let res = catch_unwind(AssertUnwindSafe(|| {
            p.init(&mut ctx).and_then(|_| p.start(&mut ctx))
        }))
        .unwrap_or_else(|e| Err(panic_text(e)));
        if let Err(e) = res {
            if ps.critical {
                p.tear_down();
                for s in slots.iter_mut().rev() {
                    if let Some(mut q) = s.p.take() {
                        q.tear_down();
                    }
                }
                let _ = env
                    .startup
                    .send(StartMsg::Failed(format!("processor '{}'", ps.name), e));
                return;
            }
            tracing::error!(group = spec.name, processor = ps.name, error = %e, "processor failed to start");
            stats.state.store(PROC_FAILED, Ordering::Relaxed);
            shared.procs.lock().push(stats.clone());
            slots.push(Slot::new(None, stats));
            continue;
        }
        shared.procs.lock().push(stats.clone());
        slots.push(Slot::new(Some(p), stats));
    }
    let mut feeds: Vec<u32> = core.subscriptions.iter().map(|(_, f)| *f).collect();
    feeds.sort_unstable();
    feeds.dedup();
    let commands = core
        .admin_commands
        .iter()
        .map(|(n, h, p)| (n.clone(), h.clone(), core.names[*p as usize].to_string()))
        .collect();
    let taken = std::mem::take(&mut core.sinks_taken);
    if env
        .startup
        .send(StartMsg::Ready(feeds, commands, taken))
        .is_err()
    {
        return;
    }
    let Ok(Some(mut subs)) = env.wiring.recv() else {
        teardown(&mut slots, &mut core, true);
        shared.exited.store(true, Ordering::Release);
        return;
    };
    // Per subscription: the processors that receive its events, in map order.
    let targets: Vec<Vec<u32>> = subs
        .iter()
        .map(|s| {
            if env.broadcast[s.feed_idx as usize] {
                (0..slots.len() as u32).collect()
            } else {
                let mut v: Vec<u32> = core
                    .subscriptions
                    .iter()
                    .filter(|(_, f)| *f == s.feed_idx)
                    .map(|(p, _)| *p)
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            }
        })
        .collect();
    if !matches!(env.go.recv(), Ok(true)) {
        teardown(&mut slots, &mut core, true);
        shared.exited.store(true, Ordering::Release);
        return;
    }
    for (i, s) in slots.iter_mut().enumerate() {
        if let Some(p) = s.p.as_mut() {
            let mut ctx = Context {
                core: &mut core,
                proc: i as u32,
                starting: false,
                origin: None,
            };
            let _ = catch_unwind(AssertUnwindSafe(|| p.start_complete(&mut ctx)));
        }
    }
    let mut g = Loop {
        server: env.server,
        retry_policy: spec.retry,
        retries: Vec::with_capacity(spec.retry.max_pending as usize),
        next_retry_ns: u64::MAX,
        quarantine: env.quarantine.clone(),
        shared: shared.clone(),
        error_gates: slots.iter().map(|_| LogGate::default()).collect(),
        quarantine_gate: LogGate::default(),
    };
    let mut idler = Idler::new(spec.idle);
    let mut start_at = 0usize;
    let mut deadline: Option<Instant> = None;
    let mut next_mark_ns = 0u64;
    let tracks_watermarks = subs.iter().any(|s| s.shared.track_watermark);
    loop {
        let now = Instant::now();
        core.now_ns = now.duration_since(core.epoch).as_nanos() as u64;
        // Marks cost a pass over each histogram's buckets, so only while recording.
        if core.now_ns >= next_mark_ns && shared.latency_enabled.load(Ordering::Relaxed) {
            for s in slots.iter_mut() {
                s.mark();
            }
            let every = u64::from(shared.snapshot_ms.load(Ordering::Relaxed).max(1)) * 1_000_000;
            next_mark_ns = core.now_ns + every;
        }
        let mut work = 0usize;
        while let Some(c) = shared.control.pop() {
            work += 1;
            match c {
                // A second Shutdown (a forced one) may only bring the deadline forward.
                Control::Shutdown(d) => deadline = Some(deadline.map_or(d, |old| old.min(d))),
                other => g.control(other, &mut slots, &mut subs, &targets, &mut core),
            }
        }
        while let Some(f) = core.timers.pop_due(core.now_ns) {
            work += 1;
            shared.timers_fired.fetch_add(1, Ordering::Relaxed);
            if let Some(p) = slots.get_mut(f.owner as usize).and_then(|s| s.p.as_mut()) {
                let mut ctx = Context {
                    core: &mut core,
                    proc: f.owner,
                    starting: false,
                    origin: None,
                };
                match catch_unwind(AssertUnwindSafe(|| p.on_timer(f.token, &mut ctx))) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        slots[f.owner as usize]
                            .stats
                            .errors
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(group = spec.name, error = %e, "timer handler failed");
                    }
                    Err(p) => {
                        slots[f.owner as usize]
                            .stats
                            .panics
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(group = spec.name, error = %panic_text(p), "timer handler panicked");
                    }
                }
            }
        }
        work += g.run_retries(&mut slots, &mut core);
        if !shared.paused.load(Ordering::Relaxed) || deadline.is_some() {
            #[cfg(feature = "alloc-count")]
            let _hot = crate::alloc::hot_path(&shared.agent.hot_allocs);
            work += g.drain(&mut slots, &mut subs, &targets, &mut core, &mut start_at);
        }
        if work > 0 && tracks_watermarks {
            g.publish_watermarks(&subs);
        }
        shared.agent.duty_cycles.store(
            shared.agent.duty_cycles.load(Ordering::Relaxed) + 1,
            Ordering::Relaxed,
        );
        if let Some(d) = deadline {
            let empty = subs.iter().all(|s| s.shared.depth() == 0);
            if empty || Instant::now() >= d {
                g.finish(&mut slots, &mut subs, &mut core);
                break;
            }
            continue;
        }
        if work == 0 {
            shared.agent.idle_cycles.store(
                shared.agent.idle_cycles.load(Ordering::Relaxed) + 1,
                Ordering::Relaxed,
            );
        }
        idler.idle(work, &shared.agent.state);
    }
    shared.exited.store(true, Ordering::Release);
}

fn teardown<E: Event>(slots: &mut [Slot<E>], core: &mut GroupCore<E>, stop: bool) {
    for i in (0..slots.len()).rev() {
        if let Some(mut p) = slots[i].p.take() {
            if stop {
                let mut ctx = Context {
                    core: &mut *core,
                    proc: i as u32,
                    starting: false,
                    origin: None,
                };
                let _ = catch_unwind(AssertUnwindSafe(|| p.stop(&mut ctx)));
            }
            let _ = catch_unwind(AssertUnwindSafe(|| p.tear_down()));
            slots[i].stats.state.store(PROC_STOPPED, Ordering::Relaxed);
        }
    }
}

struct Loop<E> {
    server: &'static str,
    retry_policy: RetryPolicy,
    retries: Vec<Retry<E>>,
    next_retry_ns: u64,
    quarantine: Arc<Quarantine>,
    shared: Arc<GroupShared>,
    /// `processor_error` lines: at most one per second per processor (§5.2).
    error_gates: Vec<LogGate>,
    /// `event_quarantined` lines: at most one per second per group.
    quarantine_gate: LogGate,
}

/// Lets a log line through at most once per period and counts the ones it held back; only
/// failure paths consult it, so its clock read costs the hot path nothing.
#[derive(Default)]
struct LogGate {
    last: std::cell::Cell<Option<Instant>>,
    suppressed: std::cell::Cell<u64>,
}

/// The period of [`LogGate`]s.
const LOG_GATE_PERIOD: Duration = Duration::from_secs(1);

impl LogGate {
    /// Some(lines suppressed since the last one) when this line may be written.
    fn pass(&self) -> Option<u64> {
        let now = Instant::now();
        match self.last.get() {
            Some(t) if now.duration_since(t) < LOG_GATE_PERIOD => {
                self.suppressed.set(self.suppressed.get() + 1);
                None
            }
            _ => {
                self.last.set(Some(now));
                Some(self.suppressed.replace(0))
            }
        }
    }
}

impl<E: Event> Loop<E> {
    fn quarantine_retry(&self, slots: &[Slot<E>], r: Retry<E>, kind: Kind) {
        let stats = &slots[r.proc as usize].stats;
        stats.quarantined.fetch_add(1, Ordering::Relaxed);
        self.put(
            kind,
            &r.env,
            Some(stats.name),
            Some(r.attempt),
            Some(r.error),
            r.first_seen_ms,
        );
    }

    fn put(
        &self,
        kind: Kind,
        env: &Envelope<E>,
        proc: Option<&str>,
        attempts: Option<u32>,
        error: Option<String>,
        first_seen_ms: i64,
    ) {
        let rec = QuarantineRecord {
            ts_ms: now_ms(),
            first_seen_ms,
            server: self.server.to_string(),
            kind,
            feed: Some(env.feed.to_string()),
            seq: Some(env.seq),
            group: Some(self.shared.name.to_string()),
            processor: proc.map(str::to_string),
            sink: None,
            attempts,
            error,
            payload: env.event.to_json(),
            truncated: false,
        }
        .bound_payload();
        if let Some(suppressed) = self.quarantine_gate.pass() {
            tracing::warn!(
                kind = kind.as_str(),
                feed = env.feed,
                seq = env.seq,
                group = self.shared.name,
                processor = proc,
                suppressed,
                "event_quarantined"
            );
        }
        self.quarantine.put(rec);
    }

    /// Calls `on_event` of processor `i`; Err((text, panicked)) on failure.
    fn call(
        slots: &mut [Slot<E>],
        i: usize,
        env: &Envelope<E>,
        core: &mut GroupCore<E>,
        latency: bool,
    ) -> Result<(), (String, bool)> {
        let slot = &mut slots[i];
        let Some(p) = slot.p.as_mut() else {
            return Ok(());
        };
        slot.stats.events.fetch_add(1, Ordering::Relaxed);
        // Outside a batch (retries) there is no previous read yet: take one.
        let t0 = if latency {
            Some(core.lat_mark.take().unwrap_or_else(Instant::now))
        } else {
            None
        };
        let mut ctx = Context {
            core,
            proc: i as u32,
            starting: false,
            origin: Some((env.feed, env.seq)),
        };
        let out = catch_unwind(AssertUnwindSafe(|| p.on_event(env, &mut ctx)));
        if let Some(t0) = t0 {
            let t1 = Instant::now();
            slot.hist
                .saturating_record(t1.saturating_duration_since(t0).as_nanos() as u64);
            core.lat_mark = Some(t1);
        }
        slot.got_batch = true;
        match out {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                slot.stats.errors.fetch_add(1, Ordering::Relaxed);
                Err((e.0, false))
            }
            Err(p) => {
                slot.stats.panics.fetch_add(1, Ordering::Relaxed);
                Err((panic_text(p), true))
            }
        }
    }

    /// `processor_error` (§5.2), gated per processor.
    fn log_error(
        &self,
        slots: &[Slot<E>],
        proc: u32,
        env: &Envelope<E>,
        attempt: u32,
        panic: bool,
        error: &str,
    ) {
        let Some(suppressed) = self.error_gates.get(proc as usize).and_then(LogGate::pass) else {
            return;
        };
        tracing::warn!(
            group = self.shared.name,
            processor = slots[proc as usize].stats.name,
            feed = env.feed,
            seq = env.seq,
            attempt,
            kind = if panic { "panic" } else { "error" },
            error,
            suppressed,
            "processor_error"
        );
    }

    fn fail(
        &mut self,
        slots: &[Slot<E>],
        env: Envelope<E>,
        proc: u32,
        error: String,
        panic: bool,
        now_ns: u64,
    ) {
        self.log_error(slots, proc, &env, 1, panic, &error);
        let r = Retry {
            env,
            proc,
            attempt: 1,
            error,
            panic,
            first_seen_ms: now_ms(),
            due_ns: 0,
        };
        if self.retry_policy.max_retries == 0 {
            let kind = if panic { Kind::Panic } else { Kind::Error };
            self.quarantine_retry(slots, r, kind);
            return;
        }
        if self.retries.len() >= self.retry_policy.max_pending as usize {
            self.quarantine_retry(slots, r, Kind::RetryOverflow);
            return;
        }
        let due = now_ns + self.retry_policy.backoff(1).as_nanos() as u64;
        self.next_retry_ns = self.next_retry_ns.min(due);
        self.retries.push(Retry { due_ns: due, ..r });
    }

    fn run_retries(&mut self, slots: &mut [Slot<E>], core: &mut GroupCore<E>) -> usize {
        if core.now_ns < self.next_retry_ns {
            return 0;
        }
        let mut work = 0;
        let mut i = 0;
        self.next_retry_ns = u64::MAX;
        let latency = self.shared.latency_enabled.load(Ordering::Relaxed);
        while i < self.retries.len() {
            if self.retries[i].due_ns > core.now_ns {
                self.next_retry_ns = self.next_retry_ns.min(self.retries[i].due_ns);
                i += 1;
                continue;
            }
            work += 1;
            // `remove`, not `swap_remove`: retries due together run in the order they failed
            // (the store is small and retries are off the hot path).
            let mut r = self.retries.remove(i);
            slots[r.proc as usize]
                .stats
                .retries
                .fetch_add(1, Ordering::Relaxed);
            // A retry is timed on its own: no earlier read of this cycle belongs to it.
            core.lat_mark = None;
            match Self::call(slots, r.proc as usize, &r.env, core, latency) {
                Ok(()) => {}
                Err((e, panic)) => {
                    r.attempt += 1;
                    self.log_error(slots, r.proc, &r.env, r.attempt, panic, &e);
                    r.error = e;
                    r.panic = panic;
                    if r.attempt > u32::from(self.retry_policy.max_retries) {
                        let kind = if panic { Kind::Panic } else { Kind::Error };
                        self.quarantine_retry(slots, r, kind);
                    } else {
                        r.due_ns =
                            core.now_ns + self.retry_policy.backoff(r.attempt).as_nanos() as u64;
                        self.next_retry_ns = self.next_retry_ns.min(r.due_ns);
                        self.retries.push(r);
                    }
                }
            }
        }
        work
    }

    /// MNG-R32 step 5: per tracked subscription, the last dispatched seq, or one less than
    /// the smallest seq of that feed still waiting for a retry.
    fn publish_watermarks(&self, subs: &[Consumer<E>]) {
        for s in subs.iter().filter(|s| s.shared.track_watermark) {
            let pending = self
                .retries
                .iter()
                .filter(|r| r.env.feed_id == s.feed_idx)
                .map(|r| r.env.seq)
                .min();
            let wm = match pending {
                Some(p) => s.last_seq.min(p.saturating_sub(1)),
                None => s.last_seq,
            };
            s.shared.watermark.store(wm, Ordering::Release);
        }
    }

    fn dispatch(
        &mut self,
        slots: &mut [Slot<E>],
        env: Envelope<E>,
        procs: &[u32],
        core: &mut GroupCore<E>,
    ) {
        let latency = self.shared.latency_enabled.load(Ordering::Relaxed);
        let mut failed: Option<(u32, String, bool)> = None;
        for &p in procs {
            if let Err((e, panic)) = Self::call(slots, p as usize, &env, core, latency) {
                if let Some((fp, fe, fpanic)) = failed.take() {
                    // More than one failure: the earlier one gets a clone.
                    self.fail(slots, env.clone(), fp, fe, fpanic, core.now_ns);
                }
                failed = Some((p, e, panic));
            }
        }
        if let Some((p, e, panic)) = failed {
            self.fail(slots, env, p, e, panic, core.now_ns);
        }
    }

    fn drain(
        &mut self,
        slots: &mut [Slot<E>],
        subs: &mut [Consumer<E>],
        targets: &[Vec<u32>],
        core: &mut GroupCore<E>,
        start_at: &mut usize,
    ) -> usize {
        let n = subs.len();
        if n == 0 {
            return 0;
        }
        let max_batch = self.shared.max_batch.load(Ordering::Relaxed) as u64;
        let latency_on = self.shared.latency_enabled.load(Ordering::Relaxed);
        let mut work = 0;
        for k in 0..n {
            let i = (*start_at + k) % n;
            let state = subs[i].shared.state.load(Ordering::Acquire);
            let mut got = 0u64;
            core.lat_mark = None;
            while got < max_batch {
                let Some(env) = subs[i].rx.pop() else { break };
                if got == 0 && latency_on {
                    // The batch's first read; each call then reads once after itself.
                    core.lat_mark = Some(Instant::now());
                }
                got += 1;
                if subs[i].shared.track_watermark {
                    subs[i].last_seq = env.seq;
                }
                if state == DETACHED {
                    subs[i].shared.drop_one(DROP_DETACHED);
                    continue;
                }
                self.dispatch(slots, env, &targets[i], core);
            }
            if got > 0 {
                work += got as usize;
                if state != DETACHED {
                    let c = &subs[i].shared.consumed;
                    c.store(c.load(Ordering::Relaxed) + got, Ordering::Release);
                    let b = BATCH_BUCKETS
                        .iter()
                        .position(|le| u64::from(*le) >= got)
                        .unwrap_or(13);
                    self.shared.batches[b].fetch_add(1, Ordering::Relaxed);
                    for (pi, s) in slots.iter_mut().enumerate() {
                        if s.got_batch {
                            s.got_batch = false;
                            if let Some(p) = s.p.as_mut() {
                                let mut ctx = Context {
                                    core: &mut *core,
                                    proc: pi as u32,
                                    starting: false,
                                    origin: None,
                                };
                                let _ = catch_unwind(AssertUnwindSafe(|| p.on_batch_end(&mut ctx)));
                            }
                        }
                    }
                }
            }
            // A disconnect is announced once its queue has drained.
            let sh = &subs[i].shared;
            if state == DISCONNECTED
                && sh.depth() == 0
                && sh.disconnect_seen.swap(1, Ordering::AcqRel) == 0
            {
                for &p in &targets[i] {
                    if let Some(proc) = slots[p as usize].p.as_mut() {
                        let feed = sh.feed;
                        let _ = catch_unwind(AssertUnwindSafe(|| {
                            proc.on_subscription(feed, SubscriptionEvent::Disconnected)
                        }));
                    }
                }
                tracing::warn!(
                    feed = sh.feed,
                    group = sh.group,
                    "subscription_disconnected"
                );
            }
        }
        *start_at = (*start_at + 1) % n;
        work
    }

    fn control(
        &mut self,
        c: Control,
        slots: &mut [Slot<E>],
        subs: &mut [Consumer<E>],
        targets: &[Vec<u32>],
        core: &mut GroupCore<E>,
    ) {
        match c {
            Control::Admin(proc, name, args, reply) => {
                let Some(slot) = slots.iter_mut().find(|s| s.stats.name == proc) else {
                    let _ = reply.try_send(Err(format!("no processor {proc:?}")));
                    return;
                };
                let out = match slot.p.as_mut() {
                    None => Err(format!("processor {proc:?} is stopped")),
                    Some(p) => catch_unwind(AssertUnwindSafe(|| p.on_admin_command(&name, &args)))
                        .unwrap_or_else(|e| Err(format!("panicked: {}", panic_text(e)))),
                };
                let _ = reply.try_send(out);
            }
            Control::SetRetry(mut r) => {
                r.max_pending = self.retry_policy.max_pending;
                self.retry_policy = r;
            }
            Control::ConfigChange(name, cfg, reply) => {
                let Some(i) = slots.iter().position(|s| s.stats.name == name) else {
                    let _ = reply.try_send(Err(format!("no processor {name:?} in this group")));
                    return;
                };
                let out = match slots[i].p.as_mut() {
                    // A stopped processor has nothing to reconfigure.
                    None => Ok(()),
                    Some(p) => catch_unwind(AssertUnwindSafe(|| p.on_config_change(&cfg)))
                        .unwrap_or_else(|_| Err("on_config_change panicked".into())),
                };
                if out.is_ok() {
                    core.configs[i] = cfg;
                }
                let _ = reply.try_send(out);
            }
            Control::StopProcessor(name, reply) => {
                let Some(i) = slots.iter().position(|s| s.stats.name == name) else {
                    let _ = reply.try_send(Err(StopError::NotFound));
                    return;
                };
                let Some(mut p) = slots[i].p.take() else {
                    let _ = reply.try_send(Err(StopError::AlreadyStopped));
                    return;
                };
                let mut ctx = Context {
                    core: &mut *core,
                    proc: i as u32,
                    starting: false,
                    origin: None,
                };
                let _ = catch_unwind(AssertUnwindSafe(|| p.stop(&mut ctx)));
                let _ = catch_unwind(AssertUnwindSafe(|| p.tear_down()));
                slots[i].stats.state.store(PROC_STOPPED, Ordering::Relaxed);
                // Its pending retries are quarantined now.
                let mut k = 0;
                while k < self.retries.len() {
                    if self.retries[k].proc == i as u32 {
                        let r = self.retries.swap_remove(k);
                        self.quarantine_retry(slots, r, Kind::ProcessorStopped);
                    } else {
                        k += 1;
                    }
                }
                // Subscriptions with no running receiver left are detached.
                for (si, s) in subs.iter().enumerate() {
                    if !targets[si].iter().any(|p| slots[*p as usize].p.is_some()) {
                        s.shared.state.store(DETACHED, Ordering::Release);
                    }
                }
                let _ = reply.try_send(Ok(()));
            }
            Control::Reconnect(feed, reply) => {
                let Some(si) = subs.iter().position(|s| s.shared.feed == feed) else {
                    let _ = reply.try_send(Err(()));
                    return;
                };
                let sh = subs[si].shared.clone();
                if sh
                    .state
                    .compare_exchange(DISCONNECTED, CONNECTED, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    let _ = reply.try_send(Err(()));
                    return;
                }
                sh.disconnect_seen.store(0, Ordering::Release);
                for &p in &targets[si] {
                    if let Some(proc) = slots[p as usize].p.as_mut() {
                        let _ = catch_unwind(AssertUnwindSafe(|| {
                            proc.on_subscription(sh.feed, SubscriptionEvent::Reconnected)
                        }));
                    }
                }
                let _ = reply.try_send(Ok(()));
            }
            Control::ResetLatency(reply) => {
                for s in slots.iter_mut() {
                    s.hist.reset();
                    s.at_mark.reset();
                    s.before_mark.reset();
                    s.publish_figures();
                }
                let _ = reply.try_send(());
            }
            Control::LatencyStatus(reply) => {
                let _ = reply.try_send(slots.iter().map(Slot::row).collect());
            }
            Control::Shutdown(_) => {}
        }
    }

    /// Drain deadline reached or queues empty: leftovers, retries, then stop everything.
    fn finish(&mut self, slots: &mut [Slot<E>], subs: &mut [Consumer<E>], core: &mut GroupCore<E>) {
        for s in subs.iter_mut() {
            let mut left = 0u64;
            while let Some(env) = s.rx.pop() {
                left += 1;
                s.last_seq = env.seq;
                self.put(Kind::ShutdownUndrained, &env, None, None, None, now_ms());
            }
            if left > 0 {
                s.shared
                    .shutdown_undrained
                    .fetch_add(left, Ordering::Release);
                tracing::warn!(
                    feed = s.shared.feed,
                    group = s.shared.group,
                    undrained = left,
                    "shutdown_undrained"
                );
            }
        }
        for r in std::mem::take(&mut self.retries) {
            self.quarantine_retry(slots, r, Kind::ProcessorStopped);
        }
        // Quarantined counts as processed: the final acknowledgement covers everything.
        self.publish_watermarks(subs);
        teardown(slots, core, true);
    }
}
