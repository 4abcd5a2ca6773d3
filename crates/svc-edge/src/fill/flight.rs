//! Single-flight over a bounded queue (spec §4.11 step 4): the first request for a
//! (cache key, expected digest) pair enqueues one job with `try_send`; later requests join
//! it. `fill_concurrency` jobs run at once. A waiter gives up at its own deadline while
//! the job runs on to its end and stores its result, so a retry hits.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::Mutex;
use ron_metrics::{Counter, IntGauge};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;

use super::store::Stored;
use crate::errors::EdgeError;

/// What a fill ends with.
pub type Outcome = Result<Stored, EdgeError>;
/// Identity of a fill: cache key K and the `?b3=` digest, if any.
pub type FlightKey = (String, Option<String>);
type Job = Pin<Box<dyn Future<Output = ()> + Send>>;
type Slot = watch::Receiver<Option<Outcome>>;

/// Queue and coalescing counters.
#[derive(Clone)]
pub struct FlightCounters {
    /// `edge_queue_depth{queue="fill"}`.
    pub depth: IntGauge,
    /// `edge_queue_dropped_total{queue="fill"}`.
    pub dropped: Counter,
    /// `edge_live_fill_coalesced_total`.
    pub coalesced: Counter,
}

/// Fills in progress and the workers that run them.
pub struct Flights {
    inflight: Arc<Mutex<HashMap<FlightKey, Slot>>>,
    queue: mpsc::Sender<Job>,
    permits: Arc<Semaphore>,
    concurrency: Mutex<u32>,
    counters: FlightCounters,
}

/// Publishes a fill's outcome; if the job is dropped first (panic, shutdown) the waiters
/// see the sender vanish and the key is freed all the same.
pub struct Publisher {
    key: FlightKey,
    tx: watch::Sender<Option<Outcome>>,
    inflight: Arc<Mutex<HashMap<FlightKey, Slot>>>,
}

impl Flights {
    /// A queue of `queue_len` jobs served by `concurrency` workers. Must be called inside
    /// a tokio runtime: it spawns the dispatcher.
    pub fn new(queue_len: u32, concurrency: u32, counters: FlightCounters) -> Flights {
        let (queue, mut rx) = mpsc::channel::<Job>(queue_len.max(1) as usize);
        let permits = Arc::new(Semaphore::new(concurrency.max(1) as usize));
        let (p, depth) = (permits.clone(), counters.depth.clone());
        tokio::spawn(async move {
            // The permit is taken before the next job leaves the queue, so a job waiting
            // for a worker still occupies its queue slot: `fill_queue` bounds the jobs
            // waiting, exactly.
            loop {
                let Ok(permit) = p.clone().acquire_owned().await else {
                    return;
                };
                let Some(job) = rx.recv().await else {
                    return;
                };
                depth.dec();
                tokio::spawn(async move {
                    job.await;
                    drop(permit);
                });
            }
        });
        Flights {
            inflight: Arc::new(Mutex::new(HashMap::new())),
            queue,
            permits,
            concurrency: Mutex::new(concurrency.max(1)),
            counters,
        }
    }

    /// Joins the fill for `key`, or starts one built by `start` (which receives the
    /// [`Publisher`] it must finish with). A full queue is 429 `busy`.
    pub fn join<F, Fut>(&self, key: FlightKey, start: F) -> Result<Slot, EdgeError>
    where
        F: FnOnce(Publisher) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut inflight = self.inflight.lock();
        if let Some(slot) = inflight.get(&key) {
            self.counters.coalesced.inc();
            return Ok(slot.clone());
        }
        let (tx, rx) = watch::channel(None);
        let publisher = Publisher {
            key: key.clone(),
            tx,
            inflight: self.inflight.clone(),
        };
        let job: Job = Box::pin(start(publisher));
        // Sending under the lock means no request can join a job that never ran.
        if let Err(refused) = self.queue.try_send(job) {
            // The refused job holds a Publisher whose drop takes this lock: release first.
            drop(inflight);
            drop(refused);
            self.counters.dropped.inc();
            return Err(EdgeError::Busy);
        }
        self.counters.depth.inc();
        inflight.insert(key, rx.clone());
        Ok(rx)
    }

    /// Waits for the fill behind `slot` until `deadline` (503 `timeout` after it).
    pub async fn wait(slot: Slot, deadline: Instant) -> Outcome {
        Flights::wait_until(slot, deadline)
            .await
            .unwrap_or(Err(EdgeError::Timeout))
    }

    /// The fill's outcome, or `None` when this waiter's own `deadline` passed first (the
    /// caller counts that; a fill that timed out itself has already been counted).
    pub async fn wait_until(mut slot: Slot, deadline: Instant) -> Option<Outcome> {
        match tokio::time::timeout_at(deadline, slot.wait_for(Option::is_some)).await {
            Ok(Ok(v)) => Some(v.clone().unwrap_or(Err(EdgeError::Internal))),
            Ok(Err(_)) => Some(Err(EdgeError::Internal)),
            Err(_) => None,
        }
    }

    /// Whether no more job fits in the queue (the `under_pressure` signal).
    pub fn queue_full(&self) -> bool {
        self.queue.capacity() == 0
    }

    /// Sets how many fills may run at once; shrinking waits for running fills to end.
    pub fn resize(&self, concurrency: u32) {
        let target = concurrency.max(1);
        let mut current = self.concurrency.lock();
        if target > *current {
            self.permits.add_permits((target - *current) as usize);
        } else if target < *current {
            let permits = self.permits.clone();
            let surplus = *current - target;
            tokio::spawn(async move {
                if let Ok(p) = permits.acquire_many_owned(surplus).await {
                    p.forget();
                }
            });
        }
        *current = target;
    }
}

impl Publisher {
    /// Frees the key, then hands the outcome to every waiter. The key goes first so a
    /// request arriving now starts afresh (or hits what was just stored).
    pub fn publish(self, outcome: Outcome) {
        self.release();
        self.tx.send_replace(Some(outcome));
    }

    /// Removes this flight's entry, never a newer flight's under the same key.
    fn release(&self) {
        let mine = self.tx.subscribe();
        let mut inflight = self.inflight.lock();
        if inflight
            .get(&self.key)
            .is_some_and(|slot| slot.same_channel(&mine))
        {
            inflight.remove(&self.key);
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if self.tx.borrow().is_none() {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn counters() -> FlightCounters {
        let m = ron_metrics::Metrics::builder().build().unwrap();
        let r = m.registry();
        FlightCounters {
            depth: r.int_gauge("test_fill_depth", "Queued.").unwrap(),
            dropped: r.counter("test_fill_dropped_total", "Dropped.").unwrap(),
            coalesced: r.counter("test_fill_coalesced_total", "Joined.").unwrap(),
        }
    }

    #[tokio::test]
    async fn joiners_share_one_job_and_its_outcome() {
        let flights = Flights::new(4, 1, counters());
        let key: FlightKey = ("k".into(), None);
        let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let mut slots = Vec::new();
        for _ in 0..3 {
            let runs = runs.clone();
            slots.push(
                flights
                    .join(key.clone(), move |p| async move {
                        runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        p.publish(Err(EdgeError::NotFound));
                    })
                    .unwrap(),
            );
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for slot in slots {
            assert_eq!(
                Flights::wait(slot, deadline).await.err(),
                Some(EdgeError::NotFound)
            );
        }
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(flights.counters.coalesced.get(), 2);
        assert!(flights.inflight.lock().is_empty());
    }

    #[tokio::test]
    async fn a_full_queue_is_busy_and_a_waiter_times_out_at_its_deadline() {
        let flights = Flights::new(1, 1, counters());
        let (hold_tx, hold_rx) = tokio::sync::oneshot::channel::<()>();
        let first = flights
            .join(("a".into(), None), move |p| async move {
                let _ = hold_rx.await;
                p.publish(Err(EdgeError::NotFound));
            })
            .unwrap();
        // Let the dispatcher take the first job so the queue has one free place again.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = flights.join(("b".into(), None), |p| async move { drop(p) });
        assert!(second.is_ok());
        let third = flights.join(("c".into(), None), |p| async move { drop(p) });
        assert_eq!(third.err(), Some(EdgeError::Busy));
        assert_eq!(flights.counters.dropped.get(), 1);
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(
            Flights::wait(first, soon).await.err(),
            Some(EdgeError::Timeout)
        );
        hold_tx.send(()).unwrap();
    }

    #[tokio::test]
    async fn a_dropped_job_frees_its_key_and_fails_its_waiters() {
        let flights = Flights::new(2, 2, counters());
        let slot = flights
            .join(("k".into(), None), |p| async move { drop(p) })
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            Flights::wait(slot, deadline).await.err(),
            Some(EdgeError::Internal)
        );
        assert!(flights.inflight.lock().is_empty());
    }
}
