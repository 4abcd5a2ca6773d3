//! Keyed token-bucket rate limiter (spec KRN-R9) with a bounded key table.
//!
//! Each bucket is stored GCRA-style as one number, its *theoretical arrival time* (TAT): the
//! instant at which the bucket will be full again. A bucket is full when `TAT <= now`, so
//! a full bucket carries no information and can be evicted without changing any decision;
//! that is what keeps the table bounded without letting anyone bypass the limit. When a
//! shard is full and nothing is evictable, new keys share one overflow bucket with the same
//! quota, so flooding the table with fresh keys buys an attacker at most one extra quota.
//!
//! `governor` has a keyed limiter, but its table grows until an explicit `retain_recent`
//! call and it has no overflow bucket, which is exactly the bound this module exists for.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::clock::{SharedClock, SystemClock};

/// Default bound on tracked keys.
pub const DEFAULT_MAX_KEYS: usize = 100_000;
/// Default number of independently locked shards.
pub const DEFAULT_SHARDS: usize = 16;

/// Limiter quota and table bounds; usable as a config section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimiterConfig {
    /// Tokens added per `per`.
    pub rate: u32,
    /// Refill period for `rate` tokens (`1m`, `1s`, or seconds).
    #[serde(with = "crate::config::duration::secs")]
    pub per: Duration,
    /// Bucket capacity: the most requests allowed back to back.
    pub burst: u32,
    /// Upper bound on keys held in memory.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
    /// Number of shards (each with its own lock).
    #[serde(default = "default_shards")]
    pub shards: usize,
}

/// A limiter configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimiterError {
    /// `rate`, `per` or `burst` is zero.
    #[error("limiter {field} = 0: must be at least 1 (a zero quota would reject every request)")]
    ZeroQuota {
        /// The offending field.
        field: &'static str,
    },
    /// `max_keys` or `shards` is zero.
    #[error("limiter {field} = 0: must be at least 1")]
    ZeroBound {
        /// The offending field.
        field: &'static str,
    },
}

/// The answer to one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed (its tokens were taken).
    pub allowed: bool,
    /// Bucket capacity (`burst`), for `RateLimit-Limit`.
    pub limit: u32,
    /// Whole tokens left after this check.
    pub remaining: u32,
    /// Time until the bucket is full again.
    pub reset_after: Duration,
    /// Time until this request would be allowed; zero when allowed. `Duration::MAX` when
    /// `n` exceeds `burst` and can never be allowed.
    pub retry_after: Duration,
    /// Whether the key was checked against the shared overflow bucket.
    pub overflow: bool,
}

/// One token bucket per key, in a bounded, sharded table.
pub struct KeyedLimiter<K> {
    shards: Box<[Mutex<Shard<K>>]>,
    overflow: Mutex<u64>,
    hasher: RandomState,
    per_shard: usize,
    interval: u64,
    tolerance: u64,
    burst: u32,
    clock: SharedClock,
}

struct Shard<K> {
    buckets: HashMap<K, u64>,
    /// Lower bound on the smallest TAT in `buckets`: no entry can be full (evictable) before
    /// this instant, so a full shard under a key flood skips the eviction scan.
    next_full_at: u64,
}

fn default_max_keys() -> usize {
    DEFAULT_MAX_KEYS
}

fn default_shards() -> usize {
    DEFAULT_SHARDS
}

impl LimiterConfig {
    /// `rate` per `per` with capacity `burst`, default table bounds.
    pub fn new(rate: u32, per: Duration, burst: u32) -> Self {
        Self {
            rate,
            per,
            burst,
            max_keys: DEFAULT_MAX_KEYS,
            shards: DEFAULT_SHARDS,
        }
    }

    /// Checks that the limiter can be built.
    pub fn validate(&self) -> Result<(), LimiterError> {
        for (field, zero) in [
            ("rate", self.rate == 0),
            ("per", self.per.is_zero()),
            ("burst", self.burst == 0),
        ] {
            if zero {
                return Err(LimiterError::ZeroQuota { field });
            }
        }
        for (field, zero) in [
            ("max_keys", self.max_keys == 0),
            ("shards", self.shards == 0),
        ] {
            if zero {
                return Err(LimiterError::ZeroBound { field });
            }
        }
        Ok(())
    }
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// A limiter with every bucket starting full.
    pub fn new(config: LimiterConfig) -> Result<Self, LimiterError> {
        config.validate()?;
        let per = u64::try_from(config.per.as_nanos()).unwrap_or(u64::MAX);
        let interval = (per / u64::from(config.rate)).max(1);
        // More shards than keys would let the per-shard floor round the bound up.
        let shards = config.shards.min(config.max_keys);
        Ok(Self {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        buckets: HashMap::new(),
                        next_full_at: 0,
                    })
                })
                .collect(),
            overflow: Mutex::new(0),
            hasher: RandomState::new(),
            per_shard: config.max_keys / shards,
            interval,
            tolerance: interval.saturating_mul(u64::from(config.burst)),
            burst: config.burst,
            clock: SystemClock::shared(),
        })
    }

    /// Replaces the clock (tests use [`crate::clock::MockClock`]).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Takes one token from `key`'s bucket if it has one.
    pub fn check(&self, key: &K) -> Decision {
        self.check_n(key, 1)
    }

    /// Takes `n` tokens from `key`'s bucket if it has them all; otherwise takes none.
    pub fn check_n(&self, key: &K, n: u32) -> Decision {
        let now = self.clock.now_nanos();
        let shard = &self.shards[self.shard_of(key)];
        let mut shard = shard.lock();
        if let Some(tat) = shard.buckets.get_mut(key) {
            return self.decide(tat, now, n, false);
        }
        if shard.buckets.len() >= self.per_shard {
            shard.evict_full(now);
        }
        if shard.buckets.len() >= self.per_shard {
            drop(shard);
            let mut tat = self.overflow.lock();
            return self.decide(&mut tat, now, n, true);
        }
        let mut tat = now;
        let decision = self.decide(&mut tat, now, n, false);
        if tat > now {
            shard.next_full_at = shard.next_full_at.min(tat);
            shard.buckets.insert(key.clone(), tat);
        }
        decision
    }

    /// Number of keys currently tracked (never more than `max_keys`).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().buckets.len()).sum()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.lock().buckets.is_empty())
    }

    /// Drops every bucket that is already full; returns how many went. Optional: checks
    /// evict on their own when a shard fills up.
    pub fn evict_full(&self) -> usize {
        let now = self.clock.now_nanos();
        self.shards.iter().map(|s| s.lock().evict_full(now)).sum()
    }

    fn shard_of(&self, key: &K) -> usize {
        // Modulo bias is irrelevant next to the hash's own distribution.
        (self.hasher.hash_one(key) % self.shards.len() as u64) as usize
    }

    /// GCRA step on one bucket's TAT.
    fn decide(&self, tat: &mut u64, now: u64, n: u32, overflow: bool) -> Decision {
        let start = (*tat).max(now);
        let cost = self.interval.saturating_mul(u64::from(n));
        let new_tat = start.saturating_add(cost);
        let debt = new_tat - now;
        if n > self.burst {
            return self.denied(start - now, Duration::MAX, overflow);
        }
        if debt > self.tolerance {
            let wait = Duration::from_nanos(debt - self.tolerance);
            return self.denied(start - now, wait, overflow);
        }
        *tat = new_tat;
        Decision {
            allowed: true,
            limit: self.burst,
            remaining: self.tokens_left(debt),
            reset_after: Duration::from_nanos(debt),
            retry_after: Duration::ZERO,
            overflow,
        }
    }

    fn denied(&self, debt: u64, retry_after: Duration, overflow: bool) -> Decision {
        Decision {
            allowed: false,
            limit: self.burst,
            remaining: self.tokens_left(debt),
            reset_after: Duration::from_nanos(debt),
            retry_after,
            overflow,
        }
    }

    fn tokens_left(&self, debt: u64) -> u32 {
        u32::try_from(self.tolerance.saturating_sub(debt) / self.interval).unwrap_or(u32::MAX)
    }
}

impl<K> Shard<K> {
    fn evict_full(&mut self, now: u64) -> usize {
        if now < self.next_full_at {
            return 0;
        }
        let before = self.buckets.len();
        self.buckets.retain(|_, tat| *tat > now);
        self.next_full_at = self.buckets.values().copied().min().unwrap_or(u64::MAX);
        before - self.buckets.len()
    }
}

impl<K> fmt::Debug for KeyedLimiter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("shards", &self.shards.len())
            .field("per_shard", &self.per_shard)
            .field("burst", &self.burst)
            .field("interval_ns", &self.interval)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::MockClock;

    fn limiter(clock: &MockClock, rate: u32, per: Duration, burst: u32) -> KeyedLimiter<u32> {
        KeyedLimiter::new(LimiterConfig::new(rate, per, burst))
            .unwrap()
            .with_clock(clock.shared())
    }

    #[test]
    fn remaining_counts_down_and_reset_counts_up() {
        let clock = MockClock::new();
        let l = limiter(&clock, 1, Duration::from_secs(1), 3);
        let d = l.check(&1);
        assert!(d.allowed);
        assert_eq!((d.limit, d.remaining), (3, 2));
        assert_eq!(d.reset_after, Duration::from_secs(1));
        let d = l.check(&1);
        assert_eq!((d.remaining, d.reset_after), (1, Duration::from_secs(2)));
    }

    #[test]
    fn check_n_takes_all_or_nothing() {
        let clock = MockClock::new();
        let l = limiter(&clock, 1, Duration::from_secs(1), 5);
        assert!(l.check_n(&1, 4).allowed);
        let d = l.check_n(&1, 2);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 1);
        assert_eq!(d.retry_after, Duration::from_secs(1));
        assert!(l.check_n(&1, 1).allowed);
    }

    #[test]
    fn request_larger_than_burst_is_never_allowed() {
        let clock = MockClock::new();
        let l = limiter(&clock, 1, Duration::from_secs(1), 2);
        let d = l.check_n(&7, 3);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::MAX);
        assert!(l.is_empty());
    }

    #[test]
    fn refill_is_continuous() {
        let clock = MockClock::new();
        let l = limiter(&clock, 2, Duration::from_secs(1), 2);
        assert!(l.check(&1).allowed);
        assert!(l.check(&1).allowed);
        assert!(!l.check(&1).allowed);
        clock.advance(Duration::from_millis(500));
        assert!(l.check(&1).allowed);
        assert!(!l.check(&1).allowed);
    }

    #[test]
    fn full_buckets_are_evicted_first() {
        let clock = MockClock::new();
        let l: KeyedLimiter<u32> = KeyedLimiter::new(LimiterConfig {
            max_keys: 1,
            shards: 1,
            ..LimiterConfig::new(1, Duration::from_secs(1), 1)
        })
        .unwrap()
        .with_clock(clock.shared());
        assert!(l.check(&1).allowed);
        clock.advance(Duration::from_secs(1));
        let d = l.check(&2);
        assert!(d.allowed && !d.overflow);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn zero_quota_is_rejected() {
        let err = KeyedLimiter::<u32>::new(LimiterConfig::new(0, Duration::from_secs(1), 1));
        assert_eq!(err.unwrap_err(), LimiterError::ZeroQuota { field: "rate" });
        let err = KeyedLimiter::<u32>::new(LimiterConfig {
            shards: 0,
            ..LimiterConfig::new(1, Duration::from_secs(1), 1)
        });
        assert_eq!(
            err.unwrap_err(),
            LimiterError::ZeroBound { field: "shards" }
        );
    }
}
