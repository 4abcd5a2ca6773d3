//! `route "NAME" { … }` (spec §2.4): priority, match conditions, the upstream reference
//! (checked in `validate`) and policies including the rate limit.

use kdl::KdlNode;

use super::model::*;
use super::parse::{RouteLocs, named, set};
use super::reader::{Reader, join};
use super::rules;

const ROUTE_KEYS: [&str; 4] = ["priority", "matches", "upstream", "policies"];
const MATCH_KEYS: [&str; 5] = ["path", "path-prefix", "host", "method", "header"];
const POLICY_KEYS: [&str; 4] = ["timeout-secs", "failure-mode", "retries", "rate-limit"];
const RATE_KEYS: [&str; 4] = ["requests-per-second", "burst", "key", "max-keys"];

/// Default `max-keys` of a rate limit.
pub const DEFAULT_MAX_KEYS: u32 = 100_000;

/// A value rule from `rules`: `Err` carries the rule that was broken.
type Rule = fn(&str) -> Result<(), String>;

/// Most values one match key may list.
const MAX_MATCH_VALUES: usize = 256;

/// Reads one route; `None` only when it has no usable name.
pub(crate) fn read(r: &mut Reader, n: &KdlNode) -> Option<(Route, RouteLocs)> {
    let (name, name_loc) = named(r, n, "route")?;
    let path = name_loc.path.clone();
    let mut rl = RouteLocs {
        name: Some(name_loc),
        upstream: None,
    };
    let mut route = Route {
        name,
        priority: Priority::Normal,
        matches: Matches::default(),
        upstream: String::new(),
        policies: Policies::default(),
    };
    let children = n.children().map_or(&[][..], |d| d.nodes());
    let mut has_upstream = false;
    for k in r.keys(children, &path, &ROUTE_KEYS, &[]) {
        let kp = join(&path, k.name().value());
        match k.name().value() {
            "priority" => {
                if let Some(v) = r.choice(k, &kp, &["low", "normal", "high", "critical"]) {
                    route.priority = match v.as_str() {
                        "low" => Priority::Low,
                        "high" => Priority::High,
                        "critical" => Priority::Critical,
                        _ => Priority::Normal,
                    };
                }
            }
            "matches" => route.matches = matches(r, k, &kp),
            "upstream" => {
                has_upstream = true;
                if let Some(u) = r.string(k, &kp) {
                    rl.upstream = Some(r.value_loc(k, &kp));
                    route.upstream = u;
                }
            }
            "policies" => route.policies = policies(r, k, &kp),
            _ => {}
        }
    }
    if !has_upstream {
        r.error_node(n, &path, "required key \"upstream\" is missing");
    }
    Some((route, rl))
}

fn matches(r: &mut Reader, n: &KdlNode, path: &str) -> Matches {
    let children = r.block(n, path);
    let mut m = Matches::default();
    for k in r.keys(children, path, &MATCH_KEYS, &MATCH_KEYS) {
        let key = k.name().value();
        let kp = join(path, key);
        if key == "header" {
            let Some(args) = r.list(k, &kp, 1, 2) else {
                continue;
            };
            let name = r.string_entry(args[0], &kp);
            let value = match args.get(1) {
                Some(e) => r.string_entry(e, &kp).map(Some),
                None => Some(None),
            };
            let (Some(name), Some(value)) = (name, value) else {
                continue;
            };
            match rules::header_name(&name) {
                Ok(()) => m.header.push((name, value)),
                Err(why) => r.error_entry(args[0], &kp, format!("{why}, got {name:?}")),
            }
            continue;
        }
        let (rule, list): (Rule, &mut Vec<String>) = match key {
            "path" => (rules::path, &mut m.path),
            "path-prefix" => (rules::path, &mut m.path_prefix),
            "host" => (rules::match_host, &mut m.host),
            _ => (rules::method, &mut m.method),
        };
        let Some(args) = r.list(k, &kp, 1, MAX_MATCH_VALUES) else {
            continue;
        };
        for e in args {
            let Some(v) = r.string_entry(e, &kp) else {
                continue;
            };
            match rule(&v) {
                Ok(()) => list.push(v),
                Err(why) => r.error_entry(e, &kp, format!("{why}, got {v:?}")),
            }
        }
    }
    m
}

fn policies(r: &mut Reader, n: &KdlNode, path: &str) -> Policies {
    let children = r.block(n, path);
    let mut p = Policies::default();
    for k in r.keys(children, path, &POLICY_KEYS, &[]) {
        let kp = join(path, k.name().value());
        match k.name().value() {
            "timeout-secs" => p.timeout_secs = r.u64(k, &kp, 1, 3600).or(p.timeout_secs),
            "failure-mode" => {
                if let Some(v) = r.choice(k, &kp, &["closed", "open"]) {
                    p.failure_mode = if v == "open" {
                        FailureMode::Open
                    } else {
                        FailureMode::Closed
                    };
                }
            }
            "retries" => set!(p.retries, r.u32(k, &kp, 0, 5)),
            "rate-limit" => p.rate_limit = rate_limit(r, k, &kp),
            _ => {}
        }
    }
    p
}

fn rate_limit(r: &mut Reader, n: &KdlNode, path: &str) -> Option<RateLimit> {
    let children = r.block(n, path);
    let mut rps = None;
    let mut burst = None;
    let mut key = RateKey::ClientIp;
    let mut max_keys = DEFAULT_MAX_KEYS;
    let mut rps_seen = false;
    for k in r.keys(children, path, &RATE_KEYS, &[]) {
        let kp = join(path, k.name().value());
        match k.name().value() {
            "requests-per-second" => {
                rps_seen = true;
                rps = r.u32(k, &kp, 1, 1_000_000);
            }
            "burst" => burst = r.u32(k, &kp, 1, 1_000_000),
            "key" => set!(key, rate_key(r, k, &kp)),
            "max-keys" => set!(max_keys, r.u32(k, &kp, 1000, 10_000_000)),
            _ => {}
        }
    }
    if !rps_seen {
        r.error_node(n, path, "required key \"requests-per-second\" is missing");
    }
    let rps = rps?;
    Some(RateLimit {
        requests_per_second: rps,
        burst: burst.unwrap_or(rps),
        key,
        max_keys,
    })
}

/// `key "client_ip"`, `key "header" "NAME"` or `key "route"`.
fn rate_key(r: &mut Reader, n: &KdlNode, path: &str) -> Option<RateKey> {
    let args = r.list(n, path, 1, 2)?;
    let kind = r.string_entry(args[0], path)?;
    match (kind.as_str(), args.get(1)) {
        ("client_ip" | "route", Some(extra)) => {
            r.error_entry(
                extra,
                path,
                format!(
                    "key {kind:?} takes no second value, got {}",
                    super::reader::literal(extra.value())
                ),
            );
            None
        }
        ("client_ip", None) => Some(RateKey::ClientIp),
        ("route", None) => Some(RateKey::Route),
        ("header", Some(e)) => {
            let name = r.string_entry(e, path)?;
            match rules::header_name(&name) {
                Ok(()) => Some(RateKey::Header(name)),
                Err(why) => {
                    r.error_entry(e, path, format!("{why}, got {name:?}"));
                    None
                }
            }
        }
        ("header", None) => {
            r.error_node(
                n,
                path,
                "key \"header\" needs the header name: key \"header\" \"X-Api-Key\"",
            );
            None
        }
        _ => {
            r.error_entry(
                args[0],
                path,
                format!("expected \"client_ip\", \"header\" \"NAME\" or \"route\", got {kind:?}"),
            );
            None
        }
    }
}
