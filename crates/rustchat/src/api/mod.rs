//! HTTP routing: one function assembles the listener's stack, top to bottom (CHAT-R6).
//!
//! Layers, outermost first: correlation id (`X-Request-Id` kept when it matches
//! `[A-Za-z0-9._-]{1,64}`, else generated; echoed), security headers, then per route the
//! request observer (metrics by matched route template, `request completed` log line).
//! Unknown paths are 404 JSON; known paths with another method 405 JSON.

pub mod cors;
pub mod json;
pub mod render;
pub mod timeout;
pub mod v1;
pub mod v4;
pub mod validate;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderName, HeaderValue, StatusCode, header};
use ron_kernel::{CorrIdConfig, CorrIdLayer};

use crate::error::ApiError;
use crate::health::{self, Readiness};
use crate::metrics::{ChatMetrics, ROUTE_UNMATCHED, ROUTE_V4_FALLBACK};
use crate::state::AppState;

/// Header carrying the correlation id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// What the observer needs; shared by the boot and the serving router.
#[derive(Clone)]
pub struct Observe {
    /// Metric families.
    pub metrics: Arc<ChatMetrics>,
    /// `log.slow_request_ms`.
    pub slow_ms: u64,
    /// `log.access=all`.
    pub log_all: bool,
}

/// Health and metrics routes, available from the first second (before the database).
pub fn health_routes(readiness: Arc<Readiness>, metrics: Arc<ChatMetrics>) -> Router {
    let probes = Router::new()
        .route("/api/v1/health/live", get(health::live))
        .route("/healthz", get(health::live))
        .route("/api/v1/health/ready", get(health::ready))
        .route("/readyz", get(health::ready))
        .with_state(readiness.clone());
    let m = Router::new()
        .route("/api/v1/health/metrics", get(metrics_text))
        .route("/api/v1/health/stats", get(stats))
        .with_state((metrics, readiness));
    probes.merge(m)
}

async fn metrics_text(State((m, r)): State<(Arc<ChatMetrics>, Arc<Readiness>)>) -> Response {
    if let Some(store) = r.store.lock().clone() {
        crate::server::record_pool(&m, &store);
    }
    let mut out = Vec::with_capacity(16 * 1024);
    m.metrics
        .encode(None, ron_metrics::Format::Text004, &mut out);
    (
        [(header::CONTENT_TYPE, ron_metrics::CONTENT_TYPE_TEXT)],
        out,
    )
        .into_response()
}

async fn stats(State((m, r)): State<(Arc<ChatMetrics>, Arc<Readiness>)>) -> Response {
    let saturation = r
        .store
        .lock()
        .clone()
        .map(|s| crate::server::saturation_now(&s))
        .unwrap_or(0.0);
    let mut breakers = serde_json::Map::new();
    breakers.insert(
        "database".into(),
        r.db_breaker
            .lock()
            .as_ref()
            .map_or("closed", |b| b.state().as_str())
            .into(),
    );
    // `redis` only when configured (spec §3.3).
    if let Some(c) = r.cluster.lock().as_ref() {
        breakers.insert("redis".into(), c.breaker().state().as_str().into());
    }
    if let Some(oidc) = r.oidc.lock().as_ref() {
        for (name, state) in oidc.breaker_states() {
            breakers.insert(name, state.into());
        }
    }
    axum::Json(serde_json::json!({
        "websocket_connections": m.ws_active.get(),
        // Cluster-wide while Redis answers, else this node's (realtime::presence).
        "active_users": m.active_users.get(),
        "db_pool_saturation": saturation,
        "circuit_breakers": breakers,
        "node_id": m.metrics.base_labels().instance,
        "cluster_nodes": m.cluster_nodes.get(),
    }))
    .into_response()
}

/// The serving router: health, native API, fallbacks, all observed.
pub fn router(st: AppState, readiness: Arc<Readiness>, obs: Observe) -> Router {
    let api = v1::routes()
        .with_state(st.clone())
        .merge(v4::routes(st.clone()))
        .merge(health_routes(readiness, st.metrics.clone()));
    // The embedded UI (CHAT-R11): `/`, `/static/*`, and HTML navigations in the fallback.
    #[cfg(feature = "web-ui")]
    let api = api.merge(crate::web::routes());
    let api = api
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    // The state also travels as an extension, outermost, so every layer written as a
    // plain function (rate limits, security headers, CORS, the 405 fallback) can reach it.
    finish(
        api.layer(middleware::from_fn(timeout::timeout))
            .layer(middleware::from_fn(crate::ratelimit::client_ip_layer))
            .layer(middleware::from_fn(cors::cors)),
        obs,
    )
    .layer(axum::Extension(st))
}

/// The boot router: health and metrics; everything else 503 until the database is ready.
pub fn boot_router(readiness: Arc<Readiness>, obs: Observe) -> Router {
    let r = health_routes(readiness, obs.metrics.clone()).fallback(starting);
    finish(r, obs)
}

/// Contains a handler panic to its request (CHAT-R29): 500 `internal` JSON and an ERROR
/// line with the correlation id; the connection and the process live on.
async fn contain_panics(req: Request, next: Next) -> Response {
    use futures_util::FutureExt;
    let path = req.uri().path().to_string();
    match std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .await
    {
        Ok(resp) => resp,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(path = %path, panic = %what, "handler panicked");
            if path.starts_with("/api/v4/") {
                crate::error::V4Error(ApiError::internal()).into_response()
            } else {
                ApiError::internal().into_response()
            }
        }
    }
}

/// Env var that mounts `GET /api/v1/__test/panic` (the spec reserves `RUSTCHAT_TEST_*` for
/// tests); it exists so the panic containment above is tested against the real binary.
pub const ENV_TEST_PANIC_ROUTE: &str = "RUSTCHAT_TEST_PANIC_ROUTE";

async fn test_panic() -> Response {
    panic!("test panic route")
}

fn finish(r: Router, obs: Observe) -> Router {
    let r = if std::env::var_os(ENV_TEST_PANIC_ROUTE).is_some() {
        r.route("/api/v1/__test/panic", get(test_panic))
    } else {
        r
    };
    let corr = CorrIdConfig {
        header: HeaderName::from_static(REQUEST_ID_HEADER),
        punct: "._-",
        ..CorrIdConfig::default()
    };
    r.layer(middleware::from_fn(contain_panics))
        .layer(middleware::from_fn_with_state(obs, observe))
        .layer(middleware::from_fn(security_headers))
        .layer(CorrIdLayer::new(corr))
}

async fn starting() -> ApiError {
    ApiError::unavailable("starting: database not ready", health::READY_RETRY_AFTER)
}

async fn not_found(req: Request) -> Response {
    // A browser navigating to a UI route (e.g. `/login/complete`) gets the UI's page.
    #[cfg(feature = "web-ui")]
    if let Some(page) = crate::web::page_for(&req) {
        return page;
    }
    drop(req); // read only by the web-ui build
    ApiError::not_found("route").into_response()
}

async fn method_not_allowed(uri: http::Uri, st: Option<axum::Extension<AppState>>) -> Response {
    let e = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    );
    if uri.path().starts_with("/api/v4/") {
        // This fallback runs outside the v4 router's own header layer.
        let mut resp = crate::error::V4Error(e).into_response();
        if let Some(axum::Extension(st)) = st {
            v4::add_headers(&st, &mut resp);
        }
        resp
    } else {
        e.into_response()
    }
}

async fn security_headers(req: Request, next: Next) -> Response {
    let native = req.uri().path().starts_with("/api/v1/");
    // HSTS only in production behind an https site_url (CHAT-R6).
    let hsts = req.extensions().get::<AppState>().is_some_and(|st| {
        let cfg = st.cfg_peek();
        cfg.is_production()
            && cfg
                .site_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
    });
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if native && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Counts and times every response by matched route template and logs `request completed`
/// (INFO when status >= 400 or slow, DEBUG otherwise, INFO always with `log.access=all`).
async fn observe(State(obs): State<Observe>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    // log.* are reloadable: read them per request once the serving state exists.
    let (slow_ms, log_all) = match req.extensions().get::<AppState>() {
        Some(st) => {
            let cfg = st.cfg_peek();
            (
                u64::from(cfg.log.slow_request_ms),
                cfg.log.access == crate::config::AccessLog::All,
            )
        }
        None => (obs.slow_ms, obs.log_all),
    };
    let route = match req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
    {
        Some("/api/v4/{*rest}") | Some("/api/v4") => ROUTE_V4_FALLBACK.to_string(),
        Some(m) => m.to_string(),
        None => ROUTE_UNMATCHED.to_string(),
    };
    let resp = next.run(req).await;
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    let mut buf = itoa::Buffer::new();
    let m = &obs.metrics;
    m.http_requests
        .with_label_values(&[method.as_str(), &route, buf.format(status)])
        .inc();
    m.http_duration
        .with_label_values(&[method.as_str(), &route])
        .observe(elapsed.as_secs_f64());
    let latency_ms = elapsed.as_millis() as u64;
    if log_all || status >= 400 || latency_ms >= slow_ms {
        tracing::info!(method = %method, route = %route, status, latency_ms, "request completed");
    } else {
        tracing::debug!(method = %method, route = %route, status, latency_ms, "request completed");
    }
    resp
}
