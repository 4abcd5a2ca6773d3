//! Presence (CHAT-R20, spec §4.9): a user with a live connection is `online` unless they set
//! a manual status (API or WebSocket), which sticks until they set `online`. A user whose
//! last connection closed is `offline` after [`OFFLINE_AFTER`] without reconnecting.
//! Changes go to the members of the user's teams as `status_change`.
//!
//! Without Redis the counts are this node's. With Redis they are cluster-wide
//! ([`super::cluster_presence`]): "first connection" and "no connection left" are decided
//! by atomic scripts over every node's connections, so a user connected on node A who
//! disconnects from node B stays online, and each transition is announced once. When a
//! Redis call fails or the `redis` breaker is open, the decision falls back to this node's
//! count at once (spec §6: "presence node-local" while Redis is down).
//!
//! Nothing here blocks a WebSocket: connects and closes hand their presence work to spawned
//! tasks ([`joined`], [`left`]); a connection's close waits for its own join to finish, so
//! Redis sees them in order.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::cluster_presence::ClusterPresence;
use super::events;
use crate::state::AppState;
use crate::store::StoreResult;
use crate::store_read;

/// Grace after the last connection closes before the user turns offline.
pub const OFFLINE_AFTER: Duration = Duration::from_secs(5);
/// The closing node's own check after the grace accepts a last close this much younger
/// than [`OFFLINE_AFTER`] (timer versus Redis clock rounding); a later close elsewhere is
/// left to that node's timer.
const SETTLE_TOLERANCE: Duration = Duration::from_millis(250);
/// How often the cluster-wide `active_users` is read from Redis.
pub const COUNT_EVERY: Duration = Duration::from_secs(1);
/// A cluster-wide count older than this is not used (node-local instead).
pub const COUNT_MAX_AGE: Duration = Duration::from_secs(3);
/// Accepted statuses.
pub const STATUSES: [&str; 4] = ["online", "away", "dnd", "offline"];

/// The cluster presence, in cluster mode.
fn cluster(st: &AppState) -> Option<&ClusterPresence> {
    st.hub.cluster.get().map(|c| &c.presence)
}

async fn manual_status(st: &AppState, user_id: &str) -> StoreResult<Option<String>> {
    let ids = vec![user_id.to_string()];
    let rows = store_read!(st.store, |c| ops::statuses(c, &ids).await)?;
    Ok(rows.into_iter().find(|s| s.manual).map(|s| s.status))
}

async fn announce(st: &AppState, user_id: &str, status: &str) {
    let uid = user_id.to_string();
    match store_read!(st.store, |c| ops::teammate_ids(c, &uid).await) {
        Ok(mut to) => {
            if !to.iter().any(|u| u == user_id) {
                to.push(user_id.to_string());
            }
            events::status_change(st, &to, user_id, status);
        }
        Err(e) => tracing::warn!(error = %e, "presence: teammates lookup failed"),
    }
}

/// Announces `status` (online/offline) unless the user set a manual status.
async fn announce_unless_manual(st: &AppState, user_id: &str, status: &str) {
    match manual_status(st, user_id).await {
        Ok(None) => announce(st, user_id, status).await,
        Ok(Some(_)) => {}
        Err(e) => tracing::warn!(error = %e, "presence: status lookup failed"),
    }
}

/// A connection opened (`first_here`: the user had none on this node). Runs in its own
/// task; the handle goes to [`left`] when the connection closes.
pub fn joined(st: &AppState, user_id: &str, conn_id: &str, first_here: bool) -> JoinHandle<()> {
    let (st, uid, conn) = (st.clone(), user_id.to_string(), conn_id.to_string());
    tokio::spawn(async move {
        let first = match cluster(&st) {
            Some(p) => p.join(&uid, &conn).await.unwrap_or(first_here),
            None => first_here,
        };
        if first {
            announce_unless_manual(&st, &uid, "online").await;
        }
    })
}

/// A connection closed (`left_here`: the user's connections still open on this node).
/// After its join finished, the connection leaves Redis; when it was the user's last one
/// here, the user turns offline after [`OFFLINE_AFTER`] unless a connection (here or, in
/// cluster mode, anywhere) is open by then.
pub fn left(st: &AppState, user_id: &str, conn_id: &str, left_here: usize, join: JoinHandle<()>) {
    let (st, uid, conn) = (st.clone(), user_id.to_string(), conn_id.to_string());
    tokio::spawn(async move {
        let _ = join.await;
        if let Some(p) = cluster(&st) {
            // A failure leaves the entry to expire; the sweeper settles it.
            let _ = p.leave(&uid, &conn).await;
        }
        if left_here > 0 {
            return;
        }
        tokio::time::sleep(OFFLINE_AFTER).await;
        if st.hub.user_connections(&uid) > 0 {
            return;
        }
        let offline = match cluster(&st) {
            // Ok(false): still connected elsewhere, or another node announced it already.
            Some(p) => p
                .settle(&uid, OFFLINE_AFTER - SETTLE_TOLERANCE)
                .await
                .unwrap_or(true),
            None => true,
        };
        if offline {
            announce_unless_manual(&st, &uid, "offline").await;
        }
    });
}

/// Whether the user has a connection here or is announced online in the cluster.
async fn is_connected(st: &AppState, user_id: &str) -> bool {
    if st.hub.user_connections(user_id) > 0 {
        return true;
    }
    match cluster(st) {
        Some(p) => p
            .online_among(&[user_id.to_string()])
            .await
            .is_ok_and(|s| !s.is_empty()),
        None => false,
    }
}

/// Sets a status; anything but `online` sticks across reconnects.
pub async fn set(st: &AppState, user_id: &str, status: &str) -> StoreResult<()> {
    let (uid, s) = (user_id.to_string(), status.to_string());
    let manual = status != "online";
    // Only manual statuses are read back (`manual_status`, `statuses`): a stored non-manual
    // row means the same as no row. So a write that would leave the manual status as it is
    // is skipped, and clients' periodic "online" puts stay off the single SQLite writer. Two
    // concurrent sets by the same user have no defined order either way.
    let stored = manual_status(st, user_id).await?;
    let unchanged = if manual {
        stored.as_deref() == Some(status)
    } else {
        stored.is_none()
    };
    if !unchanged {
        crate::store_write!(st.store, |c| ops::set_status(c, &uid, &s, manual).await)?;
    }
    let shown = if status == "online" && !is_connected(st, user_id).await {
        "offline"
    } else {
        status
    };
    announce(st, user_id, shown).await;
    Ok(())
}

/// Effective statuses of `ids`: manual ones as stored, otherwise online when connected
/// here or announced online in the cluster.
pub async fn statuses(st: &AppState, ids: &[String]) -> StoreResult<HashMap<String, String>> {
    let want = ids.to_vec();
    let rows = store_read!(st.store, |c| ops::statuses(c, &want).await)?;
    let manual: HashMap<String, String> = rows
        .into_iter()
        .filter(|s| s.manual)
        .map(|s| (s.user_id, s.status))
        .collect();
    let elsewhere: Vec<String> = ids
        .iter()
        .filter(|id| !manual.contains_key(*id) && st.hub.user_connections(id) == 0)
        .cloned()
        .collect();
    let remote: HashSet<String> = match cluster(st) {
        Some(p) if !elsewhere.is_empty() => p.online_among(&elsewhere).await.unwrap_or_default(),
        _ => HashSet::new(),
    };
    Ok(ids
        .iter()
        .map(|id| {
            let s = manual.get(id).cloned().unwrap_or_else(|| {
                if st.hub.user_connections(id) > 0 || remote.contains(id) {
                    "online".into()
                } else {
                    "offline".into()
                }
            });
            (id.clone(), s)
        })
        .collect())
}

/// Who counts as online for an `@here` in `message` (CHAT-R15): users connected to this
/// node and, when the message has `@here` and Redis answers, everyone announced online in
/// the cluster (fetched only then: the set can be large).
pub async fn online_for_here(st: &AppState, message: &str) -> HashSet<String> {
    let mut online = st.hub.online_users();
    if let Some(p) = cluster(st)
        && crate::mentions::extract(message, |_| false).here
        && let Ok(all) = p.online_all().await
    {
        online.extend(all);
    }
    online
}

/// `active_users`: cluster-wide while Redis answers, else this node's.
pub fn active_users(st: &AppState) -> usize {
    st.hub
        .cluster
        .get()
        .filter(|c| c.healthy())
        .and_then(|c| c.presence.count(COUNT_MAX_AGE))
        .map_or_else(|| st.hub.active_users(), |n| n as usize)
}

/// Writes [`active_users`] into `rustchat_active_users` (also what `/stats` shows).
pub fn update_active_users(st: &AppState) {
    st.metrics.active_users.set(active_users(st) as i64);
}

/// Re-adds every connection of this node in Redis with a fresh expiry; users that were
/// missing from the online set (Redis restarted, or this node stalled past the lifetime and
/// was swept) are announced online again.
pub async fn refresh_now(st: &AppState) {
    let Some(p) = cluster(st) else { return };
    let conns: Vec<(String, String)> = st
        .hub
        .all()
        .iter()
        .map(|c| (c.user_id.clone(), c.id.clone()))
        .collect();
    if conns.is_empty() {
        return;
    }
    let added = match p.refresh(&conns).await {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!(error = %e, "presence refresh skipped");
            return;
        }
    };
    // A connection that closed while the refresh ran was re-added by it: remove it again.
    for (uid, id) in &conns {
        if !st.hub.has_connection(id) {
            let _ = p.leave(uid, id).await;
        }
    }
    // Announced from their own task: after a Redis restart this is every user here, and
    // the 1012 resync waits for this refresh.
    let added: HashSet<String> = added.into_iter().collect();
    if !added.is_empty() {
        let st = st.clone();
        tokio::spawn(async move {
            for uid in added {
                announce_unless_manual(&st, &uid, "online").await;
            }
        });
    }
}

/// One sweep: users left online by crashed nodes are announced offline (once, by whichever
/// node's sweep removed them).
async fn sweep_now(st: &AppState) {
    let Some(p) = cluster(st) else { return };
    match p.sweep(OFFLINE_AFTER).await {
        Ok(gone) => {
            for uid in gone {
                // A user connected here again meanwhile is announced by their join.
                if st.hub.user_connections(&uid) == 0 {
                    announce_unless_manual(st, &uid, "offline").await;
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, "presence sweep skipped"),
    }
}

/// Starts the cluster presence loops (refresh, sweeper, `active_users` count) until `stop`.
pub fn spawn_cluster_tasks(st: &AppState, stop: CancellationToken) {
    let Some(p) = cluster(st) else { return };
    let timing = p.timing;
    let every = |period: Duration, st: AppState, stop: CancellationToken, what: Job| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                match what {
                    Job::Refresh => refresh_now(&st).await,
                    Job::Sweep => sweep_now(&st).await,
                    Job::Count => count_now(&st).await,
                }
            }
        });
    };
    every(timing.refresh, st.clone(), stop.clone(), Job::Refresh);
    every(timing.sweep, st.clone(), stop.clone(), Job::Sweep);
    every(COUNT_EVERY, st.clone(), stop, Job::Count);
}

#[derive(Clone, Copy)]
enum Job {
    Refresh,
    Sweep,
    Count,
}

async fn count_now(st: &AppState) {
    if let Some(c) = st.hub.cluster.get() {
        if c.healthy() {
            let _ = c.presence.update_count().await;
        } else {
            c.presence.forget_count();
        }
    }
    update_active_users(st);
}
