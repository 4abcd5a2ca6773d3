//! The native API `/api/v1` (CHAT-R7).

pub mod admin;
pub mod admin_config;
pub mod admin_oauth;
pub mod auth;
pub mod channels;
pub mod extra;
pub mod files;
pub mod hooks;
pub mod oauth;
pub mod posts;
pub mod search;
pub mod teams;
pub mod tokens;
pub mod users;

use axum::Router;
use axum::routing::{get, post, put};

use crate::state::AppState;

/// Every native route (health routes are mounted separately, before the database is up).
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(
            Router::new()
                .route("/api/v1/ws", get(crate::realtime::ws::v1))
                .route_layer(axum::middleware::from_fn(crate::ratelimit::ws_limit)),
        )
        .merge(
            Router::new()
                .route("/api/v1/auth/register", post(auth::register))
                .route("/api/v1/auth/login", post(auth::login))
                .route("/api/v1/oauth2/{p}/login", get(oauth::login))
                .route("/api/v1/oauth2/{p}/callback", get(oauth::callback))
                .route("/api/v1/oauth2/exchange", post(oauth::exchange))
                .route_layer(axum::middleware::from_fn(crate::ratelimit::auth_limit)),
        )
        .route("/api/v1/oauth2/providers", get(oauth::providers))
        .route(
            "/api/v1/admin/oauth/providers",
            get(admin_oauth::list).post(admin_oauth::create),
        )
        .route(
            "/api/v1/admin/oauth/providers/{name}",
            axum::routing::delete(admin_oauth::delete),
        )
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/me", get(auth::me))
        .route("/api/v1/auth/sessions", get(auth::sessions))
        .route(
            "/api/v1/auth/sessions/{id}",
            axum::routing::delete(auth::delete_session),
        )
        .route(
            "/api/v1/admin/config",
            get(admin_config::get).patch(admin_config::patch),
        )
        .route("/api/v1/users/me/unreads", get(posts::unreads))
        .route("/api/v1/users", get(users::list))
        .route("/api/v1/users/me", get(auth::me).patch(users::patch_me))
        .route("/api/v1/users/me/status", put(users::set_status))
        .route("/api/v1/users/status", get(users::statuses))
        .route("/api/v1/users/{id}", get(users::get))
        .route("/api/v1/teams", get(teams::list).post(teams::create))
        .route("/api/v1/teams/{id}", get(teams::get).patch(teams::patch))
        .route("/api/v1/teams/{id}/join", post(teams::join))
        .route(
            "/api/v1/teams/{id}/members",
            get(teams::members).post(teams::add_member),
        )
        .route(
            "/api/v1/teams/{id}/members/{uid}",
            axum::routing::delete(teams::remove_member),
        )
        .route(
            "/api/v1/teams/{id}/channels",
            get(channels::list).post(channels::create),
        )
        .route("/api/v1/channels/direct", post(channels::direct))
        .route("/api/v1/channels/group", post(channels::group))
        .route(
            "/api/v1/channels/{id}",
            get(channels::get)
                .patch(channels::patch)
                .delete(channels::archive),
        )
        .route("/api/v1/channels/{id}/join", post(channels::join))
        .route(
            "/api/v1/channels/{id}/members",
            get(channels::members).post(channels::add_member),
        )
        .route(
            "/api/v1/channels/{id}/members/{uid}",
            axum::routing::delete(channels::remove_member),
        )
        .route("/api/v1/channels/{id}/view", post(channels::view))
        .route(
            "/api/v1/channels/{id}/posts",
            get(posts::list).post(posts::create),
        )
        .route(
            "/api/v1/posts/{id}",
            get(posts::get).patch(posts::edit).delete(posts::delete),
        )
        .route("/api/v1/posts/{id}/thread", get(posts::thread))
        .route("/api/v1/posts/{id}/reactions", get(posts::reactions))
        .route(
            "/api/v1/posts/{id}/reactions/{emoji}",
            put(posts::add_reaction).delete(posts::remove_reaction),
        )
        .merge(extra::routes())
}
