//! `upstream "NAME" { … }` (spec §2.4): targets (block and `target "H:P" weight=N`
//! shorthand), load balancing, protocol, active and passive health, circuit breaker,
//! per-upstream pool and timeouts layered over the globals (SEN-R10), and static
//! responses, which exclude every other key.

use std::collections::HashMap;

use kdl::KdlNode;

use super::model::*;
use super::parse::{
    Loc, POOL_KEYS, PoolKeys, TIMEOUT_KEYS, UpstreamLocs, apply_timeouts, named, path_value,
    read_timeouts, set,
};
use super::reader::{Reader, join};
use super::rules;

/// Largest static body (`body` or `body-file`).
pub const MAX_STATIC_BODY_BYTES: usize = 1 << 20;

/// Default `content-type` of a static response.
pub const DEFAULT_STATIC_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

const UPSTREAM_KEYS: [&str; 9] = [
    "targets",
    "load-balancing",
    "protocol",
    "health-check",
    "passive-health",
    "circuit-breaker",
    "connection-pool",
    "timeouts",
    "static",
];
const HEALTH_KEYS: [&str; 5] = [
    "type",
    "interval-secs",
    "timeout-secs",
    "healthy-threshold",
    "unhealthy-threshold",
];
const HTTP_PROBE_KEYS: [&str; 3] = ["path", "expected-status", "host"];
const PASSIVE_KEYS: [&str; 5] = [
    "enabled",
    "window",
    "failure-ratio",
    "min-requests",
    "cooldown-secs",
];
const BREAKER_KEYS: [&str; 5] = [
    "enabled",
    "failure-threshold",
    "success-threshold",
    "timeout-secs",
    "half-open-max-requests",
];
const STATIC_KEYS: [&str; 5] = ["status", "body", "body-file", "content-type", "header"];
const LB_SPELLINGS: [&str; 8] = [
    "round-robin",
    "round_robin",
    "weighted",
    "least-connections",
    "least_connections",
    "p2c",
    "ip-hash",
    "ip_hash",
];

/// The global layers an upstream's own blocks override.
pub(crate) struct Defaults<'a> {
    pub(crate) pool: &'a Pool,
    pub(crate) pool_keys: &'a PoolKeys,
    pub(crate) timeouts: &'a Timeouts,
}

/// Reads one upstream; `None` only when it has no usable name.
pub(crate) fn read(
    r: &mut Reader,
    n: &KdlNode,
    defaults: &Defaults<'_>,
) -> Option<(Upstream, UpstreamLocs)> {
    let (name, name_loc) = named(r, n, "upstream")?;
    let path = name_loc.path.clone();
    let mut ul = UpstreamLocs {
        name: Some(name_loc),
        ..UpstreamLocs::default()
    };
    let children = n.children().map_or(&[][..], |d| d.nodes());
    let keys = r.keys(children, &path, &UPSTREAM_KEYS, &[]);

    if let Some(st) = keys.iter().find(|k| k.name().value() == "static") {
        for other in keys.iter().filter(|k| k.name().value() != "static") {
            r.error_node(
                other,
                &join(&path, other.name().value()),
                format!(
                    "a static upstream takes no other keys, got {:?}",
                    other.name().value()
                ),
            );
        }
        let resp = static_response(r, st, &join(&path, "static"), &mut ul);
        return Some((
            Upstream {
                name,
                kind: UpstreamKind::Static(resp),
            },
            ul,
        ));
    }

    let mut p = ProxyUpstream {
        targets: Vec::new(),
        load_balancing: LbPolicy::RoundRobin,
        protocol: UpstreamProtocol::Http1,
        health_check: None,
        passive_health: PassiveHealth::default(),
        circuit_breaker: CircuitBreaker::default(),
        pool: defaults.pool.clone(),
        timeouts: defaults.timeouts.clone(),
    };
    let mut has_targets = false;
    for k in keys {
        let kp = join(&path, k.name().value());
        match k.name().value() {
            "targets" => {
                has_targets = true;
                targets(r, k, &kp, &mut p.targets, &mut ul.targets);
                if p.targets.is_empty() {
                    r.error_node(k, &kp, "at least one target is required");
                }
            }
            "load-balancing" => {
                if let Some(v) = r.choice(k, &kp, &LB_SPELLINGS) {
                    p.load_balancing = match v.replace('_', "-").as_str() {
                        "weighted" => LbPolicy::Weighted,
                        "least-connections" => LbPolicy::LeastConnections,
                        "p2c" => LbPolicy::P2c,
                        "ip-hash" => LbPolicy::IpHash,
                        _ => LbPolicy::RoundRobin,
                    };
                }
            }
            "protocol" => {
                if let Some(v) = r.choice(k, &kp, &["http1", "h2c"]) {
                    p.protocol = if v == "h2c" {
                        UpstreamProtocol::H2c
                    } else {
                        UpstreamProtocol::Http1
                    };
                }
            }
            "health-check" => p.health_check = health_check(r, k, &kp),
            "passive-health" => p.passive_health = passive(r, k, &kp),
            "circuit-breaker" => p.circuit_breaker = breaker(r, k, &kp),
            "connection-pool" => {
                let children = r.block(k, &kp);
                let keys = r.keys(children, &kp, &POOL_KEYS, &[]);
                let own = PoolKeys::read(r, &keys, &kp);
                p.pool = own.apply(r, defaults.pool, Some(defaults.pool_keys));
            }
            "timeouts" => {
                let children = r.block(k, &kp);
                let keys = r.keys(children, &kp, &TIMEOUT_KEYS, &[]);
                p.timeouts = apply_timeouts(&read_timeouts(r, &keys, &kp), defaults.timeouts);
            }
            _ => {}
        }
    }
    if !has_targets {
        r.error_node(
            n,
            &path,
            "required key \"targets\" is missing (or add a static { … } block)",
        );
    }
    Some((
        Upstream {
            name,
            kind: UpstreamKind::Proxy(p),
        },
        ul,
    ))
}

/// `targets { target { address "H:P"; weight N } … }` and `target "H:P" weight=N`.
fn targets(
    r: &mut Reader,
    n: &KdlNode,
    path: &str,
    out: &mut Vec<Target>,
    locs: &mut Vec<Option<Loc>>,
) {
    let children = r.block(n, path);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in r.keys(children, path, &["target"], &["target"]) {
        let tp = join(path, "target");
        let mut target = Target {
            address: String::new(),
            weight: 1,
        };
        let mut loc = None;
        let args = r.args(t);
        if args.is_empty() {
            r.plain(t, &tp, &[]);
            let fields = t.children().map_or(&[][..], |d| d.nodes());
            for k in r.keys(fields, &tp, &["address", "weight"], &[]) {
                let kp = join(&tp, k.name().value());
                match k.name().value() {
                    "address" => {
                        if let Some(a) = r.checked(k, &kp, rules::target_addr) {
                            loc = Some(r.value_loc(k, &kp));
                            target.address = a;
                        }
                    }
                    "weight" => set!(target.weight, r.u32(k, &kp, 0, 1000)),
                    _ => {}
                }
            }
            if !fields.iter().any(|k| k.name().value() == "address") {
                r.error_node(
                    t,
                    &tp,
                    "required key \"address\" is missing (target { address \"H:P\" } or target \"H:P\")",
                );
            }
        } else {
            // Shorthand: exactly one address argument, an optional weight property.
            r.plain(t, &tp, &["weight"]);
            r.no_children(t, &tp);
            let kp = join(&tp, "address");
            if let Some(extra) = args.get(1) {
                r.error_entry(
                    extra,
                    &tp,
                    format!(
                        "expected one address, got extra argument {}",
                        super::reader::literal(extra.value())
                    ),
                );
            }
            if let Some(a) = r.string_entry(args[0], &kp) {
                match rules::target_addr(&a) {
                    Ok(()) => {
                        loc = Some(Loc {
                            pos: r.entry_pos(args[0]),
                            path: kp.clone(),
                        });
                        target.address = a;
                    }
                    Err(why) => r.error_entry(args[0], &kp, format!("{why}, got {a:?}")),
                }
            }
            let weights: Vec<_> = t
                .entries()
                .iter()
                .filter(|e| e.name().is_some_and(|nm| nm.value() == "weight"))
                .collect();
            if let Some(dup) = weights.get(1) {
                r.error_entry(dup, &join(&tp, "weight"), "property weight repeated");
            }
            if let Some(w) = weights.first() {
                set!(
                    target.weight,
                    r.int_entry(w, &join(&tp, "weight"), 0, 1000)
                        .and_then(|v| u32::try_from(v).ok())
                );
            }
        }
        if !target.address.is_empty() {
            let key = target.address.to_ascii_lowercase();
            if let Some(first) = seen.get(&key) {
                let pos = loc.as_ref().map_or_else(|| r.node_pos(t), |l| l.pos);
                r.error_at(
                    pos,
                    &join(&tp, "address"),
                    format!(
                        "target {:?} appears twice in one upstream (first at line {})",
                        target.address, first
                    ),
                );
            } else {
                let line = loc.as_ref().map_or(0, |l| l.pos.line);
                seen.insert(key, line);
            }
        }
        out.push(target);
        locs.push(loc);
    }
}

/// Default probe timeout (seconds), capped at the interval when that is shorter.
const DEFAULT_PROBE_TIMEOUT_SECS: u64 = 5;

fn health_check(r: &mut Reader, n: &KdlNode, path: &str) -> Option<HealthCheck> {
    let children = r.block(n, path);
    let mut probe = None;
    let mut interval = 10;
    let mut timeout = None;
    let mut hc = HealthCheck {
        probe: Probe::Tcp,
        interval_secs: 10,
        timeout_secs: DEFAULT_PROBE_TIMEOUT_SECS,
        healthy_threshold: 2,
        unhealthy_threshold: 3,
    };
    let mut timeout_node = None;
    let mut type_seen = false;
    for k in r.keys(children, path, &HEALTH_KEYS, &[]) {
        let kp = join(path, k.name().value());
        match k.name().value() {
            "type" => {
                type_seen = true;
                probe = probe_type(r, k, &kp);
            }
            "interval-secs" => set!(interval, r.u64(k, &kp, 1, 3600)),
            "timeout-secs" => {
                timeout_node = Some(k);
                timeout = r.u64(k, &kp, 1, 3600);
            }
            "healthy-threshold" => set!(hc.healthy_threshold, r.u32(k, &kp, 1, 100)),
            "unhealthy-threshold" => set!(hc.unhealthy_threshold, r.u32(k, &kp, 1, 100)),
            _ => {}
        }
    }
    if !type_seen {
        r.error_node(
            n,
            path,
            "required key \"type\" is missing (type \"http\" { … } or type \"tcp\")",
        );
    }
    hc.interval_secs = interval;
    hc.timeout_secs = timeout.unwrap_or(DEFAULT_PROBE_TIMEOUT_SECS.min(interval));
    if let (Some(t), Some(k)) = (timeout, timeout_node)
        && t > interval
    {
        let loc = r.value_loc(k, &join(path, "timeout-secs"));
        r.error_at(
            loc.pos,
            &loc.path,
            format!("expected integer 1..={interval} (at most interval-secs), got integer {t}"),
        );
    }
    hc.probe = probe?;
    Some(hc)
}

/// `type "http" { path; expected-status …; host }` or `type "tcp"`.
fn probe_type(r: &mut Reader, n: &KdlNode, path: &str) -> Option<Probe> {
    r.plain(n, path, &[]);
    let args = r.args(n);
    let Some(first) = args.first() else {
        r.error_node(n, path, "expected \"http\" or \"tcp\", got none");
        return None;
    };
    if let Some(extra) = args.get(1) {
        r.error_entry(
            extra,
            path,
            format!(
                "expected one value, got extra argument {}",
                super::reader::literal(extra.value())
            ),
        );
    }
    let kind = r.string_entry(first, path)?;
    match kind.as_str() {
        "tcp" => {
            if n.children().is_some() {
                r.error_node(n, path, "type \"tcp\" takes no block");
            }
            Some(Probe::Tcp)
        }
        "http" => {
            let mut probe_path = "/health".to_owned();
            let mut expected = vec![200];
            let mut host = None;
            let children = n.children().map_or(&[][..], |d| d.nodes());
            for k in r.keys(children, path, &HTTP_PROBE_KEYS, &[]) {
                let kp = join(path, k.name().value());
                match k.name().value() {
                    "path" => set!(probe_path, r.checked(k, &kp, rules::path)),
                    "host" => {
                        let rule = |s: &str| {
                            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()) {
                                Ok(())
                            } else {
                                Err("expected a host (visible ASCII, no spaces)".to_owned())
                            }
                        };
                        host = r.checked(k, &kp, rule).or(host);
                    }
                    "expected-status" => {
                        let Some(args) = r.list(k, &kp, 1, 64) else {
                            continue;
                        };
                        let codes: Vec<u16> = args
                            .iter()
                            .filter_map(|e| r.int_entry(e, &kp, 100, 599))
                            .filter_map(|v| u16::try_from(v).ok())
                            .collect();
                        if codes.len() == args.len() {
                            expected = codes;
                        }
                    }
                    _ => {}
                }
            }
            Some(Probe::Http {
                path: probe_path,
                expected_status: expected,
                host,
            })
        }
        other => {
            r.error_entry(
                first,
                path,
                format!("expected \"http\" or \"tcp\", got {other:?}"),
            );
            None
        }
    }
}

fn passive(r: &mut Reader, n: &KdlNode, path: &str) -> PassiveHealth {
    let children = r.block(n, path);
    let mut ph = PassiveHealth::default();
    let mut min_requests = None;
    for k in r.keys(children, path, &PASSIVE_KEYS, &[]) {
        let kp = join(path, k.name().value());
        match k.name().value() {
            "enabled" => set!(ph.enabled, r.bool(k, &kp)),
            "window" => set!(ph.window, r.u32(k, &kp, 10, 10_000)),
            "failure-ratio" => set!(ph.failure_ratio, r.ratio(k, &kp)),
            "min-requests" => min_requests = Some(k),
            "cooldown-secs" => set!(ph.cooldown_secs, r.u64(k, &kp, 1, 3600)),
            _ => {}
        }
    }
    // The default (20) follows a smaller window; an explicit value must fit in it.
    ph.min_requests = ph.min_requests.min(ph.window);
    if let Some(k) = min_requests {
        let kp = join(path, "min-requests");
        set!(ph.min_requests, r.u32(k, &kp, 1, ph.window));
    }
    ph
}

fn breaker(r: &mut Reader, n: &KdlNode, path: &str) -> CircuitBreaker {
    let children = r.block(n, path);
    let mut cb = CircuitBreaker::default();
    for k in r.keys(children, path, &BREAKER_KEYS, &[]) {
        let kp = join(path, k.name().value());
        match k.name().value() {
            "enabled" => set!(cb.enabled, r.bool(k, &kp)),
            "failure-threshold" => set!(cb.failure_threshold, r.u32(k, &kp, 1, 1000)),
            "success-threshold" => set!(cb.success_threshold, r.u32(k, &kp, 1, 1000)),
            "timeout-secs" => set!(cb.timeout_secs, r.u64(k, &kp, 1, 3600)),
            "half-open-max-requests" => set!(cb.half_open_max_requests, r.u32(k, &kp, 1, 1000)),
            _ => {}
        }
    }
    cb
}

fn static_response(
    r: &mut Reader,
    n: &KdlNode,
    path: &str,
    ul: &mut UpstreamLocs,
) -> StaticResponse {
    let children = r.block(n, path);
    let mut s = StaticResponse {
        status: 503,
        body: StaticBody::Inline(String::new()),
        content_type: DEFAULT_STATIC_CONTENT_TYPE.to_owned(),
        headers: Vec::new(),
    };
    let mut body_key: Option<&KdlNode> = None;
    for k in r.keys(children, path, &STATIC_KEYS, &["header"]) {
        let key = k.name().value();
        let kp = join(path, key);
        if matches!(key, "body" | "body-file") {
            if let Some(first) = body_key {
                r.error_node(
                    k,
                    &kp,
                    format!(
                        "set either body or body-file, not both ({} is at line {})",
                        first.name().value(),
                        r.node_pos(first).line
                    ),
                );
                continue;
            }
            body_key = Some(k);
        }
        match key {
            "status" => set!(
                s.status,
                r.int(k, &kp, 200, 599).and_then(|v| u16::try_from(v).ok())
            ),
            "body" => {
                let rule = |b: &str| {
                    if b.len() <= MAX_STATIC_BODY_BYTES {
                        Ok(())
                    } else {
                        Err(format!(
                            "expected at most {MAX_STATIC_BODY_BYTES} bytes ({} given)",
                            b.len()
                        ))
                    }
                };
                if let Some(e) = r.value(k, &kp)
                    && let Some(b) = r.string_entry(e, &kp)
                {
                    match rule(&b) {
                        Ok(()) => s.body = StaticBody::Inline(b),
                        Err(why) => r.error_entry(e, &kp, why),
                    }
                }
            }
            "body-file" => {
                if let Some(p) = path_value(r, k, &kp, &mut ul.body_file) {
                    s.body = StaticBody::File {
                        path: p,
                        bytes: None,
                    };
                }
            }
            "content-type" => set!(s.content_type, r.checked(k, &kp, rules::header_value)),
            "header" => {
                let Some(args) = r.list(k, &kp, 2, 2) else {
                    continue;
                };
                let name = r.string_entry(args[0], &kp);
                let value = r.string_entry(args[1], &kp);
                let (Some(name), Some(value)) = (name, value) else {
                    continue;
                };
                if let Err(why) = rules::header_name(&name) {
                    r.error_entry(args[0], &kp, format!("{why}, got {name:?}"));
                } else if let Err(why) = rules::header_value(&value) {
                    r.error_entry(args[1], &kp, format!("{why}, got {value:?}"));
                } else {
                    s.headers.push((name, value));
                }
            }
            _ => {}
        }
    }
    s
}
