//! Metric families (MNG-R33; library half of MNG-T21): the exposition passes promtool, every
//! `mongoose_` sample starts with the four base labels, and the counters move with traffic.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mongoose::sink::SinkItem;
use mongoose::sink_agent::{Sink, SinkEnv, SinkError, SinkSpec};
use mongoose::{
    Context, Envelope, FeedSpec, GroupSpec, IdleStrategy, ProcSpec, Processor, ProcessorError,
    RetryPolicy, RunningServer, ServerSpec,
};

struct Fwd(Option<mongoose::SinkHandle<u64>>);

impl Processor<u64> for Fwd {
    fn init(&mut self, ctx: &mut Context<'_, u64>) -> Result<(), String> {
        self.0 = Some(ctx.sink("disk").map_err(|e| e.to_string())?);
        Ok(())
    }
    fn on_event(
        &mut self,
        env: &Envelope<u64>,
        ctx: &mut Context<'_, u64>,
    ) -> Result<(), ProcessorError> {
        ctx.forward(self.0.as_ref().unwrap(), *env.event())
            .map_err(|e| ProcessorError::new(format!("{e:?}")))
    }
}

struct Null;

impl Sink<u64> for Null {
    fn write(&mut self, _item: &SinkItem<u64>) -> Result<(), SinkError> {
        Ok(())
    }
}

#[test]
fn the_exposition_is_valid_and_moves_with_traffic() {
    let srv = RunningServer::start(ServerSpec {
        name: "metrics-srv".into(),
        feeds: vec![FeedSpec::memory("prices")],
        groups: vec![GroupSpec {
            name: "pricing",
            idle: IdleStrategy::SleepingMillis { millis: 1 },
            core_id: None,
            max_batch: 64,
            max_timers: 4,
            retry: RetryPolicy::default(),
            processors: vec![ProcSpec {
                name: "fwd",
                factory: Box::new(|| Ok(Box::new(Fwd(None)) as Box<dyn Processor<u64>>)),
                feeds: vec!["prices".into()],
                critical: true,
                enabled: true,
                config: Default::default(),
            }],
        }],
        memory_sinks: vec![("recent".into(), 10)],
        sinks: vec![SinkSpec {
            name: "disk".into(),
            capacity: 64,
            breaker: Some(Default::default()),
            critical: true,
            factory: Box::new(|_: &SinkEnv| Ok(Box::new(Null) as Box<dyn Sink<u64>>)),
        }],
        quarantine_capacity: 4,
        start_timeout: Duration::from_secs(5),
        health: Default::default(),
        ..Default::default()
    })
    .unwrap();
    let mut p = srv.publisher("prices").unwrap();
    for i in 0..25u64 {
        p.publish(i).unwrap();
    }
    let s = srv.subscription("prices", "pricing").unwrap();
    let d = Instant::now() + Duration::from_secs(10);
    while s.consumed.load(Ordering::Acquire) < 25
        || srv
            .memory_sink("disk")
            .unwrap()
            .stats()
            .written
            .load(Ordering::Acquire)
            < 25
    {
        assert!(Instant::now() < d);
        std::thread::sleep(Duration::from_millis(5));
    }
    while !srv.health().ready {
        assert!(Instant::now() < d);
        std::thread::sleep(Duration::from_millis(5));
    }
    let text = srv.metrics_text();
    let v = |series: &str| test_support::sample_value(&text, series);
    assert_eq!(
        v(r#"mongoose_feed_published_total{feed="prices"}"#),
        25.0,
        "{text}"
    );
    assert_eq!(
        v(r#"mongoose_queue_consumed_total{feed="prices",group="pricing"}"#),
        25.0
    );
    assert_eq!(
        v(r#"mongoose_processor_events_total{group="pricing",processor="fwd"}"#),
        25.0
    );
    assert_eq!(v(r#"mongoose_sink_written_total{sink="disk"}"#), 25.0);
    assert_eq!(
        v(r#"mongoose_sink_circuit_state{sink="disk",state="closed"}"#),
        1.0
    );
    let inf = v(r#"mongoose_batches_total{group="pricing",le="+Inf"}"#);
    assert!(
        inf >= 1.0,
        "{inf}: {}",
        text.lines()
            .filter(|l| l.contains("batches_total{"))
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(v("mongoose_ready"), 1.0);
    // Latency figures are published at each snapshotMs boundary (1 s here), so a scrape
    // never waits on the group: poll until the window that saw the traffic closes.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let count = r#"mongoose_handler_latency_seconds_count{group="pricing",processor="fwd"}"#;
    loop {
        let now = test_support::sample_value(&srv.metrics_text(), count);
        if now >= 25.0 {
            let sum = test_support::sample_value(
                &srv.metrics_text(),
                r#"mongoose_handler_latency_seconds_sum{group="pricing",processor="fwd"}"#,
            );
            assert!(sum > 0.0, "the summary carries a sum");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "latency count stuck at {now}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for line in text.lines().filter(|l| l.starts_with("mongoose_")) {
        assert!(
            line.contains(r#"{service="mongoose",instance="metrics-srv",build_version=""#),
            "base labels not first: {line}"
        );
    }
    if let Some(promtool) = test_support::external("promtool") {
        let (_, out, err) =
            test_support::run_with_stdin(&promtool, &["check", "metrics"], text.as_bytes());
        // Spec decision 5 keeps batch sizes as a cumulative counter family with an `le`
        // label (so histogram_quantile works and the _total suffix rule holds); promtool
        // lints any `le` outside a histogram. That one lint is expected; anything else fails.
        let problems: Vec<&str> = out
            .lines()
            .chain(err.lines())
            .filter(|l| !l.trim().is_empty())
            .filter(|l| {
                !l.contains(
                    r#"mongoose_batches_total non-histogram metrics should not have "le" label"#,
                )
            })
            .collect();
        assert!(problems.is_empty(), "promtool: {problems:?}");
    }
}
