//! Admission on accept (spec §4.2 SEN-R23): a new downstream connection is closed at once,
//! with no bytes sent, when the proxy listeners together hold `max-total-connections`,
//! this listener holds `server.max-connections`, or the client IP holds
//! `max-connections-per-client` (when non-zero). The limits come from the current
//! snapshot, so a reload applies to the next accept; open connections are never cut.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The limits checked at accept.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// `limits.max-total-connections`.
    pub total: u64,
    /// `server.max-connections` (per listener).
    pub listener: u64,
    /// `limits.max-connections-per-client` (0 = unlimited).
    pub per_client: u32,
}

/// Open connection counts across the proxy listeners.
#[derive(Debug, Default)]
pub struct ConnCounts {
    total: AtomicU64,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    last_warn: Mutex<HashMap<&'static str, Instant>>,
}

/// One admitted connection; dropping it gives its place back.
#[derive(Debug)]
pub struct ConnSlot {
    counts: Arc<ConnCounts>,
    listener: Arc<AtomicU64>,
    ip: IpAddr,
}

impl ConnCounts {
    /// Admits a connection from `ip` on a listener whose open count is `listener`, or
    /// names the rejection reason (`max_total`, `max_listener`, `max_per_client`).
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        listener: &Arc<AtomicU64>,
        caps: Caps,
    ) -> Result<ConnSlot, &'static str> {
        if self.total.load(Ordering::Acquire) >= caps.total {
            return Err("max_total");
        }
        if listener.load(Ordering::Acquire) >= caps.listener {
            return Err("max_listener");
        }
        {
            let mut per_ip = self.per_ip.lock();
            let n = per_ip.entry(ip).or_insert(0);
            if caps.per_client > 0 && *n >= caps.per_client {
                if *n == 0 {
                    per_ip.remove(&ip);
                }
                return Err("max_per_client");
            }
            *n += 1;
        }
        self.total.fetch_add(1, Ordering::AcqRel);
        listener.fetch_add(1, Ordering::AcqRel);
        Ok(ConnSlot {
            counts: self.clone(),
            listener: listener.clone(),
            ip,
        })
    }

    /// Whether a WARN for `reason` may be logged now (at most once per second each).
    pub fn warn_due(&self, reason: &'static str) -> bool {
        let mut last = self.last_warn.lock();
        let now = Instant::now();
        match last.get(reason) {
            Some(t) if now.duration_since(*t) < Duration::from_secs(1) => false,
            _ => {
                last.insert(reason, now);
                true
            }
        }
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.counts.total.fetch_sub(1, Ordering::AcqRel);
        self.listener.fetch_sub(1, Ordering::AcqRel);
        let mut per_ip = self.counts.per_ip.lock();
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cap_rejects_with_its_reason_and_slots_give_places_back() {
        let counts = Arc::new(ConnCounts::default());
        let (l1, l2) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let caps = Caps {
            total: 3,
            listener: 2,
            per_client: 1,
        };
        let s1 = counts.admit(a, &l1, caps).unwrap();
        assert_eq!(counts.admit(a, &l2, caps).err(), Some("max_per_client"));
        let s2 = counts.admit(b, &l1, caps).unwrap();
        assert_eq!(
            counts.admit("10.0.0.3".parse().unwrap(), &l1, caps).err(),
            Some("max_listener")
        );
        let _s3 = counts
            .admit("10.0.0.3".parse().unwrap(), &l2, caps)
            .unwrap();
        assert_eq!(
            counts.admit("10.0.0.4".parse().unwrap(), &l2, caps).err(),
            Some("max_total")
        );
        drop((s1, s2));
        assert!(counts.admit(a, &l1, caps).is_ok(), "places come back");
    }
}
