//! Sink handles (MNG-R05, R26): how processors hand values to sinks.
//!
//! `SinkHandle::send` never blocks and always gives the value back on failure: `Closed`
//! after shutdown, `Full` when the sink's queue is full. A `memory` sink is inline: its
//! bounded ring evicts the oldest item at capacity and counts the eviction.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;

use crate::event::Event;

/// Why `send` did not take the value.
#[derive(Debug, PartialEq)]
pub enum SinkSendError<E> {
    /// The sink's queue is full.
    Full(E),
    /// The sink's circuit breaker is open.
    CircuitOpen(E),
    /// The sink is closed (shutdown).
    Closed(E),
}

/// An item as a sink receives it: a value with its origin (feed, seq), or a quarantine
/// record when the sink is the configured `quarantine.sink`.
#[derive(Debug, Clone)]
pub enum SinkItem<E> {
    /// A value sent or forwarded by a processor.
    Event {
        /// The value.
        value: E,
        /// Where it came from, when forwarded from an event.
        origin: Option<(&'static str, u64)>,
    },
    /// A quarantine record (MNG-R25).
    Quarantine(Box<crate::quarantine::QuarantineRecord>),
}

impl<E: Event> SinkItem<E> {
    /// The (feed, seq) the item came from, if any.
    pub fn origin(&self) -> Option<(&'static str, u64)> {
        match self {
            SinkItem::Event { origin, .. } => *origin,
            SinkItem::Quarantine(_) => None,
        }
    }

    /// The value, unless this is a quarantine record.
    pub fn value(&self) -> Option<&E> {
        match self {
            SinkItem::Event { value, .. } => Some(value),
            SinkItem::Quarantine(_) => None,
        }
    }

    /// The JSON a sink writes: the value's `to_json`, or the record's 13 keys.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            SinkItem::Event { value, .. } => value.to_json(),
            SinkItem::Quarantine(r) => r.to_json(),
        }
    }
}

/// Why an item was refused (the value travels separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    Full,
    Open,
    Closed,
}

/// Counters of one sink.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Accepted by `send`.
    pub sent: AtomicU64,
    /// Written.
    pub written: AtomicU64,
    /// Evicted (memory sinks).
    pub evicted: AtomicU64,
    /// Refused: full.
    pub rejected_full: AtomicU64,
    /// Refused: breaker open.
    pub rejected_open: AtomicU64,
    /// Refused: closed.
    pub rejected_closed: AtomicU64,
}

struct Shared<E> {
    name: &'static str,
    ring: ArrayQueue<SinkItem<E>>,
    inline: bool,
    /// A pipe's sink side (MNG-R28): publishes on the pipe's feed from the sender's thread.
    /// Installed once the pipe's queues exist; the lock is uncontended unless several groups
    /// send to the same pipe at the same instant.
    pipe: Option<std::sync::OnceLock<parking_lot::Mutex<crate::publish::Publisher<E>>>>,
    closed: AtomicBool,
    stats: SinkStats,
    breaker: Option<Arc<ron_kernel::CircuitBreaker>>,
}

/// A cheap, cloneable handle on one sink.
pub struct SinkHandle<E> {
    shared: Arc<Shared<E>>,
}

impl<E> Clone for SinkHandle<E> {
    fn clone(&self) -> Self {
        SinkHandle {
            shared: self.shared.clone(),
        }
    }
}

impl<E: Event> SinkHandle<E> {
    /// An inline `memory` sink keeping the last `capacity` items.
    pub fn memory(name: &'static str, capacity: usize) -> Self {
        SinkHandle {
            shared: Arc::new(Shared {
                name,
                ring: ArrayQueue::new(capacity.max(1)),
                inline: true,
                pipe: None,
                closed: AtomicBool::new(false),
                stats: SinkStats::default(),
                breaker: None,
            }),
        }
    }

    /// A queued sink of `capacity`, written by a sink agent behind `breaker`.
    pub fn queued(
        name: &'static str,
        capacity: usize,
        breaker: Option<Arc<ron_kernel::CircuitBreaker>>,
    ) -> Self {
        SinkHandle {
            shared: Arc::new(Shared {
                name,
                ring: ArrayQueue::new(capacity.max(1)),
                inline: false,
                pipe: None,
                closed: AtomicBool::new(false),
                stats: SinkStats::default(),
                breaker,
            }),
        }
    }

    /// The sink side of a pipe; it refuses values (`Full`) until [`SinkHandle::install_pipe`].
    pub fn pipe(name: &'static str) -> Self {
        SinkHandle {
            shared: Arc::new(Shared {
                name,
                ring: ArrayQueue::new(1),
                inline: true,
                pipe: Some(std::sync::OnceLock::new()),
                closed: AtomicBool::new(false),
                stats: SinkStats::default(),
                breaker: None,
            }),
        }
    }

    /// Gives a pipe its feed's publisher (a no-op on other sinks).
    pub fn install_pipe(&self, p: crate::publish::Publisher<E>) {
        if let Some(slot) = &self.shared.pipe {
            let _ = slot.set(parking_lot::Mutex::new(p));
        }
    }

    /// Whether this is a pipe's sink side.
    pub fn is_pipe(&self) -> bool {
        self.shared.pipe.is_some()
    }

    /// The breaker's state, when the sink has one.
    pub fn circuit(&self) -> Option<ron_kernel::BreakerState> {
        self.shared.breaker.as_ref().map(|b| b.state())
    }

    pub(crate) fn pop(&self) -> Option<SinkItem<E>> {
        self.shared.ring.pop()
    }

    /// Items queued (memory sinks: items held).
    pub fn depth(&self) -> usize {
        self.shared.ring.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.shared.ring.is_empty()
    }

    /// The sink's name.
    pub fn name(&self) -> &'static str {
        self.shared.name
    }

    /// Hands `v` to the sink.
    pub fn send(&self, v: E) -> Result<(), SinkSendError<E>> {
        self.send_item(v, None)
    }

    /// Hands a value with its origin to the sink.
    pub fn send_item(
        &self,
        value: E,
        origin: Option<(&'static str, u64)>,
    ) -> Result<(), SinkSendError<E>> {
        match self.push(SinkItem::Event { value, origin }) {
            Ok(()) => Ok(()),
            Err((why, SinkItem::Event { value, .. })) => Err(match why {
                Refused::Full => SinkSendError::Full(value),
                Refused::Open => SinkSendError::CircuitOpen(value),
                Refused::Closed => SinkSendError::Closed(value),
            }),
            Err((_, SinkItem::Quarantine(_))) => unreachable!("pushed an event"),
        }
    }

    /// Hands a quarantine record to the sink without blocking; gives it back when the sink
    /// is closed, open or full, so the caller can fall back to the memory ring.
    pub fn send_record(
        &self,
        rec: Box<crate::quarantine::QuarantineRecord>,
    ) -> Result<(), Box<crate::quarantine::QuarantineRecord>> {
        match self.push(SinkItem::Quarantine(rec)) {
            Ok(()) => Ok(()),
            Err((_, SinkItem::Quarantine(r))) => Err(r),
            Err((_, SinkItem::Event { .. })) => unreachable!("pushed a record"),
        }
    }

    fn push(&self, item: SinkItem<E>) -> Result<(), (Refused, SinkItem<E>)> {
        let s = &*self.shared;
        if s.closed.load(Ordering::Acquire) {
            s.stats.rejected_closed.fetch_add(1, Ordering::Relaxed);
            return Err((Refused::Closed, item));
        }
        if let Some(slot) = &s.pipe {
            // MNG-R28: anything short of a lossless publish comes back to the sender as Full.
            let SinkItem::Event { value, .. } = item else {
                s.stats.rejected_full.fetch_add(1, Ordering::Relaxed);
                return Err((Refused::Full, item));
            };
            let Some(p) = slot.get() else {
                s.stats.rejected_full.fetch_add(1, Ordering::Relaxed);
                return Err((
                    Refused::Full,
                    SinkItem::Event {
                        value,
                        origin: None,
                    },
                ));
            };
            let copy = value.clone();
            return match p.lock().publish(value) {
                Ok(r) if r.lossless() => {
                    s.stats.sent.fetch_add(1, Ordering::Relaxed);
                    s.stats.written.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                _ => {
                    s.stats.rejected_full.fetch_add(1, Ordering::Relaxed);
                    Err((
                        Refused::Full,
                        SinkItem::Event {
                            value: copy,
                            origin: None,
                        },
                    ))
                }
            };
        }
        if s.inline {
            if s.ring.force_push(item).is_some() {
                s.stats.evicted.fetch_add(1, Ordering::Relaxed);
            }
            s.stats.sent.fetch_add(1, Ordering::Relaxed);
            s.stats.written.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        if s.breaker
            .as_ref()
            .is_some_and(|b| b.state() == ron_kernel::BreakerState::Open)
        {
            s.stats.rejected_open.fetch_add(1, Ordering::Relaxed);
            return Err((Refused::Open, item));
        }
        match s.ring.push(item) {
            Ok(()) => {
                s.stats.sent.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(item) => {
                s.stats.rejected_full.fetch_add(1, Ordering::Relaxed);
                Err((Refused::Full, item))
            }
        }
    }

    /// The counters.
    pub fn stats(&self) -> &SinkStats {
        &self.shared.stats
    }

    /// Closes the sink: later sends get `Closed`.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
    }

    /// A memory sink's contents, oldest first (a snapshot; the ring keeps them).
    pub fn snapshot(&self) -> Vec<SinkItem<E>> {
        let s = &*self.shared;
        let mut all = Vec::with_capacity(s.ring.len());
        while let Some(i) = s.ring.pop() {
            all.push(i);
        }
        for i in &all {
            let _ = s.ring.force_push(i.clone());
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sinks_evict_the_oldest_and_closed_sinks_give_values_back() {
        let s = SinkHandle::<u64>::memory("m", 3);
        for i in 0..5 {
            s.send(i).unwrap();
        }
        let got: Vec<u64> = s
            .snapshot()
            .iter()
            .filter_map(|i| i.value().copied())
            .collect();
        assert_eq!(got, [2, 3, 4]);
        assert_eq!(s.stats().evicted.load(Ordering::Relaxed), 2);
        s.close();
        assert_eq!(s.send(9), Err(SinkSendError::Closed(9)));
    }
}
