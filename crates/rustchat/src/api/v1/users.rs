//! `/api/v1/users/*` (CHAT-R7, R20): profiles and statuses.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::json::Body;
use crate::api::{render, validate};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::realtime::presence;
use crate::state::AppState;
use crate::store::UserPatch;
use crate::{store_read, store_write};

/// Most ids in one `?ids=` lookup.
pub const MAX_IDS: usize = 200;
/// Most users a prefix search returns.
pub const MAX_PREFIX_RESULTS: i64 = 50;

#[derive(Deserialize)]
pub struct UsersQuery {
    ids: Option<String>,
    q: Option<String>,
    team_id: Option<String>,
}

/// Splits and validates a comma-separated id list.
pub fn id_list(field: &'static str, raw: &str) -> ApiResult<Vec<String>> {
    let ids: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if ids.len() > MAX_IDS {
        return Err(ApiError::validation(
            field,
            format!("at most {MAX_IDS} ids"),
        ));
    }
    for id in &ids {
        validate::id(field, id)?;
    }
    Ok(ids)
}

/// `GET /users?ids=a,b` or `?q=prefix&team_id=`.
pub async fn list(
    State(st): State<AppState>,
    me: AuthUser,
    Query(q): Query<UsersQuery>,
) -> ApiResult<Json<Value>> {
    let users = if let Some(raw) = q.ids {
        let ids = id_list("ids", &raw)?;
        store_read!(st.store, |c| ops::users_by_ids(c, &ids).await)?
    } else if let Some(prefix) = q.q {
        if prefix.chars().count() > 64 {
            return Err(ApiError::validation("q", "at most 64 characters"));
        }
        if let Some(t) = &q.team_id {
            validate::id("team_id", t)?;
        }
        let like = format!("{}%", escape_like(&prefix.to_lowercase()));
        let team = q.team_id.clone();
        store_read!(st.store, |c| ops::users_by_prefix(
            c,
            &like,
            team.as_deref(),
            MAX_PREFIX_RESULTS
        )
        .await)?
    } else {
        return Err(ApiError::validation("ids", "give ids=... or q=..."));
    };
    Ok(Json(json!(
        users
            .iter()
            .map(|u| render::user(u, &me.user))
            .collect::<Vec<_>>()
    )))
}

/// Escapes `%`, `_` and `\` for `LIKE ... ESCAPE '\'`.
pub fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// `GET /users/{id|me}`.
pub async fn get(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = if id == "me" { me.user.id.clone() } else { id };
    validate::id("user_id", &id)?;
    let u = store_read!(st.store, |c| ops::user_by_id(c, &id).await)
        .map_err(|_| ApiError::not_found("user"))?;
    Ok(Json(render::user(&u, &me.user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchMe {
    display_name: Option<String>,
    nickname: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    position: Option<String>,
    locale: Option<String>,
}

/// `PATCH /users/me`.
pub async fn patch_me(
    State(st): State<AppState>,
    me: AuthUser,
    Body(b): Body<PatchMe>,
) -> ApiResult<Json<Value>> {
    if let Some(d) = &b.display_name {
        validate::chars("display_name", d, 1, validate::MAX_DISPLAY_NAME)?;
    }
    for (f, v) in [
        ("nickname", &b.nickname),
        ("first_name", &b.first_name),
        ("last_name", &b.last_name),
        ("position", &b.position),
    ] {
        if let Some(v) = v {
            validate::chars(f, v, 0, 64)?;
        }
    }
    if let Some(l) = &b.locale {
        validate::chars("locale", l, 2, 16)?;
    }
    let p = UserPatch {
        display_name: b.display_name,
        nickname: b.nickname,
        first_name: b.first_name,
        last_name: b.last_name,
        position: b.position,
        locale: b.locale,
    };
    let uid = me.user.id.clone();
    let u = store_write!(st.store, |c| ops::patch_user(c, &uid, p).await)?;
    crate::realtime::cluster::revoke(
        &st,
        crate::realtime::cluster::Revocation::User {
            id: Some(u.id.clone()),
            close: false,
        },
    );
    Ok(Json(render::user(&u, &u)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetStatus {
    status: String,
}

/// `PUT /users/me/status`.
pub async fn set_status(
    State(st): State<AppState>,
    me: AuthUser,
    Body(b): Body<SetStatus>,
) -> ApiResult<Json<Value>> {
    if !presence::STATUSES.contains(&b.status.as_str()) {
        return Err(ApiError::validation(
            "status",
            "online, away, dnd or offline",
        ));
    }
    presence::set(&st, &me.user.id, &b.status).await?;
    Ok(Json(json!({"user_id": me.user.id, "status": b.status})))
}

#[derive(Deserialize)]
pub struct IdsQuery {
    ids: String,
}

/// `GET /users/status?ids=`.
pub async fn statuses(
    State(st): State<AppState>,
    _me: AuthUser,
    Query(q): Query<IdsQuery>,
) -> ApiResult<Json<Value>> {
    let ids = id_list("ids", &q.ids)?;
    let m = presence::statuses(&st, &ids).await?;
    Ok(Json(json!(
        ids.iter()
            .map(|id| json!({"user_id": id, "status": m[id]}))
            .collect::<Vec<_>>()
    )))
}
