//! Library-level acceptance tests (spec shared/specs/mongoose.md §10): backpressure
//! policies and their invariants (MNG-T08 to T11), poison events and panics (T06, T07),
//! batching (T22), timers on the group thread (T24).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mongoose::queue::{DROP_DETACHED, SubShared};
use mongoose::{
    Backpressure, Context, Envelope, FeedSpec, GroupSpec, IdleStrategy, Policy, ProcSpec,
    Processor, ProcessorError, PublishError, RetryPolicy, RunningServer, ServerSpec,
    SubscriptionEvent,
};

static NEXT: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Records what it sees; fails or panics on chosen values.
#[derive(Default, Clone)]
struct Log {
    seen: Arc<Mutex<Vec<(u64, u64)>>>,
    subs: Arc<Mutex<Vec<SubscriptionEvent>>>,
}

struct Rec {
    log: Log,
    poison: Vec<u64>,
    panic_on: Vec<u64>,
}

impl Processor<u64> for Rec {
    fn on_event(
        &mut self,
        env: &Envelope<u64>,
        _ctx: &mut Context<'_, u64>,
    ) -> Result<(), ProcessorError> {
        let v = *env.event();
        self.log.seen.lock().unwrap().push((env.seq(), v));
        if self.panic_on.contains(&v) {
            panic!("boom on {v}");
        }
        if self.poison.contains(&v) {
            return Err(ProcessorError::new(format!("poison {v}")));
        }
        Ok(())
    }
    fn on_subscription(&mut self, _feed: &str, e: SubscriptionEvent) {
        self.log.subs.lock().unwrap().push(e);
    }
}

fn server(
    feed: FeedSpec,
    max_batch: u32,
    retry: RetryPolicy,
    log: &Log,
    poison: Vec<u64>,
    panic_on: Vec<u64>,
) -> (RunningServer<u64>, String) {
    let group: &'static str = Box::leak(unique("grp").into_boxed_str());
    let pname: &'static str = Box::leak(unique("proc").into_boxed_str());
    let l = log.clone();
    let feed_name = feed.name.clone();
    let spec = ServerSpec {
        name: unique("srv"),
        feeds: vec![feed],
        groups: vec![GroupSpec {
            name: group,
            idle: IdleStrategy::SleepingMillis { millis: 1 },
            core_id: None,
            max_batch,
            max_timers: 64,
            retry,
            processors: vec![ProcSpec {
                name: pname,
                factory: Box::new(move || {
                    Ok(Box::new(Rec {
                        log: l,
                        poison,
                        panic_on,
                    }) as Box<dyn Processor<u64>>)
                }),
                feeds: vec![feed_name],
                critical: true,
                enabled: true,
                config: Default::default(),
            }],
        }],
        memory_sinks: vec![],
        sinks: vec![],
        quarantine_capacity: 100,
        start_timeout: Duration::from_secs(5),
        health: Default::default(),
        ..Default::default()
    };
    (RunningServer::start(spec).unwrap(), group.to_string())
}

fn feed(policy: Policy, fallback: Policy, cap: u32) -> FeedSpec {
    FeedSpec {
        queue_capacity: cap,
        backpressure: Backpressure {
            policy,
            max_wait_ms: 1,
            fallback,
        },
        ..FeedSpec::memory("f")
    }
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// MNG-R24, checked on the counters.
fn invariants(s: &SubShared, offered: u64) {
    let d = |i: usize| s.drops(i);
    let enq = s.enqueued.load(Ordering::Acquire);
    assert_eq!(
        offered,
        enq + d(Policy::DropNewest as usize)
            + d(Policy::Disconnect as usize)
            + d(Policy::FailFast as usize),
        "offered"
    );
    assert_eq!(
        enq,
        s.consumed.load(Ordering::Acquire)
            + s.depth()
            + d(Policy::DropOldest as usize)
            + d(DROP_DETACHED)
            + s.shutdown_undrained.load(Ordering::Acquire),
        "enqueued"
    );
}

// MNG-T08: block -> drop-newest, capacity 8, maxWaitMs 1, paused, 100 publishes.
#[test]
fn block_falls_back_to_drop_newest_and_everything_reconciles() {
    let log = Log::default();
    let (srv, group) = server(
        feed(Policy::Block, Policy::DropNewest, 8),
        64,
        RetryPolicy::default(),
        &log,
        vec![],
        vec![],
    );
    srv.pause_group(&group);
    let mut p = srv.publisher("f").unwrap();
    let (mut enq, mut dropped) = (0, 0);
    for i in 0..100u64 {
        let r = p.publish(i).unwrap();
        enq += r.enqueued;
        dropped += r.dropped;
    }
    assert_eq!((enq, dropped), (8, 92));
    let s = srv.subscription("f", &group).unwrap();
    assert_eq!(s.enqueued.load(Ordering::Relaxed), 8);
    assert_eq!(s.drops(Policy::DropNewest as usize), 92);
    assert_eq!(s.block_timeouts.load(Ordering::Relaxed), 92);
    srv.resume_group(&group);
    wait_until("8 consumed", || s.consumed.load(Ordering::Acquire) == 8);
    invariants(&s, 100);
    let seen: Vec<u64> = log.seen.lock().unwrap().iter().map(|x| x.1).collect();
    assert_eq!(seen, (0..8).collect::<Vec<_>>());
}

// MNG-T09: drop-oldest, capacity 8, paused, 20 publishes: seq 13..20 arrive.
#[test]
fn drop_oldest_keeps_the_newest_eight() {
    let log = Log::default();
    let (srv, group) = server(
        feed(Policy::DropOldest, Policy::DropNewest, 8),
        64,
        RetryPolicy::default(),
        &log,
        vec![],
        vec![],
    );
    srv.pause_group(&group);
    let mut p = srv.publisher("f").unwrap();
    let mut evicted = 0;
    for i in 1..=20u64 {
        evicted += p.publish(i).unwrap().evicted;
    }
    assert_eq!(evicted, 12);
    let s = srv.subscription("f", &group).unwrap();
    assert_eq!(s.kind, "mpsc", "drop-oldest forces an MPSC ring");
    srv.resume_group(&group);
    wait_until("8 consumed", || s.consumed.load(Ordering::Acquire) == 8);
    let seqs: Vec<u64> = log.seen.lock().unwrap().iter().map(|x| x.0).collect();
    assert_eq!(seqs, (13..=20).collect::<Vec<_>>());
    assert_eq!(s.drops(Policy::DropOldest as usize), 12);
    invariants(&s, 20);
}

// MNG-T10 (library part): disconnect: 12 dropped, on_subscription(Disconnected) once after
// the drain, reconnect restores delivery, a second reconnect fails.
#[test]
fn disconnect_drops_until_reconnected() {
    let log = Log::default();
    let (srv, group) = server(
        feed(Policy::Disconnect, Policy::DropNewest, 8),
        64,
        RetryPolicy::default(),
        &log,
        vec![],
        vec![],
    );
    srv.pause_group(&group);
    let mut p = srv.publisher("f").unwrap();
    let mut dropped = 0;
    for i in 1..=20u64 {
        dropped += p.publish(i).unwrap().dropped;
    }
    assert_eq!(dropped, 12);
    let s = srv.subscription("f", &group).unwrap();
    assert_eq!(
        s.state.load(Ordering::Acquire),
        mongoose::queue::DISCONNECTED
    );
    srv.resume_group(&group);
    wait_until("disconnect announced", || {
        log.subs.lock().unwrap().len() == 1
    });
    assert_eq!(log.subs.lock().unwrap()[0], SubscriptionEvent::Disconnected);
    assert_eq!(p.publish(99).unwrap().dropped, 1, "still disconnected");
    srv.reconnect("f", &group, Duration::from_secs(2)).unwrap();
    assert_eq!(p.publish(100).unwrap().enqueued, 1);
    wait_until("delivery restored", || {
        log.seen.lock().unwrap().iter().any(|x| x.1 == 100)
    });
    assert!(
        srv.reconnect("f", &group, Duration::from_secs(2)).is_err(),
        "second reconnect"
    );
    assert_eq!(
        log.subs.lock().unwrap().as_slice(),
        [
            SubscriptionEvent::Disconnected,
            SubscriptionEvent::Reconnected
        ]
    );
    wait_until("drained", || s.depth() == 0);
    invariants(&s, 22);
}

// MNG-T11: fail-fast with one subscriber and a full queue returns the same event.
#[test]
fn fail_fast_returns_the_event() {
    let log = Log::default();
    let (srv, group) = server(
        feed(Policy::FailFast, Policy::DropNewest, 2),
        64,
        RetryPolicy::default(),
        &log,
        vec![],
        vec![],
    );
    srv.pause_group(&group);
    let mut p = srv.publisher("f").unwrap();
    p.publish(1).unwrap();
    p.publish(2).unwrap();
    match p.publish(777) {
        Err(PublishError::Rejected { event, report }) => {
            assert_eq!(event, 777);
            assert_eq!(
                (report.targets, report.rejected, report.enqueued),
                (1, 1, 0)
            );
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(
        srv.subscription("f", &group)
            .unwrap()
            .drops(Policy::FailFast as usize),
        1
    );
}

// MNG-T06: 100 events, 3 poison, maxRetries 2: 97 handled, 3 records with attempts 3,
// retries 6, and seq k+1 is handled before any retry of poison seq k.
#[test]
fn poison_events_are_retried_then_quarantined_while_others_flow() {
    let log = Log::default();
    let retry = RetryPolicy {
        max_retries: 2,
        initial_backoff_ms: 5,
        multiplier: 2.0,
        max_backoff_ms: 100,
        max_pending: 16,
    };
    let (srv, group) = server(
        FeedSpec::memory("f"),
        64,
        retry,
        &log,
        vec![10, 50, 90],
        vec![],
    );
    let mut p = srv.publisher("f").unwrap();
    for i in 1..=100u64 {
        p.publish(i).unwrap();
    }
    wait_until("3 quarantined", || {
        srv.quarantine().total(mongoose::quarantine::Kind::Error) == 3
    });
    let recs = srv.quarantine().last(10);
    assert_eq!(recs.len(), 3);
    for (r, v) in recs.iter().zip([10u64, 50, 90]) {
        assert_eq!(r.attempts, Some(3));
        assert_eq!(r.seq, Some(v), "seq equals the value here");
        assert_eq!(r.feed.as_deref(), Some("f"));
        assert_eq!(r.error.as_deref(), Some(format!("poison {v}").as_str()));
        assert_eq!(r.payload, serde_json::json!(v.to_string()));
        assert_eq!(r.group.as_deref(), Some(group.as_str()));
        assert!(r.processor.is_some());
    }
    let g = srv.group(&group).unwrap();
    let stats = g.procs.lock()[0].clone();
    assert_eq!(stats.retries.load(Ordering::Relaxed), 6);
    assert_eq!(stats.quarantined.load(Ordering::Relaxed), 3);
    let seen = log.seen.lock().unwrap().clone();
    let handled_ok = seen
        .iter()
        .filter(|(_, v)| ![10, 50, 90].contains(v))
        .count();
    assert_eq!(handled_ok, 97);
    let first_retry_of_10 = seen
        .iter()
        .enumerate()
        .filter(|(_, x)| x.1 == 10)
        .nth(1)
        .unwrap()
        .0;
    let pos_11 = seen.iter().position(|x| x.1 == 11).unwrap();
    assert!(
        pos_11 < first_retry_of_10,
        "later events overtake the retry"
    );
}

// MNG-T07: an event that panics on every attempt: later events still flow, 3 panics, a
// kind=panic record carrying the message.
#[test]
fn a_panicking_handler_does_not_kill_its_group() {
    let log = Log::default();
    let (srv, group) = server(
        FeedSpec::memory("f"),
        64,
        RetryPolicy::default(),
        &log,
        vec![],
        vec![5],
    );
    let mut p = srv.publisher("f").unwrap();
    for i in 1..=10u64 {
        p.publish(i).unwrap();
    }
    wait_until("quarantined", || {
        srv.quarantine().total(mongoose::quarantine::Kind::Panic) == 1
    });
    let g = srv.group(&group).unwrap();
    assert_eq!(g.procs.lock()[0].panics.load(Ordering::Relaxed), 3);
    let r = &srv.quarantine().last(1)[0];
    assert!(r.error.as_deref().unwrap().contains("boom on 5"));
    assert!(log.seen.lock().unwrap().iter().any(|x| x.1 == 10));
}

// MNG-T22: maxBatch 4, 10 queued while paused: batches 4, 4, 2.
#[test]
fn batches_are_capped_and_counted_cumulatively() {
    let log = Log::default();
    let (srv, group) = server(
        FeedSpec::memory("f"),
        4,
        RetryPolicy::default(),
        &log,
        vec![],
        vec![],
    );
    srv.pause_group(&group);
    let mut p = srv.publisher("f").unwrap();
    for i in 0..10u64 {
        p.publish(i).unwrap();
    }
    srv.resume_group(&group);
    let s = srv.subscription("f", &group).unwrap();
    wait_until("10 consumed", || s.consumed.load(Ordering::Acquire) == 10);
    let g = srv.group(&group).unwrap();
    let b: Vec<u64> = g
        .batches
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    let cumulative = |le: usize| b[..=le].iter().sum::<u64>();
    assert_eq!(cumulative(1), 1, "le=2");
    assert_eq!(cumulative(2), 3, "le=4");
}

struct TimerProc {
    threads: Arc<Mutex<Vec<(&'static str, std::thread::ThreadId)>>>,
}

impl Processor<u64> for TimerProc {
    fn start(&mut self, ctx: &mut Context<'_, u64>) -> Result<(), String> {
        ctx.schedule_after(Duration::from_millis(20), 7)
            .map_err(|e| e.to_string())?;
        Ok(())
    }
    fn on_event(
        &mut self,
        _env: &Envelope<u64>,
        _ctx: &mut Context<'_, u64>,
    ) -> Result<(), ProcessorError> {
        self.threads
            .lock()
            .unwrap()
            .push(("event", std::thread::current().id()));
        Ok(())
    }
    fn on_timer(&mut self, token: u64, _ctx: &mut Context<'_, u64>) -> Result<(), ProcessorError> {
        assert_eq!(token, 7);
        self.threads
            .lock()
            .unwrap()
            .push(("timer", std::thread::current().id()));
        Ok(())
    }
}

// MNG-T24 (first half): a timer scheduled in start fires on the thread that runs on_event.
#[test]
fn timers_fire_on_the_group_thread() {
    let threads = Arc::new(Mutex::new(Vec::new()));
    let t = threads.clone();
    let spec = ServerSpec {
        name: unique("srv"),
        feeds: vec![FeedSpec::memory("f")],
        groups: vec![GroupSpec {
            name: "timers",
            idle: IdleStrategy::SleepingMillis { millis: 1 },
            core_id: None,
            max_batch: 64,
            max_timers: 4,
            retry: RetryPolicy::default(),
            processors: vec![ProcSpec {
                name: "tp",
                factory: Box::new(move || {
                    Ok(Box::new(TimerProc { threads: t }) as Box<dyn Processor<u64>>)
                }),
                feeds: vec!["f".into()],
                critical: true,
                enabled: true,
                config: Default::default(),
            }],
        }],
        memory_sinks: vec![],
        sinks: vec![],
        quarantine_capacity: 10,
        start_timeout: Duration::from_secs(5),
        health: Default::default(),
        ..Default::default()
    };
    let srv = RunningServer::start(spec).unwrap();
    srv.publisher("f").unwrap().publish(1).unwrap();
    wait_until("timer and event", || threads.lock().unwrap().len() == 2);
    let v = threads.lock().unwrap().clone();
    assert_eq!(v[0].1, v[1].1, "{v:?}");
    assert_ne!(v[0].1, std::thread::current().id());
}

struct FailInit;

impl Processor<u64> for FailInit {
    fn init(&mut self, _ctx: &mut Context<'_, u64>) -> Result<(), String> {
        Err("cannot init".into())
    }
    fn on_event(
        &mut self,
        _env: &Envelope<u64>,
        _ctx: &mut Context<'_, u64>,
    ) -> Result<(), ProcessorError> {
        Ok(())
    }
}

// MNG-T04 (library part) and T27: a critical processor whose init fails aborts startup,
// naming it; duplicate server names fail.
#[test]
fn failing_init_aborts_startup_and_names_are_unique() {
    let mk = |name: &str, fail: bool| ServerSpec::<u64> {
        name: name.into(),
        feeds: vec![FeedSpec::memory("f")],
        groups: vec![GroupSpec {
            name: "g",
            idle: IdleStrategy::SleepingMillis { millis: 1 },
            core_id: None,
            max_batch: 8,
            max_timers: 4,
            retry: RetryPolicy::default(),
            processors: vec![ProcSpec {
                name: "bad",
                factory: Box::new(move || {
                    if fail {
                        Ok(Box::new(FailInit) as Box<dyn Processor<u64>>)
                    } else {
                        Ok(Box::new(Rec {
                            log: Log::default(),
                            poison: vec![],
                            panic_on: vec![],
                        }) as Box<dyn Processor<u64>>)
                    }
                }),
                feeds: vec!["f".into()],
                critical: true,
                enabled: true,
                config: Default::default(),
            }],
        }],
        memory_sinks: vec![],
        sinks: vec![],
        quarantine_capacity: 10,
        start_timeout: Duration::from_secs(5),
        health: Default::default(),
        ..Default::default()
    };
    let err = RunningServer::start(mk(&unique("srv"), true))
        .err()
        .expect("must fail");
    assert_eq!(err.component, "processor 'bad'");
    assert!(err.error.contains("cannot init"));
    let name = unique("srv");
    let _a = RunningServer::start(mk(&name, false)).unwrap();
    assert!(
        RunningServer::start(mk(&name, false)).is_err(),
        "duplicate name"
    );
}

// MNG-T17 (library part): shutdown drains what is queued; leftovers past the deadline are
// quarantined as shutdown_undrained and counted, so written + undrained = accepted.
#[test]
fn shutdown_drains_then_counts_leftovers() {
    let log = Log::default();
    let (srv, group) = server(
        FeedSpec::memory("f"),
        64,
        RetryPolicy::default(),
        &log,
        vec![],
        vec![],
    );
    srv.pause_group(&group);
    let mut p = srv.publisher("f").unwrap();
    for i in 0..50u64 {
        p.publish(i).unwrap();
    }
    srv.shutdown(Duration::from_secs(5));
    let s = srv.subscription("f", &group).unwrap();
    assert_eq!(
        s.consumed.load(Ordering::Acquire) + s.shutdown_undrained.load(Ordering::Acquire),
        50
    );
    assert_eq!(
        log.seen.lock().unwrap().len(),
        50,
        "a paused group still drains at shutdown"
    );
    assert!(matches!(p.publish(1), Err(PublishError::Closed(1))));
    invariants(&s, 50);
}
