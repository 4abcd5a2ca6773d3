//! Check cost on an existing key (spec target: ≤ 150 ns) and under a new-key flood.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ron_kernel::limiter::{KeyedLimiter, LimiterConfig};

fn existing_key(c: &mut Criterion) {
    // A quota high enough that the bench measures the check, not the deny path.
    let limiter: KeyedLimiter<u64> = KeyedLimiter::new(LimiterConfig::new(
        u32::MAX,
        Duration::from_secs(1),
        u32::MAX,
    ))
    .unwrap();
    for key in 0..10_000u64 {
        limiter.check(&key);
    }
    let mut key = 0u64;
    c.bench_function("limiter_check_existing_key", |b| {
        b.iter(|| {
            key = (key + 1) % 10_000;
            black_box(limiter.check(black_box(&key)))
        })
    });
    let ip = String::from("203.0.113.7");
    let strings: KeyedLimiter<String> = KeyedLimiter::new(LimiterConfig::new(
        u32::MAX,
        Duration::from_secs(1),
        u32::MAX,
    ))
    .unwrap();
    c.bench_function("limiter_check_existing_string_key", |b| {
        b.iter(|| black_box(strings.check(black_box(&ip))))
    });
}

fn key_flood(c: &mut Criterion) {
    let limiter: KeyedLimiter<u64> = KeyedLimiter::new(LimiterConfig {
        max_keys: 1_000,
        ..LimiterConfig::new(100, Duration::from_secs(1), 100)
    })
    .unwrap();
    let mut key = 0u64;
    c.bench_function("limiter_check_new_key_flood", |b| {
        b.iter(|| {
            key += 1;
            black_box(limiter.check(black_box(&key)))
        })
    });
}

criterion_group!(benches, existing_key, key_flood);
criterion_main!(benches);
