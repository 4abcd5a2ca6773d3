//! `ronctl chaos` against real services (issue 8; ron-metrics runbook §9, spec MET-T26):
//! the slow-loris drill beside a request flood on a ron-metrics exposer (svc-edge's metrics
//! listener), with the runbook's pass criteria checked, and the latency/reset proxy in
//! front of svc-edge.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::{get, temp_dir};

fn ronctl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ronctl"))
}

fn svc_edge_bin() -> PathBuf {
    let bin = ronctl().parent().unwrap().join("svc-edge");
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "--bins", "-p", "svc-edge"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "building svc-edge failed");
    }
    bin
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// svc-edge with a static pack; killed on drop.
struct Edge {
    child: Child,
    public: SocketAddr,
    metrics: SocketAddr,
}

impl Edge {
    fn start() -> Edge {
        let dir = temp_dir("ronctl-chaos-edge");
        std::fs::create_dir_all(dir.join("static")).unwrap();
        std::fs::write(dir.join("static/hello.txt"), "hello through the proxy\n").unwrap();
        let (public, metrics) = (free_addr(), free_addr());
        let child = Command::new(svc_edge_bin())
            .args([
                "--bind",
                &public.to_string(),
                "--metrics",
                &metrics.to_string(),
            ])
            .args(["--pack", "static"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while test_support::http_raw(
            metrics,
            test_support::request("GET", "/readyz", &[]).as_bytes(),
            false,
        )
        .map_or(true, |r| r.status != 200)
        {
            assert!(Instant::now() < deadline, "svc-edge not ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        Edge {
            child,
            public,
            metrics,
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `ronctl chaos inject … --json` in the background.
fn inject(target: &str, fault: &str, rate: &str, duration: &str) -> Child {
    Command::new(ronctl())
        .args(["chaos", "inject", "--target", target, "--fault", fault])
        .args(["--rate", rate, "--duration", duration, "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn report(child: Child) -> Value {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Runbook ron-metrics §9: slow-loris at 5/s beside a flood; every slow-loris connection
/// is closed by the server (none held), the flood sees only 2xx and no errors, `/readyz`
/// answers every second (503 only with `exposer_capacity`), and the scrape stays valid.
#[test]
fn slowloris_drill_on_a_metrics_exposer_meets_the_runbook_criteria() {
    let edge = Edge::start();
    let target = format!("http://{}/metrics", edge.metrics);
    let loris = inject(&target, "slowloris", "5/s", "8s");
    let flood = inject(&target, "flood", "50/s", "8s");
    let started = Instant::now();
    let mut probes = 0;
    while started.elapsed() < Duration::from_secs(8) {
        let raw = test_support::request("GET", "/readyz", &[]);
        let r = test_support::http_raw(edge.metrics, raw.as_bytes(), false)
            .expect("/readyz answered during the drill");
        assert!(
            r.status == 200 || (r.status == 503 && r.text().contains("exposer_capacity")),
            "{} {}",
            r.status,
            r.text()
        );
        probes += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(probes >= 5);

    let loris = report(loris);
    assert_eq!(loris["connect_errors"], 0, "{loris}");
    assert!(loris["outcomes"].get("held_to_end").is_none(), "{loris}");
    assert_eq!(
        loris["outcomes"]["closed_by_server"], loris["attempts"],
        "every slow-loris connection was closed by the server: {loris}"
    );
    assert_eq!(loris["after"], "HTTP 200");

    let flood = report(flood);
    let statuses = flood["statuses"].as_object().unwrap();
    assert_eq!(statuses.keys().collect::<Vec<_>>(), ["200"], "{flood}");
    assert_eq!(flood["outcomes"]["completed"], flood["attempts"], "{flood}");
    assert_eq!(flood["connect_errors"], 0);

    let page = get(edge.metrics, "/metrics", &[]);
    assert_eq!(page.status, 200);
    if let Some(promtool) = test_support::external("promtool") {
        let (code, out, err) =
            test_support::run_with_stdin(&promtool, &["check", "metrics"], &page.body);
        assert_eq!(code, 0, "{out}{err}");
    }
}

/// The latency proxy between a client and svc-edge: answers arrive (later), every second
/// connection is reset when asked, and the service is fine once the fault is cleared.
#[test]
fn the_latency_proxy_delays_and_resets_and_the_service_recovers() {
    let edge = Edge::start();
    let mut proxy = Command::new(ronctl())
        .args(["chaos", "proxy", "--upstream", &edge.public.to_string()])
        .args([
            "--latency",
            "80ms",
            "--jitter",
            "20ms",
            "--reset-every",
            "2",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(proxy.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let addr: SocketAddr = line
        .split_whitespace()
        .nth(5)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("listening line: {line}"));

    let raw = test_support::request("GET", "/edge/assets/hello.txt", &[]);
    let first = test_support::http_raw(addr, raw.as_bytes(), false).expect("first request");
    assert_eq!(first.status, 200);
    assert_eq!(first.text(), "hello through the proxy\n");
    let second = test_support::http_raw(addr, raw.as_bytes(), false);
    assert!(
        second.is_err() || second.as_ref().is_ok_and(|r| r.body.is_empty()),
        "the second connection is reset: {second:?}"
    );
    let third = test_support::http_raw(addr, raw.as_bytes(), false).expect("third request");
    assert_eq!(third.status, 200);

    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(proxy.id() as i32, libc::SIGTERM);
    }
    let status = proxy.wait().unwrap();
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let stats: Value = serde_json::from_str(
        rest.trim()
            .strip_prefix("ronctl: chaos proxy stopped: ")
            .unwrap_or_else(|| panic!("{rest}")),
    )
    .unwrap();
    assert_eq!(stats["connections"], 3);
    assert_eq!(stats["resets"], 1);
    // Fault cleared: the service answers directly.
    assert_eq!(get(edge.public, "/edge/assets/hello.txt", &[]).status, 200);
    assert_eq!(get(edge.metrics, "/readyz", &[]).status, 200);
}

#[test]
fn drills_refuse_remote_targets_and_bad_arguments() {
    for args in [
        vec![
            "inject",
            "--target",
            "http://192.0.2.1/metrics",
            "--fault",
            "flood",
        ],
        vec![
            "inject",
            "--target",
            "http://127.0.0.1:9/",
            "--fault",
            "flood",
            "--rate",
            "0/s",
        ],
        vec![
            "inject",
            "--target",
            "http://127.0.0.1:9/",
            "--fault",
            "flood",
            "--duration",
            "5h",
        ],
        vec!["proxy", "--upstream", "192.0.2.1:80"],
    ] {
        let out = Command::new(ronctl())
            .arg("chaos")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.lines().count(), 1, "one line: {text}");
    }
}
