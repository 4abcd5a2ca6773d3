//! Admission (spec §4.2 steps 8-9): a lock-free token bucket for `rps_limit` and a
//! non-waiting inflight semaphore for `max_inflight`, both resizable on SIGHUP.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A GCRA token bucket over one atomic: the theoretical arrival time of the next token.
/// Burst equals the per-second limit, as the spec says.
pub struct RateLimiter {
    epoch: Instant,
    /// Nanoseconds since `epoch` at which the bucket is full again.
    tat: AtomicU64,
    /// Nanoseconds per token.
    interval: AtomicU64,
    /// Burst tolerance in nanoseconds (burst × interval).
    tolerance: AtomicU64,
}

impl RateLimiter {
    /// `limit` tokens per second, burst `limit`.
    pub fn new(limit: u32) -> RateLimiter {
        let r = RateLimiter {
            epoch: Instant::now(),
            tat: AtomicU64::new(0),
            interval: AtomicU64::new(0),
            tolerance: AtomicU64::new(0),
        };
        r.set_limit(limit);
        r
    }

    /// Changes the rate in place (SIGHUP).
    pub fn set_limit(&self, limit: u32) {
        let limit = u64::from(limit.max(1));
        let interval = 1_000_000_000 / limit;
        self.interval.store(interval.max(1), Ordering::Relaxed);
        self.tolerance
            .store(interval.max(1) * limit, Ordering::Relaxed);
    }

    /// Takes a token now; `Err(retry_after)` when the bucket is empty.
    pub fn try_take(&self) -> Result<(), Duration> {
        self.try_take_at(self.epoch.elapsed().as_nanos() as u64)
    }

    fn try_take_at(&self, now: u64) -> Result<(), Duration> {
        let interval = self.interval.load(Ordering::Relaxed);
        let tolerance = self.tolerance.load(Ordering::Relaxed);
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let base = tat.max(now);
            let next = base + interval;
            if next > now + tolerance {
                return Err(Duration::from_nanos(next - now - tolerance));
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(t) => tat = t,
            }
        }
    }
}

/// Inflight permits that never wait.
pub struct Inflight {
    sem: Arc<Semaphore>,
    size: AtomicU64,
}

impl Inflight {
    /// `max` permits.
    pub fn new(max: u32) -> Inflight {
        Inflight {
            sem: Arc::new(Semaphore::new(max as usize)),
            size: AtomicU64::new(u64::from(max)),
        }
    }

    /// A permit, or `None` at the cap.
    pub fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        self.sem.clone().try_acquire_owned().ok()
    }

    /// Permits currently held.
    pub fn held(&self) -> u64 {
        self.size
            .load(Ordering::Relaxed)
            .saturating_sub(self.sem.available_permits() as u64)
    }

    /// The cap.
    pub fn max(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    /// Resizes in place (SIGHUP); shrinking takes effect as held permits return.
    pub fn resize(&self, max: u32) {
        let old = self.size.swap(u64::from(max), Ordering::AcqRel);
        let new = u64::from(max);
        if new > old {
            self.sem.add_permits((new - old) as usize);
        } else if old > new {
            let sem = self.sem.clone();
            let n = (old - new) as u32;
            tokio::spawn(async move {
                if let Ok(p) = sem.acquire_many(n).await {
                    p.forget();
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_of_limit_then_refills_at_the_rate() {
        let r = RateLimiter::new(5);
        let t0 = 1_000_000_000_000;
        for _ in 0..5 {
            assert!(r.try_take_at(t0).is_ok());
        }
        let wait = r.try_take_at(t0).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(200));
        assert!(r.try_take_at(t0 + 200_000_000).is_ok());
        assert!(r.try_take_at(t0 + 200_000_000).is_err());
    }

    #[tokio::test]
    async fn inflight_never_waits_and_resizes() {
        let i = Inflight::new(2);
        let a = i.try_acquire().unwrap();
        let _b = i.try_acquire().unwrap();
        assert!(i.try_acquire().is_none());
        assert_eq!(i.held(), 2);
        drop(a);
        assert!(i.try_acquire().is_some());
        i.resize(4);
        assert_eq!(i.max(), 4);
    }
}
