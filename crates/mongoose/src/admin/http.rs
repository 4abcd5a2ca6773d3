//! The admin listener (§3.1): `/healthz`, `/readyz`, `/metrics` and the command routes.
//!
//! `/metrics` is the ron-metrics GET-only exposer over this server's registry. `/healthz`
//! and `/readyz` are answered here from the mongoose health model, because their keys
//! (`backlog:F/G`, case-preserving feed names) do not fit ron-kernel's check names.
//! Command routes: loopback peers only unless a token is configured; with a token every
//! request needs `Authorization: Bearer <token>` (constant-time compare). 50 requests per
//! second per peer IP. Every command is logged as `admin_command` and counted.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Extension, Router};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use ron_kernel::{CorrId, CorrIdConfig, KeyedLimiter, LimiterConfig};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{Admin, AdminError, MAX_ARG_BYTES, MAX_ARGS, MAX_BODY_BYTES, RATE_PER_SEC};

/// The correlation header (§3.1).
pub const CORR_HEADER: &str = "x-correlation-id";

struct AdminHttp {
    admin: Arc<Admin>,
    limiter: KeyedLimiter<IpAddr>,
}

type Shared = Arc<AdminHttp>;

fn corr(headers: &HeaderMap) -> CorrId {
    let cfg = CorrIdConfig {
        header: http::HeaderName::from_static(CORR_HEADER),
        punct: "._-",
        ..CorrIdConfig::default()
    };
    CorrId::from_header(headers.get(CORR_HEADER), &cfg)
}

fn json_response(status: StatusCode, body: &Value, corr: &CorrId) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(corr.as_str()) {
        h.insert(CORR_HEADER, v);
    }
    r
}

fn error_response(e: &AdminError, corr: &CorrId) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = json_response(
        status,
        &json!({"code": e.code, "message": e.message, "corr_id": corr.as_str()}),
        corr,
    );
    if e.status == 401 {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if e.status == 429 || e.status == 503 {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    // Length is not secret; the bytes are compared without an early exit.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who may run commands: Ok, or the 401/403/429 to answer.
fn admit(st: &AdminHttp, peer: Option<SocketAddr>, headers: &HeaderMap) -> Result<(), AdminError> {
    let ip = peer.map(|p| p.ip());
    if let Some(ip) = ip
        && !st.limiter.check(&ip).allowed
    {
        return Err(AdminError::new(
            429,
            "rate_limited",
            format!("more than {RATE_PER_SEC} admin requests per second"),
        ));
    }
    match st.admin.token() {
        Some(tok) => {
            let sent = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim());
            match sent {
                Some(t) if ct_eq(t.as_bytes(), tok.as_bytes()) => Ok(()),
                _ => Err(AdminError::new(
                    401,
                    "unauthorized",
                    "a valid bearer token is required",
                )),
            }
        }
        // A router mounted without ConnectInfo cannot prove a loopback peer.
        None if ip.is_some_and(|ip| ip.is_loopback()) => Ok(()),
        None => Err(AdminError::new(
            403,
            "forbidden",
            "admin commands are loopback-only unless admin.token is set",
        )),
    }
}

fn peer_of(req_peer: Option<Extension<ConnectInfo<SocketAddr>>>) -> Option<SocketAddr> {
    req_peer.map(|Extension(ConnectInfo(a))| a)
}

async fn list(
    State(st): State<Shared>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let corr = corr(&headers);
    if let Err(e) = admit(&st, peer_of(peer), &headers) {
        return error_response(&e, &corr);
    }
    let cmds: Vec<Value> = st
        .admin
        .list()
        .into_iter()
        .map(|(n, a, h)| json!({"name": n, "args": a, "help": h}))
        .collect();
    json_response(StatusCode::OK, &json!({"commands": cmds}), &corr)
}

/// Reads `{"args":[..]}`; an empty body means no arguments.
fn parse_args(headers: &HeaderMap, body: &Bytes) -> Result<Vec<String>, AdminError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(AdminError::new(
            413,
            "payload_too_large",
            format!("command bodies are at most {MAX_BODY_BYTES} bytes"),
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(AdminError::new(
            415,
            "unsupported_media_type",
            "command bodies are application/json",
        ));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| AdminError::new(400, "bad_json", format!("body is not JSON: {e}")))?;
    let Some(obj) = v.as_object() else {
        return Err(AdminError::new(400, "bad_json", "body must be an object"));
    };
    if let Some(k) = obj.keys().find(|k| *k != "args") {
        return Err(AdminError::new(
            400,
            "bad_args",
            format!("unknown key {k:?} (expected args)"),
        ));
    }
    let Some(args) = obj.get("args") else {
        return Ok(Vec::new());
    };
    let Some(arr) = args.as_array() else {
        return Err(AdminError::new(
            400,
            "bad_args",
            "args must be an array of strings",
        ));
    };
    if arr.len() > MAX_ARGS {
        return Err(AdminError::new(
            400,
            "bad_args",
            format!("at most {MAX_ARGS} arguments"),
        ));
    }
    arr.iter()
        .map(|a| match a.as_str() {
            Some(s) if s.len() <= MAX_ARG_BYTES => Ok(s.to_string()),
            Some(_) => Err(AdminError::new(
                400,
                "bad_args",
                format!("arguments are at most {MAX_ARG_BYTES} bytes"),
            )),
            None => Err(AdminError::new(400, "bad_args", "args must be strings")),
        })
        .collect()
}

async fn command(
    State(st): State<Shared>,
    Path(name): Path<String>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let corr = corr(&headers);
    let peer = peer_of(peer);
    let admin = st.admin.clone();
    let result = match admit(&st, peer, &headers) {
        Err(e) => Err(e),
        Ok(())
            if !admin
                .health()
                .report()
                .missing
                .iter()
                .all(|m| m != "shutting_down") =>
        {
            Err(AdminError::new(
                503,
                "shutting_down",
                "the server is shutting down",
            ))
        }
        Ok(()) => match parse_args(&headers, &body) {
            Err(e) => Err(e),
            Ok(args) => {
                let (a, n, ar) = (admin.clone(), name.clone(), args.clone());
                // Routed commands wait on a group thread; keep that off the I/O workers.
                let out = tokio::task::spawn_blocking(move || a.exec(&n, &ar)).await;
                let out = out.unwrap_or_else(|_| {
                    Err(AdminError::new(
                        500,
                        "command_failed",
                        "the command panicked",
                    ))
                });
                log_and_count(&admin, &name, &args, peer, &corr, &out, started);
                return match out {
                    Ok(output) => json_response(
                        StatusCode::OK,
                        &json!({"command": name, "ok": true, "output": output, "corr_id": corr.as_str()}),
                        &corr,
                    ),
                    Err(e) => error_response(&e, &corr),
                };
            }
        },
    };
    log_and_count(&admin, &name, &[], peer, &corr, &result, started);
    match result {
        Ok(v) => json_response(StatusCode::OK, &v, &corr),
        Err(e) => error_response(&e, &corr),
    }
}

fn log_and_count(
    admin: &Admin,
    name: &str,
    args: &[String],
    peer: Option<SocketAddr>,
    corr: &CorrId,
    out: &Result<Value, AdminError>,
    started: Instant,
) {
    let (outcome, status) = match out {
        Ok(_) => ("ok", 200),
        Err(e) => (e.code, e.status),
    };
    admin.count(name, outcome);
    tracing::info!(
        corr_id = corr.as_str(),
        peer = peer.map(|p| p.to_string()).unwrap_or_default(),
        command = name,
        args = ?args,
        outcome,
        status,
        duration_ms = started.elapsed().as_millis() as u64,
        "admin_command"
    );
}

async fn healthz(State(st): State<Shared>) -> Response {
    let r = st.admin.health().report();
    let body = json!({"alive": r.alive, "stale": r.stale});
    let status = if r.alive {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    plain_json(status, &body)
}

async fn readyz(State(st): State<Shared>) -> Response {
    let r = st.admin.health().report();
    let body = super::readiness_json(&r);
    if r.ready {
        return plain_json(StatusCode::OK, &body);
    }
    let mut resp = plain_json(StatusCode::SERVICE_UNAVAILABLE, &body);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(r.retry_after));
    resp
}

fn plain_json(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn method_not_allowed(req: Request) -> Response {
    let allow = if req.uri().path().starts_with("/admin/commands/") {
        "POST"
    } else {
        "GET, HEAD"
    };
    let corr = corr(req.headers());
    let mut r = error_response(
        &AdminError::new(
            405,
            "method_not_allowed",
            "method not allowed on this route",
        ),
        &corr,
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

async fn not_found(req: Request) -> Response {
    let corr = corr(req.headers());
    error_response(&AdminError::new(404, "not_found", "no such route"), &corr)
}

fn with_405(m: MethodRouter<Shared>) -> MethodRouter<Shared> {
    m.fallback(method_not_allowed)
}

/// The admin router: mount it in a host, or serve it with [`serve`].
pub fn router(admin: Arc<Admin>, metrics: &Arc<ron_metrics::Metrics>) -> Router {
    let limiter = KeyedLimiter::new(LimiterConfig::new(
        RATE_PER_SEC,
        Duration::from_secs(1),
        RATE_PER_SEC,
    ))
    .expect("constant limiter config");
    let st = Arc::new(AdminHttp { admin, limiter });
    let mount = ron_metrics::MountOptions {
        healthz: None,
        readyz: None,
        ..Default::default()
    };
    let exposition = metrics.router(ron_kernel::HealthState::new(), mount);
    Router::new()
        .route("/healthz", with_405(get(healthz)))
        .route("/readyz", with_405(get(readyz)))
        .route("/admin/commands", with_405(get(list)))
        .route("/admin/commands/{name}", with_405(post(command)))
        .fallback(not_found)
        .with_state(st)
        .merge(exposition)
}

/// Binds `addr` now (so a taken port fails startup) and serves `router` on `io` until
/// `stop` is cancelled; returns the bound address.
pub fn serve(
    router: Router,
    addr: SocketAddr,
    io: &tokio::runtime::Handle,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let bound = std_listener.local_addr()?;
    let _guard = io.enter();
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    io.spawn(async move {
        let app = router.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
    Ok(bound)
}
