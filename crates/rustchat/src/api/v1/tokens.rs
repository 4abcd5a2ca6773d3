//! Personal access tokens and bots (CHAT-R21, spec §3.2, §4.10): `/api/v1/users/me/tokens`,
//! `/api/v1/bots`, `/api/v1/bots/{id}/tokens`.
//!
//! A token is `rct_` + 43 base64url characters (256 random bits), shown once in the
//! creating response; only its SHA-256 is stored, and `auth::extract` accepts it as a
//! Bearer credential. A bot is an account with `is_bot` and no password, usable only
//! through tokens a system_admin issues for it.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::json::Body;
use crate::api::{render, validate};
use crate::auth::{AuthUser, PAT_PREFIX};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{AccessToken, NewUser, StoreError, now_ms};
use crate::{ids, store_read, store_write};

/// Longest token description.
pub const MAX_TOKEN_DESCRIPTION: usize = 255;
/// Domain of the placeholder addresses bots get (`.invalid` never resolves, RFC 2606).
pub const BOT_EMAIL_DOMAIN: &str = "bots.invalid";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBot {
    username: String,
    display_name: String,
}

/// A token row without its hash.
fn render_token(t: &AccessToken) -> Value {
    json!({
        "id": t.id, "user_id": t.user_id, "description": t.description,
        "created_at": t.created_at, "last_used_at": t.last_used_at,
    })
}

/// Creates a token for `user_id`; 201 `{id, token, description, user_id}` with the
/// plaintext, which is never shown again.
async fn issue(st: &AppState, user_id: &str, description: String) -> ApiResult<Response> {
    validate::chars("description", &description, 0, MAX_TOKEN_DESCRIPTION)?;
    let token = ids::random_token(PAT_PREFIX);
    let row = AccessToken {
        id: ids::new_id(),
        user_id: user_id.to_string(),
        token_hash: ids::sha256_hex(&token),
        description,
        created_at: now_ms(),
        last_used_at: 0,
    };
    let t = store_write!(st.store, |c| ops::create_token(c, row).await)?;
    tracing::info!(user_id = %t.user_id, token_id = %t.id, "auth: token created");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": t.id, "token": token, "description": t.description, "user_id": t.user_id,
            "created_at": t.created_at,
        })),
    )
        .into_response())
}

/// `GET /users/me/tokens`: the caller's tokens (never their values).
pub async fn list(State(st): State<AppState>, me: AuthUser) -> ApiResult<Json<Value>> {
    let uid = me.user.id.clone();
    let list = store_read!(st.store, |c| ops::user_tokens(c, &uid).await)?;
    Ok(Json(json!(
        list.iter().map(render_token).collect::<Vec<_>>()
    )))
}

/// `POST /users/me/tokens` `{description}`.
pub async fn create(
    State(st): State<AppState>,
    me: AuthUser,
    Body(b): Body<CreateToken>,
) -> ApiResult<Response> {
    issue(&st, &me.user.id, b.description).await
}

/// `DELETE /users/me/tokens/{id}`: the token stops working at once.
pub async fn delete(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    validate::id("token_id", &id)?;
    let uid = me.user.id.clone();
    if !store_write!(st.store, |c| ops::delete_token(c, &uid, &id).await)? {
        return Err(ApiError::not_found("token"));
    }
    Ok(Json(json!({"status": "ok"})))
}

/// 403 unless the caller is a system_admin.
pub fn require_system_admin(me: &AuthUser) -> ApiResult<()> {
    if me.user.is_system_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden("system_admin only"))
    }
}

/// `POST /bots` `{username, display_name}`: 201 with the bot account.
pub async fn create_bot(
    State(st): State<AppState>,
    me: AuthUser,
    Body(b): Body<CreateBot>,
) -> ApiResult<Response> {
    require_system_admin(&me)?;
    let username = b.username.trim().to_lowercase();
    validate::username(&username)?;
    validate::chars(
        "display_name",
        &b.display_name,
        1,
        validate::MAX_DISPLAY_NAME,
    )?;
    let id = ids::new_id();
    let new = NewUser {
        email: format!("{id}@{BOT_EMAIL_DOMAIN}"),
        id,
        username,
        password_hash: None,
        display_name: b.display_name,
        is_bot: true,
    };
    let bot = store_write!(st.store, |c| ops::create_user(c, new).await)?;
    Ok((StatusCode::CREATED, Json(render::user(&bot, &me.user))).into_response())
}

/// `POST /bots/{id}/tokens` `{description}`: a token for the bot, shown once.
pub async fn create_bot_token(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    Body(b): Body<CreateToken>,
) -> ApiResult<Response> {
    require_system_admin(&me)?;
    validate::id("bot_id", &id)?;
    let bid = id.clone();
    let bot = store_read!(st.store, |c| ops::user_by_id(c, &bid).await).map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found("bot"),
        e => e.into(),
    })?;
    if !bot.is_bot {
        return Err(ApiError::not_found("bot"));
    }
    if !bot.active {
        return Err(ApiError::forbidden("bot is deactivated"));
    }
    issue(&st, &bot.id, b.description).await
}
