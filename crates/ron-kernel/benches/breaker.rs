//! Closed-state acquire cost (spec target: ≤ 50 ns, no lock) and a contended variant.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use ron_kernel::breaker::{BreakerConfig, CircuitBreaker};

fn closed_acquire(c: &mut Criterion) {
    let breaker = CircuitBreaker::new("bench", BreakerConfig::default());
    c.bench_function("breaker_closed_acquire_success", |b| {
        b.iter(|| black_box(&breaker).try_acquire().map(|p| p.success()))
    });
    c.bench_function("breaker_closed_acquire_drop", |b| {
        b.iter(|| drop(black_box(&breaker).try_acquire()))
    });
}

fn contended_acquire(c: &mut Criterion) {
    let breaker = Arc::new(CircuitBreaker::new("bench", BreakerConfig::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let background = {
        let (breaker, stop) = (breaker.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = breaker.try_acquire().map(|p| p.success());
            }
        })
    };
    c.bench_function("breaker_closed_acquire_contended", |b| {
        b.iter(|| black_box(&*breaker).try_acquire().map(|p| p.success()))
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = background.join();
}

criterion_group!(benches, closed_acquire, contended_acquire);
criterion_main!(benches);
