//! MNG-T12 (spec shared/specs/mongoose.md §10): a property test over random backpressure
//! policies, capacities, producer kinds, pauses, processor stops and reconnects. After
//! draining, the MNG-R24 invariants hold for every subscription, and the publish reports
//! (MNG-R23) agree with the per-subscription counters.
//!
//! Bookkeeping. A `PublishReport` only carries totals over the subscriptions it reached,
//! so `offered` is tracked per subscription from the definitions of MNG-R23 step 3 rather
//! than read off the reports: a publish walks every subscription of the feed, skips the
//! detached ones (they are not targets) and offers the event to every other one, whether
//! it is connected (push, then the policy on a full queue) or disconnected (counted as
//! `dropped{disconnect}`). So `offered(S)` = the number of publish calls made while S was
//! not detached. The test is the only publisher and runs its script sequentially: a
//! subscription becomes detached only inside `stop_processor` (which returns after the
//! group thread has applied it) and never leaves that state, so the test's own model of
//! "detached" is exact at every publish, and it is cross-checked against
//! `SubShared::state` before each publish and against `report.targets` after it.
//!
//! `depth()` is computed from the counters (`enqueued − consumed − evicted − detached −
//! undrained`, saturating), which makes the second invariant hold by construction unless
//! the counters over-count removals. To give it teeth, the test also checks, independently
//! of `depth()`: `consumed` equals the number of distinct events the group's processors
//! actually received; and after `shutdown` (which pops every queue to empty and counts the
//! leftovers as `shutdown_undrained`) nothing was left over once `depth()` said 0, and
//! the invariants still hold with a real depth of 0. A quarter of the cases skip the
//! drain and shut down with a zero deadline instead, so the `shutdown_undrained` term is
//! exercised too (checked after shutdown only).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mongoose::group::StopError;
use mongoose::queue::{DETACHED, DISCONNECTED, DROP_DETACHED, DROP_LABELS, SubShared};
use mongoose::{
    Backpressure, Context, Envelope, FeedSpec, GroupSpec, IdleStrategy, Policy, ProcSpec,
    Processor, ProcessorError, PublishError, PublishReport, RetryPolicy, RunningServer, ServerSpec,
};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A process-unique, leaked name (group and processor names are `&'static str`).
fn unique(prefix: &str) -> &'static str {
    Box::leak(format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed)).into_boxed_str())
}

const FEED: &str = "f";
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Records the seqs it receives. Never fails, so no retries reorder or repeat events.
struct Seen(Arc<Mutex<Vec<u64>>>);

impl Processor<u64> for Seen {
    fn on_event(
        &mut self,
        env: &Envelope<u64>,
        _ctx: &mut Context<'_, u64>,
    ) -> Result<(), ProcessorError> {
        self.0.lock().unwrap().push(env.seq());
        Ok(())
    }
}

/// One step of the script. Group and processor indices are reduced modulo the actual
/// counts, so every generated index is valid and shrinking stays simple.
#[derive(Debug, Clone)]
enum Op {
    /// Publish this many events back to back.
    Publish(u32),
    /// Stop draining a group.
    Pause(usize),
    /// Let a group drain again.
    Resume(usize),
    /// `stop_processor` on (group, processor).
    Stop(usize, usize),
    /// `reconnect(feed, group)`: Ok exactly when the subscription is disconnected.
    Reconnect(usize),
    /// Sleep a few ms, so groups drain part of their queues between bursts (no timing is
    /// asserted; this only varies how full the queues are).
    Wait(u64),
}

#[derive(Debug, Clone)]
struct Case {
    multi: bool,
    bp: Backpressure,
    capacity: u32,
    max_batch: u32,
    /// Processors per group (1 to 3 groups, 1 or 2 processors each).
    procs: Vec<usize>,
    ops: Vec<Op>,
    /// Skip the drain: shut down at once with a zero deadline, so what is still queued
    /// ends as `shutdown_undrained`.
    early_shutdown: bool,
}

fn non_block_policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::DropNewest),
        Just(Policy::DropOldest),
        Just(Policy::Disconnect),
        Just(Policy::FailFast),
    ]
}

fn backpressure() -> impl Strategy<Value = Backpressure> {
    let plain = |policy| Backpressure {
        policy,
        max_wait_ms: 10,
        fallback: Policy::DropNewest,
    };
    prop_oneof![
        (0u32..=3, non_block_policy()).prop_map(|(max_wait_ms, fallback)| Backpressure {
            policy: Policy::Block,
            max_wait_ms,
            fallback,
        }),
        Just(plain(Policy::DropNewest)),
        Just(plain(Policy::DropOldest)),
        Just(plain(Policy::Disconnect)),
        Just(plain(Policy::FailFast)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u32..=200).prop_map(Op::Publish),
        2 => (0usize..3).prop_map(Op::Pause),
        1 => (0usize..3).prop_map(Op::Resume),
        2 => (0usize..3, 0usize..2).prop_map(|(g, p)| Op::Stop(g, p)),
        1 => (0usize..3).prop_map(Op::Reconnect),
        1 => (1u64..=5).prop_map(Op::Wait),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        backpressure(),
        1u32..=6,
        prop_oneof![Just(1u32), Just(4), Just(64)],
        proptest::collection::vec(1usize..=2, 1..=3),
        proptest::collection::vec(op(), 1..=10),
        prop::bool::weighted(0.25),
    )
        .prop_map(
            |(multi, bp, log2, max_batch, procs, ops, early_shutdown)| Case {
                multi,
                bp,
                capacity: 1 << log2,
                max_batch,
                procs,
                ops,
                early_shutdown,
            },
        )
}

/// Sums of the publish reports, widened.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Totals {
    targets: u64,
    enqueued: u64,
    dropped: u64,
    evicted: u64,
    rejected: u64,
}

impl Totals {
    fn add(&mut self, r: &PublishReport) {
        self.targets += u64::from(r.targets);
        self.enqueued += u64::from(r.enqueued);
        self.dropped += u64::from(r.dropped);
        self.evicted += u64::from(r.evicted);
        self.rejected += u64::from(r.rejected);
    }
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Acquire)
}

/// MNG-R24 for one subscription, with `depth` supplied by the caller.
fn check_r24(s: &SubShared, offered: u64, depth: u64, when: &str) -> Result<(), TestCaseError> {
    let d = |i: usize| s.drops(i);
    let enq = load(&s.enqueued);
    let consumed = load(&s.consumed);
    let undrained = load(&s.shutdown_undrained);
    let counters = format!(
        "{when}: sub {}/{} ({}, cap {}): offered {offered}, enqueued {enq}, consumed \
         {consumed}, depth {depth}, evicted {}, undrained {undrained}, drops {:?}",
        s.feed,
        s.group,
        s.kind,
        s.capacity,
        load(&s.evicted),
        DROP_LABELS
            .iter()
            .enumerate()
            .map(|(i, l)| (*l, d(i)))
            .collect::<Vec<_>>(),
    );
    prop_assert_eq!(
        offered,
        enq + d(Policy::DropNewest as usize)
            + d(Policy::Disconnect as usize)
            + d(Policy::FailFast as usize),
        "offered = enqueued + dropped{{drop-newest,disconnect,fail-fast}}; {}",
        counters
    );
    prop_assert_eq!(
        enq,
        consumed + depth + d(Policy::DropOldest as usize) + d(DROP_DETACHED) + undrained,
        "enqueued = consumed + depth + dropped{{drop-oldest,detached}} + \
         shutdown_undrained; {}",
        counters
    );
    Ok(())
}

/// Resumes every group, waits (bounded) until every queue is empty, then checks MNG-R24.
fn drain_then_check(
    srv: &RunningServer<u64>,
    groups: &[&'static str],
    subs: &[Arc<SubShared>],
    offered: &[u64],
) -> Result<(), TestCaseError> {
    // Drain: resume everything, then wait (bounded) until every queue is empty. Detached
    // subscriptions drain too: the group pops their events as dropped{detached}.
    for g in groups {
        srv.resume_group(g);
    }
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while subs.iter().any(|s| s.depth() != 0) {
        if Instant::now() >= deadline {
            let depths: Vec<_> = subs
                .iter()
                .map(|s| (s.group, s.state.load(Ordering::Acquire), s.depth()))
                .collect();
            return Err(TestCaseError::fail(format!(
                "not drained after {DRAIN_TIMEOUT:?}: (group, state, depth) {depths:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }

    // MNG-R24 after draining (MNG-T12).
    for (g, s) in subs.iter().enumerate() {
        check_r24(s, offered[g], s.depth(), "after draining")?;
    }
    Ok(())
}

fn run_case(c: Case) -> Result<(), TestCaseError> {
    let n = c.procs.len();
    let groups: Vec<&'static str> = (0..n).map(|_| unique("grp")).collect();
    // seen[g][j]: the seqs processor j of group g received.
    let seen: Vec<Vec<Arc<Mutex<Vec<u64>>>>> = c
        .procs
        .iter()
        .map(|&k| (0..k).map(|_| Arc::default()).collect())
        .collect();
    let names: Vec<Vec<&'static str>> = c
        .procs
        .iter()
        .map(|&k| (0..k).map(|_| unique("proc")).collect())
        .collect();
    let spec = ServerSpec {
        name: unique("inv-srv").to_string(),
        feeds: vec![FeedSpec {
            multi: c.multi,
            queue_capacity: c.capacity,
            backpressure: c.bp,
            ..FeedSpec::memory(FEED)
        }],
        groups: (0..n)
            .map(|g| GroupSpec {
                name: groups[g],
                idle: IdleStrategy::SleepingMillis { millis: 1 },
                core_id: None,
                max_batch: c.max_batch,
                max_timers: 4,
                retry: RetryPolicy::default(),
                processors: (0..c.procs[g])
                    .map(|j| {
                        let log = seen[g][j].clone();
                        ProcSpec {
                            name: names[g][j],
                            factory: Box::new(move || {
                                Ok(Box::new(Seen(log)) as Box<dyn Processor<u64>>)
                            }),
                            feeds: vec![FEED.into()],
                            critical: true,
                            enabled: true,
                            config: Default::default(),
                        }
                    })
                    .collect(),
            })
            .collect(),
        quarantine_capacity: 16,
        start_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let srv = RunningServer::start(spec).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    let subs: Vec<Arc<SubShared>> = groups
        .iter()
        .map(|g| {
            srv.subscription(FEED, g)
                .expect("one subscription per group")
        })
        .collect();
    if c.bp.needs_eviction() {
        for s in &subs {
            prop_assert_eq!(s.kind, "mpsc", "drop-oldest forces an MPSC ring");
        }
    }
    let mut publisher = srv.publisher(FEED).expect("memory feed publisher");

    let mut offered = vec![0u64; n];
    let mut detached = vec![false; n];
    let mut running: Vec<Vec<bool>> = c.procs.iter().map(|&k| vec![true; k]).collect();
    let mut totals = Totals::default();
    let mut publishes = 0u64;
    let mut unrouted = 0u64;
    let mut value = 0u64;

    for op in &c.ops {
        match *op {
            Op::Publish(k) => {
                for _ in 0..k {
                    value += 1;
                    for (g, s) in subs.iter().enumerate() {
                        prop_assert_eq!(
                            s.state.load(Ordering::Acquire) == DETACHED,
                            detached[g],
                            "model and state disagree on detached for group {}",
                            g
                        );
                    }
                    // MNG-R23 step 3: every subscription that is not detached is a target.
                    let expected_targets = detached.iter().filter(|d| !**d).count() as u32;
                    let report = match publisher.publish(value) {
                        Ok(r) => {
                            prop_assert!(
                                r.targets == 0 || !(r.enqueued == 0 && r.rejected > 0),
                                "Ok with every target rejecting: {:?}",
                                r
                            );
                            r
                        }
                        Err(PublishError::Rejected { event, report }) => {
                            prop_assert_eq!(event, value, "the rejected event comes back");
                            prop_assert!(
                                report.enqueued == 0 && report.rejected > 0,
                                "Rejected although something was enqueued: {:?}",
                                report
                            );
                            report
                        }
                        Err(e) => return Err(TestCaseError::fail(format!("publish: {e:?}"))),
                    };
                    publishes += 1;
                    prop_assert_eq!(report.targets, expected_targets, "targets: {:?}", report);
                    prop_assert_eq!(
                        report.enqueued + report.dropped + report.rejected,
                        report.targets,
                        "every target is enqueued, dropped or rejected: {:?}",
                        report
                    );
                    prop_assert!(report.evicted <= report.enqueued, "{:?}", report);
                    if report.targets == 0 {
                        unrouted += 1;
                    }
                    for (g, o) in offered.iter_mut().enumerate() {
                        if !detached[g] {
                            *o += 1;
                        }
                    }
                    totals.add(&report);
                }
            }
            Op::Pause(g) => srv.pause_group(groups[g % n]),
            Op::Resume(g) => srv.resume_group(groups[g % n]),
            Op::Stop(g, j) => {
                let g = g % n;
                let j = j % c.procs[g];
                let out = srv.stop_processor(names[g][j], CONTROL_TIMEOUT);
                if running[g][j] {
                    prop_assert_eq!(out, Ok(()), "stop {}", names[g][j]);
                    running[g][j] = false;
                    // Every processor subscribes to the feed: the last one stopping
                    // detaches (feed, group) (MNG-R24).
                    detached[g] = running[g].iter().all(|r| !*r);
                } else {
                    prop_assert_eq!(out, Err(StopError::AlreadyStopped), "stop again");
                }
                prop_assert_eq!(
                    subs[g].state.load(Ordering::Acquire) == DETACHED,
                    detached[g],
                    "detached after stop"
                );
            }
            Op::Reconnect(g) => {
                let g = g % n;
                // Only the test publishes, and not concurrently, so the state is stable.
                let was = subs[g].state.load(Ordering::Acquire);
                let out = srv.reconnect(FEED, groups[g], CONTROL_TIMEOUT);
                prop_assert_eq!(
                    out.is_ok(),
                    was == DISCONNECTED,
                    "reconnect of a subscription in state {}",
                    was
                );
                if was == DISCONNECTED {
                    prop_assert_eq!(
                        subs[g].state.load(Ordering::Acquire),
                        mongoose::queue::CONNECTED
                    );
                }
            }
            Op::Wait(ms) => std::thread::sleep(Duration::from_millis(ms)),
        }
    }

    if !c.early_shutdown {
        drain_then_check(&srv, &groups, &subs, &offered)?;
    }

    // Shutdown pops every queue to empty (leftovers past the deadline are counted as
    // shutdown_undrained), so afterwards the real depth is 0 and the invariants must hold
    // with it. After a full drain, depth() was 0, so nothing may be left over.
    let consumed_before: Vec<u64> = subs.iter().map(|s| load(&s.consumed)).collect();
    srv.shutdown(if c.early_shutdown {
        Duration::ZERO
    } else {
        Duration::from_secs(5)
    });
    for (g, s) in subs.iter().enumerate() {
        if !c.early_shutdown {
            prop_assert_eq!(load(&s.shutdown_undrained), 0, "left over after draining");
            prop_assert_eq!(load(&s.consumed), consumed_before[g]);
        }
        prop_assert_eq!(s.depth(), 0, "depth after shutdown");
        check_r24(s, offered[g], 0, "after shutdown")?;
    }

    // The reports agree with the counters, summed over subscriptions.
    let sum = |f: &dyn Fn(&SubShared) -> u64| subs.iter().map(|s| f(s)).sum::<u64>();
    let counters = Totals {
        targets: offered.iter().sum(),
        enqueued: sum(&|s| load(&s.enqueued)),
        dropped: sum(&|s| {
            s.drops(Policy::DropNewest as usize) + s.drops(Policy::Disconnect as usize)
        }),
        evicted: sum(&|s| load(&s.evicted)),
        rejected: sum(&|s| s.drops(Policy::FailFast as usize)),
    };
    prop_assert_eq!(totals, counters, "report sums vs counters");
    prop_assert_eq!(
        sum(&|s| s.drops(Policy::DropOldest as usize)),
        counters.evicted,
        "evicted = dropped{{drop-oldest}}"
    );
    let feed = &srv.feeds()[0];
    prop_assert_eq!(load(&feed.published), publishes, "feed published");
    prop_assert_eq!(load(&feed.unrouted), unrouted, "feed unrouted");

    // Only the policy that applies on a full queue (the fallback, for block) drops.
    let on_full = if c.bp.policy == Policy::Block {
        c.bp.fallback
    } else {
        c.bp.policy
    };
    for s in &subs {
        prop_assert_eq!(
            s.drops(Policy::Block as usize),
            0,
            "nothing counts as block"
        );
        for p in [
            Policy::DropNewest,
            Policy::DropOldest,
            Policy::Disconnect,
            Policy::FailFast,
        ] {
            if p != on_full {
                prop_assert_eq!(s.drops(p as usize), 0, "drops under {}", p.name());
            }
        }
        if c.bp.policy != Policy::Block {
            prop_assert_eq!(load(&s.block_timeouts), 0);
        }
    }

    // Independently of depth(): consumed is what the processors actually received.
    for g in 0..n {
        let logs: Vec<Vec<u64>> = seen[g].iter().map(|l| l.lock().unwrap().clone()).collect();
        let mut union = BTreeSet::new();
        for l in &logs {
            let distinct: BTreeSet<u64> = l.iter().copied().collect();
            prop_assert_eq!(distinct.len(), l.len(), "a processor saw a seq twice");
            prop_assert!(l.windows(2).all(|w| w[0] < w[1]), "out of order");
            union.extend(distinct);
        }
        let consumed = load(&subs[g].consumed);
        prop_assert_eq!(
            union.len() as u64,
            consumed,
            "group {} received vs consumed",
            g
        );
        prop_assert!(union.iter().all(|q| (1..=publishes).contains(q)));
        // A processor that was never stopped received everything its group consumed.
        for (j, l) in logs.iter().enumerate() {
            if running[g][j] {
                prop_assert_eq!(l.len() as u64, consumed, "processor {}/{}", g, j);
            }
        }
    }

    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        // No proptest-regressions/ file in the crate; a failure prints its minimal case.
        failure_persistence: None,
        max_shrink_iters: 512,
        ..ProptestConfig::default()
    })]

    // MNG-T12: random policies, capacities, pauses, processor stops and reconnects; the
    // MNG-R24 invariants hold for every subscription after draining.
    #[test]
    fn r24_invariants_hold_after_draining(c in case()) {
        run_case(c)?;
    }
}
