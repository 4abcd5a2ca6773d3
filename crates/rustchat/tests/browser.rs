//! The embedded web UI in headless Chromium (spec shared/specs/rustchat.md §3.6, CHAT-R11;
//! §10 test 49, the browser half of test 37, and test 38's cookie/CSRF behaviour as the UI
//! sees it). Starts the real binary on SQLite, seeds two users, two teams and the channels
//! the suite uses through the API, then runs `node --test` over `tests/e2e/`, which drives
//! Debian's `/usr/bin/chromium` with `playwright-core` (no browser download).
//!
//! Needs `chromium` and `node` (20.11+) on PATH and `tests/e2e/node_modules` (scripts/test.sh
//! installs all three); without them the test skips with a notice, unless
//! RON_REQUIRE_EXTERNAL_TOOLS is set.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Chat, Db};
use serde_json::{Value, json};

/// Upper bound for the whole suite (it takes well under a minute on an idle machine).
const SUITE_LIMIT: Duration = Duration::from_secs(480);
/// Upper bound for one test of the suite (a `describe` block counts as one test).
const TEST_LIMIT: Duration = Duration::from_secs(180);
/// The password `Chat::user` registers with.
const PASSWORD: &str = "password-123";

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e")
}

/// (node, chromium), or None after a skip notice.
fn tools() -> Option<(PathBuf, PathBuf)> {
    let chromium = test_support::external("chromium")?;
    let node = common::node_20_11()?;
    let modules = suite_dir().join("node_modules/playwright-core/package.json");
    if !modules.is_file() {
        assert!(
            !test_support::external_tools_required(),
            "{} is missing ({} is set); run `npm ci --prefix crates/rustchat/tests/e2e` \
             (scripts/test.sh does)",
            modules.display(),
            test_support::ENV_REQUIRE_EXTERNAL_TOOLS
        );
        eprintln!(
            "skipping: {} not installed; run `npm ci --prefix crates/rustchat/tests/e2e`",
            modules.display()
        );
        return None;
    }
    Some((node, chromium))
}

/// A team with a display name; returns its id.
fn team(chat: &Chat, token: &str, name: &str, display: &str) -> String {
    let r = chat.call(
        "POST",
        "/api/v1/teams",
        Some(token),
        Some(&json!({"name": name, "display_name": display, "open": false})),
    );
    assert_eq!(r.status, 201, "create team {name}: {}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

/// A public channel created by `token` with a display name (its name capitalised); `also`
/// joins it.
fn channel(chat: &Chat, token: &str, also: &str, team: &str, name: &str) -> String {
    let mut display = name.to_string();
    display[..1].make_ascii_uppercase();
    let r = chat.call(
        "POST",
        &format!("/api/v1/teams/{team}/channels"),
        Some(token),
        Some(&json!({"name": name, "display_name": display, "type": "public"})),
    );
    assert_eq!(r.status, 201, "create channel {name}: {}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    chat.join(also, &id);
    id
}

/// Users alice (the first account, system_admin) and bob, both in teams `e2e` and `other`,
/// carol (in `e2e` only),
/// and the channels of `e2e`: general and random (test 49), xss (37), csrf (38), resync and
/// away (reconnect), history (paging). Each suite file owns its channels, so files do not
/// disturb each other.
fn seed(chat: &Chat) -> Value {
    let (alice, alice_id) = chat.user("alice");
    let (bob, bob_id) = chat.user("bob");
    // carol never signs in: she makes the group message a group.
    let (_, carol_id) = chat.user("carol");
    let main = team(chat, &alice, "e2e", "E2E Team");
    let other = team(chat, &alice, "other", "Another Team");
    for t in [&main, &other] {
        chat.add_to_team(&alice, t, &bob_id);
    }
    chat.add_to_team(&alice, &main, &carol_id);
    let mut channels = serde_json::Map::new();
    for name in [
        "general", "random", "xss", "csrf", "resync", "away", "history",
    ] {
        channels.insert(name.into(), json!(channel(chat, &alice, &bob, &main, name)));
    }
    channel(chat, &alice, &bob, &other, "lobby");
    json!({
        "password": PASSWORD,
        "users": {
            "alice": {"id": alice_id, "token": alice},
            "bob": {"id": bob_id, "token": bob},
            "carol": {"id": carol_id},
        },
        "teams": {"main": {"id": main}, "other": {"id": other}},
        "channels": channels,
    })
}

// CHAT test 49 (R11): log in, team and channel, live messages between two contexts, typing,
// thread reply, reaction, unread badge up and cleared, file attach and download; plus the
// browser half of test 37 (XSS corpus, CSP, no inline script), test 38 as seen by the UI
// (HttpOnly session cookie, CSRF header), the OIDC UI contract and reconnect/resync.
#[test]
fn web_ui_in_headless_chromium() {
    let Some((node, chromium)) = tools() else {
        return;
    };
    let chat = Chat::start(Db::Sqlite, &[]).expect("sqlite always available");
    let seed = seed(&chat).to_string();
    let url = format!("http://{}", chat.addr);
    let env = [
        ("RUSTCHAT_URL", url.as_str()),
        ("RUSTCHAT_E2E_SEED", seed.as_str()),
        ("RUSTCHAT_CHROMIUM", chromium.to_str().expect("utf-8 path")),
    ];
    match common::run_node_tests(&node, &suite_dir(), &env, TEST_LIMIT, SUITE_LIMIT) {
        Ok(out) => println!("{out}"),
        Err(report) => panic!("browser suite failed against {url}: {report}"),
    }
}
