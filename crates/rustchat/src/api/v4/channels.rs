//! v4 channels, memberships and read state.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::V4Body;
use super::{paging, render};
use crate::api::v1::channels::direct_channel;
use crate::api::v1::teams::require_team;
use crate::api::validate;
use crate::auth::AuthUser;
use crate::auth::extract::V4User;
use crate::error::{ApiError, V4Result};
use crate::realtime::events;
use crate::state::AppState;
use crate::store::{Channel, ChannelMember, NewChannel, StoreError, channel_type};
use crate::{ids, store_read, store_write};

/// The channel and the caller's membership, v4 rules: missing → 404, not visible → 403.
pub async fn channel_for(
    st: &AppState,
    me: &AuthUser,
    id: &str,
) -> V4Result<(Channel, Option<ChannelMember>)> {
    validate::id("channel_id", id)?;
    let (cid, uid) = (id.to_string(), me.user.id.clone());
    let (ch, m) = store_read!(st.store, |c| ops::channel_with_member(c, &cid, &uid).await)
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("channel"),
            e => e.into(),
        })?;
    if m.is_some() || me.user.is_system_admin() {
        return Ok((ch, m));
    }
    if ch.kind == channel_type::OPEN && require_team(st, me, &ch.team_id).await.is_ok() {
        return Ok((ch, None));
    }
    Err(ApiError::forbidden("you do not have access to this channel").into())
}

/// `GET /users/me/teams/{tid}/channels`.
pub async fn my_channels(
    State(st): State<AppState>,
    V4User(me): V4User,
    Path(tid): Path<String>,
) -> V4Result<Json<Value>> {
    require_team(&st, &me, &tid)
        .await
        .map_err(|_| ApiError::forbidden("not a member of this team"))?;
    let uid = me.user.id.clone();
    let list = store_read!(st.store, |c| ops::user_channels(c, &uid, &tid).await)?;
    Ok(Json(json!(
        list.iter().map(render::channel).collect::<Vec<_>>()
    )))
}

/// `GET /users/me/teams/{tid}/channels/members`.
pub async fn my_members(
    State(st): State<AppState>,
    V4User(me): V4User,
    Path(tid): Path<String>,
) -> V4Result<Json<Value>> {
    require_team(&st, &me, &tid)
        .await
        .map_err(|_| ApiError::forbidden("not a member of this team"))?;
    let uid = me.user.id.clone();
    let list = store_read!(st.store, |c| ops::user_channel_members(c, &uid, &tid).await)?;
    Ok(Json(json!(
        list.iter().map(render::member).collect::<Vec<_>>()
    )))
}

#[derive(Deserialize)]
pub struct Page {
    page: Option<i64>,
    per_page: Option<i64>,
}

/// `GET /teams/{tid}/channels`: public channels, paged.
pub async fn public_channels(
    State(st): State<AppState>,
    V4User(me): V4User,
    Path(tid): Path<String>,
    Query(p): Query<Page>,
) -> V4Result<Json<Value>> {
    require_team(&st, &me, &tid)
        .await
        .map_err(|_| ApiError::forbidden("not a member of this team"))?;
    let (page, per) = paging(p.page, p.per_page);
    let list = store_read!(st.store, |c| ops::public_channels(c, &tid).await)?;
    let out: Vec<Value> = list
        .iter()
        .skip((page * per) as usize)
        .take(per as usize)
        .map(render::channel)
        .collect();
    Ok(Json(json!(out)))
}

#[derive(Deserialize)]
pub struct CreateChannel {
    team_id: String,
    name: String,
    display_name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    header: String,
}

/// `POST /channels`: 201.
pub async fn create(
    State(st): State<AppState>,
    V4User(me): V4User,
    V4Body(b): V4Body<CreateChannel>,
) -> V4Result<Response> {
    require_team(&st, &me, &b.team_id)
        .await
        .map_err(|_| ApiError::forbidden("not a member of this team"))?;
    validate::slug("name", &b.name)?;
    validate::chars(
        "display_name",
        &b.display_name,
        1,
        validate::MAX_DISPLAY_NAME,
    )?;
    validate::chars("purpose", &b.purpose, 0, validate::MAX_PURPOSE)?;
    validate::chars("header", &b.header, 0, validate::MAX_HEADER)?;
    let kind = match b.kind.as_str() {
        "O" => channel_type::OPEN,
        "P" => channel_type::PRIVATE,
        _ => return Err(ApiError::validation("type", "O or P").into()),
    };
    let new = NewChannel {
        id: ids::new_id(),
        team_id: b.team_id,
        kind,
        name: b.name,
        display_name: b.display_name,
        purpose: b.purpose,
        header: b.header,
        creator_id: me.user.id.clone(),
    };
    let ch = store_write!(st.store, |c| ops::create_channel(c, new).await)?;
    events::channel_event(&st, "channel_created", &ch, Some(&me.user.id));
    Ok((StatusCode::CREATED, Json(render::channel(&ch))).into_response())
}

/// `POST /channels/direct`: body `[user_id, user_id]` (the caller among them).
pub async fn direct(
    State(st): State<AppState>,
    V4User(me): V4User,
    V4Body(ids): V4Body<Vec<String>>,
) -> V4Result<Response> {
    if ids.len() != 2 || !ids.contains(&me.user.id) {
        return Err(ApiError::validation("user_ids", "two ids, yours and the other user's").into());
    }
    let other: Vec<String> = ids.into_iter().filter(|i| *i != me.user.id).collect();
    let other = if other.is_empty() {
        vec![me.user.id.clone()]
    } else {
        other
    };
    let (ch, _) = direct_channel(&st, &me, other).await?;
    Ok((StatusCode::CREATED, Json(render::channel(&ch))).into_response())
}

/// `GET /channels/{id}`.
pub async fn get(
    State(st): State<AppState>,
    V4User(me): V4User,
    Path(id): Path<String>,
) -> V4Result<Json<Value>> {
    let (ch, _) = channel_for(&st, &me, &id).await?;
    Ok(Json(render::channel(&ch)))
}

/// `GET /channels/{id}/members/me`.
pub async fn my_member(
    State(st): State<AppState>,
    V4User(me): V4User,
    Path(id): Path<String>,
) -> V4Result<Json<Value>> {
    match channel_for(&st, &me, &id).await? {
        (_, Some(m)) => Ok(Json(render::member(&m))),
        _ => Err(ApiError::not_found("channel member").into()),
    }
}

#[derive(Deserialize)]
pub struct AddMember {
    user_id: String,
}

/// `POST /channels/{id}/members`: 201 with the member row.
pub async fn add_member(
    State(st): State<AppState>,
    V4User(me): V4User,
    Path(id): Path<String>,
    V4Body(b): V4Body<AddMember>,
) -> V4Result<Response> {
    let (ch, mine) = channel_for(&st, &me, &id).await?;
    validate::id("user_id", &b.user_id)?;
    if ch.is_direct() || ch.is_archived() {
        return Err(ApiError::forbidden("members of this channel cannot change").into());
    }
    let self_join_public = b.user_id == me.user.id && ch.kind == channel_type::OPEN;
    if mine.is_none() && !self_join_public && !me.user.is_system_admin() {
        return Err(ApiError::forbidden("join the channel first").into());
    }
    let (tid, uid) = (ch.team_id.clone(), b.user_id.clone());
    if store_read!(st.store, |c| ops::team_member(c, &tid, &uid).await)?.is_none() {
        return Err(
            ApiError::validation("user_id", "must be a member of the channel's team").into(),
        );
    }
    let (cid, uid) = (id.clone(), b.user_id.clone());
    if store_write!(st.store, |c| ops::add_channel_member(c, &cid, &uid).await)? {
        events::user_added(&st, &ch, &b.user_id);
    }
    let (cid, uid) = (id, b.user_id);
    let m = store_read!(st.store, |c| ops::channel_member(c, &cid, &uid).await)?
        .ok_or_else(|| ApiError::not_found("channel member"))?;
    Ok((StatusCode::CREATED, Json(render::member(&m))).into_response())
}

#[derive(Deserialize)]
pub struct View {
    channel_id: String,
    #[serde(default)]
    prev_channel_id: String,
}

/// `POST /channels/members/me/view`: views the channel (and `prev_channel_id`).
pub async fn view(
    State(st): State<AppState>,
    V4User(me): V4User,
    V4Body(b): V4Body<View>,
) -> V4Result<Json<Value>> {
    let mut times = serde_json::Map::new();
    let mut to_write: Vec<String> = Vec::new();
    for cid in [b.channel_id, b.prev_channel_id] {
        if cid.is_empty() || to_write.contains(&cid) || times.contains_key(&cid) {
            continue;
        }
        let (ch, m) = channel_for(&st, &me, &cid).await?;
        // No membership row: the write would change nothing. Caught up: it would only move
        // last_viewed_at, so the stored time stands and the writer is spared (the viewer's
        // other sessions still hear channel_viewed, as for any view).
        let Some(m) = m else { continue };
        if m.is_caught_up(&ch) {
            events::channel_viewed(&st, &me.user.id, &cid);
            times.insert(cid, json!(m.last_viewed_at));
        } else {
            to_write.push(cid);
        }
    }
    if to_write.is_empty() {
        return Ok(Json(json!({"status": "OK", "last_viewed_at_times": times})));
    }
    // Both channels of a switch in one write job: one queue slot and one savepoint on the
    // single SQLite writer instead of two.
    let (ids, uid) = (to_write, me.user.id.clone());
    let viewed = store_write!(st.store, |c| {
        let mut at = Vec::with_capacity(ids.len());
        for cid in ids {
            if let Some(t) = ops::view_channel(c, &cid, &uid).await? {
                at.push((cid, t));
            }
        }
        Ok(at)
    })?;
    for (cid, at) in viewed {
        events::channel_viewed(&st, &me.user.id, &cid);
        times.insert(cid, json!(at));
    }
    Ok(Json(json!({"status": "OK", "last_viewed_at_times": times})))
}
