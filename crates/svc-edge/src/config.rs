//! svc-edge configuration: the schema of spec §2.3, its defaults, and `validate()`.
//!
//! Layering (defaults < TOML file < `SVC_EDGE_*` env with `__` nesting < flags) and the
//! one-line error format come from `ron_kernel::config`; this module only describes the
//! keys and their rules. Keys marked "restart" keep their old value on SIGHUP.

use std::net::SocketAddr;
use std::path::PathBuf;

use ron_kernel::config::{ConfigLoader, ReloadClass, Validate};
use serde::{Deserialize, Serialize};

/// Environment prefix (`SVC_EDGE_BIND_ADDR`, `SVC_EDGE_EDGE__MODE`, ...).
pub const ENV_PREFIX: &str = "SVC_EDGE";
/// Most packs one config may list.
pub const MAX_PACKS: usize = 64;
/// Most allow-list entries.
pub const MAX_ALLOW: usize = 256;
/// Most CORS origins.
pub const MAX_CORS_ORIGINS: usize = 64;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeConfig {
    /// API listener.
    pub bind_addr: SocketAddr,
    /// Metrics listener (ron-metrics exposer).
    pub metrics_addr: SocketAddr,
    /// Base label `instance`; hostname when unset.
    pub instance: Option<String>,
    /// Runtime worker threads; 0 = CPUs in the affinity mask.
    pub workers: u16,
    /// Which requests get an access-log line.
    pub access_log: AccessLog,
    /// Seconds in-flight work may run after SIGTERM.
    pub drain_secs: u32,
    /// `/readyz` answers 503 while traffic is still served.
    pub maintenance: bool,
    /// Admission caps.
    pub ingress: Ingress,
    /// Packs, CAS and live fill.
    pub edge: Edge,
    /// Amnesia and CORS.
    pub security: Security,
}

/// `access_log` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLog {
    /// No request lines.
    Off,
    /// Lines for status ≥ 400 and every reject.
    Errors,
    /// A line per request.
    All,
}

/// `edge.mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Packs and CAS only.
    Offline,
    /// Also fill from allow-listed origins.
    Live,
}

impl Mode {
    /// `offline` or `live`, as in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Offline => "offline",
            Mode::Live => "live",
        }
    }
}

/// `[ingress]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ingress {
    /// Request deadline (head read and handler), seconds.
    pub timeout_secs: u32,
    /// Concurrent requests admitted.
    pub max_inflight: u32,
    /// Token bucket refill per second (burst = limit).
    pub rps_limit: u32,
    /// Largest request body accepted (and discarded).
    #[serde(with = "ron_kernel::config::size")]
    pub max_body_bytes: u64,
    /// Largest decoded/stored size ratio when decoding a stored tile.
    pub max_decompress_ratio: u32,
    /// Absolute cap on any decoded output.
    #[serde(with = "ron_kernel::config::size")]
    pub max_decompress_bytes: u64,
}

/// `[edge]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Edge {
    /// Offline or live.
    pub mode: Mode,
    /// Directory packs and `*.pmtiles` archives, first wins on a name collision.
    pub packs: Vec<PathBuf>,
    /// Content-addressed store root.
    pub cas_dir: Option<PathBuf>,
    /// Live-fill origins, `host[:port]`.
    pub allow: Vec<String>,
    /// Allow origins that resolve to private addresses (tests only).
    pub allow_private: bool,
    /// Extra PEM roots for live fill.
    pub ca_file: Option<PathBuf>,
    /// Base URL for TileJSON.
    pub public_url: Option<String>,
    /// `max-age` of assets, tiles and TileJSON.
    pub max_age_secs: u32,
    /// Largest object a fill may store.
    #[serde(with = "ron_kernel::config::size")]
    pub max_object_bytes: u64,
    /// Whole-fill deadline, retries included.
    pub fill_timeout_secs: u32,
    /// Retries after the first attempt.
    pub fill_retries: u32,
    /// Backoff base, milliseconds.
    pub fill_backoff_base_ms: u32,
    /// Backoff cap, milliseconds.
    pub fill_backoff_max_ms: u32,
    /// Concurrent fills.
    pub fill_concurrency: u32,
    /// Fill jobs waiting.
    pub fill_queue: u32,
    /// How long a fill without `?b3=` is reused.
    pub live_ttl_secs: u32,
    /// Amnesia RAM cache size.
    #[serde(with = "ron_kernel::config::size")]
    pub ram_cache_bytes: u64,
    /// Size of the mapping LRU.
    pub open_files: u32,
}

/// `[security]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Security {
    /// Write nothing to disk; base label `amnesia`.
    pub amnesia: bool,
    /// CORS origins (`*` or `scheme://host[:port]`); empty denies.
    pub cors_allow_origins: Vec<String>,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            bind_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 9909)),
            instance: None,
            workers: 0,
            access_log: AccessLog::Errors,
            drain_secs: 3,
            maintenance: false,
            ingress: Ingress::default(),
            edge: Edge::default(),
            security: Security::default(),
        }
    }
}

impl Default for Ingress {
    fn default() -> Self {
        Ingress {
            timeout_secs: 5,
            max_inflight: 512,
            rps_limit: 500,
            max_body_bytes: 1 << 20,
            max_decompress_ratio: 10,
            max_decompress_bytes: 10 << 20,
        }
    }
}

impl Default for Edge {
    fn default() -> Self {
        Edge {
            mode: Mode::Offline,
            packs: Vec::new(),
            cas_dir: None,
            allow: Vec::new(),
            allow_private: false,
            ca_file: None,
            public_url: None,
            max_age_secs: 300,
            max_object_bytes: 64 << 20,
            fill_timeout_secs: 20,
            fill_retries: 2,
            fill_backoff_base_ms: 100,
            fill_backoff_max_ms: 2000,
            fill_concurrency: 16,
            fill_queue: 64,
            live_ttl_secs: 3600,
            ram_cache_bytes: 32 << 20,
            open_files: 4096,
        }
    }
}

/// Keys that keep their old value on SIGHUP (spec §2.3 "restart").
pub const RESTART_KEYS: [&str; 9] = [
    "bind_addr",
    "metrics_addr",
    "instance",
    "workers",
    "edge.cas_dir",
    "edge.fill_queue",
    "edge.ram_cache_bytes",
    "edge.open_files",
    "security.amnesia",
];

/// A loader with every layer and reload class declared.
pub fn loader(
    file: Option<PathBuf>,
    flags: Vec<(String, String, String)>,
) -> ConfigLoader<EdgeConfig> {
    let mut l = ConfigLoader::new(ENV_PREFIX).defaults(EdgeConfig::default());
    if let Some(f) = file {
        l = l.file(f);
    }
    l = l.env().cli(flags);
    for key in RESTART_KEYS {
        l = l.reload_class(key, ReloadClass::Restart);
    }
    l
}

impl Validate for EdgeConfig {
    fn validate(&self) -> Vec<(String, String)> {
        let mut e = Vec::new();
        let mut range = |key: &str, v: u64, lo: u64, hi: u64| {
            if !(lo..=hi).contains(&v) {
                e.push((key.to_owned(), format!("must be {lo}..={hi}")));
            }
        };
        range("workers", self.workers.into(), 0, 256);
        range("drain_secs", self.drain_secs.into(), 0, 300);
        let i = &self.ingress;
        range("ingress.timeout_secs", i.timeout_secs.into(), 1, 300);
        range("ingress.max_inflight", i.max_inflight.into(), 1, 65_536);
        range("ingress.rps_limit", i.rps_limit.into(), 1, 10_000_000);
        range("ingress.max_body_bytes", i.max_body_bytes, 0, 64 << 20);
        range(
            "ingress.max_decompress_ratio",
            i.max_decompress_ratio.into(),
            1,
            1000,
        );
        range(
            "ingress.max_decompress_bytes",
            i.max_decompress_bytes,
            64 << 10,
            1 << 30,
        );
        let d = &self.edge;
        range("edge.max_age_secs", d.max_age_secs.into(), 0, 31_536_000);
        range(
            "edge.max_object_bytes",
            d.max_object_bytes,
            1 << 10,
            4 << 30,
        );
        range("edge.fill_timeout_secs", d.fill_timeout_secs.into(), 1, 600);
        range("edge.fill_retries", d.fill_retries.into(), 0, 5);
        range(
            "edge.fill_backoff_base_ms",
            d.fill_backoff_base_ms.into(),
            1,
            60_000,
        );
        range(
            "edge.fill_backoff_max_ms",
            d.fill_backoff_max_ms.into(),
            1,
            60_000,
        );
        range("edge.fill_concurrency", d.fill_concurrency.into(), 1, 1024);
        range("edge.fill_queue", d.fill_queue.into(), 1, 4096);
        range("edge.live_ttl_secs", d.live_ttl_secs.into(), 0, 31_536_000);
        range("edge.ram_cache_bytes", d.ram_cache_bytes, 0, 16 << 30);
        range("edge.open_files", d.open_files.into(), 16, 65_536);
        if d.fill_backoff_base_ms > d.fill_backoff_max_ms {
            e.push((
                "edge.fill_backoff_base_ms".into(),
                "must not exceed edge.fill_backoff_max_ms".into(),
            ));
        }
        if self.bind_addr == self.metrics_addr && self.bind_addr.port() != 0 {
            e.push(("bind_addr".into(), "must differ from metrics_addr".into()));
        }
        if let Some(inst) = &self.instance
            && !valid_instance(inst)
        {
            e.push(("instance".into(), "expected 1-64 of [A-Za-z0-9._-]".into()));
        }
        self.validate_packs(&mut e);
        self.validate_allow(&mut e);
        if self.security.amnesia && d.cas_dir.is_some() {
            e.push((
                "edge.cas_dir".into(),
                "cannot be set with security.amnesia=true (amnesia writes nothing to disk)".into(),
            ));
        }
        if d.mode == Mode::Live {
            if d.allow.is_empty() {
                e.push((
                    "edge.allow".into(),
                    "live mode needs at least one allow-listed host".into(),
                ));
            }
            if d.cas_dir.is_none() && !self.security.amnesia {
                e.push((
                    "edge.cas_dir".into(),
                    "live mode needs cas_dir unless amnesia is on".into(),
                ));
            }
        }
        // An unreadable or certificate-less CA file is a config error (exit 2 and
        // --check-config), not a failure at the first fill.
        if let Some(ca) = &d.ca_file
            && let Err(why) = crate::fill::client::tls_config(Some(ca))
        {
            e.push(("edge.ca_file".into(), why.to_string()));
        }
        if d.mode == Mode::Offline && d.packs.is_empty() && d.cas_dir.is_none() {
            e.push((
                "edge.packs".into(),
                "offline mode needs packs or cas_dir".into(),
            ));
        }
        if let Some(u) = &d.public_url
            && !valid_public_url(u)
        {
            e.push((
                "edge.public_url".into(),
                "expected an absolute http(s) URL without query, fragment or trailing /".into(),
            ));
        }
        let cors = &self.security.cors_allow_origins;
        if cors.len() > MAX_CORS_ORIGINS {
            e.push((
                "security.cors_allow_origins".into(),
                "at most 64 origins".into(),
            ));
        }
        if let Some(bad) = cors.iter().find(|o| !valid_origin(o)) {
            e.push((
                "security.cors_allow_origins".into(),
                format!("{bad:?} is not * or scheme://host[:port] with http or https"),
            ));
        }
        e
    }
}

impl EdgeConfig {
    fn validate_packs(&self, e: &mut Vec<(String, String)>) {
        let packs = &self.edge.packs;
        if packs.len() > MAX_PACKS {
            e.push(("edge.packs".into(), "at most 64 packs".into()));
        }
        let mut stems = std::collections::HashSet::new();
        for p in packs {
            if p.extension().and_then(|x| x.to_str()) != Some("pmtiles") {
                continue;
            }
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            if !valid_stem(stem) {
                e.push((
                    "edge.packs".into(),
                    format!("archive stem {stem:?} must match [A-Za-z0-9][A-Za-z0-9_-]{{0,63}}"),
                ));
            } else if !stems.insert(stem.to_owned()) {
                e.push((
                    "edge.packs".into(),
                    format!("duplicate archive stem {stem:?}"),
                ));
            }
        }
    }

    fn validate_allow(&self, e: &mut Vec<(String, String)>) {
        let allow = &self.edge.allow;
        if allow.len() > MAX_ALLOW {
            e.push(("edge.allow".into(), "at most 256 entries".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for a in allow {
            if let Err(why) = parse_allow(a) {
                e.push(("edge.allow".into(), format!("{a:?}: {why}")));
            } else if !seen.insert(normalize_allow(a)) {
                e.push(("edge.allow".into(), format!("duplicate entry {a:?}")));
            }
        }
    }
}

/// Splits `host[:port]` (port default 443) and checks it is a lower-case DNS name.
pub fn parse_allow(entry: &str) -> Result<(String, u16), &'static str> {
    if entry.contains("://") || entry.contains('/') {
        return Err("no scheme or path allowed; use host[:port]");
    }
    if entry.contains('*') {
        return Err("wildcards are not allowed");
    }
    let (host, port) = match entry.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| "port must be 1-65535")?),
        None => (entry, 443),
    };
    if port == 0 {
        return Err("port must be 1-65535");
    }
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return Err("IP literals are not allowed; use a DNS name");
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err("expected a lower-case DNS name");
    }
    Ok((host.to_owned(), port))
}

/// `host:port` with the default port spelled out, for duplicate checks and matching.
pub fn normalize_allow(entry: &str) -> String {
    match parse_allow(entry) {
        Ok((h, p)) => format!("{h}:{p}"),
        Err(_) => entry.to_owned(),
    }
}

fn valid_instance(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `[A-Za-z0-9][A-Za-z0-9_-]{0,63}`.
pub fn valid_stem(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphanumeric())
        && s.len() <= 64
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

fn valid_public_url(u: &str) -> bool {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/'))
        && !u.contains('?')
        && !u.contains('#')
        && !u.ends_with('/')
}

fn valid_origin(o: &str) -> bool {
    if o == "*" {
        return true;
    }
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"));
    let Some(hostport) = rest else { return false };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (hostport, None),
    };
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
        && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<EdgeConfig, String> {
        let dir =
            std::env::temp_dir().join(format!("edge-cfg-{}-{}", std::process::id(), toml.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(&f, toml).unwrap();
        ConfigLoader::<EdgeConfig>::new(ENV_PREFIX)
            .defaults(EdgeConfig::default())
            .file(&f)
            .env_from(env.iter().copied())
            .load()
            .map(|l| l.into_inner())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn runbook_env_startup_parses() {
        let c = load(
            "",
            &[
                ("SVC_EDGE_BIND_ADDR", "0.0.0.0:8080"),
                ("SVC_EDGE_METRICS_ADDR", "127.0.0.1:9909"),
                ("SVC_EDGE_EDGE__MODE", "offline"),
                ("SVC_EDGE_EDGE__PACKS", "./data/world.pmtiles,./data/static"),
                ("SVC_EDGE_SECURITY__AMNESIA", "true"),
                ("SVC_EDGE_INGRESS__MAX_BODY_BYTES", "2MiB"),
            ],
        )
        .unwrap();
        assert_eq!(c.edge.packs.len(), 2);
        assert!(c.security.amnesia);
        assert_eq!(c.ingress.max_body_bytes, 2 << 20);
    }

    #[test]
    fn each_bad_config_names_key_value_and_source() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: [Case; 9] = [
            ("nope = 1\n[edge]\npacks=[\"x\"]\n", &[], "nope"),
            (
                "drain_secs = \"x\"\n[edge]\npacks=[\"x\"]\n",
                &[],
                "drain_secs",
            ),
            (
                "[ingress]\nmax_inflight = 0\n[edge]\npacks=[\"x\"]\n",
                &[],
                "ingress.max_inflight",
            ),
            (
                "[edge]\nmode=\"live\"\ncas_dir=\"/tmp/c\"\nallow=[\"*.example.org\"]\n",
                &[],
                "edge.allow",
            ),
            (
                "[edge]\nmode=\"live\"\ncas_dir=\"/tmp/c\"\nallow=[\"10.0.0.1\"]\n",
                &[],
                "edge.allow",
            ),
            (
                "[edge]\ncas_dir=\"/tmp/c\"\n[security]\namnesia=true\n",
                &[],
                "edge.cas_dir",
            ),
            (
                "[edge]\nmode=\"live\"\ncas_dir=\"/tmp/c\"\n",
                &[],
                "edge.allow",
            ),
            (
                "[edge]\npacks=[\"a/w.pmtiles\",\"b/w.pmtiles\"]\n",
                &[],
                "edge.packs",
            ),
            (
                "[edge]\npacks=[\"x\"]\n",
                &[("SVC_EDGE_FOO", "1")],
                "SVC_EDGE_FOO",
            ),
        ];
        for (toml, env, key) in cases {
            let err = load(toml, env).expect_err(toml);
            assert!(err.contains(key), "{toml:?} -> {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn allow_entries_are_exact_dns_names_with_optional_port() {
        assert_eq!(
            parse_allow("cdn.example.org").unwrap(),
            ("cdn.example.org".into(), 443)
        );
        assert_eq!(
            parse_allow("localhost:8443").unwrap(),
            ("localhost".into(), 8443)
        );
        for bad in [
            "*.x.org",
            "10.0.0.1",
            "https://x.org",
            "x.org/path",
            "X.org",
            "x.org:0",
            "[::1]",
        ] {
            assert!(parse_allow(bad).is_err(), "{bad}");
        }
    }
}
