//! The per-node realtime hub (CHAT-R18): connection registry, channel and user indexes,
//! fan-out into bounded per-connection queues.
//!
//! Fan-out never awaits. An event is serialised once per API dialect, as the frame text
//! up to its `"seq":` key; each connection's writer appends its own sequence number. The
//! shared frame is `try_send`ed into every target connection's queue (bounded by
//! `ws.send_queue_messages`); a full queue closes that connection with 1013 (slow client)
//! and nobody else waits for it. Events one node publishes for one channel reach each
//! connection in publish order because one publisher call enqueues them in that order.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::RwLock;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Which API a connection speaks (the v4 dialect JSON-encodes some values as strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// `/api/v1/ws`.
    V1,
    /// `/api/v4/websocket`.
    V4,
}

impl Api {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::V1 => "v1",
            Api::V4 => "v4",
        }
    }
}

/// One event frame, serialised up to (not including) its sequence number.
#[derive(Debug)]
pub struct Frame {
    /// `{"event":…,"data":…,"broadcast":…,"seq":`
    pub prefix: String,
    /// When it was published (for the delivery histogram).
    pub published: Instant,
}

/// What goes into a connection's queue.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// An event; the writer numbers it.
    Event(Arc<Frame>),
    /// A reply to a client action (not numbered).
    Reply(Arc<String>),
}

/// Why a connection is being closed by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Queue full or socket blocked: 1013.
    SlowClient,
    /// Session revoked or logged out: 1008.
    Revoked,
    /// Token expired: 1008.
    Expired,
    /// Server shutting down: 1001.
    Shutdown,
    /// Too many invalid frames: 1007.
    Invalid,
    /// Inbound frame over the limit: 1009.
    TooBig,
    /// Missed pongs.
    Timeout,
    /// The cluster bus had a gap (Redis was away): reconnect and re-read state (1012).
    Resync,
}

impl CloseReason {
    /// The close code and reason text.
    pub fn code(self) -> (u16, &'static str) {
        match self {
            CloseReason::SlowClient => (1013, "slow client"),
            CloseReason::Revoked => (1008, "session revoked"),
            CloseReason::Expired => (1008, "Authentication token expired"),
            CloseReason::Shutdown => (1001, "server shutting down"),
            CloseReason::Invalid => (1007, "too many invalid frames"),
            CloseReason::TooBig => (1009, "frame too large"),
            CloseReason::Timeout => (1000, "ping timeout"),
            CloseReason::Resync => (1012, "cluster resync"),
        }
    }
    /// `rustchat_websocket_disconnects_total{reason}` value.
    pub fn metric(self) -> &'static str {
        match self {
            CloseReason::SlowClient => "slow_client",
            CloseReason::Revoked => "revoked",
            CloseReason::Expired => "expired",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Resync => "resync",
            CloseReason::Invalid | CloseReason::TooBig | CloseReason::Timeout => "error",
        }
    }
}

/// The hub's handle on one connection.
pub struct Conn {
    pub id: String,
    pub user_id: String,
    pub session_id: Option<String>,
    pub api: Api,
    pub tx: mpsc::Sender<Outbound>,
    pub close: CancellationToken,
    pub close_reason: parking_lot::Mutex<Option<CloseReason>>,
}

impl Conn {
    /// Asks the connection's tasks to close with `reason` (first reason wins).
    pub fn close_with(&self, reason: CloseReason) {
        let mut r = self.close_reason.lock();
        if r.is_none() {
            *r = Some(reason);
        }
        self.close.cancel();
    }
}

#[derive(Default)]
struct Index {
    conns: HashMap<String, Arc<Conn>>,
    by_user: HashMap<String, HashSet<String>>,
    by_channel: HashMap<String, HashSet<String>>,
    channels_of_conn: HashMap<String, HashSet<String>>,
}

/// Event addressing, as sent in the frame's `broadcast` object.
#[derive(Debug, Clone, Default)]
pub struct Broadcast {
    pub omit_users: Vec<String>,
    pub user_id: String,
    pub channel_id: String,
    pub team_id: String,
}

/// Admission counts, taken before the upgrade so concurrent upgrades cannot overshoot a
/// cap while earlier ones are still finishing their handshake.
#[derive(Default)]
struct Admitted {
    total: usize,
    by_user: HashMap<String, usize>,
}

/// A held admission; released when dropped (the connection ended or never started).
pub struct Slot {
    table: Arc<parking_lot::Mutex<Admitted>>,
    user_id: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.table.lock();
        t.total = t.total.saturating_sub(1);
        if let Some(n) = t.by_user.get_mut(&self.user_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                t.by_user.remove(&self.user_id);
            }
        }
    }
}

/// The registry; cheap to share behind an `Arc`.
#[derive(Default)]
pub struct Hub {
    admitted: Arc<parking_lot::Mutex<Admitted>>,
    index: RwLock<Index>,
    next: AtomicU64,
    /// Frames dropped because a queue was full (the connection was closed).
    pub slow_closes: AtomicU64,
    /// The Redis bus, in cluster mode: events are published after local delivery.
    pub cluster: std::sync::OnceLock<Arc<super::cluster::Cluster>>,
}

/// Builds the per-dialect frame prefix.
fn prefix(event: &str, data: &Value, b: &Broadcast) -> String {
    let omit = if b.omit_users.is_empty() {
        Value::Null
    } else {
        Value::Object(
            b.omit_users
                .iter()
                .map(|u| (u.clone(), Value::Bool(true)))
                .collect(),
        )
    };
    let head = json!({
        "event": event,
        "data": data,
        "broadcast": {"omit_users": omit, "user_id": b.user_id, "channel_id": b.channel_id, "team_id": b.team_id},
    })
    .to_string();
    // `{...}` → `{...,"seq":` so the writer only appends the number and `}`.
    let mut s = head;
    s.pop();
    s.push_str(",\"seq\":");
    s
}

impl Hub {
    /// Admits one more connection of `user_id` under the node cap and the per-user cap, or
    /// names the cap that refused it (`node`/`user`) and its value.
    pub fn admit(
        &self,
        user_id: &str,
        node_cap: usize,
        user_cap: usize,
    ) -> Result<Slot, (&'static str, usize)> {
        let mut t = self.admitted.lock();
        if t.total >= node_cap {
            return Err(("node", node_cap));
        }
        let n = t.by_user.get(user_id).copied().unwrap_or(0);
        if n >= user_cap {
            return Err(("user", user_cap));
        }
        t.total += 1;
        t.by_user.insert(user_id.to_string(), n + 1);
        Ok(Slot {
            table: self.admitted.clone(),
            user_id: user_id.to_string(),
        })
    }

    /// A new connection id (unique per node).
    pub fn next_id(&self, node: &str) -> String {
        format!("{node}-{}", self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Registers a connection subscribed to `channels`.
    pub fn register(&self, conn: Arc<Conn>, channels: Vec<String>) {
        let mut ix = self.index.write();
        ix.by_user
            .entry(conn.user_id.clone())
            .or_default()
            .insert(conn.id.clone());
        for ch in &channels {
            ix.by_channel
                .entry(ch.clone())
                .or_default()
                .insert(conn.id.clone());
        }
        ix.channels_of_conn
            .insert(conn.id.clone(), channels.into_iter().collect());
        ix.conns.insert(conn.id.clone(), conn);
    }

    /// Removes a connection; returns how many connections its user still has here.
    pub fn unregister(&self, conn_id: &str) -> usize {
        let mut ix = self.index.write();
        let Some(conn) = ix.conns.remove(conn_id) else {
            return 0;
        };
        let left = match ix.by_user.get_mut(&conn.user_id) {
            Some(set) => {
                set.remove(conn_id);
                set.len()
            }
            None => 0,
        };
        if left == 0 {
            ix.by_user.remove(&conn.user_id);
        }
        if let Some(chs) = ix.channels_of_conn.remove(conn_id) {
            for ch in chs {
                if let Some(set) = ix.by_channel.get_mut(&ch) {
                    set.remove(conn_id);
                    if set.is_empty() {
                        ix.by_channel.remove(&ch);
                    }
                }
            }
        }
        left
    }

    /// Open connections on this node.
    pub fn connections(&self) -> usize {
        self.index.read().conns.len()
    }

    /// Whether connection `id` is registered here.
    pub fn has_connection(&self, id: &str) -> bool {
        self.index.read().conns.contains_key(id)
    }

    /// Connections of one user on this node.
    pub fn user_connections(&self, user_id: &str) -> usize {
        self.index
            .read()
            .by_user
            .get(user_id)
            .map_or(0, HashSet::len)
    }

    /// Users with at least one connection here.
    pub fn online_users(&self) -> HashSet<String> {
        self.index.read().by_user.keys().cloned().collect()
    }

    /// Number of users with at least one connection here.
    pub fn active_users(&self) -> usize {
        self.index.read().by_user.len()
    }

    /// Subscribes every connection of `user_id` to `channel_id` (they joined it).
    pub fn join_channel(&self, user_id: &str, channel_id: &str) {
        let mut ix = self.index.write();
        let conns: Vec<String> = ix
            .by_user
            .get(user_id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for c in conns {
            ix.by_channel
                .entry(channel_id.to_string())
                .or_default()
                .insert(c.clone());
            ix.channels_of_conn
                .entry(c)
                .or_default()
                .insert(channel_id.to_string());
        }
    }

    /// Unsubscribes every connection of `user_id` from `channel_id`.
    pub fn leave_channel(&self, user_id: &str, channel_id: &str) {
        let mut ix = self.index.write();
        let conns: Vec<String> = ix
            .by_user
            .get(user_id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for c in conns {
            if let Some(set) = ix.by_channel.get_mut(channel_id) {
                set.remove(&c);
            }
            if let Some(set) = ix.channels_of_conn.get_mut(&c) {
                set.remove(channel_id);
            }
        }
    }

    /// Closes every connection of a session (logout, revocation).
    pub fn close_session(&self, session_id: &str, reason: CloseReason) -> usize {
        let ix = self.index.read();
        let mut n = 0;
        for c in ix
            .conns
            .values()
            .filter(|c| c.session_id.as_deref() == Some(session_id))
        {
            c.close_with(reason);
            n += 1;
        }
        n
    }

    /// Closes every connection of a user (deactivation), or all with `None` (revoke_all,
    /// shutdown).
    pub fn close_user(&self, user_id: Option<&str>, reason: CloseReason) {
        let ix = self.index.read();
        for c in ix
            .conns
            .values()
            .filter(|c| user_id.is_none_or(|u| c.user_id == u))
        {
            c.close_with(reason);
        }
    }

    /// Every connection, for shutdown.
    pub fn all(&self) -> Vec<Arc<Conn>> {
        self.index.read().conns.values().cloned().collect()
    }

    fn deliver(
        &self,
        targets: Vec<Arc<Conn>>,
        event: &str,
        v1: &Value,
        v4: &Value,
        b: &Broadcast,
    ) -> usize {
        if targets.is_empty() {
            return 0;
        }
        let now = Instant::now();
        let mut frames: [Option<Arc<Frame>>; 2] = [None, None];
        let mut sent = 0;
        for c in targets {
            if b.omit_users.iter().any(|u| *u == c.user_id) {
                continue;
            }
            let slot = match c.api {
                Api::V1 => 0,
                Api::V4 => 1,
            };
            let frame = frames[slot]
                .get_or_insert_with(|| {
                    let data = if c.api == Api::V1 { v1 } else { v4 };
                    Arc::new(Frame {
                        prefix: prefix(event, data, b),
                        published: now,
                    })
                })
                .clone();
            match c.tx.try_send(Outbound::Event(frame)) {
                Ok(()) => sent += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.slow_closes.fetch_add(1, Ordering::Relaxed);
                    c.close_with(CloseReason::SlowClient);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        sent
    }

    /// Sends an event to every connection subscribed to `b.channel_id`, on this node and,
    /// in cluster mode, on the others (CHAT-R19).
    pub fn to_channel(&self, event: &str, v1: &Value, v4: &Value, b: &Broadcast) -> usize {
        let n = self.to_channel_local(event, v1, v4, b);
        if let Some(c) = self.cluster.get() {
            c.publish_event(&super::cluster::Target::Channel, event, v1, v4, b);
        }
        n
    }

    /// Sends an event to every connection of the given users, on this node and, in cluster
    /// mode, on the others.
    pub fn to_users(
        &self,
        users: &[String],
        event: &str,
        v1: &Value,
        v4: &Value,
        b: &Broadcast,
    ) -> usize {
        let n = self.to_users_local(users, event, v1, v4, b);
        if let Some(c) = self.cluster.get() {
            c.publish_event(
                &super::cluster::Target::Users(users.to_vec()),
                event,
                v1,
                v4,
                b,
            );
        }
        n
    }

    /// [`Hub::to_channel`] on this node only (also what another node's event becomes here).
    pub fn to_channel_local(&self, event: &str, v1: &Value, v4: &Value, b: &Broadcast) -> usize {
        let targets: Vec<Arc<Conn>> = {
            let ix = self.index.read();
            ix.by_channel
                .get(&b.channel_id)
                .map(|set| {
                    set.iter()
                        .filter_map(|id| ix.conns.get(id).cloned())
                        .collect()
                })
                .unwrap_or_default()
        };
        self.deliver(targets, event, v1, v4, b)
    }

    /// [`Hub::to_users`] on this node only.
    pub fn to_users_local(
        &self,
        users: &[String],
        event: &str,
        v1: &Value,
        v4: &Value,
        b: &Broadcast,
    ) -> usize {
        let targets: Vec<Arc<Conn>> = {
            let ix = self.index.read();
            users
                .iter()
                .filter_map(|u| ix.by_user.get(u))
                .flat_map(|set| set.iter().filter_map(|id| ix.conns.get(id).cloned()))
                .collect()
        };
        self.deliver(targets, event, v1, v4, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(
        hub: &Hub,
        user: &str,
        api: Api,
        cap: usize,
        channels: &[&str],
    ) -> (Arc<Conn>, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(cap);
        let c = Arc::new(Conn {
            id: hub.next_id("n"),
            user_id: user.into(),
            session_id: Some(format!("s-{user}")),
            api,
            tx,
            close: CancellationToken::new(),
            close_reason: Default::default(),
        });
        hub.register(c.clone(), channels.iter().map(|s| s.to_string()).collect());
        (c, rx)
    }

    fn text(o: Outbound, seq: u64) -> Value {
        match o {
            Outbound::Event(f) => serde_json::from_str(&format!("{}{seq}}}", f.prefix)).unwrap(),
            Outbound::Reply(_) => panic!("reply"),
        }
    }

    #[test]
    fn channel_events_reach_members_only_in_their_dialect_minus_omitted_users() {
        let hub = Hub::default();
        let (_a, mut ra) = conn(&hub, "a", Api::V1, 8, &["c1"]);
        let (_b, mut rb) = conn(&hub, "b", Api::V4, 8, &["c1"]);
        let (_c, mut rc) = conn(&hub, "c", Api::V1, 8, &["c2"]);
        let b = Broadcast {
            channel_id: "c1".into(),
            ..Default::default()
        };
        let n = hub.to_channel(
            "posted",
            &json!({"post": {"id": "p"}}),
            &json!({"post": "{\"id\":\"p\"}"}),
            &b,
        );
        assert_eq!(n, 2);
        let fa = text(ra.try_recv().unwrap(), 1);
        assert_eq!(
            (fa["event"].as_str(), fa["seq"].as_u64()),
            (Some("posted"), Some(1))
        );
        assert_eq!(fa["data"]["post"]["id"], "p");
        let fb = text(rb.try_recv().unwrap(), 7);
        assert_eq!(fb["data"]["post"], "{\"id\":\"p\"}");
        assert!(rc.try_recv().is_err());
        let omit = Broadcast {
            channel_id: "c1".into(),
            omit_users: vec!["a".into()],
            ..Default::default()
        };
        assert_eq!(hub.to_channel("typing", &json!({}), &json!({}), &omit), 1);
        assert!(ra.try_recv().is_err());
    }

    #[test]
    fn a_full_queue_closes_that_connection_as_slow_and_spares_the_rest() {
        let hub = Hub::default();
        let (slow, _rs) = conn(&hub, "s", Api::V1, 1, &["c"]);
        let (_ok, mut ro) = conn(&hub, "o", Api::V1, 16, &["c"]);
        let b = Broadcast {
            channel_id: "c".into(),
            ..Default::default()
        };
        for _ in 0..3 {
            hub.to_channel("posted", &json!({}), &json!({}), &b);
        }
        assert!(slow.close.is_cancelled());
        assert_eq!(*slow.close_reason.lock(), Some(CloseReason::SlowClient));
        assert_eq!((0..3).filter(|_| ro.try_recv().is_ok()).count(), 3);
    }

    #[test]
    fn membership_changes_move_subscriptions_and_unregister_cleans_indexes() {
        let hub = Hub::default();
        let (c, mut r) = conn(&hub, "u", Api::V1, 8, &[]);
        let b = Broadcast {
            channel_id: "x".into(),
            ..Default::default()
        };
        assert_eq!(hub.to_channel("posted", &json!({}), &json!({}), &b), 0);
        hub.join_channel("u", "x");
        assert_eq!(hub.to_channel("posted", &json!({}), &json!({}), &b), 1);
        assert!(r.try_recv().is_ok());
        hub.leave_channel("u", "x");
        assert_eq!(hub.to_channel("posted", &json!({}), &json!({}), &b), 0);
        assert_eq!(hub.user_connections("u"), 1);
        assert_eq!(hub.unregister(&c.id), 0);
        assert_eq!((hub.connections(), hub.active_users()), (0, 0));
    }
}
