//! CORS (CHAT-R30): off unless `security.cors_allowed_origins` lists origins. For a listed
//! `Origin` the response allows it with credentials and exposes the headers clients read;
//! a preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered here with 204.
//! Unlisted origins get no CORS headers, so browsers keep the same-origin rule.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};

use crate::state::AppState;

/// Request headers a listed origin may send.
pub const ALLOW_HEADERS: &str = "Authorization, Content-Type, X-Requested-With, X-CSRF-Token";
/// Response headers a listed origin may read.
pub const EXPOSE_HEADERS: &str = "Token, X-Version-Id, X-Request-Id, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset";
/// How long a browser may cache a preflight answer.
pub const MAX_AGE_SECS: u32 = 600;

/// The CORS layer.
pub async fn cors(req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let allowed = match (&origin, req.extensions().get::<AppState>()) {
        (Some(o), Some(st)) => st
            .cfg_peek()
            .security
            .cors_allowed_origins
            .iter()
            .any(|a| a.eq_ignore_ascii_case(o)),
        _ => false,
    };
    if !allowed {
        return next.run(req).await;
    }
    let origin = HeaderValue::from_str(origin.as_deref().unwrap_or(""))
        .unwrap_or(HeaderValue::from_static("null"));
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(MAX_AGE_SECS),
        );
        r
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    resp
}
