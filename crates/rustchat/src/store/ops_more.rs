// Statements for files, search and incoming webhooks (CHAT-R17, R24). `include!`d right
// after `ops.rs` into both backend modules, so `Db`, `PG`, `Conn`, `json_list`, the column
// macros and the model imports of `ops.rs` are in scope. Same rules: constant statement
// text, `$N` parameters, id lists as one JSON array parameter.

macro_rules! file_cols {
    () => {
        "id, user_id, channel_id, post_id, name, size, mime_type, path, sha256, created_at"
    };
}
macro_rules! hook_cols {
    () => {
        "id, token_hash, token_enc, team_id, channel_id, creator_id, display_name, description, \
         disabled, created_at"
    };
}

// ----- files -------------------------------------------------------------------------------

/// Inserts an upload's metadata (unattached).
pub async fn insert_file(c: &mut Conn, f: FileInfo) -> StoreResult<FileInfo> {
    sqlx::query(
        "INSERT INTO files (id, user_id, channel_id, post_id, name, size, mime_type, path, \
         sha256, created_at) VALUES ($1, $2, $3, '', $4, $5, $6, $7, $8, $9)",
    )
    .bind(&f.id)
    .bind(&f.user_id)
    .bind(&f.channel_id)
    .bind(&f.name)
    .bind(f.size)
    .bind(&f.mime_type)
    .bind(&f.path)
    .bind(&f.sha256)
    .bind(f.created_at)
    .execute(&mut *c)
    .await?;
    Ok(f)
}

/// One upload by id.
pub async fn file_by_id(c: &mut Conn, id: &str) -> StoreResult<FileInfo> {
    Ok(
        sqlx::query_as(concat!("SELECT ", file_cols!(), " FROM files WHERE id = $1"))
            .bind(id)
            .fetch_one(&mut *c)
            .await?,
    )
}

/// Up to `limit` uploads no post attached, created before `created_before` (ms), oldest
/// first.
pub async fn unattached_files(
    c: &mut Conn,
    created_before: i64,
    limit: i64,
) -> StoreResult<Vec<FileInfo>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        file_cols!(),
        " FROM files WHERE post_id = '' AND created_at < $1 ORDER BY created_at LIMIT $2"
    ))
    .bind(created_before)
    .bind(limit)
    .fetch_all(&mut *c)
    .await?)
}

/// Deletes the upload's row if it is still unattached; false when a post took it meanwhile
/// (or it is gone), in which case its bytes must stay.
pub async fn delete_unattached_file(c: &mut Conn, id: &str) -> StoreResult<bool> {
    let r = sqlx::query("DELETE FROM files WHERE id = $1 AND post_id = ''")
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(r.rows_affected() > 0)
}

// ----- search ------------------------------------------------------------------------------

// Shared parts of the four search statements. Parameters: $1 user, $2 team ('' = any),
// $3 `from:` usernames and $4 `in:` channel names (JSON arrays, '[]' = no filter), $5..$6
// the half-open created_at range, $7 limit, $8 offset, $9 the text query when there is one.
macro_rules! search_from {
    () => {
        concat!(
            "SELECT ",
            post_cols!(),
            " FROM posts p JOIN channels c ON c.id = p.channel_id \
             JOIN channel_members m ON m.channel_id = p.channel_id AND m.user_id = $1 \
             JOIN users u ON u.id = p.user_id"
        )
    };
}
macro_rules! search_where {
    () => {
        " p.deleted_at = 0 AND ($2 = '' OR c.team_id = $2 OR c.team_id = '') \
         AND p.created_at >= $5 AND p.created_at < $6"
    };
}
macro_rules! search_names_sqlite {
    () => {
        " AND ($3 = '[]' OR u.username IN (SELECT value FROM json_each($3))) \
         AND ($4 = '[]' OR c.name IN (SELECT value FROM json_each($4)))"
    };
}
macro_rules! search_names_pg {
    () => {
        " AND ($3 = '[]' OR u.username IN (SELECT jsonb_array_elements_text(CAST($3 AS jsonb)))) \
         AND ($4 = '[]' OR c.name IN (SELECT jsonb_array_elements_text(CAST($4 AS jsonb))))"
    };
}
macro_rules! search_order {
    () => {
        " ORDER BY p.created_at DESC, p.seq DESC LIMIT $7 OFFSET $8"
    };
}

/// The search statement for this backend, with (`text`) or without a text query. Public
/// so the search benchmark (bench/rustchat/search-plan) times exactly what the server runs.
///
/// SQLite with text: the FTS5 match is an `IN (subquery)` on `p.seq`, run once per search
/// into an ephemeral index with a Bloom filter, never a join on `posts_fts.rowid`. With
/// the join the planner drove from the caller's memberships and probed FTS5 once per post
/// of their channels (a `MATCH` plus a rowid seek through every index segment): ~100x
/// slower, ~24% of server CPU under load (issue 7, bench/rustchat/RESULTS.md). Now a
/// search reads each post of the caller's channels in the date range once, from
/// `idx_posts_channel_created`. The order stays `created_at DESC, seq DESC` rather than
/// FTS5's rowid order: `created_at` is `max(now, channel.last_post_at + 1)`, so across
/// channels it can disagree with `seq`, and stopping early on `seq` would change answers.
pub fn search_statement(text: bool) -> &'static str {
    match (PG, text) {
        (false, true) => concat!(
            search_from!(),
            " WHERE p.seq IN (SELECT rowid FROM posts_fts WHERE posts_fts MATCH $9) AND",
            search_where!(),
            search_names_sqlite!(),
            search_order!()
        ),
        (false, false) => concat!(
            search_from!(),
            " WHERE",
            search_where!(),
            search_names_sqlite!(),
            search_order!()
        ),
        // 'english' is the configuration the generated message_tsv column was built with
        // (migrations/postgres/0001_initial.sql), so query stems match indexed stems.
        (true, true) => concat!(
            search_from!(),
            " WHERE p.message_tsv @@ to_tsquery('english', $9) AND",
            search_where!(),
            search_names_pg!(),
            search_order!()
        ),
        (true, false) => concat!(
            search_from!(),
            " WHERE",
            search_where!(),
            search_names_pg!(),
            search_order!()
        ),
    }
}

/// Visible posts in the user's channels matching the query, newest first. The text part
/// is rendered by `search_query` for this backend (FTS5 `MATCH` or `to_tsquery`) and bound
/// as a parameter; a query without text is answered by its filters alone.
pub async fn search_posts(c: &mut Conn, a: SearchArgs) -> StoreResult<Vec<Post>> {
    let text = if PG {
        a.query.pg_tsquery()
    } else {
        a.query.fts5_match()
    };
    let (lo, hi) = a.query.created_range().unwrap_or((i64::MIN, i64::MAX));
    let sql = search_statement(text.is_some());
    let mut q = sqlx::query_as(sql)
        .bind(a.user_id)
        .bind(a.team_id)
        .bind(json_list(&a.query.from))
        .bind(json_list(&a.query.in_channels))
        .bind(lo)
        .bind(hi)
        .bind(a.limit)
        .bind(a.offset);
    if let Some(t) = text {
        q = q.bind(t);
    }
    Ok(q.fetch_all(&mut *c).await?)
}

// ----- incoming webhooks -------------------------------------------------------------------

/// Inserts a webhook.
pub async fn insert_hook(c: &mut Conn, h: IncomingHook) -> StoreResult<IncomingHook> {
    sqlx::query(
        "INSERT INTO incoming_webhooks (id, token_hash, token_enc, team_id, channel_id, \
         creator_id, display_name, description, disabled, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&h.id)
    .bind(&h.token_hash)
    .bind(&h.token_enc)
    .bind(&h.team_id)
    .bind(&h.channel_id)
    .bind(&h.creator_id)
    .bind(&h.display_name)
    .bind(&h.description)
    .bind(h.disabled)
    .bind(h.created_at)
    .execute(&mut *c)
    .await?;
    Ok(h)
}

/// One webhook by id.
pub async fn hook_by_id(c: &mut Conn, id: &str) -> StoreResult<IncomingHook> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        hook_cols!(),
        " FROM incoming_webhooks WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(&mut *c)
    .await?)
}

/// The enabled webhook whose token hashes to `token_hash`.
pub async fn enabled_hook_by_token_hash(
    c: &mut Conn,
    token_hash: &str,
) -> StoreResult<Option<IncomingHook>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        hook_cols!(),
        " FROM incoming_webhooks WHERE token_hash = $1 AND disabled = FALSE"
    ))
    .bind(token_hash)
    .fetch_optional(&mut *c)
    .await?)
}

/// Webhooks the user manages (every one with `all`, else those of teams where they are
/// team_admin), optionally of one team (`''` = any), oldest first.
pub async fn managed_hooks(
    c: &mut Conn,
    user_id: &str,
    all: bool,
    team_id: &str,
) -> StoreResult<Vec<IncomingHook>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        hook_cols!(),
        " FROM incoming_webhooks WHERE ($2 OR team_id IN (SELECT team_id FROM team_members \
         WHERE user_id = $1 AND role = 'team_admin')) AND ($3 = '' OR team_id = $3) \
         ORDER BY created_at"
    ))
    .bind(user_id)
    .bind(all)
    .bind(team_id)
    .fetch_all(&mut *c)
    .await?)
}

/// Deletes a webhook; false when there was none.
pub async fn delete_hook(c: &mut Conn, id: &str) -> StoreResult<bool> {
    let r = sqlx::query("DELETE FROM incoming_webhooks WHERE id = $1")
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(r.rows_affected() > 0)
}
