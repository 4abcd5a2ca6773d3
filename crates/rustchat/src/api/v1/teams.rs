//! `/api/v1/teams/*` (CHAT-R7, R24).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::json::Body;
use crate::api::{render, validate};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{ROLE_MEMBER, ROLE_TEAM_ADMIN, TeamMember};
use crate::{ids, store_read, store_write};

/// The caller's membership of `team_id` (system admins pass as admins); 404 otherwise.
pub async fn require_team(
    st: &AppState,
    me: &AuthUser,
    team_id: &str,
) -> ApiResult<Option<TeamMember>> {
    validate::id("team_id", team_id)?;
    let (t, u) = (team_id.to_string(), me.user.id.clone());
    let m = store_read!(st.store, |c| ops::team_member(c, &t, &u).await)?;
    if m.is_none() && !me.user.is_system_admin() {
        return Err(ApiError::not_found("team"));
    }
    Ok(m)
}

/// True when the caller administers the team.
pub fn is_team_admin(me: &AuthUser, m: &Option<TeamMember>) -> bool {
    me.user.is_system_admin() || m.as_ref().is_some_and(|m| m.role == ROLE_TEAM_ADMIN)
}

#[derive(Deserialize)]
pub struct ScopeQuery {
    scope: Option<String>,
}

/// `GET /teams` (mine) or `?scope=open`.
pub async fn list(
    State(st): State<AppState>,
    me: AuthUser,
    Query(q): Query<ScopeQuery>,
) -> ApiResult<Json<Value>> {
    let uid = me.user.id.clone();
    let teams = match q.scope.as_deref() {
        None | Some("mine") => store_read!(st.store, |c| ops::user_teams(c, &uid).await)?,
        Some("open") => store_read!(st.store, |c| ops::open_teams(c).await)?,
        Some(_) => return Err(ApiError::validation("scope", "mine or open")),
    };
    Ok(Json(json!(
        teams.iter().map(render::team).collect::<Vec<_>>()
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    name: String,
    display_name: String,
    #[serde(default)]
    open: bool,
}

/// `POST /teams`: 201; the creator becomes team_admin.
pub async fn create(
    State(st): State<AppState>,
    me: AuthUser,
    Body(b): Body<CreateTeam>,
) -> ApiResult<Response> {
    if !st.settings.load().enable_team_creation && !me.user.is_system_admin() {
        return Err(ApiError::forbidden("team creation is disabled"));
    }
    validate::slug("name", &b.name)?;
    validate::chars(
        "display_name",
        &b.display_name,
        1,
        validate::MAX_DISPLAY_NAME,
    )?;
    let (id, uid) = (ids::new_id(), me.user.id.clone());
    let team = store_write!(st.store, |c| ops::create_team(
        c,
        &id,
        &b.name,
        &b.display_name,
        b.open,
        &uid
    )
    .await)?;
    Ok((StatusCode::CREATED, Json(render::team(&team))).into_response())
}

/// `GET /teams/{id}`: members, or anyone for open teams.
pub async fn get(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    validate::id("team_id", &id)?;
    let tid = id.clone();
    let team = store_read!(st.store, |c| ops::team_by_id(c, &tid).await)
        .map_err(|_| ApiError::not_found("team"))?;
    if !team.open {
        require_team(&st, &me, &id).await?;
    }
    Ok(Json(render::team(&team)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchTeam {
    display_name: Option<String>,
    open: Option<bool>,
}

/// `PATCH /teams/{id}`: team_admin.
pub async fn patch(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    Body(b): Body<PatchTeam>,
) -> ApiResult<Json<Value>> {
    let m = require_team(&st, &me, &id).await?;
    if !is_team_admin(&me, &m) {
        return Err(ApiError::forbidden("team_admin only"));
    }
    if let Some(d) = &b.display_name {
        validate::chars("display_name", d, 1, validate::MAX_DISPLAY_NAME)?;
    }
    let team = store_write!(st.store, |c| ops::patch_team(
        c,
        &id,
        b.display_name,
        b.open
    )
    .await)?;
    Ok(Json(render::team(&team)))
}

/// `POST /teams/{id}/join`: open teams only.
pub async fn join(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    validate::id("team_id", &id)?;
    let tid = id.clone();
    let team = store_read!(st.store, |c| ops::team_by_id(c, &tid).await)
        .map_err(|_| ApiError::not_found("team"))?;
    if !team.open || team.deleted_at != 0 {
        return Err(ApiError::not_found("team"));
    }
    let uid = me.user.id.clone();
    store_write!(st.store, |c| ops::add_team_member(
        c,
        &id,
        &uid,
        ROLE_MEMBER
    )
    .await)?;
    Ok(Json(render::team(&team)))
}

fn member_json(m: &TeamMember) -> Value {
    json!({"team_id": m.team_id, "user_id": m.user_id, "role": m.role, "created_at": m.created_at})
}

/// `GET /teams/{id}/members`.
pub async fn members(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    require_team(&st, &me, &id).await?;
    let list = store_read!(st.store, |c| ops::team_members(c, &id).await)?;
    Ok(Json(json!(
        list.iter().map(member_json).collect::<Vec<_>>()
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    user_id: String,
    #[serde(default)]
    role: Option<String>,
}

/// `POST /teams/{id}/members`: team_admin adds a user.
pub async fn add_member(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    Body(b): Body<AddMember>,
) -> ApiResult<Response> {
    let m = require_team(&st, &me, &id).await?;
    if !is_team_admin(&me, &m) {
        return Err(ApiError::forbidden("team_admin only"));
    }
    validate::id("user_id", &b.user_id)?;
    let role = match b.role.as_deref() {
        None | Some("member") => ROLE_MEMBER,
        Some("team_admin") => ROLE_TEAM_ADMIN,
        Some(_) => return Err(ApiError::validation("role", "member or team_admin")),
    };
    let uid = b.user_id.clone();
    let target = store_read!(st.store, |c| ops::user_by_id(c, &uid).await)
        .map_err(|_| ApiError::not_found("user"))?;
    if !target.active {
        return Err(ApiError::not_found("user"));
    }
    let (tid, uid) = (id.clone(), b.user_id.clone());
    let added = store_write!(st.store, |c| ops::add_team_member(c, &tid, &uid, role)
        .await)?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({"team_id": id, "user_id": b.user_id, "role": role})),
    )
        .into_response())
}

/// `DELETE /teams/{id}/members/{uid}`: team_admin, or the member leaving.
pub async fn remove_member(
    State(st): State<AppState>,
    me: AuthUser,
    Path((id, uid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let m = require_team(&st, &me, &id).await?;
    validate::id("user_id", &uid)?;
    if uid != me.user.id && !is_team_admin(&me, &m) {
        return Err(ApiError::forbidden("team_admin only"));
    }
    if !store_write!(st.store, |c| ops::remove_team_member(c, &id, &uid).await)? {
        return Err(ApiError::not_found("member"));
    }
    Ok(Json(json!({"status": "ok"})))
}
