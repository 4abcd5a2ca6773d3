//! `/api/v1/channels/{id}/posts`, `/api/v1/posts/*`, reactions, unreads (CHAT-R7, R14-R16).

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::channels::{member_channel, visible_channel};
use super::teams::{is_team_admin, require_team};
use crate::api::json::PostBody;
use crate::api::{render, validate};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::realtime::events;
use crate::state::AppState;
use crate::store::{NewPost, Post, PostPage};
use crate::{ids, store_read, store_write};

/// Default and largest page sizes.
pub const DEFAULT_PAGE: i64 = 60;
/// Largest page.
pub const MAX_PAGE: i64 = 200;

#[derive(Deserialize)]
pub struct PageQuery {
    before: Option<String>,
    after: Option<String>,
    since: Option<i64>,
    limit: Option<i64>,
}

/// `GET /channels/{id}/posts?before|after|since&limit`: `{posts: [oldest→newest], has_more}`.
pub async fn list(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Value>> {
    visible_channel(&st, &me, &id).await?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::validation("limit", format!("1-{MAX_PAGE}")));
    }
    let page = match (q.before, q.after, q.since) {
        (Some(b), None, None) => {
            validate::id("before", &b)?;
            PostPage::Before(b)
        }
        (None, Some(a), None) => {
            validate::id("after", &a)?;
            PostPage::After(a)
        }
        (None, None, Some(s)) if s >= 0 => PostPage::Since(s),
        (None, None, None) => PostPage::Latest { offset: 0 },
        _ => {
            return Err(ApiError::validation(
                "before",
                "use one of before, after, since (>= 0)",
            ));
        }
    };
    let (posts, has_more) =
        store_read!(st.store, |c| ops::channel_posts(c, &id, page, limit).await)?;
    Ok(Json(
        json!({"posts": posts.iter().map(render::post).collect::<Vec<_>>(), "has_more": has_more}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePost {
    message: String,
    root_id: Option<String>,
    file_ids: Option<Vec<String>>,
    client_msg_id: Option<String>,
    props: Option<serde_json::Map<String, Value>>,
}

/// Most files on one post.
pub const MAX_FILES_PER_POST: usize = 10;

/// Validates and stores a post; publishes nothing (the caller does, once committed).
pub async fn create_post(
    st: &AppState,
    me: &AuthUser,
    channel_id: String,
    b: CreatePostArgs,
) -> ApiResult<crate::store::PostOutcome> {
    validate::id("channel_id", &channel_id)?;
    let file_ids = b.file_ids;
    if file_ids.len() > MAX_FILES_PER_POST {
        return Err(ApiError::validation(
            "file_ids",
            format!("at most {MAX_FILES_PER_POST}"),
        ));
    }
    for f in &file_ids {
        validate::id("file_ids", f)?;
    }
    validate::message(&b.message, !file_ids.is_empty())?;
    let root_id = b.root_id.unwrap_or_default();
    if !root_id.is_empty() {
        validate::id("root_id", &root_id)?;
    }
    if let Some(cm) = &b.client_msg_id {
        validate::chars("client_msg_id", cm, 1, 64)?;
    }
    let props = serde_json::to_string(&b.props.unwrap_or_default()).unwrap_or_else(|_| "{}".into());
    if props.len() > 16 * 1024 {
        return Err(ApiError::validation("props", "at most 16 KiB"));
    }
    let new = NewPost {
        id: ids::new_id(),
        channel_id,
        user_id: me.user.id.clone(),
        root_id,
        message: b.message,
        props,
        file_ids,
        client_msg_id: b.client_msg_id,
    };
    let online: HashSet<String> =
        crate::realtime::presence::online_for_here(st, &new.message).await;
    let out = store_write!(st.store, |c| ops::create_post(c, new, &online).await)?;
    if out.created {
        events::posted(st, &out.channel, &out.post, &me.user, &out.mentions);
    }
    Ok(out)
}

/// A post request in either API's terms.
pub struct CreatePostArgs {
    pub message: String,
    pub root_id: Option<String>,
    pub file_ids: Vec<String>,
    pub client_msg_id: Option<String>,
    pub props: Option<serde_json::Map<String, Value>>,
}

/// `POST /channels/{id}/posts`: 201, or 200 with the stored post on a repeated
/// `client_msg_id`.
pub async fn create(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    PostBody(b): PostBody<CreatePost>,
) -> ApiResult<Response> {
    let args = CreatePostArgs {
        message: b.message,
        root_id: b.root_id,
        file_ids: b.file_ids.unwrap_or_default(),
        client_msg_id: b.client_msg_id,
        props: b.props,
    };
    let out = create_post(&st, &me, id, args).await?;
    if !out.created {
        return Ok((StatusCode::OK, Json(render::post(&out.post))).into_response());
    }
    st.metrics
        .messages_sent
        .with_label_values(&["api_v1"])
        .inc();
    Ok((StatusCode::CREATED, Json(render::post(&out.post))).into_response())
}

/// The post, if the caller may see its channel.
pub async fn visible_post(st: &AppState, me: &AuthUser, id: &str) -> ApiResult<Post> {
    validate::id("post_id", id)?;
    let pid = id.to_string();
    let post = store_read!(st.store, |c| ops::post_by_id(c, &pid).await)
        .map_err(|_| ApiError::not_found("post"))?;
    if post.deleted_at != 0 {
        return Err(ApiError::not_found("post"));
    }
    visible_channel(st, me, &post.channel_id).await?;
    Ok(post)
}

/// `GET /posts/{id}`.
pub async fn get(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(render::post(&visible_post(&st, &me, &id).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditPost {
    message: String,
}

/// `PATCH /posts/{id}`: the author only.
pub async fn edit(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    PostBody(b): PostBody<EditPost>,
) -> ApiResult<Json<Value>> {
    let post = visible_post(&st, &me, &id).await?;
    if post.user_id != me.user.id {
        return Err(ApiError::forbidden("only the author edits a post"));
    }
    let (ch, _) = member_channel(&st, &me, &post.channel_id).await?;
    if ch.is_archived() {
        return Err(ApiError::forbidden("channel is archived"));
    }
    validate::message(&b.message, post.file_ids != "[]")?;
    let post = store_write!(st.store, |c| ops::edit_post(c, &id, &b.message).await)?;
    events::post_changed(&st, "post_edited", &post);
    Ok(Json(render::post(&post)))
}

/// `DELETE /posts/{id}`: author, team_admin, system_admin.
pub async fn delete(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let post = visible_post(&st, &me, &id).await?;
    if post.user_id != me.user.id && !me.user.is_system_admin() {
        let (ch, _) = visible_channel(&st, &me, &post.channel_id).await?;
        let allowed = if ch.team_id.is_empty() {
            false
        } else {
            let m = require_team(&st, &me, &ch.team_id).await?;
            is_team_admin(&me, &m)
        };
        if !allowed {
            return Err(ApiError::forbidden(
                "only the author or a team_admin deletes a post",
            ));
        }
    }
    let post = store_write!(st.store, |c| ops::delete_post(c, &id).await)?;
    events::post_changed(&st, "post_deleted", &post);
    Ok(Json(render::post(&post)))
}

/// `GET /posts/{id}/thread`: `{root, replies}`.
pub async fn thread(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let post = visible_post(&st, &me, &id).await?;
    let root_id = if post.root_id.is_empty() {
        post.id
    } else {
        post.root_id
    };
    let (root, replies) = store_read!(st.store, |c| ops::thread(c, &root_id).await)?;
    Ok(Json(
        json!({"root": render::post(&root), "replies": replies.iter().map(render::post).collect::<Vec<_>>()}),
    ))
}

/// `GET /posts/{id}/reactions`.
pub async fn reactions(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    visible_post(&st, &me, &id).await?;
    let ids = vec![id];
    let list = store_read!(st.store, |c| ops::reactions_for(c, &ids).await)?;
    Ok(Json(json!(
        list.iter().map(render::reaction).collect::<Vec<_>>()
    )))
}

/// `PUT /posts/{id}/reactions/{emoji}`: idempotent.
pub async fn add_reaction(
    State(st): State<AppState>,
    me: AuthUser,
    Path((id, emoji)): Path<(String, String)>,
) -> ApiResult<Response> {
    validate::emoji(&emoji)?;
    let post = visible_post(&st, &me, &id).await?;
    let (ch, _) = member_channel(&st, &me, &post.channel_id).await?;
    if ch.is_archived() {
        return Err(ApiError::forbidden("channel is archived"));
    }
    let uid = me.user.id.clone();
    let e = emoji.clone();
    let added = store_write!(st.store, |c| ops::add_reaction(c, &id, &uid, &e).await)?;
    if let Some(r) = &added {
        events::reaction(&st, "reaction_added", &post.channel_id, r);
    }
    let status = if added.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({"post_id": post.id, "user_id": me.user.id, "emoji_name": emoji})),
    )
        .into_response())
}

/// `DELETE /posts/{id}/reactions/{emoji}`: idempotent.
pub async fn remove_reaction(
    State(st): State<AppState>,
    me: AuthUser,
    Path((id, emoji)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    validate::emoji(&emoji)?;
    let post = visible_post(&st, &me, &id).await?;
    let uid = me.user.id.clone();
    let removed = store_write!(st.store, |c| ops::remove_reaction(c, &id, &uid, &emoji)
        .await)?;
    if let Some(r) = &removed {
        events::reaction(&st, "reaction_removed", &post.channel_id, r);
    }
    Ok(Json(json!({"status": "ok"})))
}

#[derive(Deserialize)]
pub struct UnreadQuery {
    team_id: Option<String>,
}

/// `GET /users/me/unreads?team_id=`.
pub async fn unreads(
    State(st): State<AppState>,
    me: AuthUser,
    Query(q): Query<UnreadQuery>,
) -> ApiResult<Json<Value>> {
    if let Some(t) = &q.team_id {
        require_team(&st, &me, t).await?;
    }
    let uid = me.user.id.clone();
    let list = store_read!(st.store, |c| ops::unreads(c, &uid, q.team_id.as_deref())
        .await)?;
    Ok(Json(json!(
        list.iter()
            .map(|u| json!({
                "channel_id": u.channel_id, "team_id": u.team_id,
                "unread_count": (u.total_msg_count - u.msg_count).max(0),
                "mention_count": u.mention_count, "last_viewed_at": u.last_viewed_at,
            }))
            .collect::<Vec<_>>()
    )))
}
