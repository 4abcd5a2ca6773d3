//! Agent-hosted sinks and their breaker (MNG-R26; the library half of MNG-T15).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mongoose::sink::{SinkItem, SinkSendError};
use mongoose::sink_agent::{Sink, SinkEnv, SinkError, SinkSpec};
use mongoose::{
    Context, Envelope, FeedSpec, GroupSpec, IdleStrategy, ProcSpec, Processor, ProcessorError,
    RetryPolicy, RunningServer, ServerSpec,
};
use ron_kernel::{BreakerConfig, BreakerState};

/// Answers like a stub HTTP target: `plan` codes in order (500 retryable, 400 permanent,
/// 200 ok), then 200 forever.
struct Stub {
    plan: Vec<u16>,
    calls: Arc<AtomicU32>,
    written: Arc<Mutex<Vec<u64>>>,
}

impl Sink<u64> for Stub {
    fn write(&mut self, item: &SinkItem<u64>) -> Result<(), SinkError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) as usize;
        match self.plan.get(n).copied().unwrap_or(200) {
            500 => Err(SinkError::Retryable("HTTP 500".into())),
            400 => Err(SinkError::Permanent("HTTP 400".into())),
            _ => {
                self.written
                    .lock()
                    .unwrap()
                    .push(*item.value().expect("an event"));
                Ok(())
            }
        }
    }
}

struct Forward {
    sink: Option<mongoose::SinkHandle<u64>>,
    refused: Arc<Mutex<Vec<&'static str>>>,
}

impl Processor<u64> for Forward {
    fn init(&mut self, ctx: &mut Context<'_, u64>) -> Result<(), String> {
        self.sink = Some(ctx.sink("out").map_err(|e| e.to_string())?);
        Ok(())
    }
    fn on_event(
        &mut self,
        env: &Envelope<u64>,
        ctx: &mut Context<'_, u64>,
    ) -> Result<(), ProcessorError> {
        match ctx.forward(self.sink.as_ref().unwrap(), *env.event()) {
            Ok(()) => Ok(()),
            Err(SinkSendError::CircuitOpen(_)) => {
                self.refused.lock().unwrap().push("circuit_open");
                Err(ProcessorError::new("circuit open"))
            }
            Err(e) => Err(ProcessorError::new(format!("{e:?}"))),
        }
    }
}

fn wait(what: &str, f: impl Fn() -> bool) {
    let d = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < d, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn the_breaker_opens_on_retryable_failures_and_recovers_while_permanent_ones_are_quarantined() {
    let calls = Arc::new(AtomicU32::new(0));
    let written = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(Mutex::new(Vec::new()));
    let (c2, w2, r2) = (calls.clone(), written.clone(), refused.clone());
    let spec = ServerSpec {
        name: "sinks-breaker".into(),
        feeds: vec![FeedSpec::memory("f")],
        groups: vec![GroupSpec {
            name: "sinks-g",
            idle: IdleStrategy::SleepingMillis { millis: 1 },
            core_id: None,
            max_batch: 64,
            max_timers: 16,
            retry: RetryPolicy {
                max_retries: 10,
                initial_backoff_ms: 50,
                multiplier: 2.0,
                max_backoff_ms: 100,
                max_pending: 64,
            },
            processors: vec![ProcSpec {
                name: "fwd",
                factory: Box::new(move || {
                    Ok(Box::new(Forward {
                        sink: None,
                        refused: r2,
                    }) as Box<dyn Processor<u64>>)
                }),
                feeds: vec!["f".into()],
                critical: true,
                enabled: true,
                config: Default::default(),
            }],
        }],
        memory_sinks: vec![],
        sinks: vec![SinkSpec {
            name: "out".into(),
            capacity: 64,
            breaker: Some(BreakerConfig {
                failure_threshold: 3,
                open_for: Duration::from_millis(200),
                half_open_max_probes: 1,
                success_threshold: 1,
            }),
            critical: true,
            factory: Box::new(move |_: &SinkEnv| {
                Ok(Box::new(Stub {
                    plan: vec![500, 500, 500, 200, 400],
                    calls: c2,
                    written: w2,
                }) as Box<dyn Sink<u64>>)
            }),
        }],
        quarantine_capacity: 16,
        start_timeout: Duration::from_secs(5),
        health: Default::default(),
        ..Default::default()
    };
    let srv = RunningServer::start(spec).unwrap();
    let out = srv.memory_sink("out").unwrap();
    let mut p = srv.publisher("f").unwrap();
    p.publish(1).unwrap();
    wait("breaker open", || out.circuit() == Some(BreakerState::Open));
    // While open, sends are refused with the value back (the processor retries later).
    p.publish(2).unwrap();
    wait("a refused send", || !refused.lock().unwrap().is_empty());
    wait("recovered", || out.circuit() == Some(BreakerState::Closed));
    wait("1 written", || written.lock().unwrap().contains(&1));
    // Item after the probe hits the 400: quarantined, breaker unaffected.
    p.publish(3).unwrap();
    wait("3 handled", || {
        let w = written.lock().unwrap();
        w.contains(&2) || w.contains(&3)
    });
    wait("one rejection", || {
        srv.quarantine()
            .total(mongoose::quarantine::Kind::SinkRejected)
            == 1
    });
    assert_eq!(
        out.circuit(),
        Some(BreakerState::Closed),
        "a permanent error never opens the breaker"
    );
    let rec = &srv.quarantine().last(1)[0];
    assert_eq!(rec.sink.as_deref(), Some("out"));
    assert_eq!(rec.error.as_deref(), Some("HTTP 400"));
    srv.shutdown(Duration::from_secs(2));
    // Every value was written or quarantined: 1, 2, 3 -> two written, one rejected.
    let w = written.lock().unwrap().clone();
    assert_eq!(w.len() + 1, 3, "written {w:?}");
}

struct FailStart;

impl Sink<u64> for FailStart {
    fn start(&mut self) -> Result<(), String> {
        Err("127.0.0.1:1 connection refused".into())
    }
    fn write(&mut self, _item: &SinkItem<u64>) -> Result<(), SinkError> {
        Ok(())
    }
}

// MNG-R19 step 4: a critical sink whose start fails aborts startup, naming it.
#[test]
fn a_critical_sink_that_cannot_start_fails_startup() {
    let spec = ServerSpec::<u64> {
        name: "sinks-fail".into(),
        feeds: vec![FeedSpec::memory("f")],
        groups: vec![],
        memory_sinks: vec![],
        sinks: vec![SinkSpec {
            name: "tcp-out".into(),
            capacity: 8,
            breaker: None,
            critical: true,
            factory: Box::new(|_: &SinkEnv| Ok(Box::new(FailStart) as Box<dyn Sink<u64>>)),
        }],
        quarantine_capacity: 4,
        start_timeout: Duration::from_secs(5),
        health: Default::default(),
        ..Default::default()
    };
    let e = RunningServer::start(spec).err().unwrap();
    assert_eq!(e.component, "sink 'tcp-out'");
    assert!(e.error.contains("connection refused"));
}
