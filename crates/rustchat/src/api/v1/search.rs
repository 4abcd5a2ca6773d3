//! `GET /api/v1/search` (CHAT-R17, spec §4.6): post search in the caller's channels.
//!
//! The query text goes through `search_query::parse` (which is what makes any input safe
//! for FTS5 and tsquery); a parse error is 400 naming `q`. Names in `from:` and `in:` are
//! bound as parameters. Results are visible posts of channels the caller is a member of,
//! newest first, paged by `page`/`per_page`.
//!
//! Searches share the database pool with every other request but cost more than most, so
//! at most [`concurrent_searches`] run at once; one that cannot start within the pool's
//! `acquire_timeout_ms` is a 503 with `Retry-After`, never a wait for the whole pool.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::teams::require_team;
use crate::api::render;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::search_query;
use crate::state::AppState;
use crate::store::SearchArgs;
use crate::store_read;

/// Default page size.
pub const DEFAULT_PER_PAGE: i64 = 20;
/// Largest page size.
pub const MAX_PER_PAGE: i64 = 100;
/// Largest page number, so `page * per_page` stays a sane offset.
pub const MAX_PAGE: i64 = 10_000;
/// `Retry-After` seconds when every search slot stayed busy.
pub const SEARCH_BUSY_RETRY_AFTER_SECS: u32 = 1;

/// Searches that may run at once for a database pool of `pool_max` connections: a
/// quarter of it, at least one. The rest stay free for the cheap reads and logins that
/// slow searches used to starve (bench/rustchat/RESULTS.md, runs B and C).
pub fn concurrent_searches(pool_max: u32) -> usize {
    (pool_max as usize / 4).max(1)
}

#[derive(Deserialize)]
pub struct SearchParams {
    q: Option<String>,
    team_id: Option<String>,
    page: Option<i64>,
    per_page: Option<i64>,
}

/// `GET /search?q=&team_id=&page=0&per_page=20`: `{posts: [newest first]}`.
pub async fn search(
    State(st): State<AppState>,
    me: AuthUser,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(p) = params.map_err(|e| ApiError::validation("query", e.body_text()))?;
    let page = p.page.unwrap_or(0);
    if !(0..=MAX_PAGE).contains(&page) {
        return Err(ApiError::validation("page", format!("0-{MAX_PAGE}")));
    }
    let per_page = p.per_page.unwrap_or(DEFAULT_PER_PAGE);
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(ApiError::validation(
            "per_page",
            format!("1-{MAX_PER_PAGE}"),
        ));
    }
    let team_id = p.team_id.filter(|t| !t.is_empty()).unwrap_or_default();
    if !team_id.is_empty() {
        require_team(&st, &me, &team_id).await?;
    }
    let query = search_query::parse(p.q.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::validation("q", e.to_string()))?;
    let args = SearchArgs {
        user_id: me.user.id.clone(),
        team_id,
        query,
        offset: page * per_page,
        limit: per_page,
    };
    let wait = Duration::from_millis(u64::from(st.cfg_peek().db_pool.acquire_timeout_ms));
    let _slot = tokio::time::timeout(wait, st.search_slots.acquire())
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| {
            ApiError::unavailable(
                "too many searches in progress; retry shortly",
                SEARCH_BUSY_RETRY_AFTER_SECS,
            )
        })?;
    let posts = store_read!(st.store, |c| ops::search_posts(c, args).await)?;
    Ok(Json(
        json!({"posts": posts.iter().map(render::post).collect::<Vec<_>>()}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_get_a_quarter_of_the_pool_and_at_least_one_slot() {
        assert_eq!(concurrent_searches(8), 2);
        assert_eq!(concurrent_searches(20), 5);
        assert_eq!(concurrent_searches(3), 1);
        assert_eq!(concurrent_searches(0), 1);
    }
}
