//! The API request pipeline (spec §4.2) and routes (§3.1): corr id, probes, draining,
//! body cap, method, readiness gate, RPS token, inflight permit, then the route under the
//! request deadline. Every answer gets the always-present headers, is counted in
//! `http_requests_total` and `request_latency_seconds`, and is access-logged per config.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::FutureExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use ron_kernel::{CorrId, CorrIdConfig};
use ron_metrics::{Endpoint, ExposerService, MountOptions};
use tower_service::Service;
use tracing::Instrument;

use crate::app::{App, Asset};
use crate::config::AccessLog;
use crate::cors;
use crate::errors::EdgeError;
use crate::metrics::{CONTENT_ENDPOINTS, CacheKind, METHODS, ROUTES};
use crate::paths::{self, PathError};
use crate::respond::{self, Representation};
use crate::stored;
use crate::tiles;

/// Response body type: zero-copy chunks, or a probe body from ron-metrics.
pub type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

const X_CORR_ID: HeaderName = HeaderName::from_static("x-corr-id");
const X_REASON: HeaderName = HeaderName::from_static("x-reason");
const ASSETS_PREFIX: &str = "/edge/assets/";

/// Route indexes into [`ROUTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Assets = 0,
    Tiles = 1,
    TileJson = 2,
    Cas = 3,
    Live = 4,
    Healthz = 5,
    Readyz = 6,
    Other = 7,
}

/// Probe handlers from ron-metrics, mounted on the API listener.
pub struct Probes {
    healthz: ExposerService,
    readyz: ExposerService,
}

impl Probes {
    /// The ron-metrics `/healthz` and `/readyz` handlers over `app`'s HealthState.
    pub fn new(app: &App) -> Probes {
        let mount = MountOptions::default();
        let m = &app.metrics.metrics;
        Probes {
            healthz: m.service(app.health.clone(), Endpoint::Healthz, &mount),
            readyz: m.service(app.health.clone(), Endpoint::Readyz, &mount),
        }
    }
}

/// Per-request facts for accounting and the access log.
pub(crate) struct Ctx {
    pub(crate) corr: CorrId,
    started: Instant,
    route: Route,
    method_idx: usize,
    peer: SocketAddr,
    /// The request URI (a cheap clone); decoded for the access log only when a line is
    /// written, so the hot path formats nothing.
    uri: http::Uri,
    range: Option<HeaderValue>,
}

/// Handles one API request.
pub async fn handle(
    app: Arc<App>,
    probes: Arc<Probes>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let corr_cfg = CorrIdConfig::default();
    let corr = CorrId::from_header(req.headers().get(&corr_cfg.header), &corr_cfg);
    let method_idx = match *req.method() {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::OPTIONS => 2,
        _ => 3,
    };
    let path = req.uri().path();
    let route = if path == "/healthz" {
        Route::Healthz
    } else if path == "/readyz" {
        Route::Readyz
    } else if path.starts_with(ASSETS_PREFIX) {
        Route::Assets
    } else if path.starts_with(stored::CAS_PREFIX) {
        Route::Cas
    } else if path.starts_with(stored::LIVE_PREFIX) {
        Route::Live
    } else if let Some(rest) = path.strip_prefix(tiles::TILES_PREFIX) {
        if rest.ends_with(".json") && !rest.contains('/') {
            Route::TileJson
        } else {
            Route::Tiles
        }
    } else {
        Route::Other
    };
    let mut ctx = Ctx {
        corr: corr.clone(),
        started,
        route,
        method_idx,
        peer,
        uri: req.uri().clone(),
        range: req.headers().get(header::RANGE).cloned(),
    };

    // Probes bypass every cap, and stay up while draining.
    if matches!(route, Route::Healthz | Route::Readyz) {
        let mut svc = if route == Route::Healthz {
            probes.healthz.clone()
        } else {
            probes.readyz.clone()
        };
        let resp = match svc.call(req).await {
            Ok(r) => r.map(|b| b.map_err(|e| e.into()).boxed_unsync()),
            Err(never) => match never {},
        };
        finish(&app, &ctx, resp.status(), 0, None, None, None);
        return Ok(resp);
    }

    let resp = match admit_and_route(&app, req, &mut ctx).await {
        Ok((answer, chunks_len)) => {
            let status = answer.status();
            // A 416 is rendered inside the route (it keeps the representation's headers),
            // so its reason reaches the access log through the `X-Reason` it carries.
            finish(
                &app,
                &ctx,
                status,
                chunks_len,
                None,
                answer.headers().get(X_REASON).and_then(|v| v.to_str().ok()),
                answer.headers().get(header::ETAG),
            );
            answer
        }
        Err(e) => {
            let resp = error_response(&app, e, &ctx.corr, HeaderMap::new());
            finish(&app, &ctx, resp.status(), 0, Some(e), None, None);
            resp
        }
    };
    Ok(with_common_headers(
        resp,
        &ctx.corr,
        app.draining.load(Ordering::Acquire),
    ))
}

/// Steps 4-10 of the admission pipeline, then the route.
async fn admit_and_route(
    app: &Arc<App>,
    req: Request<Incoming>,
    ctx: &mut Ctx,
) -> Result<(Response<Body>, u64), EdgeError> {
    if app.draining.load(Ordering::Acquire) {
        return Err(EdgeError::Draining);
    }
    let cfg = app.config.load_full();
    let (parts, body) = req.into_parts();
    discard_body(&parts.headers, body, cfg.ingress.max_body_bytes).await?;
    if parts.method == Method::OPTIONS && ctx.route != Route::Other {
        let headers = cors::preflight(&cfg.security.cors_allow_origins, &parts.headers)?;
        let mut resp = Response::new(chunks_body(Vec::new()));
        *resp.status_mut() = StatusCode::NO_CONTENT;
        *resp.headers_mut() = headers;
        return Ok((resp, 0));
    }
    if !(parts.method == Method::GET || parts.method == Method::HEAD) {
        return Err(EdgeError::Method);
    }
    if parts.version == http::Version::HTTP_11 && !parts.headers.contains_key(header::HOST) {
        return Err(EdgeError::BadRequest);
    }
    if !app.mounted.load(Ordering::Acquire) {
        return Err(EdgeError::NotReady);
    }
    if ctx.route == Route::Other {
        return Err(EdgeError::NotFound);
    }
    if let Err(wait) = app.rate.try_take() {
        return Err(EdgeError::RateLimit(wait.as_secs_f64().ceil() as u64));
    }
    let Some(_permit) = app.inflight.try_acquire() else {
        let endpoint = CONTENT_ENDPOINTS[(ctx.route as usize).min(CONTENT_ENDPOINTS.len() - 1)];
        app.metrics.busy.with_label_values(&[endpoint]).inc();
        return Err(EdgeError::Busy);
    };
    app.metrics.inflight.set(app.inflight.held() as i64);
    let budget = Duration::from_secs(u64::from(cfg.ingress.timeout_secs));
    let deadline = ctx.started + budget;
    // A panicking handler answers 500 `internal`; the connection and process go on.
    // The request span exists only when debug logging is on: spans carrying a corr id are
    // always recorded by the log layer, which would cost every request a registry entry.
    let span = if tracing::enabled!(tracing::Level::DEBUG) {
        tracing::debug_span!("svc.edge.http", corr_id = %ctx.corr)
    } else {
        tracing::Span::none()
    };
    let guarded = AssertUnwindSafe(route(app, &parts, ctx, &cfg, deadline))
        .catch_unwind()
        .instrument(span);
    let routed = match within(deadline, guarded).await {
        Some(Ok(r)) => Ok(r),
        Some(Err(panic)) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(event = "panic", corr_id = %ctx.corr, panic = %what, "panic");
            Ok(Err(EdgeError::Internal))
        }
        None => Err(()),
    };
    app.metrics.inflight.set(app.inflight.held() as i64 - 1);
    match routed {
        Ok(Ok((mut resp, n))) => {
            cors::decorate(
                &cfg.security.cors_allow_origins,
                &parts.headers,
                resp.headers_mut(),
            );
            Ok((resp, n))
        }
        Ok(Err(e)) => {
            if e == EdgeError::Busy {
                // The fill queue was full (the inflight cap is counted above).
                let endpoint = CONTENT_ENDPOINTS[ctx.route as usize];
                app.metrics.busy.with_label_values(&[endpoint]).inc();
            }
            Err(e)
        }
        Err(_) => {
            let op = if ctx.route == Route::Live {
                "fill"
            } else {
                "read"
            };
            app.metrics.io_timeouts.with_label_values(&[op]).inc();
            Err(EdgeError::Timeout)
        }
    }
}

/// Runs `fut` until it completes or `deadline` passes (`None`). Most routes finish on
/// their first poll (a mapped file, a tile, a 304), so the deadline timer is armed only for
/// a future that actually waits: a timer entry registered and cleared per request is
/// measurable on the revalidation path.
async fn within<F: Future>(deadline: Instant, fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(out) => Some(out),
        Poll::Pending => tokio::time::timeout_at(deadline.into(), fut).await.ok(),
    }
}

async fn route(
    app: &Arc<App>,
    parts: &http::request::Parts,
    ctx: &mut Ctx,
    cfg: &crate::config::EdgeConfig,
    deadline: Instant,
) -> Result<(Response<Body>, u64), EdgeError> {
    let rep = match ctx.route {
        Route::Assets => asset(app, parts).await?,
        Route::Tiles => match tiles::tile(app, parts, cfg)? {
            Some(rep) => rep,
            None => return Ok((no_content(app), 0)),
        },
        Route::TileJson => tiles::tilejson(app, parts, cfg)?,
        Route::Cas => stored::cas(app, parts).await?,
        Route::Live => stored::live(app, parts, deadline).await?,
        _ => return Err(EdgeError::NotFound),
    };
    Ok(represent(app, &rep, parts, &ctx.corr))
}

/// An absent tile: 204 with the tile Cache-Control and no body.
fn no_content(app: &App) -> Response<Body> {
    let mut resp = Response::new(chunks_body(Vec::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        (**app.pack_cache_control.load()).clone(),
    );
    resp
}

/// Maps a path error to its answer.
pub(crate) fn path_error(e: PathError) -> EdgeError {
    match e {
        PathError::TooLong => EdgeError::UriTooLong,
        PathError::Bad(_) => EdgeError::BadPath,
        PathError::Hidden => EdgeError::NotFound,
    }
}

/// `/edge/assets/{path}`: a directory-pack file or a whole archive.
async fn asset(app: &Arc<App>, parts: &http::request::Parts) -> Result<Representation, EdgeError> {
    let raw = &parts.uri.path()[ASSETS_PREFIX.len()..];
    let key = paths::normalize(raw).map_err(path_error)?;
    let packs = app.packs.load_full();
    let cache_control = (**app.pack_cache_control.load()).clone();
    let file = match packs.assets.get(key.as_ref()) {
        Some(Asset::File(f)) => f.clone(),
        Some(Asset::Archive(a)) => {
            app.metrics.hit(CacheKind::Pack);
            return Ok(Representation {
                body: a.archive.bytes().clone(),
                etag: a.etag.clone(),
                last_modified: Some((a.last_modified, a.last_modified_header.clone())),
                content_type: HeaderValue::from_static(crate::mime::for_path(&a.file_name)),
                cache_control,
                vary_accept_encoding: false,
                content_encoding: None,
            });
        }
        None => {
            app.metrics.miss(CacheKind::Pack);
            return Err(EdgeError::NotFound);
        }
    };
    let opened = if file.is_open() {
        file.open(&app.budget)
    } else {
        // The first open maps (and maybe re-hashes) the file: keep it off the runtime.
        let (f, a) = (file.clone(), app.clone());
        tokio::task::spawn_blocking(move || f.open(&a.budget))
            .await
            .map_err(|_| EdgeError::Internal)?
    };
    let opened = opened.map_err(|e| match e {
        crate::dirpack::ServeError::Integrity => {
            app.metrics.integrity.with_label_values(&["pack"]).inc();
            EdgeError::Integrity
        }
        crate::dirpack::ServeError::Disabled => EdgeError::NotFound,
        crate::dirpack::ServeError::Io => EdgeError::Io,
    })?;
    app.metrics.hit(CacheKind::Pack);
    Ok(Representation {
        body: opened.body,
        etag: opened.etag,
        last_modified: Some((file.last_modified, file.last_modified_header.clone())),
        content_type: HeaderValue::from_static(file.content_type),
        cache_control,
        vary_accept_encoding: false,
        content_encoding: None,
    })
}

/// Runs preconditions and Range and builds the response.
fn represent(
    app: &App,
    rep: &Representation,
    parts: &http::request::Parts,
    corr: &CorrId,
) -> (Response<Body>, u64) {
    let ans = respond::answer(rep, &parts.method, &parts.headers, SystemTime::now());
    if let Some(result) = ans.range_result {
        app.metrics.ranges.with_label_values(&[result]).inc();
        if tracing::enabled!(tracing::Level::DEBUG) {
            let range = log_range(parts.headers.get(header::RANGE));
            let _span = tracing::debug_span!("svc.edge.range", range = %range).entered();
            if result == "malformed" {
                tracing::debug!(event = "range_malformed", range = %range, "range_malformed");
            } else {
                tracing::debug!(event = "range", result, "range");
            }
        }
    }
    if let Some(e) = ans.error {
        return (error_response(app, e, corr, ans.headers), 0);
    }
    let len: u64 = ans.chunks.iter().map(|c| c.len() as u64).sum();
    let mut resp = Response::new(chunks_body(ans.chunks));
    *resp.status_mut() = ans.status;
    *resp.headers_mut() = ans.headers;
    (resp, len)
}

fn chunks_body(chunks: Vec<Bytes>) -> Body {
    match chunks.len() {
        0 => Empty::new().map_err(|never| match never {}).boxed_unsync(),
        1 => Full::new(chunks.into_iter().next().unwrap_or_default())
            .map_err(|never| match never {})
            .boxed_unsync(),
        _ => {
            let frames = futures_util::stream::iter(
                chunks
                    .into_iter()
                    .map(|c| Ok::<_, Infallible>(hyper::body::Frame::data(c))),
            );
            http_body_util::StreamBody::new(frames)
                .map_err(|never| match never {})
                .boxed_unsync()
        }
    }
}

/// Reads and discards a request body, refusing one over `cap` (declared or streamed).
async fn discard_body(headers: &HeaderMap, mut body: Incoming, cap: u64) -> Result<(), EdgeError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap) {
        return Err(EdgeError::BodyTooLarge);
    }
    let mut seen = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(EdgeError::BadRequest);
        };
        if let Some(d) = frame.data_ref() {
            seen += d.len() as u64;
            if seen > cap {
                return Err(EdgeError::BodyTooLarge);
            }
        }
    }
    Ok(())
}

/// The JSON error answer with `X-Reason`, `no-store` and `Retry-After`.
fn error_response(app: &App, e: EdgeError, corr: &CorrId, extra: HeaderMap) -> Response<Body> {
    if let Some(reason) = e.reason() {
        app.metrics.rejected.with_label_values(&[reason]).inc();
    }
    let body = format!(
        "{{\"code\":\"{}\",\"message\":\"{}\",\"corr_id\":\"{}\"}}",
        e.code(),
        e.message(),
        corr
    );
    let mut resp = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() =
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.extend(extra);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(reason) = e.reason() {
        h.insert(X_REASON, HeaderValue::from_static(reason));
    }
    if let Some(s) = e.retry_after() {
        h.insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    if e == EdgeError::Method {
        h.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    if e == EdgeError::Draining {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

fn with_common_headers(mut resp: Response<Body>, corr: &CorrId, draining: bool) -> Response<Body> {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(corr.as_str()) {
        h.insert(X_CORR_ID, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if draining {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// The decoded path for a log line (the raw path when it does not decode), ≤ 256 chars,
/// never the query string.
fn log_path(raw: &str) -> String {
    let decoded = paths::normalize(raw.trim_start_matches('/'))
        .map(|p| format!("/{p}"))
        .unwrap_or_else(|_| raw.to_owned());
    decoded.chars().take(256).collect()
}

/// The Range header for a log line, ≤ 128 chars.
fn log_range(range: Option<&HeaderValue>) -> String {
    range
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(128).collect())
        .unwrap_or_default()
}

/// Counts the answer and writes the access-log line the config asks for. The line's
/// `reason` is `err`'s, else `x_reason` (an error answered from inside a route).
fn finish(
    app: &App,
    ctx: &Ctx,
    status: StatusCode,
    bytes_out: u64,
    err: Option<EdgeError>,
    x_reason: Option<&str>,
    etag: Option<&HeaderValue>,
) {
    let route = ROUTES[ctx.route as usize];
    let method = METHODS[ctx.method_idx];
    let m = &app.metrics;
    m.count_request(ctx.route as usize, ctx.method_idx, status);
    m.latency(ctx.route as usize, ctx.method_idx)
        .observe(ctx.started.elapsed().as_secs_f64());
    if bytes_out > 0 {
        m.bytes(ctx.route as usize, bytes_out);
    }
    let log = match app.config.load().access_log {
        AccessLog::Off => false,
        AccessLog::Errors => status.as_u16() >= 400,
        AccessLog::All => true,
    };
    if log {
        tracing::info!(
            event = "request",
            route,
            method,
            status = status.as_u16(),
            reason = err.and_then(EdgeError::reason).or(x_reason).unwrap_or(""),
            detail = err.and_then(EdgeError::detail).unwrap_or(""),
            corr_id = %ctx.corr,
            peer_addr = %ctx.peer,
            mode = app.config.load().edge.mode.as_str(),
            latency_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
            bytes_out,
            etag = etag.and_then(|v| v.to_str().ok()).unwrap_or("").trim_matches('"'),
            range = %log_range(ctx.range.as_ref()),
            path = %log_path(ctx.uri.path()),
            "request"
        );
    }
}
