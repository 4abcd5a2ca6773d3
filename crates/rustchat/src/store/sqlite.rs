//! The SQLite backend: a read-only pool plus one batching writer thread (CHAT-R13).
//!
//! Why one writer: SQLite allows one writer at a time, so concurrent write transactions
//! would only queue on the file lock with `SQLITE_BUSY` retries. Funnelling every write
//! through one task turns that contention into batching: up to [`WRITER_BATCH`] queued
//! writes share one `BEGIN IMMEDIATE` ... `COMMIT`, so N posts cost one fsync instead of N,
//! and each write still succeeds or fails alone through its own SAVEPOINT. A caller is
//! answered only after the commit returned, so a 201 always means "on disk"
//! (`synchronous=FULL` by default).

use std::any::Any;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use ron_kernel::CircuitBreaker;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::migrate::MigrationReport;
use super::{PoolSample, StoreError, StoreResult};

/// Most writes committed together in one transaction.
pub const WRITER_BATCH: usize = 128;
/// Writes that may wait for the writer; more get 503 at once instead of queueing forever.
pub const WRITER_QUEUE: usize = 4096;
/// SQLite's busy timeout on every connection.
pub const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

type AnyBox = Box<dyn Any + Send>;
type WriteFn =
    Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<AnyBox>> + Send>;

struct WriteJob {
    run: WriteFn,
    reply: oneshot::Sender<StoreResult<AnyBox>>,
}

/// How the SQLite store is opened.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Database file (ignored for `memory`).
    pub path: std::path::PathBuf,
    /// `sqlite::memory:`: one shared in-memory database, nothing on disk.
    pub memory: bool,
    /// Reader pool size.
    pub readers: u32,
    /// `synchronous=FULL` (true) or `NORMAL`.
    pub synchronous_full: bool,
    /// How long a reader checkout may wait.
    pub acquire_timeout: Duration,
    /// The `database` breaker (disk errors and lock timeouts count as failures).
    pub breaker: Arc<CircuitBreaker>,
}

/// SQLite storage handle; cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    readers: SqlitePool,
    writer: mpsc::Sender<WriteJob>,
    inner: Arc<Inner>,
    breaker: Arc<CircuitBreaker>,
}

struct Inner {
    max_readers: u32,
    writer_busy: AtomicBool,
    writer_batches: AtomicU32,
    closed: AtomicBool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database with WAL, foreign keys and the busy
    /// timeout, applies pending migrations on the write connection under the migration
    /// lock, then starts the writer task on its own thread.
    pub async fn open(opts: &SqliteOptions) -> StoreResult<(Self, MigrationReport)> {
        let base = if opts.memory {
            // A named shared-cache memory database, so the writer and readers see one DB.
            let name = format!(
                "file:rustchat-mem-{}?mode=memory&cache=shared",
                crate::ids::new_id()
            );
            SqliteConnectOptions::from_str(&name)?
        } else {
            if let Some(dir) = opts.path.parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            SqliteConnectOptions::new()
                .filename(&opts.path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
        };
        let base = base
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(if opts.synchronous_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            });
        let mut write_conn = SqliteConnection::connect_with(&base).await?;
        let report = super::migrate::sqlite(
            &mut write_conn,
            (!opts.memory).then_some(opts.path.as_path()),
        )
        .await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(opts.readers.max(1))
            .min_connections(0)
            .acquire_timeout(opts.acquire_timeout)
            .connect_lazy_with(base.clone().pragma("query_only", "ON"));
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        let inner = Arc::new(Inner {
            max_readers: opts.readers.max(1),
            writer_busy: AtomicBool::new(false),
            writer_batches: AtomicU32::new(0),
            closed: AtomicBool::new(false),
        });
        spawn_writer(write_conn, rx, inner.clone())?;
        Ok((
            SqliteStore {
                readers,
                writer: tx,
                inner,
                breaker: opts.breaker.clone(),
            },
            report,
        ))
    }

    /// Runs `f` on a pooled read-only connection.
    pub async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>>,
    {
        let permit = super::admit(&self.breaker)?;
        let out = async {
            let mut conn = self.readers.acquire().await?;
            f(&mut conn).await
        }
        .await;
        super::settle(permit, &out);
        out
    }

    /// Queues `f` for the writer and waits for the batch holding it to commit.
    pub async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>>
            + Send
            + 'static,
    {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("shutting down".into()));
        }
        let permit = super::admit(&self.breaker)?;
        let out = self.write_inner(f).await;
        super::settle(permit, &out);
        out
    }

    async fn write_inner<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>>
            + Send
            + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let run: WriteFn =
            Box::new(move |c| Box::pin(async move { f(c).await.map(|v| Box::new(v) as AnyBox) }));
        self.writer
            .try_send(WriteJob { run, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    StoreError::Unavailable("write queue full".into())
                }
                mpsc::error::TrySendError::Closed(_) => {
                    StoreError::Unavailable("writer stopped".into())
                }
            })?;
        let out = rx
            .await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))??;
        out.downcast::<T>()
            .map(|b| *b)
            .map_err(|_| StoreError::Other("writer returned the wrong type".into()))
    }

    /// `SELECT 1` on a reader.
    pub async fn ping(&self) -> StoreResult<()> {
        self.read(|c| {
            Box::pin(async move {
                sqlx::query("SELECT 1")
                    .execute(c)
                    .await
                    .map(|_| ())
                    .map_err(Into::into)
            })
        })
        .await
    }

    /// Reader pool use and the writer's busy state.
    pub fn pool_samples(&self) -> Vec<PoolSample> {
        let size = self.readers.size();
        let idle = self.readers.num_idle() as u32;
        vec![
            PoolSample {
                pool: "read",
                in_use: size.saturating_sub(idle),
                idle,
                max: self.inner.max_readers,
            },
            PoolSample {
                pool: "write",
                in_use: u32::from(self.inner.writer_busy.load(Ordering::Relaxed)),
                idle: u32::from(!self.inner.writer_busy.load(Ordering::Relaxed)),
                max: 1,
            },
        ]
    }

    /// Stops taking writes, lets the writer commit what is queued, closes the readers.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        let (reply, rx) = oneshot::channel();
        // A no-op job queued last: when it is answered, everything before it committed.
        let flush: WriteFn = Box::new(|_| Box::pin(async { Ok(Box::new(()) as AnyBox) }));
        if self
            .writer
            .send(WriteJob { run: flush, reply })
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
        self.readers.close().await;
    }
}

/// Runs [`writer_loop`] on its own OS thread with a one-thread runtime.
///
/// Why not a task on the server's runtime: every statement is a round trip to sqlx's
/// connection thread, and each answer has to wake the writer again. On the shared runtime
/// that wake-up queues behind whatever the workers are busy with (WebSocket fan-out, JSON,
/// TLS), so under load each of a write's several round trips waited its turn and the one
/// writer, not SQLite, set the pace of every write endpoint (bench/rustchat RESULTS.md, run
/// F). On a runtime of its own the writer is polled as soon as its answer arrives.
fn spawn_writer(
    conn: SqliteConnection,
    rx: mpsc::Receiver<WriteJob>,
    inner: Arc<Inner>,
) -> StoreResult<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite writer: {e}")))?;
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || rt.block_on(writer_loop(conn, rx, inner)))
        .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite writer: {e}")))?;
    Ok(())
}

/// The writer task: takes the first queued write, then whatever else is already queued (up
/// to [`WRITER_BATCH`]), runs them in one transaction with a savepoint each, commits, answers.
async fn writer_loop(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<WriteJob>,
    inner: Arc<Inner>,
) {
    let mut batch: Vec<WriteJob> = Vec::with_capacity(WRITER_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < WRITER_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        inner.writer_busy.store(true, Ordering::Relaxed);
        run_batch(&mut conn, &mut batch).await;
        inner.writer_batches.fetch_add(1, Ordering::Relaxed);
        inner.writer_busy.store(false, Ordering::Relaxed);
    }
    let _ = conn.close().await;
}

async fn run_batch(conn: &mut SqliteConnection, batch: &mut Vec<WriteJob>) {
    if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
        let msg = StoreError::from(e).to_string();
        for job in batch.drain(..) {
            let _ = job.reply.send(Err(StoreError::Unavailable(msg.clone())));
        }
        return;
    }
    let mut results: Vec<(oneshot::Sender<StoreResult<AnyBox>>, StoreResult<AnyBox>)> =
        Vec::with_capacity(batch.len());
    for job in batch.drain(..) {
        let out = match sqlx::query("SAVEPOINT w").execute(&mut *conn).await {
            Err(e) => Err(StoreError::from(e)),
            Ok(_) => {
                let out = (job.run)(&mut *conn).await;
                let end = if out.is_ok() {
                    sqlx::query("RELEASE w").execute(&mut *conn).await
                } else {
                    match sqlx::query("ROLLBACK TO w").execute(&mut *conn).await {
                        Ok(_) => sqlx::query("RELEASE w").execute(&mut *conn).await,
                        Err(e) => Err(e),
                    }
                };
                match end {
                    Ok(_) => out,
                    Err(e) => Err(StoreError::from(e)),
                }
            }
        };
        results.push((job.reply, out));
    }
    match sqlx::query("COMMIT").execute(&mut *conn).await {
        Ok(_) => {
            for (reply, out) in results {
                let _ = reply.send(out);
            }
        }
        Err(e) => {
            // Nothing of this batch is durable: every caller hears so, none gets a 2xx.
            let msg = StoreError::from(e).to_string();
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            for (reply, _) in results {
                let _ = reply.send(Err(StoreError::Unavailable(msg.clone())));
            }
        }
    }
}
