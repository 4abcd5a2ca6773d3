//! The Mattermost API v4 subset (CHAT-R10): exactly the routes the official
//! `@mattermost/client` needs for the compatibility suite (tests/compat/COVERAGE.md), with
//! Mattermost's ids, timestamps, error bodies, pagination and headers. Every other
//! `/api/v4/*` path answers a Mattermost-shaped 501; a known path with another method 405.
//!
//! Every v4 response carries `X-Version-Id` and `X-MM-COMPAT: 1` and no `Cache-Control`
//! (the client ignores `X-Version-Id` when one is present).

pub mod body;
pub mod channels;
pub mod posts;
pub mod render;
pub mod system;
pub mod users;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, delete, get, post, put};
use http::{HeaderValue, Method, StatusCode};

use crate::error::{ApiError, V4Error};
use crate::state::AppState;

/// Default and largest `per_page`.
pub const DEFAULT_PER_PAGE: i64 = 60;
/// Largest `per_page`; larger values are clamped silently.
pub const MAX_PER_PAGE: i64 = 200;

/// Clamps Mattermost paging parameters.
pub fn paging(page: Option<i64>, per_page: Option<i64>) -> (i64, i64) {
    let per = per_page.unwrap_or(DEFAULT_PER_PAGE).clamp(1, MAX_PER_PAGE);
    (page.unwrap_or(0).max(0), per)
}

/// The v4 routes.
pub fn routes(st: AppState) -> Router {
    Router::new()
        .route("/api/v4/system/ping", get(system::ping))
        .route("/api/v4/config/client", get(system::client_config))
        .route("/api/v4/license/client", get(system::client_license))
        .route(
            "/api/v4/users/login",
            post(users::login).route_layer(middleware::from_fn(crate::ratelimit::auth_limit)),
        )
        .route("/api/v4/users/logout", post(users::logout))
        .route("/api/v4/users/me", get(users::me))
        .route("/api/v4/users/ids", post(users::by_ids))
        .route("/api/v4/users/status/ids", post(users::statuses))
        .route("/api/v4/users/me/teams", get(users::my_teams))
        .route(
            "/api/v4/users/me/teams/{tid}/channels",
            get(channels::my_channels),
        )
        .route(
            "/api/v4/users/me/teams/{tid}/channels/members",
            get(channels::my_members),
        )
        .route("/api/v4/users/{uid}", get(users::get))
        .route("/api/v4/users/{uid}/status", put(users::set_status))
        .route(
            "/api/v4/users/{uid}/posts/{pid}/reactions/{emoji}",
            delete(posts::remove_reaction),
        )
        .route("/api/v4/teams/{tid}", get(users::team))
        .route(
            "/api/v4/teams/{tid}/channels",
            get(channels::public_channels),
        )
        .route("/api/v4/channels", post(channels::create))
        .route("/api/v4/channels/direct", post(channels::direct))
        .route("/api/v4/channels/members/me/view", post(channels::view))
        .route("/api/v4/channels/{id}", get(channels::get))
        .route("/api/v4/channels/{id}/members", post(channels::add_member))
        .route("/api/v4/channels/{id}/members/me", get(channels::my_member))
        .route("/api/v4/channels/{id}/posts", get(posts::channel_posts))
        .route("/api/v4/posts", post(posts::create))
        .route("/api/v4/posts/{id}", get(posts::get))
        .route("/api/v4/posts/{id}/thread", get(posts::thread))
        .route("/api/v4/posts/{id}/reactions", get(posts::reactions))
        .route("/api/v4/reactions", post(posts::add_reaction))
        .route(
            "/api/v4/websocket",
            get(crate::realtime::ws::v4)
                .route_layer(middleware::from_fn(crate::ratelimit::ws_limit)),
        )
        .route("/api/v4/{*rest}", any(not_implemented))
        .route("/api/v4", any(not_implemented))
        .layer(middleware::from_fn_with_state(st.clone(), headers))
        .with_state(st)
}

/// Adds `X-Version-Id` and `X-MM-COMPAT`, removes any `Cache-Control`.
async fn headers(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    add_headers(&st, &mut resp);
    resp
}

/// The v4 response headers (also used by the global 405 fallback).
pub fn add_headers(st: &AppState, resp: &mut Response) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(st.version_id()) {
        h.insert("x-version-id", v);
    }
    h.insert("x-mm-compat", HeaderValue::from_static("1"));
    h.remove(http::header::CACHE_CONTROL);
}

/// 501 for any v4 route this build does not implement.
async fn not_implemented(method: Method, uri: http::Uri) -> V4Error {
    let e = ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        "This API route is not implemented by rustchat.",
    );
    V4Error(e).with_detail(format!("{method} {}", uri.path()))
}
