//! Sliding windows over finished requests, read at scrape time: the per-route duration
//! quantiles of `sentinel_request_duration_quantile_seconds` (60 s as 6 slices of 10 s,
//! log-bucketed) and the 5xx share of `sentinel_error_rate` (60 slots of 1 s).
//!
//! What it is for: approximate, bounded-memory answers to "what were p50..p99 and the
//! error share over the last minute". What it is not for: exact percentiles (the
//! histogram `sentinel_request_duration_seconds` serves PromQL).
//!
//! Recording is lock-free (atomics only) because it runs once per request. A slice or slot
//! is reset by the first recorder that sees it belongs to an older period; a recorder racing
//! with that reset can lose its count. That undercounts at most a few requests at a period
//! boundary, which an approximate summary tolerates better than a lock on the hot path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use parking_lot::RwLock;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType, Quantile, Summary};

/// Relative error bound of a reported quantile (spec: ≤ 5 %).
const ALPHA: f64 = 0.05;
/// Bucket growth factor: a value reported as the bucket's midpoint `2γ^i/(γ+1)` is within
/// `(γ-1)/(γ+1)` = `ALPHA` of any value in `(γ^(i-1), γ^i]`.
const GAMMA: f64 = (1.0 + ALPHA) / (1.0 - ALPHA);
/// Smallest duration resolved (1 µs); anything faster lands in bucket 0.
const MIN_SECS: f64 = 1e-6;
/// Buckets from 1 µs to a little over an hour (ln(3.6e9) / ln γ ≈ 220); longer durations
/// land in the last bucket.
const BUCKETS: usize = 224;
/// Slices in the quantile window and their length.
const SLICES: u64 = 6;
const SLICE_SECS: u64 = 10;
/// Slots of the error-rate window (1 s each).
const SLOTS: u64 = 60;
/// Marks a slice or slot that has never been used.
const EMPTY: u64 = u64::MAX;

/// The quantiles exported.
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.95, 0.99];

/// Name of the summary family.
pub const SUMMARY_NAME: &str = "sentinel_request_duration_quantile_seconds";

/// Whole seconds on a monotonic clock (wall-clock steps must not reorder slices).
fn now_secs() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs()
}

fn bucket_of(secs: f64) -> usize {
    if secs.is_nan() || secs <= MIN_SECS {
        return 0;
    }
    let i = ((secs / MIN_SECS).ln() / GAMMA.ln()).ceil();
    (i as usize).min(BUCKETS - 1)
}

fn bucket_value(i: usize) -> f64 {
    MIN_SECS * 2.0 * GAMMA.powi(i as i32) / (GAMMA + 1.0)
}

struct Slice {
    period: AtomicU64,
    counts: Box<[AtomicU32]>,
}

impl Slice {
    fn new() -> Slice {
        Slice {
            period: AtomicU64::new(EMPTY),
            counts: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
        }
    }
}

/// One route's durations.
struct RouteWindow {
    slices: Box<[Slice]>,
    /// Cumulative count and sum (nanoseconds) for `_count` / `_sum`.
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl RouteWindow {
    fn new() -> RouteWindow {
        RouteWindow {
            slices: (0..SLICES).map(|_| Slice::new()).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn record(&self, secs: f64, now: u64) {
        let period = now / SLICE_SECS;
        let slice = &self.slices[(period % SLICES) as usize];
        let seen = slice.period.load(Ordering::Acquire);
        if seen != period
            && slice
                .period
                .compare_exchange(seen, period, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            for c in slice.counts.iter() {
                c.store(0, Ordering::Relaxed);
            }
        }
        slice.counts[bucket_of(secs)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = if secs.is_finite() && secs > 0.0 {
            (secs * 1e9) as u64
        } else {
            0
        };
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The quantiles over the slices of the last 60 s; NaN when none were recorded (the
    /// Prometheus convention for an empty summary).
    fn quantiles(&self, now: u64) -> [f64; 4] {
        let period = now / SLICE_SECS;
        let mut merged = vec![0u64; BUCKETS];
        for s in self.slices.iter() {
            let p = s.period.load(Ordering::Acquire);
            if p == EMPTY || p > period || period - p >= SLICES {
                continue;
            }
            for (m, c) in merged.iter_mut().zip(s.counts.iter()) {
                *m += u64::from(c.load(Ordering::Relaxed));
            }
        }
        quantiles_of(&merged)
    }
}

fn quantiles_of(counts: &[u64]) -> [f64; 4] {
    let total: u64 = counts.iter().sum();
    let mut out = [f64::NAN; 4];
    if total == 0 {
        return out;
    }
    for (o, q) in out.iter_mut().zip(QUANTILES) {
        // The smallest bucket whose cumulative count reaches rank ⌈q·n⌉ (nearest rank).
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut acc = 0;
        for (i, c) in counts.iter().enumerate() {
            acc += c;
            if acc >= rank {
                *o = bucket_value(i);
                break;
            }
        }
    }
    out
}

#[derive(Default)]
struct Slot {
    second: AtomicU64,
    total: AtomicU64,
    errors: AtomicU64,
}

/// The recent-request windows of the whole process.
pub struct Windows {
    routes: RwLock<HashMap<Box<str>, Arc<RouteWindow>>>,
    slots: Box<[Slot]>,
}

impl Default for Windows {
    fn default() -> Self {
        Windows {
            routes: RwLock::default(),
            slots: (0..SLOTS)
                .map(|_| Slot {
                    second: AtomicU64::new(EMPTY),
                    ..Slot::default()
                })
                .collect(),
        }
    }
}

impl Windows {
    /// Records one finished request.
    pub fn record(&self, route: &str, status: u16, secs: f64) {
        let now = now_secs();
        self.route(route).record(secs, now);
        let slot = &self.slots[(now % SLOTS) as usize];
        let seen = slot.second.load(Ordering::Acquire);
        if seen != now
            && slot
                .second
                .compare_exchange(seen, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            slot.total.store(0, Ordering::Relaxed);
            slot.errors.store(0, Ordering::Relaxed);
        }
        slot.total.fetch_add(1, Ordering::Relaxed);
        if (500..600).contains(&status) {
            slot.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Makes `route` appear in the summary before it sees traffic.
    pub fn prime(&self, route: &str) {
        self.route(route);
    }

    fn route(&self, route: &str) -> Arc<RouteWindow> {
        if let Some(w) = self.routes.read().get(route) {
            return w.clone();
        }
        self.routes
            .write()
            .entry(Box::from(route))
            .or_insert_with(|| Arc::new(RouteWindow::new()))
            .clone()
    }

    /// 5xx responses / all responses over the last 60 s; 0 when idle.
    pub fn error_rate(&self) -> f64 {
        let now = now_secs();
        let (mut total, mut errors) = (0u64, 0u64);
        for s in self.slots.iter() {
            let sec = s.second.load(Ordering::Acquire);
            if sec == EMPTY || sec > now || now - sec >= SLOTS {
                continue;
            }
            total += s.total.load(Ordering::Relaxed);
            errors += s.errors.load(Ordering::Relaxed);
        }
        if total == 0 {
            0.0
        } else {
            (errors.min(total)) as f64 / total as f64
        }
    }
}

/// The `prometheus`-crate collector rendering the summary (ron-metrics has no summary
/// type; it renders foreign collectors with the base labels first).
pub struct SummaryCollector {
    desc: Vec<Desc>,
    windows: Arc<Windows>,
}

impl SummaryCollector {
    /// A collector over `windows`.
    pub fn new(windows: Arc<Windows>) -> prometheus::Result<SummaryCollector> {
        let desc = Desc::new(
            SUMMARY_NAME.to_owned(),
            "Request durations over a sliding 60 s window, by route; _sum and _count are cumulative."
                .to_owned(),
            vec!["route".to_owned()],
            HashMap::new(),
        )?;
        Ok(SummaryCollector {
            desc: vec![desc],
            windows,
        })
    }
}

impl Collector for SummaryCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.desc.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let now = now_secs();
        let mut routes: Vec<(Box<str>, Arc<RouteWindow>)> = self
            .windows
            .routes
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        routes.sort_by(|a, b| a.0.cmp(&b.0));
        let metrics = routes
            .into_iter()
            .map(|(route, w)| {
                let mut label = LabelPair::default();
                label.set_name("route".to_owned());
                label.set_value(route.into());
                let quantiles = QUANTILES
                    .iter()
                    .zip(w.quantiles(now))
                    .map(|(q, v)| {
                        let mut qq = Quantile::default();
                        qq.set_quantile(*q);
                        qq.set_value(v);
                        qq
                    })
                    .collect();
                let mut s = Summary::default();
                s.set_quantile(quantiles);
                s.set_sample_count(w.count.load(Ordering::Relaxed));
                s.set_sample_sum(w.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9);
                let mut m = Metric::from_label(vec![label]);
                m.set_summary(s);
                m
            })
            .collect();
        let mut mf = MetricFamily::default();
        mf.set_name(SUMMARY_NAME.to_owned());
        mf.set_help(self.desc[0].help.clone());
        mf.set_field_type(MetricType::SUMMARY);
        mf.set_metric(metrics);
        vec![mf]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_midpoints_stay_within_five_percent() {
        let mut v = 2e-6;
        while v < 3000.0 {
            let got = bucket_value(bucket_of(v));
            assert!((got - v).abs() / v <= ALPHA + 1e-9, "{v} reported as {got}");
            v *= 1.37;
        }
        // Out-of-range input does not panic and is clamped.
        assert_eq!(bucket_of(f64::NAN), 0);
        assert_eq!(bucket_of(-1.0), 0);
        assert_eq!(bucket_of(1e12), BUCKETS - 1);
    }

    #[test]
    fn quantiles_follow_the_nearest_rank() {
        let w = RouteWindow::new();
        for i in 1..=100 {
            w.record(f64::from(i) / 1000.0, 5);
        }
        let [p50, p90, p95, p99] = w.quantiles(5);
        for (got, want) in [(p50, 0.050), (p90, 0.090), (p95, 0.095), (p99, 0.099)] {
            assert!((got - want).abs() / want <= ALPHA, "{got} vs {want}");
        }
        assert_eq!(w.count.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn old_slices_leave_the_window_but_sum_and_count_stay() {
        let w = RouteWindow::new();
        w.record(1.0, 0);
        assert!((w.quantiles(59)[0] - 1.0).abs() < ALPHA);
        assert!(w.quantiles(60)[0].is_nan(), "slice 0 is older than 60 s");
        // Reusing the slice position for a new period drops its old counts.
        w.record(0.01, 60);
        assert!((w.quantiles(60)[3] - 0.01).abs() / 0.01 <= ALPHA);
        assert_eq!(w.count.load(Ordering::Relaxed), 2);
        assert_eq!(w.sum_nanos.load(Ordering::Relaxed), 1_010_000_000);
    }

    #[test]
    fn error_rate_counts_5xx_only_and_is_zero_when_idle() {
        let w = Windows::default();
        assert_eq!(w.error_rate(), 0.0);
        for s in [200, 404, 502, 503] {
            w.record("r", s, 0.001);
        }
        assert_eq!(w.error_rate(), 0.5);
    }
}
