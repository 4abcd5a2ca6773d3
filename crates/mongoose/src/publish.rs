//! Publishing (MNG-R07, R23): a feed's [`Publisher`] offers each event to every
//! subscription of the feed and applies the subscription's backpressure policy when its
//! queue is full. Nothing here allocates, locks or makes a syscall unless a `block` wait
//! has to park.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::event::{Envelope, Event};
use crate::queue::{DETACHED, DISCONNECTED, Policy, SubShared, Tx};

/// Server phase: publishers refuse events (`NotStarted`).
pub const PHASE_STARTING: u8 = 0;
/// Server phase: running.
pub const PHASE_RUNNING: u8 = 1;
/// Server phase: feeds stopped (`Closed`).
pub const PHASE_CLOSED: u8 = 2;

/// Spins of the `block` wait before yielding.
pub const BLOCK_SPINS: u32 = 64;
/// Yields of the `block` wait before parking.
pub const BLOCK_YIELDS: u32 = 16;
/// First and longest park of the `block` wait.
pub const BLOCK_PARK: (Duration, Duration) = (Duration::from_micros(1), Duration::from_micros(100));

/// Shared state of one feed.
#[derive(Debug)]
pub struct FeedShared {
    /// Feed name.
    pub name: &'static str,
    /// Feed index.
    pub id: u32,
    /// `publish` calls that offered an event.
    pub published: CachePadded<AtomicU64>,
    /// Published with no target.
    pub unrouted: AtomicU64,
    /// Whether the feed is connected (memory feeds always are).
    pub connected: AtomicBool,
    /// Sequence counter for multi-producer feeds.
    pub seq: AtomicU64,
    /// Server phase.
    pub phase: Arc<AtomicU8>,
    /// Single or multi producer.
    pub multi: bool,
    /// Decode errors by [`crate::feed::DecodeError`] reason.
    pub decode_errors: [AtomicU64; 4],
    /// Redis entries acknowledged (XACK).
    pub acked: AtomicU64,
    /// Allocations inside `publish` on this feed (feature `alloc-count`).
    pub hot_allocs: AtomicU64,
}

impl FeedShared {
    /// A feed's shared state, connected (memory feeds always are; others set it).
    pub fn new(name: &'static str, id: u32, multi: bool, phase: Arc<AtomicU8>) -> Self {
        FeedShared {
            name,
            id,
            published: Default::default(),
            unrouted: AtomicU64::new(0),
            connected: AtomicBool::new(true),
            seq: AtomicU64::new(0),
            phase,
            multi,
            decode_errors: Default::default(),
            acked: AtomicU64::new(0),
            hot_allocs: AtomicU64::new(0),
        }
    }
}

/// What one publish did, counted per subscription.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Subscriptions offered the event (detached ones are not targets).
    pub targets: u32,
    /// Queued.
    pub enqueued: u32,
    /// Dropped (`drop-newest`, `disconnect`).
    pub dropped: u32,
    /// Older events evicted to make room (`drop-oldest`).
    pub evicted: u32,
    /// Refused (`fail-fast`).
    pub rejected: u32,
}

impl PublishReport {
    /// Every target got the event and nothing was evicted.
    pub fn lossless(&self) -> bool {
        self.enqueued == self.targets && self.evicted == 0
    }
}

/// Why a publish did not happen.
#[derive(Debug)]
pub enum PublishError<E> {
    /// Every target refused it (`fail-fast`); the event comes back.
    Rejected {
        /// The event.
        event: E,
        /// Per-subscription outcome.
        report: PublishReport,
    },
    /// Before `start_complete`.
    NotStarted(E),
    /// After the feeds stopped.
    Closed(E),
}

/// Publishes onto one feed.
pub struct Publisher<E> {
    feed: Arc<FeedShared>,
    subs: Vec<(Tx<E>, Arc<SubShared>)>,
    local_seq: u64,
}

#[inline]
fn bump(c: &AtomicU64, single: bool) {
    if single {
        // One writer: a plain load/store avoids the locked read-modify-write.
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Release);
    } else {
        c.fetch_add(1, Ordering::Release);
    }
}

impl<E: Event> Publisher<E> {
    /// A publisher over `subs`.
    pub fn new(feed: Arc<FeedShared>, subs: Vec<(Tx<E>, Arc<SubShared>)>) -> Self {
        Publisher {
            feed,
            subs,
            local_seq: 0,
        }
    }

    /// The feed's name.
    pub fn feed(&self) -> &str {
        self.feed.name
    }

    /// Offers `ev` to every subscription (MNG-R23).
    pub fn publish(&mut self, ev: E) -> Result<PublishReport, PublishError<E>> {
        #[cfg(feature = "alloc-count")]
        let _hot = crate::alloc::hot_path(&self.feed.hot_allocs);
        match self.feed.phase.load(Ordering::Acquire) {
            PHASE_RUNNING => {}
            PHASE_STARTING => return Err(PublishError::NotStarted(ev)),
            _ => return Err(PublishError::Closed(ev)),
        }
        let single = !self.feed.multi;
        let seq = if single {
            self.local_seq += 1;
            self.local_seq
        } else {
            self.feed.seq.fetch_add(1, Ordering::Relaxed) + 1
        };
        bump(&self.feed.published, single);
        let mut report = PublishReport::default();
        let (name, id) = (self.feed.name, self.feed.id);
        for (tx, sh) in self.subs.iter_mut() {
            let state = sh.state.load(Ordering::Acquire);
            if state == DETACHED {
                continue;
            }
            report.targets += 1;
            if state == DISCONNECTED {
                sh.drop_one(Policy::Disconnect as usize);
                report.dropped += 1;
                continue;
            }
            let env = Envelope {
                feed: name,
                feed_id: id,
                seq,
                event: ev.clone(),
            };
            match tx.push(env) {
                Ok(()) => {
                    bump(&sh.enqueued, single && sh.kind == "spsc");
                    report.enqueued += 1;
                }
                Err(env) => full(tx, sh, env, &mut report),
            }
        }
        if report.targets == 0 {
            self.feed.unrouted.fetch_add(1, Ordering::Relaxed);
            return Ok(report);
        }
        if report.enqueued == 0 && report.rejected > 0 {
            return Err(PublishError::Rejected { event: ev, report });
        }
        Ok(report)
    }
}

impl<E> Publisher<E> {
    /// Another publisher on the same multi-producer feed; None for single-producer feeds.
    pub fn try_clone(&self) -> Option<Publisher<E>> {
        if !self.feed.multi {
            return None;
        }
        let subs = self
            .subs
            .iter()
            .map(|(tx, sh)| tx.try_clone().map(|t| (t, sh.clone())))
            .collect::<Option<Vec<_>>>()?;
        Some(Publisher {
            feed: self.feed.clone(),
            subs,
            local_seq: 0,
        })
    }
}

/// The slow path: the queue was full.
#[cold]
fn full<E>(tx: &mut Tx<E>, sh: &SubShared, env: Envelope<E>, report: &mut PublishReport) {
    let bp = sh.backpressure();
    let mut env = env;
    let policy = if bp.policy == Policy::Block {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(u64::from(bp.max_wait_ms));
        let (mut spins, mut yields, mut park) = (0u32, 0u32, BLOCK_PARK.0);
        loop {
            match tx.push(env) {
                Ok(()) => {
                    sh.enqueued.fetch_add(1, Ordering::Release);
                    sh.blocked_ns
                        .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    report.enqueued += 1;
                    return;
                }
                Err(back) => env = back,
            }
            if Instant::now() >= deadline {
                break;
            }
            if spins < BLOCK_SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else if yields < BLOCK_YIELDS {
                yields += 1;
                std::thread::yield_now();
            } else {
                std::thread::sleep(park);
                park = (park * 2).min(BLOCK_PARK.1);
            }
        }
        sh.block_timeouts.fetch_add(1, Ordering::Relaxed);
        sh.blocked_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        bp.fallback
    } else {
        bp.policy
    };
    match policy {
        Policy::DropOldest => match tx.force_push(env) {
            Ok(evicted) => {
                sh.enqueued.fetch_add(1, Ordering::Release);
                report.enqueued += 1;
                if let Some(old) = evicted {
                    // Dropped here, on the publisher's thread (MNG-R23).
                    drop(old);
                    sh.evicted.fetch_add(1, Ordering::Release);
                    sh.drop_one(Policy::DropOldest as usize);
                    report.evicted += 1;
                }
            }
            // An SPSC ring cannot evict; validation forces MPSC for drop-oldest, so this
            // only happens if a reload switched policy: count it as drop-newest.
            Err(_) => {
                sh.drop_one(Policy::DropNewest as usize);
                report.dropped += 1;
            }
        },
        Policy::Disconnect => {
            sh.state.store(DISCONNECTED, Ordering::Release);
            sh.drop_one(Policy::Disconnect as usize);
            report.dropped += 1;
        }
        Policy::FailFast => {
            sh.drop_one(Policy::FailFast as usize);
            report.rejected += 1;
        }
        Policy::DropNewest | Policy::Block => {
            sh.drop_one(Policy::DropNewest as usize);
            report.dropped += 1;
        }
    }
}
