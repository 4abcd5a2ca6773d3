//! The `mongoose-server` binary's offline modes and a run (MNG-R09, R10; MNG-T01, T02, T28
//! for what this build registers).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mongoose-server")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .env_remove("MONGOOSE_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

const GOOD: &str = "\
name: cli-test
idleStrategy: backoff
pinning: best-effort
admin:
  address: 127.0.0.1:9200
eventFeeds:
  - name: orders
    type: memory
    queueCapacity: 64
eventSinks:
  - name: big
    type: memory
eventHandlers:
  - agentName: pricing
    idleStrategy: sleeping-millis
    processors:
      pick:
        type: filter
        feeds: [orders]
        config: {field: amount, op: gt, value: 100, to: big}
";

// MNG-T01 (with a config of registered types): --check prints `config ok` and exits 0 even
// while the admin port is taken; it binds nothing.
#[test]
fn check_passes_a_valid_config_without_binding() {
    let dir = test_support::temp_dir("mg-cli");
    let cfg = write(&dir, "server.yaml", GOOD);
    let _taken = std::net::TcpListener::bind("127.0.0.1:9200");
    let (code, out, err) = run(&["--check", "--config", cfg.to_str().unwrap()]);
    assert_eq!((code, out.trim()), (0, "config ok"), "{err}");
}

// MNG-T02: each bad config exits 2 with one stderr line naming the key path (and file:line
// for parser errors).
#[test]
fn bad_configs_exit_2_with_one_line() {
    let dir = test_support::temp_dir("mg-cli");
    let cases = [
        (
            GOOD.replace("    queueCapacity: 64", "    queueCapcity: 64"),
            "queueCapcity",
        ),
        (
            GOOD.replace("queueCapacity: 64", "queueCapacity: 1000"),
            "queueCapacity",
        ),
        (
            GOOD.replace(
                "    type: memory\n    queueCapacity",
                "    type: kafka\n    queueCapacity",
            ),
            "kafka",
        ),
        (GOOD.replace("feeds: [orders]", "feeds: [nope]"), "nope"),
        (GOOD.replace("op: gt", "op: bigger"), "pick"),
        // A type error inside a processor's own config names the inner key, not just the
        // processor (runbook conformance: "one line naming the bad key").
        (
            GOOD.replace("to: big}", "to: [big]}"),
            "config.to: invalid type",
        ),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let cfg = write(&dir, &format!("bad{i}.yaml"), text);
        let (code, _, err) = run(&["--check", "--config", cfg.to_str().unwrap()]);
        assert_eq!(code, 2, "case {i}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "case {i}: {err}");
        assert!(err.contains(needle), "case {i} should name {needle}: {err}");
    }
    let cfg = write(&dir, "typo.yaml", &cases[0].0);
    let (_, _, err) = run(&["--check", "--config", cfg.to_str().unwrap()]);
    assert!(
        err.contains("typo.yaml:") && err.contains("eventFeeds[0].queueCapcity"),
        "{err}"
    );
}

#[test]
fn version_list_types_and_print_config() {
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!("mongoose-server {} (", env!("CARGO_PKG_VERSION")))
            && out.contains("rustc "),
        "{out}"
    );
    // Built from a git checkout (as here and in CI), the commit is named.
    let sha = out.split(['(', ',']).nth(1).unwrap_or_default();
    let in_git = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.git")).exists();
    if in_git && std::env::var_os("RON_BUILD_SHA").is_none() {
        assert!(
            sha.len() == 12 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
            "{out}"
        );
    }
    let (code, out, _) = run(&["--list-types"]);
    assert_eq!(code, 0);
    for t in [
        "memory",
        "log",
        "filter",
        "map",
        "count-by-key",
        "route-by-field",
    ] {
        assert!(out.contains(t), "{t} missing: {out}");
    }
    let dir = test_support::temp_dir("mg-cli");
    let cfg = write(
        &dir,
        "p.yaml",
        &GOOD.replace(
            "address: 127.0.0.1:9200",
            "address: 127.0.0.1:9200\n  token: super-secret-token-123",
        ),
    );
    let (code, out, err) = run(&["--print-config", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("***") && !out.contains("super-secret-token-123"),
        "{out}"
    );
    let (code, _, err) = run(&[]);
    assert_eq!(code, 2, "{err}");
}

// Run mode: the server starts, logs server_ready (JSON on stderr with --log-to stderr),
// drains on SIGTERM and exits 0.
#[test]
fn runs_until_sigterm_and_exits_0() {
    let dir = test_support::temp_dir("mg-cli");
    let cfg = write(&dir, "run.yaml", GOOD);
    let mut child = Command::new(bin())
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "--admin-addr",
            "127.0.0.1:0",
            "--log-to",
            "stderr",
        ])
        .env_remove("MONGOOSE_CONFIG")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(10)).and_then(|first| {
        if first.contains("server_ready") {
            Ok(first)
        } else {
            rx.recv_timeout(Duration::from_secs(10))
        }
    });
    let mut lines: Vec<String> = Vec::new();
    if let Ok(l) = ready {
        lines.push(l);
    }
    while !lines
        .iter()
        .any(|l| l.contains("\"message\":\"server_ready\""))
    {
        lines.push(
            rx.recv_timeout(Duration::from_secs(10))
                .expect("server_ready"),
        );
    }
    let v: serde_json::Value =
        serde_json::from_str(lines.iter().find(|l| l.contains("server_ready")).unwrap()).unwrap();
    assert_eq!(v["service"], "mongoose");
    assert_eq!(v["server"], "cli-test");
    // SAFETY: kill with a valid pid and signal has no memory-safety preconditions.
    unsafe {
        libc_kill(child.id() as i32, 15);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("shutdown_complete")),
        "{rest:?}"
    );
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
