//! SIGHUP reload (spec §2.3): which keys apply without a restart, and the diff between the
//! running and the re-read configuration.
//!
//! A reload re-reads every layer and validates the whole result first (an invalid value
//! rejects the reload); then only the reloadable keys are taken from it and every other
//! changed key is reported for the `config reload: restart required` warning.

use super::model::Config;

/// Keys a SIGHUP applies to the running server (the spec table's "reload: yes").
pub const RELOADABLE_KEYS: [&str; 21] = [
    "server.trusted_proxies",
    "server.shutdown_grace_seconds",
    "server.request_timeout_seconds",
    "server.config_refresh_seconds",
    "security.rate_limit_enabled",
    "security.rate_limit_auth_per_minute",
    "security.rate_limit_ws_per_minute",
    "security.rate_limit_webhook_per_minute",
    "security.cors_allowed_origins",
    "files.min_free_mb",
    "ws.max_connections_per_node",
    "ws.send_queue_messages",
    "ws.ping_interval_seconds",
    "ws.auth_timeout_seconds",
    "log.format",
    "log.access",
    "log.slow_request_ms",
    "log.slow_query_ms",
    "oauth.breaker_failure_threshold",
    "oauth.breaker_open_seconds",
    "oauth.http_timeout_ms",
];

/// Every key a SIGHUP applies without a restart.
pub fn reloadable_keys() -> &'static [&'static str] {
    &RELOADABLE_KEYS
}

/// Whether a change to `key` applies on SIGHUP.
pub fn is_reloadable(key: &str) -> bool {
    reloadable_keys().contains(&key)
}

impl Config {
    /// Takes every reloadable key's value from `new`, keeping the rest.
    pub fn apply_reloadable(&mut self, new: &Config) {
        let (s, n) = (&mut self.server, &new.server);
        s.trusted_proxies.clone_from(&n.trusted_proxies);
        s.shutdown_grace_seconds = n.shutdown_grace_seconds;
        s.request_timeout_seconds = n.request_timeout_seconds;
        s.config_refresh_seconds = n.config_refresh_seconds;
        let (s, n) = (&mut self.security, &new.security);
        s.rate_limit_enabled = n.rate_limit_enabled;
        s.rate_limit_auth_per_minute = n.rate_limit_auth_per_minute;
        s.rate_limit_ws_per_minute = n.rate_limit_ws_per_minute;
        s.rate_limit_webhook_per_minute = n.rate_limit_webhook_per_minute;
        s.cors_allowed_origins.clone_from(&n.cors_allowed_origins);
        self.files.min_free_mb = new.files.min_free_mb;
        self.ws = new.ws.clone();
        self.log = new.log.clone();
        let (s, n) = (&mut self.oauth, &new.oauth);
        s.breaker_failure_threshold = n.breaker_failure_threshold;
        s.breaker_open_seconds = n.breaker_open_seconds;
        s.http_timeout_ms = n.http_timeout_ms;
    }

    /// Keys whose values differ between `self` and `other`, in key order.
    pub fn changed_keys(&self, other: &Config) -> Vec<String> {
        let (old, new) = (self.entries(), other.entries());
        let mut keys: Vec<String> = old
            .iter()
            .filter(|(k, v)| new.get(k.as_str()) != Some(*v))
            .map(|(k, _)| k.clone())
            .chain(new.keys().filter(|k| !old.contains_key(*k)).cloned())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Every key with its value as text. Secrets appear in clear, so this stays private
    /// to comparisons and never reaches a log.
    pub(crate) fn entries(&self) -> std::collections::BTreeMap<String, String> {
        let mut e = std::collections::BTreeMap::new();
        let mut put = |key: &str, value: String| {
            e.insert(key.to_owned(), value);
        };
        let opt = |v: Option<&str>| v.map_or_else(|| "<unset>".to_owned(), str::to_owned);
        let list = |items: Vec<String>| items.join(",");
        put("environment", self.environment.to_string());
        put("database_url", self.database_url.url().to_owned());
        put("redis_url", opt(self.redis_url.as_deref()));
        put("site_url", opt(self.site_url.as_deref()));
        put(
            "jwt_secret",
            opt(self.jwt_secret.as_ref().map(|s| s.expose())),
        );
        put(
            "encryption_key",
            opt(self.encryption_key.as_ref().map(|s| s.expose())),
        );
        put("data_dir", self.data_dir.display().to_string());
        let s = &self.server;
        put("server.host", s.host.to_string());
        put("server.port", s.port.to_string());
        put(
            "server.trusted_proxies",
            list(s.trusted_proxies.iter().map(ToString::to_string).collect()),
        );
        put(
            "server.shutdown_grace_seconds",
            s.shutdown_grace_seconds.to_string(),
        );
        put(
            "server.request_timeout_seconds",
            s.request_timeout_seconds.to_string(),
        );
        put(
            "server.config_refresh_seconds",
            s.config_refresh_seconds.to_string(),
        );
        let p = &self.db_pool;
        put(
            "db_pool.max_connections",
            opt(p.max_connections.map(|m| m.to_string()).as_deref()),
        );
        put("db_pool.min_connections", p.min_connections.to_string());
        put(
            "db_pool.acquire_timeout_ms",
            p.acquire_timeout_ms.to_string(),
        );
        put(
            "db_pool.idle_timeout_seconds",
            p.idle_timeout_seconds.to_string(),
        );
        put(
            "db_pool.max_lifetime_seconds",
            p.max_lifetime_seconds.to_string(),
        );
        put(
            "db.statement_timeout_ms",
            self.db.statement_timeout_ms.to_string(),
        );
        put(
            "db.sqlite_synchronous",
            self.db.sqlite_synchronous.pragma().to_owned(),
        );
        let s = &self.security;
        put(
            "security.rate_limit_enabled",
            s.rate_limit_enabled.to_string(),
        );
        put(
            "security.rate_limit_auth_per_minute",
            s.rate_limit_auth_per_minute.to_string(),
        );
        put(
            "security.rate_limit_ws_per_minute",
            s.rate_limit_ws_per_minute.to_string(),
        );
        put(
            "security.rate_limit_webhook_per_minute",
            s.rate_limit_webhook_per_minute.to_string(),
        );
        put(
            "security.oauth_token_delivery",
            format!("{:?}", s.oauth_token_delivery),
        );
        put(
            "security.cors_allowed_origins",
            list(s.cors_allowed_origins.clone()),
        );
        put("jwt.issuer", self.jwt.issuer.clone());
        put("jwt.audience", self.jwt.audience.clone());
        put("jwt.expiry_hours", self.jwt.expiry_hours.to_string());
        put("files.dir", self.files.dir.display().to_string());
        put("files.min_free_mb", self.files.min_free_mb.to_string());
        let w = &self.ws;
        put(
            "ws.max_connections_per_node",
            w.max_connections_per_node.to_string(),
        );
        put("ws.send_queue_messages", w.send_queue_messages.to_string());
        put(
            "ws.ping_interval_seconds",
            w.ping_interval_seconds.to_string(),
        );
        put(
            "ws.auth_timeout_seconds",
            w.auth_timeout_seconds.to_string(),
        );
        put("cluster.node_id", self.cluster.node_id.clone());
        put(
            "cluster.heartbeat_interval_seconds",
            self.cluster.heartbeat_interval_seconds.to_string(),
        );
        put(
            "compat.mattermost_version",
            self.compat.mattermost_version.clone(),
        );
        put("search.pg_language", self.search.pg_language.clone());
        put("log.format", format!("{:?}", self.log.format));
        put("log.access", format!("{:?}", self.log.access));
        put("log.slow_request_ms", self.log.slow_request_ms.to_string());
        put("log.slow_query_ms", self.log.slow_query_ms.to_string());
        let o = &self.oauth;
        put(
            "oauth.breaker_failure_threshold",
            o.breaker_failure_threshold.to_string(),
        );
        put(
            "oauth.breaker_open_seconds",
            o.breaker_open_seconds.to_string(),
        );
        put("oauth.http_timeout_ms", o.http_timeout_ms.to_string());
        for (name, p) in &o.providers {
            let key = |field: &str| format!("oauth.providers.{name}.{field}");
            put(&key("issuer_url"), p.issuer_url.clone());
            put(&key("client_id"), p.client_id.clone());
            put(&key("client_secret"), p.client_secret.expose().to_owned());
            put(&key("display_name"), p.display_name.clone());
            put(&key("scopes"), list(p.scopes.clone()));
            put(
                &key("allowed_email_domains"),
                list(p.allowed_email_domains.clone()),
            );
            put(&key("link_by_email"), p.link_by_email.to_string());
        }
        e
    }
}
