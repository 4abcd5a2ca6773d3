//! mongoose-bench: the side-by-side one-hop benchmark of spec `shared/specs/mongoose.md` §8
//! (MNG-R36, test MNG-T31). It runs mongoose (latency recording off, then on),
//! crossbeam-channel and a bare rtrb ring one after another in one process, each as one
//! pinned publisher thread → one pinned busy-polling consumer thread, and prints latency
//! percentiles at fixed rates, max sustained throughput, and ratio lines.
//!
//! **Latency** is measured from the *intended* send time: event k is due at
//! `t0 + k / rate`; the publisher spins until then and, if it is late, sends at once and
//! skips nothing, so any stall shows up as latency (no coordinated omission). The consumer
//! records `now − intended` (corrected) and `now − send` (uncorrected) in HdrHistograms
//! sized 1 ns–60 s, 3 significant digits; warm-up events are counted but not recorded.
//!
//! **Clock.** Both threads read one shared `std::time::Instant` base (`CLOCK_MONOTONIC`
//! through the vDSO on Linux). Its cost per read is measured and printed in the header
//! (typically 15–30 ns with the TSC or kvm-clock clocksource; microseconds if the kernel
//! falls back to a syscall, which the printed clocksource shows). Every latency sample
//! includes one read on the consumer side.
//!
//! Not for: asserting timings. The exit status is non-zero only when some implementation
//! does not reconcile `sent = received + dropped`.

pub mod recorder;
pub mod report;
pub mod runners;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::runners::{Cores, Impl, Plan};

/// Default rates, msg/s.
pub const DEFAULT_RATES: [u64; 2] = [100_000, 1_000_000];
/// Default warm-up, s.
pub const DEFAULT_WARMUP_S: f64 = 5.0;
/// Default recorded duration, s.
pub const DEFAULT_DURATION_S: f64 = 10.0;
/// `--quick` warm-up, s.
pub const QUICK_WARMUP_S: f64 = 1.0;
/// `--quick` recorded duration, s.
pub const QUICK_DURATION_S: f64 = 2.0;
/// `--quick` rates, msg/s.
pub const QUICK_RATES: [u64; 1] = [100_000];
/// Default queue capacity.
pub const DEFAULT_CAPACITY: usize = 1024;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "mongoose-bench",
    about = "One-hop latency and throughput: mongoose vs crossbeam-channel vs raw rtrb (spec §8)"
)]
pub struct Args {
    /// Smoke run: 1 s warm-up, 2 s per run, 100000 msg/s only (explicit flags still win).
    #[arg(long)]
    pub quick: bool,
    /// Fixed rates, msg/s, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub rates: Option<Vec<u64>>,
    /// Warm-up before recording, s.
    #[arg(long)]
    pub warmup_s: Option<f64>,
    /// Recorded duration of each run (and of each throughput run), s.
    #[arg(long)]
    pub duration_s: Option<f64>,
    /// Queue capacity of every implementation.
    #[arg(long, default_value_t = DEFAULT_CAPACITY)]
    pub capacity: usize,
    /// Also write results.json and .hgrm files here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Do not pin the two threads.
    #[arg(long)]
    pub no_pin: bool,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Fixed rates.
    pub rates: Vec<u64>,
    /// Warm-up.
    pub warmup: Duration,
    /// Recorded duration.
    pub duration: Duration,
    /// Capacity.
    pub capacity: usize,
    /// Output directory.
    pub out: Option<PathBuf>,
    /// Cores.
    pub cores: Cores,
}

impl Args {
    /// Applies `--quick` defaults, then explicit flags; Err names the bad value.
    pub fn resolve(&self) -> Result<BenchConfig, String> {
        let (w, d, r) = if self.quick {
            (QUICK_WARMUP_S, QUICK_DURATION_S, QUICK_RATES.to_vec())
        } else {
            (DEFAULT_WARMUP_S, DEFAULT_DURATION_S, DEFAULT_RATES.to_vec())
        };
        let warmup = self.warmup_s.unwrap_or(w);
        let duration = self.duration_s.unwrap_or(d);
        let rates = self.rates.clone().unwrap_or(r);
        if !(warmup >= 0.0 && warmup.is_finite()) {
            return Err(format!("--warmup-s {warmup}: expected a number >= 0"));
        }
        if !(duration > 0.0 && duration.is_finite()) {
            return Err(format!("--duration-s {duration}: expected a number > 0"));
        }
        if rates.is_empty() || rates.contains(&0) {
            return Err(format!("--rates {rates:?}: expected positive msg/s values"));
        }
        if self.capacity == 0 || self.capacity > u32::MAX as usize {
            return Err(format!("--capacity {}: expected 1..2^32", self.capacity));
        }
        Ok(BenchConfig {
            rates,
            warmup: Duration::from_secs_f64(warmup),
            duration: Duration::from_secs_f64(duration),
            capacity: self.capacity,
            out: self.out.clone(),
            cores: Cores::detect(!self.no_pin),
        })
    }
}

/// Runs everything and prints the report; returns the process exit code (0, or 1 when
/// some run does not reconcile).
pub fn run(cfg: &BenchConfig) -> i32 {
    let env = report::Environment::probe(cfg);
    report::print_header(&env, cfg);
    let mut run_id = 0usize;
    let mut latency = Vec::new();
    for &rate in &cfg.rates {
        let plan = Plan {
            rate: Some(rate),
            warmup: cfg.warmup,
            duration: cfg.duration,
            capacity: cfg.capacity,
            cores: cfg.cores,
        };
        let mut rows = Vec::new();
        for which in Impl::ALL {
            run_id += 1;
            rows.push(runners::run(which, &plan, run_id));
        }
        report::print_rate(rate, cfg, &rows);
        latency.push((rate, rows));
    }
    let plan = Plan {
        rate: None,
        warmup: Duration::ZERO,
        duration: cfg.duration,
        capacity: cfg.capacity,
        cores: cfg.cores,
    };
    let mut tput = Vec::new();
    for which in Impl::ALL {
        run_id += 1;
        tput.push(runners::run(which, &plan, run_id));
    }
    report::print_throughput(&tput);
    let ratios = report::ratios(&latency, &tput);
    report::print_ratios(&ratios);
    let ok = latency
        .iter()
        .flat_map(|(_, r)| r.iter())
        .chain(tput.iter())
        .all(|r| r.reconciled());
    if let Some(dir) = &cfg.out {
        match report::write_out(dir, &env, cfg, &latency, &tput, &ratios) {
            Ok(p) => println!("# results written to {}", p.display()),
            Err(e) => eprintln!("mongoose-bench: writing {}: {e}", dir.display()),
        }
    }
    if ok {
        println!("# all implementations reconcile: sent = received + dropped");
        0
    } else {
        println!("# FAILED: some implementation does not reconcile sent = received + dropped");
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_defaults_yield_to_explicit_flags() {
        let a = Args::parse_from([
            "mongoose-bench",
            "--quick",
            "--duration-s",
            "1",
            "--rates",
            "50000,70000",
            "--no-pin",
        ]);
        let c = a.resolve().unwrap();
        assert_eq!(c.warmup, Duration::from_secs(1));
        assert_eq!(c.duration, Duration::from_secs(1));
        assert_eq!(c.rates, vec![50_000, 70_000]);
        assert_eq!(c.cores.publisher, None);
    }

    #[test]
    fn zero_rate_is_refused_with_the_value() {
        let a = Args::parse_from(["mongoose-bench", "--rates", "0"]);
        assert!(a.resolve().unwrap_err().contains("--rates [0]"));
    }
}
