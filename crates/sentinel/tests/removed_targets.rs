//! SEN-R36 step 5 (runbook "Draining a Target", 3. "Remove target and reload"): a reload
//! that removes a target removes its gauge series, so `grep upstream_health` lists only
//! configured targets and the UpstreamUnhealthy alert cannot fire for a target that no
//! longer exists.
//!
//! Regression: the series of removed targets stayed on /metrics with their last value.

mod common;

use std::time::{Duration, Instant};

use common::Proxy;
use common::upstream::Upstream;
use test_support::{get, temp_dir};

const GAUGES: [&str; 3] = [
    "sentinel_upstream_health{",
    "sentinel_upstream_in_flight{",
    "sentinel_circuit_breaker_state{",
];

fn kdl(targets: &[std::net::SocketAddr]) -> String {
    let targets: String = targets
        .iter()
        .map(|t| format!("        target \"{t}\"\n"))
        .collect();
    format!(
        "server {{\n    listen \"127.0.0.1:0\"\n}}\nmetrics {{\n    address \"127.0.0.1:0\"\n}}\nupstream \"app\" {{\n    targets {{\n{targets}    }}\n    health-check {{\n        type \"http\" {{\n            path \"/health\"\n        }}\n        interval-secs 1\n    }}\n}}\nroute \"all\" {{\n    upstream \"app\"\n}}\n"
    )
}

/// The sample lines of the per-target gauges that name `target`.
fn gauge_lines(p: &Proxy, target: &str) -> Vec<String> {
    get(p.admin, "/metrics", &[])
        .text()
        .lines()
        .filter(|l| GAUGES.iter().any(|g| l.starts_with(g)))
        .filter(|l| l.contains(&format!("target=\"{target}\"")))
        .map(str::to_owned)
        .collect()
}

fn value(line: &str) -> f64 {
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_removed_target_loses_its_gauge_series() {
    let dir = temp_dir("sen-removed-target");
    let a = Upstream::start(|_| (200, "a".into()));
    let b = Upstream::start(|_| (200, "b".into()));
    let p = Proxy::start(&dir, &kdl(&[a.addr, b.addr]), &[], 0);
    for _ in 0..4 {
        assert_eq!(get(p.addr, "/x", &[]).status, 200);
    }
    for t in [a.addr, b.addr] {
        let lines = gauge_lines(&p, &t.to_string());
        assert_eq!(lines.len(), 3, "one series per gauge for {t}: {lines:?}");
        // The base labels come first, as on every other family.
        for l in &lines {
            assert!(l.contains("{service=\"sentinel\",instance=\""), "{l}");
            assert!(l.contains("upstream=\"app\""), "{l}");
        }
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("sentinel_upstream_health{") && value(l) == 1.0),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("sentinel_circuit_breaker_state{")
                    && l.contains(&format!("component=\"app/{t}\""))
                    && value(l) == 0.0),
            "{lines:?}"
        );
    }

    // Remove a; b keeps its series (and its state).
    std::fs::write(&p.config, kdl(&[b.addr])).unwrap();
    p.svc.signal(libc::SIGHUP);
    p.wait_metric("sentinel_config_generation", 2.0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gauge_lines(&p, &a.addr.to_string()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "series of the removed target remain: {:?}",
            gauge_lines(&p, &a.addr.to_string())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..3 {
        assert_eq!(get(p.addr, "/x", &[]).text(), "b");
    }
    // Probes of b keep running after the reload; a stays gone across later scrapes.
    std::thread::sleep(Duration::from_millis(1200));
    assert!(gauge_lines(&p, &a.addr.to_string()).is_empty());
    assert_eq!(gauge_lines(&p, &b.addr.to_string()).len(), 3);
    // Added back: its series return.
    std::fs::write(&p.config, kdl(&[a.addr, b.addr])).unwrap();
    p.svc.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(5);
    while gauge_lines(&p, &a.addr.to_string()).len() != 3 {
        assert!(Instant::now() < deadline, "a's series did not come back");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::remove_dir_all(dir).unwrap();
}
