//! Built-in JSON processors against a running server (MNG-R12; MNG-T24's count-by-key half).

use std::time::{Duration, Instant};

use mongoose::builtins::{
    count_by_key::CountByKey, filter::Filter, log::Log, map::MapProc, route::Route,
};
use mongoose::{
    FeedSpec, GroupSpec, IdleStrategy, ProcSpec, Processor, Record, RetryPolicy, RunningServer,
    ServerSpec,
};
use serde_json::{Value, json};

type Factory = Box<dyn FnOnce() -> Result<Box<dyn Processor<Record>>, String> + Send>;

fn cfg(v: Value) -> mongoose::ConfigMap {
    v.as_object().unwrap().clone()
}

fn run(name: &str, procs: Vec<(&'static str, Factory)>, sinks: &[&str]) -> RunningServer<Record> {
    let spec = ServerSpec {
        name: name.into(),
        feeds: vec![FeedSpec::memory("in")],
        groups: vec![GroupSpec {
            name: Box::leak(format!("{name}-g").into_boxed_str()),
            idle: IdleStrategy::SleepingMillis { millis: 1 },
            core_id: None,
            max_batch: 64,
            max_timers: 64,
            retry: RetryPolicy::default(),
            processors: procs
                .into_iter()
                .map(|(n, f)| ProcSpec {
                    name: n,
                    factory: f,
                    feeds: vec!["in".into()],
                    critical: true,
                    enabled: true,
                    config: Default::default(),
                })
                .collect(),
        }],
        memory_sinks: sinks.iter().map(|s| (s.to_string(), 10_000)).collect(),
        sinks: vec![],
        quarantine_capacity: 100,
        start_timeout: Duration::from_secs(5),
        health: Default::default(),
        ..Default::default()
    };
    RunningServer::start(spec).unwrap()
}

fn values(srv: &RunningServer<Record>, sink: &str) -> Vec<Value> {
    srv.memory_sink(sink)
        .unwrap()
        .snapshot()
        .into_iter()
        .map(|i| i.value().expect("an event").value().clone())
        .collect()
}

fn wait(what: &str, f: impl Fn() -> bool) {
    let d = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < d, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn filter_map_and_route_forward_to_their_sinks_in_order() {
    let f = cfg(json!({"field": "n", "op": "ge", "value": 5, "to": "big"}));
    let m = cfg(json!({"fields": {"id": "n", "who": "user.name", "gone": "nope"}, "to": "mapped"}));
    let r =
        cfg(json!({"field": "kind", "routes": {"a": "to-a", "1": "to-one"}, "default": "rest"}));
    let l = cfg(json!({"every": 3, "fields": ["n"]}));
    let procs: Vec<(&'static str, Factory)> = vec![
        (
            "f1",
            Box::new(move || Ok(Box::new(Filter::new(&f)?) as Box<dyn Processor<Record>>)),
        ),
        (
            "m1",
            Box::new(move || Ok(Box::new(MapProc::new(&m)?) as Box<dyn Processor<Record>>)),
        ),
        (
            "r1",
            Box::new(move || Ok(Box::new(Route::new(&r)?) as Box<dyn Processor<Record>>)),
        ),
        (
            "l1",
            Box::new(move || Ok(Box::new(Log::new(&l)?) as Box<dyn Processor<Record>>)),
        ),
    ];
    let srv = run("bi-1", procs, &["big", "mapped", "to-a", "to-one", "rest"]);
    let mut p = srv.publisher("in").unwrap();
    for n in 0..10 {
        let kind = match n % 3 {
            0 => json!("a"),
            1 => json!(1),
            _ => json!("zzz"),
        };
        p.publish(Record::new(
            json!({"n": n, "kind": kind, "user": {"name": format!("u{n}")}}),
        ))
        .unwrap();
    }
    wait("mapped", || values(&srv, "mapped").len() == 10);
    let big: Vec<i64> = values(&srv, "big")
        .iter()
        .map(|v| v["n"].as_i64().unwrap())
        .collect();
    assert_eq!(big, [5, 6, 7, 8, 9]);
    let mapped = values(&srv, "mapped");
    assert_eq!(
        mapped[3],
        json!({"id": 3, "who": "u3"}),
        "missing paths are omitted by default"
    );
    assert_eq!(values(&srv, "to-a").len(), 4);
    assert_eq!(
        values(&srv, "to-one").len(),
        3,
        "a number routes by its text"
    );
    assert_eq!(values(&srv, "rest").len(), 3);
    // Origins travel with forwarded items.
    let item = &srv.memory_sink("big").unwrap().snapshot()[0];
    assert_eq!(item.origin(), Some(("in", 6)));
}

#[test]
fn count_by_key_emits_per_key_counts_per_window() {
    let c = cfg(json!({"key": "route", "windowMs": 100, "to": "counts"}));
    let procs: Vec<(&'static str, Factory)> = vec![(
        "c1",
        Box::new(move || Ok(Box::new(CountByKey::new(&c)?) as Box<dyn Processor<Record>>)),
    )];
    let srv = run("bi-2", procs, &["counts"]);
    let mut p = srv.publisher("in").unwrap();
    // Publish right after a window boundary so every event lands in one window.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    std::thread::sleep(Duration::from_millis(100 - now_ms % 100 + 5));
    for r in ["/a", "/b", "/a", "/a", "/c", "/b"] {
        p.publish(Record::new(json!({"route": r}))).unwrap();
    }
    wait("window emitted", || values(&srv, "counts").len() >= 3);
    let out = values(&srv, "counts");
    let counts: Vec<(String, u64)> = out
        .iter()
        .take(3)
        .map(|v| {
            (
                v["key"].as_str().unwrap().to_string(),
                v["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [("/a".into(), 3), ("/b".into(), 2), ("/c".into(), 1)]
    );
    let (start, end) = (
        out[0]["window_start"].as_str().unwrap(),
        out[0]["window_end"].as_str().unwrap(),
    );
    assert!(
        start < end && start.ends_with("00Z") && end.ends_with("00Z"),
        "aligned window {start}..{end}"
    );
}

#[test]
fn stopping_emits_the_open_window_as_partial() {
    let c = cfg(json!({"key": "route", "windowMs": 3_600_000, "to": "counts"}));
    let procs: Vec<(&'static str, Factory)> = vec![(
        "c2",
        Box::new(move || Ok(Box::new(CountByKey::new(&c)?) as Box<dyn Processor<Record>>)),
    )];
    let srv = run("bi-3", procs, &["counts"]);
    let mut p = srv.publisher("in").unwrap();
    p.publish(Record::new(json!({"route": "/late"}))).unwrap();
    p.publish(Record::new(json!({"route": "/late"}))).unwrap();
    let s = srv.subscriptions()[0].clone();
    wait("consumed", || {
        s.consumed.load(std::sync::atomic::Ordering::Acquire) == 2
    });
    assert!(
        values(&srv, "counts").is_empty(),
        "nothing before the hour ends"
    );
    srv.shutdown(Duration::from_secs(2));
    let out = values(&srv, "counts");
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        (
            out[0]["key"].as_str(),
            out[0]["count"].as_u64(),
            out[0]["partial"].as_bool()
        ),
        (Some("/late"), Some(2), Some(true))
    );
}

#[test]
fn count_by_key_with_error_when_counts_errors_and_their_rate_per_key() {
    let c = cfg(
        json!({"key": "route", "windowMs": 3_600_000, "to": "counts",
        "errorWhen": {"field": "status", "op": "ge", "value": 500}}),
    );
    let procs: Vec<(&'static str, Factory)> = vec![(
        "c3",
        Box::new(move || Ok(Box::new(CountByKey::new(&c)?) as Box<dyn Processor<Record>>)),
    )];
    let srv = run("bi-4", procs, &["counts"]);
    let mut p = srv.publisher("in").unwrap();
    for (route, status) in [
        ("api", 200),
        ("api", 502),
        ("api", 200),
        ("api", 503),
        ("ui", 200),
    ] {
        p.publish(Record::new(json!({"route": route, "status": status})))
            .unwrap();
    }
    // Without a status field an event is never an error.
    p.publish(Record::new(json!({"route": "ui"}))).unwrap();
    let s = srv.subscriptions()[0].clone();
    wait("consumed", || {
        s.consumed.load(std::sync::atomic::Ordering::Acquire) == 6
    });
    srv.shutdown(Duration::from_secs(2));
    let out = values(&srv, "counts");
    let rows: Vec<(String, u64, u64, f64)> = out
        .iter()
        .map(|v| {
            (
                v["key"].as_str().unwrap().to_string(),
                v["count"].as_u64().unwrap(),
                v["errors"].as_u64().unwrap(),
                v["error_rate"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, [("api".into(), 4, 2, 0.5), ("ui".into(), 2, 0, 0.0)]);
    assert!(
        CountByKey::<Record>::new(&cfg(json!({"key": "k", "to": "s",
            "errorWhen": {"field": "status", "op": "bogus", "value": 1}})))
        .is_err()
    );
}

#[test]
fn bad_configs_name_the_key() {
    let e = Filter::<Record>::new(&cfg(
        json!({"field": "x", "op": "eq", "value": 1, "to": "s", "tpyo": 1}),
    ))
    .err()
    .unwrap();
    assert!(e.contains("tpyo"), "{e}");
    let e = CountByKey::<Record>::new(&cfg(json!({"key": "k", "windowMs": 5, "to": "s"})))
        .err()
        .unwrap();
    assert!(e.contains("windowMs"), "{e}");
    assert!(
        Filter::<Record>::new(&cfg(
            json!({"field": "x", "op": "in", "value": 1, "to": "s"})
        ))
        .is_err()
    );
}
