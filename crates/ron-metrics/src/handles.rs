//! Public handles: cheap `Clone + Send + Sync` wrappers over families and their children.
//! Recording through a handle is a few relaxed atomic operations, with no lock and no
//! allocation; hosts cache child handles on hot paths.

use std::sync::Arc;
use std::time::Instant;

use crate::family::{
    CounterCell, Family, FloatCounterCell, GaugeCell, HistogramCell, IntGaugeCell,
};

/// An integer counter.
#[derive(Clone)]
pub struct Counter(pub(crate) Arc<CounterCell>);
/// A family of integer counters keyed by label values.
#[derive(Clone)]
pub struct CounterVec(pub(crate) Arc<Family<CounterCell>>);
/// A float counter.
#[derive(Clone)]
pub struct FloatCounter(pub(crate) Arc<FloatCounterCell>);
/// A family of float counters.
#[derive(Clone)]
pub struct FloatCounterVec(pub(crate) Arc<Family<FloatCounterCell>>);
/// A float gauge.
#[derive(Clone)]
pub struct Gauge(pub(crate) Arc<GaugeCell>);
/// A family of float gauges.
#[derive(Clone)]
pub struct GaugeVec(pub(crate) Arc<Family<GaugeCell>>);
/// An integer gauge.
#[derive(Clone)]
pub struct IntGauge(pub(crate) Arc<IntGaugeCell>);
/// A family of integer gauges.
#[derive(Clone)]
pub struct IntGaugeVec(pub(crate) Arc<Family<IntGaugeCell>>);
/// A histogram.
#[derive(Clone)]
pub struct Histogram(pub(crate) Arc<HistogramCell>);
/// A family of histograms.
#[derive(Clone)]
pub struct HistogramVec(pub(crate) Arc<Family<HistogramCell>>);

/// Observes the elapsed time into its histogram when dropped (or on `observe_duration`).
pub struct HistogramTimer {
    histogram: Histogram,
    start: Instant,
    done: bool,
}

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.inc_by(1);
    }
    /// Adds `v`.
    pub fn inc_by(&self, v: u64) {
        self.0.inc_by(v);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

impl FloatCounter {
    /// Adds `v`; negative and NaN increments are ignored.
    pub fn inc_by(&self, v: f64) {
        self.0.inc_by(v);
    }
    /// The current value.
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.set(v);
    }
    /// Adds `v`.
    pub fn add(&self, v: f64) {
        self.0.add(v);
    }
    /// Subtracts `v`.
    pub fn sub(&self, v: f64) {
        self.0.add(-v);
    }
    /// The current value.
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

impl IntGauge {
    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.set(v);
    }
    /// Adds one.
    pub fn inc(&self) {
        self.0.add(1);
    }
    /// Subtracts one.
    pub fn dec(&self) {
        self.0.add(-1);
    }
    /// Adds `v` (may be negative).
    pub fn add(&self, v: i64) {
        self.0.add(v);
    }
    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.get()
    }
}

impl Histogram {
    /// Records one observation; NaN is ignored.
    pub fn observe(&self, v: f64) {
        self.0.observe(v);
    }
    /// Starts a timer that observes seconds elapsed when dropped.
    pub fn start_timer(&self) -> HistogramTimer {
        HistogramTimer {
            histogram: self.clone(),
            start: Instant::now(),
            done: false,
        }
    }
    /// Observations so far.
    pub fn get_sample_count(&self) -> u64 {
        self.0.count()
    }
    /// Sum of observations so far.
    pub fn get_sample_sum(&self) -> f64 {
        self.0.sum()
    }
}

impl HistogramTimer {
    /// Observes now and returns the seconds recorded.
    pub fn observe_duration(mut self) -> f64 {
        self.finish()
    }

    fn finish(&mut self) -> f64 {
        let secs = self.start.elapsed().as_secs_f64();
        if !self.done {
            self.done = true;
            self.histogram.observe(secs);
        }
        secs
    }
}

impl Drop for HistogramTimer {
    fn drop(&mut self) {
        self.finish();
    }
}

macro_rules! vec_lookup {
    ($vec:ident, $child:ident, $cell:ty) => {
        impl $vec {
            pub(crate) fn family(&self) -> &Family<$cell> {
                &self.0
            }

            /// The child for these label values (in declaration order), created on first
            /// use. Past the series cap, or with the wrong number of values, the family's
            /// `__overflow__` child.
            pub fn with_label_values(&self, values: &[&str]) -> $child {
                $child(self.0.child(values))
            }
            /// Series in the family, the overflow child included.
            pub fn series_count(&self) -> usize {
                self.0.len()
            }
        }
    };
}

vec_lookup!(CounterVec, Counter, CounterCell);
vec_lookup!(FloatCounterVec, FloatCounter, FloatCounterCell);
vec_lookup!(GaugeVec, Gauge, GaugeCell);
vec_lookup!(IntGaugeVec, IntGauge, IntGaugeCell);
vec_lookup!(HistogramVec, Histogram, HistogramCell);
