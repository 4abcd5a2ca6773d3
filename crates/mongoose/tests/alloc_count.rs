//! Feature `alloc-count` (MNG-R01, §5.1): the counting allocator feeds
//! `mongoose_process_allocations_total` and `mongoose_hot_path_allocations_total{agent}`.
//! After warm-up, 100k events through memory feed → group → processor leave the hot-path
//! counters flat (MNG-R22); a processor that allocates per event moves its group's counter,
//! which shows the counter does see hot-path allocations.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mongoose::{
    Context, Envelope, FeedSpec, GroupSpec, IdleStrategy, ProcSpec, Processor, ProcessorError,
    RetryPolicy, RunningServer, ServerSpec,
};

#[global_allocator]
static ALLOC: mongoose::alloc::CountingAllocator = mongoose::alloc::CountingAllocator;

struct Work {
    seen: Arc<AtomicU64>,
    allocate: bool,
}

impl Processor<u64> for Work {
    fn on_event(
        &mut self,
        env: &Envelope<u64>,
        _: &mut Context<'_, u64>,
    ) -> Result<(), ProcessorError> {
        if self.allocate {
            let v: Vec<u64> = Vec::with_capacity(4);
            std::hint::black_box(&v);
        }
        self.seen.fetch_add(*env.event() & 1, Ordering::Relaxed);
        self.seen.fetch_add(1 << 32, Ordering::Relaxed);
        Ok(())
    }
}

fn server(name: &str, allocate: bool, seen: Arc<AtomicU64>) -> RunningServer<u64> {
    let g: &'static str = Box::leak(format!("{name}-g").into_boxed_str());
    RunningServer::start(ServerSpec {
        name: name.into(),
        feeds: vec![FeedSpec {
            queue_capacity: 4096,
            ..FeedSpec::memory("in")
        }],
        groups: vec![GroupSpec {
            name: g,
            idle: IdleStrategy::SleepingMillis { millis: 1 },
            core_id: None,
            max_batch: 64,
            max_timers: 16,
            retry: RetryPolicy::default(),
            processors: vec![ProcSpec {
                name: Box::leak(format!("{name}-p").into_boxed_str()),
                factory: Box::new(move || {
                    Ok(Box::new(Work { seen, allocate }) as Box<dyn Processor<u64>>)
                }),
                feeds: vec!["in".into()],
                critical: true,
                enabled: true,
                config: Default::default(),
            }],
        }],
        ..Default::default()
    })
    .expect("starts")
}

fn sample(text: &str, series: &str) -> f64 {
    test_support::sample_value(text, series)
}

fn run(srv: &RunningServer<u64>, seen: &AtomicU64, from: u64, n: u64) {
    let mut p = srv.publisher("in").unwrap_or_else(|| panic!("publisher"));
    for i in from..from + n {
        let mut ev = i;
        loop {
            match p.publish(ev) {
                Ok(r) if r.lossless() => break,
                Ok(_) => panic!("lossy publish"),
                Err(mongoose::PublishError::Rejected { event, .. }) => ev = event,
                Err(e) => panic!("{e:?}"),
            }
        }
    }
    let d = Instant::now() + Duration::from_secs(30);
    while seen.load(Ordering::Relaxed) >> 32 < from + n {
        assert!(Instant::now() < d, "events not consumed");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(p);
}

#[test]
fn hot_path_counters_stay_flat_and_move_when_a_processor_allocates() {
    let seen = Arc::new(AtomicU64::new(0));
    let srv = server("alloc-flat", false, seen.clone());
    let mut p = srv.publisher("in").unwrap();
    // Warm-up: first touches of the queues and histograms.
    let publish = |p: &mut mongoose::Publisher<u64>, from: u64, n: u64| {
        for i in from..from + n {
            let mut ev = i;
            while let Err(mongoose::PublishError::Rejected { event, .. }) = p.publish(ev) {
                ev = event;
                std::thread::yield_now();
            }
        }
    };
    let wait = |n: u64| {
        let d = Instant::now() + Duration::from_secs(30);
        while seen.load(Ordering::Relaxed) >> 32 < n {
            assert!(Instant::now() < d, "events not consumed");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    publish(&mut p, 0, 10_000);
    wait(10_000);
    let before = srv.metrics_text();
    let group = r#"mongoose_hot_path_allocations_total{agent="alloc-flat-g"}"#;
    let publisher = r#"mongoose_hot_path_allocations_total{agent="publish:in"}"#;
    let (g0, p0) = (sample(&before, group), sample(&before, publisher));
    assert!(g0 >= 0.0 && p0 >= 0.0, "both series exist: {before}");
    publish(&mut p, 10_000, 100_000);
    wait(110_000);
    let after = srv.metrics_text();
    assert_eq!(sample(&after, group), g0, "dispatch allocated");
    assert_eq!(sample(&after, publisher), p0, "publish allocated");
    assert!(sample(&after, "mongoose_process_allocations_total") > 0.0);
    srv.shutdown(Duration::from_secs(1));

    // The same path with an allocating processor: its group's counter moves.
    let seen2 = Arc::new(AtomicU64::new(0));
    let srv2 = server("alloc-moves", true, seen2.clone());
    run(&srv2, &seen2, 0, 1_000);
    let text = srv2.metrics_text();
    let moved = sample(
        &text,
        r#"mongoose_hot_path_allocations_total{agent="alloc-moves-g"}"#,
    );
    assert!(
        moved >= 1_000.0,
        "one allocation per event is counted: {moved}"
    );
    srv2.shutdown(Duration::from_secs(1));
}
