//! The three one-hop implementations (mongoose, crossbeam-channel, raw rtrb) behind one
//! publisher loop and one consumer handler.
//!
//! Every run: a publisher thread pinned to the first core, a consumer pinned to the second,
//! the main thread blocked in `join` (asleep) while they run. A full queue is retried by
//! spinning for up to [`FULL_WAIT`] and then counted as a drop, which is what mongoose's
//! `block` (`maxWaitMs` 1000) with a `fail-fast` fallback does inside `publish`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mongoose::queue::{DROP_LABELS, SubShared};
use mongoose::{
    Backpressure, Context, Envelope, FeedSpec, GroupSpec, IdleStrategy, Policy, ProcSpec,
    Processor, ProcessorError, PublishError, RetryPolicy, RunningServer, ServerSpec,
};

use crate::recorder::{Mode, Recorder, RunResult, Sample, Sent};

/// How long a publisher waits on a full queue before dropping (mongoose `maxWaitMs`).
pub const FULL_WAIT: Duration = Duration::from_millis(1000);
/// Delay between planning a run and its first event, so both threads are spinning.
pub const START_LEAD: Duration = Duration::from_millis(20);
/// How long to wait for a consumer to drain after the publisher finished.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Health monitor period of the mongoose server (the library cannot switch it off).
pub const MONITOR_INTERVAL: Duration = Duration::from_secs(1);
/// `maxBatch` of the mongoose group (spec §8).
pub const MAX_BATCH: u32 = 64;
/// Unpaced runs check the clock once per this many events.
const CLOCK_EVERY: u64 = 1024;

/// The three implementations (mongoose twice: latency recording off and on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// mongoose, `latency_enabled` off.
    Mongoose,
    /// mongoose, `latency_enabled` on.
    MongooseLat,
    /// crossbeam-channel bounded, consumer polling `try_recv`.
    Crossbeam,
    /// A bare rtrb ring, handler inline.
    Rtrb,
}

impl Impl {
    /// Every implementation, in run order.
    pub const ALL: [Impl; 4] = [
        Impl::Mongoose,
        Impl::MongooseLat,
        Impl::Crossbeam,
        Impl::Rtrb,
    ];

    /// Report label.
    pub fn label(self) -> &'static str {
        match self {
            Impl::Mongoose => "mongoose",
            Impl::MongooseLat => "mongoose+lat",
            Impl::Crossbeam => "crossbeam",
            Impl::Rtrb => "rtrb",
        }
    }
}

/// Where the two threads run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cores {
    /// Publisher core.
    pub publisher: Option<usize>,
    /// Consumer core.
    pub consumer: Option<usize>,
}

impl Cores {
    /// The first two cores, or none when pinning is off or there are fewer than two.
    pub fn detect(pin: bool) -> Self {
        let ids = if pin {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };
        if ids.len() >= 2 {
            Cores {
                publisher: Some(ids[0].id),
                consumer: Some(ids[1].id),
            }
        } else {
            Cores {
                publisher: None,
                consumer: None,
            }
        }
    }
}

/// One run's shape.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Paced at this rate (msg/s), or unpaced when None.
    pub rate: Option<u64>,
    /// Warm-up, not recorded.
    pub warmup: Duration,
    /// Recorded part.
    pub duration: Duration,
    /// Queue capacity.
    pub capacity: usize,
    /// Cores.
    pub cores: Cores,
}

impl Plan {
    fn mode(&self) -> Mode {
        match self.rate {
            Some(r) => Mode::Latency {
                warmup_n: (r as f64 * self.warmup.as_secs_f64()) as u64,
            },
            None => Mode::Throughput,
        }
    }
}

fn pin(core: Option<usize>) -> bool {
    core.is_some_and(|id| core_affinity::set_for_current(core_affinity::CoreId { id }))
}

fn ns(base: Instant) -> u64 {
    base.elapsed().as_nanos() as u64
}

/// The publisher loop. `push` returns whether the event was delivered.
fn publish_loop(base: Instant, plan: &Plan, mut push: impl FnMut(Sample) -> bool) -> Sent {
    let mut out = Sent::default();
    let t0 = ns(base) + START_LEAD.as_nanos() as u64;
    while ns(base) < t0 {
        std::hint::spin_loop();
    }
    match plan.rate {
        Some(rate) => {
            let total = (rate as f64 * (plan.warmup + plan.duration).as_secs_f64()) as u64;
            for seq in 0..total {
                let intended = t0 + (u128::from(seq) * 1_000_000_000 / u128::from(rate)) as u64;
                let mut now = ns(base);
                while now < intended {
                    std::hint::spin_loop();
                    now = ns(base);
                }
                if seq == 0 {
                    out.first_ns = now;
                }
                out.last_ns = now;
                out.sent += 1;
                if !push(Sample {
                    intended_ns: intended,
                    send_ns: now,
                    seq,
                }) {
                    out.dropped += 1;
                }
            }
        }
        None => {
            let end = t0 + plan.duration.as_nanos() as u64;
            out.first_ns = t0;
            let mut seq = 0u64;
            loop {
                if seq.is_multiple_of(CLOCK_EVERY) {
                    let now = ns(base);
                    if now >= end {
                        out.last_ns = now;
                        break;
                    }
                }
                out.sent += 1;
                if !push(Sample {
                    intended_ns: 0,
                    send_ns: 0,
                    seq,
                }) {
                    out.dropped += 1;
                }
                seq += 1;
            }
        }
    }
    out
}

/// Retries `try_push` until it succeeds or [`FULL_WAIT`] has passed.
#[inline]
fn push_waiting<T>(mut v: T, mut try_push: impl FnMut(T) -> Result<(), T>) -> bool {
    match try_push(v) {
        Ok(()) => return true,
        Err(back) => v = back,
    }
    let deadline = Instant::now() + FULL_WAIT;
    loop {
        match try_push(v) {
            Ok(()) => return true,
            Err(back) => v = back,
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::hint::spin_loop();
    }
}

/// What one consumer poll found.
enum Poll {
    Item(Sample),
    Empty,
    Closed,
}

/// The busy-polling consumer of the crossbeam and rtrb runs.
fn consume(mut rec: Recorder, mut poll: impl FnMut() -> Poll) -> Recorder {
    loop {
        match poll() {
            Poll::Item(s) => rec.on_sample(&s),
            Poll::Empty => std::hint::spin_loop(),
            Poll::Closed => return rec,
        }
    }
}

/// Runs one implementation with `plan`.
pub fn run(which: Impl, plan: &Plan, run_id: usize) -> RunResult {
    match which {
        Impl::Mongoose => run_mongoose(plan, false, run_id),
        Impl::MongooseLat => run_mongoose(plan, true, run_id),
        Impl::Crossbeam => run_crossbeam(plan),
        Impl::Rtrb => run_rtrb(plan),
    }
}

fn pin_notes(plan: &Plan, publisher: bool, consumer: bool) -> Vec<String> {
    vec![format!(
        "pinning: publisher {:?} {}, consumer {:?} {}",
        plan.cores.publisher,
        if publisher { "held" } else { "off" },
        plan.cores.consumer,
        if consumer { "held" } else { "off" }
    )]
}

fn run_crossbeam(plan: &Plan) -> RunResult {
    let base = Instant::now();
    let (tx, rx) = crossbeam_channel::bounded::<Sample>(plan.capacity);
    let rec = Recorder::new(base, plan.mode());
    let cc = plan.cores.consumer;
    let consumer = std::thread::spawn(move || {
        let pinned = pin(cc);
        let rec = consume(rec, || match rx.try_recv() {
            Ok(s) => Poll::Item(s),
            Err(crossbeam_channel::TryRecvError::Empty) => Poll::Empty,
            Err(crossbeam_channel::TryRecvError::Disconnected) => Poll::Closed,
        });
        (rec, pinned)
    });
    let p = *plan;
    let publisher = std::thread::spawn(move || {
        let pinned = pin(p.cores.publisher);
        let sent = publish_loop(base, &p, |s| {
            push_waiting(s, |v| {
                tx.try_send(v).map_err(|e| match e {
                    crossbeam_channel::TrySendError::Full(v)
                    | crossbeam_channel::TrySendError::Disconnected(v) => v,
                })
            })
        });
        drop(tx);
        (sent, pinned)
    });
    let (sent, ppin) = publisher.join().expect("publisher thread");
    let (rec, cpin) = consumer.join().expect("consumer thread");
    RunResult {
        implementation: Impl::Crossbeam.label().into(),
        rate: plan.rate,
        sent,
        rec,
        notes: pin_notes(plan, ppin, cpin),
    }
}

fn run_rtrb(plan: &Plan) -> RunResult {
    let base = Instant::now();
    let (mut tx, mut rx) = rtrb::RingBuffer::<Sample>::new(plan.capacity);
    let rec = Recorder::new(base, plan.mode());
    let cc = plan.cores.consumer;
    let consumer = std::thread::spawn(move || {
        let pinned = pin(cc);
        let rec = consume(rec, || match rx.pop() {
            Ok(s) => Poll::Item(s),
            // Abandoned is checked only when empty, and the pop after it sees every push.
            Err(_) if rx.is_abandoned() => match rx.pop() {
                Ok(s) => Poll::Item(s),
                Err(_) => Poll::Closed,
            },
            Err(_) => Poll::Empty,
        });
        (rec, pinned)
    });
    let p = *plan;
    let publisher = std::thread::spawn(move || {
        let pinned = pin(p.cores.publisher);
        let sent = publish_loop(base, &p, |s| {
            push_waiting(s, |v| tx.push(v).map_err(|rtrb::PushError::Full(v)| v))
        });
        drop(tx);
        (sent, pinned)
    });
    let (sent, ppin) = publisher.join().expect("publisher thread");
    let (rec, cpin) = consumer.join().expect("consumer thread");
    RunResult {
        implementation: Impl::Rtrb.label().into(),
        rate: plan.rate,
        sent,
        rec,
        notes: pin_notes(plan, ppin, cpin),
    }
}

/// The mongoose handler: the shared recorder, handed back on `stop`.
struct BenchProc {
    rec: Option<Recorder>,
    out: Arc<Mutex<Option<Recorder>>>,
}

impl Processor<Sample> for BenchProc {
    fn on_event(
        &mut self,
        env: &Envelope<Sample>,
        _ctx: &mut Context<'_, Sample>,
    ) -> Result<(), ProcessorError> {
        if let Some(r) = self.rec.as_mut() {
            r.on_sample(env.event());
        }
        Ok(())
    }

    fn stop(&mut self, _ctx: &mut Context<'_, Sample>) {
        *self.out.lock().expect("recorder slot") = self.rec.take();
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn sub_dropped(sub: &SubShared) -> u64 {
    (0..DROP_LABELS.len()).map(|i| sub.drops(i)).sum()
}

fn run_mongoose(plan: &Plan, latency: bool, run_id: usize) -> RunResult {
    let which = if latency {
        Impl::MongooseLat
    } else {
        Impl::Mongoose
    };
    let base = Instant::now();
    let slot: Arc<Mutex<Option<Recorder>>> = Arc::default();
    let rec = Recorder::new(base, plan.mode());
    let group = leak(format!("bench-g{run_id}"));
    let out = slot.clone();
    let spec = ServerSpec {
        name: format!("mongoose-bench-{run_id}"),
        feeds: vec![FeedSpec {
            queue_capacity: plan.capacity as u32,
            backpressure: Backpressure {
                policy: Policy::Block,
                max_wait_ms: FULL_WAIT.as_millis() as u32,
                fallback: Policy::FailFast,
            },
            ..FeedSpec::memory("bench")
        }],
        groups: vec![GroupSpec {
            name: group,
            idle: IdleStrategy::BusySpin,
            core_id: plan.cores.consumer,
            max_batch: MAX_BATCH,
            max_timers: 16,
            retry: RetryPolicy {
                max_retries: 0,
                ..Default::default()
            },
            processors: vec![ProcSpec {
                name: leak(format!("bench-p{run_id}")),
                factory: Box::new(move || {
                    Ok(Box::new(BenchProc {
                        rec: Some(rec),
                        out,
                    }) as Box<dyn Processor<Sample>>)
                }),
                feeds: vec!["bench".into()],
                critical: true,
                enabled: true,
                config: Default::default(),
            }],
        }],
        memory_sinks: vec![],
        sinks: vec![],
        quarantine_capacity: 16,
        start_timeout: Duration::from_secs(10),
        // The library always runs its health monitor thread; the longest period we can
        // afford (shutdown waits out one sleep) keeps it off the two busy cores most of
        // the time (spec §8 wants no monitor samples while measuring).
        health: mongoose::health::HealthConfig {
            check_interval: MONITOR_INTERVAL,
            ..Default::default()
        },
        ..Default::default()
    };
    let server = RunningServer::start(spec).expect("mongoose server starts");
    let shared = server.group(group).expect("bench group");
    shared
        .latency_enabled
        .store(latency, std::sync::atomic::Ordering::Relaxed);
    let sub = server
        .subscription("bench", group)
        .expect("bench subscription");
    let mut publisher = server.publisher("bench").expect("bench publisher");
    let p = *plan;
    let pub_thread = std::thread::spawn(move || {
        let pinned = pin(p.cores.publisher);
        let sent = publish_loop(base, &p, |s| match publisher.publish(s) {
            Ok(r) => r.enqueued == r.targets && r.targets > 0,
            Err(PublishError::Rejected { .. })
            | Err(PublishError::NotStarted(_))
            | Err(PublishError::Closed(_)) => false,
        });
        (sent, pinned)
    });
    let (sent, ppin) = pub_thread.join().expect("publisher thread");
    // The group drains what is queued; then shutdown stops the processor, which hands
    // back its recorder.
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while sub.depth() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let pinned_core = shared.agent.core.load(Ordering::Relaxed);
    server.shutdown(DRAIN_TIMEOUT);
    let rec = slot
        .lock()
        .expect("recorder slot")
        .take()
        .expect("processor handed back its recorder");
    let mut notes = pin_notes(plan, ppin, pinned_core >= 0);
    let sub_drops = sub_dropped(&sub);
    notes.push(format!(
        "subscription counters: enqueued {} consumed {} dropped {} block_timeouts {} blocked_ns {}{}",
        sub.enqueued.load(Ordering::Relaxed),
        sub.consumed.load(Ordering::Relaxed),
        sub_drops,
        sub.block_timeouts.load(Ordering::Relaxed),
        sub.blocked_ns.load(Ordering::Relaxed),
        if sub_drops == sent.dropped {
            ""
        } else {
            " (MISMATCH with the publisher's count)"
        }
    ));
    RunResult {
        implementation: which.label().into(),
        rate: plan.rate,
        sent,
        rec,
        notes,
    }
}
