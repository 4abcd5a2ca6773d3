//! Load-balancing policies (spec §4.4, SEN-R27): pick one target among the eligible ones
//! of an upstream.
//!
//! What it is for: the five policies, each a pure choice over a snapshot of the targets
//! (weight, in-flight count, eligibility), with the per-upstream state the policy needs (a
//! cursor, or smooth weighted round-robin scores). What it is not for: deciding
//! eligibility (health, breakers, drain and retries are the caller's) or pool slots.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use rand::Rng;

use crate::config::LbPolicy;

/// What the policy sees of one target.
#[derive(Debug, Clone, Copy)]
pub struct TargetView<'a> {
    /// Configured weight (> 0 for an eligible target).
    pub weight: u32,
    /// Attempts in progress.
    pub in_flight: u64,
    /// May be picked now.
    pub eligible: bool,
    /// The target's address as configured (the ip-hash key).
    pub address: &'a str,
}

/// One upstream's balancer.
#[derive(Debug)]
pub struct Balancer {
    policy: LbPolicy,
    cursor: AtomicUsize,
    /// Smooth weighted round-robin running scores, one per target (config order).
    scores: Mutex<Vec<i64>>,
}

impl Balancer {
    /// A balancer for `targets` targets.
    pub fn new(policy: LbPolicy, targets: usize) -> Balancer {
        Balancer {
            policy,
            cursor: AtomicUsize::new(0),
            scores: Mutex::new(vec![0; targets]),
        }
    }

    /// The policy.
    pub fn policy(&self) -> LbPolicy {
        self.policy
    }

    /// The index (into `targets`) of the chosen eligible target, or `None` when no target
    /// is eligible. `client` is the TCP peer (ip-hash key).
    pub fn pick(&self, targets: &[TargetView<'_>], client: IpAddr) -> Option<usize> {
        let eligible = targets
            .iter()
            .filter(|t| t.eligible && t.weight > 0)
            .count();
        if eligible == 0 {
            return None;
        }
        let nth_eligible = |n: usize| {
            targets
                .iter()
                .enumerate()
                .filter(|(_, t)| t.eligible && t.weight > 0)
                .nth(n)
                .map(|(i, _)| i)
        };
        match self.policy {
            LbPolicy::RoundRobin => {
                nth_eligible(self.cursor.fetch_add(1, Ordering::Relaxed) % eligible)
            }
            LbPolicy::Weighted => self.smooth_weighted(targets),
            LbPolicy::LeastConnections => {
                let load =
                    |t: &TargetView<'_>| t.in_flight.saturating_mul(1000) / u64::from(t.weight);
                let best = targets
                    .iter()
                    .filter(|t| t.eligible && t.weight > 0)
                    .map(load)
                    .min()?;
                let tied: Vec<usize> = targets
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.eligible && t.weight > 0 && load(t) == best)
                    .map(|(i, _)| i)
                    .collect();
                let turn = self.cursor.fetch_add(1, Ordering::Relaxed);
                tied.get(turn % tied.len()).copied()
            }
            LbPolicy::P2c => {
                if eligible == 1 {
                    return nth_eligible(0);
                }
                let mut rng = rand::rng();
                let a = rng.random_range(0..eligible);
                let mut b = rng.random_range(0..eligible - 1);
                if b >= a {
                    b += 1;
                }
                let (ia, ib) = (nth_eligible(a)?, nth_eligible(b)?);
                let (ta, tb) = (&targets[ia], &targets[ib]);
                // in_flight/weight compared without division.
                let lhs = u128::from(ta.in_flight) * u128::from(tb.weight);
                let rhs = u128::from(tb.in_flight) * u128::from(ta.weight);
                Some(if lhs <= rhs { ia } else { ib })
            }
            LbPolicy::IpHash => {
                let ip = canonical_ip_bytes(client);
                targets
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.eligible && t.weight > 0)
                    .map(|(i, t)| (i, rendezvous_score(&ip, t.address, t.weight)))
                    .max_by(|(ia, a), (ib, b)| a.total_cmp(b).then(ib.cmp(ia)))
                    .map(|(i, _)| i)
            }
        }
    }

    /// Smooth weighted round-robin: every eligible target adds its weight to its score; the
    /// highest score wins (ties: config order) and pays back the total.
    fn smooth_weighted(&self, targets: &[TargetView<'_>]) -> Option<usize> {
        let mut scores = self.scores.lock();
        if scores.len() != targets.len() {
            scores.resize(targets.len(), 0);
        }
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (i, t) in targets.iter().enumerate() {
            if !(t.eligible && t.weight > 0) {
                continue;
            }
            scores[i] += i64::from(t.weight);
            total += i64::from(t.weight);
            if best.is_none_or(|b| scores[i] > scores[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        scores[b] -= total;
        Some(b)
    }
}

/// The client address as hashed: IPv4-mapped IPv6 addresses hash as their IPv4 form, so a
/// dual-stack listener keeps each client on one target.
fn canonical_ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.octets().to_vec(),
            None => v6.octets().to_vec(),
        },
    }
}

/// Weighted rendezvous score `-weight / ln(u)`, u ∈ (0,1) from a fixed 64-bit hash of the
/// client IP bytes and the target address: stable across restarts and instances, and
/// removing a target moves only the clients that scored highest on it.
fn rendezvous_score(ip: &[u8], address: &str, weight: u32) -> f64 {
    let h = splitmix64(fnv1a(ip.iter().chain(address.as_bytes())));
    // The top 53 bits, offset by half a step, so u is never 0 or 1.
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -f64::from(weight) / u.ln()
}

fn fnv1a<'a>(bytes: impl Iterator<Item = &'a u8>) -> u64 {
    bytes.fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn views<'a>(spec: &[(u32, u64, bool, &'a str)]) -> Vec<TargetView<'a>> {
        spec.iter()
            .map(|&(weight, in_flight, eligible, address)| TargetView {
                weight,
                in_flight,
                eligible,
                address,
            })
            .collect()
    }

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn weighted_five_one_one_gives_the_smooth_sequence() {
        let b = Balancer::new(LbPolicy::Weighted, 3);
        let t = views(&[(5, 0, true, "a"), (1, 0, true, "b"), (1, 0, true, "c")]);
        let seq: String = (0..7)
            .map(|_| ["a", "b", "c"][b.pick(&t, LOCAL).unwrap()])
            .collect();
        assert_eq!(seq, "aabacaa");
    }

    #[test]
    fn round_robin_alternates_and_skips_ineligible_and_weight_zero() {
        let b = Balancer::new(LbPolicy::RoundRobin, 3);
        let t = views(&[(1, 0, true, "a"), (0, 0, true, "b"), (1, 0, true, "c")]);
        let picks: Vec<usize> = (0..4).map(|_| b.pick(&t, LOCAL).unwrap()).collect();
        assert_eq!(picks, vec![0, 2, 0, 2]);
        let none = views(&[(1, 0, false, "a"), (0, 0, true, "b")]);
        assert_eq!(b.pick(&none, LOCAL), None);
    }

    #[test]
    fn least_connections_avoids_the_busy_target_and_rotates_ties() {
        let b = Balancer::new(LbPolicy::LeastConnections, 3);
        let t = views(&[(1, 5, true, "a"), (1, 0, true, "b"), (1, 0, true, "c")]);
        let picks: Vec<usize> = (0..4).map(|_| b.pick(&t, LOCAL).unwrap()).collect();
        assert!(!picks.contains(&0));
        assert!(picks.contains(&1) && picks.contains(&2), "{picks:?}");
        // Weight scales the load: 4 in flight on weight 4 equals 1 on weight 1.
        let t = views(&[(4, 4, true, "a"), (1, 2, true, "b")]);
        assert_eq!(b.pick(&t, LOCAL), Some(0));
    }

    #[test]
    fn p2c_prefers_the_lighter_of_two_and_never_picks_weight_zero() {
        let b = Balancer::new(LbPolicy::P2c, 2);
        let t = views(&[(1, 100, true, "a"), (1, 0, true, "b")]);
        for _ in 0..50 {
            assert_eq!(b.pick(&t, LOCAL), Some(1));
        }
        let t = views(&[(0, 0, true, "a"), (1, 9, true, "b"), (0, 0, true, "c")]);
        for _ in 0..20 {
            assert_eq!(b.pick(&t, LOCAL), Some(1));
        }
    }

    #[test]
    fn ip_hash_is_sticky_and_removing_a_target_moves_only_its_clients() {
        let b = Balancer::new(LbPolicy::IpHash, 3);
        let all = views(&[
            (1, 0, true, "10.0.0.1:80"),
            (1, 0, true, "10.0.0.2:80"),
            (1, 0, true, "10.0.0.3:80"),
        ]);
        let without_b = views(&[
            (1, 0, true, "10.0.0.1:80"),
            (1, 0, false, "10.0.0.2:80"),
            (1, 0, true, "10.0.0.3:80"),
        ]);
        let mut used = [0usize; 3];
        for last in 2..=20u8 {
            let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, last));
            let first = b.pick(&all, ip).unwrap();
            assert_eq!(b.pick(&all, ip), Some(first), "sticky");
            used[first] += 1;
            let after = b.pick(&without_b, ip).unwrap();
            if first != 1 {
                assert_eq!(after, first, "clients of other targets stay put");
            } else {
                assert_ne!(after, 1);
            }
        }
        assert!(
            used.iter().all(|&n| n > 0),
            "19 clients spread over 3 targets: {used:?}"
        );
        // IPv4-mapped IPv6 hashes like IPv4.
        let mapped: IpAddr = "::ffff:127.0.0.5".parse().unwrap();
        assert_eq!(
            b.pick(&all, mapped),
            b.pick(&all, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5)))
        );
    }
}
