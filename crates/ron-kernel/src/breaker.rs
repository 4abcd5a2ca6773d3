//! Circuit breaker (spec KRN-R8): closed → open → half_open → closed.
//!
//! The closed-state acquire is the hot path, so the state and a transition epoch live in one
//! `AtomicU64` and a closed acquire is a single atomic load. Everything rarer — transitions,
//! half-open probe accounting — happens under a mutex, which keeps the half-open rules exact
//! without a lock-free protocol nobody can review. The epoch lets late outcomes from permits
//! issued before a transition be recognised and ignored.
//!
//! The breaker counts nothing itself: services feed their own metric families through
//! [`CircuitBreaker::on_transition`] and [`BreakerState::as_gauge`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::clock::{SharedClock, SystemClock};

/// Default consecutive failures that open a closed breaker.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
/// Default time an open breaker rejects before letting a probe through.
pub const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(30);
/// Default number of probes allowed out at once in half_open.
pub const DEFAULT_HALF_OPEN_MAX_PROBES: u32 = 1;
/// Default consecutive probe successes that close a half_open breaker.
pub const DEFAULT_SUCCESS_THRESHOLD: u32 = 2;

/// The log message of every state change.
pub const LOG_STATE_CHANGED: &str = "circuit breaker state changed";

/// Callback for state changes: breaker name, from, to, consecutive failures.
pub type TransitionHook = Arc<dyn Fn(&str, BreakerState, BreakerState, u32) + Send + Sync>;

/// Breaker tuning; usable as a config section (`open_for` accepts `30s`, `500ms`, or seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker; 0 disables opening entirely.
    pub failure_threshold: u32,
    /// How long an open breaker rejects before the next acquire becomes a probe.
    #[serde(with = "crate::config::duration::secs")]
    pub open_for: Duration,
    /// Probes allowed out at once in half_open (values below 1 count as 1).
    pub half_open_max_probes: u32,
    /// Consecutive probe successes that close the breaker (values below 1 count as 1).
    pub success_threshold: u32,
}

/// The three breaker states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls flow; consecutive failures are counted.
    Closed,
    /// A limited number of probe calls decide whether to close again.
    HalfOpen,
    /// Calls are rejected until `open_for` elapses.
    Open,
}

/// Why a call was not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BreakerError {
    /// The breaker is open (or half_open with every probe slot taken).
    #[error(
        "circuit breaker is open; retry in {} ms or route the call elsewhere",
        retry_in.as_millis()
    )]
    Open {
        /// Time until the breaker lets a probe through; zero while probes are in flight.
        retry_in: Duration,
    },
}

/// A circuit breaker shared by every caller of one dependency.
pub struct CircuitBreaker {
    name: Arc<str>,
    failure_threshold: u32,
    open_for_nanos: u64,
    max_probes: u32,
    success_threshold: u32,
    clock: SharedClock,
    /// `(epoch << 2) | state`: one load tells both what to do and which epoch a permit is in.
    word: AtomicU64,
    failures: AtomicU32,
    opened_at: AtomicU64,
    half_open: Mutex<ProbeSlots>,
    hook: Option<TransitionHook>,
    log_transitions: bool,
}

/// Permission to make one call; report the outcome with [`Permit::success`] or
/// [`Permit::failure`]. Dropping it without an outcome is neutral.
#[must_use = "report the call's outcome with success() or failure()"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    word: u64,
    settled: bool,
}

#[derive(Debug, Default)]
struct ProbeSlots {
    out: u32,
    successes: u32,
}

struct Transition {
    from: BreakerState,
    to: BreakerState,
    failures: u32,
}

const STATE_MASK: u64 = 0b11;

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            open_for: DEFAULT_OPEN_FOR,
            half_open_max_probes: DEFAULT_HALF_OPEN_MAX_PROBES,
            success_threshold: DEFAULT_SUCCESS_THRESHOLD,
        }
    }
}

impl BreakerState {
    /// Gauge value: closed 0, half_open 1, open 2.
    pub fn as_gauge(self) -> i64 {
        i64::from(self.code())
    }

    /// Lower-case name used in logs and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }

    fn code(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }

    fn from_word(word: u64) -> Self {
        match word & STATE_MASK {
            0 => BreakerState::Closed,
            1 => BreakerState::HalfOpen,
            _ => BreakerState::Open,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl CircuitBreaker {
    /// A closed breaker named `name` (the name appears in logs and hook calls).
    pub fn new(name: impl Into<Arc<str>>, config: BreakerConfig) -> Self {
        Self {
            name: name.into(),
            failure_threshold: config.failure_threshold,
            open_for_nanos: u64::try_from(config.open_for.as_nanos()).unwrap_or(u64::MAX),
            max_probes: config.half_open_max_probes.max(1),
            success_threshold: config.success_threshold.max(1),
            clock: SystemClock::shared(),
            word: AtomicU64::new(u64::from(BreakerState::Closed.code())),
            failures: AtomicU32::new(0),
            opened_at: AtomicU64::new(0),
            half_open: Mutex::new(ProbeSlots::default()),
            hook: None,
            log_transitions: true,
        }
    }

    /// Replaces the clock (tests use [`crate::clock::MockClock`]).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Calls `hook(name, from, to, failures)` on every state change, after the change.
    pub fn on_transition(mut self, hook: TransitionHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Whether each state change logs WARN [`LOG_STATE_CHANGED`] (default true).
    pub fn log_transitions(mut self, enabled: bool) -> Self {
        self.log_transitions = enabled;
        self
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Current state. An open breaker whose `open_for` has elapsed still reads `Open` until
    /// the next acquire turns it half_open.
    pub fn state(&self) -> BreakerState {
        BreakerState::from_word(self.word.load(Ordering::Acquire))
    }

    /// Current consecutive-failure count.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Asks to make one call. Closed: always granted, lock-free. Open: refused until
    /// `open_for` elapses, then the caller becomes the first half_open probe.
    pub fn try_acquire(&self) -> Result<Permit<'_>, BreakerError> {
        let word = self.word.load(Ordering::Acquire);
        match BreakerState::from_word(word) {
            BreakerState::Closed => Ok(Permit {
                breaker: self,
                word,
                settled: false,
            }),
            BreakerState::Open => self.acquire_when_open(),
            BreakerState::HalfOpen => self.acquire_probe(),
        }
    }

    /// Runs `fut` if allowed; `classify` says whether its output counts as a success.
    /// A cancelled or panicking `fut` drops the permit, which is neutral.
    pub async fn call<F, T>(
        &self,
        fut: F,
        classify: impl FnOnce(&T) -> bool,
    ) -> Result<T, BreakerError>
    where
        F: Future<Output = T>,
    {
        let permit = self.try_acquire()?;
        let out = fut.await;
        if classify(&out) {
            permit.success();
        } else {
            permit.failure();
        }
        Ok(out)
    }

    fn acquire_when_open(&self) -> Result<Permit<'_>, BreakerError> {
        let now = self.clock.now_nanos();
        let reopen_at = self
            .opened_at
            .load(Ordering::Acquire)
            .saturating_add(self.open_for_nanos);
        if now < reopen_at {
            return Err(BreakerError::Open {
                retry_in: Duration::from_nanos(reopen_at - now),
            });
        }
        let transition = {
            let mut slots = self.half_open.lock();
            let word = self.word.load(Ordering::Acquire);
            if BreakerState::from_word(word) == BreakerState::Open {
                *slots = ProbeSlots::default();
                Some(self.transition(word, BreakerState::HalfOpen))
            } else {
                None
            }
        };
        if let Some(t) = transition {
            self.announce(&t);
        }
        // Whatever state another thread left behind, acquire against it afresh.
        self.try_acquire()
    }

    fn acquire_probe(&self) -> Result<Permit<'_>, BreakerError> {
        let mut slots = self.half_open.lock();
        let word = self.word.load(Ordering::Acquire);
        match BreakerState::from_word(word) {
            BreakerState::HalfOpen if slots.out < self.max_probes => {
                slots.out += 1;
                Ok(Permit {
                    breaker: self,
                    word,
                    settled: false,
                })
            }
            BreakerState::HalfOpen => Err(BreakerError::Open {
                retry_in: Duration::ZERO,
            }),
            BreakerState::Closed => Ok(Permit {
                breaker: self,
                word,
                settled: false,
            }),
            BreakerState::Open => {
                drop(slots);
                self.acquire_when_open()
            }
        }
    }

    fn on_closed_outcome(&self, word: u64, ok: bool) {
        if self.word.load(Ordering::Acquire) != word {
            return;
        }
        if ok {
            // Read first so that a healthy dependency does not write a shared cache line
            // on every call.
            if self.failures.load(Ordering::Relaxed) != 0 {
                self.failures.store(0, Ordering::Relaxed);
            }
            return;
        }
        let failures = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        if self.failure_threshold == 0 || failures < self.failure_threshold {
            return;
        }
        let transition = {
            let _slots = self.half_open.lock();
            (self.word.load(Ordering::Acquire) == word)
                .then(|| self.transition(word, BreakerState::Open))
        };
        if let Some(t) = transition {
            self.announce(&t);
        }
    }

    fn on_probe_outcome(&self, word: u64, outcome: Option<bool>) {
        let transition = {
            let mut slots = self.half_open.lock();
            if self.word.load(Ordering::Acquire) != word {
                return;
            }
            slots.out = slots.out.saturating_sub(1);
            match outcome {
                None => None,
                Some(true) => {
                    slots.successes += 1;
                    (slots.successes >= self.success_threshold)
                        .then(|| self.transition(word, BreakerState::Closed))
                }
                Some(false) => {
                    self.failures.fetch_add(1, Ordering::AcqRel);
                    Some(self.transition(word, BreakerState::Open))
                }
            }
        };
        if let Some(t) = transition {
            self.announce(&t);
        }
    }

    /// Publishes a new state; the caller holds the `half_open` lock.
    fn transition(&self, word: u64, to: BreakerState) -> Transition {
        match to {
            BreakerState::Open => self
                .opened_at
                .store(self.clock.now_nanos(), Ordering::Release),
            BreakerState::Closed => self.failures.store(0, Ordering::Release),
            BreakerState::HalfOpen => {}
        }
        let epoch = (word >> 2).wrapping_add(1);
        self.word
            .store((epoch << 2) | u64::from(to.code()), Ordering::Release);
        Transition {
            from: BreakerState::from_word(word),
            to,
            failures: self.failures.load(Ordering::Acquire),
        }
    }

    /// Logs and calls the hook outside the lock, so a hook may use the breaker.
    fn announce(&self, t: &Transition) {
        if self.log_transitions {
            tracing::warn!(
                breaker = %self.name,
                from = t.from.as_str(),
                to = t.to.as_str(),
                failures = t.failures,
                "{}",
                LOG_STATE_CHANGED
            );
        }
        if let Some(hook) = &self.hook {
            hook(&self.name, t.from, t.to, t.failures);
        }
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("state", &self.state())
            .field("failures", &self.consecutive_failures())
            .finish_non_exhaustive()
    }
}

impl Permit<'_> {
    /// The call succeeded.
    pub fn success(mut self) {
        self.settle(Some(true));
    }

    /// The call failed.
    pub fn failure(mut self) {
        self.settle(Some(false));
    }

    fn settle(&mut self, outcome: Option<bool>) {
        if self.settled {
            return;
        }
        self.settled = true;
        match (BreakerState::from_word(self.word), outcome) {
            (BreakerState::Closed, Some(ok)) => self.breaker.on_closed_outcome(self.word, ok),
            (BreakerState::Closed, None) => {}
            (_, outcome) => self.breaker.on_probe_outcome(self.word, outcome),
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.settle(None);
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("breaker", &self.breaker.name)
            .field("state", &BreakerState::from_word(self.word))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::MockClock;

    fn breaker(clock: &MockClock) -> CircuitBreaker {
        CircuitBreaker::new("test", BreakerConfig::default())
            .with_clock(clock.shared())
            .log_transitions(false)
    }

    fn fail_n(b: &CircuitBreaker, n: u32) {
        for _ in 0..n {
            b.try_acquire().expect("closed").failure();
        }
    }

    #[test]
    fn success_resets_the_consecutive_failure_count() {
        let clock = MockClock::new();
        let b = breaker(&clock);
        fail_n(&b, 4);
        b.try_acquire().unwrap().success();
        fail_n(&b, 4);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.consecutive_failures(), 4);
    }

    #[test]
    fn dropped_permit_is_neutral_when_closed() {
        let clock = MockClock::new();
        let b = breaker(&clock);
        fail_n(&b, 4);
        drop(b.try_acquire().unwrap());
        assert_eq!(b.consecutive_failures(), 4);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn dropped_probe_frees_its_slot() {
        let clock = MockClock::new();
        let b = breaker(&clock);
        fail_n(&b, 5);
        clock.advance(DEFAULT_OPEN_FOR);
        let probe = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_err());
        drop(probe);
        assert!(b.try_acquire().is_ok());
        assert_eq!(b.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn open_error_reports_time_left() {
        let clock = MockClock::new();
        let b = breaker(&clock);
        fail_n(&b, 5);
        clock.advance(Duration::from_secs(10));
        let Err(BreakerError::Open { retry_in }) = b.try_acquire() else {
            panic!("expected open");
        };
        assert_eq!(retry_in, Duration::from_secs(20));
    }

    #[test]
    fn late_outcome_from_before_opening_is_ignored() {
        let clock = MockClock::new();
        let b = breaker(&clock);
        let stale = b.try_acquire().unwrap();
        fail_n(&b, 5);
        clock.advance(DEFAULT_OPEN_FOR);
        let probe = b.try_acquire().unwrap();
        stale.failure();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        probe.success();
        assert_eq!(b.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn gauge_values_follow_the_spec() {
        assert_eq!(BreakerState::Closed.as_gauge(), 0);
        assert_eq!(BreakerState::HalfOpen.as_gauge(), 1);
        assert_eq!(BreakerState::Open.as_gauge(), 2);
    }

    #[tokio::test]
    async fn call_classifies_outputs() {
        let clock = MockClock::new();
        let b = CircuitBreaker::new(
            "call",
            BreakerConfig {
                failure_threshold: 2,
                ..BreakerConfig::default()
            },
        )
        .with_clock(clock.shared())
        .log_transitions(false);
        for _ in 0..2 {
            let out = b.call(async { 500 }, |s| *s < 500).await;
            assert_eq!(out, Ok(500));
        }
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.call(async { 200 }, |s| *s < 500).await.is_err());
    }
}
