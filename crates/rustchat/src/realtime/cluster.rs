//! Cluster mode over Redis pub/sub (CHAT-R19, spec §4.8), active when `redis_url` is set.
//! Design notes for operators: `crates/rustchat/docs/cluster.md`.
//!
//! Events are delivered locally first, then published as
//! `{"v":1,"kind":"event","origin":<node_id>,...}` on `rustchat:cluster:ws:broadcast`. Every
//! node subscribes on a dedicated connection, drops its own echoes and fans the rest out to
//! its own WebSockets through the same hub path (membership is checked against this node's
//! index at send time). Every `cluster.heartbeat_interval_seconds` a node publishes
//! `{"kind":"heartbeat","node_id","ts_ms","connections","version"}` on
//! `rustchat:cluster:heartbeat` and logs INFO `cluster heartbeat`; peers silent for three
//! intervals are dropped.
//!
//! Publishing never waits on Redis: messages go into a bounded queue that one task drains
//! through the `redis` circuit breaker. After [`REDIS_BREAKER_FAILURES`] consecutive
//! failures (connect errors, timeouts) the breaker opens and publishes are dropped without
//! contacting Redis until a probe succeeds [`REDIS_BREAKER_OPEN`] later; same-node delivery
//! is unaffected, readiness reports `checks.redis.status = "degraded"` with a `redis`
//! warning (spec decision 5), and the subscriber reconnects with a 1 → 10 s backoff. The
//! breaker is shared with cluster presence ([`super::cluster_presence`]), so an outage
//! seen by either side makes both fall back at once.
//!
//! Session revocations travel as kind `session_revoked` (one session, or every session of a
//! user or of everyone), so a logout or deactivation on one node drops the cache entry and
//! closes the WebSockets (1008) on every node. An admin change of `server_config` travels as
//! kind `config_changed`: every other node re-reads the table at once instead of at its next
//! `server.config_refresh_seconds` tick.
//!
//! After a gap in the subscription (Redis was away), events from other nodes may have been
//! missed, so the node closes its WebSockets with 1012, spread over up to 30 s; clients
//! reconnect and re-read. Presence is re-asserted in Redis before those closes start (a
//! restarted Redis is empty).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::hub::Broadcast;

/// Channel carrying WebSocket events between nodes.
pub const BROADCAST_CHANNEL: &str = "rustchat:cluster:ws:broadcast";
/// Channel carrying heartbeats.
pub const HEARTBEAT_CHANNEL: &str = "rustchat:cluster:heartbeat";
/// Messages waiting for the publisher; beyond this they are dropped (Redis slow or down).
pub const PUBLISH_QUEUE: usize = 8192;
/// Reconnect backoff bounds.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(10));
/// The 1012 closes after a bus gap are spread over this window.
pub const RESYNC_WINDOW: Duration = Duration::from_secs(30);
/// Longest a single Redis command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Consecutive Redis failures that open the `redis` breaker.
pub const REDIS_BREAKER_FAILURES: u32 = 3;
/// How long the open `redis` breaker fails fast before one probe may try Redis again.
pub const REDIS_BREAKER_OPEN: Duration = Duration::from_secs(5);

/// The `redis` breaker's tuning (one probe; one success closes it again).
pub fn redis_breaker_config() -> ron_kernel::BreakerConfig {
    ron_kernel::BreakerConfig {
        failure_threshold: REDIS_BREAKER_FAILURES,
        open_for: REDIS_BREAKER_OPEN,
        half_open_max_probes: 1,
        success_threshold: 1,
    }
}

/// Where an event goes on the receiving node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every connection subscribed to the broadcast's channel.
    Channel,
    /// Every connection of these users.
    Users(Vec<String>),
}

/// `rustchat_cluster_messages_total` kinds.
pub const KINDS: [&str; 4] = ["event", "heartbeat", "session_revoked", "config_changed"];
/// Index of `config_changed` in [`KINDS`].
const CONFIG_CHANGED: usize = 3;

/// A session revocation every node applies to its session cache and WebSockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// One session (logout, session revoke): cache entry dropped, its sockets closed 1008.
    Session(String),
    /// Every session of a user (`None`: of everyone); sockets closed when `close`.
    User {
        /// The user, or everyone.
        id: Option<String>,
        /// Close the WebSockets too (deactivation, revoke-all), not only the cache.
        close: bool,
    },
}

/// The node's view of the cluster.
pub struct Cluster {
    node_id: String,
    hooks: Arc<dyn Deliver>,
    tx: mpsc::Sender<(String, String)>,
    peers: Mutex<HashMap<String, Instant>>,
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
    breaker: Arc<ron_kernel::CircuitBreaker>,
    /// Cluster-wide presence in Redis (CHAT-R20).
    pub presence: super::cluster_presence::ClusterPresence,
    /// Published messages by kind (index into [`KINDS`]).
    pub published: [AtomicU64; 4],
    /// Received messages (other nodes') by kind.
    pub received: [AtomicU64; 4],
    /// Messages dropped because the publish queue was full.
    pub dropped: AtomicU64,
}

/// What the cluster hands received events to.
pub trait Deliver: Send + Sync + 'static {
    /// Delivers an event that another node published, to this node's connections only.
    fn deliver(&self, target: &Target, event: &str, v1: &Value, v4: &Value, b: &Broadcast);
    /// This node's WebSocket connections (for heartbeats).
    fn connections(&self) -> usize;
    /// Applies a revocation another node published, on this node only.
    fn revoke(&self, rev: &Revocation);
    /// The bus had a gap: events from other nodes may have been missed, so clients must
    /// reconnect and re-read (1012 over [`RESYNC_WINDOW`]).
    fn resync(&self);
    /// Counts one bus message (`rustchat_cluster_messages_total{direction,kind}`).
    fn count(&self, direction: &str, kind: &str);
    /// Live nodes changed (`rustchat_cluster_nodes`, `/stats.cluster_nodes`).
    fn nodes(&self, n: usize);
    /// Another node changed `server_config`: re-read it now.
    fn config_changed(&self);
}

impl Cluster {
    /// Redis is reachable (both connections up).
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// The last Redis error, if the bus is degraded.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    /// Live nodes, this one included.
    pub fn nodes(&self) -> usize {
        1 + self.peers.lock().len()
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The `redis` circuit breaker (`/stats.circuit_breakers.redis`).
    pub fn breaker(&self) -> &ron_kernel::CircuitBreaker {
        &self.breaker
    }

    /// Tells the other nodes that `server_config` changed; never waits.
    pub fn publish_config_changed(&self) {
        let msg = json!({"v": 1, "kind": "config_changed", "origin": self.node_id});
        self.enqueue(BROADCAST_CHANNEL, msg.to_string(), CONFIG_CHANGED);
    }

    /// Queues an event for the other nodes; never waits.
    pub fn publish_event(
        &self,
        target: &Target,
        event: &str,
        v1: &Value,
        v4: &Value,
        b: &Broadcast,
    ) {
        let to = match target {
            Target::Channel => json!({"channel": b.channel_id}),
            Target::Users(u) => json!({"users": u}),
        };
        let msg = json!({
            "v": 1,
            "kind": "event",
            "origin": self.node_id,
            "to": to,
            "event": event,
            "v1": v1,
            "v4": v4,
            "broadcast": {
                "omit_users": b.omit_users,
                "user_id": b.user_id,
                "channel_id": b.channel_id,
                "team_id": b.team_id,
            },
        });
        self.enqueue(BROADCAST_CHANNEL, msg.to_string(), 0);
    }

    /// Queues a revocation for the other nodes; never waits.
    pub fn publish_revocation(&self, rev: &Revocation) {
        let body = match rev {
            Revocation::Session(sid) => json!({"session_id": sid}),
            Revocation::User { id, close } => json!({"user_id": id, "close": close}),
        };
        let mut msg = json!({"v": 1, "kind": "session_revoked", "origin": self.node_id});
        if let (Some(m), Some(b)) = (msg.as_object_mut(), body.as_object()) {
            m.extend(b.clone());
        }
        self.enqueue(BROADCAST_CHANNEL, msg.to_string(), 2);
    }

    fn enqueue(&self, channel: &str, payload: String, kind: usize) {
        match self.tx.try_send((channel.to_string(), payload)) {
            Ok(()) => {
                self.published[kind].fetch_add(1, Ordering::Relaxed);
                self.hooks.count("published", KINDS[kind]);
            }
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn set_health(&self, up: bool, error: Option<String>) {
        let was = self.healthy.swap(up, Ordering::AcqRel);
        *self.last_error.lock() = error.clone();
        if was != up {
            if up {
                tracing::info!(node_id = %self.node_id, "redis connected: cluster fan-out resumed");
            } else {
                // Its connection died with the server's; reconnect on the next call rather
                // than spend a breaker probe on the dead one.
                self.presence.reset_connection();
                tracing::warn!(node_id = %self.node_id, error = error.as_deref().unwrap_or(""), "redis unavailable: cluster fan-out paused, local delivery continues");
            }
        }
    }
}

/// Parses a bus message from another node into (target, event, v1, v4, broadcast).
pub fn parse_event(v: &Value) -> Option<(Target, String, Value, Value, Broadcast)> {
    // The channel id itself travels in the broadcast; `to.channel` only marks the kind.
    let target = if v["to"]["channel"].is_string() {
        Target::Channel
    } else {
        Target::Users(
            v["to"]["users"]
                .as_array()?
                .iter()
                .filter_map(|u| u.as_str().map(str::to_string))
                .collect(),
        )
    };
    let b = &v["broadcast"];
    let s = |k: &str| b[k].as_str().unwrap_or_default().to_string();
    let broadcast = Broadcast {
        omit_users: b["omit_users"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|u| u.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        user_id: s("user_id"),
        channel_id: s("channel_id"),
        team_id: s("team_id"),
    };
    Some((
        target,
        v["event"].as_str()?.to_string(),
        v["v1"].clone(),
        v["v4"].clone(),
        broadcast,
    ))
}

/// Parses a `session_revoked` message.
pub fn parse_revocation(v: &Value) -> Option<Revocation> {
    if let Some(sid) = v["session_id"].as_str() {
        return Some(Revocation::Session(sid.to_string()));
    }
    let close = v["close"].as_bool()?;
    Some(Revocation::User {
        id: v["user_id"].as_str().map(str::to_string),
        close,
    })
}

/// Applies `rev` on this node: the session cache, then the WebSockets (1008).
pub fn apply_revocation(st: &crate::state::AppState, rev: &Revocation) {
    use crate::realtime::CloseReason;
    match rev {
        Revocation::Session(sid) => {
            st.sessions.remove(sid);
            st.hub.close_session(sid, CloseReason::Revoked);
        }
        Revocation::User { id, close } => {
            st.sessions.remove_user(id.as_deref());
            if *close {
                st.hub.close_user(id.as_deref(), CloseReason::Revoked);
            }
        }
    }
}

/// Applies `rev` here and, in cluster mode, on every other node (CHAT-R19, R21).
pub fn revoke(st: &crate::state::AppState, rev: Revocation) {
    apply_revocation(st, &rev);
    if let Some(c) = st.hub.cluster.get() {
        c.publish_revocation(&rev);
    }
}

/// Starts the bus: the publisher, the subscriber and the heartbeat, until `stop`.
///
/// `breaker` is the `redis` breaker ([`redis_breaker_config`]); publishes and presence calls
/// go through it.
pub fn start(
    url: &str,
    node_id: String,
    heartbeat: Duration,
    version: String,
    deliver: Arc<dyn Deliver>,
    breaker: Arc<ron_kernel::CircuitBreaker>,
    stop: CancellationToken,
) -> Result<Arc<Cluster>, String> {
    let client = redis::Client::open(url).map_err(|e| format!("redis_url: {}", e.category()))?;
    let presence = super::cluster_presence::ClusterPresence::new(
        client.clone(),
        breaker.clone(),
        super::cluster_presence::Timing::from_env(),
    );
    let (tx, rx) = mpsc::channel(PUBLISH_QUEUE);
    let cluster = Arc::new(Cluster {
        node_id,
        hooks: deliver.clone(),
        tx,
        peers: Mutex::new(HashMap::new()),
        healthy: AtomicBool::new(false),
        last_error: Mutex::new(Some("connecting".into())),
        breaker,
        presence,
        published: Default::default(),
        received: Default::default(),
        dropped: AtomicU64::new(0),
    });
    tokio::spawn(publisher(client.clone(), rx, cluster.clone(), stop.clone()));
    tokio::spawn(subscriber(
        client,
        cluster.clone(),
        deliver.clone(),
        heartbeat,
        stop.clone(),
    ));
    tokio::spawn(heartbeats(
        cluster.clone(),
        deliver,
        heartbeat,
        version,
        stop,
    ));
    Ok(cluster)
}

fn next_backoff(d: Duration) -> Duration {
    (d * 2).min(BACKOFF.1)
}

async fn publisher(
    client: redis::Client,
    mut rx: mpsc::Receiver<(String, String)>,
    cluster: Arc<Cluster>,
    stop: CancellationToken,
) {
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => return,
            m = rx.recv() => match m { Some(m) => m, None => return },
        };
        // Fail fast (spec §4.8): while the breaker is open nothing is attempted and the
        // message is dropped; the 1012 resync after the gap covers what peers missed.
        let Ok(permit) = cluster.breaker.try_acquire() else {
            cluster.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let sent = tokio::time::timeout(
            COMMAND_TIMEOUT,
            publish_once(&client, &mut conn, &msg.0, &msg.1),
        )
        .await;
        if matches!(sent, Ok(Ok(()))) {
            permit.success();
        } else {
            permit.failure();
            cluster.dropped.fetch_add(1, Ordering::Relaxed);
            conn = None;
        }
    }
}

/// One PUBLISH, connecting first when there is no connection.
async fn publish_once(
    client: &redis::Client,
    conn: &mut Option<redis::aio::MultiplexedConnection>,
    channel: &str,
    payload: &str,
) -> redis::RedisResult<()> {
    if conn.is_none() {
        *conn = Some(client.get_multiplexed_async_connection().await?);
    }
    let Some(c) = conn.as_mut() else {
        return Ok(());
    };
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query_async::<i64>(c)
        .await
        .map(drop)
}

async fn subscriber(
    client: redis::Client,
    cluster: Arc<Cluster>,
    deliver: Arc<dyn Deliver>,
    heartbeat: Duration,
    stop: CancellationToken,
) {
    let mut backoff = BACKOFF.0;
    // Set once a subscription was lost: the next one follows a gap.
    let mut gap = false;
    loop {
        let connected = async {
            let mut ps = client.get_async_pubsub().await.map_err(|e| e.to_string())?;
            ps.subscribe(BROADCAST_CHANNEL)
                .await
                .map_err(|e| e.to_string())?;
            ps.subscribe(HEARTBEAT_CHANNEL)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(ps)
        };
        let ps = tokio::select! {
            _ = stop.cancelled() => return,
            r = tokio::time::timeout(COMMAND_TIMEOUT, connected) => r,
        };
        let mut ps = match ps {
            Ok(Ok(ps)) => ps,
            Ok(Err(e)) => {
                cluster.set_health(false, Some(e));
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = next_backoff(backoff);
                continue;
            }
            Err(_) => {
                cluster.set_health(false, Some("connect timed out".into()));
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = next_backoff(backoff);
                continue;
            }
        };
        backoff = BACKOFF.0;
        cluster.set_health(true, None);
        if std::mem::take(&mut gap) {
            tracing::warn!(node_id = %cluster.node_id, "cluster bus gap: closing WebSockets with 1012 to resync");
            deliver.resync();
        }
        let mut messages = ps.on_message();
        loop {
            let m = tokio::select! {
                _ = stop.cancelled() => return,
                m = messages.next() => m,
            };
            let Some(m) = m else { break };
            let Ok(payload) = m.get_payload::<String>() else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<Value>(&payload) else {
                continue;
            };
            handle(&cluster, &*deliver, &v, heartbeat);
        }
        cluster.set_health(false, Some("subscription connection lost".into()));
        gap = true;
    }
}

fn handle(cluster: &Cluster, deliver: &dyn Deliver, v: &Value, heartbeat: Duration) {
    match v["kind"].as_str() {
        Some("event") => {
            if v["origin"].as_str() == Some(cluster.node_id.as_str()) {
                return;
            }
            cluster.received[0].fetch_add(1, Ordering::Relaxed);
            cluster.hooks.count("received", KINDS[0]);
            if let Some((target, event, v1, v4, b)) = parse_event(v) {
                deliver.deliver(&target, &event, &v1, &v4, &b);
            }
        }
        Some("session_revoked") => {
            if v["origin"].as_str() == Some(cluster.node_id.as_str()) {
                return;
            }
            cluster.received[2].fetch_add(1, Ordering::Relaxed);
            cluster.hooks.count("received", KINDS[2]);
            if let Some(rev) = parse_revocation(v) {
                deliver.revoke(&rev);
            }
        }
        Some("config_changed") => {
            if v["origin"].as_str() == Some(cluster.node_id.as_str()) {
                return;
            }
            cluster.received[CONFIG_CHANGED].fetch_add(1, Ordering::Relaxed);
            cluster.hooks.count("received", KINDS[CONFIG_CHANGED]);
            deliver.config_changed();
        }
        Some("heartbeat") => {
            let Some(node) = v["node_id"].as_str() else {
                return;
            };
            if node == cluster.node_id {
                return;
            }
            cluster.received[1].fetch_add(1, Ordering::Relaxed);
            cluster.hooks.count("received", KINDS[1]);
            let now = Instant::now();
            let mut peers = cluster.peers.lock();
            peers.insert(node.to_string(), now);
            peers.retain(|_, seen| now.duration_since(*seen) < heartbeat * 3);
        }
        _ => {}
    }
}

async fn heartbeats(
    cluster: Arc<Cluster>,
    deliver: Arc<dyn Deliver>,
    every: Duration,
    version: String,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let connections = deliver.connections();
        let ts_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let msg = json!({
            "kind": "heartbeat",
            "node_id": cluster.node_id,
            "ts_ms": ts_ms,
            "connections": connections,
            "version": version,
        });
        cluster.enqueue(HEARTBEAT_CHANNEL, msg.to_string(), 1);
        let peers = {
            let now = Instant::now();
            let mut p = cluster.peers.lock();
            p.retain(|_, seen| now.duration_since(*seen) < every * 3);
            p.len()
        };
        deliver.nodes(peers + 1);
        tracing::info!(node_id = %cluster.node_id, peers, connections, "cluster heartbeat");
    }
}

impl Deliver for crate::state::AppState {
    fn deliver(&self, target: &Target, event: &str, v1: &Value, v4: &Value, b: &Broadcast) {
        match target {
            Target::Channel => self.hub.to_channel_local(event, v1, v4, b),
            Target::Users(u) => self.hub.to_users_local(u, event, v1, v4, b),
        };
    }
    fn connections(&self) -> usize {
        self.hub.connections()
    }
    fn revoke(&self, rev: &Revocation) {
        apply_revocation(self, rev);
    }
    fn resync(&self) {
        let st = self.clone();
        tokio::spawn(async move {
            // A restarted Redis lost every presence entry: put this node's back first, so
            // the closes below are seen as closes of known connections.
            crate::realtime::presence::refresh_now(&st).await;
            crate::realtime::ws::close_all_spread_with(
                st,
                RESYNC_WINDOW,
                crate::realtime::CloseReason::Resync,
            )
            .await;
        });
    }
    fn count(&self, direction: &str, kind: &str) {
        self.metrics
            .cluster_messages
            .with_label_values(&[direction, kind])
            .inc();
    }
    fn nodes(&self, n: usize) {
        self.metrics.cluster_nodes.set(n as i64);
    }
    fn config_changed(&self) {
        let st = self.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::settings::refresh(&st).await {
                tracing::warn!(error = %e, "server_config refresh after config_changed failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_messages_round_trip_their_target_and_broadcast() {
        let b = Broadcast {
            omit_users: vec!["u9".into()],
            user_id: "u1".into(),
            channel_id: "c1".into(),
            team_id: "t1".into(),
        };
        let msg = json!({
            "v": 1, "kind": "event", "origin": "n1",
            "to": {"users": ["u1", "u2"]},
            "event": "posted", "v1": {"a": 1}, "v4": {"b": 2},
            "broadcast": {"omit_users": b.omit_users, "user_id": b.user_id, "channel_id": b.channel_id, "team_id": b.team_id},
        });
        let (t, e, v1, v4, got) = parse_event(&msg).unwrap();
        assert_eq!(t, Target::Users(vec!["u1".into(), "u2".into()]));
        assert_eq!(
            (e.as_str(), v1, v4),
            ("posted", json!({"a": 1}), json!({"b": 2}))
        );
        assert_eq!(
            (got.omit_users, got.user_id, got.channel_id, got.team_id),
            (
                vec!["u9".to_string()],
                "u1".into(),
                "c1".into(),
                "t1".into()
            )
        );
        let ch =
            json!({"kind": "event", "to": {"channel": "c1"}, "event": "typing", "broadcast": {}});
        assert_eq!(parse_event(&ch).unwrap().0, Target::Channel);
        assert!(parse_event(&json!({"kind": "event"})).is_none());
    }
}
