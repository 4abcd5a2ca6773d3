//! From the written configuration ([`RawConfig`]) to the typed one ([`Config`]): every
//! range, enum and cross-field rule of spec §2.3 and the secret rules of §4.14, each
//! violation reported (not only the first) as `(key, reason)`.
//!
//! Loading never touches the filesystem beyond reading config files, so "creatable,
//! writable" for `data_dir`/`files.dir` and the OIDC discovery URLs are probed by
//! `--check-config` and at start, not here.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use ron_kernel::config::Validate;

use super::ConfigWarning;
use super::env::canonical_var;
use super::model::{
    ClusterConfig, CompatConfig, Config, DEFAULT_FILES_SUBDIR, DEFAULT_OAUTH_SCOPES,
    DEFAULT_PG_POOL_MAX, DEFAULT_SQLITE_POOL_MAX, DatabaseUrl, DbConfig, DbPoolConfig, Environment,
    FilesConfig, JwtConfig, LogConfig, OAuthConfig, OAuthProvider, SearchConfig, SecurityConfig,
    ServerConfig, SqliteSynchronous, WsConfig,
};
use super::raw::{RawConfig, RawProvider};
use super::secrets::{SECRET_HINT, SecretString, key_material, secret_weaknesses};

/// Built-in PostgreSQL text search configurations (PostgreSQL 15).
pub const PG_TEXT_SEARCH_CONFIGS: [&str; 29] = [
    "simple",
    "arabic",
    "armenian",
    "basque",
    "catalan",
    "danish",
    "dutch",
    "english",
    "finnish",
    "french",
    "german",
    "greek",
    "hindi",
    "hungarian",
    "indonesian",
    "irish",
    "italian",
    "lithuanian",
    "nepali",
    "norwegian",
    "portuguese",
    "romanian",
    "russian",
    "serbian",
    "spanish",
    "swedish",
    "tamil",
    "turkish",
    "yiddish",
];

/// The outcome of checking a [`RawConfig`].
pub(crate) struct Built {
    /// The typed config; `None` when `problems` is not empty.
    pub config: Option<Config>,
    /// Every violation as `(key, reason)`.
    pub problems: Vec<(String, String)>,
    /// Things that work but deserve the operator's attention.
    pub warnings: Vec<ConfigWarning>,
}

/// Collects problems while converting; converters return a fallback value on error so
/// that checking goes on and every problem is found in one pass.
struct Checker {
    problems: Vec<(String, String)>,
    warnings: Vec<ConfigWarning>,
    production: bool,
}

impl Validate for RawConfig {
    fn validate(&self) -> Vec<(String, String)> {
        // The node id only has to be valid here; the real one is drawn after loading.
        build(self, &|| "validation".to_owned()).problems
    }
}

/// Checks `raw` and builds the typed config; `default_node_id` supplies
/// `cluster.node_id` when none is configured.
pub(crate) fn build(raw: &RawConfig, default_node_id: &dyn Fn() -> String) -> Built {
    let environment = raw.environment.parse::<Environment>();
    let mut c = Checker {
        problems: Vec::new(),
        warnings: Vec::new(),
        production: environment == Ok(Environment::Production),
    };
    let environment = environment.unwrap_or_else(|why| {
        c.error("environment", why);
        Environment::Development
    });
    let data_dir = PathBuf::from(&raw.data_dir);
    if raw.data_dir.trim().is_empty() {
        c.error("data_dir", "must not be empty (default ./data)");
    }
    let database_url = c.database_url(raw, &data_dir);
    let redis_url = c.redis_url(raw, &database_url);
    let site_url = c.site_url(raw);
    let (jwt_secret, encryption_key) = c.secrets(raw);
    let server = c.server(raw);
    let db_pool = c.db_pool(raw, &database_url);
    let db = c.db(raw, &database_url);
    let security = c.security(raw);
    let jwt = JwtConfig {
        issuer: c.text_len("jwt.issuer", &raw.jwt.issuer, 256),
        audience: c.text_len("jwt.audience", &raw.jwt.audience, 256),
        expiry_hours: c.range("jwt.expiry_hours", raw.jwt.expiry_hours, 1, 8760),
    };
    let files = FilesConfig {
        dir: match &raw.files.dir {
            Some(dir) if dir.trim().is_empty() => {
                c.error("files.dir", "must not be empty (default <data_dir>/files)");
                PathBuf::new()
            }
            Some(dir) => PathBuf::from(dir),
            None => data_dir.join(DEFAULT_FILES_SUBDIR),
        },
        min_free_mb: c.range("files.min_free_mb", raw.files.min_free_mb, 0, u32::MAX),
    };
    let ws = WsConfig {
        max_connections_per_node: c.range(
            "ws.max_connections_per_node",
            raw.ws.max_connections_per_node,
            1,
            1_000_000,
        ),
        send_queue_messages: c.range(
            "ws.send_queue_messages",
            raw.ws.send_queue_messages,
            16,
            65_536,
        ),
        ping_interval_seconds: c.range(
            "ws.ping_interval_seconds",
            raw.ws.ping_interval_seconds,
            5,
            300,
        ),
        auth_timeout_seconds: c.range(
            "ws.auth_timeout_seconds",
            raw.ws.auth_timeout_seconds,
            1,
            60,
        ),
    };
    let cluster = ClusterConfig {
        node_id: c.node_id(raw.cluster.node_id.as_deref(), default_node_id),
        heartbeat_interval_seconds: c.range(
            "cluster.heartbeat_interval_seconds",
            raw.cluster.heartbeat_interval_seconds,
            1,
            60,
        ),
    };
    let compat = CompatConfig {
        mattermost_version: c.version("compat.mattermost_version", &raw.compat.mattermost_version),
    };
    let search = SearchConfig {
        pg_language: c.pg_language(&raw.search.pg_language),
    };
    let log = LogConfig {
        format: c.parse("log.format", &raw.log.format),
        access: c.parse("log.access", &raw.log.access),
        slow_request_ms: c.range("log.slow_request_ms", raw.log.slow_request_ms, 0, u32::MAX),
        slow_query_ms: c.range("log.slow_query_ms", raw.log.slow_query_ms, 0, u32::MAX),
    };
    let oauth = c.oauth(raw, site_url.is_some());
    let config = Config {
        environment,
        database_url,
        redis_url,
        site_url,
        jwt_secret,
        encryption_key,
        data_dir,
        server,
        db_pool,
        db,
        security,
        jwt,
        files,
        ws,
        cluster,
        compat,
        search,
        log,
        oauth,
    };
    Built {
        config: c.problems.is_empty().then_some(config),
        problems: c.problems,
        warnings: c.warnings,
    }
}

impl Checker {
    fn error(&mut self, key: impl Into<String>, why: impl Into<String>) {
        self.problems.push((key.into(), why.into()));
    }

    fn warn(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(ConfigWarning {
            key: key.into(),
            message: message.into(),
        });
    }

    /// An error in production, a warning in development (the §4.14 secret rules).
    fn error_in_production(&mut self, key: &str, why: String) {
        if self.production {
            self.error(key, why);
        } else {
            self.warn(key, why);
        }
    }

    fn range(&mut self, key: &str, value: i64, min: u32, max: u32) -> u32 {
        match u32::try_from(value) {
            Ok(v) if (min..=max).contains(&v) => v,
            _ => {
                let why = match (min, max) {
                    (_, u32::MAX) => format!("must be at least {min}"),
                    _ => format!("must be between {min} and {max}"),
                };
                self.error(key, why);
                min
            }
        }
    }

    fn parse<T: std::str::FromStr<Err = String> + Default>(&mut self, key: &str, raw: &str) -> T {
        raw.parse().unwrap_or_else(|why| {
            self.error(key, why);
            T::default()
        })
    }

    fn text_len(&mut self, key: &str, value: &str, max: usize) -> String {
        let len = value.chars().count();
        if len == 0 || len > max {
            self.error(key, format!("must be 1-{max} characters"));
        }
        value.to_owned()
    }

    fn feature(&mut self, key: &str, enabled: bool, feature: &str) {
        if !enabled {
            self.error(
                key,
                format!("needs the `{feature}` cargo feature, which this build leaves out; rebuild with it"),
            );
        }
    }

    fn database_url(&mut self, raw: &RawConfig, data_dir: &std::path::Path) -> DatabaseUrl {
        let Some(url) = &raw.database_url else {
            self.feature("database_url", cfg!(feature = "sqlite"), "sqlite");
            return DatabaseUrl::default_for(data_dir);
        };
        match DatabaseUrl::parse(url) {
            Ok(parsed) => {
                match &parsed {
                    DatabaseUrl::Sqlite { .. } => {
                        self.feature("database_url", cfg!(feature = "sqlite"), "sqlite");
                    }
                    DatabaseUrl::Postgres { .. } => {
                        self.feature("database_url", cfg!(feature = "postgres"), "postgres");
                    }
                }
                parsed
            }
            Err(why) => {
                self.error("database_url", why);
                DatabaseUrl::default_for(data_dir)
            }
        }
    }

    fn redis_url(&mut self, raw: &RawConfig, db: &DatabaseUrl) -> Option<String> {
        let url = raw.redis_url.as_ref()?;
        let lower = url.to_ascii_lowercase();
        let host = lower
            .strip_prefix("redis://")
            .or_else(|| lower.strip_prefix("rediss://"));
        match host {
            Some(rest) if !rest.is_empty() => {}
            _ => self.error(
                "redis_url",
                "expected redis://HOST:6379 or rediss://HOST:6380 (TLS)",
            ),
        }
        if db.is_sqlite() {
            self.warn(
                "redis_url",
                "Redis is configured with SQLite: a SQLite database serves one node only, so \
                 cluster fan-out has no other node to reach",
            );
        }
        Some(url.clone())
    }

    fn site_url(&mut self, raw: &RawConfig) -> Option<String> {
        let Some(url) = &raw.site_url else {
            if self.production {
                self.warn(
                    "site_url",
                    "not set: absolute links use the request Host header; set \
                     RUSTCHAT_SITE_URL=https://chat.example.com",
                );
            }
            return None;
        };
        let trimmed = url.trim().trim_end_matches('/').to_owned();
        match http_origin_parts(&trimmed) {
            Some(("https", _)) => {}
            Some(("http", _)) if self.production => {
                self.error("site_url", "must be an https:// URL in production");
            }
            Some(_) => {}
            None => self.error(
                "site_url",
                "must be an absolute http(s) URL such as https://chat.example.com",
            ),
        }
        Some(trimmed)
    }

    fn secrets(&mut self, raw: &RawConfig) -> (Option<SecretString>, Option<SecretString>) {
        for (key, value) in [
            ("jwt_secret", &raw.jwt_secret),
            ("encryption_key", &raw.encryption_key),
        ] {
            match value {
                None if self.production => self.error(
                    key,
                    format!(
                        "required in production: set {} ({SECRET_HINT})",
                        canonical_var(key)
                    ),
                ),
                None => {}
                Some(secret) => {
                    let weak = secret_weaknesses(secret);
                    if !weak.is_empty() {
                        let why = format!("too weak: {}; {SECRET_HINT}", weak.join(", "));
                        self.error_in_production(key, why);
                    }
                }
            }
        }
        if let (Some(jwt), Some(enc)) = (&raw.jwt_secret, &raw.encryption_key)
            && key_material(jwt) == key_material(enc)
        {
            self.error_in_production(
                "encryption_key",
                format!("must differ from jwt_secret; {SECRET_HINT} for each"),
            );
        }
        (
            raw.jwt_secret.clone().map(SecretString::new),
            raw.encryption_key.clone().map(SecretString::new),
        )
    }

    fn server(&mut self, raw: &RawConfig) -> ServerConfig {
        let s = &raw.server;
        let host = s.host.trim().parse::<IpAddr>().unwrap_or_else(|_| {
            self.error(
                "server.host",
                "must be an IP literal such as 0.0.0.0, 127.0.0.1 or ::",
            );
            IpAddr::from([0, 0, 0, 0])
        });
        let port = self.range("server.port", s.port, 1, 65_535);
        let trusted_proxies = s
            .trusted_proxies
            .iter()
            .enumerate()
            .filter_map(|(i, text)| match text.parse() {
                Ok(cidr) => Some(cidr),
                Err(why) => {
                    self.error(format!("server.trusted_proxies[{i}]"), why);
                    None
                }
            })
            .collect();
        ServerConfig {
            host,
            port: u16::try_from(port).unwrap_or(1),
            trusted_proxies,
            shutdown_grace_seconds: self.range(
                "server.shutdown_grace_seconds",
                s.shutdown_grace_seconds,
                1,
                600,
            ),
            request_timeout_seconds: self.range(
                "server.request_timeout_seconds",
                s.request_timeout_seconds,
                1,
                600,
            ),
            config_refresh_seconds: self.range(
                "server.config_refresh_seconds",
                s.config_refresh_seconds,
                1,
                3600,
            ),
        }
    }

    fn db_pool(&mut self, raw: &RawConfig, db: &DatabaseUrl) -> DbPoolConfig {
        let p = &raw.db_pool;
        let max_connections = p
            .max_connections
            .map(|max| self.range("db_pool.max_connections", max, 1, 1000));
        let min_connections = self.range("db_pool.min_connections", p.min_connections, 1, 1000);
        let effective_max = max_connections.unwrap_or(if db.is_sqlite() {
            DEFAULT_SQLITE_POOL_MAX
        } else {
            DEFAULT_PG_POOL_MAX
        });
        if min_connections > effective_max {
            self.error(
                "db_pool.min_connections",
                format!("must not exceed db_pool.max_connections ({effective_max})"),
            );
        }
        DbPoolConfig {
            max_connections,
            min_connections,
            acquire_timeout_ms: self.range(
                "db_pool.acquire_timeout_ms",
                p.acquire_timeout_ms,
                100,
                60_000,
            ),
            idle_timeout_seconds: self.range(
                "db_pool.idle_timeout_seconds",
                p.idle_timeout_seconds,
                10,
                u32::MAX,
            ),
            max_lifetime_seconds: self.range(
                "db_pool.max_lifetime_seconds",
                p.max_lifetime_seconds,
                10,
                u32::MAX,
            ),
        }
    }

    fn db(&mut self, raw: &RawConfig, db: &DatabaseUrl) -> DbConfig {
        let sqlite_synchronous: SqliteSynchronous =
            self.parse("db.sqlite_synchronous", &raw.db.sqlite_synchronous);
        if sqlite_synchronous == SqliteSynchronous::Normal && db.is_sqlite() {
            self.warn(
                "db.sqlite_synchronous",
                "normal: the last commits may be lost on power loss (full keeps them)",
            );
        }
        DbConfig {
            statement_timeout_ms: self.range(
                "db.statement_timeout_ms",
                raw.db.statement_timeout_ms,
                0,
                u32::MAX,
            ),
            sqlite_synchronous,
        }
    }

    fn security(&mut self, raw: &RawConfig) -> SecurityConfig {
        let s = &raw.security;
        let cors_allowed_origins = s
            .cors_allowed_origins
            .iter()
            .enumerate()
            .map(|(i, origin)| self.origin(&format!("security.cors_allowed_origins[{i}]"), origin))
            .collect();
        SecurityConfig {
            rate_limit_enabled: s.rate_limit_enabled,
            rate_limit_auth_per_minute: self.range(
                "security.rate_limit_auth_per_minute",
                s.rate_limit_auth_per_minute,
                1,
                100_000,
            ),
            rate_limit_ws_per_minute: self.range(
                "security.rate_limit_ws_per_minute",
                s.rate_limit_ws_per_minute,
                1,
                100_000,
            ),
            rate_limit_webhook_per_minute: self.range(
                "security.rate_limit_webhook_per_minute",
                s.rate_limit_webhook_per_minute,
                1,
                100_000,
            ),
            oauth_token_delivery: self
                .parse("security.oauth_token_delivery", &s.oauth_token_delivery),
            cors_allowed_origins,
        }
    }

    /// A browser origin: `scheme://host[:port]`, compared with the `Origin` header, so
    /// a trailing `/` is dropped and a path is an error.
    fn origin(&mut self, key: &str, origin: &str) -> String {
        let trimmed = origin.trim().trim_end_matches('/').to_owned();
        match http_origin_parts(&trimmed) {
            Some((_, rest)) if rest.contains(['/', '?', '#']) => {
                self.error(key, "an origin has no path: use scheme://host[:port]");
            }
            Some(("http", _)) if self.production => {
                self.error(key, "must be an https:// origin in production");
            }
            Some(_) => {}
            None => self.error(
                key,
                "expected an origin such as https://chat.example.com (\"*\" is not allowed)",
            ),
        }
        trimmed
    }

    fn node_id(&mut self, configured: Option<&str>, default: &dyn Fn() -> String) -> String {
        let Some(id) = configured else {
            return default();
        };
        let valid = (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !valid {
            self.error(
                "cluster.node_id",
                "must be 1-64 characters of A-Z a-z 0-9 . _ -",
            );
        }
        id.to_owned()
    }

    fn version(&mut self, key: &str, version: &str) -> String {
        let parts: Vec<&str> = version.split('.').collect();
        let valid = parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()));
        if !valid {
            self.error(key, "must be three integers x.y.z, e.g. 10.11.10");
        }
        version.to_owned()
    }

    fn pg_language(&mut self, language: &str) -> String {
        let lower = language.trim().to_ascii_lowercase();
        if !PG_TEXT_SEARCH_CONFIGS.contains(&lower.as_str()) {
            self.error(
                "search.pg_language",
                format!(
                    "must be a built-in PostgreSQL text search configuration: {}",
                    PG_TEXT_SEARCH_CONFIGS.join(", ")
                ),
            );
        }
        lower
    }

    fn oauth(&mut self, raw: &RawConfig, has_site_url: bool) -> OAuthConfig {
        let o = &raw.oauth;
        let mut providers = BTreeMap::new();
        for (name, provider) in &o.providers {
            if let Some(p) = self.provider(name, provider) {
                providers.insert(name.clone(), p);
            }
        }
        if !o.providers.is_empty() && !has_site_url {
            self.error(
                "site_url",
                "required when OAuth providers are configured: redirect URIs are built \
                 from it; set RUSTCHAT_SITE_URL",
            );
        }
        OAuthConfig {
            breaker_failure_threshold: self.range(
                "oauth.breaker_failure_threshold",
                o.breaker_failure_threshold,
                1,
                100,
            ),
            breaker_open_seconds: self.range(
                "oauth.breaker_open_seconds",
                o.breaker_open_seconds,
                1,
                3600,
            ),
            http_timeout_ms: self.range("oauth.http_timeout_ms", o.http_timeout_ms, 100, 60_000),
            providers,
        }
    }

    fn provider(&mut self, name: &str, p: &RawProvider) -> Option<OAuthProvider> {
        let key = |field: &str| format!("oauth.providers.{name}.{field}");
        let valid_name = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid_name {
            self.error(
                format!("oauth.providers.{name}"),
                "provider names are 1-32 characters of a-z 0-9 - (environment variables can only \
                 spell a-z 0-9)",
            );
        }
        let mut required = |field: &str, value: &Option<String>| match value {
            Some(v) if !v.trim().is_empty() => Some(v.trim().to_owned()),
            _ => {
                self.error(key(field), "required for every OAuth provider");
                None
            }
        };
        let issuer_url = required("issuer_url", &p.issuer_url);
        let client_id = required("client_id", &p.client_id);
        let client_secret = required("client_secret", &p.client_secret);
        match issuer_url.as_deref().map(http_origin_parts) {
            Some(None) => self.error(
                key("issuer_url"),
                "must be an absolute http(s) URL such as https://accounts.google.com",
            ),
            // CHAT-R30: in production only https provider URLs are ever fetched.
            Some(Some(("http", _))) if self.production => self.error(
                key("issuer_url"),
                "must be https in production (tokens and secrets travel to it)",
            ),
            _ => {}
        }
        let scopes = p.scopes.as_ref().map_or_else(
            || DEFAULT_OAUTH_SCOPES.map(str::to_owned).to_vec(),
            |s| s.split(),
        );
        if !scopes.iter().any(|s| s == "openid") {
            self.error(
                key("scopes"),
                "must include openid (this is OpenID Connect login)",
            );
        }
        let allowed_email_domains = p
            .allowed_email_domains
            .as_ref()
            .map(|d| {
                d.split()
                    .into_iter()
                    .map(|d| d.trim_start_matches('@').to_ascii_lowercase())
                    .collect()
            })
            .unwrap_or_default();
        Some(OAuthProvider {
            name: name.to_owned(),
            issuer_url: issuer_url?.trim_end_matches('/').to_owned(),
            client_id: client_id?,
            client_secret: SecretString::new(client_secret?),
            display_name: p
                .display_name
                .clone()
                .filter(|d| !d.trim().is_empty())
                .unwrap_or_else(|| name.to_owned()),
            scopes,
            allowed_email_domains,
            link_by_email: p.link_by_email,
        })
    }
}

/// Checks one provider sent to the admin API (a JSON object with the fields of an
/// `[oauth.providers.<name>]` table) with the same rules as the configuration file;
/// `Err((key, reason))` names the first problem.
pub fn provider_from_json(
    name: &str,
    body: serde_json::Value,
    production: bool,
) -> Result<OAuthProvider, (String, String)> {
    let raw: RawProvider = serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        (
            format!("oauth.providers.{name}.{path}"),
            e.into_inner().to_string(),
        )
    })?;
    let mut c = Checker {
        problems: Vec::new(),
        warnings: Vec::new(),
        production,
    };
    let p = c.provider(name, &raw);
    match (p, c.problems.into_iter().next()) {
        (Some(p), None) => Ok(p),
        (_, Some(problem)) => Err(problem),
        (None, None) => Err((format!("oauth.providers.{name}"), "invalid provider".into())),
    }
}

/// `(scheme, rest)` of an absolute `http://` or `https://` URL with a non-empty host.
fn http_origin_parts(url: &str) -> Option<(&'static str, &str)> {
    let lower = url.to_ascii_lowercase();
    let (scheme, len) = if lower.starts_with("https://") {
        ("https", "https://".len())
    } else if lower.starts_with("http://") {
        ("http", "http://".len())
    } else {
        return None;
    };
    let rest = &url[len..];
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = &rest[..host_end];
    let valid_host = !host.is_empty()
        && !host.contains(char::is_whitespace)
        && !host.starts_with(':')
        && !host.contains('@');
    valid_host.then_some((scheme, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_http_urls_are_recognised() {
        assert_eq!(
            http_origin_parts("https://chat.example.com"),
            Some(("https", "chat.example.com"))
        );
        assert_eq!(
            http_origin_parts("http://127.0.0.1:3000/x"),
            Some(("http", "127.0.0.1:3000/x"))
        );
        assert_eq!(http_origin_parts("ftp://x"), None);
        assert_eq!(http_origin_parts("https://"), None);
        assert_eq!(http_origin_parts("*"), None);
        assert_eq!(http_origin_parts("chat.example.com"), None);
    }
}
