//! The typed, validated configuration ([`Config`]) and its defaults (spec §2.3).
//!
//! Every key of the spec table is a typed field here; the `DEFAULT_*` constants are the
//! table's defaults. Values only reach these types through [`super::load`], which has
//! already checked ranges and cross-field rules, so the rest of the server can use them
//! without re-checking.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::secrets::{SecretString, redact_url};

/// Default `data_dir`.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// File name of the default SQLite database inside `data_dir`.
pub const DEFAULT_SQLITE_FILE: &str = "rustchat.db";
/// Directory name of the default `files.dir` inside `data_dir`.
pub const DEFAULT_FILES_SUBDIR: &str = "files";
/// Default `server.host`.
pub const DEFAULT_HOST: &str = "0.0.0.0";
/// Default `server.port`.
pub const DEFAULT_PORT: u16 = 3000;
/// Default `server.shutdown_grace_seconds`.
pub const DEFAULT_SHUTDOWN_GRACE_SECONDS: u32 = 30;
/// Default `server.request_timeout_seconds`.
pub const DEFAULT_REQUEST_TIMEOUT_SECONDS: u32 = 30;
/// Default `server.config_refresh_seconds`.
pub const DEFAULT_CONFIG_REFRESH_SECONDS: u32 = 30;
/// Pool size when `db_pool.max_connections` is unset and the backend is PostgreSQL.
pub const DEFAULT_PG_POOL_MAX: u32 = 20;
/// Reader pool size when `db_pool.max_connections` is unset and the backend is SQLite
/// (the single writer connection comes on top).
pub const DEFAULT_SQLITE_POOL_MAX: u32 = 8;
/// Default `db_pool.min_connections`.
pub const DEFAULT_POOL_MIN_CONNECTIONS: u32 = 2;
/// Default `db_pool.acquire_timeout_ms`.
pub const DEFAULT_ACQUIRE_TIMEOUT_MS: u32 = 3000;
/// Default `db_pool.idle_timeout_seconds`.
pub const DEFAULT_IDLE_TIMEOUT_SECONDS: u32 = 600;
/// Default `db_pool.max_lifetime_seconds`.
pub const DEFAULT_MAX_LIFETIME_SECONDS: u32 = 1800;
/// Default `db.statement_timeout_ms` (PostgreSQL only).
pub const DEFAULT_STATEMENT_TIMEOUT_MS: u32 = 30_000;
/// Default `security.rate_limit_auth_per_minute`.
pub const DEFAULT_RATE_LIMIT_AUTH_PER_MINUTE: u32 = 10;
/// Default `security.rate_limit_ws_per_minute`.
pub const DEFAULT_RATE_LIMIT_WS_PER_MINUTE: u32 = 30;
/// Default `security.rate_limit_webhook_per_minute`.
pub const DEFAULT_RATE_LIMIT_WEBHOOK_PER_MINUTE: u32 = 60;
/// Default `jwt.issuer`.
pub const DEFAULT_JWT_ISSUER: &str = "rustchat";
/// Default `jwt.audience`.
pub const DEFAULT_JWT_AUDIENCE: &str = "rustchat";
/// Default `jwt.expiry_hours` (one week).
pub const DEFAULT_JWT_EXPIRY_HOURS: u32 = 168;
/// Default `files.min_free_mb`.
pub const DEFAULT_FILES_MIN_FREE_MB: u32 = 256;
/// Default `ws.max_connections_per_node`.
pub const DEFAULT_WS_MAX_CONNECTIONS_PER_NODE: u32 = 20_000;
/// Default `ws.send_queue_messages`.
pub const DEFAULT_WS_SEND_QUEUE_MESSAGES: u32 = 256;
/// Default `ws.ping_interval_seconds`.
pub const DEFAULT_WS_PING_INTERVAL_SECONDS: u32 = 30;
/// Default `ws.auth_timeout_seconds`.
pub const DEFAULT_WS_AUTH_TIMEOUT_SECONDS: u32 = 10;
/// Default `cluster.heartbeat_interval_seconds`.
pub const DEFAULT_CLUSTER_HEARTBEAT_INTERVAL_SECONDS: u32 = 10;
/// Default `compat.mattermost_version` (what v4 clients are told).
pub const DEFAULT_MATTERMOST_VERSION: &str = "10.11.10";
/// Default `search.pg_language`.
pub const DEFAULT_PG_LANGUAGE: &str = "english";
/// Default `log.slow_request_ms`.
pub const DEFAULT_LOG_SLOW_REQUEST_MS: u32 = 1000;
/// Default `log.slow_query_ms`.
pub const DEFAULT_LOG_SLOW_QUERY_MS: u32 = 500;
/// Default `oauth.breaker_failure_threshold`.
pub const DEFAULT_OAUTH_BREAKER_THRESHOLD: u32 = 5;
/// Default `oauth.breaker_open_seconds`.
pub const DEFAULT_OAUTH_BREAKER_OPEN_SECONDS: u32 = 30;
/// Default `oauth.http_timeout_ms`.
pub const DEFAULT_OAUTH_HTTP_TIMEOUT_MS: u32 = 5000;
/// Default `oauth.providers.<name>.scopes`.
pub const DEFAULT_OAUTH_SCOPES: [&str; 3] = ["openid", "email", "profile"];

/// The validated configuration of one rustchat process.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `environment`: production turns secret weaknesses and http URLs into errors.
    pub environment: Environment,
    /// `database_url`: the backend and where it lives.
    pub database_url: DatabaseUrl,
    /// `redis_url`: cluster fan-out; `None` means the in-process hub.
    pub redis_url: Option<String>,
    /// `site_url` without a trailing `/`; `None` means links use the request Host.
    pub site_url: Option<String>,
    /// `jwt_secret`; `None` only in development (an ephemeral one is generated).
    pub jwt_secret: Option<SecretString>,
    /// `encryption_key`; `None` only in development (`<data_dir>/dev-encryption.key`).
    pub encryption_key: Option<SecretString>,
    /// `data_dir`: SQLite file, uploaded files and the development key live here.
    pub data_dir: PathBuf,
    /// `server.*`.
    pub server: ServerConfig,
    /// `db_pool.*`.
    pub db_pool: DbPoolConfig,
    /// `db.*`.
    pub db: DbConfig,
    /// `security.*`.
    pub security: SecurityConfig,
    /// `jwt.*`.
    pub jwt: JwtConfig,
    /// `files.*`.
    pub files: FilesConfig,
    /// `ws.*`.
    pub ws: WsConfig,
    /// `cluster.*`.
    pub cluster: ClusterConfig,
    /// `compat.*`.
    pub compat: CompatConfig,
    /// `search.*`.
    pub search: SearchConfig,
    /// `log.*`.
    pub log: LogConfig,
    /// `oauth.*`.
    pub oauth: OAuthConfig,
}

/// `environment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Environment {
    /// Local use: secret problems are warnings, missing secrets are generated.
    #[default]
    Development,
    /// Production: secrets are required and must be strong; URLs must be https.
    Production,
}

/// `database_url`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://PATH`, `sqlite:PATH` or `sqlite::memory:`.
    Sqlite {
        /// The database file (`:memory:` for an in-memory database).
        path: PathBuf,
        /// Whether the database lives only in memory.
        memory: bool,
        /// The URL as configured.
        url: String,
    },
    /// `postgres://…` or `postgresql://…`.
    Postgres {
        /// The URL as configured (may hold a password: log [`DatabaseUrl::redacted`]).
        url: String,
    },
}

/// `server.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// `server.host`: the IP to bind.
    pub host: IpAddr,
    /// `server.port`.
    pub port: u16,
    /// `server.trusted_proxies`: peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// `server.shutdown_grace_seconds`: how long SIGTERM waits for in-flight work.
    pub shutdown_grace_seconds: u32,
    /// `server.request_timeout_seconds`.
    pub request_timeout_seconds: u32,
    /// `server.config_refresh_seconds`: how often `server_config` is re-read.
    pub config_refresh_seconds: u32,
}

/// `db_pool.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbPoolConfig {
    /// `db_pool.max_connections`; `None` means the backend default, see
    /// [`Config::effective_pool_max`].
    pub max_connections: Option<u32>,
    /// `db_pool.min_connections`.
    pub min_connections: u32,
    /// `db_pool.acquire_timeout_ms`.
    pub acquire_timeout_ms: u32,
    /// `db_pool.idle_timeout_seconds`.
    pub idle_timeout_seconds: u32,
    /// `db_pool.max_lifetime_seconds`.
    pub max_lifetime_seconds: u32,
}

/// `db.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbConfig {
    /// `db.statement_timeout_ms` (PostgreSQL only).
    pub statement_timeout_ms: u32,
    /// `db.sqlite_synchronous`.
    pub sqlite_synchronous: SqliteSynchronous,
}

/// `db.sqlite_synchronous`: SQLite's `PRAGMA synchronous` in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SqliteSynchronous {
    /// `FULL`: an acknowledged commit survives power loss.
    #[default]
    Full,
    /// `NORMAL`: faster; the last commits may be lost on power loss (not on a crash).
    Normal,
}

/// `security.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityConfig {
    /// `security.rate_limit_enabled`.
    pub rate_limit_enabled: bool,
    /// `security.rate_limit_auth_per_minute` (per client IP, per node).
    pub rate_limit_auth_per_minute: u32,
    /// `security.rate_limit_ws_per_minute`.
    pub rate_limit_ws_per_minute: u32,
    /// `security.rate_limit_webhook_per_minute`.
    pub rate_limit_webhook_per_minute: u32,
    /// `security.oauth_token_delivery`.
    pub oauth_token_delivery: OAuthTokenDelivery,
    /// `security.cors_allowed_origins`: `scheme://host[:port]`, no trailing `/`; empty
    /// means same origin only.
    pub cors_allowed_origins: Vec<String>,
}

/// `security.oauth_token_delivery`: how the OAuth login hands the session to the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OAuthTokenDelivery {
    /// HttpOnly cookies only; tokens never appear in URLs (the only accepted value).
    #[default]
    Cookie,
}

/// `jwt.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// `jwt.issuer`.
    pub issuer: String,
    /// `jwt.audience`.
    pub audience: String,
    /// `jwt.expiry_hours`.
    pub expiry_hours: u32,
}

/// `files.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesConfig {
    /// `files.dir`; defaults to `<data_dir>/files`.
    pub dir: PathBuf,
    /// `files.min_free_mb`: uploads are refused below this much free space.
    pub min_free_mb: u32,
}

/// `ws.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsConfig {
    /// `ws.max_connections_per_node`: node-wide WebSocket cap.
    pub max_connections_per_node: u32,
    /// `ws.send_queue_messages`: per-connection outbound queue bound.
    pub send_queue_messages: u32,
    /// `ws.ping_interval_seconds`.
    pub ping_interval_seconds: u32,
    /// `ws.auth_timeout_seconds`.
    pub auth_timeout_seconds: u32,
}

/// `cluster.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `cluster.node_id`; defaults to `<hostname>-<6 random [a-z0-9]>`.
    pub node_id: String,
    /// `cluster.heartbeat_interval_seconds`.
    pub heartbeat_interval_seconds: u32,
}

/// `compat.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatConfig {
    /// `compat.mattermost_version`: `x.y.z` reported to v4 clients.
    pub mattermost_version: String,
}

/// `search.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchConfig {
    /// `search.pg_language`: a built-in PostgreSQL text search configuration.
    pub pg_language: String,
}

/// `log.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `log.format`.
    pub format: LogFormat,
    /// `log.access`.
    pub access: AccessLog,
    /// `log.slow_request_ms`: requests slower than this are logged.
    pub slow_request_ms: u32,
    /// `log.slow_query_ms`: queries slower than this are logged.
    pub slow_query_ms: u32,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LogFormat {
    /// One JSON object per line (what the runbook's `jq` queries read).
    #[default]
    Json,
    /// Human-readable lines.
    Pretty,
}

/// `log.access`: which requests get an access-log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AccessLog {
    /// Only 4xx/5xx responses and requests slower than `log.slow_request_ms`.
    #[default]
    ErrorsAndSlow,
    /// Every request.
    All,
}

/// `oauth.*`.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthConfig {
    /// `oauth.breaker_failure_threshold`.
    pub breaker_failure_threshold: u32,
    /// `oauth.breaker_open_seconds`.
    pub breaker_open_seconds: u32,
    /// `oauth.http_timeout_ms`.
    pub http_timeout_ms: u32,
    /// `oauth.providers.<name>`, by name.
    pub providers: BTreeMap<String, OAuthProvider>,
}

/// `oauth.providers.<name>`: one OIDC identity provider.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthProvider {
    /// The table name (`[a-z0-9-]{1,32}`), used in routes and metric labels.
    pub name: String,
    /// `issuer_url`: where `/.well-known/openid-configuration` is found.
    pub issuer_url: String,
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`.
    pub client_secret: SecretString,
    /// `display_name`; defaults to the name.
    pub display_name: String,
    /// `scopes`; defaults to `openid email profile`.
    pub scopes: Vec<String>,
    /// `allowed_email_domains` (lower case); empty allows every domain.
    pub allowed_email_domains: Vec<String>,
    /// `link_by_email`: attach a first OIDC login to an existing account with the same
    /// verified email.
    pub link_by_email: bool,
}

/// An IP network (`10.0.0.0/8`, `fd00::/8`; a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Config {
    /// Whether this is a production configuration.
    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }

    /// The pool size to open: `db_pool.max_connections`, else 20 for PostgreSQL and 8
    /// readers for SQLite.
    pub fn effective_pool_max(&self) -> u32 {
        self.db_pool
            .max_connections
            .unwrap_or(match self.database_url {
                DatabaseUrl::Postgres { .. } => DEFAULT_PG_POOL_MAX,
                DatabaseUrl::Sqlite { .. } => DEFAULT_SQLITE_POOL_MAX,
            })
    }

    /// `database_url` with any password replaced by `***`, for logs and `--check-config`.
    pub fn redacted_database_url(&self) -> String {
        self.database_url.redacted()
    }

    /// `redis_url` with any password replaced by `***`.
    pub fn redacted_redis_url(&self) -> Option<String> {
        self.redis_url.as_deref().map(redact_url)
    }

    /// Key material of `jwt_secret` (§4.14), if set.
    pub fn jwt_key_material(&self) -> Option<Vec<u8>> {
        self.jwt_secret.as_ref().map(SecretString::material)
    }

    /// Key material of `encryption_key` (§4.14), if set.
    pub fn encryption_key_material(&self) -> Option<Vec<u8>> {
        self.encryption_key.as_ref().map(SecretString::material)
    }
}

impl Environment {
    /// `development` or `production`.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Production => "production",
        }
    }
}

impl FromStr for Environment {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" => Ok(Environment::Development),
            "production" | "prod" => Ok(Environment::Production),
            _ => Err("expected development or production (dev/prod accepted)".to_owned()),
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl DatabaseUrl {
    /// The default: `sqlite://<data_dir>/rustchat.db`.
    pub fn default_for(data_dir: &std::path::Path) -> Self {
        let path = data_dir.join(DEFAULT_SQLITE_FILE);
        DatabaseUrl::Sqlite {
            url: format!("sqlite://{}", path.display()),
            path,
            memory: false,
        }
    }

    /// Parses `sqlite://PATH`, `sqlite:PATH`, `sqlite::memory:`, `postgres://…` and
    /// `postgresql://…`; the error says what was expected.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            let rest = &url[url.find("://").map_or(0, |i| i + 3)..];
            if rest.is_empty() {
                return Err("names no server: use postgres://USER:PASSWORD@HOST:5432/DB".into());
            }
            return Ok(DatabaseUrl::Postgres {
                url: url.to_owned(),
            });
        }
        if lower.starts_with("sqlite:") {
            let rest = url["sqlite:".len()..]
                .strip_prefix("//")
                .unwrap_or(&url["sqlite:".len()..]);
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            let memory = path == ":memory:" || query.split('&').any(|kv| kv == "mode=memory");
            if path.is_empty() && !memory {
                return Err(
                    "names no file: use sqlite://PATH (e.g. sqlite://./data/rustchat.db)".into(),
                );
            }
            return Ok(DatabaseUrl::Sqlite {
                path: PathBuf::from(if memory && path.is_empty() {
                    ":memory:"
                } else {
                    path
                }),
                memory,
                url: url.to_owned(),
            });
        }
        Err("expected a sqlite://, postgres:// or postgresql:// URL".to_owned())
    }

    /// The URL as configured.
    pub fn url(&self) -> &str {
        match self {
            DatabaseUrl::Sqlite { url, .. } | DatabaseUrl::Postgres { url } => url,
        }
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(self.url())
    }

    /// `sqlite` or `postgres` (log fields, metric labels).
    pub fn backend(&self) -> &'static str {
        match self {
            DatabaseUrl::Sqlite { .. } => "sqlite",
            DatabaseUrl::Postgres { .. } => "postgres",
        }
    }

    /// Whether this is the embedded SQLite backend.
    pub fn is_sqlite(&self) -> bool {
        matches!(self, DatabaseUrl::Sqlite { .. })
    }
}

impl ServerConfig {
    /// `host:port` to bind.
    pub fn bind_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// Whether `peer` is a trusted proxy whose forwarding headers are believed.
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|c| c.contains(peer))
    }

    /// `shutdown_grace_seconds` as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(u64::from(self.shutdown_grace_seconds))
    }

    /// `request_timeout_seconds` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.request_timeout_seconds))
    }

    /// `config_refresh_seconds` as a duration.
    pub fn config_refresh(&self) -> Duration {
        Duration::from_secs(u64::from(self.config_refresh_seconds))
    }
}

impl DbPoolConfig {
    /// `acquire_timeout_ms` as a duration.
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.acquire_timeout_ms))
    }
}

impl SqliteSynchronous {
    /// The `PRAGMA synchronous` value: `FULL` or `NORMAL`.
    pub fn pragma(self) -> &'static str {
        match self {
            SqliteSynchronous::Full => "FULL",
            SqliteSynchronous::Normal => "NORMAL",
        }
    }
}

impl FromStr for SqliteSynchronous {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "full" => Ok(SqliteSynchronous::Full),
            "normal" => Ok(SqliteSynchronous::Normal),
            _ => Err("expected full or normal".to_owned()),
        }
    }
}

impl FromStr for OAuthTokenDelivery {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cookie" => Ok(OAuthTokenDelivery::Cookie),
            _ => Err("only \"cookie\" is supported: tokens are never put in URLs".to_owned()),
        }
    }
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(LogFormat::Json),
            "pretty" => Ok(LogFormat::Pretty),
            _ => Err("expected json or pretty".to_owned()),
        }
    }
}

impl FromStr for AccessLog {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "errors_and_slow" => Ok(AccessLog::ErrorsAndSlow),
            "all" => Ok(AccessLog::All),
            _ => Err("expected errors_and_slow or all".to_owned()),
        }
    }
}

impl Cidr {
    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies in this network; IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`)
    /// match IPv4 networks, since dual-stack listeners report IPv4 peers that way.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask_v4(u32::from(ip), self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_v6(u128::from(ip), self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask_v4(bits: u32, prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        bits & (u32::MAX << (32 - u32::from(prefix)))
    }
}

fn mask_v6(bits: u128, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - u32::from(prefix)))
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| "expected a CIDR such as 10.0.0.0/8 or fd00::/8".to_owned())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("prefix length must be 0-{max}"))?,
        };
        let network = match addr {
            IpAddr::V4(v4) => IpAddr::V4(mask_v4(u32::from(v4), prefix).into()),
            IpAddr::V6(v6) => IpAddr::V6(mask_v6(u128::from(v6), prefix).into()),
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_contains_addresses_of_its_network_only() {
        let net: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert!(net.contains(ip("10.255.0.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.0.0.9")));
        let host: Cidr = "192.168.1.5".parse().unwrap();
        assert!(host.contains(ip("192.168.1.5")) && !host.contains(ip("192.168.1.6")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")) && !all.contains(ip("::1")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let any6: Cidr = "::/0".parse().unwrap();
        assert!(any6.contains(ip("2001:db8::1")));
    }

    #[test]
    fn cidr_rejects_bad_text() {
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("fd00::/129".parse::<Cidr>().is_err());
        assert!("example.com/8".parse::<Cidr>().is_err());
        assert!("10.0.0.0/x".parse::<Cidr>().is_err());
    }

    #[test]
    fn database_urls_parse_into_backends() {
        let default = DatabaseUrl::default_for(std::path::Path::new("./data"));
        assert_eq!(default.url(), "sqlite://./data/rustchat.db");
        assert_eq!(
            DatabaseUrl::parse("sqlite://./data/rustchat.db").unwrap(),
            default
        );
        let abs = DatabaseUrl::parse("sqlite:///var/lib/rustchat/chat.db?mode=rwc").unwrap();
        assert!(
            matches!(&abs, DatabaseUrl::Sqlite { path, memory: false, .. } if path == std::path::Path::new("/var/lib/rustchat/chat.db"))
        );
        let mem = DatabaseUrl::parse("sqlite::memory:").unwrap();
        assert!(matches!(mem, DatabaseUrl::Sqlite { memory: true, .. }));
        assert!(DatabaseUrl::parse("postgresql://u:p@db/chat").is_ok());
        assert_eq!(
            DatabaseUrl::parse("postgres://u:p@db/chat")
                .unwrap()
                .backend(),
            "postgres"
        );
        assert!(DatabaseUrl::parse("mysql://db/chat").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn enums_accept_their_spellings_in_any_case() {
        assert_eq!(
            "PROD".parse::<Environment>().unwrap(),
            Environment::Production
        );
        assert_eq!(
            "dev".parse::<Environment>().unwrap(),
            Environment::Development
        );
        assert!("staging".parse::<Environment>().is_err());
        assert_eq!(
            "normal".parse::<SqliteSynchronous>().unwrap().pragma(),
            "NORMAL"
        );
        assert_eq!("all".parse::<AccessLog>().unwrap(), AccessLog::All);
        assert_eq!("Pretty".parse::<LogFormat>().unwrap(), LogFormat::Pretty);
        assert!("query".parse::<OAuthTokenDelivery>().is_err());
    }
}
