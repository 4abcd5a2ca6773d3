//! Black-box tests of the metrics/admin listener against the real binary (SEN-T28): the
//! JSON shapes of section 3.2, `*` and `%2A`, unknown names, on-demand probes from
//! loopback, 409 without a health check, the running config with its generation and a
//! redacted token, the route table in match order, and the listener's 404/405/413 rules.
//! The remote-peer side of access control is the unit test `admin::tests::access_matrix`.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::Proxy;
use common::upstream::Upstream;
use serde_json::Value;
use test_support::{Response, get, http_raw, request, temp_dir};

const TOKEN: &str = "admin-token-for-tests-0123456789";

fn send(p: &Proxy, method: &str, path: &str, headers: &[&str]) -> Response {
    http_raw(p.admin, request(method, path, headers).as_bytes(), false)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn json(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

fn probes(up: &Upstream) -> usize {
    up.seen
        .lock()
        .iter()
        .filter(|r| r.target == "/health")
        .count()
}

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn config(a: &Upstream, b: &Upstream) -> String {
    format!(
        r#"server {{
    listen "127.0.0.1:0"
}}
metrics {{
    address "127.0.0.1:0"
}}
admin {{
    token "{TOKEN}"
}}
upstream "app" {{
    targets {{
        target "{a}"
        target "{b}" weight=0
    }}
    load-balancing "weighted"
    health-check {{
        type "http" {{
            path "/health"
        }}
        interval-secs 3600
        timeout-secs 2
    }}
}}
upstream "plain" {{
    targets {{
        target "{a}"
    }}
}}
upstream "maint" {{
    static {{
        status 503
        body "back soon"
    }}
}}
route "fallback" {{
    upstream "maint"
}}
route "exact" {{
    matches {{
        path "/exact"
    }}
    upstream "plain"
    policies {{
        timeout-secs 7
        failure-mode "open"
        retries 0
    }}
}}
route "api" {{
    priority "high"
    matches {{
        path-prefix "/api"
        method "GET" "POST"
        header "X-Api-Key"
        header "X-Env" "prod"
    }}
    upstream "app"
    policies {{
        rate-limit {{
            requests-per-second 50
            burst 60
            key "header" "X-Api-Key"
        }}
    }}
}}
"#,
        a = a.addr,
        b = b.addr
    )
}

const UPSTREAM_KEYS: &[&str] = &[
    "name",
    "static",
    "load_balancing",
    "healthy_targets",
    "total_targets",
    "targets",
];
const TARGET_KEYS: &[&str] = &[
    "address",
    "resolved",
    "weight",
    "draining",
    "healthy",
    "active_healthy",
    "passive_ejected",
    "circuit",
    "in_flight",
    "recent_failure_ratio",
    "window_requests",
    "last_check",
];

#[test]
fn admin_api_answers_per_section_3_2() {
    let a = Upstream::start(|_| (200, "a".into()));
    let b = Upstream::start(|_| (200, "b".into()));
    let dir = temp_dir("sen-admin");
    let p = Proxy::start(&dir, &config(&a, &b), &[], 0);
    // The checkers' first probes run at start; with a 1 h interval no other probe comes.
    // An upstream counts a probe when the request arrives, a moment before the proxy has
    // read the answer and recorded `last_check`, so wait for the record too.
    wait_for("the first probes", Duration::from_secs(5), || {
        probes(&a) >= 1
            && probes(&b) >= 1
            && json(&get(p.admin, "/admin/upstreams/*/health", &[]))["upstreams"][0]["targets"]
                .as_array()
                .is_some_and(|ts| ts.iter().all(|t| !t["last_check"].is_null()))
    });

    // GET …/*/health: every upstream in config order, each in the U shape.
    let r = get(p.admin, "/admin/upstreams/*/health", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let all = json(&r);
    assert_eq!(keys(&all), set(&["generation", "upstreams"]));
    assert_eq!(all["generation"], 1);
    let names: Vec<&str> = all["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "plain", "maint"]);
    for u in all["upstreams"].as_array().unwrap() {
        assert_eq!(keys(u), set(UPSTREAM_KEYS), "{u}");
        for t in u["targets"].as_array().unwrap() {
            assert_eq!(keys(t), set(TARGET_KEYS), "{t}");
        }
    }
    let app = &all["upstreams"][0];
    assert_eq!(app["static"], false);
    assert_eq!(app["load_balancing"], "weighted");
    assert_eq!(app["total_targets"], 2);
    assert_eq!(app["healthy_targets"], 2);
    let ta = &app["targets"][0];
    assert_eq!(ta["address"], a.addr.to_string());
    assert_eq!(ta["resolved"], a.addr.to_string());
    assert_eq!(ta["weight"], 1);
    assert_eq!(ta["draining"], false);
    assert_eq!(ta["healthy"], true);
    assert_eq!(ta["active_healthy"], true);
    assert_eq!(ta["passive_ejected"], false);
    assert_eq!(ta["circuit"], "closed");
    assert_eq!(ta["in_flight"], 0);
    assert_eq!(ta["recent_failure_ratio"], 0.0);
    assert_eq!(ta["window_requests"], 0);
    let last = &ta["last_check"];
    assert_eq!(
        keys(last),
        set(&["at", "ok", "status", "latency_ms", "error"])
    );
    assert_eq!(last["ok"], true);
    assert_eq!(last["status"], 200);
    assert!(last["error"].is_null());
    assert!(last["latency_ms"].as_f64().is_some());
    assert!(last["at"].as_str().unwrap().ends_with('Z'), "{last}");
    assert_eq!(app["targets"][1]["draining"], true, "weight 0 drains");
    let plain = &all["upstreams"][1];
    assert!(
        plain["targets"][0]["last_check"].is_null(),
        "no health check, no last check"
    );
    let maint = &all["upstreams"][2];
    assert_eq!(maint["static"], true);
    assert_eq!(maint["total_targets"], 0);
    assert_eq!(maint["targets"], Value::Array(Vec::new()));

    // %2A is `*`; a single name lists just that upstream; an unknown one is a 404.
    let encoded = json(&get(p.admin, "/admin/upstreams/%2A/health", &[]));
    assert_eq!(encoded["upstreams"].as_array().unwrap().len(), 3);
    let one = json(&get(p.admin, "/admin/upstreams/plain/health", &[]));
    assert_eq!(one["upstreams"].as_array().unwrap().len(), 1);
    assert_eq!(one["upstreams"][0]["name"], "plain");
    let r = get(p.admin, "/admin/upstreams/nope/health", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(json(&r)["code"], "unknown_upstream");

    // A window request shows up in the passive ring.
    assert_eq!(get(p.addr, "/exact", &[]).status, 200);
    let one = json(&get(p.admin, "/admin/upstreams/plain/health", &[]));
    assert_eq!(one["upstreams"][0]["targets"][0]["window_requests"], 1);

    // POST …/check from loopback: one more probe per target, then the GET body. A small
    // body is read and ignored.
    let (pa, pb) = (probes(&a), probes(&b));
    let raw = "POST /admin/upstreams/app/check HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello";
    let r = http_raw(p.admin, raw.as_bytes(), false).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let doc = json(&r);
    assert_eq!(keys(&doc), set(&["generation", "upstreams"]));
    assert_eq!(doc["upstreams"][0]["name"], "app");
    assert_eq!((probes(&a), probes(&b)), (pa + 1, pb + 1));

    // No health check: a proxy upstream without one, or a static one → 409.
    for name in ["plain", "maint"] {
        let r = send(&p, "POST", &format!("/admin/upstreams/{name}/check"), &[]);
        assert_eq!(r.status, 409, "{name}");
        assert_eq!(json(&r)["code"], "no_health_check");
    }
    let r = send(&p, "POST", "/admin/upstreams/nope/check", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(json(&r)["code"], "unknown_upstream");

    // `*` and /admin/health-check skip upstreams without checks and probe the rest.
    let r = send(&p, "POST", "/admin/upstreams/%2a/check", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(json(&r)["upstreams"].as_array().unwrap().len(), 3);
    let r = send(&p, "POST", "/admin/health-check", &[]);
    assert_eq!(r.status, 200);
    assert_eq!((probes(&a), probes(&b)), (pa + 3, pb + 3));

    // /admin/config: the running config as --print-config renders it, token redacted.
    let r = get(p.admin, "/admin/config", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("x-config-generation"), Some("1"));
    let text = r.text();
    assert!(text.contains("<redacted>"), "{text}");
    assert!(!text.contains(TOKEN), "the token leaked: {text}");
    assert!(text.contains("upstream \"app\""), "{text}");

    // /admin/routes: match order (priority, then path specificity, then declaration).
    let r = get(p.admin, "/admin/routes", &[]);
    assert_eq!(r.status, 200);
    let doc = json(&r);
    assert_eq!(keys(&doc), set(&["generation", "routes"]));
    let routes = doc["routes"].as_array().unwrap();
    let order: Vec<(&str, u64)> = routes
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["order"].as_u64().unwrap()))
        .collect();
    assert_eq!(order, [("api", 1), ("exact", 2), ("fallback", 3)]);
    for r in routes {
        assert_eq!(
            keys(r),
            set(&[
                "name", "order", "priority", "matches", "upstream", "policies"
            ])
        );
        assert_eq!(
            keys(&r["matches"]),
            set(&["path", "path_prefix", "host", "method", "header"])
        );
        assert_eq!(
            keys(&r["policies"]),
            set(&["timeout_secs", "failure_mode", "retries", "rate_limit"])
        );
    }
    let api = &routes[0];
    assert_eq!(api["priority"], "high");
    assert_eq!(api["upstream"], "app");
    assert_eq!(api["matches"]["path_prefix"][0], "/api");
    assert_eq!(api["matches"]["method"], serde_json::json!(["GET", "POST"]));
    assert_eq!(
        api["matches"]["header"],
        serde_json::json!([{"name": "X-Api-Key", "value": null}, {"name": "X-Env", "value": "prod"}])
    );
    let rl = &api["policies"]["rate_limit"];
    assert_eq!(keys(rl), set(&["requests_per_second", "burst", "key"]));
    assert_eq!(rl["requests_per_second"], 50);
    assert_eq!(rl["burst"], 60);
    let exact = &routes[1];
    assert_eq!(exact["matches"]["path"][0], "/exact");
    assert_eq!(exact["policies"]["timeout_secs"], 7);
    assert_eq!(exact["policies"]["failure_mode"], "open");
    assert_eq!(exact["policies"]["retries"], 0);
    assert!(exact["policies"]["rate_limit"].is_null());
    assert!(routes[2]["policies"]["timeout_secs"].is_null());
    assert_eq!(routes[2]["policies"]["retries"], 1);

    // The listener's own rules: unknown path, wrong method, oversized body.
    let r = get(p.admin, "/admin/nothing", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(json(&r)["code"], "not_found");
    let r = get(p.admin, "/admin/upstreams/app/check", &[]);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    let r = send(&p, "DELETE", "/admin/routes", &[]);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = send(&p, "POST", "/metrics", &[]);
    assert_eq!(r.status, 405);
    let big = vec![b'x'; 70 * 1024];
    let mut raw = format!(
        "POST /admin/health-check HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        big.len()
    )
    .into_bytes();
    raw.extend_from_slice(&big);
    let r = http_raw(p.admin, &raw, false).unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(probes(&a), pa + 3, "an oversized request runs nothing");

    // The house endpoints are still there.
    assert_eq!(get(p.admin, "/healthz", &[]).status, 200);
    assert_eq!(get(p.admin, "/readyz", &[]).status, 200);
    let r = get(p.admin, "/metrics", &[]);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("sentinel_upstream_health{"));
    std::fs::remove_dir_all(dir).unwrap();
}
