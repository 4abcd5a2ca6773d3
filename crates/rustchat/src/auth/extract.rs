//! Who is calling: `Authorization: Bearer <jwt|pat>` (scheme case-insensitive, the
//! Mattermost client sends `BEARER`), the v4 `Token` header, or the `rustchat_session`
//! cookie (unsafe methods then also need `X-CSRF-Token` equal to the `rustchat_csrf`
//! cookie). Tokens in query strings are never read.

use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use http::request::Parts;
use http::{HeaderMap, Method};

use super::jwt::Invalid;
use super::{CSRF_COOKIE, CSRF_HEADER, PAT_PREFIX, SESSION_COOKIE};
use crate::error::{ApiError, V4Error};
use crate::state::AppState;
use crate::store::{StoreError, User};
use crate::{ids, store_read};

/// How long a verified session is trusted without re-reading its row on this node.
pub const SESSION_CACHE_TTL: Duration = Duration::from_secs(10);

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A session JWT (header or cookie); carries the session id.
    Session { sid: String, cookie: bool },
    /// A personal access or bot token; carries the token id.
    Token { id: String },
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The account (active).
    pub user: User,
    /// How it authenticated.
    pub credential: Credential,
}

impl AuthUser {
    /// The session id when authenticated by a session.
    pub fn session_id(&self) -> Option<&str> {
        match &self.credential {
            Credential::Session { sid, .. } => Some(sid),
            Credential::Token { .. } => None,
        }
    }
}

/// Reads one cookie's value from the `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Authenticates `parts`; `allow_token_header` is true on `/api/v4`.
pub async fn authenticate(
    state: &AppState,
    parts: &Parts,
    allow_token_header: bool,
) -> Result<AuthUser, ApiError> {
    let headers = &parts.headers;
    let (token, cookie_auth) = if let Some(t) = bearer(headers) {
        (t.to_string(), false)
    } else if let Some(t) = allow_token_header
        .then(|| headers.get("token").and_then(|v| v.to_str().ok()))
        .flatten()
    {
        (t.trim().to_string(), false)
    } else if let Some(t) = cookie(headers, SESSION_COOKIE) {
        (t.to_string(), true)
    } else {
        return Err(ApiError::unauthorized());
    };
    if cookie_auth && !is_safe(&parts.method) {
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        let want = cookie(headers, CSRF_COOKIE);
        if sent.is_none() || sent != want {
            return Err(ApiError::forbidden("missing or wrong X-CSRF-Token"));
        }
    }
    if token.starts_with(PAT_PREFIX) {
        return by_token(state, &token).await;
    }
    by_session(state, &token, cookie_auth).await
}

/// Authenticates a bare token (JWT or PAT), as the v4 WebSocket challenge carries it.
pub async fn authenticate_token(state: &AppState, token: &str) -> Result<AuthUser, ApiError> {
    if token.starts_with(PAT_PREFIX) {
        by_token(state, token).await
    } else {
        by_session(state, token, false).await
    }
}

fn is_safe(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

async fn by_token(state: &AppState, token: &str) -> Result<AuthUser, ApiError> {
    let hash = ids::sha256_hex(token);
    let found = store_read!(state.store, |c| ops::token_with_user(c, &hash).await)?;
    match found {
        Some((t, user)) if user.active => {
            state.metrics.auth_attempt("token", true);
            Ok(AuthUser {
                user,
                credential: Credential::Token { id: t.id },
            })
        }
        _ => {
            state.metrics.auth_attempt("token", false);
            tracing::info!(
                reason = "unknown_token",
                "auth: Unauthorized: Invalid token"
            );
            Err(ApiError::unauthorized())
        }
    }
}

async fn by_session(state: &AppState, token: &str, cookie: bool) -> Result<AuthUser, ApiError> {
    let claims = match state.jwt().verify(token) {
        Ok(c) => c,
        Err(reason) => {
            log_invalid(reason);
            return Err(ApiError::unauthorized());
        }
    };
    if let Some(user) = state.sessions.get(&claims.sid) {
        return Ok(AuthUser {
            user,
            credential: Credential::Session {
                sid: claims.sid,
                cookie,
            },
        });
    }
    let sid = claims.sid.clone();
    let found = match store_read!(state.store, |c| ops::session_with_user(c, &sid).await) {
        Ok(f) => f,
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let now = crate::store::now_ms();
    match found {
        Some((s, user)) if s.expires_at > now && user.active && user.id == claims.sub => {
            state.sessions.put(&s.id, user.clone(), s.expires_at);
            Ok(AuthUser {
                user,
                credential: Credential::Session { sid: s.id, cookie },
            })
        }
        _ => {
            tracing::info!("auth: Unauthorized: session not found");
            Err(ApiError::unauthorized())
        }
    }
}

fn log_invalid(reason: Invalid) {
    tracing::info!(
        reason = reason.as_str(),
        "auth: Unauthorized: Invalid token"
    );
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(u) = parts.extensions.get::<AuthUser>() {
            return Ok(u.clone());
        }
        let u = authenticate(state, parts, false).await?;
        parts.extensions.insert(u.clone());
        Ok(u)
    }
}

/// [`AuthUser`] for `/api/v4` handlers: also reads the `Token` header and rejects the
/// Mattermost way.
#[derive(Debug, Clone)]
pub struct V4User(pub AuthUser);

impl FromRequestParts<AppState> for V4User {
    type Rejection = V4Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, V4Error> {
        let u = authenticate(state, parts, true).await?;
        Ok(V4User(u))
    }
}

/// Per-node cache of verified sessions (CHAT-R21: ≤ 10 s, dropped at once on logout or
/// revocation on this node).
#[derive(Default)]
pub struct SessionCache {
    map: parking_lot::Mutex<std::collections::HashMap<String, (User, Instant, i64)>>,
}

/// Most sessions cached; beyond it the cache is cleared (it only saves a read).
pub const SESSION_CACHE_MAX: usize = 100_000;

impl SessionCache {
    /// The cached, still-fresh user of session `sid`.
    pub fn get(&self, sid: &str) -> Option<User> {
        let map = self.map.lock();
        let (user, at, expires_at) = map.get(sid)?;
        (at.elapsed() < SESSION_CACHE_TTL && *expires_at > crate::store::now_ms())
            .then(|| user.clone())
    }
    /// Caches a verified session.
    pub fn put(&self, sid: &str, user: User, expires_at: i64) {
        let mut map = self.map.lock();
        if map.len() >= SESSION_CACHE_MAX {
            map.clear();
        }
        map.insert(sid.to_string(), (user, Instant::now(), expires_at));
    }
    /// Forgets one session.
    pub fn remove(&self, sid: &str) {
        self.map.lock().remove(sid);
    }
    /// Forgets every session of a user (or all with `None`).
    pub fn remove_user(&self, user_id: Option<&str>) {
        let mut map = self.map.lock();
        match user_id {
            Some(u) => map.retain(|_, (user, _, _)| user.id != u),
            None => map.clear(),
        }
    }
}
