//! Post → WebSocket delivery: every post the generator sends carries a unique token
//! (`LGT<n>.`) in its message; recipients find it in `posted` frames. Send and receive
//! instants come from one monotonic clock in one process, so latency needs no clock sync.
//!
//! Reconciliation: a post answered 201 must reach every simulated member of its channel
//! (other than the poster) whose WebSocket was authenticated (hello received) before the
//! send instant and stayed open for [`GRACE`] after it, or until the end of the drain that
//! follows the run (sockets are closed only after outstanding deliveries had time to land). Connections that drop are the
//! server's documented resync path (clients re-read over REST), so posts inside a gap are not
//! expected; posts outside every gap are.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::metrics::Metrics;

/// How long after the send instant a recipient's socket must have stayed open for the
/// delivery to be required.
pub const GRACE: Duration = Duration::from_secs(10);

/// The token embedded in message `n`.
pub fn token(n: u64) -> String {
    format!("LGT{n}.")
}

/// Finds the token in a frame's text.
pub fn find_token(text: &str) -> Option<u64> {
    let at = text.find("LGT")? + 3;
    let digits: &str = &text[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    if end == 0 || !digits[end..].starts_with('.') {
        return None;
    }
    digits[..end].parse().ok()
}

/// The envelope `seq` of a server event frame (it always ends the frame: `…,"seq":N}`).
pub fn frame_seq(text: &str) -> Option<u64> {
    let body = text.strip_suffix('}')?;
    let at = body.rfind("\"seq\":")? + 6;
    body[at..].parse().ok()
}

struct PostRec {
    sent: Instant,
    channel: u32,
    sender: u32,
    sender_node: u16,
    /// HTTP status of the create call; 0 while in flight or when it failed.
    status: u16,
    got: Vec<u32>,
    dups: u32,
}

/// One user's WebSocket sessions: (hello received, closed).
type Sessions = Vec<(Instant, Option<Instant>)>;

/// Posts sent, what arrived where, and when each user's sockets were up.
pub struct Registry {
    posts: Mutex<Vec<PostRec>>,
    sessions: Vec<Mutex<Sessions>>,
    nodes: Vec<u16>,
    foreign: Mutex<u64>,
    unknown_tokens: Mutex<u64>,
    drained: Mutex<Option<Instant>>,
}

impl Registry {
    /// `nodes[u]` = which server node user `u` talks to.
    pub fn new(nodes: Vec<u16>) -> Registry {
        Registry {
            posts: Mutex::new(Vec::new()),
            sessions: nodes.iter().map(|_| Mutex::new(Vec::new())).collect(),
            nodes,
            foreign: Mutex::new(0),
            unknown_tokens: Mutex::new(0),
            drained: Mutex::new(None),
        }
    }

    /// Registers a post about to be sent; returns its token number. Registered before the
    /// request so that a delivery racing the 201 still finds it.
    pub fn sending(&self, channel: u32, sender: u32) -> u64 {
        let mut p = self.posts.lock();
        p.push(PostRec {
            sent: Instant::now(),
            channel,
            sender,
            sender_node: self.nodes.get(sender as usize).copied().unwrap_or(0),
            status: 0,
            got: Vec::new(),
            dups: 0,
        });
        (p.len() - 1) as u64
    }

    pub fn answered(&self, token: u64, status: u16) {
        if let Some(p) = self.posts.lock().get_mut(token as usize) {
            p.status = status;
        }
    }

    pub fn session_up(&self, user: u32) {
        if let Some(s) = self.sessions.get(user as usize) {
            s.lock().push((Instant::now(), None));
        }
    }

    pub fn session_down(&self, user: u32) {
        if let Some(s) = self.sessions.get(user as usize)
            && let Some(last) = s.lock().last_mut()
        {
            last.1.get_or_insert_with(Instant::now);
        }
    }

    /// A `posted` frame carrying `token` reached `user` at `at`. `is_member` says whether
    /// `user` belongs to the post's channel.
    pub fn delivered(
        &self,
        token: u64,
        user: u32,
        at: Instant,
        metrics: &Metrics,
        is_member: impl Fn(u32) -> bool,
    ) {
        let mut posts = self.posts.lock();
        let Some(p) = posts.get_mut(token as usize) else {
            *self.unknown_tokens.lock() += 1;
            return;
        };
        if p.sender == user {
            return;
        }
        if !is_member(p.channel) {
            *self.foreign.lock() += 1;
            return;
        }
        if p.got.contains(&user) {
            p.dups += 1;
            return;
        }
        p.got.push(user);
        let node = self.nodes.get(user as usize).copied().unwrap_or(0);
        metrics.delivered(at.saturating_duration_since(p.sent), node != p.sender_node);
    }

    fn covered(&self, user: u32, from: Instant, until: Instant) -> bool {
        let until = match *self.drained.lock() {
            Some(d) => until.min(d),
            None => until,
        };
        self.sessions.get(user as usize).is_some_and(|s| {
            s.lock()
                .iter()
                .any(|(up, down)| *up <= from && down.is_none_or(|d| d >= until))
        })
    }

    /// Compares what arrived with what had to; `members(channel)` lists the simulated users
    /// of a channel.
    pub fn reconcile(&self, members: impl Fn(u32) -> Vec<u32>) -> Reconciliation {
        let posts = self.posts.lock();
        let mut r = Reconciliation::default();
        for (n, p) in posts.iter().enumerate() {
            r.posts_sent += 1;
            match p.status {
                201 => r.posts_created += 1,
                0 => r.posts_failed += 1,
                _ => r.posts_rejected += 1,
            }
            r.duplicates += u64::from(p.dups);
            if p.status != 201 {
                r.delivered_unconfirmed += p.got.len() as u64;
                continue;
            }
            for m in members(p.channel) {
                if m == p.sender {
                    continue;
                }
                let got = p.got.contains(&m);
                if self.covered(m, p.sent, p.sent + GRACE) {
                    r.expected += 1;
                    if got {
                        r.delivered_expected += 1;
                    } else {
                        r.missing += 1;
                        if r.missing_examples.len() < 5 {
                            r.missing_examples.push(json!({"token": n, "user": m}));
                        }
                    }
                } else if got {
                    r.delivered_unrequired += 1;
                }
            }
        }
        r.foreign = *self.foreign.lock();
        r.unknown_tokens = *self.unknown_tokens.lock();
        r
    }

    /// Marks the end of the final drain: sockets still open then count as open to the end.
    pub fn drained(&self) {
        self.drained.lock().get_or_insert_with(Instant::now);
    }

    /// Number of deliveries so far (to detect when the drain has settled).
    pub fn delivered_count(&self) -> usize {
        self.posts.lock().iter().map(|p| p.got.len()).sum()
    }
}

/// Reconciliation counts; they add up: `expected = delivered_expected + missing` and
/// `posts_sent = posts_created + posts_rejected + posts_failed`.
#[derive(Debug, Default)]
pub struct Reconciliation {
    pub posts_sent: u64,
    pub posts_created: u64,
    pub posts_rejected: u64,
    pub posts_failed: u64,
    pub expected: u64,
    pub delivered_expected: u64,
    pub missing: u64,
    pub delivered_unrequired: u64,
    pub delivered_unconfirmed: u64,
    pub duplicates: u64,
    pub foreign: u64,
    pub unknown_tokens: u64,
    pub missing_examples: Vec<Value>,
}

impl Reconciliation {
    /// Every required delivery arrived exactly once and nothing arrived where it must not.
    pub fn ok(&self) -> bool {
        self.missing == 0 && self.duplicates == 0 && self.foreign == 0 && self.unknown_tokens == 0
    }

    pub fn to_json(&self) -> Value {
        json!({
            "ok": self.ok(),
            "posts_sent": self.posts_sent,
            "posts_created": self.posts_created,
            "posts_rejected": self.posts_rejected,
            "posts_failed": self.posts_failed,
            "expected_deliveries": self.expected,
            "delivered_expected": self.delivered_expected,
            "missing": self.missing,
            "delivered_unrequired": self.delivered_unrequired,
            "delivered_unconfirmed": self.delivered_unconfirmed,
            "duplicates": self.duplicates,
            "foreign": self.foreign,
            "unknown_tokens": self.unknown_tokens,
            "missing_examples": self.missing_examples,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_lookalikes() {
        let msg = format!("hello {} world", token(4711));
        assert_eq!(find_token(&msg), Some(4711));
        // Inside a v4 frame the message is a JSON string within a JSON string.
        let frame = format!(
            r#"{{"event":"posted","data":{{"post":"{{\"message\":\"{msg}\"}}"}},"seq":3}}"#
        );
        assert_eq!(find_token(&frame), Some(4711));
        assert_eq!(find_token("LGT"), None);
        assert_eq!(find_token("LGT12"), None);
        assert_eq!(find_token("LGTx."), None);
        assert_eq!(frame_seq(&frame), Some(3));
        assert_eq!(frame_seq(r#"{"status":"OK","seq_reply":2}"#), None);
        assert_eq!(frame_seq("not json"), None);
    }

    #[test]
    fn reconciliation_requires_open_sockets_only() {
        let m = Metrics::new();
        // Users 0 (sender), 1 (connected), 2 (never connected); all in channel 7.
        let reg = Registry::new(vec![0, 1, 0]);
        reg.session_up(0);
        reg.session_up(1);
        let t = reg.sending(7, 0);
        reg.answered(t, 201);
        let members = |_c: u32| vec![0, 1, 2];
        let r = reg.reconcile(members);
        assert_eq!((r.expected, r.missing), (1, 1));
        assert!(!r.ok());
        reg.delivered(t, 1, Instant::now(), &m, |_| true);
        reg.delivered(t, 0, Instant::now(), &m, |_| true);
        let r = reg.reconcile(members);
        assert_eq!((r.expected, r.delivered_expected, r.missing), (1, 1, 0));
        assert!(r.ok());
        assert_eq!(m.total().delivery_cross.len(), 1);
        // A socket closed right after the drain still owed the delivery.
        let t2 = reg.sending(7, 0);
        reg.answered(t2, 201);
        reg.drained();
        reg.session_down(1);
        assert_eq!(reg.reconcile(members).missing, 1);
        reg.delivered(t2, 1, Instant::now(), &m, |_| true);
        reg.delivered(t, 1, Instant::now(), &m, |_| true);
        reg.delivered(t, 2, Instant::now(), &m, |_| false);
        reg.delivered(99, 2, Instant::now(), &m, |_| true);
        let r = reg.reconcile(members);
        assert_eq!((r.duplicates, r.foreign, r.unknown_tokens), (1, 1, 1));
        assert!(!r.ok());
    }
}
