//! KRN-T5: circuit breaker state machine under a mock clock.

mod capture;

use std::sync::Arc;
use std::time::Duration;

use capture::Capture;
use parking_lot::Mutex;
use ron_kernel::breaker::{
    BreakerConfig, BreakerError, BreakerState, CircuitBreaker, LOG_STATE_CHANGED,
};
use ron_kernel::clock::MockClock;
use ron_kernel::logging::LogConfig;

type Seen = Arc<Mutex<Vec<(String, BreakerState, BreakerState, u32)>>>;

fn breaker(clock: &MockClock, config: BreakerConfig) -> (CircuitBreaker, Seen) {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let b = CircuitBreaker::new("upstream-a", config)
        .with_clock(clock.shared())
        .on_transition(Arc::new(move |name, from, to, failures| {
            sink.lock().push((name.to_owned(), from, to, failures));
        }));
    (b, seen)
}

fn fail(b: &CircuitBreaker, n: u32) {
    for _ in 0..n {
        b.try_acquire().expect("allowed").failure();
    }
}

fn is_open(r: Result<ron_kernel::breaker::Permit<'_>, BreakerError>) -> bool {
    matches!(r, Err(BreakerError::Open { .. }))
}

#[test]
fn five_failures_open_then_one_probe_then_two_successes_close() {
    let clock = MockClock::new();
    let (b, seen) = breaker(&clock, BreakerConfig::default());
    fail(&b, 4);
    assert_eq!(b.state(), BreakerState::Closed);
    fail(&b, 1);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.state().as_gauge(), 2);

    for _ in 0..3 {
        assert!(is_open(b.try_acquire()));
    }
    clock.advance(Duration::from_secs(30) - Duration::from_millis(1));
    let Err(BreakerError::Open { retry_in }) = b.try_acquire() else {
        panic!("still open just before 30 s");
    };
    assert_eq!(retry_in, Duration::from_millis(1));

    clock.advance(Duration::from_millis(1));
    let probe = b
        .try_acquire()
        .expect("first acquire after open_for is a probe");
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert!(is_open(b.try_acquire()), "exactly one probe at a time");
    probe.success();
    assert_eq!(b.state(), BreakerState::HalfOpen);
    b.try_acquire().expect("second probe").success();
    assert_eq!(b.state(), BreakerState::Closed);
    assert!(b.try_acquire().is_ok());

    let seen = seen.lock();
    let transitions: Vec<_> = seen.iter().map(|(_, f, t, _)| (*f, *t)).collect();
    assert_eq!(
        transitions,
        [
            (BreakerState::Closed, BreakerState::Open),
            (BreakerState::Open, BreakerState::HalfOpen),
            (BreakerState::HalfOpen, BreakerState::Closed),
        ]
    );
    assert!(seen.iter().all(|(name, ..)| name == "upstream-a"));
    assert_eq!(seen[0].3, 5);
}

#[test]
fn a_half_open_failure_reopens_and_restarts_the_timer() {
    let clock = MockClock::new();
    let (b, seen) = breaker(&clock, BreakerConfig::default());
    fail(&b, 5);
    clock.advance(Duration::from_secs(30));
    b.try_acquire().expect("probe").failure();
    assert_eq!(b.state(), BreakerState::Open);
    clock.advance(Duration::from_secs(29));
    assert!(
        is_open(b.try_acquire()),
        "timer restarted at the probe failure"
    );
    clock.advance(Duration::from_secs(1));
    assert!(b.try_acquire().is_ok());
    let seen = seen.lock();
    assert_eq!(
        (seen[2].1, seen[2].2),
        (BreakerState::HalfOpen, BreakerState::Open)
    );
    assert_eq!(seen.len(), 4);
}

#[test]
fn every_transition_logs_a_warn_line_with_its_fields() {
    let clock = MockClock::new();
    let (b, seen) = breaker(&clock, BreakerConfig::default());
    let (out, sub, _h) = Capture::subscriber(&LogConfig::new("svc"));
    tracing::subscriber::with_default(sub, || {
        fail(&b, 5);
        clock.advance(Duration::from_secs(30));
        b.try_acquire().unwrap().success();
        b.try_acquire().unwrap().success();
    });
    let lines = out.with_message(LOG_STATE_CHANGED);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines.len(), seen.lock().len());
    let first = &lines[0];
    assert_eq!(first["level"], "WARN");
    assert_eq!(first["breaker"], "upstream-a");
    assert_eq!(first["from"], "closed");
    assert_eq!(first["to"], "open");
    assert_eq!(first["failures"], 5);
    assert_eq!(
        (lines[1]["from"].as_str(), lines[1]["to"].as_str()),
        (Some("open"), Some("half_open"))
    );
    assert_eq!(
        (lines[2]["from"].as_str(), lines[2]["to"].as_str()),
        (Some("half_open"), Some("closed"))
    );
}

#[test]
fn transitions_are_silent_when_logging_is_off() {
    let clock = MockClock::new();
    let (b, seen) = breaker(&clock, BreakerConfig::default());
    let b = b.log_transitions(false);
    let (out, sub, _h) = Capture::subscriber(&LogConfig::new("svc"));
    tracing::subscriber::with_default(sub, || fail(&b, 5));
    assert!(out.lines().is_empty());
    assert_eq!(seen.lock().len(), 1);
}

#[test]
fn threshold_zero_never_opens() {
    let clock = MockClock::new();
    let config = BreakerConfig {
        failure_threshold: 0,
        ..BreakerConfig::default()
    };
    let (b, seen) = breaker(&clock, config);
    fail(&b, 10_000);
    assert_eq!(b.state(), BreakerState::Closed);
    assert!(seen.lock().is_empty());
}

#[test]
fn config_section_reads_durations_with_units() {
    let config: BreakerConfig =
        serde_json::from_value(serde_json::json!({"open_for": "45s", "failure_threshold": 3}))
            .unwrap();
    assert_eq!(config.open_for, Duration::from_secs(45));
    assert_eq!(config.failure_threshold, 3);
    assert_eq!(config.success_threshold, 2);
}
