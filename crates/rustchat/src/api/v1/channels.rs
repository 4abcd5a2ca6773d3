//! `/api/v1/teams/{id}/channels`, `/api/v1/channels/*` (CHAT-R7, R16, R24).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::teams::{is_team_admin, require_team};
use crate::api::json::Body;
use crate::api::{render, validate};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::realtime::events;
use crate::state::AppState;
use crate::store::{Channel, ChannelMember, NewChannel, channel_type};
use crate::{ids, store_read, store_write};

/// The channel and the caller's member row. Not visible (private/DM the caller is not in,
/// or missing) → 404; public channels are visible to their team's members.
pub async fn visible_channel(
    st: &AppState,
    me: &AuthUser,
    id: &str,
) -> ApiResult<(Channel, Option<ChannelMember>)> {
    validate::id("channel_id", id)?;
    let (cid, uid) = (id.to_string(), me.user.id.clone());
    let (ch, m) = store_read!(st.store, |c| ops::channel_with_member(c, &cid, &uid).await)
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => ApiError::not_found("channel"),
            e => e.into(),
        })?;
    if m.is_some() || me.user.is_system_admin() {
        return Ok((ch, m));
    }
    if ch.kind == channel_type::OPEN && require_team(st, me, &ch.team_id).await.is_ok() {
        return Ok((ch, None));
    }
    Err(ApiError::not_found("channel"))
}

/// Like [`visible_channel`] but the caller must be a member.
pub async fn member_channel(
    st: &AppState,
    me: &AuthUser,
    id: &str,
) -> ApiResult<(Channel, ChannelMember)> {
    match visible_channel(st, me, id).await? {
        (ch, Some(m)) => Ok((ch, m)),
        (ch, None) if ch.kind == channel_type::OPEN => {
            Err(ApiError::forbidden("join the channel first"))
        }
        _ => Err(ApiError::not_found("channel")),
    }
}

#[derive(Deserialize)]
pub struct ScopeQuery {
    scope: Option<String>,
}

/// `GET /teams/{id}/channels` (mine incl. DM/GM) or `?scope=public`.
pub async fn list(
    State(st): State<AppState>,
    me: AuthUser,
    Path(team): Path<String>,
    Query(q): Query<ScopeQuery>,
) -> ApiResult<Json<Value>> {
    require_team(&st, &me, &team).await?;
    let uid = me.user.id.clone();
    let list = match q.scope.as_deref() {
        None | Some("mine") => store_read!(st.store, |c| ops::user_channels(c, &uid, &team).await)?,
        Some("public") => store_read!(st.store, |c| ops::public_channels(c, &team).await)?,
        Some(_) => return Err(ApiError::validation("scope", "mine or public")),
    };
    Ok(Json(json!(
        list.iter().map(render::channel).collect::<Vec<_>>()
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    name: String,
    display_name: String,
    #[serde(rename = "type")]
    kind: String,
    purpose: Option<String>,
    header: Option<String>,
}

/// `POST /teams/{id}/channels`: 201; the creator joins.
pub async fn create(
    State(st): State<AppState>,
    me: AuthUser,
    Path(team): Path<String>,
    Body(b): Body<CreateChannel>,
) -> ApiResult<Response> {
    require_team(&st, &me, &team).await?;
    validate::slug("name", &b.name)?;
    validate::chars(
        "display_name",
        &b.display_name,
        1,
        validate::MAX_DISPLAY_NAME,
    )?;
    let kind = match b.kind.as_str() {
        "public" => channel_type::OPEN,
        "private" => channel_type::PRIVATE,
        _ => return Err(ApiError::validation("type", "public or private")),
    };
    let purpose = b.purpose.unwrap_or_default();
    validate::chars("purpose", &purpose, 0, validate::MAX_PURPOSE)?;
    let header = b.header.unwrap_or_default();
    validate::chars("header", &header, 0, validate::MAX_HEADER)?;
    let new = NewChannel {
        id: ids::new_id(),
        team_id: team,
        kind,
        name: b.name,
        display_name: b.display_name,
        purpose,
        header,
        creator_id: me.user.id.clone(),
    };
    let ch = store_write!(st.store, |c| ops::create_channel(c, new).await)?;
    events::channel_event(&st, "channel_created", &ch, Some(&me.user.id));
    Ok((StatusCode::CREATED, Json(render::channel(&ch))).into_response())
}

/// `GET /channels/{id}`.
pub async fn get(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (ch, _) = visible_channel(&st, &me, &id).await?;
    Ok(Json(render::channel(&ch)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchChannel {
    display_name: Option<String>,
    purpose: Option<String>,
    header: Option<String>,
}

async fn may_manage(st: &AppState, me: &AuthUser, ch: &Channel) -> ApiResult<()> {
    if ch.creator_id == me.user.id || me.user.is_system_admin() {
        return Ok(());
    }
    if !ch.team_id.is_empty() {
        let m = require_team(st, me, &ch.team_id).await?;
        if is_team_admin(me, &m) {
            return Ok(());
        }
    }
    Err(ApiError::forbidden(
        "team_admin or the channel's creator only",
    ))
}

/// `PATCH /channels/{id}`: team_admin or creator.
pub async fn patch(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    Body(b): Body<PatchChannel>,
) -> ApiResult<Json<Value>> {
    let (ch, _) = visible_channel(&st, &me, &id).await?;
    may_manage(&st, &me, &ch).await?;
    if ch.is_archived() {
        return Err(ApiError::forbidden("channel is archived"));
    }
    if let Some(d) = &b.display_name {
        validate::chars("display_name", d, 1, validate::MAX_DISPLAY_NAME)?;
    }
    if let Some(p) = &b.purpose {
        validate::chars("purpose", p, 0, validate::MAX_PURPOSE)?;
    }
    if let Some(h) = &b.header {
        validate::chars("header", h, 0, validate::MAX_HEADER)?;
    }
    let ch = store_write!(st.store, |c| ops::patch_channel(
        c,
        &id,
        b.display_name,
        b.purpose,
        b.header
    )
    .await)?;
    events::channel_event(&st, "channel_updated", &ch, None);
    Ok(Json(render::channel(&ch)))
}

/// `DELETE /channels/{id}`: archives.
pub async fn archive(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (ch, _) = visible_channel(&st, &me, &id).await?;
    may_manage(&st, &me, &ch).await?;
    let ch = store_write!(st.store, |c| ops::archive_channel(c, &id).await)?;
    events::channel_event(&st, "channel_deleted", &ch, None);
    Ok(Json(render::channel(&ch)))
}

/// `POST /channels/{id}/join`: public channels of the caller's teams.
pub async fn join(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (ch, m) = visible_channel(&st, &me, &id).await?;
    if m.is_none() {
        if ch.kind != channel_type::OPEN {
            return Err(ApiError::not_found("channel"));
        }
        if ch.is_archived() {
            return Err(ApiError::forbidden("channel is archived"));
        }
        let uid = me.user.id.clone();
        if store_write!(st.store, |c| ops::add_channel_member(c, &id, &uid).await)? {
            events::user_added(&st, &ch, &me.user.id);
        }
    }
    Ok(Json(render::channel(&ch)))
}

/// `GET /channels/{id}/members`.
pub async fn members(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    visible_channel(&st, &me, &id).await?;
    let list = store_read!(st.store, |c| ops::channel_members(c, &id).await)?;
    Ok(Json(json!(
        list.iter().map(render::member).collect::<Vec<_>>()
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    user_id: String,
}

/// `POST /channels/{id}/members`: a member adds someone from the team.
pub async fn add_member(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    Body(b): Body<AddMember>,
) -> ApiResult<Response> {
    let (ch, _) = member_channel(&st, &me, &id).await?;
    if ch.is_direct() {
        return Err(ApiError::validation(
            "channel_id",
            "direct and group channels have fixed members",
        ));
    }
    if ch.is_archived() {
        return Err(ApiError::forbidden("channel is archived"));
    }
    validate::id("user_id", &b.user_id)?;
    let (tid, uid) = (ch.team_id.clone(), b.user_id.clone());
    if store_read!(st.store, |c| ops::team_member(c, &tid, &uid).await)?.is_none() {
        return Err(ApiError::validation(
            "user_id",
            "must be a member of the channel's team",
        ));
    }
    let uid = b.user_id.clone();
    let added = store_write!(st.store, |c| ops::add_channel_member(c, &id, &uid).await)?;
    if added {
        events::user_added(&st, &ch, &b.user_id);
    }
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({"channel_id": ch.id, "user_id": b.user_id})),
    )
        .into_response())
}

/// `DELETE /channels/{id}/members/{uid}`: self, or whoever manages the channel.
pub async fn remove_member(
    State(st): State<AppState>,
    me: AuthUser,
    Path((id, uid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (ch, _) = visible_channel(&st, &me, &id).await?;
    validate::id("user_id", &uid)?;
    if ch.is_direct() {
        return Err(ApiError::validation(
            "channel_id",
            "direct and group channels have fixed members",
        ));
    }
    if uid != me.user.id {
        may_manage(&st, &me, &ch).await?;
    }
    let (cid, u) = (id.clone(), uid.clone());
    if !store_write!(st.store, |c| ops::remove_channel_member(c, &cid, &u).await)? {
        return Err(ApiError::not_found("member"));
    }
    events::user_removed(&st, &id, &uid);
    Ok(Json(json!({"status": "ok"})))
}

/// `POST /channels/{id}/view`: marks read; `{last_viewed_at}`.
pub async fn view(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    member_channel(&st, &me, &id).await?;
    let uid = me.user.id.clone();
    let cid = id.clone();
    let at = store_write!(st.store, |c| ops::view_channel(c, &cid, &uid).await)?
        .ok_or_else(|| ApiError::not_found("channel"))?;
    events::channel_viewed(&st, &me.user.id, &id);
    Ok(Json(json!({"last_viewed_at": at})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Direct {
    user_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    user_ids: Vec<String>,
}

async fn open_direct(st: &AppState, me: &AuthUser, others: Vec<String>) -> ApiResult<Response> {
    let (ch, created) = direct_channel(st, me, others).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(render::channel(&ch))).into_response())
}

/// Finds or creates the DM/GM of the caller and `others`; announces a new one.
pub async fn direct_channel(
    st: &AppState,
    me: &AuthUser,
    others: Vec<String>,
) -> ApiResult<(Channel, bool)> {
    let mut members = others;
    members.push(me.user.id.clone());
    members.sort();
    members.dedup();
    for id in &members {
        validate::id("user_ids", id)?;
    }
    let want = members.clone();
    let users = store_read!(st.store, |c| ops::users_by_ids(c, &want).await)?;
    if users.len() != members.len() || users.iter().any(|u| !u.active) {
        return Err(ApiError::validation("user_ids", "unknown or inactive user"));
    }
    let mut names: Vec<&str> = users.iter().map(|u| u.username.as_str()).collect();
    names.sort();
    let display = names.join(", ");
    let me_id = me.user.id.clone();
    let ms = members.clone();
    let (ch, created) = store_write!(st.store, |c| ops::direct_channel(c, &ms, &me_id, &display)
        .await)?;
    if created {
        events::direct_added(st, &ch, &members, &me.user.id);
    }
    Ok((ch, created))
}

/// `POST /channels/direct`: 201 new, 200 existing.
pub async fn direct(
    State(st): State<AppState>,
    me: AuthUser,
    Body(b): Body<Direct>,
) -> ApiResult<Response> {
    validate::id("user_id", &b.user_id)?;
    if b.user_id == me.user.id {
        return Err(ApiError::validation(
            "user_id",
            "a direct channel needs another user",
        ));
    }
    open_direct(&st, &me, vec![b.user_id]).await
}

/// `POST /channels/group`: 3-8 members including the caller.
pub async fn group(
    State(st): State<AppState>,
    me: AuthUser,
    Body(b): Body<Group>,
) -> ApiResult<Response> {
    let mut set: Vec<String> = b
        .user_ids
        .into_iter()
        .filter(|u| *u != me.user.id)
        .collect();
    set.sort();
    set.dedup();
    if !(2..=7).contains(&set.len()) {
        return Err(ApiError::validation(
            "user_ids",
            "a group has 3-8 members including you",
        ));
    }
    open_direct(&st, &me, set).await
}
