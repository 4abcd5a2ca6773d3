//! System administration of accounts and sessions (CHAT-R21, R24, R30; spec §3.2):
//! `GET /api/v1/admin/users`, `PATCH /api/v1/admin/users/{id}` `{role?, active?}` and
//! `POST /api/v1/admin/sessions/revoke_all` `{include_tokens}`. system_admin only.
//!
//! Deactivation and revocation take effect at once on this node: the rows go in the same
//! transaction (`ops::admin_patch_user`, `ops::revoke_all`), then the session cache and
//! the user's WebSockets are dropped.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::tokens::require_system_admin;
use crate::api::json::Body;
use crate::api::{render, validate};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{ROLE_MEMBER, ROLE_SYSTEM_ADMIN, StoreError};
use crate::{store_read, store_write};

/// Default page size of the user list.
pub const DEFAULT_PER_PAGE: i64 = 60;
/// Largest page size of the user list.
pub const MAX_PER_PAGE: i64 = 200;

#[derive(Deserialize)]
pub struct PageParams {
    page: Option<i64>,
    per_page: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    role: Option<String>,
    active: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeAll {
    #[serde(default)]
    include_tokens: bool,
}

/// `GET /admin/users?page=0&per_page=60`: every account, by username.
pub async fn users(
    State(st): State<AppState>,
    me: AuthUser,
    params: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    require_system_admin(&me)?;
    let Query(p) = params.map_err(|e| ApiError::validation("query", e.body_text()))?;
    let page = p.page.unwrap_or(0);
    let per_page = p.per_page.unwrap_or(DEFAULT_PER_PAGE);
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(ApiError::validation(
            "per_page",
            format!("1-{MAX_PER_PAGE}"),
        ));
    }
    if !(0..=i64::MAX / MAX_PER_PAGE).contains(&page) {
        return Err(ApiError::validation("page", "must be >= 0"));
    }
    let list = store_read!(st.store, |c| ops::list_users(c, page * per_page, per_page)
        .await)?;
    Ok(Json(json!(
        list.iter()
            .map(|u| render::user(u, &me.user))
            .collect::<Vec<_>>()
    )))
}

/// `PATCH /admin/users/{id}` `{role?, active?}`; deactivation ends the user's sessions,
/// tokens and WebSockets. An admin cannot demote or deactivate themself (no lock-out).
pub async fn patch_user(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    Body(b): Body<PatchUser>,
) -> ApiResult<Json<Value>> {
    require_system_admin(&me)?;
    validate::id("user_id", &id)?;
    if let Some(r) = &b.role
        && r != ROLE_SYSTEM_ADMIN
        && r != ROLE_MEMBER
    {
        return Err(ApiError::validation(
            "role",
            format!("{ROLE_SYSTEM_ADMIN} or {ROLE_MEMBER}"),
        ));
    }
    if id == me.user.id
        && (b.active == Some(false) || b.role.as_deref().is_some_and(|r| r != ROLE_SYSTEM_ADMIN))
    {
        return Err(ApiError::validation(
            "user_id",
            "you cannot demote or deactivate yourself; ask another system_admin",
        ));
    }
    let uid = id.clone();
    let role = b.role.clone();
    let user = store_write!(st.store, |c| ops::admin_patch_user(
        c,
        &uid,
        role.as_deref(),
        b.active
    )
    .await)
    .map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found("user"),
        e => e.into(),
    })?;
    // Cached sessions carry the old role and state.
    let deactivated = b.active == Some(false);
    crate::realtime::cluster::revoke(
        &st,
        crate::realtime::cluster::Revocation::User {
            id: Some(id.clone()),
            close: deactivated,
        },
    );
    if deactivated {
        tracing::info!(user_id = %id, "auth: session revoked");
    }
    Ok(Json(render::user(&user, &me.user)))
}

/// `POST /admin/sessions/revoke_all` `{include_tokens}`: deletes every session (and every
/// personal access and bot token with `include_tokens`) → `{sessions, tokens}` deleted.
pub async fn revoke_all(
    State(st): State<AppState>,
    me: AuthUser,
    Body(b): Body<RevokeAll>,
) -> ApiResult<Json<Value>> {
    require_system_admin(&me)?;
    let include = b.include_tokens;
    let (sessions, tokens) = store_write!(st.store, |c| ops::revoke_all(c, include).await)?;
    crate::realtime::cluster::revoke(
        &st,
        crate::realtime::cluster::Revocation::User {
            id: None,
            close: true,
        },
    );
    tracing::info!(sessions, tokens, "auth: session revoked");
    Ok(Json(json!({"sessions": sessions, "tokens": tokens})))
}
