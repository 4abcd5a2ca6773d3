//! Subscription queues (MNG-R18, R23, R24): one bounded queue per (feed, consuming group).
//!
//! An `rtrb` SPSC ring when the feed has one producer and neither its policy nor fallback
//! is `drop-oldest`; otherwise a `crossbeam_queue::ArrayQueue` (multi-producer, and
//! `force_push` evicts the oldest). Counters are single-writer, cache-padded atomics:
//! the publisher side owns `enqueued`, `evicted` and the drop counters, the consumer owns
//! `consumed`, so neither side writes the other's cache line. Policy, fallback, wait and
//! threshold sit in atomics read only on the full-queue path, so a reload costs the fast
//! path nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;

use crate::event::Envelope;

/// Backpressure policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Policy {
    /// Wait up to `maxWaitMs`, then apply the fallback.
    Block = 0,
    /// Drop the event being published.
    DropNewest = 1,
    /// Evict the oldest queued event (forces an MPSC ring).
    DropOldest = 2,
    /// Disconnect the subscription until `queues.reconnect`.
    Disconnect = 3,
    /// Reject the event back to the publisher.
    FailFast = 4,
}

/// Index of the `detached` drop counter (after the five policies).
pub const DROP_DETACHED: usize = 5;
/// Drop-counter label values, by index.
pub const DROP_LABELS: [&str; 6] = [
    "block",
    "drop-newest",
    "drop-oldest",
    "disconnect",
    "fail-fast",
    "detached",
];

impl Policy {
    /// From the stored byte.
    pub fn from_u8(v: u8) -> Policy {
        match v {
            1 => Policy::DropNewest,
            2 => Policy::DropOldest,
            3 => Policy::Disconnect,
            4 => Policy::FailFast,
            _ => Policy::Block,
        }
    }
    /// Config name.
    pub fn name(self) -> &'static str {
        DROP_LABELS[self as usize]
    }
    /// Parses a config name.
    pub fn parse(s: &str) -> Option<Policy> {
        Some(match s {
            "block" => Policy::Block,
            "drop-newest" => Policy::DropNewest,
            "drop-oldest" => Policy::DropOldest,
            "disconnect" => Policy::Disconnect,
            "fail-fast" => Policy::FailFast,
            _ => return None,
        })
    }
}

/// A backpressure setting: policy, and for `block` the wait and the fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backpressure {
    /// The policy.
    pub policy: Policy,
    /// `block` only: longest wait per target, ms.
    pub max_wait_ms: u32,
    /// `block` only: what happens after the wait.
    pub fallback: Policy,
}

impl Default for Backpressure {
    /// `block` for 10 ms, then `drop-newest` (decision 6).
    fn default() -> Self {
        Backpressure {
            policy: Policy::Block,
            max_wait_ms: 10,
            fallback: Policy::DropNewest,
        }
    }
}

impl Backpressure {
    /// Whether the queue must support eviction.
    pub fn needs_eviction(&self) -> bool {
        self.policy == Policy::DropOldest
            || (self.policy == Policy::Block && self.fallback == Policy::DropOldest)
    }
}

/// Subscription state: connected.
pub const CONNECTED: u8 = 0;
/// Subscription state: disconnected by the `disconnect` policy.
pub const DISCONNECTED: u8 = 1;
/// Subscription state: detached (its last processor stopped).
pub const DETACHED: u8 = 2;
/// State names.
pub const STATE_LABELS: [&str; 3] = ["connected", "disconnected", "detached"];

/// Shared counters and settings of one subscription.
#[derive(Debug)]
pub struct SubShared {
    /// Feed name.
    pub feed: &'static str,
    /// Consuming group.
    pub group: &'static str,
    /// Configured capacity.
    pub capacity: u32,
    /// `spsc` or `mpsc`.
    pub kind: &'static str,
    /// Placed in the queue (publisher side).
    pub enqueued: CachePadded<AtomicU64>,
    /// Dispatched from the queue (consumer side).
    pub consumed: CachePadded<AtomicU64>,
    /// Evicted by drop-oldest (publisher side).
    pub evicted: CachePadded<AtomicU64>,
    /// Drops by policy index (see [`DROP_LABELS`]).
    pub dropped: [CachePadded<AtomicU64>; 6],
    /// `block` waits that timed out.
    pub block_timeouts: AtomicU64,
    /// Nanoseconds publishers spent waiting.
    pub blocked_ns: AtomicU64,
    /// Left queued at the drain deadline.
    pub shutdown_undrained: AtomicU64,
    /// [`CONNECTED`], [`DISCONNECTED`] or [`DETACHED`].
    pub state: AtomicU8,
    /// Policy byte.
    pub policy: AtomicU8,
    /// Fallback byte.
    pub fallback: AtomicU8,
    /// `maxWaitMs`.
    pub max_wait_ms: AtomicU32,
    /// Readiness backlog threshold.
    pub threshold: AtomicU32,
    /// The group has seen the disconnect and told its processors.
    pub disconnect_seen: AtomicU8,
    /// Set at wiring for feeds that acknowledge upstream (redis-stream): the group then
    /// publishes [`SubShared::watermark`].
    pub track_watermark: bool,
    /// Every seq at or below this is processed here: dispatched, or quarantined (MNG-R32
    /// step 5). Written by the group only when `track_watermark`.
    pub watermark: AtomicU64,
}

impl SubShared {
    /// New counters for (feed, group).
    pub fn new(
        feed: &'static str,
        group: &'static str,
        capacity: u32,
        kind: &'static str,
        bp: Backpressure,
        threshold: u32,
    ) -> Self {
        SubShared {
            feed,
            group,
            capacity,
            kind,
            enqueued: Default::default(),
            consumed: Default::default(),
            evicted: Default::default(),
            dropped: Default::default(),
            block_timeouts: AtomicU64::new(0),
            blocked_ns: AtomicU64::new(0),
            shutdown_undrained: AtomicU64::new(0),
            state: AtomicU8::new(CONNECTED),
            policy: AtomicU8::new(bp.policy as u8),
            fallback: AtomicU8::new(bp.fallback as u8),
            max_wait_ms: AtomicU32::new(bp.max_wait_ms),
            threshold: AtomicU32::new(threshold),
            disconnect_seen: AtomicU8::new(0),
            track_watermark: false,
            watermark: AtomicU64::new(0),
        }
    }

    /// Events still queued: `enqueued − consumed − evicted − detached − undrained`, so that
    /// MNG-R24's `enqueued = consumed + depth + dropped{drop-oldest,detached} +
    /// shutdown_undrained` holds by construction (evicted = dropped{drop-oldest}).
    pub fn depth(&self) -> u64 {
        let e = self.enqueued.load(Ordering::Acquire);
        let c = self.consumed.load(Ordering::Acquire);
        let v = self.evicted.load(Ordering::Acquire);
        let d = self.dropped[DROP_DETACHED].load(Ordering::Acquire);
        let u = self.shutdown_undrained.load(Ordering::Acquire);
        e.saturating_sub(c + v + d + u)
    }

    /// Current backpressure setting.
    pub fn backpressure(&self) -> Backpressure {
        Backpressure {
            policy: Policy::from_u8(self.policy.load(Ordering::Relaxed)),
            fallback: Policy::from_u8(self.fallback.load(Ordering::Relaxed)),
            max_wait_ms: self.max_wait_ms.load(Ordering::Relaxed),
        }
    }

    /// Applies a reloaded setting.
    pub fn set_backpressure(&self, bp: Backpressure) {
        self.policy.store(bp.policy as u8, Ordering::Relaxed);
        self.fallback.store(bp.fallback as u8, Ordering::Relaxed);
        self.max_wait_ms.store(bp.max_wait_ms, Ordering::Relaxed);
    }

    /// Counts one drop under `idx`.
    pub fn drop_one(&self, idx: usize) {
        self.dropped[idx].fetch_add(1, Ordering::Relaxed);
    }

    /// Sum of a drop counter.
    pub fn drops(&self, idx: usize) -> u64 {
        self.dropped[idx].load(Ordering::Relaxed)
    }
}

/// The producing end of a subscription queue.
pub enum Tx<E> {
    /// Single producer.
    Spsc(rtrb::Producer<Envelope<E>>),
    /// Multi producer.
    Mpsc(Arc<ArrayQueue<Envelope<E>>>),
}

/// The consuming end.
pub enum Rx<E> {
    /// Single producer.
    Spsc(rtrb::Consumer<Envelope<E>>),
    /// Multi producer.
    Mpsc(Arc<ArrayQueue<Envelope<E>>>),
}

impl<E> Tx<E> {
    /// Pushes; the value comes back when the queue is full.
    #[inline]
    pub fn push(&mut self, v: Envelope<E>) -> Result<(), Envelope<E>> {
        match self {
            Tx::Spsc(p) => p.push(v).map_err(|rtrb::PushError::Full(v)| v),
            Tx::Mpsc(q) => q.push(v),
        }
    }

    /// Pushes, evicting the oldest when full (MPSC only); returns the evicted one.
    pub fn force_push(&mut self, v: Envelope<E>) -> Result<Option<Envelope<E>>, Envelope<E>> {
        match self {
            Tx::Spsc(_) => Err(v),
            Tx::Mpsc(q) => Ok(q.force_push(v)),
        }
    }

    /// A second producer handle (MPSC only).
    pub fn try_clone(&self) -> Option<Tx<E>> {
        match self {
            Tx::Spsc(_) => None,
            Tx::Mpsc(q) => Some(Tx::Mpsc(q.clone())),
        }
    }
}

impl<E> Rx<E> {
    /// Pops one.
    #[inline]
    pub fn pop(&mut self) -> Option<Envelope<E>> {
        match self {
            Rx::Spsc(c) => c.pop().ok(),
            Rx::Mpsc(q) => q.pop(),
        }
    }
}

/// Builds a queue pair of `capacity`.
pub fn channel<E>(capacity: usize, mpsc: bool) -> (Tx<E>, Rx<E>) {
    if mpsc {
        let q = Arc::new(ArrayQueue::new(capacity.max(1)));
        (Tx::Mpsc(q.clone()), Rx::Mpsc(q))
    } else {
        let (p, c) = rtrb::RingBuffer::new(capacity.max(1));
        (Tx::Spsc(p), Rx::Spsc(c))
    }
}
