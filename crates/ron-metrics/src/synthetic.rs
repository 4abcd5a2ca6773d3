//! Synthetic load (`RON_METRICS_LOAD=large`): 11,000 deterministic series in 20
//! `ron_synthetic_*` families, so operators and benchmarks can exercise a large registry
//! without a real workload. A background task bumps 1% of the counters every second.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::MetricsError;
use crate::handles::{Counter, Histogram};
use crate::metrics::DEFAULT_REQUEST_BUCKETS;
use crate::registry::Registry;

/// Counter families (`ron_synthetic_ops_{0..9}_total`).
pub const SYNTHETIC_COUNTER_FAMILIES: usize = 10;
/// Histogram families (`ron_synthetic_latency_{0..9}_seconds`).
pub const SYNTHETIC_HISTOGRAM_FAMILIES: usize = 10;
/// Shards per family (`s000`–`s099`).
pub const SYNTHETIC_SHARDS: usize = 100;
/// Kinds per shard in counter families (`k0`–`k9`).
pub const SYNTHETIC_KINDS: usize = 10;
/// How often the bumper runs.
pub const SYNTHETIC_BUMP_EVERY: Duration = Duration::from_secs(1);

/// Handles of the synthetic series.
pub(crate) struct Synthetic {
    counters: Arc<Vec<Counter>>,
    cursor: Arc<AtomicUsize>,
}

impl Synthetic {
    pub(crate) fn register(r: &Registry) -> Result<Synthetic, MetricsError> {
        let mut counters =
            Vec::with_capacity(SYNTHETIC_COUNTER_FAMILIES * SYNTHETIC_SHARDS * SYNTHETIC_KINDS);
        for f in 0..SYNTHETIC_COUNTER_FAMILIES {
            let vec = r.counter_vec(
                &format!("ron_synthetic_ops_{f}_total"),
                "Synthetic operations for load testing the exposer.",
                &["shard", "kind"],
            )?;
            for s in 0..SYNTHETIC_SHARDS {
                for k in 0..SYNTHETIC_KINDS {
                    let c = vec.with_label_values(&[&format!("s{s:03}"), &format!("k{k}")]);
                    c.inc_by(1 + ((f * 7919 + s * 104_729 + k * 31) % 100_000) as u64);
                    counters.push(c);
                }
            }
        }
        for f in 0..SYNTHETIC_HISTOGRAM_FAMILIES {
            let vec = r.histogram_vec(
                &format!("ron_synthetic_latency_{f}_seconds"),
                "Synthetic latencies for load testing the exposer.",
                &["shard"],
                &DEFAULT_REQUEST_BUCKETS,
            )?;
            for s in 0..SYNTHETIC_SHARDS {
                let h: Histogram = vec.with_label_values(&[&format!("s{s:03}")]);
                for i in 0..(1 + (f + s) % 7) {
                    h.observe(0.001 * ((f * 13 + s * 3 + i * 17) % 2000) as f64);
                }
            }
        }
        Ok(Synthetic {
            counters: Arc::new(counters),
            cursor: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Bumps the next 1% of counters every second, for as long as the runtime lives.
    pub(crate) fn spawn_bumper(&self) {
        let counters = self.counters.clone();
        let cursor = self.cursor.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SYNTHETIC_BUMP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let n = counters.len();
                let step = n / 100;
                let start = cursor.fetch_add(step, Ordering::Relaxed);
                for i in 0..step {
                    counters[(start + i) % n].inc();
                }
            }
        });
    }
}
