//! `/api/v1/oauth2/*` (CHAT-R7, R22): provider list, login, callback, exchange.
//!
//! Browsers navigate to login and callback, so failures there are redirects to
//! `/login?error=<code>` for requests that accept HTML and JSON errors with the spec's
//! statuses (404/400/401/503) for everything else (API clients, tests, curl). Nothing that
//! grants access ever travels in a URL: the state and the exchange code ride in HttpOnly
//! cookies scoped to the routes that read them.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde_json::json;

use crate::api::render;
use crate::api::v1::auth::{ClientInfo, session_cookies, start_session};
use crate::auth::extract::cookie;
use crate::error::{ApiError, ApiResult};
use crate::oidc::flow::{self, FlowError};
use crate::oidc::pending::{CODE_TTL, STATE_TTL};
use crate::state::AppState;
use crate::store::now_ms;

/// Cookie carrying the login state from login to callback.
pub const STATE_COOKIE: &str = "rustchat_oauth_state";
/// Cookie carrying the exchange code from callback to exchange.
pub const CODE_COOKIE: &str = "rustchat_oauth_code";
/// Path of the state cookie (covers every provider's callback).
const STATE_COOKIE_PATH: &str = "/api/v1/oauth2/";
/// Path of the code cookie: only the exchange route ever sees it.
const CODE_COOKIE_PATH: &str = "/api/v1/oauth2/exchange";
/// The UI route that finishes a login.
pub const COMPLETE_PATH: &str = "/login/complete";

/// `GET /oauth2/providers`: `[{name, display_name, login_url}]`.
pub async fn providers(State(st): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let defs = crate::oidc::definitions(&st.cfg(), &st.store, &st.at_rest).await?;
    Ok(Json(json!(
        defs.iter()
            .map(|d| json!({
                "name": d.name,
                "display_name": d.display_name,
                "login_url": format!("/api/v1/oauth2/{}/login", d.name),
            }))
            .collect::<Vec<_>>()
    )))
}

#[derive(Deserialize)]
pub struct LoginQuery {
    redirect: Option<String>,
}

/// `GET /oauth2/{p}/login?redirect=/path`: 302 to the provider with the state cookie.
pub async fn login(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<LoginQuery>,
    headers: HeaderMap,
) -> Response {
    match flow::start(&st, &name, q.redirect.as_deref()).await {
        Ok(started) => {
            let mut resp = found(&started.location);
            let v = cookie_value(
                &st,
                STATE_COOKIE,
                &started.state,
                STATE_COOKIE_PATH,
                STATE_TTL.as_secs(),
            );
            resp.headers_mut().append(header::SET_COOKIE, v);
            resp
        }
        Err(e) => failure(&st, &headers, e),
    }
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /oauth2/{p}/callback?code&state`: 302 to `/login/complete` with the code cookie.
pub async fn callback(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<CallbackQuery>,
    headers: HeaderMap,
) -> Response {
    let cookie_state = cookie(&headers, STATE_COOKIE).filter(|s| !s.is_empty());
    let result = flow::callback(
        &st,
        &name,
        q.code.as_deref(),
        q.error.as_deref(),
        q.state.as_deref(),
        cookie_state,
    )
    .await;
    let mut resp = match result {
        Ok(done) => {
            let location = if done.redirect == "/" {
                COMPLETE_PATH.to_string()
            } else {
                let next: String =
                    url::form_urlencoded::byte_serialize(done.redirect.as_bytes()).collect();
                format!("{COMPLETE_PATH}?next={next}")
            };
            let mut resp = found(&location);
            let v = cookie_value(
                &st,
                CODE_COOKIE,
                &done.code,
                CODE_COOKIE_PATH,
                2 * CODE_TTL.as_secs(),
            );
            resp.headers_mut().append(header::SET_COOKIE, v);
            resp
        }
        Err(e) => failure(&st, &headers, e),
    };
    // The state is single-use whatever happened.
    resp.headers_mut().append(
        header::SET_COOKIE,
        cookie_value(&st, STATE_COOKIE, "", STATE_COOKIE_PATH, 0),
    );
    resp
}

/// `POST /oauth2/exchange`: consumes the code cookie; 200 user + session cookies.
pub async fn exchange(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let code = cookie(&headers, CODE_COOKIE).filter(|c| !c.is_empty());
    let (user, redirect) = flow::exchange(&st, code).await.map_err(api_error)?;
    let (token, s) = start_session(&st, &user, "oidc", ClientInfo::new(peer, &headers)).await?;
    let mut body = render::user(&user, &user);
    if let Some(obj) = body.as_object_mut() {
        obj.insert("redirect".into(), json!(redirect));
    }
    let mut resp = Json(body).into_response();
    for v in session_cookies(&st, &token, (s.expires_at - now_ms()) / 1000) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp.headers_mut().append(
        header::SET_COOKIE,
        cookie_value(&st, CODE_COOKIE, "", CODE_COOKIE_PATH, 0),
    );
    Ok(resp)
}

fn found(location: &str) -> Response {
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn cookie_value(st: &AppState, name: &str, value: &str, path: &str, max_age: u64) -> HeaderValue {
    let secure = if st.cfg().is_production() {
        "; Secure"
    } else {
        ""
    };
    let s =
        format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static(""))
}

/// A browser (it asked for HTML) is sent back to the login page with an error code; any
/// other client gets the JSON error.
fn failure(st: &AppState, headers: &HeaderMap, e: FlowError) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        return found(&format!("/login?error={}", e.ui_code()));
    }
    let retry = st.cfg().oauth.breaker_open_seconds;
    let mut err = api_error(e);
    if err.status == StatusCode::SERVICE_UNAVAILABLE {
        err.retry_after = Some(retry.max(1));
    }
    err.into_response()
}

fn api_error(e: FlowError) -> ApiError {
    match e {
        FlowError::UnknownProvider => ApiError::not_found("OAuth provider"),
        FlowError::Unavailable => ApiError::unavailable("the identity provider is unavailable", 1),
        FlowError::StateMissing | FlowError::StateMismatch | FlowError::StateUnknown => {
            ApiError::validation("state", e.to_string())
        }
        FlowError::CodeInvalid => ApiError::validation("rustchat_oauth_code", e.to_string()),
        // The reason is in the log line; the client learns only that the login was refused.
        FlowError::Refused(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "OAuth login refused",
        ),
        FlowError::Store(s) => ApiError::from(s),
    }
}
