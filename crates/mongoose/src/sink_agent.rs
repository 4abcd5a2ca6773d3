//! Agent-hosted sinks (MNG-R26): a thread pops each sink's queue and calls `write`, behind
//! a ron-kernel circuit breaker per sink.
//!
//! `Ok` counts `written` and is a breaker success. `Retryable` keeps the item *pending* and
//! retries it on the next duty cycle (a breaker failure). `Permanent` quarantines the item as
//! `sink_rejected` and does not touch the breaker. While the breaker is open nothing is
//! written; after `openMs` the pending item is the half-open probe. Items queued meanwhile
//! stay queued and are delivered after recovery. At shutdown each sink drains within the
//! deadline; leftovers are quarantined as `shutdown_undrained`, then `flush` and `stop`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ron_kernel::{BreakerConfig, BreakerState, CircuitBreaker};

use crate::event::Event;
use crate::group::AgentStats;
use crate::idle::{IdleStrategy, Idler};
use crate::quarantine::{Kind, Quarantine, QuarantineRecord, now_ms};
use crate::server::StartError;
use crate::sink::{SinkHandle, SinkItem};

/// A sink's verdict on one write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// Try again later (network error, 5xx, full disk...).
    #[error("retryable: {0}")]
    Retryable(String),
    /// Never going to work (e.g. HTTP 400): the item is quarantined.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// What a sink implements.
pub trait Sink<E: Event>: Send {
    /// Opens the target (a critical sink that fails here aborts startup).
    fn start(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Writes one item.
    fn write(&mut self, item: &SinkItem<E>) -> Result<(), SinkError>;
    /// Flushes buffered writes.
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// Closes the target.
    fn stop(&mut self) {}
}

/// Builds a sink.
pub type SinkFactory<E> = Box<dyn FnOnce(&SinkEnv) -> Result<Box<dyn Sink<E>>, String> + Send>;

/// What a sink type's constructor may use. Sinks are written from the `sinks` agent thread,
/// so their calls are blocking; network sinks drive async clients with `io.block_on`, each
/// bounded by the sink's own timeout.
#[derive(Clone)]
pub struct SinkEnv {
    /// The sink's name.
    pub name: &'static str,
    /// The server's name.
    pub server: &'static str,
    /// `startup.connectTimeoutMs`: network sinks connect within it in `start`.
    pub connect_timeout: std::time::Duration,
    /// The server's I/O runtime.
    pub io: tokio::runtime::Handle,
}

/// Constructs a sink type from its `config` (no I/O: that happens in `Sink::start`).
pub type BuildSink<E> = std::sync::Arc<
    dyn Fn(&crate::processor::ConfigMap, &SinkEnv) -> Result<Box<dyn Sink<E>>, String>
        + Send
        + Sync,
>;

/// One agent-hosted sink, before start.
pub struct SinkSpec<E> {
    /// Name.
    pub name: String,
    /// Queue capacity.
    pub capacity: usize,
    /// Breaker (None: disabled, `failureThreshold: 0`).
    pub breaker: Option<BreakerConfig>,
    /// A failing `start` aborts startup.
    pub critical: bool,
    /// Builds it.
    pub factory: SinkFactory<E>,
}

/// Counters of the hosted sinks beyond [`crate::sink::SinkStats`].
#[derive(Debug, Default)]
pub struct SinkAgentStats {
    /// Retryable write errors.
    pub errors_retryable: AtomicU64,
    /// Permanent write errors.
    pub errors_permanent: AtomicU64,
    /// Breaker transitions, by target state: open, half_open, closed.
    pub transitions: [AtomicU64; 3],
}

/// `to` label values of `mongoose_sink_circuit_transitions_total`, in
/// [`SinkAgentStats::transitions`] order.
pub const TRANSITION_TARGETS: [&str; 3] = ["open", "half_open", "closed"];

struct Hosted<E: Event> {
    handle: SinkHandle<E>,
    sink: Box<dyn Sink<E>>,
    breaker: Option<Arc<CircuitBreaker>>,
    pending: Option<SinkItem<E>>,
    stats: Arc<SinkAgentStats>,
}

/// A started sink: its handle and counters.
pub type HostedSink<E> = (SinkHandle<E>, Arc<SinkAgentStats>);

/// The running sink agent.
pub struct SinkAgent {
    stop: Arc<AtomicBool>,
    deadline_ms: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
    /// Agent counters.
    pub agent: Arc<AgentStats>,
}

/// Starts the sinks (in order; a critical failure stops the started ones and names the
/// sink) and the agent thread hosting them.
pub fn start<E: Event>(
    specs: Vec<SinkSpec<E>>,
    env: &SinkEnv,
    placement: &crate::server::AgentPlacement,
    quarantine: Arc<Quarantine>,
) -> Result<(SinkAgent, Vec<HostedSink<E>>), StartError> {
    let idle = placement.idle;
    let agent_name = placement.agent.clone();
    let core = placement.core;
    let server = env.server;
    let mut hosted: Vec<Hosted<E>> = Vec::new();
    for spec in specs {
        let name: &'static str = crate::server::leak(&spec.name);
        let env = SinkEnv {
            name,
            ..env.clone()
        };
        let built = (spec.factory)(&env).and_then(|mut s| s.start().map(|()| s));
        let sink = match built {
            Ok(s) => s,
            Err(e) if spec.critical => {
                for h in hosted.iter_mut().rev() {
                    h.sink.stop();
                }
                return Err(StartError {
                    component: format!("sink '{name}'"),
                    error: e,
                });
            }
            Err(e) => {
                tracing::error!(sink = name, error = %e, "sink failed to start");
                continue;
            }
        };
        let stats = Arc::new(SinkAgentStats::default());
        let breaker = spec.breaker.filter(|b| b.failure_threshold > 0).map(|cfg| {
            let st = stats.clone();
            Arc::new(CircuitBreaker::new(name, cfg).on_transition(Arc::new(
                move |_, from: BreakerState, to: BreakerState, failures| {
                    let i = match to {
                        BreakerState::Open => 0,
                        BreakerState::HalfOpen => 1,
                        BreakerState::Closed => 2,
                    };
                    st.transitions[i].fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        sink = name,
                        from = from.as_str(),
                        to = to.as_str(),
                        failures,
                        "circuit_state"
                    );
                },
            )))
        });
        let handle = SinkHandle::queued(name, spec.capacity, breaker.clone());
        tracing::info!(
            component = name,
            kind = "sink",
            agent = %agent_name,
            "component_started"
        );
        hosted.push(Hosted {
            handle,
            sink,
            breaker,
            pending: None,
            stats,
        });
    }
    let out: Vec<HostedSink<E>> = hosted
        .iter()
        .map(|h| (h.handle.clone(), h.stats.clone()))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let deadline_ms = Arc::new(AtomicU64::new(0));
    let agent = Arc::new(AgentStats {
        core: std::sync::atomic::AtomicI64::new(-1),
        ..Default::default()
    });
    let (s2, d2, a2) = (stop.clone(), deadline_ms.clone(), agent.clone());
    let thread_name: String = agent_name.chars().take(15).collect();
    let pin_name = agent_name.clone();
    let thread = std::thread::Builder::new()
        .name(thread_name)
        .spawn(move || {
            crate::idle::pin_current(&pin_name, core, &a2.core);
            run(hosted, server, idle, quarantine, s2, d2, a2)
        })
        .map_err(|e| StartError {
            component: format!("agent '{agent_name}'"),
            error: e.to_string(),
        })?;
    Ok((
        SinkAgent {
            stop,
            deadline_ms,
            thread: Some(thread),
            agent,
        },
        out,
    ))
}

impl SinkAgent {
    /// Drains each sink until empty or `deadline`, quarantines leftovers, flushes, stops.
    pub fn shutdown(&mut self, deadline: Duration) {
        self.deadline_ms
            .store(deadline.as_millis() as u64, Ordering::Release);
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SinkAgent {
    fn drop(&mut self) {
        self.shutdown(Duration::from_millis(500));
    }
}

/// Quarantines a sink item that will not be written: an event becomes a record of `kind`;
/// a record the quarantine sink itself could not write goes to the memory ring as is.
fn quarantine_item<E: Event>(
    q: &Quarantine,
    server: &str,
    kind: Kind,
    sink: &str,
    item: SinkItem<E>,
    error: Option<String>,
) {
    match item {
        SinkItem::Quarantine(rec) => q.fallback(*rec),
        SinkItem::Event { value, origin } => q.put(
            QuarantineRecord {
                ts_ms: now_ms(),
                first_seen_ms: now_ms(),
                server: server.to_string(),
                kind,
                feed: origin.map(|o| o.0.to_string()),
                seq: origin.map(|o| o.1),
                group: None,
                processor: None,
                sink: Some(sink.to_string()),
                attempts: error.as_ref().map(|_| 1),
                error,
                payload: value.to_json(),
                truncated: false,
            }
            .bound_payload(),
        ),
    }
}

/// One write attempt of a sink's pending or next item; returns whether it did work.
fn step<E: Event>(h: &mut Hosted<E>, server: &'static str, q: &Quarantine) -> bool {
    if h.pending.is_none() {
        h.pending = h.handle.pop();
    }
    let Some(item) = h.pending.as_ref() else {
        return false;
    };
    let permit = match &h.breaker {
        Some(b) => match b.try_acquire() {
            Ok(p) => Some(p),
            // Open: nothing is written until the breaker lets a probe through.
            Err(_) => return false,
        },
        None => None,
    };
    match h.sink.write(item) {
        Ok(()) => {
            if let Some(p) = permit {
                p.success();
            }
            h.handle.stats().written.fetch_add(1, Ordering::Relaxed);
            h.pending = None;
        }
        Err(SinkError::Retryable(e)) => {
            if let Some(p) = permit {
                p.failure();
            }
            h.stats.errors_retryable.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(sink = h.handle.name(), error = %e, "sink write failed; retrying");
        }
        Err(SinkError::Permanent(e)) => {
            // Neutral for the breaker: the target works, the item does not.
            drop(permit);
            h.stats.errors_permanent.fetch_add(1, Ordering::Relaxed);
            let item = h.pending.take().expect("pending item");
            quarantine_item(
                q,
                server,
                Kind::SinkRejected,
                h.handle.name(),
                item,
                Some(e),
            );
        }
    }
    true
}

fn run<E: Event>(
    mut hosted: Vec<Hosted<E>>,
    server: &'static str,
    idle: IdleStrategy,
    q: Arc<Quarantine>,
    stop: Arc<AtomicBool>,
    deadline_ms: Arc<AtomicU64>,
    agent: Arc<AgentStats>,
) {
    let mut idler = Idler::new(idle);
    while !stop.load(Ordering::Acquire) {
        let mut work = 0;
        for h in hosted.iter_mut() {
            // Up to a batch per sink per cycle, so one busy sink cannot starve the others.
            for _ in 0..64 {
                if !step(h, server, &q) {
                    break;
                }
                work += 1;
                if h.pending.is_some() {
                    break;
                }
            }
        }
        agent.duty_cycles.store(
            agent.duty_cycles.load(Ordering::Relaxed) + 1,
            Ordering::Relaxed,
        );
        if work == 0 {
            agent.idle_cycles.store(
                agent.idle_cycles.load(Ordering::Relaxed) + 1,
                Ordering::Relaxed,
            );
        }
        idler.idle(work, &agent.state);
    }
    let deadline = Instant::now() + Duration::from_millis(deadline_ms.load(Ordering::Acquire));
    for h in hosted.iter_mut() {
        h.handle.close();
        while Instant::now() < deadline && (h.pending.is_some() || !h.handle.is_empty()) {
            if !step(h, server, &q) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let mut left: Vec<SinkItem<E>> = h.pending.take().into_iter().collect();
        while let Some(i) = h.handle.pop() {
            left.push(i);
        }
        for item in left {
            quarantine_item(
                &q,
                server,
                Kind::ShutdownUndrained,
                h.handle.name(),
                item,
                None,
            );
        }
        let _ = h.sink.flush();
        h.sink.stop();
    }
}
