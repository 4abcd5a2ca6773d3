//! SEN-R22 step 5 (runbook "System Tuning": `ulimit -n 65535`): at start-up sentinel raises
//! its open-files soft limit to the hard limit, and warns `nofile limit low` when even that
//! cannot hold `max-total-connections` + every pool's `max-connections` + 64.
//!
//! Regression: the limit was left as inherited, so a proxy started from a shell with the
//! usual soft limit of 1024 ran out of descriptors long before `max-total-connections`.

mod common;

use std::path::Path;
use std::process::Command;

use common::BIN;
use common::upstream::Upstream;
use test_support::{Service, temp_dir};

/// (soft, hard) of "Max open files" in /proc/PID/limits.
fn nofile(pid: u32) -> (String, String) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let cols: Vec<&str> = line.split_whitespace().collect();
    (cols[3].to_owned(), cols[4].to_owned())
}

/// Starts sentinel from a shell whose soft limit is 256, waiting for a `wait_for` line; its
/// app log also goes to `dir/sentinel.log`.
fn start_low(dir: &Path, limits: &str, wait_for: &str) -> (Service, Vec<String>) {
    let up = Upstream::start(|_| (200, "ok".into()));
    let config = dir.join("sentinel.kdl");
    std::fs::write(
        &config,
        format!(
            "server {{\n    listen \"127.0.0.1:0\"\n}}\nmetrics {{\n    address \"127.0.0.1:0\"\n}}\n{limits}upstream \"app\" {{\n    targets {{\n        target \"{}\"\n    }}\n}}\nroute \"all\" {{\n    upstream \"app\"\n}}\nlogging {{\n    file \"{}\"\n}}\n",
            up.addr,
            dir.join("sentinel.log").display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new("bash");
    cmd.current_dir(dir)
        .arg("-c")
        .arg("ulimit -Sn 256 && exec \"$0\" --config \"$1\"")
        .arg(BIN)
        .arg(&config)
        .stdout(std::process::Stdio::piped());
    let started = Service::start(cmd, wait_for, 1);
    drop(up);
    started
}

#[test]
fn the_soft_open_files_limit_is_raised_to_the_hard_limit() {
    let (_, hard_here) = nofile(std::process::id());
    if hard_here.parse::<u64>().is_ok_and(|h| h <= 256) {
        eprintln!("notice: the hard open-files limit is {hard_here}; nothing to raise");
        return;
    }
    let dir = temp_dir("sen-nofile");
    let (svc, _) = start_low(&dir, "", "sentinel-proxy started");
    let (soft, hard) = nofile(svc.child.id());
    assert_eq!(soft, hard, "soft limit raised to the hard limit");
    let log = std::fs::read_to_string(dir.join("sentinel.log")).unwrap();
    assert!(log.contains("\"message\":\"listening\""), "{log}");
    assert!(!log.contains("nofile limit low"), "{log}");
    drop(svc);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_hard_limit_below_the_connection_caps_is_warned_about() {
    let (_, hard) = nofile(std::process::id());
    let Ok(hard) = hard.parse::<u64>() else {
        eprintln!("notice: the hard open-files limit is unlimited; no warning to provoke");
        return;
    };
    let dir = temp_dir("sen-nofile-low");
    // More connections allowed than descriptors available.
    let (svc, lines) = start_low(
        &dir,
        &format!("limits {{\n    max-total-connections {}\n}}\n", hard + 1),
        "nofile limit low",
    );
    let warn = &lines[0];
    assert!(warn.contains("\"level\":\"WARN\""), "{warn}");
    // needed = max-total-connections + 1 target × the default pool (100) + 64.
    assert!(
        warn.contains(&format!("\"needed\":{}", hard + 1 + 100 + 64)),
        "{warn}"
    );
    assert!(warn.contains(&format!("\"soft\":{hard}")), "{warn}");
    drop(svc);
    std::fs::remove_dir_all(dir).unwrap();
}
