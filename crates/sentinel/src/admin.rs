//! The metrics/admin listener (spec §3.2 SEN-R20, SEN-R21): Prometheus metrics, liveness
//! and readiness, and the admin API for upstream health, on-demand probes, the route table
//! and the running config.
//!
//! What it is for: operators and scrapers on `metrics.address` (:9090). What it is not
//! for: proxying; it shares no code path with the proxy listeners, so a flood there cannot
//! starve it, and it stays up through the drain until the process exits (R39 step 2).
//!
//! Served with hyper's HTTP/1.1 connection builder directly rather than an axum router:
//! the limits of SEN-R20 (8 KiB heads, 10 s header timeout, 256 connections, bodies of at
//! most 64 KiB read and ignored) are connection settings, and the JSON 404/405 answers and
//! the access check are simpler to get exactly right in one small match than through
//! router fallbacks. `/metrics`, `/healthz` and `/readyz` reuse ron-metrics' exposer as
//! tower services (`Metrics::service`), so their formats, negotiation and headers are the
//! house ones; before `/metrics` is answered, [`SentinelMetrics::refresh`] brings the
//! scrape-time families up to date with the running snapshot.
//!
//! Access (SEN-R21) is decided by the pure function [`allowed`].

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use ron_kernel::shutdown::ShutdownCoordinator;
use ron_metrics::{Endpoint, ExposerService, Metrics, MountOptions};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_service::Service as _;

use crate::config::{self, AdminToken, FailureMode, LbPolicy, Priority, RateKey, UpstreamKind};
use crate::forward::{self, X_CORRELATION_ID};
use crate::health;
use crate::proxy::{ProxyBody, Shared};
use crate::snapshot::{Snapshot, TargetRt, UpstreamRt};

/// Most open admin connections; further connects are closed at accept.
pub const MAX_CONNECTIONS: usize = 256;
/// Largest request head (hyper's smallest allowed read buffer).
pub const MAX_HEAD_BYTES: usize = 8192;
/// Time allowed for a request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request body read (and ignored); a longer one gets 413 and the connection ends.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

const JSON: &str = "application/json";
const X_CONFIG_GENERATION: &str = "x-config-generation";
const GET_HEAD: &str = "GET, HEAD";

/// The admin access decision (SEN-R21): loopback peers always pass (127.0.0.0/8, ::1,
/// ::ffff:127.0.0.0/104); anyone else needs `Authorization: Bearer <token>` equal to the
/// configured token, compared in constant time. Without a configured token only loopback
/// passes (fail-closed).
pub fn allowed(peer: IpAddr, authorization: Option<&[u8]>, token: Option<&str>) -> bool {
    if is_loopback(peer) {
        return true;
    }
    let (Some(auth), Some(token)) = (authorization, token) else {
        return false;
    };
    let Some(presented) = bearer(auth) else {
        return false;
    };
    constant_time_eq(presented, token.as_bytes())
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The credentials of a `Bearer` authorization value (the scheme is case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let start = rest.iter().position(|b| *b != b' ')?;
    let end = rest.iter().rposition(|b| *b != b' ')? + 1;
    Some(&rest[start..end])
}

/// Compares every byte of the longer input whatever the content, so the time taken says
/// nothing about how much of the token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let len = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..len {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

fn configured_token(c: &config::Config) -> Option<&str> {
    match c.admin.token.as_ref()? {
        AdminToken::Inline(t) => Some(t),
        AdminToken::File { value, .. } => value.as_deref(),
    }
}

struct Admin {
    shared: Arc<Shared>,
    metrics: ExposerService,
    healthz: ExposerService,
    readyz: ExposerService,
}

/// Serves the admin listener on `listener` until the drain has finished (the admin port
/// stays up while proxy listeners close, so operators can watch the drain).
pub async fn serve(shared: Arc<Shared>, metrics: Arc<Metrics>, listener: TcpListener) {
    let mount = MountOptions::default();
    let health = shared.health.clone();
    let admin = Arc::new(Admin {
        metrics: metrics.service(health.clone(), Endpoint::Metrics, &mount),
        healthz: metrics.service(health.clone(), Endpoint::Healthz, &mount),
        readyz: metrics.service(health, Endpoint::Readyz, &mount),
        shared,
    });
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut token = ShutdownCoordinator::global().token();
    loop {
        let (stream, peer) = tokio::select! {
            _ = token.stopped() => return,
            a = listener.accept() => match a {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(listener = "admin", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        // Over the cap the connection is dropped unanswered, like the proxy's caps.
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let admin = admin.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(admin.handle(peer, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
            drop(permit);
        });
    }
}

/// What a path names.
enum Target<'a> {
    Exposer(Endpoint),
    UpstreamHealth(&'a str),
    UpstreamCheck(&'a str),
    HealthCheckAll,
    Routes,
    Config,
}

impl Target<'_> {
    fn parse(path: &str) -> Option<Target<'_>> {
        Some(match path {
            "/metrics" => Target::Exposer(Endpoint::Metrics),
            "/healthz" => Target::Exposer(Endpoint::Healthz),
            "/readyz" => Target::Exposer(Endpoint::Readyz),
            "/admin/health-check" => Target::HealthCheckAll,
            "/admin/routes" => Target::Routes,
            "/admin/config" => Target::Config,
            _ => {
                let rest = path.strip_prefix("/admin/upstreams/")?;
                let (name, action) = rest.split_once('/')?;
                let name = if name.eq_ignore_ascii_case("%2A") {
                    "*"
                } else {
                    name
                };
                if name.is_empty() {
                    return None;
                }
                match action {
                    "health" => Target::UpstreamHealth(name),
                    "check" => Target::UpstreamCheck(name),
                    _ => return None,
                }
            }
        })
    }

    /// The methods allowed, as the `Allow` header lists them.
    fn allow(&self) -> &'static str {
        match self {
            Target::UpstreamCheck(_) | Target::HealthCheckAll => "POST",
            _ => GET_HEAD,
        }
    }

    fn method_ok(&self, m: &Method) -> bool {
        match self {
            Target::UpstreamCheck(_) | Target::HealthCheckAll => m == Method::POST,
            _ => m == Method::GET || m == Method::HEAD,
        }
    }

    fn protected(&self) -> bool {
        matches!(
            self,
            Target::UpstreamCheck(_) | Target::HealthCheckAll | Target::Config
        )
    }
}

impl Admin {
    async fn handle(&self, peer: SocketAddr, req: Request<Incoming>) -> Response<ProxyBody> {
        let corr = forward::correlation_id(req.headers());
        let mut resp = self.dispatch(peer, req, &corr).await;
        resp.headers_mut().insert(X_CORRELATION_ID, corr);
        resp
    }

    async fn dispatch(
        &self,
        peer: SocketAddr,
        req: Request<Incoming>,
        corr: &HeaderValue,
    ) -> Response<ProxyBody> {
        let (parts, body) = req.into_parts();
        if !drain_body(body).await {
            let mut r = error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "request bodies on the admin listener are limited to 64 KiB",
                corr,
            );
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
        let path = parts.uri.path();
        let Some(target) = Target::parse(path) else {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such admin endpoint",
                corr,
            );
        };
        if !target.method_ok(&parts.method) {
            let mut r = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                &format!("{path} allows {}", target.allow()),
                corr,
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(target.allow()));
            return r;
        }
        let snap = self.shared.snapshot.load_full();
        if target.protected() {
            let ok = allowed(
                peer.ip(),
                parts
                    .headers
                    .get(header::AUTHORIZATION)
                    .map(HeaderValue::as_bytes),
                configured_token(&snap.config),
            );
            tracing::info!(peer = %peer, path = %path, allowed = ok, "admin request");
            if !ok {
                return error(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "this endpoint needs a loopback peer or the admin bearer token",
                    corr,
                );
            }
        }
        match target {
            Target::Exposer(ep) => {
                let mut svc = match ep {
                    Endpoint::Metrics => {
                        self.shared.metrics.refresh(&snap);
                        self.metrics.clone()
                    }
                    Endpoint::Healthz => self.healthz.clone(),
                    Endpoint::Readyz => self.readyz.clone(),
                };
                // Only the headers the exposer negotiates on are passed: the body was read
                // and dropped above, so its framing headers no longer apply.
                let mut inner = Request::new(());
                *inner.method_mut() = parts.method.clone();
                *inner.uri_mut() = parts.uri.clone();
                for h in [header::ACCEPT, header::ACCEPT_ENCODING, header::USER_AGENT] {
                    if let Some(v) = parts.headers.get(&h) {
                        inner.headers_mut().insert(h, v.clone());
                    }
                }
                inner.headers_mut().insert(X_CORRELATION_ID, corr.clone());
                let r = match svc.call(inner).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                // The exposer answers from a finished buffer; collecting it is free and
                // gives a body that is `Sync`, as the listener's body type requires.
                let (head, body) = r.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                Response::from_parts(head, Full::new(bytes).map_err(|e| match e {}).boxed())
            }
            Target::UpstreamHealth(name) => match upstreams_doc(&snap, name) {
                Some(doc) => json_response(StatusCode::OK, &doc),
                None => unknown_upstream(name, corr),
            },
            Target::UpstreamCheck(name) => self.check(snap, name, corr).await,
            Target::HealthCheckAll => self.check(snap, "*", corr).await,
            Target::Routes => json_response(StatusCode::OK, &routes_doc(&snap)),
            Target::Config => {
                let mut r = full(StatusCode::OK, Bytes::from(config::print(&snap.config)));
                let h = r.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                h.insert(X_CONFIG_GENERATION, HeaderValue::from(snap.generation));
                r
            }
        }
    }

    /// POST …/check: one probe of every target of the named upstream(s) now, waited for
    /// at most `timeout-secs` + 1 s; then the GET body.
    async fn check(
        &self,
        snap: Arc<Snapshot>,
        name: &str,
        corr: &HeaderValue,
    ) -> Response<ProxyBody> {
        let mut jobs = tokio::task::JoinSet::new();
        for u in &snap.config.upstreams {
            if name != "*" && u.name != name {
                continue;
            }
            let hc = match &u.kind {
                UpstreamKind::Proxy(p) => p.health_check.clone(),
                UpstreamKind::Static(_) => None,
            };
            let Some(hc) = hc else {
                if name == "*" {
                    continue;
                }
                return error(
                    StatusCode::CONFLICT,
                    "no_health_check",
                    &format!("upstream {name:?} has no active health check"),
                    corr,
                );
            };
            let Some(UpstreamRt::Proxy(p)) = snap.upstreams.get(&u.name).map(|u| u.as_ref()) else {
                continue;
            };
            for i in 0..p.targets.len() {
                let (snap, upstream, hc) = (snap.clone(), u.name.clone(), hc.clone());
                let metrics = self.shared.metrics.clone();
                jobs.spawn(async move {
                    let Some(UpstreamRt::Proxy(p)) =
                        snap.upstreams.get(&upstream).map(|u| u.as_ref())
                    else {
                        return;
                    };
                    let Some(t) = p.targets.get(i) else {
                        return;
                    };
                    let limit = Duration::from_secs(hc.timeout_secs + 1);
                    let _ =
                        tokio::time::timeout(limit, health::probe_now(t, &upstream, &hc, &metrics))
                            .await;
                });
            }
        }
        if name != "*" && !snap.config.upstreams.iter().any(|u| u.name == name) {
            return unknown_upstream(name, corr);
        }
        while jobs.join_next().await.is_some() {}
        match upstreams_doc(&snap, name) {
            Some(doc) => json_response(StatusCode::OK, &doc),
            None => unknown_upstream(name, corr),
        }
    }
}

/// Reads at most [`MAX_BODY_BYTES`] of the body and drops them; `false` when it is longer.
async fn drain_body(mut body: Incoming) -> bool {
    if body.is_end_stream() {
        return true;
    }
    let mut read = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            // A broken body ends the exchange; the codec reports it on the connection.
            return true;
        };
        read += frame.data_ref().map_or(0, Bytes::len);
        if read > MAX_BODY_BYTES {
            return false;
        }
    }
    true
}

fn lb_name(p: LbPolicy) -> &'static str {
    match p {
        LbPolicy::RoundRobin => "round-robin",
        LbPolicy::Weighted => "weighted",
        LbPolicy::LeastConnections => "least-connections",
        LbPolicy::P2c => "p2c",
        LbPolicy::IpHash => "ip-hash",
    }
}

fn priority_name(p: Priority) -> &'static str {
    match p {
        Priority::Low => "low",
        Priority::Normal => "normal",
        Priority::High => "high",
        Priority::Critical => "critical",
    }
}

/// `{"generation":N,"upstreams":[U…]}` for `name` (`*` = all, in config order); `None`
/// for an unknown name.
fn upstreams_doc(snap: &Snapshot, name: &str) -> Option<Value> {
    let list: Vec<Value> = snap
        .config
        .upstreams
        .iter()
        .filter(|u| name == "*" || u.name == name)
        .map(|u| upstream_doc(snap, u))
        .collect();
    if list.is_empty() && name != "*" {
        return None;
    }
    Some(json!({"generation": snap.generation, "upstreams": list}))
}

fn upstream_doc(snap: &Snapshot, u: &config::Upstream) -> Value {
    let lb = match &u.kind {
        UpstreamKind::Proxy(p) => Value::from(lb_name(p.load_balancing)),
        UpstreamKind::Static(_) => Value::Null,
    };
    let targets: Vec<&TargetRt> = match snap.upstreams.get(&u.name).map(|u| u.as_ref()) {
        Some(UpstreamRt::Proxy(p)) => p.targets.iter().collect(),
        _ => Vec::new(),
    };
    json!({
        "name": u.name,
        "static": matches!(u.kind, UpstreamKind::Static(_)),
        "load_balancing": lb,
        "healthy_targets": targets.iter().filter(|t| t.healthy()).count(),
        "total_targets": targets.len(),
        "targets": targets.iter().map(|t| target_doc(t)).collect::<Vec<_>>(),
    })
}

fn target_doc(t: &TargetRt) -> Value {
    let s = &t.state;
    let (window, failures) = {
        let ring = s.health.ring.lock();
        (ring.len(), ring.iter().filter(|f| **f).count())
    };
    let ratio = if window == 0 {
        0.0
    } else {
        failures as f64 / window as f64
    };
    let last = s.health.last_check.lock().clone();
    let last = match last {
        Some(c) => json!({
            "at": ron_metrics::readyz::rfc3339_millis(c.at),
            "ok": c.ok,
            "status": c.status,
            "latency_ms": c.latency_ms,
            "error": c.error,
        }),
        None => Value::Null,
    };
    json!({
        "address": t.address,
        "resolved": t.addr.to_string(),
        "weight": t.weight,
        "draining": t.weight == 0,
        "healthy": t.healthy(),
        "active_healthy": s.active_healthy.load(Ordering::Relaxed),
        "passive_ejected": s.passive_ejected.load(Ordering::Relaxed),
        "circuit": t.breaker.state().as_str(),
        "in_flight": s.in_flight.load(Ordering::Relaxed),
        "recent_failure_ratio": ratio,
        "window_requests": window,
        "last_check": last,
    })
}

/// `{"generation":N,"routes":[…]}` in match order; `order` is the 1-based match position.
fn routes_doc(snap: &Snapshot) -> Value {
    let routes: Vec<Value> = snap
        .routes
        .routes()
        .iter()
        .enumerate()
        .filter_map(|(pos, c)| {
            let r = snap.config.routes.get(c.index)?;
            let m = &r.matches;
            let p = &r.policies;
            let rate_limit = p.rate_limit.as_ref().map(|rl| {
                let key = match &rl.key {
                    RateKey::ClientIp => "client_ip".to_owned(),
                    RateKey::Route => "route".to_owned(),
                    RateKey::Header(h) => format!("header:{h}"),
                };
                json!({
                    "requests_per_second": rl.requests_per_second,
                    "burst": rl.burst,
                    "key": key,
                })
            });
            Some(json!({
                "name": r.name,
                "order": pos + 1,
                "priority": priority_name(r.priority),
                "matches": {
                    "path": m.path,
                    "path_prefix": m.path_prefix,
                    "host": m.host,
                    "method": m.method,
                    "header": m.header.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
                },
                "upstream": r.upstream,
                "policies": {
                    "timeout_secs": p.timeout_secs,
                    "failure_mode": match p.failure_mode {
                        FailureMode::Closed => "closed",
                        FailureMode::Open => "open",
                    },
                    "retries": p.retries,
                    "rate_limit": rate_limit,
                },
            }))
        })
        .collect();
    json!({"generation": snap.generation, "routes": routes})
}

fn full(status: StatusCode, body: Bytes) -> Response<ProxyBody> {
    let len = body.len();
    let mut r = Response::new(Full::new(body).map_err(|e| match e {}).boxed());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn json_response(status: StatusCode, doc: &Value) -> Response<ProxyBody> {
    let mut r = full(status, Bytes::from(doc.to_string()));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    r
}

fn error(status: StatusCode, code: &str, message: &str, corr: &HeaderValue) -> Response<ProxyBody> {
    let doc = json!({
        "code": code,
        "message": message,
        "corr_id": corr.to_str().unwrap_or_default(),
    });
    json_response(status, &doc)
}

fn unknown_upstream(name: &str, corr: &HeaderValue) -> Response<ProxyBody> {
    error(
        StatusCode::NOT_FOUND,
        "unknown_upstream",
        &format!("no upstream named {name:?}"),
        corr,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "s3cret-admin-token-0123";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// SEN-T28: the (peer, header, configured token) matrix.
    #[test]
    fn access_matrix() {
        let right = format!("Bearer {TOKEN}");
        let wrong = "Bearer s3cret-admin-token-0124".to_owned();
        let prefix = format!("Bearer {}", &TOKEN[..10]);
        let longer = format!("Bearer {TOKEN}x");
        let lower = format!("bearer {TOKEN}");
        let basic = format!("Basic {TOKEN}");
        let cases: &[(&str, Option<&str>, Option<&str>, bool)] = &[
            // Loopback always passes, with or without a token.
            ("127.0.0.1", None, None, true),
            ("127.9.8.7", None, Some(TOKEN), true),
            ("::1", Some("Bearer nope"), Some(TOKEN), true),
            ("::ffff:127.0.0.1", None, Some(TOKEN), true),
            // Remote: only the right bearer token.
            ("10.1.2.3", None, Some(TOKEN), false),
            ("10.1.2.3", Some(&right), Some(TOKEN), true),
            ("10.1.2.3", Some(&lower), Some(TOKEN), true),
            ("10.1.2.3", Some(&wrong), Some(TOKEN), false),
            ("10.1.2.3", Some(&prefix), Some(TOKEN), false),
            ("10.1.2.3", Some(&longer), Some(TOKEN), false),
            ("10.1.2.3", Some(&basic), Some(TOKEN), false),
            ("10.1.2.3", Some("Bearer "), Some(TOKEN), false),
            ("2001:db8::1", Some(&right), Some(TOKEN), true),
            ("::ffff:10.0.0.1", None, Some(TOKEN), false),
            ("::ffff:128.0.0.1", Some(&wrong), Some(TOKEN), false),
            // No token configured: remote callers are refused whatever they send.
            ("10.1.2.3", Some(&right), None, false),
            ("10.1.2.3", None, None, false),
        ];
        for (peer, header, token, want) in cases {
            assert_eq!(
                allowed(ip(peer), header.map(str::as_bytes), *token),
                *want,
                "peer {peer} header {header:?} token {token:?}"
            );
        }
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abc\0"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn paths_parse_with_star_and_encoded_star() {
        assert!(matches!(
            Target::parse("/admin/upstreams/*/health"),
            Some(Target::UpstreamHealth("*"))
        ));
        assert!(matches!(
            Target::parse("/admin/upstreams/%2a/check"),
            Some(Target::UpstreamCheck("*"))
        ));
        assert!(matches!(
            Target::parse("/admin/upstreams/api-backend/health"),
            Some(Target::UpstreamHealth("api-backend"))
        ));
        for bad in [
            "/admin/upstreams//health",
            "/admin/upstreams/a/b/health",
            "/admin/upstreams/a",
            "/admin",
            "/metricsx",
        ] {
            assert!(Target::parse(bad).is_none(), "{bad}");
        }
    }
}
