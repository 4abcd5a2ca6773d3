//! The bounded snapshot queue between the ticker and the exporter. A slow collector must
//! never make memory grow or make the ticker wait, so a push into a full queue drops the
//! oldest snapshot (newer cumulative values supersede it) and counts the loss.

use std::collections::VecDeque;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::handles::{Counter, IntGauge};

/// A drop-oldest queue that keeps `otel_export_queue_depth` and
/// `otel_export_dropped_total` current.
pub(crate) struct SnapshotQueue<T> {
    state: Mutex<State<T>>,
    ready: Notify,
    capacity: usize,
    dropped: Counter,
    depth: IntGauge,
}

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
}

impl<T> SnapshotQueue<T> {
    pub(crate) fn new(capacity: usize, dropped: Counter, depth: IntGauge) -> SnapshotQueue<T> {
        SnapshotQueue {
            state: Mutex::new(State {
                items: VecDeque::with_capacity(capacity),
                closed: false,
            }),
            ready: Notify::new(),
            capacity: capacity.max(1),
            dropped,
            depth,
        }
    }

    /// Appends a new snapshot, dropping the oldest when full. Never waits.
    pub(crate) fn push(&self, item: T) {
        let mut s = self.state.lock();
        if s.items.len() == self.capacity {
            s.items.pop_front();
            self.dropped.inc();
        }
        s.items.push_back(item);
        self.depth.set(s.items.len() as i64);
        drop(s);
        self.ready.notify_one();
    }

    /// Puts back a snapshot whose export failed, ahead of newer ones. When newer snapshots
    /// have filled the queue meanwhile, it is the oldest, so it is the one dropped.
    pub(crate) fn requeue(&self, item: T) {
        let mut s = self.state.lock();
        if s.items.len() == self.capacity {
            self.dropped.inc();
            return;
        }
        s.items.push_front(item);
        self.depth.set(s.items.len() as i64);
        drop(s);
        self.ready.notify_one();
    }

    /// The oldest snapshot, waiting for one; `None` once closed and empty.
    pub(crate) async fn pop(&self) -> Option<T> {
        loop {
            {
                let mut s = self.state.lock();
                if let Some(item) = s.items.pop_front() {
                    self.depth.set(s.items.len() as i64);
                    return Some(item);
                }
                if s.closed {
                    return None;
                }
            }
            // `notify_one` stores a permit when nobody waits, so a push between the check
            // above and this await is not lost.
            self.ready.notified().await;
        }
    }

    /// No more pushes will come; `pop` drains what is left, then returns `None`.
    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
        self.ready.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;
    use crate::labels::BaseLabels;

    fn queue(capacity: usize) -> (SnapshotQueue<u32>, Counter, IntGauge) {
        let r = Registry::new(BaseLabels::new("s", "i", "1", false));
        let dropped = r.counter("dropped_total", "d").unwrap();
        let depth = r.int_gauge("depth", "d").unwrap();
        (
            SnapshotQueue::new(capacity, dropped.clone(), depth.clone()),
            dropped,
            depth,
        )
    }

    #[tokio::test]
    async fn a_full_queue_drops_the_oldest_and_counts_it() {
        let (q, dropped, depth) = queue(4);
        for i in 0..6 {
            q.push(i);
        }
        assert_eq!(dropped.get(), 2);
        assert_eq!(depth.get(), 4);
        assert_eq!(q.pop().await, Some(2));
        assert_eq!(depth.get(), 3);
    }

    #[tokio::test]
    async fn a_requeued_snapshot_goes_first_unless_newer_ones_filled_the_queue() {
        let (q, dropped, _) = queue(2);
        q.push(1);
        q.push(2);
        let first = q.pop().await.unwrap();
        q.requeue(first);
        assert_eq!(q.pop().await, Some(1));
        q.push(3);
        q.requeue(1);
        assert_eq!(dropped.get(), 1);
        assert_eq!(q.pop().await, Some(2));
    }

    #[tokio::test]
    async fn pop_waits_for_a_push_and_ends_after_close() {
        let (q, _, _) = queue(4);
        let q = std::sync::Arc::new(q);
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { (q.pop().await, q.pop().await) }
        });
        tokio::task::yield_now().await;
        q.push(7);
        q.close();
        assert_eq!(waiter.await.unwrap(), (Some(7), None));
    }
}
