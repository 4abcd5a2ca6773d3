// OIDC login statements (CHAT-R22), `include!`d next to `ops.rs` (same `Db`, `PG`, `Conn`).

/// Stores a pending login state or exchange code until `expires_at` (epoch ms).
pub async fn pending_put(c: &mut Conn, key: &str, value: &str, expires_at: i64) -> StoreResult<()> {
    sqlx::query("INSERT INTO oauth_pending (key, value, expires_at) VALUES ($1, $2, $3)")
        .bind(key)
        .bind(value)
        .bind(expires_at)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Consumes a pending value: deleted whether or not it is still valid, returned only if it
/// has not expired. One statement, so two callbacks racing on one state cannot both win.
pub async fn pending_take(c: &mut Conn, key: &str, now: i64) -> StoreResult<Option<String>> {
    let row: Option<(String, i64)> =
        sqlx::query_as("DELETE FROM oauth_pending WHERE key = $1 RETURNING value, expires_at")
            .bind(key)
            .fetch_optional(&mut *c)
            .await?;
    Ok(row.filter(|(_, exp)| *exp > now).map(|(v, _)| v))
}

/// Deletes expired pending rows; returns how many.
pub async fn pending_sweep(c: &mut Conn, now: i64) -> StoreResult<u64> {
    Ok(sqlx::query("DELETE FROM oauth_pending WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *c)
        .await?
        .rows_affected())
}

/// The account linked to `(provider, subject)`, if any.
pub async fn user_by_identity(
    c: &mut Conn,
    provider: &str,
    subject: &str,
) -> StoreResult<Option<User>> {
    let uid: Option<String> =
        sqlx::query_scalar("SELECT user_id FROM user_identities WHERE provider = $1 AND subject = $2")
            .bind(provider)
            .bind(subject)
            .fetch_optional(&mut *c)
            .await?;
    match uid {
        Some(uid) => Ok(Some(user_by_id(c, &uid).await?)),
        None => Ok(None),
    }
}

/// The account with this (lower-case) email, if any.
pub async fn user_by_email(c: &mut Conn, email: &str) -> StoreResult<Option<User>> {
    Ok(sqlx::query_as(concat!("SELECT ", user_cols!(), " FROM users WHERE email = $1"))
        .bind(email)
        .fetch_optional(&mut *c)
        .await?)
}

/// Links `(provider, subject)` to `user_id`.
pub async fn link_identity(
    c: &mut Conn,
    provider: &str,
    subject: &str,
    user_id: &str,
    email: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO user_identities (provider, subject, user_id, email, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(provider)
    .bind(subject)
    .bind(user_id)
    .bind(email)
    .bind(now_ms())
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Creates an account for a first OIDC login and links the identity, in one transaction.
/// `usernames` are tried in order; the first one free is taken.
pub async fn create_oidc_user(
    c: &mut Conn,
    provider: &str,
    subject: &str,
    usernames: &[String],
    new: NewUser,
) -> StoreResult<User> {
    let mut chosen = None;
    for name in usernames {
        let taken: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE username = $1")
            .bind(name)
            .fetch_one(&mut *c)
            .await?;
        if taken == 0 {
            chosen = Some(name.clone());
            break;
        }
    }
    let username = chosen.ok_or(StoreError::Conflict("no free username"))?;
    let email = new.email.clone();
    let user = create_user(c, NewUser { username, ..new }).await?;
    link_identity(c, provider, subject, &user.id, &email).await?;
    Ok(user)
}

/// Providers added through the admin API, by name.
pub async fn stored_providers(c: &mut Conn) -> StoreResult<Vec<StoredProvider>> {
    Ok(sqlx::query_as(
        "SELECT name, issuer_url, client_id, client_secret_enc, display_name, scopes, \
         allowed_email_domains, link_by_email, created_at FROM oauth_providers ORDER BY name",
    )
    .fetch_all(&mut *c)
    .await?)
}

/// Adds a provider (409 if the name exists).
pub async fn insert_provider(c: &mut Conn, p: StoredProvider) -> StoreResult<()> {
    let r = sqlx::query(
        "INSERT INTO oauth_providers (name, issuer_url, client_id, client_secret_enc, \
         display_name, scopes, allowed_email_domains, link_by_email, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&p.name)
    .bind(&p.issuer_url)
    .bind(&p.client_id)
    .bind(&p.client_secret_enc)
    .bind(&p.display_name)
    .bind(&p.scopes)
    .bind(&p.allowed_email_domains)
    .bind(p.link_by_email)
    .bind(p.created_at)
    .execute(&mut *c)
    .await;
    match r {
        Ok(_) => Ok(()),
        Err(e) => match StoreError::from(e) {
            StoreError::Conflict(_) => Err(StoreError::Conflict("provider name already exists")),
            other => Err(other),
        },
    }
}

/// Removes a provider; false if there was none.
pub async fn delete_provider(c: &mut Conn, name: &str) -> StoreResult<bool> {
    Ok(sqlx::query("DELETE FROM oauth_providers WHERE name = $1")
        .bind(name)
        .execute(&mut *c)
        .await?
        .rows_affected()
        > 0)
}
