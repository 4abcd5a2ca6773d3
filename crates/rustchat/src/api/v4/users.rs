//! v4 users, sessions, teams and statuses.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::V4Body;
use super::render;
use crate::api::v1::auth::{ClientInfo, check_password, end_session, start_session};
use crate::api::v1::teams::require_team;
use crate::api::validate;
use crate::auth::extract::V4User;
use crate::error::{ApiError, V4Error, V4Result};
use crate::realtime::presence;
use crate::state::AppState;
use crate::store_read;

#[derive(Deserialize)]
pub struct Login {
    login_id: String,
    password: String,
}

/// `POST /users/login`: the user, with our JWT in the `Token` header.
pub async fn login(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    V4Body(l): V4Body<Login>,
) -> V4Result<Response> {
    let user = match check_password(&st, &l.login_id, l.password).await {
        Ok(u) => u,
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            let mut e = e;
            e.code = "bad_login";
            return Err(V4Error(e));
        }
        Err(e) => return Err(e.into()),
    };
    let (token, _) = start_session(&st, &user, "password", ClientInfo::new(peer, &headers)).await?;
    let mut resp = Json(render::user(&user, &user)).into_response();
    if let Ok(v) = HeaderValue::from_str(&token) {
        resp.headers_mut().insert("token", v);
    }
    Ok(resp)
}

/// `POST /users/logout`.
pub async fn logout(State(st): State<AppState>, V4User(me): V4User) -> V4Result<Json<Value>> {
    if let Some(sid) = me.session_id() {
        end_session(&st, &me.user.id, sid).await?;
    }
    tracing::info!(user_id = %me.user.id, "auth: logout");
    Ok(Json(json!({"status": "OK"})))
}

/// `GET /users/me`.
pub async fn me(V4User(me): V4User) -> Json<Value> {
    Json(render::user(&me.user, &me.user))
}

/// `GET /users/{id}`.
pub async fn get(
    State(st): State<AppState>,
    V4User(me): V4User,
    Path(id): Path<String>,
) -> V4Result<Json<Value>> {
    let id = if id == "me" { me.user.id.clone() } else { id };
    validate::id("user_id", &id)?;
    let u = store_read!(st.store, |c| ops::user_by_id(c, &id).await)
        .map_err(|_| ApiError::not_found("user"))?;
    Ok(Json(render::user(&u, &me.user)))
}

/// A body id list: at most [`MAX_IDS`](crate::api::v1::users::MAX_IDS) well-formed ids.
fn check_ids(ids: &[String]) -> Result<(), ApiError> {
    if ids.len() > crate::api::v1::users::MAX_IDS {
        return Err(ApiError::validation("user_ids", "too many ids"));
    }
    ids.iter().try_for_each(|id| validate::id("user_ids", id))
}

/// `POST /users/ids`: body is a JSON array of ids.
pub async fn by_ids(
    State(st): State<AppState>,
    V4User(me): V4User,
    V4Body(ids): V4Body<Vec<String>>,
) -> V4Result<Json<Value>> {
    check_ids(&ids)?;
    let users = store_read!(st.store, |c| ops::users_by_ids(c, &ids).await)?;
    Ok(Json(json!(
        users
            .iter()
            .map(|u| render::user(u, &me.user))
            .collect::<Vec<_>>()
    )))
}

/// `GET /users/me/teams`.
pub async fn my_teams(State(st): State<AppState>, V4User(me): V4User) -> V4Result<Json<Value>> {
    let uid = me.user.id.clone();
    let teams = store_read!(st.store, |c| ops::user_teams(c, &uid).await)?;
    Ok(Json(json!(
        teams.iter().map(render::team).collect::<Vec<_>>()
    )))
}

/// `GET /teams/{id}`: 403 for a team the caller is not in (unless it is open).
pub async fn team(
    State(st): State<AppState>,
    V4User(me): V4User,
    Path(id): Path<String>,
) -> V4Result<Json<Value>> {
    validate::id("team_id", &id)?;
    let tid = id.clone();
    let team = store_read!(st.store, |c| ops::team_by_id(c, &tid).await)
        .map_err(|_| ApiError::not_found("team"))?;
    if !team.open && require_team(&st, &me, &id).await.is_err() {
        return Err(ApiError::forbidden("not a member of this team").into());
    }
    Ok(Json(render::team(&team)))
}

#[derive(Deserialize)]
pub struct SetStatus {
    status: String,
}

/// `PUT /users/{uid}/status`.
pub async fn set_status(
    State(st): State<AppState>,
    V4User(me): V4User,
    Path(uid): Path<String>,
    V4Body(b): V4Body<SetStatus>,
) -> V4Result<Json<Value>> {
    if uid != me.user.id && !me.user.is_system_admin() {
        return Err(ApiError::forbidden("you may only set your own status").into());
    }
    if !presence::STATUSES.contains(&b.status.as_str()) {
        return Err(ApiError::validation("status", "online, away, dnd or offline").into());
    }
    presence::set(&st, &uid, &b.status).await?;
    Ok(Json(
        json!({"user_id": uid, "status": b.status, "manual": b.status != "online", "last_activity_at": crate::store::now_ms()}),
    ))
}

/// `POST /users/status/ids`: body is a JSON array of ids.
pub async fn statuses(
    State(st): State<AppState>,
    V4User(_me): V4User,
    V4Body(ids): V4Body<Vec<String>>,
) -> V4Result<Json<Value>> {
    check_ids(&ids)?;
    let m = presence::statuses(&st, &ids).await?;
    Ok(Json(json!(
        ids.iter()
            .map(
                |id| json!({"user_id": id, "status": m[id], "manual": false, "last_activity_at": 0})
            )
            .collect::<Vec<_>>()
    )))
}
