//! Liveness and readiness (MNG-R29; library halves of MNG-T13 and T14).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mongoose::health::HealthConfig;
use mongoose::{
    Context, Envelope, FeedSpec, GroupSpec, IdleStrategy, ProcSpec, Processor, ProcessorError,
    RetryPolicy, RunningServer, ServerSpec,
};

struct Blocker {
    block: Arc<AtomicBool>,
}

impl Processor<u64> for Blocker {
    fn on_event(
        &mut self,
        _env: &Envelope<u64>,
        _ctx: &mut Context<'_, u64>,
    ) -> Result<(), ProcessorError> {
        while self.block.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }
}

fn server(name: &str, threshold: u32, block: Arc<AtomicBool>) -> RunningServer<u64> {
    RunningServer::start(ServerSpec {
        name: name.into(),
        feeds: vec![FeedSpec {
            backlog_threshold: Some(threshold),
            queue_capacity: 16,
            ..FeedSpec::memory("f")
        }],
        groups: vec![GroupSpec {
            name: Box::leak(format!("{name}-g").into_boxed_str()),
            idle: IdleStrategy::SleepingMillis { millis: 1 },
            core_id: None,
            max_batch: 64,
            max_timers: 4,
            retry: RetryPolicy::default(),
            processors: vec![ProcSpec {
                name: Box::leak(format!("{name}-p").into_boxed_str()),
                factory: Box::new(move || {
                    Ok(Box::new(Blocker { block }) as Box<dyn Processor<u64>>)
                }),
                feeds: vec!["f".into()],
                critical: true,
                enabled: true,
                config: Default::default(),
            }],
        }],
        memory_sinks: vec![],
        sinks: vec![],
        quarantine_capacity: 4,
        start_timeout: Duration::from_secs(5),
        health: HealthConfig {
            check_interval: Duration::from_millis(20),
            agent_stale: Duration::from_millis(200),
            retry_after_s: 7,
        },
        ..Default::default()
    })
    .unwrap()
}

fn wait(what: &str, f: impl Fn() -> bool) {
    let d = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < d, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

// MNG-T13: threshold 4, paused, 6 queued -> backlog:F/G with Retry-After; after the drain,
// ready again with retry_after 0 and a later since.
#[test]
fn a_backlog_over_threshold_flips_readiness_until_drained() {
    let srv = server("health-backlog", 4, Arc::new(AtomicBool::new(false)));
    wait("ready", || srv.health().ready);
    let ready_since = srv.health().since;
    srv.pause_group("health-backlog-g");
    let mut p = srv.publisher("f").unwrap();
    for i in 0..6 {
        p.publish(i).unwrap();
    }
    wait("backlog", || {
        srv.health().missing == ["backlog:f/health-backlog-g"]
    });
    let h = srv.health();
    assert!(!h.ready);
    assert_eq!(h.retry_after, 7);
    let degraded_since = h.since;
    assert!(degraded_since >= ready_since);
    srv.resume_group("health-backlog-g");
    wait("ready again", || srv.health().ready);
    let h = srv.health();
    assert_eq!(h.retry_after, 0);
    assert!(h.since > degraded_since);
}

// MNG-T14: a processor that blocks longer than agentStaleMs makes liveness fail naming its
// group; once it unblocks, the agent is fresh again.
#[test]
fn a_blocked_group_is_stale_until_it_moves_again() {
    let block = Arc::new(AtomicBool::new(true));
    let srv = server("health-stale", 8, block.clone());
    let mut p = srv.publisher("f").unwrap();
    p.publish(1).unwrap();
    wait("stale", || !srv.health().alive);
    let h = srv.health();
    assert_eq!(h.stale, ["health-stale-g"]);
    assert!(h.missing.contains(&"agent:health-stale-g".to_string()));
    block.store(false, Ordering::Release);
    wait("alive", || srv.health().alive);
}
