//! Registry rules and encoder invariants (MET-T15, T16, T19, T20).

mod support;

use ron_metrics::{BaseLabels, Format, MetricsError, Registry};
use support::{expfmt, promtool_check, python_openmetrics_parse};

fn reg() -> Registry {
    Registry::new(BaseLabels::new("svc-demo", "node-1", "0.1.0", false))
}

fn text(r: &Registry, fmt: Format) -> String {
    let mut out = Vec::new();
    r.encode_into(None, fmt, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn invalid_registrations_return_their_error_and_leave_the_exposition_valid() {
    let r = reg();
    r.counter("ok_total", "Fine.").unwrap().inc();
    let cases: Vec<(&str, Result<(), MetricsError>)> = vec![
        ("bad name", r.counter("9bad_total", "h").map(drop)),
        ("counter suffix", r.counter("requests", "h").map(drop)),
        (
            "histogram unit",
            r.histogram("latency_ms", "h", &[1.0]).map(drop),
        ),
        ("le label", r.counter_vec("a_total", "h", &["le"]).map(drop)),
        (
            "base label",
            r.counter_vec("b_total", "h", &["service"]).map(drop),
        ),
        ("duplicate", r.counter("ok_total", "h").map(drop)),
        (
            "buckets",
            r.histogram("c_seconds", "h", &[2.0, 1.0]).map(drop),
        ),
        ("help", r.counter("d_total", "").map(drop)),
    ];
    let kinds: Vec<&str> = cases
        .iter()
        .map(|(what, res)| match res {
            Err(MetricsError::InvalidName(_)) => "InvalidName",
            Err(MetricsError::BadSuffix { .. }) => "BadSuffix",
            Err(MetricsError::ReservedLabel { .. }) => "ReservedLabel",
            Err(MetricsError::Duplicate(_)) => "Duplicate",
            Err(MetricsError::BadBuckets { .. }) => "BadBuckets",
            Err(MetricsError::EmptyHelp(_)) => "EmptyHelp",
            other => panic!("{what}: unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "InvalidName",
            "BadSuffix",
            "BadSuffix",
            "ReservedLabel",
            "ReservedLabel",
            "Duplicate",
            "BadBuckets",
            "EmptyHelp"
        ]
    );
    let t = text(&r, Format::Text004);
    expfmt::check(&t, false).unwrap();
    assert_eq!(
        t.matches("# TYPE").count(),
        1,
        "nothing half-registered:\n{t}"
    );
}

#[test]
fn hostile_label_values_are_escaped_for_every_parser() {
    let r = reg();
    let c = r
        .counter_vec("hostile_total", "Values with \"quotes\" and \\.", &["v"])
        .unwrap();
    for v in [
        "quote\"in",
        "back\\slash",
        "new\nline",
        "é ü 漢",
        "trailing\\",
    ] {
        c.with_label_values(&[v]).inc();
    }
    let t = text(&r, Format::Text004);
    expfmt::check(&t, false).unwrap_or_else(|e| panic!("{e}\n{t}"));
    assert!(t.contains(r#"v="quote\"in""#));
    assert!(t.contains(r#"v="new\nline""#));
    if let Some((code, out)) = promtool_check(&t, false) {
        assert_eq!((code, out.as_str()), (0, ""), "{t}");
    }
    let om = text(&r, Format::OpenMetrics100);
    expfmt::check(&om, true).unwrap_or_else(|e| panic!("{e}\n{om}"));
    if let Some(res) = python_openmetrics_parse(&om) {
        assert_eq!(res.unwrap(), 5);
    }
}

#[test]
fn series_cap_sends_the_excess_to_one_overflow_child_and_counts_it() {
    let m = ron_metrics::Metrics::builder()
        .env(ron_metrics::EnvSource::fixed::<&str, &str>([]))
        .max_series_per_family(10_000)
        .build()
        .unwrap();
    let fam = m
        .registry()
        .counter_vec("users_total", "Per user.", &["user"])
        .unwrap();
    for i in 0..10_001 {
        fam.with_label_values(&[&format!("u{i}")]).inc();
    }
    assert_eq!(fam.series_count(), 10_001);
    let mut out = Vec::new();
    m.encode(None, Format::Text004, &mut out);
    let t = String::from_utf8(out).unwrap();
    assert!(t.contains("users_total{service=") && t.contains("user=\"__overflow__\"} 1"));
    assert!(
        t.contains("metrics_series_overflow_total{") && t.contains("family=\"users_total\"} 1")
    );
    expfmt::check(&t, false).unwrap();
}

#[test]
fn concurrent_observations_never_break_histogram_invariants() {
    let r = reg();
    let h = r
        .histogram_vec("work_seconds", "Work.", &["k"], &[0.1, 0.5, 1.0])
        .unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    // Stops the observers even when a check below panics, so a failure cannot hang.
    struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    for t in 0..3 {
        h.with_label_values(&[&format!("k{t}")]);
    }
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        for t in 0..3 {
            let h = h.clone();
            let stop = &stop;
            s.spawn(move || {
                let child = h.with_label_values(&[&format!("k{t}")]);
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    child.observe((i % 13) as f64 / 10.0);
                    i += 1;
                }
            });
        }
        for _ in 0..1000 {
            let t = text(&r, Format::Text004);
            expfmt::check(&t, false).unwrap_or_else(|e| panic!("{e}"));
        }
    });
}

#[test]
fn interop_vectors_match_the_encoder_and_mutations_are_rejected() {
    let r = reg();
    r.counter_vec(
        "pq_kex_failures_total",
        "Post-quantum key exchange failures.",
        &["algo", "role"],
    )
    .unwrap()
    .with_label_values(&["none", "none"]);
    r.histogram_vec(
        "request_latency_seconds",
        "Request latency in seconds.",
        &["route", "method"],
        &[0.005, 0.1],
    )
    .unwrap()
    .with_label_values(&["/metrics", "GET"])
    .observe(0.002);
    let vector = include_str!("vectors/interop/metrics-small.prom");
    assert_eq!(text(&r, Format::Text004), vector);
    expfmt::check(vector, false).unwrap();
    if let Some((code, out)) = promtool_check(vector, false) {
        assert_eq!((code, out.as_str()), (0, ""));
    }
    let no_inf: String = vector
        .lines()
        .filter(|l| !l.contains("le=\"+Inf\""))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(expfmt::check(&no_inf, false).unwrap_err().contains("+Inf"));
    let dup_line = vector.lines().nth(2).unwrap();
    let dup = vector.replacen(dup_line, &format!("{dup_line}\n{dup_line}"), 1);
    assert!(
        expfmt::check(&dup, false)
            .unwrap_err()
            .contains("duplicate")
    );
    let reordered = vector.replace(
        "service=\"svc-demo\",instance=\"node-1\"",
        "instance=\"node-1\",service=\"svc-demo\"",
    );
    assert!(
        expfmt::check(&reordered, false)
            .unwrap_err()
            .contains("base labels")
    );
}

#[test]
fn readyz_vectors_round_trip_and_match_live_bodies() {
    use ron_metrics::readyz::ReadyzBody;
    for v in [
        include_str!("vectors/interop/readyz-ready.json"),
        include_str!("vectors/interop/readyz-degraded.json"),
    ] {
        let body = ReadyzBody::parse(v).unwrap();
        assert_eq!(format!("{}\n", body.to_json()), v);
        let vj: serde_json::Value = serde_json::from_str(v).unwrap();
        let h = ron_kernel::HealthState::new();
        h.set("config_loaded", false);
        let live = ReadyzBody::from_snapshot(&h.snapshot(), 5).to_json();
        let lj: serde_json::Value = serde_json::from_str(&live).unwrap();
        let keys =
            |j: &serde_json::Value| j.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&vj), keys(&lj));
        for k in keys(&vj) {
            assert_eq!(
                std::mem::discriminant(&vj[&k]),
                std::mem::discriminant(&lj[&k]),
                "{k}"
            );
        }
        assert!(live.starts_with(
            "{\"degraded\":true,\"missing\":[\"config_loaded\"],\"retry_after\":5,\"since\":\""
        ));
    }
}

#[test]
fn foreign_prometheus_collectors_render_with_base_labels_first() {
    let r = reg();
    let h = prometheus::HistogramVec::new(
        prometheus::HistogramOpts::new("ext_latency_seconds", "External latency.")
            .buckets(vec![0.1, 1.0]),
        &["op"],
    )
    .unwrap();
    h.with_label_values(&["read"]).observe(0.2);
    r.register_collector(Box::new(h)).unwrap();
    let t = text(&r, Format::Text004);
    expfmt::check(&t, false).unwrap_or_else(|e| panic!("{e}\n{t}"));
    assert!(t.contains(r#"ext_latency_seconds_bucket{service="svc-demo",instance="node-1",build_version="0.1.0",amnesia="off",op="read",le="1.0"} 1"#), "{t}");
}
