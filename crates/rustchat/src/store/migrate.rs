//! Schema migrations under a lock (CHAT-R12): several starting nodes (or a `--migrate-only`
//! beside a starting server) wait for each other and then find nothing pending.
//!
//! PostgreSQL: `pg_advisory_lock(k)` with k the 64-bit integer whose big-endian bytes spell
//! `rustchat`. SQLite: `flock` on `<db>.migrate.lock`. sqlx's own migration lock is turned
//! off so there is exactly one lock, with the key the spec names. Migrations are expand /
//! contract, so an older binary tolerates versions it does not know (WARN, not an error).

use std::collections::BTreeSet;

use sqlx::migrate::Migrator;

use super::StoreResult;

/// The advisory-lock key: `rustchat` as big-endian bytes.
pub const PG_LOCK_KEY: i64 = i64::from_be_bytes(*b"rustchat");

/// What a migration run did.
#[derive(Debug, Clone, Default)]
pub struct MigrationReport {
    /// Migrations applied by this run.
    pub applied_now: usize,
    /// Migrations applied in total after this run (known to this binary).
    pub applied_total: usize,
    /// Versions recorded in the database that this binary does not ship.
    pub unknown_versions: Vec<i64>,
}

#[cfg(feature = "sqlite")]
static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
#[cfg(feature = "postgres")]
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

/// Number of migrations this binary ships for `backend`.
pub fn shipped(backend: super::Backend) -> usize {
    match backend {
        #[cfg(feature = "sqlite")]
        super::Backend::Sqlite => SQLITE.iter().count(),
        #[cfg(feature = "postgres")]
        super::Backend::Postgres => POSTGRES.iter().count(),
        #[allow(unreachable_patterns)]
        _ => 0,
    }
}

/// The shipped migrations with sqlx's own lock off (ours is held) and unknown applied
/// versions tolerated (an older binary on a newer schema).
fn unlocked(m: &Migrator) -> Migrator {
    Migrator {
        migrations: m.migrations.clone(),
        locking: false,
        ignore_missing: true,
        ..Migrator::DEFAULT
    }
}

fn report(m: &Migrator, before: &BTreeSet<i64>, after: &BTreeSet<i64>) -> MigrationReport {
    let known: BTreeSet<i64> = m.iter().map(|x| x.version).collect();
    MigrationReport {
        applied_now: after
            .difference(before)
            .filter(|v| known.contains(v))
            .count(),
        applied_total: after.intersection(&known).count(),
        unknown_versions: after.difference(&known).copied().collect(),
    }
}

/// Applies pending SQLite migrations on `conn`, holding the file lock beside `db_path`
/// (`None` for an in-memory database, which no other process can see).
#[cfg(feature = "sqlite")]
pub async fn sqlite(
    conn: &mut sqlx::SqliteConnection,
    db_path: Option<&std::path::Path>,
) -> StoreResult<MigrationReport> {
    let _lock = match db_path {
        Some(p) => Some(file_lock::acquire(p).await?),
        None => None,
    };
    let before = sqlite_applied(conn).await?;
    unlocked(&SQLITE)
        .run(&mut *conn)
        .await
        .map_err(|e| super::StoreError::Other(format!("migration failed: {e}")))?;
    let after = sqlite_applied(conn).await?;
    Ok(report(&SQLITE, &before, &after))
}

#[cfg(feature = "sqlite")]
async fn sqlite_applied(conn: &mut sqlx::SqliteConnection) -> StoreResult<BTreeSet<i64>> {
    let exists: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(&mut *conn)
    .await?;
    if exists.is_none() {
        return Ok(BTreeSet::new());
    }
    let v: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(&mut *conn)
        .await?;
    Ok(v.into_iter().collect())
}

/// Applies pending PostgreSQL migrations on `conn` under the advisory lock.
#[cfg(feature = "postgres")]
pub async fn postgres(conn: &mut sqlx::PgConnection) -> StoreResult<MigrationReport> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(PG_LOCK_KEY)
        .execute(&mut *conn)
        .await?;
    let out = async {
        let before = pg_applied(conn).await?;
        unlocked(&POSTGRES)
            .run(&mut *conn)
            .await
            .map_err(|e| super::StoreError::Other(format!("migration failed: {e}")))?;
        let after = pg_applied(conn).await?;
        Ok(report(&POSTGRES, &before, &after))
    }
    .await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(PG_LOCK_KEY)
        .execute(&mut *conn)
        .await;
    out
}

/// Versions recorded as applied (empty before the first migration).
#[cfg(feature = "postgres")]
pub async fn pg_applied(conn: &mut sqlx::PgConnection) -> StoreResult<BTreeSet<i64>> {
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
        .fetch_one(&mut *conn)
        .await?;
    if exists.is_none() {
        return Ok(BTreeSet::new());
    }
    let v: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(&mut *conn)
        .await?;
    Ok(v.into_iter().collect())
}

#[cfg(feature = "sqlite")]
mod file_lock {
    //! `flock(2)` on `<db>.migrate.lock`, taken on the blocking pool because it waits.
    use std::fs::File;
    use std::os::fd::AsRawFd;
    use std::path::Path;

    use crate::store::{StoreError, StoreResult};

    /// Held lock; released when dropped (closing the file releases the flock).
    pub struct FileLock(#[allow(dead_code)] File);

    pub async fn acquire(db: &Path) -> StoreResult<FileLock> {
        let mut name = db.as_os_str().to_owned();
        name.push(".migrate.lock");
        let path = std::path::PathBuf::from(name);
        tokio::task::spawn_blocking(move || {
            let f = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| {
                    StoreError::Unavailable(format!("cannot open {}: {e}", path.display()))
                })?;
            // SAFETY-free: flock on a valid, owned descriptor.
            let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
            if rc != 0 {
                return Err(StoreError::Unavailable(format!(
                    "flock {}: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                )));
            }
            Ok(FileLock(f))
        })
        .await
        .map_err(|e| StoreError::Other(format!("lock task: {e}")))?
    }
}
