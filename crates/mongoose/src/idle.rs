//! Idle strategies (MNG-R20): what an agent does after a duty cycle that found no work.
//!
//! `busy-spin` never leaves the CPU (lowest latency, a full core); `yielding` gives the core
//! to others between checks; `sleeping` / `sleeping-millis` park for a fixed time;
//! `backoff` spins, then yields, then parks with a doubling pause; `no-op` returns at once.
//! The agent's state is kept in an `AtomicU8` written only on transitions, so observing it
//! costs the agent nothing.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// State: doing work.
pub const STATE_WORKING: u8 = 0;
/// State: spinning (busy-spin, no-op, backoff's first phase).
pub const STATE_SPINNING: u8 = 1;
/// State: yielding.
pub const STATE_YIELDING: u8 = 2;
/// State: parked (sleeping strategies, backoff's last phase).
pub const STATE_PARKED: u8 = 3;
/// State names, indexed by state.
pub const STATE_NAMES: [&str; 4] = ["working", "spinning", "yielding", "parked"];

/// An idle strategy and its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleStrategy {
    /// Spin with a CPU hint.
    BusySpin,
    /// Yield the thread.
    Yielding,
    /// Sleep this many nanoseconds.
    Sleeping {
        /// Pause.
        nanos: u64,
    },
    /// Sleep this many milliseconds.
    SleepingMillis {
        /// Pause.
        millis: u64,
    },
    /// Spin, then yield, then park with a doubling pause.
    Backoff {
        /// Spins before yielding.
        max_spins: u32,
        /// Yields before parking.
        max_yields: u32,
        /// First park.
        min_park_ns: u64,
        /// Longest park.
        max_park_ns: u64,
    },
    /// Return immediately.
    NoOp,
}

impl Default for IdleStrategy {
    /// `backoff` with 10 spins, 5 yields, 1 µs to 1 ms (decision 3).
    fn default() -> Self {
        IdleStrategy::Backoff {
            max_spins: 10,
            max_yields: 5,
            min_park_ns: 1_000,
            max_park_ns: 1_000_000,
        }
    }
}

/// Pins the calling thread to `core` (if any), records the result in `core_cell`
/// (-1 when unpinned) and logs `pinning` (INFO when it held, WARN when not).
pub fn pin_current(agent: &str, core: Option<usize>, core_cell: &std::sync::atomic::AtomicI64) {
    let Some(core) = core else {
        core_cell.store(-1, std::sync::atomic::Ordering::Relaxed);
        return;
    };
    let ok = core_affinity::set_for_current(core_affinity::CoreId { id: core });
    core_cell.store(
        if ok { core as i64 } else { -1 },
        std::sync::atomic::Ordering::Relaxed,
    );
    if ok {
        tracing::info!(agent, core, ok, "pinning");
    } else {
        tracing::warn!(agent, core, ok, "pinning");
    }
}

impl IdleStrategy {
    /// The config name.
    pub fn name(&self) -> &'static str {
        match self {
            IdleStrategy::BusySpin => "busy-spin",
            IdleStrategy::Yielding => "yielding",
            IdleStrategy::Sleeping { .. } => "sleeping",
            IdleStrategy::SleepingMillis { .. } => "sleeping-millis",
            IdleStrategy::Backoff { .. } => "backoff",
            IdleStrategy::NoOp => "no-op",
        }
    }

    /// The longest single pause this strategy takes (for the staleness rule).
    pub fn longest_pause(&self) -> Duration {
        match *self {
            IdleStrategy::Sleeping { nanos } => Duration::from_nanos(nanos),
            IdleStrategy::SleepingMillis { millis } => Duration::from_millis(millis),
            IdleStrategy::Backoff { max_park_ns, .. } => Duration::from_nanos(max_park_ns),
            _ => Duration::ZERO,
        }
    }
}

/// Applies a strategy, tracking its phase.
pub struct Idler {
    strategy: IdleStrategy,
    spins: u32,
    yields: u32,
    park_ns: u64,
    state: u8,
}

impl Idler {
    /// A fresh idler for `strategy`.
    pub fn new(strategy: IdleStrategy) -> Self {
        Idler {
            strategy,
            spins: 0,
            yields: 0,
            park_ns: 0,
            state: STATE_WORKING,
        }
    }

    fn set(&mut self, state: u8, shared: &AtomicU8) {
        if self.state != state {
            self.state = state;
            shared.store(state, Ordering::Relaxed);
        }
    }

    /// Called after each duty cycle with the work it did.
    pub fn idle(&mut self, work: usize, shared: &AtomicU8) {
        if work > 0 {
            self.spins = 0;
            self.yields = 0;
            self.park_ns = 0;
            self.set(STATE_WORKING, shared);
            return;
        }
        match self.strategy {
            IdleStrategy::BusySpin => {
                self.set(STATE_SPINNING, shared);
                std::hint::spin_loop();
            }
            IdleStrategy::NoOp => self.set(STATE_SPINNING, shared),
            IdleStrategy::Yielding => {
                self.set(STATE_YIELDING, shared);
                std::thread::yield_now();
            }
            IdleStrategy::Sleeping { nanos } => {
                self.set(STATE_PARKED, shared);
                std::thread::sleep(Duration::from_nanos(nanos));
            }
            IdleStrategy::SleepingMillis { millis } => {
                self.set(STATE_PARKED, shared);
                std::thread::sleep(Duration::from_millis(millis));
            }
            IdleStrategy::Backoff {
                max_spins,
                max_yields,
                min_park_ns,
                max_park_ns,
            } => {
                if self.spins < max_spins {
                    self.spins += 1;
                    self.set(STATE_SPINNING, shared);
                    std::hint::spin_loop();
                } else if self.yields < max_yields {
                    self.yields += 1;
                    self.set(STATE_YIELDING, shared);
                    std::thread::yield_now();
                } else {
                    self.park_ns = if self.park_ns == 0 {
                        min_park_ns
                    } else {
                        (self.park_ns * 2).min(max_park_ns)
                    };
                    self.set(STATE_PARKED, shared);
                    std::thread::park_timeout(Duration::from_nanos(self.park_ns));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_spins_then_yields_then_parks_and_work_resets_it() {
        let shared = AtomicU8::new(STATE_WORKING);
        let mut i = Idler::new(IdleStrategy::Backoff {
            max_spins: 2,
            max_yields: 1,
            min_park_ns: 1_000,
            max_park_ns: 4_000,
        });
        let mut seen = Vec::new();
        for _ in 0..6 {
            i.idle(0, &shared);
            seen.push(shared.load(Ordering::Relaxed));
        }
        assert_eq!(
            seen,
            [
                STATE_SPINNING,
                STATE_SPINNING,
                STATE_YIELDING,
                STATE_PARKED,
                STATE_PARKED,
                STATE_PARKED
            ]
        );
        assert_eq!(i.park_ns, 4_000, "park doubles up to max");
        i.idle(3, &shared);
        assert_eq!(shared.load(Ordering::Relaxed), STATE_WORKING);
        assert_eq!((i.spins, i.yields, i.park_ns), (0, 0, 0));
    }

    #[test]
    fn sleeping_strategies_report_parked() {
        let shared = AtomicU8::new(STATE_WORKING);
        let mut i = Idler::new(IdleStrategy::SleepingMillis { millis: 1 });
        i.idle(0, &shared);
        assert_eq!(shared.load(Ordering::Relaxed), STATE_PARKED);
        assert_eq!(
            IdleStrategy::default().longest_pause(),
            Duration::from_millis(1)
        );
    }
}
