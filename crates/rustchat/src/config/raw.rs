//! The configuration as written: the serde schema every layer (defaults, TOML file, `.env`,
//! environment, flags) is merged into by ron-kernel's loader.
//!
//! Values stay close to text (strings for enums, IPs and URLs, `i64` for numbers) so that
//! [`super::validate`] can report every bad value at once in the spec's wording instead of
//! serde stopping at the first one. The typed result is [`super::Config`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{
    DEFAULT_ACQUIRE_TIMEOUT_MS, DEFAULT_CLUSTER_HEARTBEAT_INTERVAL_SECONDS,
    DEFAULT_CONFIG_REFRESH_SECONDS, DEFAULT_DATA_DIR, DEFAULT_FILES_MIN_FREE_MB, DEFAULT_HOST,
    DEFAULT_IDLE_TIMEOUT_SECONDS, DEFAULT_JWT_AUDIENCE, DEFAULT_JWT_EXPIRY_HOURS,
    DEFAULT_JWT_ISSUER, DEFAULT_LOG_SLOW_QUERY_MS, DEFAULT_LOG_SLOW_REQUEST_MS,
    DEFAULT_MATTERMOST_VERSION, DEFAULT_MAX_LIFETIME_SECONDS, DEFAULT_OAUTH_BREAKER_OPEN_SECONDS,
    DEFAULT_OAUTH_BREAKER_THRESHOLD, DEFAULT_OAUTH_HTTP_TIMEOUT_MS, DEFAULT_PG_LANGUAGE,
    DEFAULT_POOL_MIN_CONNECTIONS, DEFAULT_PORT, DEFAULT_RATE_LIMIT_AUTH_PER_MINUTE,
    DEFAULT_RATE_LIMIT_WEBHOOK_PER_MINUTE, DEFAULT_RATE_LIMIT_WS_PER_MINUTE,
    DEFAULT_REQUEST_TIMEOUT_SECONDS, DEFAULT_SHUTDOWN_GRACE_SECONDS, DEFAULT_STATEMENT_TIMEOUT_MS,
    DEFAULT_WS_AUTH_TIMEOUT_SECONDS, DEFAULT_WS_MAX_CONNECTIONS_PER_NODE,
    DEFAULT_WS_PING_INTERVAL_SECONDS, DEFAULT_WS_SEND_QUEUE_MESSAGES,
};

/// Top level of the file schema; see the spec's §2.3 table for every key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub environment: String,
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    pub site_url: Option<String>,
    pub jwt_secret: Option<String>,
    pub encryption_key: Option<String>,
    pub data_dir: String,
    pub server: RawServer,
    pub db_pool: RawDbPool,
    pub db: RawDb,
    pub security: RawSecurity,
    pub jwt: RawJwt,
    pub files: RawFiles,
    pub ws: RawWs,
    pub cluster: RawCluster,
    pub compat: RawCompat,
    pub search: RawSearch,
    pub log: RawLog,
    pub oauth: RawOAuth,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawServer {
    pub host: String,
    pub port: i64,
    pub trusted_proxies: Vec<String>,
    pub shutdown_grace_seconds: i64,
    pub request_timeout_seconds: i64,
    pub config_refresh_seconds: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawDbPool {
    pub max_connections: Option<i64>,
    pub min_connections: i64,
    pub acquire_timeout_ms: i64,
    pub idle_timeout_seconds: i64,
    pub max_lifetime_seconds: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawDb {
    pub statement_timeout_ms: i64,
    pub sqlite_synchronous: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawSecurity {
    pub rate_limit_enabled: bool,
    pub rate_limit_auth_per_minute: i64,
    pub rate_limit_ws_per_minute: i64,
    pub rate_limit_webhook_per_minute: i64,
    pub oauth_token_delivery: String,
    pub cors_allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawJwt {
    pub issuer: String,
    pub audience: String,
    pub expiry_hours: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawFiles {
    pub dir: Option<String>,
    pub min_free_mb: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawWs {
    pub max_connections_per_node: i64,
    pub send_queue_messages: i64,
    pub ping_interval_seconds: i64,
    pub auth_timeout_seconds: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawCluster {
    pub node_id: Option<String>,
    pub heartbeat_interval_seconds: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawCompat {
    pub mattermost_version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawSearch {
    pub pg_language: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawLog {
    pub format: String,
    pub access: String,
    pub slow_request_ms: i64,
    pub slow_query_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawOAuth {
    pub breaker_failure_threshold: i64,
    pub breaker_open_seconds: i64,
    pub http_timeout_ms: i64,
    pub providers: BTreeMap<String, RawProvider>,
}

/// One `[oauth.providers.<name>]` table; required fields are checked in validation so a
/// missing one is reported with the others.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawProvider {
    pub issuer_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub display_name: Option<String>,
    pub scopes: Option<Words>,
    pub allowed_email_domains: Option<Words>,
    pub link_by_email: bool,
}

/// A word list written either as a TOML array or as one string (`"openid email profile"`,
/// the OAuth spelling, or comma-separated from an environment variable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Words {
    One(String),
    Many(Vec<String>),
}

impl Words {
    /// Every word, split on whitespace and commas, empty ones dropped.
    pub(crate) fn split(&self) -> Vec<String> {
        let items: Vec<&str> = match self {
            Words::One(s) => vec![s.as_str()],
            Words::Many(list) => list.iter().map(String::as_str).collect(),
        };
        items
            .into_iter()
            .flat_map(|s| s.split(|c: char| c.is_whitespace() || c == ','))
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            environment: "development".to_owned(),
            database_url: None,
            redis_url: None,
            site_url: None,
            jwt_secret: None,
            encryption_key: None,
            data_dir: DEFAULT_DATA_DIR.to_owned(),
            server: RawServer::default(),
            db_pool: RawDbPool::default(),
            db: RawDb::default(),
            security: RawSecurity::default(),
            jwt: RawJwt::default(),
            files: RawFiles::default(),
            ws: RawWs::default(),
            cluster: RawCluster::default(),
            compat: RawCompat::default(),
            search: RawSearch::default(),
            log: RawLog::default(),
            oauth: RawOAuth::default(),
        }
    }
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            host: DEFAULT_HOST.to_owned(),
            port: i64::from(DEFAULT_PORT),
            trusted_proxies: Vec::new(),
            shutdown_grace_seconds: i64::from(DEFAULT_SHUTDOWN_GRACE_SECONDS),
            request_timeout_seconds: i64::from(DEFAULT_REQUEST_TIMEOUT_SECONDS),
            config_refresh_seconds: i64::from(DEFAULT_CONFIG_REFRESH_SECONDS),
        }
    }
}

impl Default for RawDbPool {
    fn default() -> Self {
        Self {
            max_connections: None,
            min_connections: i64::from(DEFAULT_POOL_MIN_CONNECTIONS),
            acquire_timeout_ms: i64::from(DEFAULT_ACQUIRE_TIMEOUT_MS),
            idle_timeout_seconds: i64::from(DEFAULT_IDLE_TIMEOUT_SECONDS),
            max_lifetime_seconds: i64::from(DEFAULT_MAX_LIFETIME_SECONDS),
        }
    }
}

impl Default for RawDb {
    fn default() -> Self {
        Self {
            statement_timeout_ms: i64::from(DEFAULT_STATEMENT_TIMEOUT_MS),
            sqlite_synchronous: "full".to_owned(),
        }
    }
}

impl Default for RawSecurity {
    fn default() -> Self {
        Self {
            rate_limit_enabled: true,
            rate_limit_auth_per_minute: i64::from(DEFAULT_RATE_LIMIT_AUTH_PER_MINUTE),
            rate_limit_ws_per_minute: i64::from(DEFAULT_RATE_LIMIT_WS_PER_MINUTE),
            rate_limit_webhook_per_minute: i64::from(DEFAULT_RATE_LIMIT_WEBHOOK_PER_MINUTE),
            oauth_token_delivery: "cookie".to_owned(),
            cors_allowed_origins: Vec::new(),
        }
    }
}

impl Default for RawJwt {
    fn default() -> Self {
        Self {
            issuer: DEFAULT_JWT_ISSUER.to_owned(),
            audience: DEFAULT_JWT_AUDIENCE.to_owned(),
            expiry_hours: i64::from(DEFAULT_JWT_EXPIRY_HOURS),
        }
    }
}

impl Default for RawFiles {
    fn default() -> Self {
        Self {
            dir: None,
            min_free_mb: i64::from(DEFAULT_FILES_MIN_FREE_MB),
        }
    }
}

impl Default for RawWs {
    fn default() -> Self {
        Self {
            max_connections_per_node: i64::from(DEFAULT_WS_MAX_CONNECTIONS_PER_NODE),
            send_queue_messages: i64::from(DEFAULT_WS_SEND_QUEUE_MESSAGES),
            ping_interval_seconds: i64::from(DEFAULT_WS_PING_INTERVAL_SECONDS),
            auth_timeout_seconds: i64::from(DEFAULT_WS_AUTH_TIMEOUT_SECONDS),
        }
    }
}

impl Default for RawCluster {
    fn default() -> Self {
        Self {
            node_id: None,
            heartbeat_interval_seconds: i64::from(DEFAULT_CLUSTER_HEARTBEAT_INTERVAL_SECONDS),
        }
    }
}

impl Default for RawCompat {
    fn default() -> Self {
        Self {
            mattermost_version: DEFAULT_MATTERMOST_VERSION.to_owned(),
        }
    }
}

impl Default for RawSearch {
    fn default() -> Self {
        Self {
            pg_language: DEFAULT_PG_LANGUAGE.to_owned(),
        }
    }
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: "json".to_owned(),
            access: "errors_and_slow".to_owned(),
            slow_request_ms: i64::from(DEFAULT_LOG_SLOW_REQUEST_MS),
            slow_query_ms: i64::from(DEFAULT_LOG_SLOW_QUERY_MS),
        }
    }
}

impl Default for RawOAuth {
    fn default() -> Self {
        Self {
            breaker_failure_threshold: i64::from(DEFAULT_OAUTH_BREAKER_THRESHOLD),
            breaker_open_seconds: i64::from(DEFAULT_OAUTH_BREAKER_OPEN_SECONDS),
            http_timeout_ms: i64::from(DEFAULT_OAUTH_HTTP_TIMEOUT_MS),
            providers: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_lists_split_on_spaces_and_commas_in_either_spelling() {
        let one = Words::One("openid  email,profile".into());
        assert_eq!(one.split(), ["openid", "email", "profile"]);
        let many = Words::Many(vec!["openid".into(), "a b".into()]);
        assert_eq!(many.split(), ["openid", "a", "b"]);
    }
}
