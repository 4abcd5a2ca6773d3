//! The shared application state handed to every handler.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::auth::extract::SessionCache;
use crate::auth::jwt::JwtKeys;
use crate::config::Config;
use crate::metrics::ChatMetrics;
use crate::store::Store;

/// Cheap-to-clone handle on [`Inner`].
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

/// Everything a request may need.
pub struct Inner {
    /// The live configuration (reloadable keys swap on SIGHUP).
    pub config: ArcSwap<Config>,
    /// The database.
    pub store: Store,
    /// Session JWT keys (from `jwt_secret`, or ephemeral in development).
    pub jwt: JwtKeys,
    /// At-rest encryption of stored secrets (CHAT-R25).
    pub at_rest: crate::crypto::AtRest,
    /// Verified sessions cached on this node.
    pub sessions: SessionCache,
    /// The `database` circuit breaker (state shown in `/stats`).
    pub db_breaker: Arc<ron_kernel::CircuitBreaker>,
    /// Metric families.
    pub metrics: Arc<ChatMetrics>,
    /// This node's id (`cluster.node_id`).
    pub node_id: String,
    /// Process start, for `uptime_seconds`.
    pub started: Instant,
    /// Set when SIGTERM arrives: `/ready` answers 503 `shutting_down` from then on.
    pub shutting_down: AtomicBool,
    /// The realtime hub (WebSocket connections on this node).
    pub hub: crate::realtime::Hub,
    /// `X-Version-Id` (also `hello.server_version`).
    pub version_id: String,
    /// Per-IP rate limits (CHAT-R23).
    pub limits: crate::ratelimit::RateLimits,
    /// OIDC providers, breakers and pending logins (CHAT-R22).
    pub oidc: Arc<crate::oidc::Oidc>,
    /// Runtime settings from the `server_config` table (CHAT-R4).
    pub settings: ArcSwap<crate::settings::Settings>,
    /// Searches allowed to hold a database connection at once
    /// ([`crate::api::v1::search::concurrent_searches`]).
    pub search_slots: tokio::sync::Semaphore,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Inner {
    /// The JWT keys.
    pub fn jwt(&self) -> &JwtKeys {
        &self.jwt
    }
    /// The current configuration.
    pub fn cfg(&self) -> Arc<Config> {
        self.config.load_full()
    }
    /// A short-lived view of the current configuration for per-request middleware: it
    /// skips the shared reference-count bump of [`Inner::cfg`], which every core would
    /// otherwise contend on for each request. Do not hold it across an `.await`.
    pub fn cfg_peek(&self) -> arc_swap::Guard<Arc<Config>> {
        self.config.load()
    }
    /// `X-Version-Id`: `<mm>.<mm>.<8-hex client-config hash>.false`.
    pub fn version_id(&self) -> &str {
        &self.version_id
    }
    /// WebSocket connections one user may hold on this node
    /// (`site.max_simultaneous_connections`).
    pub fn max_connections_per_user(&self) -> usize {
        self.settings.load().max_simultaneous_connections as usize
    }
}
