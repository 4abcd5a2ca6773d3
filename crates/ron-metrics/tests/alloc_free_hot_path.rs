//! MET-T14: recording allocates nothing and concurrent increments sum exactly.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ron_metrics::{BaseLabels, Registry};

struct Counting;

thread_local! {
    // Per thread, so tests running in parallel do not count each other's allocations.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    ALLOCS.with(|c| c.set(c.get() + 1));
}

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn inc_observe_and_cached_lookups_allocate_nothing() {
    let r = Registry::new(BaseLabels::new("s", "i", "v", false));
    let c = r
        .counter_vec("ops_total", "Ops.", &["route", "method", "code"])
        .unwrap();
    let h = r
        .histogram_vec(
            "lat_seconds",
            "Latency.",
            &["route"],
            &[0.001, 0.01, 0.1, 1.0],
        )
        .unwrap();
    let g = r.gauge("depth", "Depth.").unwrap();
    let child = c.with_label_values(&["/a", "GET", "200"]);
    let hc = h.with_label_values(&["/a"]);
    let before = allocs();
    for i in 0..100_000u64 {
        child.inc();
        hc.observe((i % 1000) as f64 / 1000.0);
        c.with_label_values(&["/a", "GET", "200"]).inc_by(2);
        g.set(i as f64);
    }
    let after = allocs();
    assert_eq!(after - before, 0, "hot path allocated");
    assert_eq!(child.get(), 300_000);
    assert_eq!(hc.get_sample_count(), 100_000);
}

#[test]
fn eight_threads_of_a_million_increments_sum_exactly() {
    let r = Registry::new(BaseLabels::new("s", "i", "v", false));
    let c = r.counter("hits_total", "Hits.").unwrap();
    let h = r.histogram("t_seconds", "T.", &[0.5]).unwrap();
    std::thread::scope(|s| {
        for _ in 0..8 {
            let c = c.clone();
            let h = h.clone();
            s.spawn(move || {
                for i in 0..1_000_000u32 {
                    c.inc();
                    if i % 10 == 0 {
                        h.observe(1.0);
                    }
                }
            });
        }
    });
    assert_eq!(c.get(), 8_000_000);
    assert_eq!(h.get_sample_count(), 800_000);
    assert_eq!(h.get_sample_sum(), 800_000.0);
}
