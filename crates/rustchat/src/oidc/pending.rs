//! Short-lived OIDC values (CHAT-R22): login states (300 s) and one-time exchange codes
//! (60 s), each consumed exactly once.
//!
//! With Redis configured they live under the runbook's keys `rustchat:oauth:state:<state>`
//! and `rustchat:oauth:code:<sha256(code)>` (`SET … EX … NX`, consumed with `GETDEL`), so
//! any node of a cluster can finish a login another node started. Without Redis, or while
//! it fails, they go to the `oauth_pending` table instead (consumed with one
//! `DELETE … RETURNING`, expired rows swept): the database is shared by every node too, so
//! the fallback keeps cluster logins working where an in-process map would not. A consume
//! looks in Redis first and then in the table, so values written during an outage are
//! still found after Redis returns.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::store::{Store, StoreError, now_ms};

/// Lifetime of a login state.
pub const STATE_TTL: Duration = Duration::from_secs(300);
/// Lifetime of an exchange code.
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// Budget of one Redis command before falling back to the database.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// The Redis key of a login state.
pub fn state_key(state: &str) -> String {
    format!("rustchat:oauth:state:{state}")
}

/// The Redis key of an exchange code (only its digest is stored).
pub fn code_key(code: &str) -> String {
    format!("rustchat:oauth:code:{}", crate::ids::sha256_hex(code))
}

/// Where pending values are kept.
pub struct Pending {
    redis: Option<RedisKv>,
    store: Store,
}

impl Pending {
    /// Redis when `redis_url` is set (connected lazily), always the database as fallback.
    pub fn new(redis_url: Option<&str>, store: Store) -> Self {
        let redis = redis_url
            .and_then(|u| redis::Client::open(u).ok())
            .map(|client| RedisKv {
                client,
                conn: Arc::new(Mutex::new(None)),
            });
        Pending { redis, store }
    }

    /// Stores `value` under `key` for `ttl`.
    pub async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        if let Some(r) = &self.redis {
            match r.set_ex(key, value, ttl).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(error = %e, "auth: OAuth pending store: Redis failed; using the database")
                }
            }
        }
        let (k, v) = (key.to_string(), value.to_string());
        let expires = now_ms() + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
        crate::store_write!(self.store, |c| ops::pending_put(c, &k, &v, expires).await)
    }

    /// Consumes the value under `key`: `None` if it never existed, expired or was taken.
    pub async fn take(&self, key: &str) -> Result<Option<String>, StoreError> {
        if let Some(r) = &self.redis {
            match r.get_del(key).await {
                Ok(Some(v)) => return Ok(Some(v)),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "auth: OAuth pending store: Redis failed; using the database")
                }
            }
        }
        let k = key.to_string();
        let now = now_ms();
        crate::store_write!(self.store, |c| ops::pending_take(c, &k, now).await)
    }

    /// Deletes expired database rows.
    pub async fn sweep(&self) {
        let now = now_ms();
        if let Err(e) = crate::store_write!(self.store, |c| ops::pending_sweep(c, now).await) {
            tracing::debug!(error = %e, "oauth_pending sweep failed");
        }
    }
}

/// A lazily (re)connected multiplexed Redis connection for a few commands.
struct RedisKv {
    client: redis::Client,
    conn: Arc<Mutex<Option<redis::aio::MultiplexedConnection>>>,
}

impl RedisKv {
    async fn conn(&self) -> Result<redis::aio::MultiplexedConnection, String> {
        if let Some(c) = self.conn.lock().clone() {
            return Ok(c);
        }
        let c = tokio::time::timeout(
            REDIS_TIMEOUT,
            self.client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
        *self.conn.lock() = Some(c.clone());
        Ok(c)
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, String> {
        let mut c = self.conn().await?;
        match tokio::time::timeout(REDIS_TIMEOUT, cmd.query_async::<T>(&mut c)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                // A broken connection is replaced on the next call.
                *self.conn.lock() = None;
                Err(e.to_string())
            }
            Err(_) => {
                *self.conn.lock() = None;
                Err("command timed out".into())
            }
        }
    }

    async fn set_ex(&self, key: &str, value: &str, ttl: Duration) -> Result<(), String> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(value)
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .arg("NX");
        let ok: Option<String> = self.run(&cmd).await?;
        // NX on a random 256-bit key only fails if the key exists: never, in practice;
        // treat it as a failure rather than silently keeping another login's value.
        ok.map(|_| ()).ok_or_else(|| "key already exists".into())
    }

    async fn get_del(&self, key: &str) -> Result<Option<String>, String> {
        let mut cmd = redis::cmd("GETDEL");
        cmd.arg(key);
        self.run(&cmd).await
    }
}
