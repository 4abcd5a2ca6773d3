//! KDL text → [`Config`] (spec SEN-R05..R11): syntax via the `kdl` crate (v2 first, v1
//! fallback), then the schema walk of the top level and the singleton blocks. Upstreams
//! and routes have their own modules; cross-block rules are in `validate`.
//!
//! The walk never stops at the first problem: every error is collected (with its line and
//! column) and the caller fails if any was found. Alongside the config it records where
//! the file names resources (paths, certs, targets), so the resource checks of a full load
//! can point at the right line.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use kdl::{KdlDocument, KdlNode};

use super::error::{ConfigError, ConfigErrors, Pos, SourceMap};
use super::model::*;
use super::reader::{Reader, join};
use super::{Note, route, rules, upstream, validate};

/// Switches that differ between builds (and tests).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// Whether `protocol "https"` is available (cargo feature `tls`).
    pub(crate) tls_available: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tls_available: cfg!(feature = "tls"),
        }
    }
}

/// Where a key sits in the file, for errors found after parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Loc {
    /// 1-based position of the value (or key).
    pub(crate) pos: Pos,
    /// Key path, as in parse errors.
    pub(crate) path: String,
}

/// Locations of everything the resource checks and cross-block rules look at.
#[derive(Debug, Clone, Default)]
pub(crate) struct Locations {
    /// `server > pid-file`.
    pub(crate) pid_file: Option<Loc>,
    /// `server > listen`.
    pub(crate) listen: Option<Loc>,
    /// `metrics > address`.
    pub(crate) metrics_address: Option<Loc>,
    /// `logging > file`.
    pub(crate) log_file: Option<Loc>,
    /// `logging > access-log` (when a path).
    pub(crate) access_log: Option<Loc>,
    /// `admin > token` / `admin > token-file`.
    pub(crate) token: Option<Loc>,
    /// Per listener (same index as `Config::listeners`): name, address, cert, key.
    pub(crate) listeners: Vec<ListenerLocs>,
    /// Per upstream (same index as `Config::upstreams`).
    pub(crate) upstreams: Vec<UpstreamLocs>,
    /// Per route (same index as `Config::routes`).
    pub(crate) routes: Vec<RouteLocs>,
}

/// Locations inside one listener.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListenerLocs {
    pub(crate) name: Option<Loc>,
    pub(crate) address: Option<Loc>,
    pub(crate) cert: Option<Loc>,
    pub(crate) key: Option<Loc>,
}

/// Locations inside one upstream.
#[derive(Debug, Clone, Default)]
pub(crate) struct UpstreamLocs {
    pub(crate) name: Option<Loc>,
    /// Per target, its address.
    pub(crate) targets: Vec<Option<Loc>>,
    pub(crate) body_file: Option<Loc>,
}

/// Locations inside one route.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteLocs {
    pub(crate) name: Option<Loc>,
    pub(crate) upstream: Option<Loc>,
}

/// The result of a successful parse.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub(crate) config: Config,
    pub(crate) notes: Vec<Note>,
    pub(crate) locs: Locations,
}

/// The singleton blocks, which merge when repeated (SEN-R09).
const SINGLETONS: [&str; 7] = [
    "server",
    "limits",
    "connection-pool",
    "timeouts",
    "metrics",
    "logging",
    "admin",
];

/// Every top-level node name.
const TOP_LEVEL: [&str; 12] = [
    "server",
    "listeners",
    "limits",
    "connection-pool",
    "timeouts",
    "upstreams",
    "upstream",
    "routes",
    "route",
    "metrics",
    "logging",
    "admin",
];

const SERVER_KEYS: [&str; 11] = [
    "listen",
    "worker-threads",
    "max-connections",
    "pid-file",
    "graceful-shutdown-timeout-secs",
    "client-header-timeout-secs",
    "client-keepalive-timeout-secs",
    "client-body-timeout-secs",
    "client-send-timeout-secs",
    "h2c",
    "h2-max-concurrent-streams",
];
const LIMITS_KEYS: [&str; 7] = [
    "max-header-size-bytes",
    "max-header-count",
    "max-uri-bytes",
    "max-body-size-bytes",
    "max-total-connections",
    "max-connections-per-client",
    "max-in-flight-requests",
];
/// `connection-pool` keys (global and per upstream).
pub(crate) const POOL_KEYS: [&str; 3] = ["max-connections", "max-idle", "idle-timeout-secs"];
/// `timeouts` keys (global and per upstream).
pub(crate) const TIMEOUT_KEYS: [&str; 4] =
    ["connect-secs", "request-secs", "read-secs", "write-secs"];
const METRICS_KEYS: [&str; 2] = ["address", "enabled"];
const LOGGING_KEYS: [&str; 5] = ["level", "format", "stdout", "file", "access-log"];
const ADMIN_KEYS: [&str; 2] = ["token", "token-file"];
const LISTENER_KEYS: [&str; 3] = ["address", "protocol", "tls"];
const TLS_KEYS: [&str; 3] = ["cert-file", "key-file", "min-version"];

/// Log levels accepted by `logging.level`.
pub(crate) const LEVELS: [&str; 5] = ["trace", "debug", "info", "warn", "error"];

/// The printed stand-in for the admin token (`--print-config`, `/admin/config`). It parses
/// (so printed configs re-validate) but a full load rejects it.
pub const REDACTED: &str = "<redacted>";

/// Largest `max-body-size-bytes` (2^40).
const MAX_BODY_LIMIT: u64 = 1 << 40;

/// Sets `$place` when `$value` (an `Option`) holds a value.
macro_rules! set {
    ($place:expr, $value:expr) => {
        if let Some(v) = $value {
            $place = v;
        }
    };
}
pub(crate) use set;

/// Parses and validates `text` (read from `file`); no file access, no DNS.
pub(crate) fn parse(text: &str, file: &Path, opts: Options) -> Result<Parsed, ConfigErrors> {
    let doc = KdlDocument::parse(text).map_err(|e| syntax_errors(&e, text, file))?;
    let mut r = Reader::new(text, file);
    let mut notes = Vec::new();
    let mut locs = Locations::default();

    let mut singles: BTreeMap<&str, Vec<&KdlNode>> = BTreeMap::new();
    let mut listener_nodes = Vec::new();
    let mut upstream_nodes = Vec::new();
    let mut route_nodes = Vec::new();
    for n in doc.nodes() {
        let name = n.name().value();
        match name {
            _ if SINGLETONS.contains(&name) => singles.entry(name).or_default().push(n),
            "listeners" => listener_nodes.extend(container(&mut r, n, "listener")),
            "upstreams" => upstream_nodes.extend(container(&mut r, n, "upstream")),
            "routes" => route_nodes.extend(container(&mut r, n, "route")),
            "upstream" => upstream_nodes.push(n),
            "route" => route_nodes.push(n),
            _ => r.error_node(
                n,
                name,
                format!(
                    "unknown block {name:?}; expected one of: {}",
                    TOP_LEVEL.join(", ")
                ),
            ),
        }
    }

    // Notes come out in the schema's block order (server, limits, …).
    let mut merged = |r: &mut Reader, block: &str, allowed: &[&str]| {
        let nodes = singles.remove(block).unwrap_or_default();
        merge(r, block, &nodes, allowed, &mut notes)
    };
    let server_keys = merged(&mut r, "server", &SERVER_KEYS[..]);
    let limits_keys = merged(&mut r, "limits", &LIMITS_KEYS[..]);
    let pool_keys = merged(&mut r, "connection-pool", &POOL_KEYS[..]);
    let timeout_keys = merged(&mut r, "timeouts", &TIMEOUT_KEYS[..]);
    let metrics_keys = merged(&mut r, "metrics", &METRICS_KEYS[..]);
    let logging_keys = merged(&mut r, "logging", &LOGGING_KEYS[..]);
    let admin_keys = merged(&mut r, "admin", &ADMIN_KEYS[..]);

    let mut config = Config {
        server: server(&mut r, &server_keys, &mut locs),
        limits: limits(&mut r, &limits_keys),
        ..Config::default()
    };
    let global_pool = PoolKeys::read(&mut r, &pool_keys, "connection-pool");
    config.connection_pool = global_pool.apply(&mut r, &Pool::default(), None);
    let global_timeouts = read_timeouts(&mut r, &timeout_keys, "timeouts");
    config.timeouts = apply_timeouts(&global_timeouts, &Timeouts::default());
    config.metrics = metrics(&mut r, &metrics_keys, &mut locs);
    config.logging = logging(&mut r, &logging_keys, &mut locs);
    config.admin = admin(&mut r, &admin_keys, &mut locs);

    for n in listener_nodes {
        if let Some((l, ll)) = listener(&mut r, n, opts) {
            config.listeners.push(l);
            locs.listeners.push(ll);
        }
    }
    let defaults = upstream::Defaults {
        pool: &config.connection_pool,
        pool_keys: &global_pool,
        timeouts: &config.timeouts,
    };
    for n in upstream_nodes {
        if let Some((u, ul)) = upstream::read(&mut r, n, &defaults) {
            config.upstreams.push(u);
            locs.upstreams.push(ul);
        }
    }
    for n in route_nodes {
        if let Some((rt, rl)) = route::read(&mut r, n) {
            config.routes.push(rt);
            locs.routes.push(rl);
        }
    }

    validate::cross_checks(&mut r, &config, &locs);
    if r.errors.is_empty() {
        Ok(Parsed {
            config,
            notes,
            locs,
        })
    } else {
        let mut errs = ConfigErrors(r.errors);
        errs.sort();
        Err(errs)
    }
}

/// The syntax error of a document that did not parse, path `syntax`, with the parser's
/// message. The v2 parser recovers and adds follow-on errors (mostly "not closed" on the
/// enclosing blocks); only the first error that is not such a consequence is reported,
/// since the rest describe the same mistake from further away.
fn syntax_errors(e: &kdl::KdlError, text: &str, file: &Path) -> ConfigErrors {
    let follow_on = |d: &&kdl::KdlDiagnostic| d.label.as_deref() == Some("not closed");
    let primary = e
        .diagnostics
        .iter()
        .filter(|d| !follow_on(d))
        .min_by_key(|d| d.span.offset())
        .or_else(|| e.diagnostics.iter().min_by_key(|d| d.span.offset()));
    let Some(d) = primary else {
        let at = Pos { line: 1, col: 1 };
        return ConfigErrors::one(ConfigError::at(file, at, "syntax", e.to_string()));
    };
    let offset = d.span.offset();
    let mut msg = d
        .message
        .clone()
        .or_else(|| d.label.clone())
        .unwrap_or_else(|| "invalid KDL".to_owned());
    if let Some(help) = &d.help {
        msg.push_str(&format!(" ({help})"));
    }
    if text.get(offset..).is_some_and(|rest| rest.starts_with('[')) {
        msg.push_str(" (bracket arrays are not KDL; list the values as arguments: key 1 2)");
    }
    // Error lines are one line each; the parser's help text may span several.
    let msg = msg.split_whitespace().collect::<Vec<_>>().join(" ");
    let pos = SourceMap::new(text).pos(offset);
    ConfigErrors::one(ConfigError::at(file, pos, "syntax", msg))
}

/// The children of a container (`listeners`, `upstreams`, `routes`) named `child`.
fn container<'n>(r: &mut Reader, n: &'n KdlNode, child: &str) -> Vec<&'n KdlNode> {
    let name = n.name().value().to_owned();
    let children = r.block(n, &name);
    r.keys(children, &name, &[child], &[child])
}

/// Merges the occurrences of one singleton block key by key, the first occurrence of each
/// key winning (SEN-R09); each extra occurrence adds a note naming the dropped keys.
fn merge<'n>(
    r: &mut Reader,
    block: &str,
    nodes: &[&'n KdlNode],
    allowed: &[&str],
    notes: &mut Vec<Note>,
) -> Vec<&'n KdlNode> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let children = r.block(n, block);
        let mut overridden = Vec::new();
        for k in r.keys(children, block, allowed, &[]) {
            if seen.insert(k.name().value()) {
                out.push(k);
            } else {
                overridden.push(k.name().value());
            }
        }
        if i > 0 {
            notes.push(Note::info(
                "duplicate block merged",
                &[("block", block), ("overridden", &overridden.join(","))],
            ));
        }
    }
    out
}

/// A path value (non-empty), resolved against the config directory; records its location.
pub(crate) fn path_value(
    r: &mut Reader,
    n: &KdlNode,
    path: &str,
    loc: &mut Option<Loc>,
) -> Option<PathBuf> {
    let e = r.value(n, path)?;
    let s = r.string_entry(e, path)?;
    if s.is_empty() || s.contains('\0') {
        r.error_entry(e, path, format!("expected a file path, got {s:?}"));
        return None;
    }
    *loc = Some(Loc {
        pos: r.entry_pos(e),
        path: path.to_owned(),
    });
    Some(r.resolve(&s))
}

/// A listen address (`IP:port`), recording its location.
fn listen_value(r: &mut Reader, n: &KdlNode, path: &str, loc: &mut Option<Loc>) -> Option<String> {
    let v = r.checked(n, path, |s| rules::listen_addr(s).map(|_| ()))?;
    *loc = Some(r.value_loc(n, path));
    Some(v)
}

fn server(r: &mut Reader, keys: &[&KdlNode], locs: &mut Locations) -> Server {
    let mut s = Server::default();
    for n in keys {
        let p = join("server", n.name().value());
        match n.name().value() {
            "listen" => set!(s.listen, listen_value(r, n, &p, &mut locs.listen)),
            "worker-threads" => set!(s.worker_threads, r.u32(n, &p, 0, 1024)),
            "max-connections" => set!(s.max_connections, r.u32(n, &p, 1, 1_000_000)),
            "pid-file" => {
                s.pid_file = path_value(r, n, &p, &mut locs.pid_file).or(s.pid_file);
            }
            "graceful-shutdown-timeout-secs" => {
                set!(s.graceful_shutdown_timeout_secs, r.u64(n, &p, 0, 3600));
            }
            "client-header-timeout-secs" => {
                set!(s.client_header_timeout_secs, r.u64(n, &p, 1, 300));
            }
            "client-keepalive-timeout-secs" => {
                set!(s.client_keepalive_timeout_secs, r.u64(n, &p, 0, 3600));
            }
            "client-body-timeout-secs" => set!(s.client_body_timeout_secs, r.u64(n, &p, 1, 3600)),
            "client-send-timeout-secs" => set!(s.client_send_timeout_secs, r.u64(n, &p, 1, 3600)),
            "h2c" => set!(s.h2c, r.bool(n, &p)),
            "h2-max-concurrent-streams" => {
                set!(s.h2_max_concurrent_streams, r.u32(n, &p, 1, 10_000));
            }
            _ => {}
        }
    }
    s
}

fn limits(r: &mut Reader, keys: &[&KdlNode]) -> Limits {
    let mut l = Limits::default();
    for n in keys {
        let p = join("limits", n.name().value());
        match n.name().value() {
            "max-header-size-bytes" => set!(l.max_header_size_bytes, r.u64(n, &p, 8192, 1_048_576)),
            "max-header-count" => set!(l.max_header_count, r.u32(n, &p, 1, 1000)),
            "max-uri-bytes" => set!(l.max_uri_bytes, r.u64(n, &p, 256, 65_536)),
            "max-body-size-bytes" => set!(l.max_body_size_bytes, r.u64(n, &p, 0, MAX_BODY_LIMIT)),
            "max-total-connections" => set!(l.max_total_connections, r.u32(n, &p, 1, 1_000_000)),
            "max-connections-per-client" => {
                set!(l.max_connections_per_client, r.u32(n, &p, 0, 1_000_000));
            }
            "max-in-flight-requests" => set!(l.max_in_flight_requests, r.u32(n, &p, 1, 1_000_000)),
            _ => {}
        }
    }
    l
}

/// The keys of one `connection-pool` block as written (global or per upstream), with
/// their positions so a `max-idle` > `max-connections` error can point at the right one.
#[derive(Debug, Clone, Default)]
pub(crate) struct PoolKeys {
    max_connections: Option<(u32, Pos)>,
    max_idle: Option<(u32, Pos)>,
    idle_timeout_secs: Option<u64>,
    path: String,
}

impl PoolKeys {
    /// Reads a `connection-pool` block's keys (already checked for unknown and repeats).
    pub(crate) fn read(r: &mut Reader, keys: &[&KdlNode], path: &str) -> PoolKeys {
        let mut k = PoolKeys {
            path: path.to_owned(),
            ..PoolKeys::default()
        };
        for n in keys {
            let p = join(path, n.name().value());
            let pos = r.node_pos(n);
            match n.name().value() {
                "max-connections" => {
                    k.max_connections = r.u32(n, &p, 1, 100_000).map(|v| (v, pos));
                }
                "max-idle" => k.max_idle = r.u32(n, &p, 0, 100_000).map(|v| (v, pos)),
                "idle-timeout-secs" => k.idle_timeout_secs = r.u64(n, &p, 1, 3600),
                _ => {}
            }
        }
        k
    }

    /// `base` overridden key by key; checks `max-idle` <= `max-connections` on the result,
    /// blaming the most specific key that was written (`outer` = the global keys when
    /// these are an upstream's).
    pub(crate) fn apply(&self, r: &mut Reader, base: &Pool, outer: Option<&PoolKeys>) -> Pool {
        let pool = Pool {
            max_connections: self.max_connections.map_or(base.max_connections, |v| v.0),
            max_idle: self.max_idle.map_or(base.max_idle, |v| v.0),
            idle_timeout_secs: self.idle_timeout_secs.unwrap_or(base.idle_timeout_secs),
        };
        if pool.max_idle > pool.max_connections {
            let blame = self
                .max_idle
                .map(|(_, p)| (p, "max-idle"))
                .or(self.max_connections.map(|(_, p)| (p, "max-connections")))
                .or(outer.and_then(|o| o.max_idle.map(|(_, p)| (p, "max-idle"))));
            if let Some((pos, key)) = blame {
                r.error_at(
                    pos,
                    &join(&self.path, key),
                    format!(
                        "max-idle must be at most max-connections, got max-idle {} with max-connections {}",
                        pool.max_idle, pool.max_connections
                    ),
                );
            }
        }
        pool
    }
}

/// The keys of one `timeouts` block as written.
#[derive(Debug, Clone, Default)]
pub(crate) struct TimeoutKeys {
    connect: Option<u64>,
    request: Option<u64>,
    read: Option<u64>,
    write: Option<u64>,
}

/// Reads a `timeouts` block's keys.
pub(crate) fn read_timeouts(r: &mut Reader, keys: &[&KdlNode], path: &str) -> TimeoutKeys {
    let mut t = TimeoutKeys::default();
    for n in keys {
        let p = join(path, n.name().value());
        match n.name().value() {
            "connect-secs" => t.connect = r.u64(n, &p, 1, 300),
            "request-secs" => t.request = r.u64(n, &p, 1, 3600),
            "read-secs" => t.read = r.u64(n, &p, 1, 3600),
            "write-secs" => t.write = r.u64(n, &p, 1, 3600),
            _ => {}
        }
    }
    t
}

/// `base` overridden key by key (SEN-R10).
pub(crate) fn apply_timeouts(t: &TimeoutKeys, base: &Timeouts) -> Timeouts {
    Timeouts {
        connect_secs: t.connect.unwrap_or(base.connect_secs),
        request_secs: t.request.unwrap_or(base.request_secs),
        read_secs: t.read.unwrap_or(base.read_secs),
        write_secs: t.write.unwrap_or(base.write_secs),
    }
}

fn metrics(r: &mut Reader, keys: &[&KdlNode], locs: &mut Locations) -> MetricsCfg {
    let mut m = MetricsCfg::default();
    for n in keys {
        let p = join("metrics", n.name().value());
        match n.name().value() {
            "address" => set!(m.address, listen_value(r, n, &p, &mut locs.metrics_address)),
            "enabled" => set!(m.enabled, r.bool(n, &p)),
            _ => {}
        }
    }
    m
}

fn logging(r: &mut Reader, keys: &[&KdlNode], locs: &mut Locations) -> Logging {
    let mut l = Logging::default();
    for n in keys {
        let p = join("logging", n.name().value());
        match n.name().value() {
            "level" => set!(l.level, r.checked(n, &p, level_rule)),
            "format" => {
                if let Some(f) = r.choice(n, &p, &["json", "pretty"]) {
                    l.format = if f == "json" {
                        LogFormat::Json
                    } else {
                        LogFormat::Pretty
                    };
                }
            }
            "stdout" => set!(l.stdout, r.bool(n, &p)),
            "file" => l.file = path_value(r, n, &p, &mut locs.log_file).or(l.file),
            "access-log" => {
                let Some(e) = r.value(n, &p) else { continue };
                let Some(s) = r.string_entry(e, &p) else {
                    continue;
                };
                l.access_log = match s.as_str() {
                    "off" => AccessLog::Off,
                    "stdout" => AccessLog::Stdout,
                    _ => match path_value(r, n, &p, &mut locs.access_log) {
                        Some(path) => AccessLog::File(path),
                        None => continue,
                    },
                };
            }
            _ => {}
        }
    }
    l
}

/// `logging.level`: one of the five levels (any case), or, so that a config with `RUST_LOG`
/// applied prints and re-parses, a filter with directives such as `info,hyper=warn`. A
/// lone word must be a level, which keeps typos like `"verbose"` errors.
pub(crate) fn level_rule(s: &str) -> Result<(), String> {
    let directives =
        (s.contains(',') || s.contains('=')) && tracing_subscriber::EnvFilter::try_new(s).is_ok();
    if LEVELS.contains(&s.to_ascii_lowercase().as_str()) || directives {
        Ok(())
    } else {
        Err(
            "expected \"trace\", \"debug\", \"info\", \"warn\", \"error\" or a filter such as \"info,hyper=warn\""
                .to_owned(),
        )
    }
}

fn admin(r: &mut Reader, keys: &[&KdlNode], locs: &mut Locations) -> Admin {
    let mut a = Admin { token: None };
    let mut first: Option<&KdlNode> = None;
    for n in keys {
        let key = n.name().value();
        let p = join("admin", key);
        if let Some(f) = first {
            r.error_node(
                n,
                &p,
                format!(
                    "set either token or token-file, not both ({} is at line {})",
                    f.name().value(),
                    r.node_pos(f).line
                ),
            );
            continue;
        }
        first = Some(*n);
        match key {
            "token" => {
                let rule = |s: &str| {
                    if s == REDACTED {
                        Ok(())
                    } else {
                        rules::token(s)
                    }
                };
                if let Some(t) = r.checked(n, &p, rule) {
                    locs.token = Some(r.value_loc(n, &p));
                    a.token = Some(AdminToken::Inline(t));
                }
            }
            "token-file" => {
                if let Some(path) = path_value(r, n, &p, &mut locs.token) {
                    a.token = Some(AdminToken::File { path, value: None });
                }
            }
            _ => {}
        }
    }
    a
}

fn listener(r: &mut Reader, n: &KdlNode, opts: Options) -> Option<(Listener, ListenerLocs)> {
    let (name, name_loc) = named(r, n, "listener")?;
    let path = format!("listener {name:?}");
    let mut ll = ListenerLocs {
        name: Some(name_loc),
        ..ListenerLocs::default()
    };
    if name == "main" || name == "admin" {
        r.error_node(
            n,
            &path,
            format!("listener names \"main\" and \"admin\" are reserved, got {name:?}"),
        );
    }
    let children = n.children().map_or(&[][..], |d| d.nodes());
    let mut l = Listener {
        name,
        address: String::new(),
        protocol: ListenerProtocol::Http,
        tls: None,
    };
    let mut tls_node = None;
    let mut protocol_node = None;
    for k in r.keys(children, &path, &LISTENER_KEYS, &[]) {
        let p = join(&path, k.name().value());
        match k.name().value() {
            "address" => set!(l.address, listen_value(r, k, &p, &mut ll.address)),
            "protocol" => {
                protocol_node = Some(k);
                if let Some(v) = r.choice(k, &p, &["http", "https"]) {
                    if v == "https" && !opts.tls_available {
                        let pos = r.value_loc(k, &p).pos;
                        r.error_at(
                            pos,
                            &p,
                            "protocol \"https\" needs sentinel built with cargo feature \"tls\"",
                        );
                    }
                    l.protocol = if v == "https" {
                        ListenerProtocol::Https
                    } else {
                        ListenerProtocol::Http
                    };
                }
            }
            "tls" => tls_node = Some(k),
            _ => {}
        }
    }
    if ll.address.is_none() && !children.iter().any(|c| c.name().value() == "address") {
        r.error_node(n, &path, "required key \"address\" is missing");
    }
    match (l.protocol, tls_node) {
        (ListenerProtocol::Https, Some(t)) => l.tls = tls(r, t, &join(&path, "tls"), &mut ll),
        (ListenerProtocol::Https, None) => {
            let (at, at_path) = match protocol_node {
                Some(p) => (p, join(&path, "protocol")),
                None => (n, path.clone()),
            };
            r.error_node(
                at,
                &at_path,
                "protocol \"https\" requires a tls { cert-file; key-file } block",
            );
        }
        (ListenerProtocol::Http, Some(t)) => {
            r.error_node(
                t,
                &join(&path, "tls"),
                "a tls block needs protocol \"https\"",
            );
        }
        (ListenerProtocol::Http, None) => {}
    }
    Some((l, ll))
}

fn tls(r: &mut Reader, n: &KdlNode, path: &str, ll: &mut ListenerLocs) -> Option<ListenerTls> {
    let children = r.block(n, path);
    let mut cert = None;
    let mut key = None;
    let mut min_version = TlsVersion::V1_2;
    for k in r.keys(children, path, &TLS_KEYS, &[]) {
        let p = join(path, k.name().value());
        match k.name().value() {
            "cert-file" => cert = path_value(r, k, &p, &mut ll.cert),
            "key-file" => key = path_value(r, k, &p, &mut ll.key),
            "min-version" => {
                if let Some(v) = r.choice(k, &p, &["1.2", "1.3"]) {
                    min_version = if v == "1.3" {
                        TlsVersion::V1_3
                    } else {
                        TlsVersion::V1_2
                    };
                }
            }
            _ => {}
        }
    }
    for (key_name, present) in [("cert-file", cert.is_some()), ("key-file", key.is_some())] {
        if !present && !children.iter().any(|c| c.name().value() == key_name) {
            r.error_node(n, path, format!("required key {key_name:?} is missing"));
        }
    }
    Some(ListenerTls {
        cert_file: cert?,
        key_file: key?,
        min_version,
    })
}

/// The name argument of a named block (`listener "NAME" { … }`): exactly one string that
/// follows the name rule, no properties.
pub(crate) fn named(r: &mut Reader, n: &KdlNode, kind: &str) -> Option<(String, Loc)> {
    r.plain(n, kind, &[]);
    let args = r.args(n);
    let Some(first) = args.first() else {
        r.error_node(
            n,
            kind,
            format!("expected {kind} \"NAME\" {{ … }}, the name is missing"),
        );
        return None;
    };
    let name = r.string_entry(first, kind)?;
    let path = format!("{kind} {name:?}");
    if let Some(extra) = args.get(1) {
        r.error_entry(
            extra,
            &path,
            format!(
                "expected only a name, got extra argument {}",
                super::reader::literal(extra.value())
            ),
        );
    }
    if let Err(why) = rules::name(&name) {
        r.error_entry(first, &path, format!("{why}, got {name:?}"));
    }
    let loc = Loc {
        pos: r.entry_pos(first),
        path,
    };
    Some((name, loc))
}

impl Reader<'_> {
    /// The location of a key's value (its first argument), or of the key itself.
    pub(crate) fn value_loc(&self, n: &KdlNode, path: &str) -> Loc {
        let pos = self
            .args(n)
            .first()
            .map_or_else(|| self.node_pos(n), |e| self.entry_pos(e));
        Loc {
            pos,
            path: path.to_owned(),
        }
    }
}
