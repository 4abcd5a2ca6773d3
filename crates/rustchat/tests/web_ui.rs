//! Serving the embedded web UI over plain HTTP (spec shared/specs/rustchat.md §3.6, CHAT-R11;
//! the header half of §10 test 37): the exact CSP on every UI response, strong ETags with
//! 304 revalidation and `Cache-Control: no-cache` on static files, HTML navigations to UI
//! routes answered with index.html, and the API's own answers (JSON 404, the v4 501) left
//! alone. Also checks the shipped files themselves: every module the page imports is
//! served, and nothing builds HTML from strings or runs inline code. No browser needed;
//! `tests/browser.rs` drives the UI in Chromium.

mod common;

use std::collections::BTreeSet;

use common::{Chat, Db};
use test_support::{Response, get};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

const HTML: &str = "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

fn assert_ui(r: &Response, what: &str) {
    assert_eq!(
        r.header("content-security-policy"),
        Some(CSP),
        "{what}: CSP"
    );
    assert_eq!(r.header("cache-control"), Some("no-cache"), "{what}");
}

fn assert_index(r: &Response, what: &str) {
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{what}"
    );
    assert!(
        r.text()
            .contains(r#"<script type="module" src="/static/app.js"></script>"#),
        "{what}: the UI's page"
    );
    assert_ui(r, what);
}

fn assert_json_404(r: &Response, what: &str) {
    assert_eq!(r.status, 404, "{what}");
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{what}: JSON"
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON body");
    assert_eq!(v["code"], "not_found", "{what}");
    assert_eq!(r.header("content-security-policy"), None, "{what}");
}

// CHAT test 37 (headers; R11): `/`, HTML navigations, static files, 304s carry the exact CSP.
#[test]
fn ui_routes_headers_and_caching() {
    let chat = Chat::start(Db::Sqlite, &[]).expect("sqlite");
    let a = chat.addr;

    // `/` whatever the Accept; the security headers of every response too.
    let root = get(a, "/", &[]);
    assert_index(&root, "GET /");
    assert_eq!(root.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(root.header("x-frame-options"), Some("DENY"));
    assert_index(&get(a, "/", &[HTML]), "GET / (html)");

    // UI routes (the OIDC landing pages among them) for browsers only.
    for path in [
        "/login",
        "/login/complete",
        "/login?error=state_invalid",
        "/some/where",
    ] {
        assert_index(&get(a, path, &[HTML]), path);
        assert_json_404(&get(a, path, &["Accept: application/json"]), path);
    }
    assert_json_404(&get(a, "/some/where", &[]), "no Accept");

    // API paths keep their own answers even for a browser.
    assert_json_404(&get(a, "/api/v1/nope", &[HTML]), "/api/v1/nope");
    assert_json_404(&get(a, "/hooks", &[HTML]), "/hooks");
    let v4 = get(a, "/api/v4/anything", &[HTML]);
    assert_eq!(v4.status, 501, "{}", v4.text());
    let body: serde_json::Value = serde_json::from_slice(&v4.body).unwrap();
    assert_eq!(body["id"], "api.rustchat.not_implemented.app_error");
    assert_eq!(body["status_code"], 501);
    let live = get(a, "/healthz", &[HTML]);
    assert_eq!(live.status, 200);
    assert!(live.text().contains("uptime_seconds"));
    let post_root = chat.call_raw("POST", "/", None, Some("{}"), &[HTML]);
    assert_eq!(post_root.status, 405, "{}", post_root.text);
    assert_eq!(post_root.json["code"], "method_not_allowed");

    // Static files: content type, strong ETag, 304 on revalidation, no-cache, CSP.
    let js = get(a, "/static/app.js", &[]);
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_ui(&js, "app.js");
    let etag = js.header("etag").expect("ETag").to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "a strong ETag: {etag}"
    );
    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
    ] {
        let again = get(a, "/static/app.js", &[&format!("If-None-Match: {inm}")]);
        assert_eq!(again.status, 304, "If-None-Match: {inm}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        assert_ui(&again, "304");
    }
    let changed = get(a, "/static/app.js", &["If-None-Match: \"stale\""]);
    assert_eq!(changed.status, 200);
    assert_eq!(changed.body, js.body);
    let css = get(a, "/static/app.css", &[]);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert_ne!(
        css.header("etag"),
        Some(etag.as_str()),
        "ETags follow content"
    );
    assert_ui(&css, "app.css");
    assert_json_404(&get(a, "/static/missing.js", &[HTML]), "missing asset");
    assert_json_404(&get(a, "/static/../index.html", &[]), "path traversal");
}

/// `./x.js` imports of a module.
fn imports(js: &str) -> Vec<String> {
    js.lines()
        .filter_map(|l| l.split_once(" from './").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_once('\'').map(|(name, _)| name.to_string()))
        .collect()
}

// CHAT-R11, R30 (test 37): every file the page needs is served, and the shipped code has no
// inline script or style and never turns strings into HTML or code.
#[test]
fn shipped_files_are_complete_and_inert() {
    let chat = Chat::start(Db::Sqlite, &[]).expect("sqlite");
    let index = get(chat.addr, "/", &[]).text();
    for bad in ["style=", "<style", "javascript:", " on"] {
        let lower = index.to_ascii_lowercase();
        let hit = if bad == " on" {
            // An event-handler attribute: ` on<letters>=`.
            lower.match_indices(" on").any(|(i, _)| {
                let rest = &lower[i + 3..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .collect();
                !name.is_empty() && rest[name.len()..].trim_start().starts_with('=')
            })
        } else {
            lower.contains(bad)
        };
        assert!(!hit, "index.html contains {bad:?}");
    }
    let scripts: Vec<&str> = index.split("<script").skip(1).collect();
    assert_eq!(scripts.len(), 1, "one module entry point");
    assert!(
        scripts[0].starts_with(r#" type="module" src="/static/app.js"></script>"#),
        "the script tag has no inline body"
    );

    // Walk the module graph from app.js: every import is served as JavaScript.
    let mut seen = BTreeSet::new();
    let mut todo = vec!["app.js".to_string()];
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let r = get(chat.addr, &format!("/static/{name}"), &[]);
        assert_eq!(r.status, 200, "/static/{name} (imported)");
        assert_eq!(
            r.header("content-type"),
            Some("text/javascript; charset=utf-8")
        );
        let src = r.text();
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "setAttribute('on",
            ".style.",
            "DOMParser",
            "createContextualFragment",
        ] {
            assert!(!src.contains(sink), "{name} uses {sink}");
        }
        todo.extend(imports(&src));
    }
    assert!(seen.len() >= 10, "the module graph: {seen:?}");
    for asset in ["/static/app.css", "/static/favicon.svg"] {
        let r = get(chat.addr, asset, &[]);
        assert_eq!(r.status, 200, "{asset}");
        assert!(index.contains(asset), "index.html links {asset}");
    }
}
