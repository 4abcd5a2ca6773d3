//! The shipped deploy files (SEN-R12, runbook §9): the systemd unit passes
//! `systemd-analyze verify` and carries the runbook's stop/reload settings, and the alert
//! rules under deploy/ pass `promtool check rules`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{BIN, external};
use test_support::temp_dir;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_systemd_unit_verifies_with_the_runbook_settings() {
    let unit = std::fs::read_to_string(repo().join("deploy/sentinel/sentinel.service")).unwrap();
    for line in [
        "ExecStart=/usr/local/bin/sentinel-proxy --config /etc/sentinel/config.kdl",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=45",
        "LimitNOFILE=65535",
        "Restart=on-failure",
    ] {
        assert!(unit.lines().any(|l| l.trim() == line), "missing {line}");
    }
    let Some(analyze) = external("systemd-analyze") else {
        return;
    };
    let dir = temp_dir("sen-unit");
    let path = dir.join("sentinel.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/sentinel-proxy", BIN)).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_deploy_alert_rules_pass_promtool() {
    let rules = repo().join("deploy/sentinel/prometheus/sentinel-rules.yml");
    assert!(std::fs::read_to_string(&rules).unwrap().contains("alert:"));
    let Some(promtool) = external("promtool") else {
        return;
    };
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
