//! KRN-T6: keyed rate limiter under a mock clock, and its bounded key table.

use std::time::Duration;

use ron_kernel::clock::MockClock;
use ron_kernel::limiter::{KeyedLimiter, LimiterConfig};

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn ten_per_minute_allows_a_burst_of_ten_then_one_every_six_seconds() {
    let clock = MockClock::new();
    let limiter = KeyedLimiter::new(LimiterConfig::new(10, MINUTE, 10))
        .unwrap()
        .with_clock(clock.shared());
    let key = "10.0.0.1".to_owned();
    for i in 0..10 {
        let d = limiter.check(&key);
        assert!(d.allowed, "request {i} within the burst");
        assert_eq!(d.remaining, 9 - i);
        assert_eq!(d.limit, 10);
        assert!(!d.overflow);
    }
    let denied = limiter.check(&key);
    assert!(!denied.allowed);
    assert_eq!(denied.remaining, 0);
    let six = Duration::from_secs(6);
    assert!(
        denied.retry_after.abs_diff(six) < Duration::from_millis(1),
        "retry_after {:?}",
        denied.retry_after
    );
    assert_eq!(denied.reset_after, MINUTE);

    clock.advance(six);
    assert!(limiter.check(&key).allowed, "one token refilled after 6 s");
    assert!(!limiter.check(&key).allowed);
}

#[test]
fn keys_have_independent_buckets() {
    let clock = MockClock::new();
    let limiter = KeyedLimiter::new(LimiterConfig::new(1, MINUTE, 1))
        .unwrap()
        .with_clock(clock.shared());
    assert!(limiter.check(&1u32).allowed);
    assert!(!limiter.check(&1u32).allowed);
    assert!(limiter.check(&2u32).allowed);
}

#[test]
fn a_key_flood_stays_within_max_keys_and_extra_keys_share_one_overflow_quota() {
    let clock = MockClock::new();
    let limiter = KeyedLimiter::new(LimiterConfig {
        max_keys: 100,
        ..LimiterConfig::new(10, MINUTE, 10)
    })
    .unwrap()
    .with_clock(clock.shared());
    let mut overflow_checks = 0;
    let mut overflow_allowed = 0;
    for key in 0..10_000u32 {
        let d = limiter.check(&key);
        assert!(limiter.len() <= 100);
        if d.overflow {
            overflow_checks += 1;
            overflow_allowed += usize::from(d.allowed);
        } else {
            assert!(d.allowed, "a tracked new key starts with a full bucket");
        }
    }
    assert!(limiter.len() <= 100);
    assert!(overflow_checks >= 10_000 - 100);
    assert_eq!(
        overflow_allowed, 10,
        "the overflow bucket has one burst for all extra keys"
    );
}

#[test]
fn full_buckets_are_evicted_before_new_keys_overflow() {
    let clock = MockClock::new();
    let limiter = KeyedLimiter::new(LimiterConfig {
        max_keys: 100,
        ..LimiterConfig::new(10, MINUTE, 10)
    })
    .unwrap()
    .with_clock(clock.shared());
    for key in 0..10_000u32 {
        limiter.check(&key);
    }
    // After a full refill period every tracked bucket is full again, so it can go.
    clock.advance(MINUTE);
    let d = limiter.check(&20_000u32);
    assert!(d.allowed && !d.overflow);
    assert!(limiter.len() <= 100);
    assert!(limiter.evict_full() > 0);
}

#[test]
fn config_section_reads_durations_with_units() {
    let config: LimiterConfig =
        serde_json::from_value(serde_json::json!({"rate": 10, "per": "1m", "burst": 20})).unwrap();
    assert_eq!(config, LimiterConfig::new(10, MINUTE, 20));
}
