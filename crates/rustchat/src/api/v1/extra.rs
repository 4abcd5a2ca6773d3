//! Routes of files, search, incoming webhooks, tokens, bots and account administration
//! (CHAT-R7, R17, R21, R24), merged into [`super::routes`].

use axum::Router;
use axum::routing::{delete, get, patch, post};

use super::{admin, files, hooks, search, tokens};
use crate::state::AppState;

/// The routes of this module, including the `/hooks/{token}` alias outside `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/files",
            post(files::upload).layer(files::upload_body_limit()),
        )
        .route("/api/v1/files/{id}", get(files::download))
        .route("/api/v1/files/{id}/info", get(files::info))
        .route("/api/v1/search", get(search::search))
        .route(
            "/api/v1/hooks/incoming",
            get(hooks::list).post(hooks::create),
        )
        .route("/api/v1/hooks/incoming/{id}", delete(hooks::delete))
        .route("/api/v1/hooks/{token}", post(hooks::execute))
        .route("/hooks/{token}", post(hooks::execute))
        .route(
            "/api/v1/users/me/tokens",
            get(tokens::list).post(tokens::create),
        )
        .route("/api/v1/users/me/tokens/{id}", delete(tokens::delete))
        .route("/api/v1/bots", post(tokens::create_bot))
        .route("/api/v1/bots/{id}/tokens", post(tokens::create_bot_token))
        .route("/api/v1/admin/users", get(admin::users))
        .route("/api/v1/admin/users/{id}", patch(admin::patch_user))
        .route("/api/v1/admin/sessions/revoke_all", post(admin::revoke_all))
}
