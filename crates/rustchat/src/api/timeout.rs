//! Request timeout (`server.request_timeout_seconds`, reloadable): a handler that has not
//! produced its response head in time is abandoned and answered 503 `unavailable` with
//! `Retry-After`. Uploads and WebSocket upgrades are exempt: their length is bounded by
//! the body limit and the connection's own timers instead.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, V4Error};
use crate::state::AppState;

/// `Retry-After` on a timed-out request.
pub const TIMEOUT_RETRY_AFTER: u32 = 5;

fn exempt(req: &Request) -> bool {
    let p = req.uri().path();
    p == "/api/v1/ws" || p == "/api/v4/websocket" || p == "/api/v1/files"
}

/// The timeout layer.
pub async fn timeout(req: Request, next: Next) -> Response {
    let Some(limit) = req
        .extensions()
        .get::<AppState>()
        .map(|st| st.cfg_peek().server.request_timeout())
    else {
        return next.run(req).await;
    };
    if exempt(&req) {
        return next.run(req).await;
    }
    let v4 = req.uri().path().starts_with("/api/v4/");
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(limit_secs = limit.as_secs(), "request timed out");
            let e = ApiError::unavailable("request timed out", TIMEOUT_RETRY_AFTER);
            if v4 {
                V4Error(e).into_response()
            } else {
                e.into_response()
            }
        }
    }
}
