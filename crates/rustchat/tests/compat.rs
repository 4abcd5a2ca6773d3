//! Mattermost compatibility suite (spec shared/specs/rustchat.md §10 tests 40, 41, 42): starts
//! the real binary and runs `node --test` over `tests/compat/`, which drives the official
//! `@mattermost/client` 11.9.0 (Client4 and WebSocketClient) and a raw `ws` client against
//! `/api/v4`. The covered routes are listed in `tests/compat/COVERAGE.md`.
//!
//! Needs `node` (20+) on PATH and `tests/compat/node_modules` (scripts/test.sh runs `npm ci`);
//! without them the test skips with a notice, unless RON_REQUIRE_EXTERNAL_TOOLS is set.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Chat, Db};

/// Upper bound for one `node --test` run (the suite itself takes a few seconds).
const NODE_TIMEOUT: Duration = Duration::from_secs(240);

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat")
}

/// `node` and the installed packages, or None after a skip notice (a panic when
/// RON_REQUIRE_EXTERNAL_TOOLS is set).
fn node_and_packages() -> Option<PathBuf> {
    let node = test_support::external("node")?;
    // node:test's reporters and --test-timeout, and global fetch need Node 20.11 or newer.
    let version = Command::new(&node)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut parts = version
        .trim_start_matches('v')
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    // --test-timeout exists since 20.11.
    if (major, minor) < (20, 11) {
        assert!(
            !test_support::external_tools_required(),
            "node >= 20.11 is required ({} is set), found {version:?}",
            test_support::ENV_REQUIRE_EXTERNAL_TOOLS
        );
        eprintln!("skipping: node >= 20.11 needed for the compatibility suite, found {version:?}");
        return None;
    }
    let modules = suite_dir().join("node_modules/@mattermost/client/package.json");
    if !modules.is_file() {
        assert!(
            !test_support::external_tools_required(),
            "{} is missing ({} is set); run `npm ci --prefix crates/rustchat/tests/compat` \
             (scripts/test.sh does)",
            modules.display(),
            test_support::ENV_REQUIRE_EXTERNAL_TOOLS
        );
        eprintln!(
            "skipping: {} not installed; run `npm ci --prefix crates/rustchat/tests/compat` \
             (scripts/test.sh does)",
            modules.display()
        );
        return None;
    }
    Some(node)
}

/// Runs `node --test` in the suite directory against `chat`; panics with node's output when
/// it fails or overruns.
fn run_suite(node: &Path, chat: &Chat) {
    let dir = suite_dir();
    let url = format!("http://{}", chat.addr);
    // Run from the suite directory with no path arguments: Node then finds every
    // `*.test.mjs` below it (node_modules excluded) the same way on Node 20 and 22.
    let mut child = Command::new(node)
        // A hung test fails after a minute instead of stalling until NODE_TIMEOUT.
        .args(["--test", "--test-reporter=spec", "--test-timeout=60000"])
        .current_dir(&dir)
        .env("RUSTCHAT_URL", &url)
        .env("NO_COLOR", "1")
        .env_remove("NODE_OPTIONS")
        .env_remove("FORCE_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", node.display()));
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + NODE_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for node") {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    match status {
        Some(st) if st.success() => {
            // Keep the per-test lines visible with --nocapture.
            println!("{stdout}");
        }
        Some(st) => panic!(
            "compatibility suite failed against {url} ({:?} backend), node exit {st}\n\
             --- node stdout ---\n{stdout}\n--- node stderr ---\n{stderr}",
            chat.db
        ),
        None => panic!(
            "compatibility suite did not finish within {NODE_TIMEOUT:?} against {url}\n\
             --- node stdout ---\n{stdout}\n--- node stderr ---\n{stderr}"
        ),
    }
}

/// Rate limits raised: the suite registers and logs in a dozen users and opens several
/// WebSockets from 127.0.0.1 within seconds (spec §10: tests not about rate limits raise them).
const ENV: [(&str, &str); 2] = [
    ("RUSTCHAT_SECURITY_RATE_LIMIT_AUTH_PER_MINUTE", "10000"),
    ("RUSTCHAT_SECURITY_RATE_LIMIT_WS_PER_MINUTE", "10000"),
];

// CHAT tests 40, 41, 42 (R9, R10) on SQLite.
#[test]
fn mattermost_client_suite_sqlite() {
    let Some(node) = node_and_packages() else {
        return;
    };
    let chat = Chat::start(Db::Sqlite, &ENV).expect("sqlite always available");
    run_suite(&node, &chat);
}

// CHAT tests 40, 41, 42 (R9, R10) on PostgreSQL (skipped when PostgreSQL is absent).
#[test]
fn mattermost_client_suite_postgres() {
    let Some(node) = node_and_packages() else {
        return;
    };
    let Some(chat) = Chat::start(Db::Postgres, &ENV) else {
        return;
    };
    run_suite(&node, &chat);
}
