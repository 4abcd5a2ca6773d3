//! The shipped deploy files (CHAT-R5): the systemd unit carries the spec's settings and
//! passes `systemd-analyze verify`; the env example and the sample config are what the
//! runbook expects.

mod common;

use std::path::PathBuf;
use std::process::Command;

use test_support::{external, temp_dir};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_systemd_unit_has_the_spec_settings_and_verifies() {
    let unit = std::fs::read_to_string(repo().join("deploy/rustchat/rustchat.service")).unwrap();
    for line in [
        "WorkingDirectory=/opt/rustchat",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=45",
        "Restart=on-failure",
        "LimitNOFILE=1048576",
    ] {
        assert!(unit.lines().any(|l| l.trim() == line), "missing {line}");
    }
    let Some(analyze) = external("systemd-analyze") else {
        return;
    };
    let dir = temp_dir("rustchat-unit");
    let path = dir.join("rustchat.service");
    // Verify against the test binary and a directory that exists here.
    let unit = unit
        .replace("/opt/rustchat/rustchat", common::bin().to_str().unwrap())
        .replace(
            "WorkingDirectory=/opt/rustchat",
            &format!("WorkingDirectory={}", dir.display()),
        )
        .replace("User=rustchat\n", "")
        .replace("Group=rustchat\n", "");
    std::fs::write(&path, unit).unwrap();
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
}

#[test]
fn env_example_names_every_runbook_variable() {
    let env = std::fs::read_to_string(repo().join("deploy/rustchat/env.example")).unwrap();
    for var in [
        "RUSTCHAT_ENVIRONMENT=production",
        "RUSTCHAT_JWT_SECRET=",
        "RUSTCHAT_ENCRYPTION_KEY=",
        "RUSTCHAT_DATABASE_URL=",
        "RUSTCHAT_REDIS_URL=",
        "RUSTCHAT_SECURITY_OAUTH_TOKEN_DELIVERY=cookie",
    ] {
        assert!(env.lines().any(|l| l.starts_with(var)), "missing {var}");
    }
}
