//! The typed configuration (spec §2.4): every block with its defaults filled in. Parsing,
//! validation, env overrides and printing live in the sibling modules; everything else in
//! the crate reads only these types.
//!
//! Durations are whole seconds (`u64`), sizes bytes (`u64`), addresses the text as written
//! (hostnames are resolved separately, see `ResolvedTargets`).

use std::path::PathBuf;

/// The whole effective configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `server { … }`.
    pub server: Server,
    /// Extra proxy listeners (`listeners { listener "NAME" { … } }`), in file order.
    pub listeners: Vec<Listener>,
    /// `limits { … }`.
    pub limits: Limits,
    /// Global `connection-pool` defaults (already merged into each upstream's `pool`).
    pub connection_pool: Pool,
    /// Global `timeouts` defaults (already merged into each upstream's `timeouts`).
    pub timeouts: Timeouts,
    /// Upstreams in file order.
    pub upstreams: Vec<Upstream>,
    /// Routes in file (declaration) order; match order is computed by the router.
    pub routes: Vec<Route>,
    /// `metrics { … }`.
    pub metrics: MetricsCfg,
    /// `logging { … }`.
    pub logging: Logging,
    /// `admin { … }`.
    pub admin: Admin,
}

/// `server { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// `listen`, default `0.0.0.0:8080`.
    pub listen: String,
    /// `worker-threads`, 0 = CPUs.
    pub worker_threads: u32,
    /// `max-connections` per proxy listener.
    pub max_connections: u32,
    /// `pid-file`, resolved against the config file's directory.
    pub pid_file: Option<PathBuf>,
    /// `graceful-shutdown-timeout-secs`.
    pub graceful_shutdown_timeout_secs: u64,
    /// `client-header-timeout-secs`.
    pub client_header_timeout_secs: u64,
    /// `client-keepalive-timeout-secs` (0 = close after each response).
    pub client_keepalive_timeout_secs: u64,
    /// `client-body-timeout-secs`.
    pub client_body_timeout_secs: u64,
    /// `client-send-timeout-secs`.
    pub client_send_timeout_secs: u64,
    /// `h2c`: accept HTTP/2 prior knowledge on plain listeners.
    pub h2c: bool,
    /// `h2-max-concurrent-streams`.
    pub h2_max_concurrent_streams: u32,
}

/// Listener protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerProtocol {
    /// Cleartext HTTP/1.x (and h2c when enabled).
    Http,
    /// TLS with ALPN h2 / http/1.1.
    Https,
}

/// `listener "NAME" { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// Name (not `main` or `admin`).
    pub name: String,
    /// `address`.
    pub address: String,
    /// `protocol`.
    pub protocol: ListenerProtocol,
    /// `tls { … }`, present iff `protocol` is https.
    pub tls: Option<ListenerTls>,
}

/// `tls { … }` of a listener.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerTls {
    /// `cert-file`, resolved against the config directory.
    pub cert_file: PathBuf,
    /// `key-file`, resolved against the config directory.
    pub key_file: PathBuf,
    /// `min-version`: `"1.2"` or `"1.3"`.
    pub min_version: TlsVersion,
}

/// Minimum TLS version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2.
    V1_2,
    /// TLS 1.3.
    V1_3,
}

/// `limits { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// `max-header-size-bytes`.
    pub max_header_size_bytes: u64,
    /// `max-header-count`.
    pub max_header_count: u32,
    /// `max-uri-bytes`.
    pub max_uri_bytes: u64,
    /// `max-body-size-bytes`, 0 = unlimited.
    pub max_body_size_bytes: u64,
    /// `max-total-connections`.
    pub max_total_connections: u32,
    /// `max-connections-per-client`, 0 = unlimited.
    pub max_connections_per_client: u32,
    /// `max-in-flight-requests`.
    pub max_in_flight_requests: u32,
}

/// `connection-pool { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// `max-connections` per target.
    pub max_connections: u32,
    /// `max-idle` per target.
    pub max_idle: u32,
    /// `idle-timeout-secs`.
    pub idle_timeout_secs: u64,
}

/// `timeouts { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    /// `connect-secs`.
    pub connect_secs: u64,
    /// `request-secs`.
    pub request_secs: u64,
    /// `read-secs`.
    pub read_secs: u64,
    /// `write-secs`.
    pub write_secs: u64,
}

/// `upstream "NAME" { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// Name.
    pub name: String,
    /// Proxying or static.
    pub kind: UpstreamKind,
}

/// What an upstream is.
#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamKind {
    /// Targets behind a load balancer.
    Proxy(ProxyUpstream),
    /// An in-process response (`static { … }`).
    Static(StaticResponse),
}

/// A proxying upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyUpstream {
    /// Targets in file order (at least one).
    pub targets: Vec<Target>,
    /// `load-balancing`.
    pub load_balancing: LbPolicy,
    /// `protocol`.
    pub protocol: UpstreamProtocol,
    /// `health-check { … }`; `None` = no active checks.
    pub health_check: Option<HealthCheck>,
    /// `passive-health { … }`.
    pub passive_health: PassiveHealth,
    /// `circuit-breaker { … }`.
    pub circuit_breaker: CircuitBreaker,
    /// Effective pool (global defaults overridden key by key).
    pub pool: Pool,
    /// Effective timeouts (global defaults overridden key by key).
    pub timeouts: Timeouts,
}

/// `target { address "H:P"; weight N }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `H:P` as written (IP literal or DNS name).
    pub address: String,
    /// 0–1000; 0 = drain.
    pub weight: u32,
}

/// Load-balancing policies (spec §4.4 R27).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbPolicy {
    /// `round-robin`.
    RoundRobin,
    /// `weighted` (smooth weighted round-robin).
    Weighted,
    /// `least-connections`.
    LeastConnections,
    /// `p2c` (power of two choices).
    P2c,
    /// `ip-hash` (weighted rendezvous on the client IP).
    IpHash,
}

/// Upstream wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 prior knowledge.
    H2c,
}

/// `health-check { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    /// `type "http" { … }` or `type "tcp"`.
    pub probe: Probe,
    /// `interval-secs`.
    pub interval_secs: u64,
    /// `timeout-secs` (≤ interval).
    pub timeout_secs: u64,
    /// `healthy-threshold`.
    pub healthy_threshold: u32,
    /// `unhealthy-threshold`.
    pub unhealthy_threshold: u32,
}

/// Active probe kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// HTTP GET.
    Http {
        /// `path`, default `/health`.
        path: String,
        /// `expected-status`, default `[200]`.
        expected_status: Vec<u16>,
        /// `host`; `None` = the target address.
        host: Option<String>,
    },
    /// TCP connect.
    Tcp,
}

/// `passive-health { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct PassiveHealth {
    /// `enabled`.
    pub enabled: bool,
    /// `window`.
    pub window: u32,
    /// `failure-ratio` (0, 1].
    pub failure_ratio: f64,
    /// `min-requests`.
    pub min_requests: u32,
    /// `cooldown-secs`.
    pub cooldown_secs: u64,
}

/// `circuit-breaker { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitBreaker {
    /// `enabled`.
    pub enabled: bool,
    /// `failure-threshold`.
    pub failure_threshold: u32,
    /// `success-threshold`.
    pub success_threshold: u32,
    /// `timeout-secs`.
    pub timeout_secs: u64,
    /// `half-open-max-requests`.
    pub half_open_max_requests: u32,
}

/// `static { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticResponse {
    /// `status`.
    pub status: u16,
    /// The body (from `body`, or `body-file` read at load).
    pub body: StaticBody,
    /// `content-type`.
    pub content_type: String,
    /// `header NAME VALUE`, in file order.
    pub headers: Vec<(String, String)>,
}

/// Where a static body comes from; the bytes are loaded by the resource step.
#[derive(Debug, Clone, PartialEq)]
pub enum StaticBody {
    /// `body "…"` (or none: empty).
    Inline(String),
    /// `body-file "…"`, resolved against the config directory; `bytes` is filled when the
    /// file is read (load, `--test-config`, reload) and `None` before that (`--validate`).
    File {
        /// The path.
        path: PathBuf,
        /// The content, once read (≤ 1 MiB).
        bytes: Option<Vec<u8>>,
    },
}

/// `route "NAME" { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Name.
    pub name: String,
    /// `priority`.
    pub priority: Priority,
    /// `matches { … }`; all empty = matches everything.
    pub matches: Matches,
    /// `upstream`.
    pub upstream: String,
    /// `policies { … }`.
    pub policies: Policies,
}

/// Route priority, lowest first so `Ord` sorts by importance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// `low`.
    Low,
    /// `normal`.
    Normal,
    /// `high`.
    High,
    /// `critical`.
    Critical,
}

/// `matches { … }`: each list ORs within its kind ({path, path-prefix} is one kind).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Matches {
    /// `path P…` (exact).
    pub path: Vec<String>,
    /// `path-prefix P…`.
    pub path_prefix: Vec<String>,
    /// `host H…` (lowercase; `*.suffix` wildcards).
    pub host: Vec<String>,
    /// `method M…`.
    pub method: Vec<String>,
    /// `header NAME [VALUE]` (name as written).
    pub header: Vec<(String, Option<String>)>,
}

/// `policies { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Policies {
    /// `timeout-secs` (overrides the upstream's `request-secs`).
    pub timeout_secs: Option<u64>,
    /// `failure-mode`.
    pub failure_mode: FailureMode,
    /// `retries` (extra attempts).
    pub retries: u32,
    /// `rate-limit { … }`.
    pub rate_limit: Option<RateLimit>,
}

/// What to do with no eligible target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// 503 `no_healthy_upstream`.
    Closed,
    /// Try the weight > 0 targets anyway.
    Open,
}

/// `rate-limit { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    /// `requests-per-second`.
    pub requests_per_second: u32,
    /// `burst` (default = rps).
    pub burst: u32,
    /// `key`.
    pub key: RateKey,
    /// `max-keys`.
    pub max_keys: u32,
}

/// Rate-limit key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateKey {
    /// The TCP peer IP.
    ClientIp,
    /// The first value of a header (fallback: client IP).
    Header(String),
    /// One bucket per route.
    Route,
}

/// `metrics { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsCfg {
    /// `address`, default `0.0.0.0:9090`.
    pub address: String,
    /// `enabled`.
    pub enabled: bool,
}

/// `logging { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Logging {
    /// `level`: trace, debug, info, warn, error.
    pub level: String,
    /// `format`.
    pub format: LogFormat,
    /// `stdout`.
    pub stdout: bool,
    /// `file`, resolved against the config directory.
    pub file: Option<PathBuf>,
    /// `access-log`.
    pub access_log: AccessLog,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON lines.
    Json,
    /// Human-readable.
    Pretty,
}

/// Access-log destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    /// No access log.
    Off,
    /// JSON lines on stdout.
    Stdout,
    /// JSON lines appended to a file (resolved against the config directory).
    File(PathBuf),
}

/// `admin { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    /// The bearer token, from `token` or the trimmed content of `token-file`.
    pub token: Option<AdminToken>,
}

/// Where the admin token comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum AdminToken {
    /// `token "…"`.
    Inline(String),
    /// `token-file "…"`; `value` is filled when the file is read.
    File {
        /// The path.
        path: PathBuf,
        /// The trimmed content, once read.
        value: Option<String>,
    },
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: Server::default(),
            listeners: Vec::new(),
            limits: Limits::default(),
            connection_pool: Pool::default(),
            timeouts: Timeouts::default(),
            upstreams: Vec::new(),
            routes: Vec::new(),
            metrics: MetricsCfg::default(),
            logging: Logging::default(),
            admin: Admin { token: None },
        }
    }
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: "0.0.0.0:8080".into(),
            worker_threads: 0,
            max_connections: 10_000,
            pid_file: None,
            graceful_shutdown_timeout_secs: 30,
            client_header_timeout_secs: 10,
            client_keepalive_timeout_secs: 75,
            client_body_timeout_secs: 60,
            client_send_timeout_secs: 60,
            h2c: true,
            h2_max_concurrent_streams: 100,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_size_bytes: 16_384,
            max_header_count: 100,
            max_uri_bytes: 8192,
            max_body_size_bytes: 10_485_760,
            max_total_connections: 10_000,
            max_connections_per_client: 0,
            max_in_flight_requests: 10_000,
        }
    }
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            max_connections: 100,
            max_idle: 20,
            idle_timeout_secs: 60,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect_secs: 10,
            request_secs: 60,
            read_secs: 30,
            write_secs: 30,
        }
    }
}

impl Default for PassiveHealth {
    fn default() -> Self {
        PassiveHealth {
            enabled: true,
            window: 100,
            failure_ratio: 0.5,
            min_requests: 20,
            cooldown_secs: 30,
        }
    }
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker {
            enabled: true,
            failure_threshold: 5,
            success_threshold: 2,
            timeout_secs: 30,
            half_open_max_requests: 1,
        }
    }
}

impl Default for Policies {
    fn default() -> Self {
        Policies {
            timeout_secs: None,
            failure_mode: FailureMode::Closed,
            retries: 1,
            rate_limit: None,
        }
    }
}

impl Default for MetricsCfg {
    fn default() -> Self {
        MetricsCfg {
            address: "0.0.0.0:9090".into(),
            enabled: true,
        }
    }
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            level: "info".into(),
            format: LogFormat::Json,
            stdout: true,
            file: None,
            access_log: AccessLog::Off,
        }
    }
}
