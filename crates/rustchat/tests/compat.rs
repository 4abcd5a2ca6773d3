//! Mattermost compatibility suite (spec shared/specs/rustchat.md §10 tests 40, 41, 42): starts
//! the real binary and runs `node --test` over `tests/compat/`, which drives the official
//! `@mattermost/client` 11.9.0 (Client4 and WebSocketClient) and a raw `ws` client against
//! `/api/v4`. The covered routes are listed in `tests/compat/COVERAGE.md`.
//!
//! Needs `node` (20+) on PATH and `tests/compat/node_modules` (scripts/test.sh runs `npm ci`);
//! without them the test skips with a notice, unless RON_REQUIRE_EXTERNAL_TOOLS is set.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Chat, Db};

/// Upper bound for one `node --test` run (the suite itself takes a few seconds).
const NODE_TIMEOUT: Duration = Duration::from_secs(240);

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat")
}

/// `node` (20.11+) and the installed packages, or None after a skip notice (a panic when
/// RON_REQUIRE_EXTERNAL_TOOLS is set).
fn node_and_packages() -> Option<PathBuf> {
    let node = common::node_20_11()?;
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
    let url = format!("http://{}", chat.addr);
    // A hung test fails after a minute instead of stalling until NODE_TIMEOUT.
    match common::run_node_tests(
        node,
        &suite_dir(),
        &[("RUSTCHAT_URL", url.as_str())],
        Duration::from_secs(60),
        NODE_TIMEOUT,
    ) {
        // Keep the per-test lines visible with --nocapture.
        Ok(stdout) => println!("{stdout}"),
        Err(report) => panic!(
            "compatibility suite failed against {url} ({:?} backend): {report}",
            chat.db
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
