//! The request path (spec §3.1 SEN-R13..R16, §4.4, §4.5): reserved paths, the request
//! checks in order, route matching, static answers, and forwarding with target selection,
//! attempts, retries and response re-framing.
//!
//! What it is not for: connection handling (listeners), health checking, reload.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body as _, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use ron_kernel::HealthState;

use crate::access_log::{AccessLog, Record};
use crate::config::{FailureMode, UpstreamProtocol};
use crate::errors::ProxyError;
use crate::finish::{Finish, TrackedBody};
use crate::forward::{self, X_CORRELATION_ID};
use crate::health;
use crate::lb::TargetView;
use crate::metrics::{ROUTE_BUILTIN, ROUTE_UNMATCHED, SentinelMetrics};
use crate::pool::{Lease, PoolError, SendError, UpBody};
use crate::request_body::{Cut, GuardedBody, Verdict};
use crate::routing::{RequestFacts, bare_host};
use crate::snapshot::{ProxyRt, Snapshot, StaticRt, TargetState, UpstreamRt};
use crate::upgrade;

/// Boxed error of response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Response body type.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// State shared by every connection.
pub struct Shared {
    /// The running snapshot.
    pub snapshot: ArcSwap<Snapshot>,
    /// Readiness.
    pub health: Arc<HealthState>,
    /// Admitted requests not finished.
    pub in_flight: AtomicU64,
    /// Draining has begun.
    pub draining: AtomicBool,
    /// Metric handles.
    pub metrics: Arc<SentinelMetrics>,
    /// The access log.
    pub access_log: Arc<AccessLog>,
    /// Open downstream connections, for the accept caps.
    pub conns: Arc<crate::conncap::ConnCounts>,
}

impl Shared {
    /// The state for `snapshot`, before any listener runs.
    pub fn new(
        snapshot: Snapshot,
        health: Arc<HealthState>,
        metrics: Arc<SentinelMetrics>,
    ) -> Arc<Shared> {
        let access_log = AccessLog::start(
            &snapshot.config.logging.access_log,
            metrics.access_log_dropped.clone(),
            metrics.log_write_errors.clone(),
        );
        Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            health,
            in_flight: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            metrics,
            access_log,
            conns: Arc::default(),
        })
    }
}

/// Facts about the downstream connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Client address.
    pub peer: SocketAddr,
    /// TLS listener.
    pub https: bool,
    /// Listener name (`main` or the configured name).
    pub listener: Arc<str>,
    /// The client's `X-Forwarded-For` entry, formatted once per connection.
    pub forwarded_for: HeaderValue,
}

/// What the access log and metrics need about a finished request.
struct Outcome {
    route: String,
    error: Option<ProxyError>,
}

/// What the upstream side of a request did, for the access log.
#[derive(Default)]
struct Trace {
    upstream: Option<String>,
    target: Option<String>,
    attempts: u32,
    upstream_latency_ms: Option<f64>,
    /// Request body bytes sent upstream, counted as they stream.
    bytes_in: Arc<AtomicU64>,
}

/// Handles one request.
pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let corr = forward::correlation_id(req.headers());
    let snap = shared.snapshot.load_full();
    let is_h1 = req.version() < Version::HTTP_2;
    let record = shared
        .access_log
        .enabled()
        .then(|| access_record(&req, &conn, &corr));
    let mut trace = Trace::default();
    let (mut resp, outcome) = match reserved(&shared, &req) {
        Some(r) => (
            r,
            Outcome {
                route: ROUTE_BUILTIN.into(),
                error: None,
            },
        ),
        None => dispatch(&shared, &snap, &conn, req, &corr, &mut trace).await,
    };
    if let Some(e) = outcome.error
        && resp.status() == e.status()
        && !resp.headers().contains_key(header::CONTENT_TYPE)
    {
        // An error the handler answered without a body of its own.
        resp = e.response(&outcome.route, &corr);
    }
    let h = resp.headers_mut();
    h.insert(X_CORRELATION_ID, corr.clone());
    if is_h1 && shared.draining.load(Ordering::Acquire) {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    tracing::debug!(
        correlation_id = corr.to_str().unwrap_or_default(),
        route = %outcome.route,
        status = resp.status().as_u16(),
        error = outcome.error.map(ProxyError::code),
        "request finished"
    );
    // Counted, timed and access-logged when the body ends (or the client leaves).
    let record = record.map(|mut r| {
        r.route = outcome.route.clone();
        r.upstream = trace.upstream.clone();
        r.target = trace.target.clone();
        r.attempts = trace.attempts;
        r.upstream_latency_ms = trace.upstream_latency_ms;
        r.error = outcome.error.map(|e| e.code().to_owned());
        r
    });
    let finish = Finish {
        shared: shared.clone(),
        route: outcome.route,
        started,
        status: resp.status().as_u16(),
        record,
        bytes_in: trace.bytes_in,
    };
    Ok(resp.map(|b| TrackedBody::new(b, finish).boxed()))
}

/// The request half of an access-log line.
fn access_record(req: &Request<Incoming>, conn: &ConnInfo, corr: &HeaderValue) -> Record {
    let text = |v: Option<&HeaderValue>| v.and_then(|v| v.to_str().ok()).map(str::to_owned);
    Record {
        correlation_id: corr.to_str().unwrap_or_default().to_owned(),
        client_ip: conn.peer.ip().to_string(),
        method: req.method().to_string(),
        host: request_host(req).unwrap_or_default(),
        path: req.uri().path().to_owned(),
        protocol: format!("{:?}", req.version()),
        user_agent: text(req.headers().get(header::USER_AGENT)),
        ..Record::default()
    }
}

/// `/health` and `/ready` on every proxy listener, ahead of routing (SEN-R13).
fn reserved(shared: &Shared, req: &Request<Incoming>) -> Option<Response<ProxyBody>> {
    let path = req.uri().path();
    if path != "/health" && path != "/ready" {
        return None;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let corr = forward::correlation_id(req.headers());
        return Some(ProxyError::MethodNotAllowed.response("", &corr));
    }
    let head = req.method() == Method::HEAD;
    let (status, body, retry) = if path == "/health" {
        (StatusCode::OK, "{\"status\":\"ok\"}".to_owned(), None)
    } else {
        let snap = shared.health.snapshot();
        let retry_secs = if snap.draining { 5 } else { 1 };
        let doc = ron_metrics::readyz::ReadyzBody::from_snapshot(&snap, retry_secs);
        let status = if snap.ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (status, doc.to_json(), (!snap.ready).then_some(retry_secs))
    };
    let len = body.len();
    let mut r = full(
        status,
        if head {
            Bytes::new()
        } else {
            Bytes::from(body)
        },
    );
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Some(s) = retry {
        h.insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    Some(r)
}

/// Admission, checks, routing and the upstream (SEN-R14 items 2-9).
async fn dispatch(
    shared: &Arc<Shared>,
    snap: &Snapshot,
    conn: &ConnInfo,
    req: Request<Incoming>,
    corr: &HeaderValue,
    trace: &mut Trace,
) -> (Response<ProxyBody>, Outcome) {
    let limits = &snap.config.limits;
    let unmatched = |e: ProxyError| {
        (
            e.response("", corr),
            Outcome {
                route: ROUTE_UNMATCHED.into(),
                error: Some(e),
            },
        )
    };
    let guard = InFlight::enter(shared);
    if guard.count > u64::from(limits.max_in_flight_requests) {
        return unmatched(ProxyError::Overloaded);
    }
    if let Err(e) = check_request(&req, limits.max_uri_bytes, limits.max_body_size_bytes) {
        return unmatched(e);
    }
    let host = request_host(&req);
    let facts = RequestFacts {
        host: host.as_deref(),
        path: req.uri().path(),
        method: req.method(),
        headers: req.headers(),
    };
    let Some(route) = snap.routes.find(&facts) else {
        return unmatched(ProxyError::NoRoute);
    };
    let route_cfg = &snap.config.routes[route.index];
    let route_name = route.name.clone();
    let outcome = |error| Outcome {
        route: route_name.clone(),
        error,
    };
    if let Some(limiter) = snap.limiters.get(&route_name) {
        let key = limiter.key(conn.peer.ip(), req.headers());
        if let Err(wait) = limiter.check(&key) {
            shared
                .metrics
                .rate_limited
                .with_label_values(&[&route_name])
                .inc();
            let e = ProxyError::RateLimited(wait);
            return (e.response(&route_name, corr), outcome(Some(e)));
        }
    }
    let Some(upstream) = snap.upstreams.get(&route_cfg.upstream) else {
        // Validation guarantees the reference; a missing one still gets an answer.
        return (
            ProxyError::NoHealthyUpstream.response(&route_cfg.upstream, corr),
            outcome(Some(ProxyError::NoHealthyUpstream)),
        );
    };
    trace.upstream = Some(route_cfg.upstream.clone());
    let resp = match upstream.as_ref() {
        UpstreamRt::Static(s) => {
            trace.target = Some("-".into());
            Ok(static_answer(s, req.method() == Method::HEAD))
        }
        UpstreamRt::Proxy(p) => {
            let policy = &route_cfg.policies;
            let budget =
                Duration::from_secs(policy.timeout_secs.unwrap_or(p.timeouts.request_secs));
            let plan = Plan {
                metrics: &shared.metrics,
                max_body: snap.config.limits.max_body_size_bytes,
                body_idle: Duration::from_secs(snap.config.server.client_body_timeout_secs),
                upstream: &route_cfg.upstream,
                route: &route_name,
                retries: policy.retries,
                failure_mode: policy.failure_mode,
                deadline: tokio::time::Instant::now() + budget,
                corr,
                conn,
                host: host.as_deref(),
            };
            if upgrade::is_upgrade(&req) {
                forward_upgrade(p, req, &plan, trace).await
            } else {
                forward_request(shared, p, req, plan, guard, trace).await
            }
        }
    };
    match resp {
        Ok(r) => (r, outcome(None)),
        Err(e) => (e.response(&route_cfg.upstream, corr), outcome(Some(e))),
    }
}

/// SEN-R14 items 3-8 on the request head (public for the request-head fuzz target).
pub fn check_request<B>(req: &Request<B>, max_uri: u64, max_body: u64) -> Result<(), ProxyError> {
    if req.method() == Method::CONNECT || req.method() == Method::TRACE {
        return Err(ProxyError::MethodNotAllowed);
    }
    let uri = req.uri();
    let uri_len = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    if uri_len as u64 > max_uri {
        return Err(ProxyError::UriTooLong);
    }
    // Origin-form or absolute-form http(s) only; `*` and authority-form are refused.
    match uri.scheme_str() {
        None if uri.path().starts_with('/') => {}
        Some("http" | "https") if uri.path().starts_with('/') => {}
        _ => return Err(ProxyError::BadRequest),
    }
    if req.version() == Version::HTTP_11
        && uri.authority().is_none()
        && !req.headers().contains_key(header::HOST)
    {
        return Err(ProxyError::BadRequest);
    }
    if has_dot_segment_or_nul(uri.path()) {
        return Err(ProxyError::InvalidPath);
    }
    let h = req.headers();
    if h.contains_key(header::CONTENT_LENGTH) && h.contains_key(header::TRANSFER_ENCODING) {
        return Err(ProxyError::BadRequest);
    }
    let declared = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if max_body > 0 && declared.is_some_and(|n| n > max_body) {
        return Err(ProxyError::BodyTooLarge);
    }
    Ok(())
}

/// A `.` or `..` segment, literal or percent-encoded in any case, or a NUL (SEN-R14 #6).
fn has_dot_segment_or_nul(path: &str) -> bool {
    // The usual path has neither a dot nor an escape: nothing to look at.
    if !path.bytes().any(|b| b == b'.' || b == b'%' || b == 0) {
        return false;
    }
    if path.contains("%00") || path.as_bytes().contains(&0) {
        return true;
    }
    path.split('/').any(|seg| {
        let lower = seg.to_ascii_lowercase();
        let decoded = lower.replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

/// Host for routing: the absolute-form authority, else `Host` (h2 `:authority` arrives as
/// the URI authority), lowercased without port and trailing dot.
pub fn request_host<B>(req: &Request<B>) -> Option<String> {
    let raw = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })?;
    Some(bare_host(&raw).to_ascii_lowercase())
}

fn static_answer(s: &StaticRt, head: bool) -> Response<ProxyBody> {
    let mut r = full(s.status, if head { Bytes::new() } else { s.body.clone() });
    *r.headers_mut() = s.headers.clone();
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(s.body.len()));
    r
}

fn full(status: StatusCode, body: Bytes) -> Response<ProxyBody> {
    let mut r = Response::new(Full::new(body).map_err(|never| match never {}).boxed());
    *r.status_mut() = status;
    r
}

/// Counts the request in the proxy-wide in-flight figure until dropped.
/// Lives until the response body ends, so streamed responses stay counted.
struct InFlight {
    shared: Arc<Shared>,
    count: u64,
}

impl InFlight {
    fn enter(shared: &Arc<Shared>) -> InFlight {
        let count = shared.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        shared.metrics.in_flight.set(count as i64);
        InFlight {
            shared: shared.clone(),
            count,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let left = self.shared.in_flight.fetch_sub(1, Ordering::AcqRel) - 1;
        self.shared.metrics.in_flight.set(left as i64);
    }
}

/// Everything one forwarded request needs besides the upstream.
struct Plan<'a> {
    metrics: &'a SentinelMetrics,
    /// `max-body-size-bytes` (0 = unlimited).
    max_body: u64,
    /// `client-body-timeout-secs`.
    body_idle: Duration,
    upstream: &'a str,
    route: &'a str,
    retries: u32,
    failure_mode: FailureMode,
    deadline: tokio::time::Instant,
    corr: &'a HeaderValue,
    conn: &'a ConnInfo,
    host: Option<&'a str>,
}

/// How one attempt ended (SEN-R29), with the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    ConnectError,
    ConnectTimeout,
    Timeout,
    Closed,
    ProtocolError,
}

impl Attempt {
    fn label(self) -> &'static str {
        match self {
            Attempt::ConnectError => "connect_error",
            Attempt::ConnectTimeout => "connect_timeout",
            Attempt::Timeout => "timeout",
            Attempt::Closed => "closed",
            Attempt::ProtocolError => "protocol_error",
        }
    }

    fn answer(self) -> ProxyError {
        match self {
            Attempt::ConnectError => ProxyError::UpstreamConnectFailed,
            Attempt::ConnectTimeout => ProxyError::UpstreamConnectTimeout,
            Attempt::Timeout => ProxyError::UpstreamTimeout,
            Attempt::Closed => ProxyError::UpstreamClosed,
            Attempt::ProtocolError => ProxyError::UpstreamProtocolError,
        }
    }
}

/// Picks targets and runs attempts until one yields a response to forward (SEN-R26..R30).
async fn forward_request(
    shared: &Shared,
    p: &ProxyRt,
    req: Request<Incoming>,
    plan: Plan<'_>,
    guard: InFlight,
    trace: &mut Trace,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (parts, body) = req.into_parts();
    let idempotent = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    );
    let bodiless = body.is_end_stream()
        || (!parts.headers.contains_key(header::TRANSFER_ENCODING)
            && parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim() == "0"));
    let head = upstream_head(&parts, &plan, p.protocol, false);
    let verdict = Arc::new(Verdict::default());
    let mut body: Option<UpBody> = Some(if bodiless {
        Empty::new().map_err(|never| match never {}).boxed()
    } else {
        GuardedBody::new(
            body,
            plan.max_body,
            plan.body_idle,
            trace.bytes_in.clone(),
            verdict.clone(),
        )
        .boxed()
    });
    let attempts = 1 + plan.retries;
    let mut tried: Vec<usize> = Vec::new();
    let mut last: Option<ProxyError> = None;
    let m = &shared.metrics;
    for attempt in 0..attempts {
        if attempt > 0 {
            m.retries.with_label_values(&[plan.route]).inc();
        }
        // A target whose breaker refuses is skipped for this attempt (SEN-R26); under
        // failure-mode open the fallback pick goes ahead without a breaker permit.
        let mut refused: Vec<usize> = Vec::new();
        let (i, permit) = loop {
            let Some((i, fallback)) = choose(p, &tried, &refused, &plan) else {
                return Err(last.unwrap_or(ProxyError::NoHealthyUpstream));
            };
            match p.targets[i].breaker.try_acquire() {
                Ok(permit) => break (i, Some(permit)),
                Err(_) if fallback => break (i, None),
                Err(_) => refused.push(i),
            }
        };
        tried.push(i);
        let target = &p.targets[i];
        trace.attempts += 1;
        trace.target = Some(target.address.clone());
        let attempt_started = Instant::now();
        let settle = |failed: bool, permit: Option<ron_kernel::breaker::Permit<'_>>| {
            if let Some(permit) = permit {
                if failed {
                    permit.failure();
                } else {
                    permit.success();
                }
            }
            health::record_attempt(&target.state, &target.id, &p.passive, failed, m);
        };
        let label = |outcome: &str| {
            m.attempts
                .with_label_values(&[plan.upstream, &target.address, outcome])
                .inc();
        };
        let slot_deadline = plan
            .deadline
            .min(tokio::time::Instant::now() + Duration::from_secs(p.timeouts.connect_secs));
        let mut lease = match target.pool.lease(slot_deadline).await {
            Ok(l) => l,
            Err(PoolError::Exhausted) => return Err(ProxyError::PoolExhausted),
            Err(e) => {
                let a = match e {
                    PoolError::ConnectTimeout => Attempt::ConnectTimeout,
                    _ => Attempt::ConnectError,
                };
                settle(true, permit);
                label(a.label());
                warn_attempt(&plan, &target.address, a, attempt, attempt + 1 < attempts);
                // Nothing was sent, so any request may go to another target, body intact.
                last = Some(a.answer());
                continue;
            }
        };
        let Some(b) = body.take() else {
            return Err(last.unwrap_or(ProxyError::UpstreamClosed));
        };
        let mut up = Request::from_parts(head.clone(), b);
        *up.version_mut() = match p.protocol {
            UpstreamProtocol::Http1 => Version::HTTP_11,
            UpstreamProtocol::H2c => Version::HTTP_2,
        };
        let state = target.state.clone();
        state.begin();
        let read_deadline = plan
            .deadline
            .min(tokio::time::Instant::now() + Duration::from_secs(p.timeouts.read_secs));
        let sent = tokio::time::timeout_at(read_deadline, lease.send(up)).await;
        if matches!(sent, Ok(Ok(_))) {
            trace.upstream_latency_ms = Some(attempt_started.elapsed().as_secs_f64() * 1000.0);
        }
        let failure = match sent {
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                let retry_status = matches!(status, 502..=504)
                    && idempotent
                    && bodiless
                    && attempt + 1 < attempts
                    && tokio::time::Instant::now() < plan.deadline;
                if retry_status {
                    settle(true, permit);
                    label("status_5xx");
                    state.end();
                    drop(lease);
                    body = Some(Empty::new().map_err(|never| match never {}).boxed());
                    last = Some(ProxyError::UpstreamClosed);
                    continue;
                }
                settle(status >= 500, permit);
                label(if status >= 500 {
                    "status_5xx"
                } else {
                    "success"
                });
                return Ok(downstream_response(
                    resp,
                    lease,
                    state,
                    guard,
                    parts.method == Method::HEAD,
                ));
            }
            // The client's body was cut off (too large or stalled): the client's fault, not
            // the target's, and answered as such.
            Ok(Err(_)) if verdict.cut().is_some() => {
                state.end();
                if let Some(p) = permit {
                    drop(p);
                }
                return Err(match verdict.cut() {
                    Some(Cut::TooLarge) => ProxyError::BodyTooLarge,
                    _ => ProxyError::RequestTimeout,
                });
            }
            Ok(Err(SendError::Hyper(e))) if e.is_parse() || e.is_parse_too_large() => {
                Attempt::ProtocolError
            }
            Ok(Err(_)) => Attempt::Closed,
            Err(_) => Attempt::Timeout,
        };
        state.end();
        settle(true, permit);
        label(failure.label());
        let retry = idempotent && bodiless && tokio::time::Instant::now() < plan.deadline;
        warn_attempt(
            &plan,
            &target.address,
            failure,
            attempt,
            retry && attempt + 1 < attempts,
        );
        last = Some(failure.answer());
        if !retry {
            break;
        }
        body = Some(Empty::new().map_err(|never| match never {}).boxed());
    }
    Err(last.unwrap_or(ProxyError::NoHealthyUpstream))
}

fn warn_attempt(plan: &Plan<'_>, target: &str, a: Attempt, attempt: u32, will_retry: bool) {
    tracing::warn!(
        correlation_id = plan.corr.to_str().unwrap_or_default(),
        route = plan.route,
        upstream = plan.upstream,
        target,
        outcome = a.label(),
        attempt = attempt + 1,
        will_retry,
        "upstream attempt failed"
    );
}

/// An upgrade request: one attempt on a fresh HTTP/1.1 connection, never retried
/// (SEN-R17); h2c upstreams cannot carry it.
async fn forward_upgrade(
    p: &ProxyRt,
    req: Request<Incoming>,
    plan: &Plan<'_>,
    trace: &mut Trace,
) -> Result<Response<ProxyBody>, ProxyError> {
    if p.protocol == UpstreamProtocol::H2c {
        return Err(ProxyError::UpgradeNotSupported);
    }
    let Some((i, _)) = choose(p, &[], &[], plan) else {
        return Err(ProxyError::NoHealthyUpstream);
    };
    let target = &p.targets[i];
    trace.attempts = 1;
    trace.target = Some(target.address.clone());
    let (parts, body) = req.into_parts();
    let head = upstream_head(&parts, plan, p.protocol, true);
    let req = Request::from_parts(parts, body);
    let connect = Duration::from_secs(p.timeouts.connect_secs);
    upgrade::forward(
        target.addr,
        req,
        head,
        connect,
        plan.metrics.open_tunnels.clone(),
    )
    .await
}

/// The eligible target the policy picks (SEN-R26..R28) and whether it is the failure-mode
/// open fallback: weight > 0, healthy, not refused by its breaker for this attempt, and not
/// tried yet while an untried one is eligible; under failure-mode open, any weight > 0
/// target when none is eligible. A chosen target without a free slot gives way to the next
/// eligible one that has one.
fn choose(
    p: &ProxyRt,
    tried: &[usize],
    refused: &[usize],
    plan: &Plan<'_>,
) -> Option<(usize, bool)> {
    let client = plan.conn.peer.ip();
    for t in &p.targets {
        health::passive_cooldown(&t.state, &t.id, &p.passive, p.active_checks, plan.metrics);
    }
    let views = |health: bool, skip_tried: bool| -> Vec<TargetView<'_>> {
        p.targets
            .iter()
            .enumerate()
            .map(|(i, t)| TargetView {
                weight: t.weight,
                in_flight: t.state.in_flight.load(Ordering::Relaxed),
                eligible: t.weight > 0
                    && (!health || (t.healthy() && !refused.contains(&i)))
                    && !(skip_tried && tried.contains(&i)),
                address: &t.address,
            })
            .collect()
    };
    let pick = |v: &[TargetView<'_>]| {
        let i = p.balancer.pick(v, client)?;
        if p.targets[i].pool.has_free_slot() {
            return Some(i);
        }
        let n = v.len();
        (1..n)
            .map(|k| (i + k) % n)
            .find(|&j| v[j].eligible && p.targets[j].pool.has_free_slot())
            .or(Some(i))
    };
    if let Some(i) = pick(&views(true, true)) {
        return Some((i, false));
    }
    if let Some(i) = pick(&views(true, false)) {
        return Some((i, false));
    }
    match plan.failure_mode {
        FailureMode::Closed => None,
        FailureMode::Open => pick(&views(false, false)).map(|i| (i, true)),
    }
}

/// The request head sent upstream: method, origin-form target, end-to-end headers only,
/// `X-Forwarded-*` and both correlation headers (SEN-R15).
fn upstream_head(
    parts: &http::request::Parts,
    plan: &Plan<'_>,
    protocol: UpstreamProtocol,
    keep_upgrade: bool,
) -> http::request::Parts {
    let (mut head, ()) = Request::new(()).into_parts();
    head.method = parts.method.clone();
    let pq = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    head.uri = match protocol {
        UpstreamProtocol::Http1 => pq.parse().unwrap_or_else(|_| Uri::from_static("/")),
        // h2 needs scheme and authority for its pseudo-headers.
        UpstreamProtocol::H2c => {
            let authority = plan.host.unwrap_or("localhost");
            format!("http://{authority}{pq}")
                .parse()
                .unwrap_or_else(|_| Uri::from_static("/"))
        }
    };
    let mut h = parts.headers.clone();
    forward::strip_hop_by_hop(&mut h, keep_upgrade, protocol == UpstreamProtocol::H2c);
    if !h.contains_key(header::HOST)
        && let Some(a) = parts.uri.authority()
        && let Ok(v) = HeaderValue::from_str(a.as_str())
    {
        // From HTTP/2 or absolute-form, the authority becomes Host.
        h.insert(header::HOST, v);
    }
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
    forward::set_forwarded(
        &mut h,
        &plan.conn.forwarded_for,
        plan.conn.https,
        authority.as_deref(),
    );
    forward::set_correlation(&mut h, plan.corr);
    head.headers = h;
    head
}

/// The upstream response re-framed for the client: hop-by-hop headers removed, the body
/// streamed frame by frame, the pool slot and connection returned when it ends.
fn downstream_response(
    resp: Response<Incoming>,
    lease: Lease,
    state: Arc<TargetState>,
    guard: InFlight,
    head: bool,
) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    forward::strip_hop_by_hop(&mut parts.headers, false, false);
    let body = LeaseBody {
        inner: body,
        lease: Some(lease),
        state,
        _guard: guard,
        done: head,
    };
    Response::from_parts(parts, body.boxed())
}

/// A response body that hands its connection back to the pool at the end of the stream,
/// and closes it if the exchange is cut short.
struct LeaseBody {
    inner: Incoming,
    lease: Option<Lease>,
    state: Arc<TargetState>,
    _guard: InFlight,
    done: bool,
}

impl LeaseBody {
    fn finish(&mut self, clean: bool) {
        if let Some(lease) = self.lease.take() {
            self.state.end();
            if clean {
                lease.release();
            }
        }
    }
}

impl http_body::Body for LeaseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            self.finish(true);
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                self.finish(true);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                self.finish(false);
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(Some(Ok(frame))) => {
                // hyper stops polling once a sized body is complete, so the end is noticed
                // here rather than waiting for a `None` that may never be asked for.
                if self.inner.is_end_stream() {
                    self.finish(true);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        if self.done {
            http_body::SizeHint::with_exact(0)
        } else {
            self.inner.size_hint()
        }
    }
}

impl Drop for LeaseBody {
    fn drop(&mut self) {
        self.finish(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_and_nul_are_found_in_any_spelling() {
        for bad in [
            "/a/../b",
            "/a/./b",
            "/a/%2E%2E/b",
            "/a/%2e./b",
            "/.",
            "/x%00",
            "/a/..",
        ] {
            assert!(has_dot_segment_or_nul(bad), "{bad}");
        }
        for good in ["/a/b", "/a/.hidden", "/a/..b", "/a/b.", "/%2e%2ex"] {
            assert!(!has_dot_segment_or_nul(good), "{good}");
        }
    }
}
