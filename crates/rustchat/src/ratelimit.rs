//! Per-IP rate limits and the client address (CHAT-R23).
//!
//! Client IP = the socket peer, or, when the peer is a trusted proxy
//! (`server.trusted_proxies`), the right-most `X-Forwarded-For` entry outside that list.
//! One GCRA limiter per class and node (ron-kernel's bounded keyed limiter), quota N per
//! minute with burst N: `auth` (register, logins), `ws` (both upgrade routes), `webhook`
//! (keyed by hook). `X-RateLimit-Reset` is the seconds until the bucket is full
//! (decision 8). Each 429 counts in `rustchat_rate_limit_hits_total{endpoint,limit_type}`
//! and logs WARN `Rate limit exceeded` with a top-level `ip`: the first hit per (class,
//! key), then at most one line per [`WARN_EVERY`] carrying how many were suppressed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue};
use parking_lot::Mutex;
use ron_kernel::{Decision, KeyedLimiter, LimiterConfig};

use crate::config::{Cidr, SecurityConfig};
use crate::error::{ApiError, V4Error};
use crate::state::AppState;

/// Minimum spacing of `Rate limit exceeded` lines per (class, key).
pub const WARN_EVERY: Duration = Duration::from_secs(10);
/// Most (class, key) pairs remembered for log suppression.
pub const WARN_TABLE_MAX: usize = 10_000;

/// The limited classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Logins, registration, OAuth endpoints.
    Auth,
    /// WebSocket upgrades.
    Ws,
    /// Incoming webhook executions (keyed by hook).
    Webhook,
}

impl Class {
    /// `endpoint` label.
    pub fn endpoint(self) -> &'static str {
        match self {
            Class::Auth => "auth",
            Class::Ws => "ws",
            Class::Webhook => "webhook",
        }
    }
    /// `limit_type` label.
    pub fn limit_type(self) -> &'static str {
        match self {
            Class::Webhook => "hook",
            _ => "ip",
        }
    }
}

/// The client's address, stored in request extensions by [`client_ip_layer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Resolves the client address from the peer and `X-Forwarded-For`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    if !trusted.iter().any(|c| c.contains(peer)) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|ip| !trusted.iter().any(|c| c.contains(*ip)))
        .unwrap_or(peer)
}

struct Limiters {
    auth: KeyedLimiter<IpAddr>,
    ws: KeyedLimiter<IpAddr>,
    webhook: KeyedLimiter<String>,
}

fn per_minute(n: u32) -> LimiterConfig {
    LimiterConfig::new(n.max(1), Duration::from_secs(60), n.max(1))
}

impl Limiters {
    fn new(cfg: &SecurityConfig) -> Self {
        // Quotas are validated as 1-100000 by config, so construction cannot fail; a zero
        // would still be lifted to 1 by `per_minute`.
        Limiters {
            auth: KeyedLimiter::new(per_minute(cfg.rate_limit_auth_per_minute))
                .expect("quota >= 1"),
            ws: KeyedLimiter::new(per_minute(cfg.rate_limit_ws_per_minute)).expect("quota >= 1"),
            webhook: KeyedLimiter::new(per_minute(cfg.rate_limit_webhook_per_minute))
                .expect("quota >= 1"),
        }
    }
}

/// The node's limiters; rebuilt when a reload changes a quota.
pub struct RateLimits {
    limiters: ArcSwap<Limiters>,
    quotas: Mutex<(u32, u32, u32)>,
    enabled: AtomicBool,
    warned: Mutex<HashMap<(Class, String), (Instant, u64)>>,
}

impl RateLimits {
    /// Limiters for `cfg`.
    pub fn new(cfg: &SecurityConfig) -> Self {
        RateLimits {
            limiters: ArcSwap::from_pointee(Limiters::new(cfg)),
            quotas: Mutex::new(quotas(cfg)),
            enabled: AtomicBool::new(cfg.rate_limit_enabled),
            warned: Mutex::new(HashMap::new()),
        }
    }

    /// Applies reloaded values; buckets restart only for a class whose quota changed.
    pub fn reconfigure(&self, cfg: &SecurityConfig) {
        self.enabled
            .store(cfg.rate_limit_enabled, Ordering::Release);
        let mut q = self.quotas.lock();
        if *q != quotas(cfg) {
            *q = quotas(cfg);
            self.limiters.store(Arc::new(Limiters::new(cfg)));
        }
    }

    /// Checks one request of `class` for `key`; None when limits are disabled.
    pub fn check(&self, class: Class, key: &str, ip: Option<IpAddr>) -> Option<Decision> {
        if !self.enabled.load(Ordering::Acquire) {
            return None;
        }
        let l = self.limiters.load();
        Some(match (class, ip) {
            (Class::Auth, Some(ip)) => l.auth.check(&ip),
            (Class::Ws, Some(ip)) => l.ws.check(&ip),
            _ => l.webhook.check(&key.to_string()),
        })
    }

    /// Records a refusal: metric always, WARN line when not suppressed.
    pub fn refused(&self, st: &AppState, class: Class, key: &str, ip: &str) {
        st.metrics
            .rate_limit_hits
            .with_label_values(&[class.endpoint(), class.limit_type()])
            .inc();
        let mut w = self.warned.lock();
        if w.len() >= WARN_TABLE_MAX {
            w.clear();
        }
        let entry = w
            .entry((class, key.to_string()))
            .or_insert((Instant::now() - WARN_EVERY * 2, 0));
        if entry.0.elapsed() >= WARN_EVERY {
            let suppressed = entry.1;
            *entry = (Instant::now(), 0);
            tracing::warn!(
                ip,
                endpoint = class.endpoint(),
                limit_type = class.limit_type(),
                suppressed,
                "Rate limit exceeded"
            );
        } else {
            entry.1 += 1;
        }
    }
}

fn quotas(cfg: &SecurityConfig) -> (u32, u32, u32) {
    (
        cfg.rate_limit_auth_per_minute,
        cfg.rate_limit_ws_per_minute,
        cfg.rate_limit_webhook_per_minute,
    )
}

/// `X-RateLimit-*` headers for a decision.
pub fn headers(d: &Decision, resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
    let reset = d.reset_after.as_secs_f64().ceil() as u64;
    h.insert("x-ratelimit-reset", HeaderValue::from(reset));
}

/// A 429 for `d` in the dialect of `path`, with `Retry-After` and the rate headers.
pub fn too_many(d: &Decision, path: &str) -> Response {
    let retry = d.retry_after.as_secs_f64().ceil().clamp(1.0, 3600.0) as u32;
    let e = ApiError::rate_limited(retry);
    let mut resp = if path.starts_with("/api/v4/") {
        V4Error(e).into_response()
    } else {
        e.into_response()
    };
    headers(d, &mut resp);
    resp
}

/// Layer (outermost) that stores [`ClientIp`] for every request.
pub async fn client_ip_layer(mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let ip = match req.extensions().get::<AppState>() {
        Some(st) => client_ip(peer, req.headers(), &st.cfg_peek().server.trusted_proxies),
        None => peer,
    };
    req.extensions_mut().insert(ClientIp(ip));
    next.run(req).await
}

async fn limit(class: Class, req: Request, next: Next) -> Response {
    let (Some(st), Some(ClientIp(ip))) = (
        req.extensions().get::<AppState>().cloned(),
        req.extensions().get::<ClientIp>().copied(),
    ) else {
        return next.run(req).await;
    };
    let key = ip.to_string();
    match st.limits.check(class, &key, Some(ip)) {
        None => next.run(req).await,
        Some(d) if d.allowed => {
            let mut resp = next.run(req).await;
            headers(&d, &mut resp);
            resp
        }
        Some(d) => {
            if class == Class::Ws {
                let api = if req.uri().path().starts_with("/api/v4/") {
                    "v4"
                } else {
                    "v1"
                };
                st.metrics
                    .ws_connections
                    .with_label_values(&[api, "rate_limited"])
                    .inc();
            }
            st.limits.refused(&st, class, &key, &key);
            too_many(&d, req.uri().path())
        }
    }
}

/// Route layer for the `auth` class.
pub async fn auth_limit(req: Request, next: Next) -> Response {
    limit(Class::Auth, req, next).await
}

/// Route layer for the `ws` class.
pub async fn ws_limit(req: Request, next: Next) -> Response {
    limit(Class::Ws, req, next).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ip_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.7, 10.1.1.1".parse().unwrap(),
        );
        let peer: IpAddr = "10.2.2.2".parse().unwrap();
        assert_eq!(
            client_ip(peer, &h, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        let outsider: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            client_ip(outsider, &h, &trusted),
            outsider,
            "untrusted peers cannot spoof"
        );
        assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted), peer);
    }
}
