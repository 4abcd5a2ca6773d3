//! One identity provider at run time (CHAT-R22): its definition, its circuit breaker and
//! its cached discovery document and signing keys.
//!
//! Discovery is cached for an hour while the breaker is closed. While it is open or
//! half-open every login re-fetches it, so logins themselves are the breaker's probes (a
//! cached document would let logins succeed without ever telling the breaker the provider
//! is back). The JWKS is fetched with discovery and again when an ID token names a key id
//! it does not hold, at most once a minute (providers rotate keys; a forged `kid` must not
//! make us hammer them).

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use ron_kernel::{BreakerConfig, BreakerError, BreakerState, CircuitBreaker};
use serde::Deserialize;

use super::http::{HttpFail, ProviderHttp};
use crate::config::OAuthProvider;
#[cfg(test)]
use crate::config::SecretString;

/// How long a discovery document is trusted.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// Minimum time between two JWKS fetches caused by unknown key ids.
pub const JWKS_REFRESH_MIN: Duration = Duration::from_secs(60);
/// Consecutive probe successes that close an open provider breaker.
pub const BREAKER_CLOSE_AFTER: u32 = 2;

/// A provider as configured (file/env) or added through the admin API: the same fields
/// either way, plus where it came from.
#[derive(Debug, Clone)]
pub struct ProviderDef {
    /// The provider's settings.
    pub provider: OAuthProvider,
    /// `config` or `admin`.
    pub source: &'static str,
}

impl std::ops::Deref for ProviderDef {
    type Target = OAuthProvider;
    fn deref(&self) -> &OAuthProvider {
        &self.provider
    }
}

/// The parts of the discovery document rustchat uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    /// Must equal the configured issuer.
    pub issuer: String,
    /// Where the browser is sent.
    pub authorization_endpoint: String,
    /// Where the code is exchanged.
    pub token_endpoint: String,
    /// The signing keys.
    pub jwks_uri: String,
    /// Client authentication methods the token endpoint accepts (absent = basic).
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

impl Metadata {
    /// Whether the client secret goes in the form body instead of HTTP Basic.
    pub fn wants_post_auth(&self) -> bool {
        self.token_endpoint_auth_methods_supported
            .as_ref()
            .is_some_and(|m| {
                !m.iter().any(|x| x == "client_secret_basic")
                    && m.iter().any(|x| x == "client_secret_post")
            })
    }
}

/// Why a provider could not be used for this request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// Its breaker is open: nothing was sent.
    #[error("the identity provider is unavailable (circuit breaker open)")]
    BreakerOpen,
    /// The provider is down (connect error, timeout, 5xx).
    #[error("{0}")]
    Down(HttpFail),
    /// The provider answered with something unusable.
    #[error("{0}")]
    Bad(String),
}

#[derive(Clone)]
struct Discovered {
    meta: Arc<Metadata>,
    keys: Arc<Vec<Jwk>>,
    fetched: Instant,
    keys_fetched: Instant,
}

/// A provider's breaker and caches, shared by every request on this node.
pub struct ProviderRuntime {
    breaker: CircuitBreaker,
    breaker_cfg: BreakerConfig,
    cache: tokio::sync::Mutex<Option<Discovered>>,
}

impl ProviderRuntime {
    /// A runtime whose breaker opens after `failures` and probes after `open_for`; every
    /// transition goes to `hook` (metrics) and the WARN `circuit breaker state changed`.
    pub fn new(
        name: &str,
        failures: u32,
        open_for: Duration,
        hook: Option<ron_kernel::breaker::TransitionHook>,
    ) -> Self {
        let cfg = BreakerConfig {
            failure_threshold: failures,
            open_for,
            half_open_max_probes: 1,
            success_threshold: BREAKER_CLOSE_AFTER,
        };
        let mut b = CircuitBreaker::new(format!("oidc:{name}"), cfg.clone());
        if let Some(h) = hook {
            b = b.on_transition(h);
        }
        ProviderRuntime {
            breaker: b,
            breaker_cfg: cfg,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// Whether this runtime's breaker was built with these settings.
    pub fn breaker_matches(&self, failures: u32, open_for: Duration) -> bool {
        self.breaker_cfg.failure_threshold == failures && self.breaker_cfg.open_for == open_for
    }

    /// The breaker state (`/stats`).
    pub fn state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// One provider call through the breaker: outages count as failures, any answer from
    /// the provider (even a 4xx) as a success.
    pub async fn call<T>(
        &self,
        fut: impl Future<Output = Result<T, HttpFail>>,
    ) -> Result<T, ProviderError> {
        let permit = self
            .breaker
            .try_acquire()
            .map_err(|BreakerError::Open { .. }| ProviderError::BreakerOpen)?;
        let out = fut.await;
        match &out {
            Err(e) if e.provider_down() => permit.failure(),
            _ => permit.success(),
        }
        out.map_err(|e| {
            if e.provider_down() {
                ProviderError::Down(e)
            } else {
                ProviderError::Bad(e.to_string())
            }
        })
    }

    /// The discovery document and keys: cached while the breaker is closed and the
    /// document is younger than [`DISCOVERY_TTL`], else fetched (through the breaker).
    pub async fn discover(
        &self,
        def: &ProviderDef,
        http: &ProviderHttp,
        timeout: Duration,
    ) -> Result<(Arc<Metadata>, Arc<Vec<Jwk>>), ProviderError> {
        let mut cache = self.cache.lock().await;
        if let Some(d) = cache.as_ref()
            && self.breaker.state() == BreakerState::Closed
            && d.fetched.elapsed() < DISCOVERY_TTL
        {
            return Ok((d.meta.clone(), d.keys.clone()));
        }
        let meta = fetch_metadata(self, def, http, timeout).await?;
        let keys = fetch_keys(self, &meta, http, timeout).await?;
        let now = Instant::now();
        let d = Discovered {
            meta: Arc::new(meta),
            keys: Arc::new(keys),
            fetched: now,
            keys_fetched: now,
        };
        *cache = Some(d.clone());
        Ok((d.meta, d.keys))
    }

    /// Re-fetches the JWKS after an unknown key id, unless that happened less than
    /// [`JWKS_REFRESH_MIN`] ago; `None` when throttled.
    pub async fn refresh_keys(
        &self,
        http: &ProviderHttp,
        timeout: Duration,
    ) -> Result<Option<Arc<Vec<Jwk>>>, ProviderError> {
        let mut cache = self.cache.lock().await;
        let Some(d) = cache.as_mut() else {
            return Ok(None);
        };
        if d.keys_fetched.elapsed() < JWKS_REFRESH_MIN {
            return Ok(None);
        }
        d.keys_fetched = Instant::now();
        let keys = Arc::new(fetch_keys(self, &d.meta, http, timeout).await?);
        d.keys = keys.clone();
        Ok(Some(keys))
    }
}

/// The discovery URL of an issuer.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Parses and checks a discovery document: the issuer must be the configured one (OIDC
/// Discovery §4.3: a document naming another issuer is an impersonation attempt) and every
/// endpoint an http(s) URL.
pub fn parse_metadata(def: &ProviderDef, body: &[u8]) -> Result<Metadata, String> {
    let meta: Metadata = serde_json::from_slice(body)
        .map_err(|e| format!("discovery document is not valid: {e}"))?;
    if meta.issuer.trim_end_matches('/') != def.issuer_url.trim_end_matches('/') {
        return Err(format!(
            "discovery issuer {:?} differs from the configured issuer_url {:?}",
            meta.issuer, def.issuer_url
        ));
    }
    for (what, url) in [
        ("authorization_endpoint", &meta.authorization_endpoint),
        ("token_endpoint", &meta.token_endpoint),
        ("jwks_uri", &meta.jwks_uri),
    ] {
        let ok = url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok {
            return Err(format!("discovery {what} is not an http(s) URL"));
        }
    }
    Ok(meta)
}

/// Fetches and checks the discovery document outside any breaker (`--check-config`).
pub async fn probe(
    def: &ProviderDef,
    http: &ProviderHttp,
    timeout: Duration,
) -> Result<Metadata, String> {
    let body = http
        .get(&discovery_url(&def.issuer_url), timeout)
        .await
        .map_err(|e| e.to_string())?;
    parse_metadata(def, &body)
}

async fn fetch_metadata(
    rt: &ProviderRuntime,
    def: &ProviderDef,
    http: &ProviderHttp,
    timeout: Duration,
) -> Result<Metadata, ProviderError> {
    let body = rt
        .call(http.get(&discovery_url(&def.issuer_url), timeout))
        .await?;
    parse_metadata(def, &body).map_err(ProviderError::Bad)
}

async fn fetch_keys(
    rt: &ProviderRuntime,
    meta: &Metadata,
    http: &ProviderHttp,
    timeout: Duration,
) -> Result<Vec<Jwk>, ProviderError> {
    let body = rt.call(http.get(&meta.jwks_uri, timeout)).await?;
    super::idtoken::parse_jwks(&body).map_err(ProviderError::Bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(issuer: &str) -> ProviderDef {
        ProviderDef {
            provider: OAuthProvider {
                name: "test".into(),
                issuer_url: issuer.into(),
                client_id: "c".into(),
                client_secret: SecretString::new("s"),
                display_name: "Test".into(),
                scopes: vec!["openid".into()],
                allowed_email_domains: vec![],
                link_by_email: false,
            },
            source: "config",
        }
    }

    #[test]
    fn a_document_for_another_issuer_is_refused() {
        let body =
            br#"{"issuer":"https://evil.example","authorization_endpoint":"https://evil.example/a",
            "token_endpoint":"https://evil.example/t","jwks_uri":"https://evil.example/k"}"#;
        let err = parse_metadata(&def("https://id.example"), body).unwrap_err();
        assert!(err.contains("differs"), "{err}");
    }

    #[test]
    fn endpoints_must_be_http_urls() {
        let body =
            br#"{"issuer":"https://id.example/","authorization_endpoint":"javascript:alert(1)",
            "token_endpoint":"https://id.example/t","jwks_uri":"https://id.example/k"}"#;
        let err = parse_metadata(&def("https://id.example"), body).unwrap_err();
        assert!(err.contains("authorization_endpoint"), "{err}");
        let ok =
            br#"{"issuer":"https://id.example/","authorization_endpoint":"https://id.example/a",
            "token_endpoint":"https://id.example/t","jwks_uri":"https://id.example/k",
            "token_endpoint_auth_methods_supported":["client_secret_post"]}"#;
        let meta = parse_metadata(&def("https://id.example"), ok).unwrap();
        assert!(meta.wants_post_auth());
    }

    #[tokio::test]
    async fn outages_open_the_breaker_and_nothing_is_sent_while_open() {
        let rt = ProviderRuntime::new("t", 2, Duration::from_secs(60), None);
        let mut sent = 0;
        for _ in 0..2 {
            let r: Result<(), _> = rt
                .call(async {
                    sent += 1;
                    Err(HttpFail::Timeout)
                })
                .await;
            assert!(matches!(r, Err(ProviderError::Down(_))));
        }
        assert_eq!(rt.state(), BreakerState::Open);
        let r: Result<(), _> = rt
            .call(async {
                sent += 1;
                Ok(())
            })
            .await;
        assert!(matches!(r, Err(ProviderError::BreakerOpen)));
        assert_eq!(sent, 2);
    }

    #[tokio::test]
    async fn a_4xx_answer_is_not_an_outage() {
        let rt = ProviderRuntime::new("t", 1, Duration::from_secs(60), None);
        let r: Result<(), _> = rt
            .call(async { Err(HttpFail::Status(400, bytes::Bytes::from_static(b"{}"))) })
            .await;
        assert!(matches!(r, Err(ProviderError::Bad(_))));
        assert_eq!(rt.state(), BreakerState::Closed);
    }
}
