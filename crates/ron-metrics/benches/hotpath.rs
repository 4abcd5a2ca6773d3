//! Hot-path costs (spec §8.1: mean ≤ 200 ns, no allocation): `inc`, a cached
//! `with_label_values` hit, `observe`, and `inc` on one counter from 4 threads at once.
//! Allocation counting is the plain test MET-T14; nothing here asserts a time.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ron_metrics::{BaseLabels, DEFAULT_REQUEST_BUCKETS, Registry};

const CONTENDING_THREADS: usize = 4;

fn registry() -> Registry {
    Registry::new(BaseLabels::new("bench", "bench-1", "0.1.0", false))
}

fn hotpath(c: &mut Criterion) {
    let r = registry();
    let counters = r
        .counter_vec("bench_ops_total", "Bench counter.", &["route", "method"])
        .expect("valid family");
    let hist = r
        .histogram_vec(
            "bench_latency_seconds",
            "Bench histogram.",
            &["route"],
            &DEFAULT_REQUEST_BUCKETS,
        )
        .expect("valid family");
    let counter = counters.with_label_values(&["/metrics", "GET"]);
    let h = hist.with_label_values(&["/metrics"]);

    let mut g = c.benchmark_group("hotpath");
    g.bench_function("counter_inc", |b| b.iter(|| black_box(&counter).inc()));
    g.bench_function("with_label_values_hit", |b| {
        b.iter(|| black_box(counters.with_label_values(black_box(&["/metrics", "GET"]))))
    });
    g.bench_function("histogram_observe", |b| {
        b.iter(|| black_box(&h).observe(black_box(0.042)))
    });
    g.bench_function("counter_inc_4_threads", |b| {
        b.iter_custom(|iters| contended_inc(&counter, iters))
    });
    g.finish();
}

/// Time for `iters` increments done by each of 4 threads on the same counter, i.e. the
/// wall time per increment as seen by one of the contending threads.
fn contended_inc(counter: &ron_metrics::Counter, iters: u64) -> Duration {
    let start = Barrier::new(CONTENDING_THREADS + 1);
    std::thread::scope(|s| {
        for _ in 0..CONTENDING_THREADS {
            s.spawn(|| {
                start.wait();
                for _ in 0..iters {
                    black_box(counter).inc();
                }
            });
        }
        start.wait();
        let t = Instant::now();
        // The scope joins every thread before returning, so `t` covers all of them.
        t
    })
    .elapsed()
}

criterion_group!(benches, hotpath);
criterion_main!(benches);
