//! Black-box tests of target health against the real binary: active probes with exact
//! thresholds (SEN-T17), failure mode (T14), passive ejection and cooldown (T18) and the
//! circuit breaker (T19).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::Proxy;
use common::upstream::Upstream;
use test_support::{get, json_field, temp_dir};

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kdl(upstream_body: &str, routes: &str) -> String {
    format!(
        "server {{\n    listen \"127.0.0.1:0\"\n}}\nmetrics {{\n    address \"127.0.0.1:0\"\n}}\n{upstream_body}\n{routes}\n"
    )
}

#[test]
fn active_probes_flip_health_after_exact_thresholds_and_failure_mode_decides() {
    let status = Arc::new(AtomicU16::new(200));
    let s = status.clone();
    let up = Upstream::start(move |seen| {
        if seen.target == "/health" {
            (s.load(Ordering::SeqCst), String::new())
        } else {
            (200, "app".into())
        }
    });
    let probes = |up: &Upstream| {
        up.seen
            .lock()
            .iter()
            .filter(|r| r.target == "/health")
            .count()
    };
    let dir = temp_dir("sen-active");
    let body = format!(
        "upstream \"app\" {{\n    targets {{\n        target \"{}\"\n    }}\n    health-check {{\n        type \"http\" {{\n            path \"/health\"\n            expected-status 200 204\n        }}\n        interval-secs 1\n        timeout-secs 1\n        healthy-threshold 2\n        unhealthy-threshold 3\n    }}\n}}",
        up.addr
    );
    let routes = "route \"closed\" {\n    matches {\n        path-prefix \"/closed\"\n    }\n    upstream \"app\"\n}\nroute \"open\" {\n    matches {\n        path-prefix \"/open\"\n    }\n    upstream \"app\"\n    policies {\n        failure-mode \"open\"\n    }\n}";
    let p = Proxy::start(&dir, &kdl(&body, routes), &[], 0);
    let health = "sentinel_upstream_health{upstream=\"app\"";
    wait_for("the first probe", Duration::from_secs(5), || {
        probes(&up) >= 1
    });
    assert_eq!(p.metric(health), 1.0);

    status.store(500, Ordering::SeqCst);
    let before = probes(&up);
    wait_for("unhealthy", Duration::from_secs(10), || {
        p.metric(health) == 0.0
    });
    assert_eq!(
        probes(&up) - before,
        3,
        "unhealthy after exactly 3 failed probes"
    );
    let r = get(p.addr, "/closed", &[]);
    assert_eq!(r.status, 503);
    assert_eq!(
        json_field(&r.text(), "code").as_deref(),
        Some("no_healthy_upstream")
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(
        get(p.addr, "/open", &[]).text(),
        "app",
        "failure-mode open still tries"
    );

    // 204 is an expected status too; two successes make it healthy again.
    status.store(204, Ordering::SeqCst);
    let before = probes(&up);
    wait_for("healthy", Duration::from_secs(10), || {
        p.metric(health) == 1.0
    });
    assert_eq!(
        probes(&up) - before,
        2,
        "healthy after exactly 2 successful probes"
    );
    assert_eq!(get(p.addr, "/closed", &[]).status, 200);
    assert!(p.metric("sentinel_health_checks_total{upstream=\"app\",result=\"failure\"") >= 3.0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn passive_ejection_after_enough_failures_then_cooldown() {
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    // 3 of every 5 answers are 500: 60 % failures.
    let up = Upstream::start(move |_| {
        let i = c.fetch_add(1, Ordering::SeqCst);
        if i % 5 < 3 {
            (500, "err".into())
        } else {
            (200, "ok".into())
        }
    });
    let dir = temp_dir("sen-passive");
    let body = format!(
        "upstream \"app\" {{\n    targets {{\n        target \"{}\"\n    }}\n    passive-health {{\n        min-requests 20\n        cooldown-secs 1\n    }}\n}}",
        up.addr
    );
    let routes =
        "route \"all\" {\n    upstream \"app\"\n    policies {\n        retries 0\n    }\n}";
    let p = Proxy::start(&dir, &kdl(&body, routes), &[], 0);
    let ejections = "sentinel_passive_ejections_total{upstream=\"app\"";
    for i in 0..19 {
        get(p.addr, "/x", &[]);
        assert_eq!(
            p.metric(ejections),
            0.0,
            "not before 20 samples (request {i})"
        );
    }
    get(p.addr, "/x", &[]);
    assert_eq!(p.metric(ejections), 1.0, "ejected at the 20th sample");
    let hits = up.hits();
    let r = get(p.addr, "/x", &[]);
    assert_eq!(r.status, 503);
    assert_eq!(up.hits(), hits, "an ejected target gets no requests");
    std::thread::sleep(Duration::from_millis(1100));
    get(p.addr, "/x", &[]);
    assert_eq!(up.hits(), hits + 1, "back after cooldown-secs");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_breaker_opens_after_consecutive_failures_and_closes_after_trial_successes() {
    let status = Arc::new(AtomicU16::new(502));
    let s = status.clone();
    let up = Upstream::start(move |_| (s.load(Ordering::SeqCst), "x".into()));
    let dir = temp_dir("sen-breaker");
    let body = format!(
        "upstream \"app\" {{\n    targets {{\n        target \"{}\"\n    }}\n    passive-health {{\n        enabled #false\n    }}\n    circuit-breaker {{\n        failure-threshold 5\n        success-threshold 2\n        timeout-secs 1\n    }}\n}}",
        up.addr
    );
    let routes =
        "route \"all\" {\n    upstream \"app\"\n    policies {\n        retries 0\n    }\n}";
    let p = Proxy::start(&dir, &kdl(&body, routes), &[], 0);
    let state = "sentinel_circuit_breaker_state{component=\"app/";
    let trips = "sentinel_circuit_breaker_trips_total{component=\"app/";
    assert_eq!(p.metric(state), 0.0);
    for _ in 0..5 {
        assert_eq!(get(p.addr, "/x", &[]).status, 502);
    }
    assert_eq!(p.metric(state), 1.0, "open");
    assert_eq!(p.metric(trips), 1.0);
    let hits = up.hits();
    assert_eq!(
        get(p.addr, "/x", &[]).status,
        503,
        "requests bypass an open breaker"
    );
    assert_eq!(up.hits(), hits);

    std::thread::sleep(Duration::from_millis(1100));
    status.store(200, Ordering::SeqCst);
    assert_eq!(get(p.addr, "/x", &[]).status, 200, "one trial admitted");
    assert_eq!(p.metric(state), 2.0, "half-open after one success");
    assert_eq!(get(p.addr, "/x", &[]).status, 200);
    assert_eq!(p.metric(state), 0.0, "closed after two successes");

    // A failure in half-open reopens it.
    status.store(502, Ordering::SeqCst);
    for _ in 0..5 {
        get(p.addr, "/x", &[]);
    }
    assert_eq!(p.metric(trips), 2.0);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(p.addr, "/x", &[]).status, 502, "the trial fails");
    assert_eq!(p.metric(state), 1.0, "open again");
    assert_eq!(p.metric(trips), 3.0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn flapping_probes_never_flip_health_but_a_full_run_of_failures_does() {
    // Probe answers come from a script: 200/500 alternating six times (never three
    // failures in a row), then three 500s, then 200s.
    let script: Vec<u16> = [200, 500, 200, 500, 200, 500, 500, 500, 500]
        .into_iter()
        .chain(std::iter::repeat_n(200, 50))
        .collect();
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    let up = Upstream::start(move |seen| {
        if seen.target == "/health" {
            let i = c.fetch_add(1, Ordering::SeqCst);
            (script.get(i).copied().unwrap_or(200), String::new())
        } else {
            (200, "app".into())
        }
    });
    let dir = temp_dir("sen-flap");
    let body = format!(
        "upstream \"app\" {{\n    targets {{\n        target \"{}\"\n    }}\n    health-check {{\n        type \"http\" {{\n            path \"/health\"\n        }}\n        interval-secs 1\n        timeout-secs 1\n        healthy-threshold 2\n        unhealthy-threshold 3\n    }}\n}}",
        up.addr
    );
    let mut p = Proxy::start(
        &dir,
        &kdl(&body, "route \"all\" {\n    upstream \"app\"\n}"),
        &[],
        0,
    );
    let health = "sentinel_upstream_health{upstream=\"app\"";
    wait_for("six flapping probes", Duration::from_secs(10), || {
        n.load(Ordering::SeqCst) >= 6
    });
    assert_eq!(
        p.metric(health),
        1.0,
        "alternating results never flip the state"
    );
    assert!(
        p.lines_with("target health changed", Duration::ZERO)
            .is_empty()
    );
    wait_for("unhealthy", Duration::from_secs(6), || {
        p.metric(health) == 0.0
    });
    let app_hits = || {
        up.seen
            .lock()
            .iter()
            .filter(|r| r.target != "/health")
            .count()
    };
    let before = app_hits();
    assert_eq!(get(p.addr, "/x", &[]).status, 503);
    assert_eq!(app_hits(), before, "no request reaches an unhealthy target");
    wait_for("healthy again", Duration::from_secs(6), || {
        p.metric(health) == 1.0
    });
    let changes = p.lines_with("target health changed", Duration::from_millis(100));
    assert_eq!(changes.len(), 2, "down once, up once: {changes:?}");
    std::fs::remove_dir_all(dir).unwrap();
}
