//! Cluster-wide presence in Redis (CHAT-R20, spec §4.9): the Redis half of
//! [`super::presence`]. Design notes for operators: `crates/rustchat/docs/cluster.md`.
//!
//! Keys (one Redis, not Redis Cluster: the sweeper script touches keys it derives itself):
//! - `rustchat:presence:user:{uid}`, ZSET: member = connection id (`<node_id>-<n>`), score =
//!   the connection's expiry in epoch ms. Every node re-adds its live connections every
//!   [`Timing::refresh`] (20 s) with a fresh expiry [`Timing::lifetime`] (60 s) ahead; a clean
//!   close removes the member. The key itself carries the same TTL, so a user nobody
//!   refreshes disappears with it.
//! - `rustchat:presence:online`, ZSET: member = user id, present from the user's first
//!   connection anywhere until `offline` was announced for them, so membership is "announced
//!   online". Score = the latest expiry among the user's connections while any is live, or
//!   the time their last connection closed cleanly. `active_users` = members with a score in
//!   the future (at least one live connection); members with a score more than the 5 s
//!   grace in the past are candidates for `offline`.
//!
//! All times come from the Redis clock (`TIME` inside the scripts), so node clocks may
//! disagree without effect. Each transition is decided by one atomic script whose answer
//! says whether *this* caller made it: adding the user to the online set (→ announce
//! `online`) or removing them (→ announce `offline`). Two nodes racing over the same user
//! therefore announce each transition once cluster-wide.
//!
//! Every call goes through the `redis` circuit breaker (shared with the bus publisher) and a
//! short timeout; an open breaker answers at once, and callers fall back to node-local
//! presence. Nothing here runs on the WebSocket read/write path: connects and closes hand
//! their presence work to spawned tasks.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use ron_kernel::CircuitBreaker;

/// Set of users announced online (see the module docs for the score).
pub const ONLINE_KEY: &str = "rustchat:presence:online";
/// Prefix of the per-user connection sets.
pub const USER_KEY_PREFIX: &str = "rustchat:presence:user:";
/// Longest one presence call may take, connecting included.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(1000);
/// Connections refreshed per script call (keeps each call short on a busy node).
const REFRESH_BATCH: usize = 500;
/// Users the sweeper settles per script call.
const SWEEP_BATCH: usize = 500;
/// Test-only override of the timing (`refresh_ms,lifetime_ms,sweep_ms`); the spec reserves
/// the `RUSTCHAT_TEST_` prefix, so the config loader ignores it. Never set in production.
pub const ENV_TEST_TIMING: &str = "RUSTCHAT_TEST_PRESENCE_TIMING";

/// Presence timing (spec §4.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How often a node re-adds its live connections.
    pub refresh: Duration,
    /// How far ahead each refresh moves a connection's expiry.
    pub lifetime: Duration,
    /// How often the sweeper looks for users left online by crashed nodes.
    pub sweep: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            refresh: Duration::from_secs(20),
            lifetime: Duration::from_secs(60),
            sweep: Duration::from_secs(15),
        }
    }
}

impl Timing {
    /// Parses the test override: three positive millisecond counts, refresh below lifetime.
    pub fn parse(text: &str) -> Option<Timing> {
        let ms: Vec<u64> = text
            .split(',')
            .map(|p| p.trim().parse::<u64>().ok().filter(|n| *n > 0))
            .collect::<Option<_>>()?;
        let [refresh, lifetime, sweep] = ms[..] else {
            return None;
        };
        (refresh < lifetime).then(|| Timing {
            refresh: Duration::from_millis(refresh),
            lifetime: Duration::from_millis(lifetime),
            sweep: Duration::from_millis(sweep),
        })
    }

    /// The spec's timing, or the test override when [`ENV_TEST_TIMING`] is set and valid.
    pub fn from_env() -> Timing {
        match std::env::var(ENV_TEST_TIMING) {
            Ok(v) => Timing::parse(&v).unwrap_or_else(|| {
                tracing::warn!(var = ENV_TEST_TIMING, value = %v, "ignoring invalid test presence timing");
                Timing::default()
            }),
            Err(_) => Timing::default(),
        }
    }
}

/// Why a presence call did not reach Redis; callers fall back to node-local presence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// The `redis` breaker is open: not attempted.
    #[error("redis breaker open")]
    BreakerOpen,
    /// Connect or command failed or timed out.
    #[error("redis: {0}")]
    Failed(String),
}

// Shared prologue: the Redis clock in epoch milliseconds.
macro_rules! script {
    ($body:literal) => {
        concat!(
            "local t = redis.call('TIME')\n",
            "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n",
            $body
        )
    };
}

/// A connection opened. KEYS: user set, online set. ARGV: conn id, user id, lifetime ms.
/// Returns 1 when the user just became a member of the online set (announce `online`).
const JOIN: &str = script!(
    "local exp = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], exp, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return redis.call('ZADD', KEYS[2], 'GT', exp, ARGV[2])"
);

/// A connection closed cleanly. KEYS: user set, online set. ARGV: conn id, user id.
/// The online score becomes the latest live expiry, or now ("closed at") when none is left.
/// Returns the user's live connections left anywhere.
const LEAVE: &str = script!(
    "redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local score = now
if #top > 0 then score = top[2] end
redis.call('ZADD', KEYS[2], 'XX', score, ARGV[2])
return redis.call('ZCARD', KEYS[1])"
);

/// The grace after a close ended. KEYS: user set, online set. ARGV: user id, grace ms.
/// Returns 1 when this call took the user out of the online set (announce `offline`): no
/// live connection anywhere and the last one closed at least `grace` ago.
const SETTLE: &str = script!(
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) > 0 then return 0 end
local s = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not s then return 0 end
if tonumber(s) > now - tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1"
);

/// Periodic refresh. KEYS: online set. ARGV: user key prefix, lifetime ms, then (user id,
/// conn id) pairs. Returns the users this call added to the online set (their presence was
/// lost, e.g. Redis restarted or the sweeper took them while this node stalled).
const REFRESH: &str = script!(
    "local exp = now + tonumber(ARGV[2])
local added = {}
for i = 3, #ARGV - 1, 2 do
  local k = ARGV[1] .. ARGV[i]
  redis.call('ZADD', k, exp, ARGV[i + 1])
  redis.call('PEXPIRE', k, ARGV[2])
  if redis.call('ZADD', KEYS[1], 'GT', exp, ARGV[i]) == 1 then table.insert(added, ARGV[i]) end
end
return added"
);

/// The sweeper. KEYS: online set. ARGV: user key prefix, grace ms, batch size. Users whose
/// score lies more than `grace` in the past are settled: expired connections (crashed
/// nodes) are dropped, and users with none left are removed and returned (announce
/// `offline`); users still live get their score corrected.
const SWEEP: &str = script!(
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]), 'LIMIT', 0, tonumber(ARGV[3]))
local gone = {}
for _, uid in ipairs(due) do
  local k = ARGV[1] .. uid
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
  local top = redis.call('ZRANGE', k, -1, -1, 'WITHSCORES')
  if #top == 0 then
    redis.call('ZREM', KEYS[1], uid)
    table.insert(gone, uid)
  else
    redis.call('ZADD', KEYS[1], top[2], uid)
  end
end
return gone"
);

/// `active_users`: members of the online set with at least one live connection.
const COUNT: &str = script!("return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')");

/// The node's handle on presence in Redis.
pub struct ClusterPresence {
    client: redis::Client,
    conn: Mutex<Option<MultiplexedConnection>>,
    breaker: Arc<CircuitBreaker>,
    /// Refresh, lifetime and sweep periods.
    pub timing: Timing,
    /// The last cluster-wide `active_users` and when it was read.
    count: Mutex<Option<(Instant, u64)>>,
}

fn user_key(uid: &str) -> String {
    format!("{USER_KEY_PREFIX}{uid}")
}

/// Errors that say Redis is unreachable (they feed the breaker); anything else (a script
/// error) is a bug of ours and leaves the breaker alone.
fn unreachable(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}

impl ClusterPresence {
    /// A handle on `client`, guarded by `breaker`.
    pub fn new(client: redis::Client, breaker: Arc<CircuitBreaker>, timing: Timing) -> Self {
        ClusterPresence {
            client,
            conn: Mutex::new(None),
            breaker,
            timing,
            count: Mutex::new(None),
        }
    }

    async fn connection(&self) -> Result<MultiplexedConnection, redis::RedisError> {
        if let Some(c) = self.conn.lock().clone() {
            return Ok(c);
        }
        // Two callers may connect at once after a failure; the later one wins, harmlessly.
        let c = self.client.get_multiplexed_async_connection().await?;
        *self.conn.lock() = Some(c.clone());
        Ok(c)
    }

    /// Runs one command through the breaker, within [`CALL_TIMEOUT`].
    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, Unavailable> {
        let permit = self
            .breaker
            .try_acquire()
            .map_err(|_| Unavailable::BreakerOpen)?;
        let call = async {
            let mut c = self.connection().await?;
            cmd.query_async::<T>(&mut c).await
        };
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(v)) => {
                permit.success();
                Ok(v)
            }
            Ok(Err(e)) => {
                if unreachable(&e) {
                    permit.failure();
                    *self.conn.lock() = None;
                } else {
                    drop(permit);
                    tracing::error!(error = %e, "presence command failed");
                }
                Err(Unavailable::Failed(e.to_string()))
            }
            Err(_) => {
                permit.failure();
                *self.conn.lock() = None;
                Err(Unavailable::Failed("timed out".into()))
            }
        }
    }

    /// Runs one of the scripts above.
    async fn eval<T: redis::FromRedisValue>(
        &self,
        script: &str,
        keys: &[&str],
        args: &[String],
    ) -> Result<T, Unavailable> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(script).arg(keys.len()).arg(keys).arg(args);
        self.run(cmd).await
    }

    /// Records a new connection; `true` when the user just came online cluster-wide.
    pub async fn join(&self, uid: &str, conn: &str) -> Result<bool, Unavailable> {
        let lifetime = self.timing.lifetime.as_millis().to_string();
        let added: i64 = self
            .eval(
                JOIN,
                &[&user_key(uid), ONLINE_KEY],
                &[conn.into(), uid.into(), lifetime],
            )
            .await?;
        Ok(added == 1)
    }

    /// Removes a closed connection; returns the user's live connections left anywhere.
    pub async fn leave(&self, uid: &str, conn: &str) -> Result<u64, Unavailable> {
        self.eval(
            LEAVE,
            &[&user_key(uid), ONLINE_KEY],
            &[conn.into(), uid.into()],
        )
        .await
    }

    /// After the grace: `true` when this call took the user offline (announce it).
    pub async fn settle(&self, uid: &str, grace: Duration) -> Result<bool, Unavailable> {
        let removed: i64 = self
            .eval(
                SETTLE,
                &[&user_key(uid), ONLINE_KEY],
                &[uid.into(), grace.as_millis().to_string()],
            )
            .await?;
        Ok(removed == 1)
    }

    /// Moves the expiry of these (user id, connection id) pairs ahead; returns the users
    /// that were missing from the online set.
    pub async fn refresh(&self, conns: &[(String, String)]) -> Result<Vec<String>, Unavailable> {
        let mut added = Vec::new();
        for batch in conns.chunks(REFRESH_BATCH) {
            let mut args = vec![
                USER_KEY_PREFIX.to_string(),
                self.timing.lifetime.as_millis().to_string(),
            ];
            for (uid, conn) in batch {
                args.push(uid.clone());
                args.push(conn.clone());
            }
            let got: Vec<String> = self.eval(REFRESH, &[ONLINE_KEY], &args).await?;
            added.extend(got);
        }
        Ok(added)
    }

    /// One sweep: the users it took offline (announce them).
    pub async fn sweep(&self, grace: Duration) -> Result<Vec<String>, Unavailable> {
        let mut gone = Vec::new();
        loop {
            let got: Vec<String> = self
                .eval(
                    SWEEP,
                    &[ONLINE_KEY],
                    &[
                        USER_KEY_PREFIX.to_string(),
                        grace.as_millis().to_string(),
                        SWEEP_BATCH.to_string(),
                    ],
                )
                .await?;
            let full = got.len() == SWEEP_BATCH;
            gone.extend(got);
            if !full {
                return Ok(gone);
            }
        }
    }

    /// Which of `ids` are announced online somewhere in the cluster.
    pub async fn online_among(&self, ids: &[String]) -> Result<HashSet<String>, Unavailable> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let mut cmd = redis::cmd("ZMSCORE");
        cmd.arg(ONLINE_KEY).arg(ids);
        let scores: Vec<Option<f64>> = self.run(cmd).await?;
        Ok(ids
            .iter()
            .zip(scores)
            .filter(|(_, s)| s.is_some())
            .map(|(id, _)| id.clone())
            .collect())
    }

    /// Every user announced online in the cluster.
    pub async fn online_all(&self) -> Result<HashSet<String>, Unavailable> {
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(ONLINE_KEY).arg(0).arg(-1);
        let ids: Vec<String> = self.run(cmd).await?;
        Ok(ids.into_iter().collect())
    }

    /// Reads the cluster-wide `active_users` and remembers it; forgets it on failure so
    /// readers fall back to the node-local count at once.
    pub async fn update_count(&self) -> Result<u64, Unavailable> {
        match self.eval::<u64>(COUNT, &[ONLINE_KEY], &[]).await {
            Ok(n) => {
                *self.count.lock() = Some((Instant::now(), n));
                Ok(n)
            }
            Err(e) => {
                *self.count.lock() = None;
                Err(e)
            }
        }
    }

    /// The remembered cluster-wide count if it is younger than `max_age`.
    pub fn count(&self, max_age: Duration) -> Option<u64> {
        self.count
            .lock()
            .filter(|(at, _)| at.elapsed() < max_age)
            .map(|(_, n)| n)
    }

    /// Drops the connection (Redis is known to have gone away).
    pub fn reset_connection(&self) {
        *self.conn.lock() = None;
    }

    /// Forgets the remembered count (Redis is known to be away).
    pub fn forget_count(&self) {
        *self.count.lock() = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ron_kernel::BreakerConfig;

    #[test]
    fn test_timing_needs_three_positive_values_with_refresh_below_lifetime() {
        assert_eq!(
            Timing::parse("1000, 3000,500"),
            Some(Timing {
                refresh: Duration::from_millis(1000),
                lifetime: Duration::from_millis(3000),
                sweep: Duration::from_millis(500),
            })
        );
        for bad in [
            "",
            "1,2",
            "1,2,3,4",
            "3000,1000,1",
            "0,10,1",
            "a,b,c",
            "1,-2,3",
        ] {
            assert_eq!(Timing::parse(bad), None, "{bad:?}");
        }
    }

    fn presence(url: &str, timing: Timing) -> ClusterPresence {
        let breaker = Arc::new(CircuitBreaker::new("redis", BreakerConfig::default()));
        ClusterPresence::new(redis::Client::open(url).unwrap(), breaker, timing)
    }

    // The scripts against a real Redis: every transition is claimed by exactly one caller.
    #[tokio::test]
    async fn transitions_are_claimed_once_and_expired_connections_are_swept() {
        let Some(redis) = test_support::RedisServer::start() else {
            return;
        };
        let timing = Timing {
            refresh: Duration::from_millis(100),
            lifetime: Duration::from_millis(1500),
            sweep: Duration::from_millis(100),
        };
        let a = presence(&redis.url(), timing);
        let b = presence(&redis.url(), timing);
        let grace = Duration::from_millis(200);

        // First connection anywhere comes online; a second one on another node does not.
        assert_eq!(a.join("u1", "a-1").await, Ok(true));
        assert_eq!(b.join("u1", "b-1").await, Ok(false));
        assert_eq!(a.update_count().await, Ok(1));
        assert_eq!(
            b.online_among(&["u1".into(), "u2".into()]).await,
            Ok(HashSet::from(["u1".to_string()]))
        );
        assert_eq!(b.online_all().await, Ok(HashSet::from(["u1".to_string()])));

        // Leaving one node keeps the user online; settling then claims nothing.
        assert_eq!(a.leave("u1", "a-1").await, Ok(1));
        tokio::time::sleep(grace).await;
        assert_eq!(a.settle("u1", grace).await, Ok(false));
        assert_eq!(a.update_count().await, Ok(1));

        // Last close: not counted any more, offline claimed once after the grace.
        assert_eq!(b.leave("u1", "b-1").await, Ok(0));
        assert_eq!(a.update_count().await, Ok(0));
        assert_eq!(b.settle("u1", grace).await, Ok(false), "grace not over");
        tokio::time::sleep(grace + Duration::from_millis(50)).await;
        let (x, y) = tokio::join!(a.settle("u1", grace), b.settle("u1", grace));
        assert_eq!(
            [x, y].iter().filter(|r| **r == Ok(true)).count(),
            1,
            "exactly one node announces offline"
        );

        // A reconnect within the grace is not a new `online`.
        assert_eq!(a.join("u2", "a-2").await, Ok(true));
        a.leave("u2", "a-2").await.unwrap();
        assert_eq!(b.join("u2", "b-2").await, Ok(false));

        // A crashed node's connection expires and one sweeper takes the user offline.
        assert_eq!(a.join("u3", "a-3").await, Ok(true));
        let until = Instant::now() + timing.lifetime + grace + Duration::from_millis(100);
        while Instant::now() < until {
            tokio::time::sleep(timing.refresh).await;
            b.refresh(&[("u2".into(), "b-2".into())]).await.unwrap();
        }
        let (x, y) = tokio::join!(a.sweep(grace), b.sweep(grace));
        let gone: Vec<String> = [x.unwrap(), y.unwrap()].concat();
        assert!(gone.contains(&"u3".to_string()), "{gone:?}");
        assert_eq!(gone.iter().filter(|u| *u == "u3").count(), 1);
        assert!(
            !gone.contains(&"u2".to_string()),
            "u2 is live on b: {gone:?}"
        );

        // A refresh brings back a user whose presence was lost, and says so.
        redis.cli(&["DEL", ONLINE_KEY]);
        let back = b.refresh(&[("u2".into(), "b-2".into())]).await.unwrap();
        assert_eq!(back, vec!["u2".to_string()]);
        assert_eq!(b.refresh(&[("u2".into(), "b-2".into())]).await, Ok(vec![]));

        // Redis away: calls fail fast and, after the threshold, the breaker stops trying.
        redis.stop();
        for _ in 0..ron_kernel::breaker::DEFAULT_FAILURE_THRESHOLD {
            assert!(matches!(
                a.join("u4", "a-4").await,
                Err(Unavailable::Failed(_))
            ));
        }
        assert_eq!(a.join("u4", "a-4").await, Err(Unavailable::BreakerOpen));
        assert_eq!(a.count(Duration::from_secs(60)), Some(0));
        assert!(a.update_count().await.is_err());
        assert_eq!(a.count(Duration::from_secs(60)), None);
    }
}
