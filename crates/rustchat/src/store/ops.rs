// Statements shared by both backends. This file is `include!`d into `store::sqlite_ops` and
// `store::pg_ops`, each of which defines `Db` and `PG` first (see `store/mod.rs`). Every
// statement is constant text with `$N` parameters; variable-length id lists travel as one
// JSON array parameter, expanded by `json_each` (SQLite) or `jsonb_array_elements_text`
// (PostgreSQL), so no SQL is ever assembled from input.

#[allow(unused_imports)]
use crate::store::model::*;
#[allow(unused_imports)]
use crate::store::{StoreError, StoreResult, now_ms};

/// The connection type of this backend.
pub type Conn = <Db as sqlx::Database>::Connection;

macro_rules! user_cols {
    () => {
        "id, username, email, password_hash, display_name, nickname, first_name, last_name, \
         position, role, is_bot, active, locale, created_at, updated_at, deleted_at"
    };
}
macro_rules! team_cols {
    () => {
        "id, name, display_name, open, creator_id, created_at, updated_at, deleted_at"
    };
}
macro_rules! channel_cols {
    () => {
        "c.id, c.team_id, c.type, c.name, c.display_name, c.purpose, c.header, c.creator_id, \
         c.created_at, c.updated_at, c.deleted_at, c.total_msg_count, c.total_msg_count_root, \
         c.last_post_at, c.last_root_post_at"
    };
}
macro_rules! member_cols {
    () => {
        "m.channel_id, m.user_id, m.role, m.msg_count, m.msg_count_root, m.mention_count, \
         m.mention_count_root, m.last_viewed_at, m.created_at"
    };
}
macro_rules! post_cols {
    () => {
        "p.seq, p.id, p.channel_id, p.user_id, p.root_id, p.message, p.type, p.props, \
         p.file_ids, p.created_at, p.updated_at, p.edited_at, p.deleted_at, p.reply_count, \
         p.last_reply_at, p.client_msg_id, p.has_reactions"
    };
}

fn json_list(ids: &[String]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

// ----- users -------------------------------------------------------------------------------

/// Inserts an account; the first non-bot account ever becomes `system_admin`.
pub async fn create_user(c: &mut Conn, u: NewUser) -> StoreResult<User> {
    let humans: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE is_bot = FALSE")
        .fetch_one(&mut *c)
        .await?;
    let role = if humans == 0 && !u.is_bot {
        ROLE_SYSTEM_ADMIN
    } else {
        ROLE_MEMBER
    };
    let now = now_ms();
    let r = sqlx::query(
        "INSERT INTO users (id, username, email, password_hash, display_name, role, is_bot, \
         active, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE, $8, $8)",
    )
    .bind(&u.id)
    .bind(&u.username)
    .bind(&u.email)
    .bind(&u.password_hash)
    .bind(&u.display_name)
    .bind(role)
    .bind(u.is_bot)
    .bind(now)
    .execute(&mut *c)
    .await;
    match r {
        Err(e) => match StoreError::from(e) {
            StoreError::Conflict(_) => Err(StoreError::Conflict("username or email already taken")),
            other => Err(other),
        },
        Ok(_) => user_by_id(c, &u.id).await,
    }
}

/// One account by id (any state).
pub async fn user_by_id(c: &mut Conn, id: &str) -> StoreResult<User> {
    Ok(
        sqlx::query_as(concat!("SELECT ", user_cols!(), " FROM users WHERE id = $1"))
            .bind(id)
            .fetch_one(&mut *c)
            .await?,
    )
}

/// The account whose username or email equals `login` (both stored lower-case).
pub async fn user_by_login(c: &mut Conn, login: &str) -> StoreResult<Option<User>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        user_cols!(),
        " FROM users WHERE username = $1 OR email = $1"
    ))
    .bind(login)
    .fetch_optional(&mut *c)
    .await?)
}

/// Accounts by id, in no particular order; unknown ids are skipped.
pub async fn users_by_ids(c: &mut Conn, ids: &[String]) -> StoreResult<Vec<User>> {
    let sql = if PG {
        concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE id IN (SELECT jsonb_array_elements_text(CAST($1 AS jsonb)))"
        )
    } else {
        concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE id IN (SELECT value FROM json_each($1))"
        )
    };
    Ok(sqlx::query_as(sql)
        .bind(json_list(ids))
        .fetch_all(&mut *c)
        .await?)
}

/// Active accounts whose username starts with `prefix` (already LIKE-escaped), optionally
/// only members of `team_id`; at most `limit`.
pub async fn users_by_prefix(
    c: &mut Conn,
    like_prefix: &str,
    team_id: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<User>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        user_cols!(),
        " FROM users u WHERE active = TRUE AND username LIKE $1 ESCAPE '\\' \
         AND ($2 = '' OR EXISTS (SELECT 1 FROM team_members t WHERE t.team_id = $2 \
         AND t.user_id = u.id)) ORDER BY username LIMIT $3"
    ))
    .bind(like_prefix)
    .bind(team_id.unwrap_or(""))
    .bind(limit)
    .fetch_all(&mut *c)
    .await?)
}

/// Every account, by username, paged.
pub async fn list_users(c: &mut Conn, offset: i64, limit: i64) -> StoreResult<Vec<User>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        user_cols!(),
        " FROM users ORDER BY username LIMIT $1 OFFSET $2"
    ))
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *c)
    .await?)
}

/// Applies `p` to the account.
pub async fn patch_user(c: &mut Conn, id: &str, p: UserPatch) -> StoreResult<User> {
    sqlx::query(
        "UPDATE users SET display_name = COALESCE($2, display_name), \
         nickname = COALESCE($3, nickname), first_name = COALESCE($4, first_name), \
         last_name = COALESCE($5, last_name), position = COALESCE($6, position), \
         locale = COALESCE($7, locale), updated_at = $8 WHERE id = $1",
    )
    .bind(id)
    .bind(p.display_name)
    .bind(p.nickname)
    .bind(p.first_name)
    .bind(p.last_name)
    .bind(p.position)
    .bind(p.locale)
    .bind(now_ms())
    .execute(&mut *c)
    .await?;
    user_by_id(c, id).await
}

/// Changes role and/or active state; deactivation also ends sessions and tokens.
pub async fn admin_patch_user(
    c: &mut Conn,
    id: &str,
    role: Option<&str>,
    active: Option<bool>,
) -> StoreResult<User> {
    let now = now_ms();
    let r = sqlx::query(
        "UPDATE users SET role = COALESCE($2, role), active = COALESCE($3, active), \
         deleted_at = CASE WHEN $3 IS NULL THEN deleted_at WHEN $3 THEN 0 ELSE $4 END, \
         updated_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(role)
    .bind(active)
    .bind(now)
    .execute(&mut *c)
    .await?;
    if r.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    if active == Some(false) {
        delete_user_sessions(c, id).await?;
        sqlx::query("DELETE FROM access_tokens WHERE user_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
    }
    user_by_id(c, id).await
}

// ----- sessions and tokens ----------------------------------------------------------------

/// Inserts a session row.
pub async fn create_session(c: &mut Conn, s: Session) -> StoreResult<Session> {
    sqlx::query(
        "INSERT INTO sessions (id, user_id, created_at, expires_at, last_activity_at, kind, ip, \
         user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&s.id)
    .bind(&s.user_id)
    .bind(s.created_at)
    .bind(s.expires_at)
    .bind(s.last_activity_at)
    .bind(&s.kind)
    .bind(&s.ip)
    .bind(&s.user_agent)
    .execute(&mut *c)
    .await?;
    Ok(s)
}

/// A session with its (active) user, if both exist.
pub async fn session_with_user(c: &mut Conn, sid: &str) -> StoreResult<Option<(Session, User)>> {
    let s: Option<Session> = sqlx::query_as(
        "SELECT id, user_id, created_at, expires_at, last_activity_at, kind, ip, user_agent \
         FROM sessions WHERE id = $1",
    )
    .bind(sid)
    .fetch_optional(&mut *c)
    .await?;
    let Some(s) = s else { return Ok(None) };
    let u = user_by_id(c, &s.user_id).await?;
    Ok(Some((s, u)))
}

/// The user's sessions, newest first.
pub async fn user_sessions(c: &mut Conn, user_id: &str) -> StoreResult<Vec<Session>> {
    Ok(sqlx::query_as(
        "SELECT id, user_id, created_at, expires_at, last_activity_at, kind, ip, user_agent \
         FROM sessions WHERE user_id = $1 ORDER BY created_at DESC",
    )
    .bind(user_id)
    .fetch_all(&mut *c)
    .await?)
}

/// Deletes one session of `user_id`; false when there was none.
pub async fn delete_session(c: &mut Conn, user_id: &str, sid: &str) -> StoreResult<bool> {
    let r = sqlx::query("DELETE FROM sessions WHERE id = $1 AND user_id = $2")
        .bind(sid)
        .bind(user_id)
        .execute(&mut *c)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Deletes every session of one user; returns their ids.
pub async fn delete_user_sessions(c: &mut Conn, user_id: &str) -> StoreResult<Vec<String>> {
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .fetch_all(&mut *c)
        .await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *c)
        .await?;
    Ok(ids)
}

/// Deletes every session (and every token with `include_tokens`); returns
/// (sessions, tokens) deleted.
pub async fn revoke_all(c: &mut Conn, include_tokens: bool) -> StoreResult<(u64, u64)> {
    let s = sqlx::query("DELETE FROM sessions").execute(&mut *c).await?;
    let t = if include_tokens {
        sqlx::query("DELETE FROM access_tokens")
            .execute(&mut *c)
            .await?
            .rows_affected()
    } else {
        0
    };
    Ok((s.rows_affected(), t))
}

/// Inserts a token row (hash only).
pub async fn create_token(c: &mut Conn, t: AccessToken) -> StoreResult<AccessToken> {
    sqlx::query(
        "INSERT INTO access_tokens (id, user_id, token_hash, description, created_at, \
         last_used_at) VALUES ($1, $2, $3, $4, $5, 0)",
    )
    .bind(&t.id)
    .bind(&t.user_id)
    .bind(&t.token_hash)
    .bind(&t.description)
    .bind(t.created_at)
    .execute(&mut *c)
    .await?;
    Ok(t)
}

/// The token with this hash and its user.
pub async fn token_with_user(
    c: &mut Conn,
    token_hash: &str,
) -> StoreResult<Option<(AccessToken, User)>> {
    let t: Option<AccessToken> = sqlx::query_as(
        "SELECT id, user_id, token_hash, description, created_at, last_used_at \
         FROM access_tokens WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(&mut *c)
    .await?;
    let Some(t) = t else { return Ok(None) };
    let u = user_by_id(c, &t.user_id).await?;
    Ok(Some((t, u)))
}

/// The user's tokens.
pub async fn user_tokens(c: &mut Conn, user_id: &str) -> StoreResult<Vec<AccessToken>> {
    Ok(sqlx::query_as(
        "SELECT id, user_id, token_hash, description, created_at, last_used_at \
         FROM access_tokens WHERE user_id = $1 ORDER BY created_at",
    )
    .bind(user_id)
    .fetch_all(&mut *c)
    .await?)
}

/// Deletes one of the user's tokens; false when there was none.
pub async fn delete_token(c: &mut Conn, user_id: &str, id: &str) -> StoreResult<bool> {
    let r = sqlx::query("DELETE FROM access_tokens WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(&mut *c)
        .await?;
    Ok(r.rows_affected() > 0)
}

// ----- teams -------------------------------------------------------------------------------

/// Name of the default channel every team has and every team member is in.
pub const TOWN_SQUARE: &str = "town-square";

/// Creates a team with its creator as `team_admin` and its `town-square` channel.
pub async fn create_team(
    c: &mut Conn,
    id: &str,
    name: &str,
    display_name: &str,
    open: bool,
    creator_id: &str,
) -> StoreResult<Team> {
    let now = now_ms();
    let r = sqlx::query(
        "INSERT INTO teams (id, name, display_name, open, creator_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(id)
    .bind(name)
    .bind(display_name)
    .bind(open)
    .bind(creator_id)
    .bind(now)
    .execute(&mut *c)
    .await;
    if let Err(e) = r {
        return Err(match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict("team name already taken"),
            other => other,
        });
    }
    let town = crate::ids::new_id();
    insert_channel(
        c,
        &town,
        id,
        channel_type::OPEN,
        TOWN_SQUARE,
        "Town Square",
        "",
        "",
        creator_id,
    )
    .await?;
    add_team_member(c, id, creator_id, ROLE_TEAM_ADMIN).await?;
    team_by_id(c, id).await
}

/// One team by id (archived ones too).
pub async fn team_by_id(c: &mut Conn, id: &str) -> StoreResult<Team> {
    Ok(
        sqlx::query_as(concat!("SELECT ", team_cols!(), " FROM teams WHERE id = $1"))
            .bind(id)
            .fetch_one(&mut *c)
            .await?,
    )
}

/// Teams the user belongs to, by name.
pub async fn user_teams(c: &mut Conn, user_id: &str) -> StoreResult<Vec<Team>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        team_cols!(),
        " FROM teams WHERE deleted_at = 0 AND id IN \
         (SELECT team_id FROM team_members WHERE user_id = $1) ORDER BY name"
    ))
    .bind(user_id)
    .fetch_all(&mut *c)
    .await?)
}

/// Open teams, by name.
pub async fn open_teams(c: &mut Conn) -> StoreResult<Vec<Team>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        team_cols!(),
        " FROM teams WHERE deleted_at = 0 AND open = TRUE ORDER BY name"
    ))
    .fetch_all(&mut *c)
    .await?)
}

/// Changes display name and/or openness.
pub async fn patch_team(
    c: &mut Conn,
    id: &str,
    display_name: Option<String>,
    open: Option<bool>,
) -> StoreResult<Team> {
    sqlx::query(
        "UPDATE teams SET display_name = COALESCE($2, display_name), open = COALESCE($3, open), \
         updated_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(display_name)
    .bind(open)
    .bind(now_ms())
    .execute(&mut *c)
    .await?;
    team_by_id(c, id).await
}

/// The membership row, if any.
pub async fn team_member(
    c: &mut Conn,
    team_id: &str,
    user_id: &str,
) -> StoreResult<Option<TeamMember>> {
    Ok(sqlx::query_as(
        "SELECT team_id, user_id, role, created_at FROM team_members \
         WHERE team_id = $1 AND user_id = $2",
    )
    .bind(team_id)
    .bind(user_id)
    .fetch_optional(&mut *c)
    .await?)
}

/// Every member of the team.
pub async fn team_members(c: &mut Conn, team_id: &str) -> StoreResult<Vec<TeamMember>> {
    Ok(sqlx::query_as(
        "SELECT team_id, user_id, role, created_at FROM team_members WHERE team_id = $1 \
         ORDER BY created_at",
    )
    .bind(team_id)
    .fetch_all(&mut *c)
    .await?)
}

/// Adds the user to the team and its town-square; true when newly added.
pub async fn add_team_member(
    c: &mut Conn,
    team_id: &str,
    user_id: &str,
    role: &str,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "INSERT INTO team_members (team_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (team_id, user_id) DO NOTHING",
    )
    .bind(team_id)
    .bind(user_id)
    .bind(role)
    .bind(now_ms())
    .execute(&mut *c)
    .await?;
    let town: Option<String> = sqlx::query_scalar(
        "SELECT id FROM channels WHERE team_id = $1 AND name = $2",
    )
    .bind(team_id)
    .bind(TOWN_SQUARE)
    .fetch_optional(&mut *c)
    .await?;
    if let Some(town) = town {
        add_channel_member(c, &town, user_id).await?;
    }
    Ok(r.rows_affected() > 0)
}

/// Removes the user from the team and from all of its channels; true when they were in it.
pub async fn remove_team_member(c: &mut Conn, team_id: &str, user_id: &str) -> StoreResult<bool> {
    sqlx::query(
        "DELETE FROM channel_members WHERE user_id = $2 AND channel_id IN \
         (SELECT id FROM channels WHERE team_id = $1)",
    )
    .bind(team_id)
    .bind(user_id)
    .execute(&mut *c)
    .await?;
    let r = sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
        .bind(team_id)
        .bind(user_id)
        .execute(&mut *c)
        .await?;
    Ok(r.rows_affected() > 0)
}

// ----- channels ----------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
async fn insert_channel(
    c: &mut Conn,
    id: &str,
    team_id: &str,
    kind: &str,
    name: &str,
    display_name: &str,
    purpose: &str,
    header: &str,
    creator_id: &str,
) -> StoreResult<()> {
    let r = sqlx::query(
        "INSERT INTO channels (id, team_id, type, name, display_name, purpose, header, \
         creator_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(id)
    .bind(team_id)
    .bind(kind)
    .bind(name)
    .bind(display_name)
    .bind(purpose)
    .bind(header)
    .bind(creator_id)
    .bind(now_ms())
    .execute(&mut *c)
    .await;
    match r {
        Ok(_) => Ok(()),
        Err(e) => Err(match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict("channel name already taken"),
            other => other,
        }),
    }
}

/// Creates a public or private channel with its creator as a member.
pub async fn create_channel(c: &mut Conn, ch: NewChannel) -> StoreResult<Channel> {
    insert_channel(
        c,
        &ch.id,
        &ch.team_id,
        ch.kind,
        &ch.name,
        &ch.display_name,
        &ch.purpose,
        &ch.header,
        &ch.creator_id,
    )
    .await?;
    add_channel_member(c, &ch.id, &ch.creator_id).await?;
    channel_by_id(c, &ch.id).await
}

/// One channel by id.
pub async fn channel_by_id(c: &mut Conn, id: &str) -> StoreResult<Channel> {
    Ok(
        sqlx::query_as(concat!("SELECT ", channel_cols!(), " FROM channels c WHERE c.id = $1"))
            .bind(id)
            .fetch_one(&mut *c)
            .await?,
    )
}

/// The channel with its member row for `user_id` (None when not a member).
pub async fn channel_with_member(
    c: &mut Conn,
    channel_id: &str,
    user_id: &str,
) -> StoreResult<(Channel, Option<ChannelMember>)> {
    let ch = channel_by_id(c, channel_id).await?;
    let m = channel_member(c, channel_id, user_id).await?;
    Ok((ch, m))
}

/// The user's channels in a team, plus their DM and group channels, by name.
pub async fn user_channels(c: &mut Conn, user_id: &str, team_id: &str) -> StoreResult<Vec<Channel>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        channel_cols!(),
        " FROM channels c JOIN channel_members m ON m.channel_id = c.id \
         WHERE m.user_id = $1 AND (c.team_id = $2 OR c.team_id = '') ORDER BY c.name"
    ))
    .bind(user_id)
    .bind(team_id)
    .fetch_all(&mut *c)
    .await?)
}

/// Public, unarchived channels of a team, by name.
pub async fn public_channels(c: &mut Conn, team_id: &str) -> StoreResult<Vec<Channel>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        channel_cols!(),
        " FROM channels c WHERE c.team_id = $1 AND c.type = 'O' AND c.deleted_at = 0 \
         ORDER BY c.name"
    ))
    .bind(team_id)
    .fetch_all(&mut *c)
    .await?)
}

/// Changes display name, purpose and/or header.
pub async fn patch_channel(
    c: &mut Conn,
    id: &str,
    display_name: Option<String>,
    purpose: Option<String>,
    header: Option<String>,
) -> StoreResult<Channel> {
    sqlx::query(
        "UPDATE channels SET display_name = COALESCE($2, display_name), \
         purpose = COALESCE($3, purpose), header = COALESCE($4, header), updated_at = $5 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(display_name)
    .bind(purpose)
    .bind(header)
    .bind(now_ms())
    .execute(&mut *c)
    .await?;
    channel_by_id(c, id).await
}

/// Archives the channel (read-only from then on).
pub async fn archive_channel(c: &mut Conn, id: &str) -> StoreResult<Channel> {
    let now = now_ms();
    sqlx::query("UPDATE channels SET deleted_at = $2, updated_at = $2 WHERE id = $1 AND deleted_at = 0")
        .bind(id)
        .bind(now)
        .execute(&mut *c)
        .await?;
    channel_by_id(c, id).await
}

/// The member row, if any.
pub async fn channel_member(
    c: &mut Conn,
    channel_id: &str,
    user_id: &str,
) -> StoreResult<Option<ChannelMember>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        member_cols!(),
        " FROM channel_members m WHERE m.channel_id = $1 AND m.user_id = $2"
    ))
    .bind(channel_id)
    .bind(user_id)
    .fetch_optional(&mut *c)
    .await?)
}

/// Every member row of the channel.
pub async fn channel_members(c: &mut Conn, channel_id: &str) -> StoreResult<Vec<ChannelMember>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        member_cols!(),
        " FROM channel_members m WHERE m.channel_id = $1 ORDER BY m.created_at"
    ))
    .bind(channel_id)
    .fetch_all(&mut *c)
    .await?)
}

/// The user's member rows for their channels in `team_id` (and DMs/GMs).
pub async fn user_channel_members(
    c: &mut Conn,
    user_id: &str,
    team_id: &str,
) -> StoreResult<Vec<ChannelMember>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        member_cols!(),
        " FROM channel_members m JOIN channels c ON c.id = m.channel_id \
         WHERE m.user_id = $1 AND (c.team_id = $2 OR c.team_id = '')"
    ))
    .bind(user_id)
    .bind(team_id)
    .fetch_all(&mut *c)
    .await?)
}

/// Ids of every channel the user is in (the realtime hub's index).
pub async fn user_channel_ids(c: &mut Conn, user_id: &str) -> StoreResult<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT channel_id FROM channel_members WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(&mut *c)
            .await?,
    )
}

/// Ids of the channel's members.
pub async fn channel_member_ids(c: &mut Conn, channel_id: &str) -> StoreResult<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT user_id FROM channel_members WHERE channel_id = $1")
            .bind(channel_id)
            .fetch_all(&mut *c)
            .await?,
    )
}

/// Adds a member, caught up on everything posted so far; true when newly added.
pub async fn add_channel_member(c: &mut Conn, channel_id: &str, user_id: &str) -> StoreResult<bool> {
    let now = now_ms();
    let r = sqlx::query(
        "INSERT INTO channel_members (channel_id, user_id, role, msg_count, msg_count_root, \
         last_viewed_at, created_at) SELECT id, $2, 'member', total_msg_count, \
         total_msg_count_root, $3, $3 FROM channels WHERE id = $1 \
         ON CONFLICT (channel_id, user_id) DO NOTHING",
    )
    .bind(channel_id)
    .bind(user_id)
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(r.rows_affected() > 0)
}

/// Removes a member; true when they were one.
pub async fn remove_channel_member(c: &mut Conn, channel_id: &str, user_id: &str) -> StoreResult<bool> {
    let r = sqlx::query("DELETE FROM channel_members WHERE channel_id = $1 AND user_id = $2")
        .bind(channel_id)
        .bind(user_id)
        .execute(&mut *c)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Finds or creates the DM or group channel for exactly `members` (sorted ids). Returns
/// the channel and whether it was created.
pub async fn direct_channel(
    c: &mut Conn,
    members: &[String],
    creator_id: &str,
    display_name: &str,
) -> StoreResult<(Channel, bool)> {
    let (kind, name) = if members.len() == 2 {
        (channel_type::DIRECT, format!("{}__{}", members[0], members[1]))
    } else {
        // Group names are a stable digest of the member set, like Mattermost's.
        (channel_type::GROUP, crate::ids::sha256_hex(&members.join(","))[..40].to_string())
    };
    let existing: Option<Channel> = sqlx::query_as(concat!(
        "SELECT ",
        channel_cols!(),
        " FROM channels c WHERE c.team_id = '' AND c.name = $1"
    ))
    .bind(&name)
    .fetch_optional(&mut *c)
    .await?;
    if let Some(ch) = existing {
        return Ok((ch, false));
    }
    let id = crate::ids::new_id();
    insert_channel(c, &id, "", kind, &name, display_name, "", "", creator_id).await?;
    for m in members {
        add_channel_member(c, &id, m).await?;
    }
    Ok((channel_by_id(c, &id).await?, true))
}

/// Marks the channel read for the user; returns the new `last_viewed_at` (None when not a
/// member).
pub async fn view_channel(c: &mut Conn, channel_id: &str, user_id: &str) -> StoreResult<Option<i64>> {
    let now = now_ms();
    let r = sqlx::query(
        "UPDATE channel_members SET msg_count = (SELECT total_msg_count FROM channels WHERE id = $1), \
         msg_count_root = (SELECT total_msg_count_root FROM channels WHERE id = $1), \
         mention_count = 0, mention_count_root = 0, last_viewed_at = $3 \
         WHERE channel_id = $1 AND user_id = $2",
    )
    .bind(channel_id)
    .bind(user_id)
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok((r.rows_affected() > 0).then_some(now))
}

/// Unread state of the user's channels, optionally limited to one team (plus DMs/GMs).
pub async fn unreads(c: &mut Conn, user_id: &str, team_id: Option<&str>) -> StoreResult<Vec<Unread>> {
    Ok(sqlx::query_as(
        "SELECT m.channel_id, c.team_id, c.total_msg_count, m.msg_count, m.mention_count, \
         m.last_viewed_at FROM channel_members m JOIN channels c ON c.id = m.channel_id \
         WHERE m.user_id = $1 AND ($2 = '' OR c.team_id = $2 OR c.team_id = '') \
         ORDER BY c.name",
    )
    .bind(user_id)
    .bind(team_id.unwrap_or(""))
    .fetch_all(&mut *c)
    .await?)
}

// ----- posts -------------------------------------------------------------------------------

/// Most distinct emoji on one post.
pub const MAX_EMOJI_PER_POST: i64 = 50;

/// One post by id (deleted ones too).
pub async fn post_by_id(c: &mut Conn, id: &str) -> StoreResult<Post> {
    Ok(
        sqlx::query_as(concat!("SELECT ", post_cols!(), " FROM posts p WHERE p.id = $1"))
            .bind(id)
            .fetch_one(&mut *c)
            .await?,
    )
}

/// Visible (not deleted) posts by id.
pub async fn posts_by_ids(c: &mut Conn, ids: &[String]) -> StoreResult<Vec<Post>> {
    let sql = if PG {
        concat!(
            "SELECT ",
            post_cols!(),
            " FROM posts p WHERE p.deleted_at = 0 AND p.id IN \
             (SELECT jsonb_array_elements_text(CAST($1 AS jsonb)))"
        )
    } else {
        concat!(
            "SELECT ",
            post_cols!(),
            " FROM posts p WHERE p.deleted_at = 0 AND p.id IN (SELECT value FROM json_each($1))"
        )
    };
    Ok(sqlx::query_as(sql)
        .bind(json_list(ids))
        .fetch_all(&mut *c)
        .await?)
}

/// The posting transaction of CHAT-R14: membership and archive check, strictly increasing
/// `created_at` per channel, insert, channel counters, the author's read state, mentions
/// and their counters, the root's reply count, attached files. `online` holds the users
/// present now (for `@here`).
pub async fn create_post(
    c: &mut Conn,
    p: NewPost,
    online: &std::collections::HashSet<String>,
) -> StoreResult<PostOutcome> {
    let channel = match channel_by_id(c, &p.channel_id).await {
        Ok(ch) => ch,
        Err(StoreError::NotFound) => return Err(StoreError::NotFound),
        Err(e) => return Err(e),
    };
    if channel_member(c, &p.channel_id, &p.user_id).await?.is_none() {
        return Err(if channel.kind == channel_type::OPEN {
            StoreError::Forbidden
        } else {
            StoreError::NotFound
        });
    }
    if let Some(cm) = &p.client_msg_id {
        let prior: Option<Post> = sqlx::query_as(concat!(
            "SELECT ",
            post_cols!(),
            " FROM posts p WHERE p.user_id = $1 AND p.client_msg_id = $2"
        ))
        .bind(&p.user_id)
        .bind(cm)
        .fetch_optional(&mut *c)
        .await?;
        if let Some(post) = prior {
            return Ok(PostOutcome {
                post,
                channel,
                created: false,
                mentions: Vec::new(),
            });
        }
    }
    if channel.is_archived() {
        return Err(StoreError::Forbidden);
    }
    let is_root = p.root_id.is_empty();
    if !is_root {
        let root = match post_by_id(c, &p.root_id).await {
            Ok(r) => r,
            Err(StoreError::NotFound) => {
                return Err(StoreError::invalid("root_id", "no such post"));
            }
            Err(e) => return Err(e),
        };
        if root.channel_id != p.channel_id || !root.root_id.is_empty() || root.deleted_at != 0 {
            return Err(StoreError::invalid(
                "root_id",
                "must name a visible root post in the same channel",
            ));
        }
    }
    let now = now_ms();
    let created_at = now.max(channel.last_post_at + 1);
    sqlx::query(
        "INSERT INTO posts (id, channel_id, user_id, root_id, message, props, file_ids, \
         created_at, updated_at, client_msg_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)",
    )
    .bind(&p.id)
    .bind(&p.channel_id)
    .bind(&p.user_id)
    .bind(&p.root_id)
    .bind(&p.message)
    .bind(&p.props)
    .bind(json_list(&p.file_ids))
    .bind(created_at)
    .bind(&p.client_msg_id)
    .execute(&mut *c)
    .await?;
    let root_inc: i64 = if is_root { 1 } else { 0 };
    sqlx::query(
        "UPDATE channels SET total_msg_count = total_msg_count + 1, \
         total_msg_count_root = total_msg_count_root + $2, last_post_at = $3, \
         last_root_post_at = CASE WHEN $2 = 1 THEN $3 ELSE last_root_post_at END WHERE id = $1",
    )
    .bind(&p.channel_id)
    .bind(root_inc)
    .bind(created_at)
    .execute(&mut *c)
    .await?;
    sqlx::query(
        "UPDATE channel_members SET msg_count = (SELECT total_msg_count FROM channels WHERE id = $1), \
         msg_count_root = (SELECT total_msg_count_root FROM channels WHERE id = $1), \
         last_viewed_at = $3 WHERE channel_id = $1 AND user_id = $2",
    )
    .bind(&p.channel_id)
    .bind(&p.user_id)
    .bind(now)
    .execute(&mut *c)
    .await?;

    let members = mention_candidates(c, &channel, &p.message).await?;
    let mentioned = resolve_mentions(&channel, &p, &members, online);
    for uid in &mentioned {
        sqlx::query("INSERT INTO post_mentions (post_id, user_id) VALUES ($1, $2)")
            .bind(&p.id)
            .bind(uid)
            .execute(&mut *c)
            .await?;
        sqlx::query(
            "UPDATE channel_members SET mention_count = mention_count + 1, \
             mention_count_root = mention_count_root + $3 WHERE channel_id = $1 AND user_id = $2",
        )
        .bind(&p.channel_id)
        .bind(uid)
        .bind(root_inc)
        .execute(&mut *c)
        .await?;
    }
    if !is_root {
        sqlx::query(
            "UPDATE posts SET reply_count = reply_count + 1, last_reply_at = $2 WHERE id = $1",
        )
        .bind(&p.root_id)
        .bind(created_at)
        .execute(&mut *c)
        .await?;
    }
    if !p.file_ids.is_empty() {
        let sql = if PG {
            "UPDATE files SET post_id = $1 WHERE user_id = $2 AND channel_id = $3 AND post_id = '' \
             AND id IN (SELECT jsonb_array_elements_text(CAST($4 AS jsonb)))"
        } else {
            "UPDATE files SET post_id = $1 WHERE user_id = $2 AND channel_id = $3 AND post_id = '' \
             AND id IN (SELECT value FROM json_each($4))"
        };
        let r = sqlx::query(sql)
            .bind(&p.id)
            .bind(&p.user_id)
            .bind(&p.channel_id)
            .bind(json_list(&p.file_ids))
            .execute(&mut *c)
            .await?;
        if r.rows_affected() != p.file_ids.len() as u64 {
            return Err(StoreError::invalid(
                "file_ids",
                "each file must be your own unattached upload to this channel",
            ));
        }
    }
    let post = post_by_id(c, &p.id).await?;
    let channel = channel_by_id(c, &p.channel_id).await?;
    Ok(PostOutcome {
        post,
        channel,
        created: true,
        mentions: mentioned,
    })
}

/// The channel members (id, username) a post's mentions could resolve to: every member for
/// a DM/GM or when `@channel`, `@all` or `@here` appears; otherwise only members named by
/// one of the message's `@` candidates, and no query at all when it has none.
///
/// Why: this runs on the single SQLite writer for every post, and most posts mention
/// nobody, while loading a large channel's whole member list costs a row per member. The
/// candidates are collected by a first pass that answers "not a member" to every name the
/// scanner asks about; that pass asks about every name any answer could make it accept
/// (it only stops trying shorter forms of a candidate at a member), so the second pass in
/// [`resolve_mentions`] over this subset decides exactly as over the whole list.
async fn mention_candidates(
    c: &mut Conn,
    channel: &Channel,
    message: &str,
) -> StoreResult<Vec<(String, String)>> {
    let asked = std::cell::RefCell::new(Vec::<String>::new());
    let m = crate::mentions::extract(message, |name| {
        asked.borrow_mut().push(name.to_string());
        false
    });
    let everyone = channel.is_direct() || m.channel || m.here;
    let asked = asked.into_inner();
    if !everyone && asked.is_empty() {
        return Ok(Vec::new());
    }
    let sql = match (everyone, PG) {
        (true, _) => {
            "SELECT m.user_id, u.username FROM channel_members m JOIN users u ON u.id = m.user_id \
             WHERE m.channel_id = $1"
        }
        (false, true) => {
            "SELECT m.user_id, u.username FROM users u JOIN channel_members m \
             ON m.user_id = u.id AND m.channel_id = $1 \
             WHERE u.username IN (SELECT jsonb_array_elements_text(CAST($2 AS jsonb)))"
        }
        (false, false) => {
            "SELECT m.user_id, u.username FROM users u JOIN channel_members m \
             ON m.user_id = u.id AND m.channel_id = $1 \
             WHERE u.username IN (SELECT value FROM json_each($2))"
        }
    };
    let mut q = sqlx::query_as(sql).bind(&channel.id);
    if !everyone {
        q = q.bind(json_list(&asked));
    }
    Ok(q.fetch_all(&mut *c).await?)
}

/// Who a post mentions (CHAT-R15): everyone else in a DM/GM; otherwise the tokenised
/// `@name`s that are members, `@channel`/`@all` (every member) and `@here` (members online
/// now). Never the author.
fn resolve_mentions(
    channel: &Channel,
    p: &NewPost,
    members: &[(String, String)],
    online: &std::collections::HashSet<String>,
) -> Vec<String> {
    let others = members.iter().filter(|(id, _)| *id != p.user_id);
    if channel.is_direct() {
        return others.map(|(id, _)| id.clone()).collect();
    }
    let by_name: std::collections::HashMap<&str, &str> = members
        .iter()
        .map(|(id, name)| (name.as_str(), id.as_str()))
        .collect();
    let m = crate::mentions::extract(&p.message, |name| by_name.contains_key(name));
    let mut out: Vec<String> = Vec::new();
    let mut push = |id: &str| {
        if id != p.user_id && !out.iter().any(|x| x == id) {
            out.push(id.to_string());
        }
    };
    for name in &m.usernames {
        if let Some(id) = by_name.get(name.as_str()) {
            push(id);
        }
    }
    for (id, _) in others {
        if m.channel || (m.here && online.contains(id)) {
            push(id);
        }
    }
    out
}

/// Up to `limit` visible posts of the channel, oldest first, and whether more exist in the
/// direction read.
pub async fn channel_posts(
    c: &mut Conn,
    channel_id: &str,
    page: PostPage,
    limit: i64,
) -> StoreResult<(Vec<Post>, bool)> {
    let fetch = limit + 1;
    let (mut posts, reverse): (Vec<Post>, bool) = match page {
        PostPage::Latest { offset } => (
            sqlx::query_as(concat!(
                "SELECT ",
                post_cols!(),
                " FROM posts p WHERE p.channel_id = $1 AND p.deleted_at = 0 \
                 ORDER BY p.created_at DESC LIMIT $2 OFFSET $3"
            ))
            .bind(channel_id)
            .bind(fetch)
            .bind(offset)
            .fetch_all(&mut *c)
            .await?,
            true,
        ),
        PostPage::Before(id) => {
            let at = anchor(c, channel_id, &id).await?;
            (
                sqlx::query_as(concat!(
                    "SELECT ",
                    post_cols!(),
                    " FROM posts p WHERE p.channel_id = $1 AND p.deleted_at = 0 \
                     AND p.created_at < $2 ORDER BY p.created_at DESC LIMIT $3"
                ))
                .bind(channel_id)
                .bind(at)
                .bind(fetch)
                .fetch_all(&mut *c)
                .await?,
                true,
            )
        }
        PostPage::After(id) => {
            let at = anchor(c, channel_id, &id).await?;
            (
                sqlx::query_as(concat!(
                    "SELECT ",
                    post_cols!(),
                    " FROM posts p WHERE p.channel_id = $1 AND p.deleted_at = 0 \
                     AND p.created_at > $2 ORDER BY p.created_at ASC LIMIT $3"
                ))
                .bind(channel_id)
                .bind(at)
                .bind(fetch)
                .fetch_all(&mut *c)
                .await?,
                false,
            )
        }
        PostPage::Since(ms) => (
            sqlx::query_as(concat!(
                "SELECT ",
                post_cols!(),
                " FROM posts p WHERE p.channel_id = $1 AND p.deleted_at = 0 \
                 AND p.updated_at >= $2 ORDER BY p.created_at ASC LIMIT $3"
            ))
            .bind(channel_id)
            .bind(ms)
            .bind(fetch)
            .fetch_all(&mut *c)
            .await?,
            false,
        ),
    };
    let has_more = posts.len() as i64 > limit;
    posts.truncate(limit as usize);
    if reverse {
        posts.reverse();
    }
    Ok((posts, has_more))
}

async fn anchor(c: &mut Conn, channel_id: &str, post_id: &str) -> StoreResult<i64> {
    let at: Option<i64> =
        sqlx::query_scalar("SELECT created_at FROM posts WHERE id = $1 AND channel_id = $2")
            .bind(post_id)
            .bind(channel_id)
            .fetch_optional(&mut *c)
            .await?;
    at.ok_or_else(|| StoreError::invalid("post_id", "no such post in this channel"))
}

/// A root and its visible replies, oldest first.
pub async fn thread(c: &mut Conn, root_id: &str) -> StoreResult<(Post, Vec<Post>)> {
    let root = post_by_id(c, root_id).await?;
    let replies = sqlx::query_as(concat!(
        "SELECT ",
        post_cols!(),
        " FROM posts p WHERE p.root_id = $1 AND p.deleted_at = 0 ORDER BY p.created_at"
    ))
    .bind(root_id)
    .fetch_all(&mut *c)
    .await?;
    Ok((root, replies))
}

/// Replaces the message of a post (the caller checked authorship).
pub async fn edit_post(c: &mut Conn, id: &str, message: &str) -> StoreResult<Post> {
    let now = now_ms();
    sqlx::query("UPDATE posts SET message = $2, edited_at = $3, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(message)
        .bind(now)
        .execute(&mut *c)
        .await?;
    post_by_id(c, id).await
}

/// Soft-deletes a post (hidden from lists and search from then on).
pub async fn delete_post(c: &mut Conn, id: &str) -> StoreResult<Post> {
    let now = now_ms();
    sqlx::query("UPDATE posts SET deleted_at = $2, updated_at = $2 WHERE id = $1 AND deleted_at = 0")
        .bind(id)
        .bind(now)
        .execute(&mut *c)
        .await?;
    post_by_id(c, id).await
}

/// Adds a reaction; Ok(None) when it already existed (idempotent).
pub async fn add_reaction(
    c: &mut Conn,
    post_id: &str,
    user_id: &str,
    emoji: &str,
) -> StoreResult<Option<Reaction>> {
    let distinct: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT emoji_name) FROM reactions WHERE post_id = $1 AND emoji_name <> $2",
    )
    .bind(post_id)
    .bind(emoji)
    .fetch_one(&mut *c)
    .await?;
    if distinct >= MAX_EMOJI_PER_POST {
        let already: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM reactions WHERE post_id = $1 AND emoji_name = $2")
                .bind(post_id)
                .bind(emoji)
                .fetch_one(&mut *c)
                .await?;
        if already == 0 {
            return Err(StoreError::invalid(
                "emoji_name",
                format!("a post holds at most {MAX_EMOJI_PER_POST} distinct emoji"),
            ));
        }
    }
    let now = now_ms();
    let r = sqlx::query(
        "INSERT INTO reactions (post_id, user_id, emoji_name, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (post_id, user_id, emoji_name) DO NOTHING",
    )
    .bind(post_id)
    .bind(user_id)
    .bind(emoji)
    .bind(now)
    .execute(&mut *c)
    .await?;
    if r.rows_affected() == 0 {
        return Ok(None);
    }
    sqlx::query("UPDATE posts SET has_reactions = TRUE, updated_at = $2 WHERE id = $1")
        .bind(post_id)
        .bind(now)
        .execute(&mut *c)
        .await?;
    Ok(Some(Reaction {
        post_id: post_id.into(),
        user_id: user_id.into(),
        emoji_name: emoji.into(),
        created_at: now,
    }))
}

/// Removes a reaction; the removed row, or None when there was none.
pub async fn remove_reaction(
    c: &mut Conn,
    post_id: &str,
    user_id: &str,
    emoji: &str,
) -> StoreResult<Option<Reaction>> {
    let row: Option<Reaction> = sqlx::query_as(
        "SELECT post_id, user_id, emoji_name, created_at FROM reactions \
         WHERE post_id = $1 AND user_id = $2 AND emoji_name = $3",
    )
    .bind(post_id)
    .bind(user_id)
    .bind(emoji)
    .fetch_optional(&mut *c)
    .await?;
    if row.is_none() {
        return Ok(None);
    }
    sqlx::query("DELETE FROM reactions WHERE post_id = $1 AND user_id = $2 AND emoji_name = $3")
        .bind(post_id)
        .bind(user_id)
        .bind(emoji)
        .execute(&mut *c)
        .await?;
    let now = now_ms();
    sqlx::query(
        "UPDATE posts SET has_reactions = EXISTS (SELECT 1 FROM reactions WHERE post_id = $1), \
         updated_at = $2 WHERE id = $1",
    )
    .bind(post_id)
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(row)
}

/// Reactions on the given posts, oldest first.
pub async fn reactions_for(c: &mut Conn, post_ids: &[String]) -> StoreResult<Vec<Reaction>> {
    let sql = if PG {
        "SELECT post_id, user_id, emoji_name, created_at FROM reactions WHERE post_id IN \
         (SELECT jsonb_array_elements_text(CAST($1 AS jsonb))) ORDER BY created_at"
    } else {
        "SELECT post_id, user_id, emoji_name, created_at FROM reactions WHERE post_id IN \
         (SELECT value FROM json_each($1)) ORDER BY created_at"
    };
    Ok(sqlx::query_as(sql)
        .bind(json_list(post_ids))
        .fetch_all(&mut *c)
        .await?)
}

/// What rendering a page of posts needs besides the page, read on the caller's connection:
/// the roots of replies whose root is not on the page, and the reactions of every post.
pub async fn page_extras(c: &mut Conn, page: &[Post]) -> StoreResult<(Vec<Post>, Vec<Reaction>)> {
    let on_page: std::collections::HashSet<&str> = page.iter().map(|p| p.id.as_str()).collect();
    let mut missing: Vec<String> = page
        .iter()
        .filter(|p| !p.root_id.is_empty() && !on_page.contains(p.root_id.as_str()))
        .map(|p| p.root_id.clone())
        .collect();
    missing.sort_unstable();
    missing.dedup();
    let roots = if missing.is_empty() {
        Vec::new()
    } else {
        posts_by_ids(c, &missing).await?
    };
    let ids: Vec<String> = page
        .iter()
        .chain(roots.iter())
        .map(|p| p.id.clone())
        .collect();
    let reactions = reactions_for(c, &ids).await?;
    Ok((roots, reactions))
}

// ----- statuses ----------------------------------------------------------------------------

/// Stores a status; `manual` sticks until the user sets `online` again.
pub async fn set_status(c: &mut Conn, user_id: &str, status: &str, manual: bool) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO statuses (user_id, status, manual, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id) DO UPDATE SET status = excluded.status, manual = excluded.manual, \
         updated_at = excluded.updated_at",
    )
    .bind(user_id)
    .bind(status)
    .bind(manual)
    .bind(now_ms())
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Stored statuses of the given users (absent users have none).
pub async fn statuses(c: &mut Conn, user_ids: &[String]) -> StoreResult<Vec<Status>> {
    let sql = if PG {
        "SELECT user_id, status, manual, updated_at FROM statuses WHERE user_id IN \
         (SELECT jsonb_array_elements_text(CAST($1 AS jsonb)))"
    } else {
        "SELECT user_id, status, manual, updated_at FROM statuses WHERE user_id IN \
         (SELECT value FROM json_each($1))"
    };
    Ok(sqlx::query_as(sql)
        .bind(json_list(user_ids))
        .fetch_all(&mut *c)
        .await?)
}

/// Users sharing a team with `user_id` (the user included): who sees their status.
pub async fn teammate_ids(c: &mut Conn, user_id: &str) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT user_id FROM team_members WHERE team_id IN \
         (SELECT team_id FROM team_members WHERE user_id = $1)",
    )
    .bind(user_id)
    .fetch_all(&mut *c)
    .await?)
}

/// The `server_config` sections as JSON text (site, authentication, team, integrations).
pub async fn server_config(c: &mut Conn) -> StoreResult<(String, String, String, String)> {
    let sql = if PG {
        "SELECT site::text, authentication::text, team::text, integrations::text \
         FROM server_config WHERE id = 'default'"
    } else {
        "SELECT site, authentication, team, integrations FROM server_config WHERE id = 'default'"
    };
    Ok(sqlx::query_as(sql).fetch_one(&mut *c).await?)
}

/// Replaces the `server_config` sections (JSON text each).
pub async fn put_server_config(
    c: &mut Conn,
    site: &str,
    authentication: &str,
    team: &str,
    integrations: &str,
) -> StoreResult<()> {
    let sql = if PG {
        "UPDATE server_config SET site = CAST($1 AS jsonb), authentication = CAST($2 AS jsonb), \
         team = CAST($3 AS jsonb), integrations = CAST($4 AS jsonb), updated_at = $5 \
         WHERE id = 'default'"
    } else {
        "UPDATE server_config SET site = $1, authentication = $2, team = $3, integrations = $4, \
         updated_at = $5 WHERE id = 'default'"
    };
    sqlx::query(sql)
        .bind(site)
        .bind(authentication)
        .bind(team)
        .bind(integrations)
        .bind(now_ms())
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// The stored encryption `key_check` ('' before the first start with a key).
pub async fn key_check(c: &mut Conn) -> StoreResult<String> {
    Ok(
        sqlx::query_scalar("SELECT key_check FROM server_config WHERE id = 'default'")
            .fetch_one(&mut *c)
            .await?,
    )
}

/// Records the encryption `key_check` once (only while none is stored).
pub async fn set_key_check(c: &mut Conn, value: &str) -> StoreResult<()> {
    sqlx::query("UPDATE server_config SET key_check = $1 WHERE id = 'default' AND key_check = ''")
        .bind(value)
        .execute(&mut *c)
        .await?;
    Ok(())
}
