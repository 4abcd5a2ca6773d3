//! The PostgreSQL backend: one sqlx pool, one transaction per write (CHAT-R13).
//!
//! Every connection announces `application_name=rustchat` (the runbook counts them in
//! `pg_stat_activity`) and sets `statement_timeout` and a 60 s
//! `idle_in_transaction_session_timeout`, so a leaked transaction cannot pin a backend.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use ron_kernel::CircuitBreaker;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};

use super::migrate::MigrationReport;
use super::{PoolSample, StoreResult};

/// Guard against transactions left open by a bug: PostgreSQL ends them after this long.
pub const IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// How the pool is sized and bounded.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://` URL.
    pub url: String,
    /// Pool maximum.
    pub max_connections: u32,
    /// Pool minimum.
    pub min_connections: u32,
    /// How long a checkout may wait before the request gets 503.
    pub acquire_timeout: Duration,
    /// Idle connections above the minimum close after this.
    pub idle_timeout: Duration,
    /// Connections are replaced after this age.
    pub max_lifetime: Duration,
    /// `statement_timeout`.
    pub statement_timeout: Duration,
    /// The `database` breaker: opens after repeated connection failures, then fails fast.
    pub breaker: Arc<CircuitBreaker>,
}

/// PostgreSQL storage handle; cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    max: u32,
    breaker: Arc<CircuitBreaker>,
}

impl PgStore {
    /// Connect options from the URL with our session settings.
    pub fn connect_options(opts: &PgOptions) -> StoreResult<PgConnectOptions> {
        let o: PgConnectOptions = opts.url.parse()?;
        Ok(o.application_name("rustchat").options([
            (
                "statement_timeout",
                format!("{}", opts.statement_timeout.as_millis()),
            ),
            (
                "idle_in_transaction_session_timeout",
                format!("{}", IDLE_IN_TRANSACTION_TIMEOUT.as_millis()),
            ),
        ]))
    }

    /// Opens the pool (lazily: connections are made on demand), then applies pending
    /// migrations under the advisory lock when `migrate` is set.
    pub async fn open(opts: &PgOptions) -> StoreResult<(Self, MigrationReport)> {
        let connect = Self::connect_options(opts)?;
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections)
            .min_connections(opts.min_connections)
            .acquire_timeout(opts.acquire_timeout)
            .idle_timeout(Some(opts.idle_timeout))
            .max_lifetime(Some(opts.max_lifetime))
            .connect_lazy_with(connect);
        let mut conn = pool.acquire().await?;
        let report = super::migrate::postgres(&mut conn).await?;
        drop(conn);
        warm_up(&pool, opts.min_connections).await;
        Ok((
            PgStore {
                pool,
                max: opts.max_connections,
                breaker: opts.breaker.clone(),
            },
            report,
        ))
    }

    /// Runs `f` on a pooled connection, outside any explicit transaction.
    pub async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, StoreResult<T>>,
    {
        let permit = super::admit(&self.breaker)?;
        let out = async {
            let mut conn = self.pool.acquire().await?;
            f(&mut conn).await
        }
        .await;
        super::settle(permit, &out);
        out
    }

    /// Runs `f` in one transaction, committed before returning; rolled back on error.
    pub async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, StoreResult<T>>,
    {
        let permit = super::admit(&self.breaker)?;
        let out = async {
            let mut tx = self.pool.begin().await?;
            match f(&mut tx).await {
                Ok(v) => {
                    tx.commit().await?;
                    Ok(v)
                }
                Err(e) => {
                    let _ = tx.rollback().await;
                    Err(e)
                }
            }
        }
        .await;
        super::settle(permit, &out);
        out
    }

    /// `SELECT 1` on a pooled connection.
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The pool's use.
    pub fn pool_samples(&self) -> Vec<PoolSample> {
        let size = self.pool.size();
        let idle = self.pool.num_idle() as u32;
        vec![PoolSample {
            pool: "main",
            in_use: size.saturating_sub(idle),
            idle,
            max: self.max,
        }]
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Opens the pool's `min_connections` now. sqlx's lazy pool tops itself up to the minimum
/// only after its reaper closes an idle connection (every `idle_timeout`), so without this a
/// node started with `RUSTCHAT_DB_POOL__MIN_CONNECTIONS=4` held one or two connections
/// until load arrived (CHAT-R3, R32: the runbook's `pg_stat_activity` count is min..max per
/// node). Best effort: a connection that fails to open now is opened on demand later.
async fn warm_up(pool: &PgPool, min: u32) {
    let held = futures_util::future::join_all((0..min).map(|_| pool.acquire())).await;
    drop(held);
}
