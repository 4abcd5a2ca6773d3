//! Black-box tests against the example binary (MET-T6, T7, T21, T22, runbook §2/§3/§5):
//! environment knobs, config errors with exit 2, synthetic load, and the SIGINT drain.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{example_bin, expfmt, promtool_check};
use test_support::{Service, get, request};

const STARTED: &str = "metrics exposer started";

fn spawn(env: &[(&str, &str)]) -> Service {
    let mut all = vec![("RON_METRICS_ADDR", "127.0.0.1:0")];
    all.extend_from_slice(env);
    Service::spawn(&example_bin(), &all, STARTED)
}

/// Runs the example expecting a config error: (exit code, stderr, whether it bound).
fn run_bad(env: &[(&str, &str)]) -> (i32, String, bool) {
    let mut cmd = Command::new(example_bin());
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "RON_METRICS_ADDR",
        "RON_METRICS_UDS",
        "RON_METRICS_TLS_CERT",
        "RON_METRICS_TLS_KEY",
        "RON_AMNESIA",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout.contains(STARTED),
    )
}

#[test]
fn amnesia_values_are_reflected_on_every_sample() {
    for (value, want) in [("on", "on"), ("off", "off"), ("TRUE", "on"), ("0", "off")] {
        let svc = spawn(&[
            ("RON_AMNESIA", value),
            ("RON_SERVICE", "svc-x"),
            ("RON_INSTANCE", "n1"),
        ]);
        let text = get(svc.tcp(), "/metrics", &[]).text();
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(samples.len() > 50);
        for l in samples {
            assert!(
                l.contains("{service=\"svc-x\",instance=\"n1\",build_version=\"")
                    && l.contains(&format!("amnesia=\"{want}\"")),
                "{value}: {l}"
            );
        }
    }
}

#[test]
fn bad_environment_exits_2_with_one_line_and_binds_nothing() {
    let cases: &[&[(&str, &str)]] = &[
        &[("RON_AMNESIA", "maybe")],
        &[
            ("RON_METRICS_ADDR", "127.0.0.1:0"),
            ("RON_METRICS_UDS", "/tmp/ron-t7.sock"),
        ],
        &[("RON_METRICS_TLS_CERT", "/tmp/cert.pem")],
        &[("RON_METRICS_FOO", "1")],
        &[("RUST_LOG", "info,[")],
    ];
    for env in cases {
        let (code, stderr, bound) = run_bad(env);
        assert_eq!(code, 2, "{env:?}: {stderr}");
        assert!(!bound, "{env:?} bound a port");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{env:?}: {stderr}");
        assert!(
            lines[0].starts_with("exposer: config error: "),
            "{}",
            lines[0]
        );
        let var = env.last().unwrap().0;
        if var != "RUST_LOG" {
            assert!(lines[0].contains(var), "{}", lines[0]);
        }
    }
    let (_, stderr, _) = run_bad(&[("RON_AMNESIA", "maybe")]);
    assert_eq!(
        stderr.trim_end(),
        r#"exposer: config error: RON_AMNESIA = "maybe" (env RON_AMNESIA): expected on|off|true|false|1|0"#
    );
}

#[test]
fn large_synthetic_load_has_11000_series_in_20_families_and_stays_valid() {
    let svc = spawn(&[("RON_METRICS_LOAD", "large")]);
    let text = get(svc.tcp(), "/metrics", &[]).text();
    let stats = expfmt::check(&text, false).unwrap_or_else(|e| panic!("{e}"));
    let families: Vec<_> = stats
        .types
        .keys()
        .filter(|k| k.starts_with("ron_synthetic_"))
        .collect();
    assert_eq!(families.len(), 20);
    let series = text
        .lines()
        .filter(|l| l.starts_with("ron_synthetic_"))
        .filter(|l| !l.contains("_bucket{") && !l.contains("_sum{"))
        .count();
    assert!(series >= 11_000, "{series}");
    if let Some((code, out)) = promtool_check(&text, false) {
        assert_eq!((code, out.as_str()), (0, ""));
    }
}

/// Polls `/readyz` for up to 1 s (the spec's ready window); returns the last answer.
fn wait_ready(addr: std::net::SocketAddr) -> test_support::Response {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let r = get(addr, "/readyz", &[]);
        if r.status == 200 || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn readiness_is_green_within_a_second_and_since_parses_with_date() {
    let svc = spawn(&[]);
    let body = wait_ready(svc.tcp());
    assert_eq!(body.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body.body).unwrap();
    let since = v["since"].as_str().unwrap();
    let out = Command::new("date")
        .args(["-d", since, "+%s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "date -d {since}");
}

#[test]
fn sigint_drains_readyz_then_exits_zero_and_second_sigint_forces() {
    let mut svc = spawn(&[]);
    let addr = svc.tcp();
    assert_eq!(wait_ready(addr).status, 200);
    svc.signal(libc::SIGINT);
    std::thread::sleep(Duration::from_millis(200));
    let r =
        test_support::http_raw(addr, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", false).unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(
        r.text()
            .split("\"missing\":[")
            .nth(1)
            .unwrap()
            .split(']')
            .next(),
        Some("\"draining\"")
    );
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(get(addr, "/healthz", &[]).status, 200);
    assert_eq!(svc.wait_exit(Duration::from_secs(3)), Some(0));

    let mut svc = spawn(&[]);
    svc.signal(libc::SIGINT);
    std::thread::sleep(Duration::from_millis(100));
    svc.signal(libc::SIGINT);
    assert_eq!(svc.wait_exit(Duration::from_millis(900)), Some(0));
}

#[test]
fn post_is_logged_as_exposer_reject_with_method() {
    let svc = spawn(&[]);
    let r = test_support::http_raw(
        svc.tcp(),
        request("POST", "/metrics", &[]).as_bytes(),
        false,
    )
    .unwrap();
    assert_eq!(r.status, 405);
    let id = r.header("x-corr-id").unwrap().to_owned();
    let lines = svc.drain_lines(Duration::from_millis(500));
    let line = lines
        .iter()
        .find(|l| l.contains("\"message\":\"exposer_reject\""))
        .expect("exposer_reject line");
    assert!(line.contains("\"method\":\"POST\""), "{line}");
    assert!(line.contains(&format!("\"corr_id\":\"{id}\"")), "{line}");
    assert!(line.starts_with("{\"ts\":"));
}

#[test]
fn bind_failure_exits_1_naming_the_address() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let out = test_support::command(&example_bin(), &[("RON_METRICS_ADDR", &addr)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&addr), "{stdout}");
    assert!(stdout.contains("\"level\":\"ERROR\""));
}

#[test]
fn uds_env_knob_serves_over_a_private_unix_socket() {
    let dir = test_support::temp_dir("example-uds");
    let sock = dir.join("run").join("metrics.sock");
    let sock_s = sock.to_str().unwrap().to_owned();
    let svc = Service::spawn(&example_bin(), &[("RON_METRICS_UDS", &sock_s)], STARTED);
    assert_eq!(svc.addr, format!("unix:{sock_s}"));
    let r = test_support::http_uds(&sock, request("GET", "/healthz", &[]).as_bytes()).unwrap();
    assert_eq!(r.text(), "ok");
    if let Some(curl) = test_support::tool("curl") {
        let out = Command::new(curl)
            .args(["-sS", "--unix-socket", &sock_s, "http://x/healthz"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ok");
    }
}
