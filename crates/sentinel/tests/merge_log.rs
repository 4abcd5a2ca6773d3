//! SEN-R09 (runbook "Memory Exhaustion": prepend `limits { max-total-connections 1000 }`
//! and SIGHUP): each merge of a duplicate singleton block logs INFO `duplicate block merged`
//! with the fields `block` and `overridden` as keys of the JSON line, at start-up and on a
//! reload alike.
//!
//! Regression: the fields were packed into one string field, `"fields":"block=limits …"` at
//! start-up and `"fields":"[(\"block\", \"limits\"), …]"` on reloads.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Proxy;
use common::upstream::Upstream;
use test_support::temp_dir;

fn kdl(up: std::net::SocketAddr, log: &Path, prepend: &str) -> String {
    format!(
        "{prepend}logging {{\n    file \"{}\"\n}}\nserver {{\n    listen \"127.0.0.1:0\"\n}}\nmetrics {{\n    address \"127.0.0.1:0\"\n}}\nlimits {{\n    max-total-connections 100\n    max-header-count 50\n}}\nupstream \"app\" {{\n    targets {{\n        target \"{up}\"\n    }}\n}}\nroute \"all\" {{\n    upstream \"app\"\n}}\n",
        log.display()
    )
}

fn assert_merge_line(line: &str) {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["level"], "INFO", "{line}");
    assert_eq!(v["block"], "limits", "{line}");
    assert_eq!(v["overridden"], "max-total-connections", "{line}");
    assert!(v.get("fields").is_none(), "{line}");
}

/// The merge lines of the app log file once there are `n` (5 s at most).
fn merge_lines(log: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines: Vec<String> = std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"message\":\"duplicate block merged\""))
            .map(str::to_owned)
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn merges_log_block_and_overridden_as_fields_at_start_and_on_reload() {
    let dir = temp_dir("sen-merge-log");
    let up = Upstream::start(|_| (200, "ok".into()));
    let log = dir.join("sentinel.log");
    let p = Proxy::start(
        &dir,
        &kdl(up.addr, &log, "limits {\n    max-total-connections 5\n}\n"),
        &[],
        0,
    );
    let lines = merge_lines(&log, 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_merge_line(&lines[0]);
    assert_eq!(p.metric("sentinel_connections_max"), 5.0);

    std::fs::write(
        &p.config,
        kdl(up.addr, &log, "limits { max-total-connections 7 }\n"),
    )
    .unwrap();
    p.svc.signal(libc::SIGHUP);
    p.wait_metric("sentinel_config_generation", 2.0);
    p.wait_metric("sentinel_connections_max", 7.0);
    let lines = merge_lines(&log, 2);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_merge_line(&lines[1]);
    std::fs::remove_dir_all(dir).unwrap();
}
