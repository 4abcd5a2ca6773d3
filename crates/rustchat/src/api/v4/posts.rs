//! v4 posts, threads and reactions, with Mattermost's post-list shape.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::body::{V4Body, V4PostBody};
use super::channels::channel_for;
use super::{paging, render};
use crate::api::v1::posts::{CreatePostArgs, create_post};
use crate::api::validate;
use crate::auth::AuthUser;
use crate::auth::extract::V4User;
use crate::error::{ApiError, V4Result};
use crate::realtime::events;
use crate::state::AppState;
use crate::store::{Post, PostPage, Reaction};
use crate::{store_read, store_write};

/// `{"order", "posts", "next_post_id", "prev_post_id", "has_next"}` from posts oldest
/// first; `roots` (of replies not on the page) are added to `posts`, not to `order`.
fn post_list(page: &[Post], roots: &[Post], reactions: Vec<Reaction>, has_next: bool) -> Value {
    let reactions = render::reactions_by_post(reactions);
    let mut posts = Map::new();
    for p in page.iter().chain(roots.iter()) {
        posts.insert(
            p.id.clone(),
            render::post(p, reactions.get(&p.id).map(Vec::as_slice)),
        );
    }
    let order: Vec<&str> = page.iter().rev().map(|p| p.id.as_str()).collect();
    json!({
        "order": order,
        "posts": posts,
        "next_post_id": "",
        "prev_post_id": if has_next { page.first().map(|p| p.id.as_str()).unwrap_or("") } else { "" },
        "has_next": has_next,
    })
}

#[derive(Deserialize)]
pub struct CreatePost {
    channel_id: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    root_id: String,
    #[serde(default)]
    pending_post_id: String,
    #[serde(default)]
    file_ids: Vec<String>,
    #[serde(default)]
    props: Option<Map<String, Value>>,
}

/// `POST /posts`: 201; a repeated `pending_post_id` returns the stored post.
pub async fn create(
    State(st): State<AppState>,
    V4User(me): V4User,
    V4PostBody(b): V4PostBody<CreatePost>,
) -> V4Result<Response> {
    channel_for(&st, &me, &b.channel_id).await?;
    let args = CreatePostArgs {
        message: b.message,
        root_id: (!b.root_id.is_empty()).then_some(b.root_id),
        file_ids: b.file_ids,
        client_msg_id: (!b.pending_post_id.is_empty()).then_some(b.pending_post_id),
        props: b.props,
    };
    let out = create_post(&st, &me, b.channel_id, args).await?;
    if out.created {
        st.metrics
            .messages_sent
            .with_label_values(&["api_v4"])
            .inc();
    }
    let status = if out.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(render::post(&out.post, None))).into_response())
}

async fn visible(st: &AppState, me: &AuthUser, id: &str) -> V4Result<Post> {
    validate::id("post_id", id)?;
    let pid = id.to_string();
    let post = store_read!(st.store, |c| ops::post_by_id(c, &pid).await)
        .map_err(|_| ApiError::not_found("post"))?;
    if post.deleted_at != 0 {
        return Err(ApiError::not_found("post").into());
    }
    channel_for(st, me, &post.channel_id).await?;
    Ok(post)
}

/// `GET /posts/{id}`.
pub async fn get(
    State(st): State<AppState>,
    V4User(me): V4User,
    Path(id): Path<String>,
) -> V4Result<Json<Value>> {
    let post = visible(&st, &me, &id).await?;
    let ids = vec![post.id.clone()];
    let rs = store_read!(st.store, |c| ops::reactions_for(c, &ids).await)?;
    Ok(Json(render::post(&post, Some(&rs))))
}

#[derive(Deserialize)]
pub struct PostsQuery {
    page: Option<i64>,
    per_page: Option<i64>,
    since: Option<i64>,
    before: Option<String>,
    after: Option<String>,
}

/// `GET /channels/{id}/posts?page&per_page|since|before|after`.
pub async fn channel_posts(
    State(st): State<AppState>,
    V4User(me): V4User,
    Path(id): Path<String>,
    Query(q): Query<PostsQuery>,
) -> V4Result<Json<Value>> {
    channel_for(&st, &me, &id).await?;
    let (page, per) = paging(q.page, q.per_page);
    let which = if let Some(s) = q.since {
        PostPage::Since(s.max(0))
    } else if let Some(b) = q.before.filter(|s| !s.is_empty()) {
        validate::id("before", &b)?;
        PostPage::Before(b)
    } else if let Some(a) = q.after.filter(|s| !s.is_empty()) {
        validate::id("after", &a)?;
        PostPage::After(a)
    } else {
        PostPage::Latest { offset: page * per }
    };
    // The page, its missing roots and their reactions on one pooled connection: under load
    // each checkout waits its turn for one of the few SQLite readers.
    let (posts, more, roots, rs) = store_read!(st.store, |c| {
        let (posts, more) = ops::channel_posts(c, &id, which, per).await?;
        let (roots, rs) = ops::page_extras(c, &posts).await?;
        Ok((posts, more, roots, rs))
    })?;
    Ok(Json(post_list(&posts, &roots, rs, more)))
}

/// `GET /posts/{id}/thread`: root and replies as a post list.
pub async fn thread(
    State(st): State<AppState>,
    V4User(me): V4User,
    Path(id): Path<String>,
) -> V4Result<Json<Value>> {
    let post = visible(&st, &me, &id).await?;
    let root_id = if post.root_id.is_empty() {
        post.id
    } else {
        post.root_id
    };
    let (all, rs) = store_read!(st.store, |c| {
        let (root, replies) = ops::thread(c, &root_id).await?;
        let mut all = vec![root];
        all.extend(replies);
        // A thread's posts are all on the page, so there are no extra roots.
        let (_, rs) = ops::page_extras(c, &all).await?;
        Ok((all, rs))
    })?;
    Ok(Json(post_list(&all, &[], rs, false)))
}

/// `GET /posts/{id}/reactions`.
pub async fn reactions(
    State(st): State<AppState>,
    V4User(me): V4User,
    Path(id): Path<String>,
) -> V4Result<Json<Value>> {
    visible(&st, &me, &id).await?;
    let ids = vec![id];
    let rs = store_read!(st.store, |c| ops::reactions_for(c, &ids).await)?;
    Ok(Json(json!(
        rs.iter().map(render::reaction).collect::<Vec<_>>()
    )))
}

#[derive(Deserialize)]
pub struct AddReaction {
    user_id: String,
    post_id: String,
    emoji_name: String,
}

/// `POST /reactions`: the reaction (idempotent).
pub async fn add_reaction(
    State(st): State<AppState>,
    V4User(me): V4User,
    V4Body(b): V4Body<AddReaction>,
) -> V4Result<Json<Value>> {
    if b.user_id != me.user.id {
        return Err(ApiError::forbidden("you may only react as yourself").into());
    }
    validate::emoji(&b.emoji_name)?;
    let post = visible(&st, &me, &b.post_id).await?;
    let (ch, m) = channel_for(&st, &me, &post.channel_id).await?;
    if m.is_none() || ch.is_archived() {
        return Err(ApiError::forbidden("not a member of this channel").into());
    }
    let (pid, uid, e) = (b.post_id.clone(), me.user.id.clone(), b.emoji_name.clone());
    let added = store_write!(st.store, |c| ops::add_reaction(c, &pid, &uid, &e).await)?;
    let r = match added {
        Some(r) => {
            events::reaction(&st, "reaction_added", &post.channel_id, &r);
            r
        }
        None => crate::store::Reaction {
            post_id: b.post_id,
            user_id: me.user.id.clone(),
            emoji_name: b.emoji_name,
            created_at: crate::store::now_ms(),
        },
    };
    Ok(Json(render::reaction(&r)))
}

/// `DELETE /users/{uid}/posts/{pid}/reactions/{emoji}`.
pub async fn remove_reaction(
    State(st): State<AppState>,
    V4User(me): V4User,
    Path((uid, pid, emoji)): Path<(String, String, String)>,
) -> V4Result<Json<Value>> {
    if uid != me.user.id {
        return Err(ApiError::forbidden("you may only remove your own reactions").into());
    }
    validate::emoji(&emoji)?;
    let post = visible(&st, &me, &pid).await?;
    let removed = store_write!(st.store, |c| ops::remove_reaction(c, &pid, &uid, &emoji)
        .await)?;
    if let Some(r) = &removed {
        events::reaction(&st, "reaction_removed", &post.channel_id, r);
    }
    Ok(Json(json!({"status": "OK"})))
}
