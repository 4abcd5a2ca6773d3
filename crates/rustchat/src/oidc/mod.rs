//! OIDC login (CHAT-R22): authorization code flow with PKCE S256, `state` and `nonce`,
//! ID tokens verified against the provider's JWKS, session delivered in cookies only.
//!
//! - [`http`]: the provider HTTP client (rustls, no redirects, deadline, 1 MiB cap) and the
//!   breaker classification of its failures.
//! - [`provider`]: provider definitions, discovery and JWKS caches, one circuit breaker per
//!   provider (`oidc:<name>` in `/stats` and the breaker metrics).
//! - [`idtoken`]: the ID token rules.
//! - [`pending`]: login states and exchange codes in Redis (the runbook's keys) or the
//!   database.
//! - [`flow`]: login, callback and exchange, independent of HTTP framing.
//! - [`names`]: usernames for accounts created by a first login.
//!
//! Providers come from the configuration (`oauth.providers.<name>`) and from the admin API
//! (`oauth_providers` table, client secret sealed at rest); a configured name wins over a
//! stored one.
//!
//! Decisions where the spec is silent:
//! - Pending states and codes fall back to the `oauth_pending` table (not an in-process
//!   map) without Redis or while it fails: every node of a cluster shares the database, so
//!   a login started on one node can finish on another even during a Redis outage.
//! - Login and callback failures redirect a browser (a request accepting `text/html`) to
//!   `/login?error=provider_unavailable|state_invalid|login_failed`; other clients get the
//!   JSON error with the spec's status (503 with `Retry-After`, 400, 401, 404).
//! - `?redirect=` on login keeps only same-origin paths (`/x`, never `//host`); after the
//!   callback the browser lands on `/login/complete?next=<path>` (no secret in it), and the
//!   exchange answer carries `redirect` next to the user.
//! - A first login creates an account only while open registration is enabled; an existing
//!   account with the same email is linked only with `link_by_email`, else the login is
//!   refused (emails are unique). The first account ever still becomes system_admin.
//! - While a provider's breaker is not closed, logins re-fetch discovery instead of using
//!   the cache, so they serve as its probes; a reload that changes the breaker settings
//!   rebuilds the breakers (closed).
//! - The token endpoint gets HTTP Basic client authentication unless discovery lists only
//!   `client_secret_post`. Refusal reasons are logged (`auth: OAuth login refused`,
//!   field `reason`); the client only learns that the login was refused.
//!
//! Why not the `openidconnect` crate the spec's crate list names: it brings a second
//! generation of the RustCrypto stack (p256/p384 0.14, ed25519-dalek 3, getrandom 0.4) next
//! to the one `jsonwebtoken` already uses, and hides the HTTP calls the breaker has to
//! classify and the JWKS refetch the spec throttles. The three protocol steps used here are
//! small and are implemented on `jsonwebtoken`'s JWK support instead.

pub mod flow;
pub mod http;
pub mod idtoken;
pub mod names;
pub mod pending;
pub mod provider;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::config::{Config, OAuthProvider, SecretString};
use crate::crypto::AtRest;
use crate::metrics::ChatMetrics;
use crate::store::{Store, StoreError, StoredProvider};
use provider::{ProviderDef, ProviderRuntime};

/// Where a provider's client secret is sealed (`oauth_providers.client_secret:<name>`).
pub fn secret_aad(name: &str) -> String {
    AtRest::aad("oauth_providers", "client_secret", name)
}

/// The redirect URI registered with the provider: `<site_url>/api/v1/oauth2/<name>/callback`,
/// or `http://localhost:<port>/…` in development without a site_url.
pub fn redirect_uri(cfg: &Config, name: &str) -> String {
    let base = cfg
        .site_url
        .clone()
        .unwrap_or_else(|| format!("http://localhost:{}", cfg.server.port));
    format!(
        "{}/api/v1/oauth2/{name}/callback",
        base.trim_end_matches('/')
    )
}

/// The process-wide OIDC state: HTTP client, per-provider runtimes, pending values.
pub struct Oidc {
    http: http::ProviderHttp,
    runtimes: Mutex<HashMap<String, Arc<ProviderRuntime>>>,
    /// Login states and exchange codes.
    pub pending: pending::Pending,
    metrics: Arc<ChatMetrics>,
}

impl Oidc {
    /// The registry; breakers for the configured providers exist from the start so that
    /// `/stats` and the breaker gauge name them before the first login.
    pub fn new(cfg: &Config, store: Store, metrics: Arc<ChatMetrics>) -> Self {
        let o = Oidc {
            http: http::ProviderHttp::new(),
            runtimes: Mutex::new(HashMap::new()),
            pending: pending::Pending::new(cfg.redis_url.as_deref(), store),
            metrics,
        };
        for name in cfg.oauth.providers.keys() {
            o.runtime(cfg, name);
        }
        o
    }

    /// The HTTP client.
    pub fn http(&self) -> &http::ProviderHttp {
        &self.http
    }

    /// The runtime of provider `name`, created on first use and rebuilt (breaker reset)
    /// when a reload changed the breaker settings.
    pub fn runtime(&self, cfg: &Config, name: &str) -> Arc<ProviderRuntime> {
        let failures = cfg.oauth.breaker_failure_threshold;
        let open_for = Duration::from_secs(u64::from(cfg.oauth.breaker_open_seconds));
        let mut map = self.runtimes.lock();
        if let Some(rt) = map.get(name)
            && rt.breaker_matches(failures, open_for)
        {
            return rt.clone();
        }
        let hook = ChatMetrics::breaker_hook(&self.metrics, &format!("oidc:{name}"));
        let rt = Arc::new(ProviderRuntime::new(name, failures, open_for, Some(hook)));
        map.insert(name.to_string(), rt.clone());
        rt
    }

    /// Drops a provider's runtime (after the admin API deleted it).
    pub fn forget(&self, name: &str) {
        self.runtimes.lock().remove(name);
    }

    /// `(oidc:<name>, state)` of every provider known on this node, sorted.
    pub fn breaker_states(&self) -> Vec<(String, &'static str)> {
        let mut v: Vec<_> = self
            .runtimes
            .lock()
            .iter()
            .map(|(n, rt)| (format!("oidc:{n}"), rt.state().as_str()))
            .collect();
        v.sort();
        v
    }
}

/// A configured provider as a definition.
pub fn from_config(p: &OAuthProvider) -> ProviderDef {
    ProviderDef {
        provider: p.clone(),
        source: "config",
    }
}

/// A stored provider as a definition; `None` (and an ERROR line) when its secret does not
/// decrypt, so one bad row does not take the others down.
pub fn from_stored(p: &StoredProvider, at_rest: &AtRest) -> Option<ProviderDef> {
    let secret = match at_rest.decrypt(&p.client_secret_enc, &secret_aad(&p.name)) {
        Ok(s) => String::from_utf8(s).ok()?,
        Err(e) => {
            tracing::error!(provider = %p.name, error = %e, "auth: OAuth provider secret unreadable");
            return None;
        }
    };
    let split = |s: &str| -> Vec<String> { s.split_whitespace().map(str::to_owned).collect() };
    Some(ProviderDef {
        provider: OAuthProvider {
            name: p.name.clone(),
            issuer_url: p.issuer_url.clone(),
            client_id: p.client_id.clone(),
            client_secret: SecretString::new(secret),
            display_name: p.display_name.clone(),
            scopes: split(&p.scopes),
            allowed_email_domains: split(&p.allowed_email_domains),
            link_by_email: p.link_by_email,
        },
        source: "admin",
    })
}

/// Every provider: configured ones, then stored ones whose name is not configured.
pub async fn definitions(
    cfg: &Config,
    store: &Store,
    at_rest: &AtRest,
) -> Result<Vec<ProviderDef>, StoreError> {
    let mut out: Vec<ProviderDef> = cfg.oauth.providers.values().map(from_config).collect();
    let stored = crate::store_read!(store, |c| ops::stored_providers(c).await)?;
    for p in &stored {
        if !cfg.oauth.providers.contains_key(&p.name)
            && let Some(d) = from_stored(p, at_rest)
        {
            out.push(d);
        }
    }
    Ok(out)
}

/// One provider by name.
pub async fn definition(
    cfg: &Config,
    store: &Store,
    at_rest: &AtRest,
    name: &str,
) -> Result<Option<ProviderDef>, StoreError> {
    if let Some(p) = cfg.oauth.providers.get(name) {
        return Ok(Some(from_config(p)));
    }
    let stored = crate::store_read!(store, |c| ops::stored_providers(c).await)?;
    Ok(stored
        .iter()
        .find(|p| p.name == name)
        .and_then(|p| from_stored(p, at_rest)))
}

/// Interval of the expired-`oauth_pending` sweep.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Logs every provider's redirect URI at start (the runbook checks it against the
/// provider's registration) and starts the sweep of expired pending rows.
pub async fn announce(st: &crate::state::AppState) {
    let cfg = st.cfg();
    match definitions(&cfg, &st.store, &st.at_rest).await {
        Ok(defs) => {
            for d in defs {
                st.oidc.runtime(&cfg, &d.name);
                tracing::info!(
                    provider = %d.name,
                    source = d.source,
                    issuer = %d.issuer_url,
                    redirect_uri = %redirect_uri(&cfg, &d.name),
                    "auth: OAuth provider enabled"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "auth: OAuth providers could not be listed"),
    }
    let oidc = st.oidc.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        loop {
            tick.tick().await;
            oidc.pending.sweep().await;
        }
    });
}
