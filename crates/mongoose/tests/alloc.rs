//! MNG-T25: zero heap allocations per event on the hot path. A counting global allocator
//! counts allocations made by threads that switched counting on: the publisher (this test's
//! thread) and the group thread (its processor switches it on after the warm-up). 10k warm-up
//! events, then 100k `Copy` events through memory feed -> group -> processor with latency
//! recording on; the count must stay 0.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mongoose::{
    Context, Envelope, FeedSpec, GroupSpec, IdleStrategy, ProcSpec, Processor, ProcessorError,
    RetryPolicy, RunningServer, ServerSpec,
};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Const-initialised and without a destructor: reading it never allocates.
    static COUNT: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNT.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNT.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const WARMUP: u64 = 10_000;
const MEASURED: u64 = 100_000;

struct Sum {
    seen: Arc<AtomicU64>,
}

impl Processor<u64> for Sum {
    fn on_event(
        &mut self,
        env: &Envelope<u64>,
        _ctx: &mut Context<'_, u64>,
    ) -> Result<(), ProcessorError> {
        if env.seq() == WARMUP + 1 {
            COUNT.with(|c| c.set(true));
        }
        self.seen.store(env.seq(), Ordering::Release);
        Ok(())
    }
}

#[test]
fn the_hot_path_allocates_nothing() {
    let seen = Arc::new(AtomicU64::new(0));
    let s2 = seen.clone();
    let spec = ServerSpec {
        name: "alloc".into(),
        feeds: vec![FeedSpec {
            queue_capacity: 1024,
            ..FeedSpec::memory("f")
        }],
        groups: vec![GroupSpec {
            name: "alloc-group",
            idle: IdleStrategy::default(),
            core_id: None,
            max_batch: 64,
            max_timers: 16,
            retry: RetryPolicy::default(),
            processors: vec![ProcSpec {
                name: "sum",
                factory: Box::new(
                    move || Ok(Box::new(Sum { seen: s2 }) as Box<dyn Processor<u64>>),
                ),
                feeds: vec!["f".into()],
                critical: true,
                enabled: true,
                config: Default::default(),
            }],
        }],
        memory_sinks: vec![],
        sinks: vec![],
        quarantine_capacity: 16,
        start_timeout: Duration::from_secs(5),
        health: Default::default(),
        ..Default::default()
    };
    let srv = RunningServer::start(spec).unwrap();
    assert!(
        srv.group("alloc-group")
            .unwrap()
            .latency_enabled
            .load(Ordering::Relaxed),
        "latency recording on"
    );
    let mut p = srv.publisher("f").unwrap();
    let publish_all = |p: &mut mongoose::Publisher<u64>, n: u64| {
        for i in 0..n {
            // Lossless publishing: wait for room instead of dropping.
            loop {
                let r = p.publish(i).unwrap();
                if r.enqueued == 1 {
                    break;
                }
                std::hint::spin_loop();
            }
        }
    };
    publish_all(&mut p, WARMUP);
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.load(Ordering::Acquire) < WARMUP {
        assert!(Instant::now() < deadline);
        std::thread::yield_now();
    }
    COUNT.with(|c| c.set(true));
    publish_all(&mut p, MEASURED);
    COUNT.with(|c| c.set(false));
    while seen.load(Ordering::Acquire) < WARMUP + MEASURED {
        assert!(Instant::now() < deadline, "group fell behind");
        std::thread::yield_now();
    }
    let n = ALLOCS.load(Ordering::Relaxed);
    srv.shutdown(Duration::from_secs(1));
    assert_eq!(n, 0, "{n} allocations on the publisher and group threads");
}
