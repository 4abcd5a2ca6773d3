//! The large-load data set of the ron-metrics spec (§4.8), as plain values, so every
//! library is fed exactly the same families, label values and observations.
//!
//! The formulas are the ones `ron_metrics`' synthetic load uses; `main` checks that our
//! registry built from this module and `Metrics` with `synthetic_load(true)` print the same
//! `ron_synthetic_*` samples.

/// Base label values, used as constant labels by every library.
pub const BASE_LABELS: [(&str, &str); 4] = [
    ("service", "bench"),
    ("instance", "bench-1"),
    ("build_version", "0.1.0"),
    ("amnesia", "off"),
];
/// Help of the counter families.
pub const COUNTER_HELP: &str = "Synthetic operations for load testing the exposer.";
/// Help of the histogram families.
pub const HISTOGRAM_HELP: &str = "Synthetic latencies for load testing the exposer.";
/// Histogram buckets (the default request buckets).
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const FAMILIES: usize = 10;
const SHARDS: usize = 100;
const KINDS: usize = 10;

/// One counter family: `ron_synthetic_ops_<f>_total{shard,kind}`.
pub struct CounterFamily {
    /// Full sample name, `_total` included.
    pub name: String,
    /// `([shard, kind], value)` per series.
    pub series: Vec<([String; 2], u64)>,
}

/// One histogram family: `ron_synthetic_latency_<f>_seconds{shard}`.
pub struct HistogramFamily {
    /// Family name.
    pub name: String,
    /// `(shard, observations)` per series.
    pub series: Vec<(String, Vec<f64>)>,
}

/// 10 counter families of 1,000 series and 10 histogram families of 100 series.
pub struct DataSet {
    /// Counter families, in name order.
    pub counters: Vec<CounterFamily>,
    /// Histogram families, in name order.
    pub histograms: Vec<HistogramFamily>,
}

impl DataSet {
    /// Builds the data set with the spec's deterministic values.
    pub fn large() -> DataSet {
        let counters = (0..FAMILIES)
            .map(|f| CounterFamily {
                name: format!("ron_synthetic_ops_{f}_total"),
                series: (0..SHARDS)
                    .flat_map(|s| {
                        (0..KINDS).map(move |k| {
                            let v = 1 + ((f * 7919 + s * 104_729 + k * 31) % 100_000) as u64;
                            ([format!("s{s:03}"), format!("k{k}")], v)
                        })
                    })
                    .collect(),
            })
            .collect();
        let histograms = (0..FAMILIES)
            .map(|f| HistogramFamily {
                name: format!("ron_synthetic_latency_{f}_seconds"),
                series: (0..SHARDS)
                    .map(|s| {
                        let obs = (0..1 + (f + s) % 7)
                            .map(|i| 0.001 * ((f * 13 + s * 3 + i * 17) % 2000) as f64)
                            .collect();
                        (format!("s{s:03}"), obs)
                    })
                    .collect(),
            })
            .collect();
        DataSet {
            counters,
            histograms,
        }
    }

    /// Sample lines every correct encoding of the set has: one per counter series, and
    /// buckets plus `+Inf`, `_sum` and `_count` per histogram series.
    pub fn expected_samples(&self) -> usize {
        let c: usize = self.counters.iter().map(|f| f.series.len()).sum();
        let h: usize = self.histograms.iter().map(|f| f.series.len()).sum();
        c + h * (BUCKETS.len() + 3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_set_has_eleven_thousand_series_and_twenty_four_thousand_samples() {
        let d = DataSet::large();
        let series: usize = d.counters.iter().map(|f| f.series.len()).sum::<usize>()
            + d.histograms.iter().map(|f| f.series.len()).sum::<usize>();
        assert_eq!(series, 11_000);
        assert_eq!(d.expected_samples(), 24_000);
    }
}
