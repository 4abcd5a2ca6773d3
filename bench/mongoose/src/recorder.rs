//! The payload, the consumer-side handler shared by every implementation, and what one run
//! produces.
//!
//! All three implementations run the same [`Recorder::on_sample`], so the only thing that
//! differs between them is the hop itself.

use std::time::Instant;

use hdrhistogram::Histogram;

/// Lowest recordable value, ns.
pub const HIST_LOW_NS: u64 = 1;
/// Highest recordable value, ns (60 s; larger values saturate).
pub const HIST_HIGH_NS: u64 = 60_000_000_000;
/// Significant digits of every histogram.
pub const HIST_SIGFIG: u8 = 3;
/// Throughput mode reads the clock once per this many events.
pub const STAMP_EVERY: u64 = 1024;
/// Quantiles reported, with their labels.
pub const QUANTILES: [(&str, f64); 5] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
];

/// The event: small and `Copy`. Times are ns since the run's shared [`Instant`] base.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// When the publisher was due to send it.
    pub intended_ns: u64,
    /// When it actually sent it.
    pub send_ns: u64,
    /// Index in the run, from 0.
    pub seq: u64,
}

impl mongoose::Event for Sample {}

/// A pre-sized latency histogram.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(HIST_LOW_NS, HIST_HIGH_NS, HIST_SIGFIG).expect("constant bounds")
}

/// What the consumer measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read the clock per event; record samples with `seq >= warmup_n`.
    Latency {
        /// Warm-up events, not recorded.
        warmup_n: u64,
    },
    /// No clock per event: stamp the time every [`STAMP_EVERY`] events.
    Throughput,
}

/// The handler every implementation runs on its consumer thread.
pub struct Recorder {
    base: Instant,
    mode: Mode,
    /// `now − intended` (corrected for coordinated omission).
    pub corrected: Histogram<u64>,
    /// `now − send`.
    pub uncorrected: Histogram<u64>,
    /// Events received.
    pub received: u64,
    /// Throughput mode: ns since base of the last stamp.
    pub last_ns: u64,
    /// Throughput mode: events received at the last stamp.
    pub stamped: u64,
}

impl Recorder {
    /// A recorder timing against `base`.
    pub fn new(base: Instant, mode: Mode) -> Self {
        Recorder {
            base,
            mode,
            corrected: new_hist(),
            uncorrected: new_hist(),
            received: 0,
            last_ns: 0,
            stamped: 0,
        }
    }

    /// Handles one event.
    #[inline]
    pub fn on_sample(&mut self, s: &Sample) {
        self.received += 1;
        match self.mode {
            Mode::Latency { warmup_n } => {
                let now = self.base.elapsed().as_nanos() as u64;
                if s.seq >= warmup_n {
                    self.corrected
                        .saturating_record(now.saturating_sub(s.intended_ns).max(1));
                    self.uncorrected
                        .saturating_record(now.saturating_sub(s.send_ns).max(1));
                }
            }
            Mode::Throughput => {
                if self.received.is_multiple_of(STAMP_EVERY) {
                    self.last_ns = self.base.elapsed().as_nanos() as u64;
                    self.stamped = self.received;
                }
            }
        }
    }
}

/// Publisher-side counts of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Events offered.
    pub sent: u64,
    /// Events dropped or rejected.
    pub dropped: u64,
    /// ns since base of the first send.
    pub first_ns: u64,
    /// ns since base of the last send.
    pub last_ns: u64,
}

/// One implementation's run, as reported.
pub struct RunResult {
    /// Implementation label.
    pub implementation: String,
    /// Target rate; None for the unpaced throughput run.
    pub rate: Option<u64>,
    /// Publisher counts.
    pub sent: Sent,
    /// The consumer's recorder.
    pub rec: Recorder,
    /// Extra counter cross-checks (mongoose: subscription counters).
    pub notes: Vec<String>,
}

impl RunResult {
    /// `sent = received + dropped`.
    pub fn reconciled(&self) -> bool {
        self.sent.sent == self.rec.received + self.sent.dropped
    }

    /// Achieved publish rate over the recorded part (msg/s).
    pub fn achieved_rate(&self) -> f64 {
        let span = self.sent.last_ns.saturating_sub(self.sent.first_ns).max(1) as f64;
        self.sent.sent.saturating_sub(1) as f64 * 1e9 / span
    }

    /// Throughput run: events received per second, from the first send to the consumer's
    /// last stamp (at most [`STAMP_EVERY`] events before the end).
    pub fn throughput(&self) -> f64 {
        let span = self.rec.last_ns.saturating_sub(self.sent.first_ns).max(1) as f64;
        self.rec.stamped as f64 * 1e9 / span
    }

    /// Quantile of the corrected histogram, ns.
    pub fn q(&self, q: f64) -> u64 {
        self.rec.corrected.value_at_quantile(q)
    }
}

/// A percentile distribution in the HdrHistogram `.hgrm` text layout.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = format!(
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    for v in h.iter_quantiles(5) {
        let p = v.quantile_iterated_to();
        let inv = if p < 1.0 {
            format!("{:14.2}", 1.0 / (1.0 - p))
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{:12.3} {:2.12} {:10} {}\n",
            v.value_iterated_to() as f64,
            p,
            v.count_since_last_iteration(),
            inv
        ));
    }
    out.push_str(&format!(
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]\n#[Max     = {:12.3}, Total count    = {:12}]\n",
        h.mean(),
        h.stdev(),
        h.max() as f64,
        h.len()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_samples_are_counted_but_not_recorded() {
        let mut r = Recorder::new(Instant::now(), Mode::Latency { warmup_n: 2 });
        for seq in 0..5 {
            r.on_sample(&Sample {
                seq,
                ..Default::default()
            });
        }
        assert_eq!(r.received, 5);
        assert_eq!(r.corrected.len(), 3);
        assert_eq!(r.uncorrected.len(), 3);
    }

    #[test]
    fn throughput_mode_stamps_every_block_of_events() {
        let mut r = Recorder::new(Instant::now(), Mode::Throughput);
        std::thread::sleep(std::time::Duration::from_millis(1));
        for _ in 0..STAMP_EVERY + 3 {
            r.on_sample(&Sample::default());
        }
        assert_eq!(r.stamped, STAMP_EVERY);
        assert!(r.last_ns > 0);
        assert_eq!(r.corrected.len(), 0);
    }
}
