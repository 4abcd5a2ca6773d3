//! Monotonic time source shared by the breaker and the limiter.
//!
//! Both mechanisms keep their state in integers (nanoseconds since an arbitrary origin) so
//! that hot paths can use atomics instead of locks. Tests swap in [`MockClock`] and advance
//! it by hand, which keeps every time-dependent assertion deterministic.

use std::fmt;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A monotonic clock measured from an arbitrary, fixed origin.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Time elapsed since this clock's origin. Never goes backwards.
    fn now(&self) -> Duration;

    /// [`Clock::now`] in whole nanoseconds, saturating at `u64::MAX` (about 584 years).
    fn now_nanos(&self) -> u64 {
        u64::try_from(self.now().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A shareable clock handle, as stored by the breaker and the limiter.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock: a process-wide [`Instant`] origin, so readings from different
/// `SystemClock` values are comparable.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// A clock that only moves when told to; starts at zero.
///
/// Clones share the same time, so a test keeps one clone and hands another to the code
/// under test.
#[derive(Debug, Clone, Default)]
pub struct MockClock {
    nanos: Arc<AtomicU64>,
}

impl SystemClock {
    /// A [`SharedClock`] backed by the system's monotonic clock.
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed()
    }
}

impl MockClock {
    /// A mock clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // fetch_update so concurrent advances never lose time and never wrap.
        let _ = self
            .nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(by))
            });
    }

    /// Sets the clock to `to` if that is not earlier than now (the clock stays monotonic).
    pub fn set(&self, to: Duration) {
        let to = u64::try_from(to.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_max(to, Ordering::SeqCst);
    }

    /// This clock as a [`SharedClock`] (sharing time with `self`).
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for MockClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }

    fn now_nanos(&self) -> u64 {
        self.nanos.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mock_clock_moves_only_when_advanced() {
        let clock = MockClock::new();
        assert_eq!(clock.now(), Duration::ZERO);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now(), Duration::from_millis(1500));
        assert_eq!(clock.now_nanos(), 1_500_000_000);
    }

    #[test]
    fn mock_clock_clones_share_time() {
        let clock = MockClock::new();
        let shared = clock.shared();
        clock.advance(Duration::from_secs(3));
        assert_eq!(shared.now(), Duration::from_secs(3));
    }

    #[test]
    fn mock_clock_set_never_goes_backwards() {
        let clock = MockClock::new();
        clock.set(Duration::from_secs(10));
        clock.set(Duration::from_secs(5));
        assert_eq!(clock.now(), Duration::from_secs(10));
    }

    #[test]
    fn system_clock_is_monotonic() {
        let clock = SystemClock;
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
    }
}
