//! What a drill observed, printed as lines for people and as one JSON document for
//! scripts and tests.

use std::collections::BTreeMap;

use serde::Serialize;

/// Most samples kept for percentiles (older ones are still counted).
const MAX_SAMPLES: usize = 1_000_000;

/// Millisecond samples and their percentiles.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<f64>);

/// p50, p99 and max of a sample set, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Percentiles {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Samples {
    /// Adds one sample.
    pub fn push(&mut self, ms: f64) {
        if self.0.len() < MAX_SAMPLES {
            self.0.push(ms);
        }
    }

    /// Nearest-rank percentiles; `None` without samples.
    pub fn percentiles(&self) -> Option<Percentiles> {
        if self.0.is_empty() {
            return None;
        }
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Some(Percentiles {
            n: v.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: v[v.len() - 1],
        })
    }
}

/// The outcome of one drill.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    /// `slowloris`, `latency`, `reset` or `flood`.
    pub fault: String,
    /// The target URL.
    pub target: String,
    /// Connections per second asked for.
    pub rate_per_s: f64,
    /// Drill length.
    pub duration_s: f64,
    /// Connections attempted.
    pub attempts: u64,
    /// Ticks skipped because [`super::MAX_OPEN`] connections were already open.
    pub skipped: u64,
    /// Connections that could not be opened.
    pub connect_errors: u64,
    /// Per-connection outcomes (`closed_by_server`, `held_to_end`, `completed`, `reset`,
    /// `timeout`, `error`).
    pub outcomes: BTreeMap<String, u64>,
    /// HTTP statuses seen (`flood`, `latency`).
    pub statuses: BTreeMap<String, u64>,
    /// How long connections lived until the server closed them (`slowloris`, `latency`).
    pub lifetime_ms: Option<Percentiles>,
    /// Intended-send-to-response latency (`flood`, `latency`).
    pub latency_ms: Option<Percentiles>,
    /// One plain request after the drill: `HTTP <code>` or the error.
    pub after: String,
}

impl Report {
    /// Counts one outcome.
    pub fn outcome(&mut self, what: &str) {
        *self.outcomes.entry(what.to_string()).or_insert(0) += 1;
    }

    /// Counts one status.
    pub fn status(&mut self, code: u16) {
        *self.statuses.entry(code.to_string()).or_insert(0) += 1;
    }

    /// Human-readable lines.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "chaos {}: {} for {:.0} s at {}/s: {} connections ({} skipped, {} connect errors)",
            self.fault,
            self.target,
            self.duration_s,
            self.rate_per_s,
            self.attempts,
            self.skipped,
            self.connect_errors
        )];
        if !self.outcomes.is_empty() {
            out.push(format!("outcomes: {:?}", self.outcomes));
        }
        if !self.statuses.is_empty() {
            out.push(format!("statuses: {:?}", self.statuses));
        }
        if let Some(p) = self.lifetime_ms {
            out.push(format!(
                "connection lifetime ms: p50 {:.0} p99 {:.0} max {:.0} (n={})",
                p.p50, p.p99, p.max, p.n
            ));
        }
        if let Some(p) = self.latency_ms {
            out.push(format!(
                "latency ms: p50 {:.1} p99 {:.1} max {:.1} (n={})",
                p.p50, p.p99, p.max, p.n
            ));
        }
        out.push(format!("after the drill: {}", self.after));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut s = Samples::default();
        assert!(s.percentiles().is_none());
        for i in 1..=100 {
            s.push(f64::from(i));
        }
        let p = s.percentiles().unwrap();
        assert_eq!((p.n, p.p50, p.p99, p.max), (100, 50.0, 99.0, 100.0));
    }
}
