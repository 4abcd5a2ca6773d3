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

/// Client secret the test provider and rustchat share.
const IDP_SECRET: &str = "e2e-oidc-client-secret-7d3f9a1b2c4e";

/// Starts `tests/oidc/real.mjs` (node-oidc-provider) for `redirect_uri`; None (the OIDC
/// browser test then skips) when its packages are not installed and tools are optional.
fn idp(node: &Path, redirect_uri: &str) -> Option<(test_support::Service, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
    if !dir
        .join("node_modules/oidc-provider/package.json")
        .is_file()
    {
        assert!(
            !test_support::external_tools_required(),
            "tests/oidc/node_modules is missing; run `npm ci --prefix crates/rustchat/tests/oidc`"
        );
        return None;
    }
    let mut cmd = std::process::Command::new(node);
    cmd.arg(dir.join("real.mjs"))
        .current_dir(&dir)
        .env("CLIENT_SECRET", IDP_SECRET)
        .env("REDIRECT_URI", redirect_uri)
        .stdin(std::process::Stdio::null());
    let (svc, seen) = test_support::Service::start(cmd, "idp ready", 1);
    let issuer = test_support::json_field(&seen[0], "issuer").expect("issuer");
    Some((svc, issuer))
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
    // The real OpenID provider of tests/oidc (node-oidc-provider), so the UI's single
    // sign-on button is exercised end to end; rustchat's port is chosen first because the
    // provider must know the redirect URI.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let idp = idp(&node, &format!("{base}/api/v1/oauth2/test/callback"));
    let port_s = port.to_string();
    let mut chat_env: Vec<(&str, &str)> =
        vec![("RUSTCHAT_PORT", &port_s), ("RUSTCHAT_SITE_URL", &base)];
    if let Some((_, issuer)) = &idp {
        chat_env.extend([
            (
                "RUSTCHAT_OAUTH__PROVIDERS__TEST__ISSUER_URL",
                issuer.as_str(),
            ),
            ("RUSTCHAT_OAUTH__PROVIDERS__TEST__CLIENT_ID", "rustchat"),
            ("RUSTCHAT_OAUTH__PROVIDERS__TEST__CLIENT_SECRET", IDP_SECRET),
            ("RUSTCHAT_OAUTH__PROVIDERS__TEST__DISPLAY_NAME", "Test IdP"),
        ]);
    }
    let chat = Chat::start_in(
        test_support::temp_dir("rustchat"),
        Db::Sqlite,
        None,
        &chat_env,
    );
    let seed = seed(&chat).to_string();
    let url = format!("http://{}", chat.addr);
    let issuer = idp.as_ref().map_or("", |(_, i)| i.as_str());
    let env = [
        ("RUSTCHAT_URL", url.as_str()),
        ("RUSTCHAT_E2E_SEED", seed.as_str()),
        ("RUSTCHAT_CHROMIUM", chromium.to_str().expect("utf-8 path")),
        ("RUSTCHAT_E2E_IDP", issuer),
    ];
    match common::run_node_tests(&node, &suite_dir(), &env, TEST_LIMIT, SUITE_LIMIT) {
        Ok(out) => println!("{out}"),
        Err(report) => panic!("browser suite failed against {url}: {report}"),
    }
}
