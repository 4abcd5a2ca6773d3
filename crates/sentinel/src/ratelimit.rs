//! Per-route rate limits (spec §4.7 SEN-R35): a keyed GCRA limiter (governor) per route
//! with `rate-limit`, checked after route matching and before target selection.
//!
//! Keys: the TCP peer IP (client-sent X-Forwarded-For is never trusted), the first value of
//! a header (falling back to the peer IP), or one shared bucket for the route. Memory stays
//! bounded: every 10 s fully replenished keys are pruned, and a map still over `max-keys`
//! is reset (its clients regain their burst).

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use arc_swap::ArcSwap;
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use http::HeaderMap;

use crate::config::{RateKey, RateLimit};

/// How often limiter maps are pruned.
pub const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// One bucket's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// A client address.
    Ip(IpAddr),
    /// A header value.
    Header(Box<str>),
    /// The route's single bucket.
    Route,
}

type Keyed = RateLimiter<Key, DefaultKeyedStateStore<Key>, DefaultClock>;

/// The limiter of one route.
pub struct RouteLimiter {
    /// Its settings (a reload keeps the limiter while they are unchanged).
    pub cfg: RateLimit,
    limiter: ArcSwap<Keyed>,
    clock: DefaultClock,
}

impl RouteLimiter {
    /// A limiter for `cfg` (validated: rps and burst ≥ 1).
    pub fn new(cfg: &RateLimit) -> RouteLimiter {
        RouteLimiter {
            limiter: ArcSwap::from_pointee(fresh(cfg)),
            cfg: cfg.clone(),
            clock: DefaultClock::default(),
        }
    }

    /// The bucket key of a request.
    pub fn key(&self, peer: IpAddr, headers: &HeaderMap) -> Key {
        match &self.cfg.key {
            RateKey::ClientIp => Key::Ip(canonical(peer)),
            RateKey::Route => Key::Route,
            RateKey::Header(name) => headers
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .map_or(Key::Ip(canonical(peer)), |v| Key::Header(v.into())),
        }
    }

    /// Takes one token for `key`; on refusal, the whole seconds until one is available
    /// (at least 1, the `Retry-After` value).
    pub fn check(&self, key: &Key) -> Result<(), u64> {
        match self.limiter.load().check_key(key) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Err(wait.as_secs_f64().ceil().max(1.0) as u64)
            }
        }
    }

    /// Drops fully replenished keys; resets the map when more than `max-keys` remain.
    /// Returns the live key count and whether a reset happened.
    pub fn prune(&self) -> (usize, bool) {
        let limiter = self.limiter.load_full();
        limiter.retain_recent();
        limiter.shrink_to_fit();
        if limiter.len() > self.cfg.max_keys as usize {
            self.limiter.store(Arc::new(fresh(&self.cfg)));
            return (0, true);
        }
        (limiter.len(), false)
    }

    /// Live keys.
    pub fn keys(&self) -> usize {
        self.limiter.load().len()
    }
}

/// Prunes every route limiter of the running snapshot each [`PRUNE_EVERY`], keeps
/// `sentinel_rate_limit_keys{route}` current and logs WARN `rate limiter reset` when a map
/// had to be reset. Runs until the process ends.
pub async fn prune_loop(shared: Arc<crate::proxy::Shared>) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let snapshot = shared.snapshot.load_full();
        for (route, limiter) in &snapshot.limiters {
            let (keys, reset) = limiter.prune();
            shared
                .metrics
                .rate_limit_keys
                .with_label_values(&[route])
                .set(keys as i64);
            if reset {
                tracing::warn!(route = %route, max_keys = limiter.cfg.max_keys, "rate limiter reset");
            }
        }
    }
}

fn fresh(cfg: &RateLimit) -> Keyed {
    let rps = NonZeroU32::new(cfg.requests_per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(cfg.burst).unwrap_or(rps);
    RateLimiter::keyed(Quota::per_second(rps).allow_burst(burst))
}

/// IPv4-mapped IPv6 clients share their IPv4 bucket.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn cfg(rps: u32, burst: u32, key: RateKey, max_keys: u32) -> RateLimit {
        RateLimit {
            requests_per_second: rps,
            burst,
            key,
            max_keys,
        }
    }

    #[test]
    fn a_burst_passes_then_refusals_carry_a_retry_after_of_at_least_one_second() {
        let l = RouteLimiter::new(&cfg(10, 10, RateKey::ClientIp, 1000));
        let k = l.key("127.0.0.1".parse().unwrap(), &HeaderMap::new());
        let results: Vec<_> = (0..30).map(|_| l.check(&k)).collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 10);
        assert!(results.iter().filter_map(|r| r.err()).all(|s| s >= 1));
    }

    #[test]
    fn header_keys_isolate_clients_and_fall_back_to_the_peer() {
        let l = RouteLimiter::new(&cfg(1, 1, RateKey::Header("x-api-key".into()), 1000));
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let mut a = HeaderMap::new();
        a.insert("x-api-key", HeaderValue::from_static("a"));
        let mut b = HeaderMap::new();
        b.insert("x-api-key", HeaderValue::from_static("b"));
        assert!(l.check(&l.key(peer, &a)).is_ok());
        assert!(l.check(&l.key(peer, &a)).is_err());
        assert!(
            l.check(&l.key(peer, &b)).is_ok(),
            "another key has its own bucket"
        );
        assert_eq!(l.key(peer, &HeaderMap::new()), Key::Ip(peer));
    }

    #[test]
    fn too_many_keys_reset_the_map() {
        let l = RouteLimiter::new(&cfg(1, 1, RateKey::ClientIp, 1000));
        for i in 0..1500u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = l.check(&Key::Ip(ip));
        }
        assert_eq!(l.keys(), 1500);
        assert_eq!(l.prune(), (0, true));
        assert_eq!(l.keys(), 0);
    }
}
