//! The application log file (SEN-R45, decision 20; runbook `tail -f
//! /var/log/sentinel/sentinel.log | grep "Configuration reload completed"`, `grep "bind\|listen"
//! sentinel.log`): with `logging.file` set, every app line reaches the file as well as
//! stdout, the file is opened before the listeners bind, and a SIGHUP reopens it.
//!
//! Regression: `logging.file` used to be parsed and checked by `--test-config` but never
//! written, so the runbook's greps over sentinel.log found nothing.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::upstream::Upstream;
use common::{BIN, Proxy};
use test_support::{command, temp_dir};

fn kdl(up: std::net::SocketAddr, listen: &str, file: &Path, extra: &str) -> String {
    format!(
        "server {{\n    listen \"{listen}\"\n}}\nmetrics {{\n    address \"127.0.0.1:0\"\n}}\nupstream \"app\" {{\n    targets {{\n        target \"{up}\"\n    }}\n}}\nroute \"all\" {{\n    upstream \"app\"\n}}\nlogging {{\n    file \"{}\"\n{extra}}}\n",
        file.display()
    )
}

/// The file's lines once one contains `needle` (waits up to 5 s).
fn wait_file(path: &PathBuf, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text.lines().map(str::to_owned).collect();
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn app_lines_reach_logging_file_and_a_sighup_reopens_it() {
    let dir = temp_dir("sen-app-log");
    let up = Upstream::start(|_| (200, "ok".into()));
    // The parent directory does not exist yet: it is created, like the access log's.
    let file = dir.join("log").join("sentinel.log");
    let mut p = Proxy::start(&dir, &kdl(up.addr, "127.0.0.1:0", &file, ""), &[], 0);
    let lines = wait_file(&file, "sentinel-proxy started");
    for message in [
        "Configuration loaded",
        "listening",
        "sentinel-proxy started",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("\"message\":\"{message}\""))),
            "{message} missing from the file: {lines:?}"
        );
    }
    // Every line is a JSON app line, the same as on stdout.
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["service"], "sentinel", "{l}");
    }
    // stdout keeps its lines too (read by a thread, so it may trail the file a little).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut stdout = p.lines_with("sentinel-proxy started", Duration::ZERO);
    while stdout.is_empty() && Instant::now() < deadline {
        stdout = p.lines_with("sentinel-proxy started", Duration::from_millis(100));
    }
    assert_eq!(stdout.len(), 1, "stdout keeps its lines too");

    // Rotation: move the file away, SIGHUP; the reload line lands in a new file.
    let rotated = dir.join("log").join("sentinel.log.1");
    std::fs::rename(&file, &rotated).unwrap();
    p.svc.signal(libc::SIGHUP);
    let lines = wait_file(&file, "Configuration reload completed");
    assert!(
        lines.iter().all(|l| !l.contains("sentinel-proxy started")),
        "{lines:?}"
    );
    assert!(
        !std::fs::read_to_string(&rotated)
            .unwrap()
            .contains("Configuration reload completed")
    );
    // A failed reload is in the file too.
    std::fs::write(&p.config, "server { nope 1 }\n").unwrap();
    p.svc.signal(libc::SIGHUP);
    let lines = wait_file(&file, "Configuration reload failed");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"level\":\"ERROR\"") && l.contains("Configuration reload failed")),
        "{lines:?}"
    );
    assert_eq!(p.metric("sentinel_log_write_errors_total"), 0.0);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runs sentinel against a config whose listener port is already taken (a plain listener
/// without SO_REUSEPORT), so it fails to bind and exits; `logging` adds lines to the
/// logging block. Returns the output and the log file's text.
fn run_into_a_bind_failure(tag: &str, logging: &str) -> (std::process::Output, String) {
    let dir = temp_dir(tag);
    let up = Upstream::start(|_| (200, "ok".into()));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let file = dir.join("sentinel.log");
    let config = dir.join("sentinel.kdl");
    std::fs::write(
        &config,
        kdl(
            up.addr,
            &taken.local_addr().unwrap().to_string(),
            &file,
            logging,
        ),
    )
    .unwrap();
    let out = command(Path::new(BIN), &[])
        .current_dir(&dir)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    (out, text)
}

#[test]
fn a_bind_failure_is_in_the_log_file() {
    let (out, text) = run_into_a_bind_failure("sen-app-log-bind", "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.lines().any(
            |l| l.contains("\"level\":\"ERROR\"") && l.contains("failed to bind main listener")
        ),
        "{text}"
    );
}

#[test]
fn stdout_false_leaves_only_the_file() {
    // The bind failure ends the run quickly; the lines before it show where logs went.
    let (out, text) = run_into_a_bind_failure("sen-app-log-quiet", "    stdout #false\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        text.contains("\"message\":\"Configuration loaded\""),
        "{text}"
    );
    assert!(text.contains("failed to bind"), "{text}");
}
