//! Storage (spec CHAT-R13): one set of SQL statements, two backends.
//!
//! What it is for: every read and write the server makes. The statements live once, in
//! `ops.rs`, and are compiled twice: into [`sqlite_ops`] against `sqlx::Sqlite` and into
//! [`pg_ops`] against `sqlx::Postgres` (`include!` with a per-module `Db` alias). That keeps
//! one implementation per backend, as the spec asks, without writing each statement twice
//! or fighting sqlx's generic executor bounds. Both schemas are column-for-column equal and
//! every statement uses `$N` placeholders, which SQLite accepts as numbered parameters.
//!
//! The backends differ in how work is scheduled, not in what it does:
//! - SQLite ([`sqlite::SqliteStore`]): a read-only pool (`query_only=ON`) for reads and one
//!   writer task, on a thread and runtime of its own (why: `sqlite::spawn_writer`), owning
//!   the only write connection. It batches up to 128 queued writes into one `BEGIN
//!   IMMEDIATE` transaction, one SAVEPOINT per write (a failing write rolls back alone),
//!   commits once (one fsync) and only then answers each caller.
//! - PostgreSQL ([`postgres::PgStore`]): a pool with `application_name=rustchat`, one
//!   transaction per write.
//!
//! Callers use the [`read!`](crate::store_read) and [`write!`](crate::store_write) macros,
//! whose body is written once and sees `ops` bound to the right backend's module.
//!
//! Not for: business rules that need no database (validation lives in `api`).

pub mod migrate;
pub mod model;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

use std::time::Duration;

pub use model::*;

/// Statements compiled for SQLite.
#[cfg(feature = "sqlite")]
pub mod sqlite_ops {
    /// The backend these statements run on.
    pub type Db = sqlx::Sqlite;
    /// True on PostgreSQL; the few dialect differences branch on it.
    pub const PG: bool = false;
    include!("ops.rs");
    include!("ops_more.rs");
    include!("ops_oidc.rs");
}

/// Statements compiled for PostgreSQL.
#[cfg(feature = "postgres")]
pub mod pg_ops {
    /// The backend these statements run on.
    pub type Db = sqlx::Postgres;
    /// True on PostgreSQL; the few dialect differences branch on it.
    pub const PG: bool = true;
    include!("ops.rs");
    include!("ops_more.rs");
    include!("ops_oidc.rs");
}

/// Why a storage call failed, in the terms the API maps to statuses.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is out of connections (503 `db_unavailable`).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The row does not exist or the caller may not see it.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was hit (409); names what collided.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The request is well-formed but breaks a rule checked in the transaction (400).
    #[error("{field}: {message}")]
    Invalid {
        /// The request field at fault.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The caller lacks the right (403).
    #[error("forbidden")]
    Forbidden,
    /// Anything else the database reported (500).
    #[error("database error: {0}")]
    Other(String),
}

impl StoreError {
    /// A validation failure on `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        StoreError::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::PoolTimedOut => StoreError::Unavailable(
                "pool timed out while waiting for an open connection".into(),
            ),
            sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                StoreError::Unavailable(e.to_string())
            }
            sqlx::Error::Database(db) => {
                if db.is_unique_violation() {
                    return StoreError::Conflict("already exists");
                }
                // SQLITE_BUSY/LOCKED/FULL/READONLY/IOERR and PG connection-class errors
                // (08xxx), admin shutdown (57P0x), out of resources (53xxx): the request may
                // succeed later, so 503 rather than 500.
                let code = db.code().unwrap_or_default();
                let transient = matches!(code.as_ref(), "5" | "6" | "13" | "8" | "10")
                    || code.starts_with("08")
                    || code.starts_with("57P")
                    || code.starts_with("53");
                if transient {
                    StoreError::Unavailable(db.message().to_string())
                } else {
                    StoreError::Other(db.message().to_string())
                }
            }
            _ => StoreError::Other(e.to_string()),
        }
    }
}

/// Result of a storage call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Takes a call permit from the `database` breaker, failing fast while it is open.
pub(crate) fn admit(
    b: &ron_kernel::CircuitBreaker,
) -> StoreResult<ron_kernel::breaker::Permit<'_>> {
    b.try_acquire()
        .map_err(|_| StoreError::Unavailable("database circuit open".into()))
}

/// Reports a call's outcome: only `Unavailable` (the database could not be reached or
/// answered with a transient error) counts against the breaker.
pub(crate) fn settle<T>(permit: ron_kernel::breaker::Permit<'_>, out: &StoreResult<T>) {
    match out {
        Err(StoreError::Unavailable(_)) => permit.failure(),
        _ => permit.success(),
    }
}

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`, as `/ready` reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The open database.
#[derive(Clone)]
pub enum Store {
    /// Embedded SQLite with the single writer task (on its own thread).
    #[cfg(feature = "sqlite")]
    Sqlite(sqlite::SqliteStore),
    /// PostgreSQL pool.
    #[cfg(feature = "postgres")]
    Postgres(postgres::PgStore),
}

/// One sample of pool use, for the saturation gauge and `/stats`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolSample {
    /// Pool label (`main`, `read`, `write`).
    pub pool: &'static str,
    /// Connections checked out (the writer: 1 while a batch runs).
    pub in_use: u32,
    /// Idle connections.
    pub idle: u32,
    /// Configured maximum.
    pub max: u32,
}

impl Store {
    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            #[cfg(feature = "sqlite")]
            Store::Sqlite(_) => Backend::Sqlite,
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => Backend::Postgres,
        }
    }

    /// Runs `SELECT 1` within `budget`; the readiness probe.
    pub async fn ping(&self, budget: Duration) -> StoreResult<()> {
        let fut = async {
            match self {
                #[cfg(feature = "sqlite")]
                Store::Sqlite(s) => s.ping().await,
                #[cfg(feature = "postgres")]
                Store::Postgres(p) => p.ping().await,
            }
        };
        match tokio::time::timeout(budget, fut).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable("ping timed out".into())),
        }
    }

    /// Current pool use, one sample per pool.
    pub fn pool_samples(&self) -> Vec<PoolSample> {
        match self {
            #[cfg(feature = "sqlite")]
            Store::Sqlite(s) => s.pool_samples(),
            #[cfg(feature = "postgres")]
            Store::Postgres(p) => p.pool_samples(),
        }
    }

    /// Closes the pools; on SQLite also lets the writer finish its queued batch first.
    pub async fn close(&self) {
        match self {
            #[cfg(feature = "sqlite")]
            Store::Sqlite(s) => s.close().await,
            #[cfg(feature = "postgres")]
            Store::Postgres(p) => p.close().await,
        }
    }
}

/// Runs a read: `store_read!(store, |c| ops::get_user(c, &id).await)`. The body is compiled
/// once per backend with `ops` naming that backend's statements and `c` its connection.
#[macro_export]
macro_rules! store_read {
    ($store:expr, |$c:ident| $body:expr) => {
        $crate::store_call!(read, $store, |$c| $body)
    };
}

/// Runs a write in its own transaction (SQLite: a savepoint in the writer's batch); the
/// caller is answered after the commit. Same shape as [`store_read!`].
#[macro_export]
macro_rules! store_write {
    ($store:expr, |$c:ident| $body:expr) => {
        $crate::store_call!(write, $store, |$c| $body)
    };
}

/// The body of [`store_read!`] and [`store_write!`]: dispatch on the backend, bind `ops`,
/// time the call for the `slow query` line.
#[doc(hidden)]
#[macro_export]
macro_rules! store_call {
    ($method:ident, $store:expr, |$c:ident| $body:expr) => {{
        let __started = std::time::Instant::now();
        let __out = match &$store {
            #[cfg(feature = "sqlite")]
            $crate::store::Store::Sqlite(s) => {
                s.$method(move |$c| {
                    Box::pin(async move {
                        #[allow(unused_imports)]
                        use $crate::store::sqlite_ops as ops;
                        $body
                    })
                })
                .await
            }
            #[cfg(feature = "postgres")]
            $crate::store::Store::Postgres(p) => {
                p.$method(move |$c| {
                    Box::pin(async move {
                        #[allow(unused_imports)]
                        use $crate::store::pg_ops as ops;
                        $body
                    })
                })
                .await
            }
        };
        $crate::store::note_latency(stringify!($body), __started);
        __out
    }};
}

/// `log.slow_query_ms`: statements at least this slow log INFO `slow query`. Set at start
/// and on reload; a process-wide value because the store macros have no state at hand.
pub static SLOW_QUERY_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(500);

/// Logs `slow query` (fields latency_ms, op) when a store call took too long. `body` is the
/// macro body's source text; `op` is the first `ops::` function it calls.
pub fn note_latency(body: &'static str, started: std::time::Instant) {
    let ms = started.elapsed().as_millis() as u64;
    if ms < SLOW_QUERY_MS.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let op = body
        .split("ops ::")
        .nth(1)
        .or_else(|| body.split("ops::").nth(1))
        .map(|rest| {
            rest.trim_start()
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap_or("")
        })
        .unwrap_or("");
    tracing::info!(latency_ms = ms, op, "slow query");
}

/// Milliseconds since the Unix epoch, the timestamp unit of every table.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
