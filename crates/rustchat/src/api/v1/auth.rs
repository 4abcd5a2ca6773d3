//! `/api/v1/auth/*` (CHAT-R7, R21): register, login, logout, me, sessions.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Json, http::HeaderMap};
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde_json::json;

use crate::api::json::Body;
use crate::api::{render, validate};
use crate::auth::{AuthUser, CSRF_COOKIE, SESSION_COOKIE, password};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{NewUser, Session, User, now_ms};
use crate::{ids, store_read, store_write};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    username: String,
    email: String,
    password: String,
    display_name: Option<String>,
}

/// `POST /auth/register`: 201 user; the first account becomes system_admin.
pub async fn register(State(st): State<AppState>, Body(r): Body<Register>) -> ApiResult<Response> {
    let username = r.username.trim().to_string();
    validate::username(&username)?;
    let email = r.email.trim().to_lowercase();
    validate::email(&email)?;
    validate::chars(
        "password",
        &r.password,
        *validate::PASSWORD_CHARS.start(),
        *validate::PASSWORD_CHARS.end(),
    )?;
    let display_name = r.display_name.unwrap_or_else(|| username.clone());
    validate::chars("display_name", &display_name, 1, validate::MAX_DISPLAY_NAME)?;
    if !st.settings.load().enable_open_registration {
        return Err(ApiError::forbidden("open registration is disabled"));
    }
    let hash = password::hash(r.password)
        .await
        .ok_or_else(ApiError::internal)?;
    let new = NewUser {
        id: ids::new_id(),
        username,
        email,
        password_hash: Some(hash),
        display_name,
        is_bot: false,
    };
    let user = store_write!(st.store, |c| ops::create_user(c, new).await)?;
    tracing::info!(user_id = %user.id, "auth: account registered");
    Ok((StatusCode::CREATED, Json(render::user(&user, &user))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    login: String,
    password: String,
    #[serde(default)]
    cookie: bool,
}

/// Client details stored on the session row.
pub struct ClientInfo {
    pub ip: String,
    pub user_agent: String,
}

impl ClientInfo {
    /// From the peer address and headers.
    pub fn new(peer: SocketAddr, headers: &HeaderMap) -> Self {
        ClientInfo {
            ip: peer.ip().to_string(),
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .chars()
                .take(256)
                .collect(),
        }
    }
}

/// Checks a password login; logs and counts the outcome. All failures look alike.
pub async fn check_password(st: &AppState, login: &str, pw: String) -> ApiResult<User> {
    if !st.settings.load().enable_password_login {
        return Err(ApiError::forbidden("password login is disabled"));
    }
    let login = login.trim().to_lowercase();
    let found = if login.is_empty() || login.len() > 254 {
        None
    } else {
        let l = login.clone();
        store_read!(st.store, |c| ops::user_by_login(c, &l).await)?
    };
    let phc = found
        .as_ref()
        .filter(|u| u.active && !u.is_bot)
        .and_then(|u| u.password_hash.clone());
    let ok = password::verify(pw, phc).await;
    match found {
        Some(u) if ok => {
            st.metrics.auth_attempt("password", true);
            Ok(u)
        }
        _ => {
            st.metrics.auth_attempt("password", false);
            tracing::info!("auth: login failed: Unauthorized");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "invalid login or password",
            ))
        }
    }
}

/// Creates a session for `user` and returns (token, session).
pub async fn start_session(
    st: &AppState,
    user: &User,
    kind: &str,
    client: ClientInfo,
) -> ApiResult<(String, Session)> {
    let now = now_ms();
    let hours = i64::from(st.cfg().jwt.expiry_hours);
    let s = Session {
        id: ids::new_id(),
        user_id: user.id.clone(),
        created_at: now,
        expires_at: now + hours * 3_600_000,
        last_activity_at: now,
        kind: kind.into(),
        ip: client.ip,
        user_agent: client.user_agent,
    };
    let s = store_write!(st.store, |c| ops::create_session(c, s).await)?;
    let token = st
        .jwt()
        .issue(&user.id, &s.id, now / 1000, s.expires_at / 1000);
    tracing::info!(user_id = %user.id, session_id = %s.id, "auth: login succeeded");
    Ok((token, s))
}

/// `Set-Cookie` values for a browser session: HttpOnly session cookie plus the CSRF cookie
/// the UI echoes in `X-CSRF-Token`.
pub fn session_cookies(st: &AppState, token: &str, max_age_secs: i64) -> [HeaderValue; 2] {
    let secure = if st.cfg().is_production() {
        "; Secure"
    } else {
        ""
    };
    let csrf = ids::random_token("");
    let a = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
    );
    let b = format!("{CSRF_COOKIE}={csrf}; Path=/; SameSite=Lax; Max-Age={max_age_secs}{secure}");
    [
        HeaderValue::from_str(&a).unwrap_or(HeaderValue::from_static("")),
        HeaderValue::from_str(&b).unwrap_or(HeaderValue::from_static("")),
    ]
}

fn clear_cookies() -> [HeaderValue; 2] {
    [
        HeaderValue::from_static("rustchat_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
        HeaderValue::from_static("rustchat_csrf=; Path=/; SameSite=Lax; Max-Age=0"),
    ]
}

/// `POST /auth/login`: `{token, expires_at, user}`; `cookie: true` also sets the cookies.
pub async fn login(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Body(l): Body<Login>,
) -> ApiResult<Response> {
    let user = check_password(&st, &l.login, l.password).await?;
    let (token, s) = start_session(&st, &user, "password", ClientInfo::new(peer, &headers)).await?;
    let body =
        json!({"token": token, "expires_at": s.expires_at, "user": render::user(&user, &user)});
    let mut resp = Json(body).into_response();
    if l.cookie {
        let max_age = (s.expires_at - now_ms()) / 1000;
        for v in session_cookies(&st, &token, max_age) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(resp)
}

/// Ends one session everywhere this node can: the row, the cache.
pub async fn end_session(st: &AppState, user_id: &str, sid: &str) -> ApiResult<bool> {
    let (u, s) = (user_id.to_string(), sid.to_string());
    let deleted = store_write!(st.store, |c| ops::delete_session(c, &u, &s).await)?;
    crate::realtime::cluster::revoke(
        st,
        crate::realtime::cluster::Revocation::Session(sid.to_string()),
    );
    Ok(deleted)
}

/// `POST /auth/logout`: deletes the session row and clears the cookies.
pub async fn logout(State(st): State<AppState>, me: AuthUser) -> ApiResult<Response> {
    if let Some(sid) = me.session_id() {
        end_session(&st, &me.user.id, sid).await?;
    }
    tracing::info!(user_id = %me.user.id, "auth: logout");
    let mut resp = Json(json!({"status": "ok"})).into_response();
    for v in clear_cookies() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// `GET /auth/me`.
pub async fn me(me: AuthUser) -> Json<serde_json::Value> {
    Json(render::user(&me.user, &me.user))
}

/// `GET /auth/sessions`: the caller's sessions.
pub async fn sessions(
    State(st): State<AppState>,
    me: AuthUser,
) -> ApiResult<Json<serde_json::Value>> {
    let uid = me.user.id.clone();
    let list = store_read!(st.store, |c| ops::user_sessions(c, &uid).await)?;
    let current = me.session_id().unwrap_or_default().to_string();
    Ok(Json(json!(
        list.iter()
            .map(|s| json!({
                "id": s.id, "created_at": s.created_at, "expires_at": s.expires_at,
                "last_activity_at": s.last_activity_at, "kind": s.kind, "ip": s.ip,
                "user_agent": s.user_agent, "current": s.id == current,
            }))
            .collect::<Vec<_>>()
    )))
}

/// `DELETE /auth/sessions/{id}`.
pub async fn delete_session(
    State(st): State<AppState>,
    me: AuthUser,
    Path(sid): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    validate::id("id", &sid)?;
    if !end_session(&st, &me.user.id, &sid).await? {
        return Err(ApiError::not_found("session"));
    }
    tracing::info!(user_id = %me.user.id, session_id = %sid, "auth: session revoked");
    Ok(Json(json!({"status": "ok"})))
}
