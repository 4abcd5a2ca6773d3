//! Printing and the JSON / `.hgrm` output: the environment header, one table per rate, the
//! throughput table and the ratio lines.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::BenchConfig;
use crate::recorder::{QUANTILES, RunResult, hgrm};
use crate::runners::Impl;

/// Clock reads timed for the header's cost figure.
const CLOCK_PROBE_READS: u32 = 1_000_000;

/// The machine the numbers come from.
#[derive(Debug, Clone)]
pub struct Environment {
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Available parallelism.
    pub vcpus: usize,
    /// Kernel release.
    pub kernel: String,
    /// Current clocksource.
    pub clocksource: String,
    /// cpu0 scaling governor.
    pub governor: String,
    /// Mean cost of one `Instant::now()`, ns.
    pub clock_ns: f64,
    /// 1-minute load average at start.
    pub loadavg: String,
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

impl Environment {
    /// Reads /proc and /sys, and times the clock.
    pub fn probe(_cfg: &BenchConfig) -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let t = Instant::now();
        let mut sink = t;
        for _ in 0..CLOCK_PROBE_READS {
            sink = std::hint::black_box(Instant::now());
        }
        let clock_ns =
            sink.duration_since(t).as_nanos() as f64 / f64::from(CLOCK_PROBE_READS).max(1.0);
        Environment {
            cpu_model,
            vcpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel: read_trim("/proc/sys/kernel/osrelease"),
            clocksource: read_trim(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            ),
            governor: read_trim("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
            clock_ns,
            loadavg: read_trim("/proc/loadavg"),
        }
    }

    fn json(&self) -> Value {
        json!({
            "cpu_model": self.cpu_model, "vcpus": self.vcpus, "kernel": self.kernel,
            "clocksource": self.clocksource, "governor": self.governor,
            "clock_read_ns": self.clock_ns, "loadavg": self.loadavg,
        })
    }
}

fn core_text(c: Option<usize>) -> String {
    c.map_or_else(|| "unpinned".into(), |c| format!("core {c}"))
}

/// The header.
pub fn print_header(env: &Environment, cfg: &BenchConfig) {
    println!("# mongoose-bench: one hop, publisher thread -> consumer thread (spec §8)");
    println!(
        "# cpu: {} ({} vCPU); kernel {}; clocksource {}; governor {}",
        env.cpu_model, env.vcpus, env.kernel, env.clocksource, env.governor
    );
    println!(
        "# clock: std::time::Instant (CLOCK_MONOTONIC), one shared base; {:.1} ns per read",
        env.clock_ns
    );
    println!(
        "# cores: publisher {}, consumer {}; main thread asleep in join",
        core_text(cfg.cores.publisher),
        core_text(cfg.cores.consumer)
    );
    println!(
        "# rates {:?} msg/s; warm-up {:.1} s; recorded {:.1} s; capacity {}; load average {}",
        cfg.rates,
        cfg.warmup.as_secs_f64(),
        cfg.duration.as_secs_f64(),
        cfg.capacity,
        env.loadavg
    );
    println!(
        "# mongoose: memory single-producer feed, block maxWaitMs 1000 then fail-fast, busy-spin group, maxBatch {}; crossbeam: bounded + try_recv; rtrb: bare ring",
        crate::runners::MAX_BATCH
    );
}

fn recon(r: &RunResult) -> String {
    format!(
        "sent {} = received {} + dropped {}: {}",
        r.sent.sent,
        r.rec.received,
        r.sent.dropped,
        if r.reconciled() { "ok" } else { "MISMATCH" }
    )
}

fn quantile_cells(h: &hdrhistogram::Histogram<u64>) -> String {
    let mut s = String::new();
    for (_, q) in QUANTILES {
        s.push_str(&format!(" {:>9}", h.value_at_quantile(q)));
    }
    s.push_str(&format!(" {:>11}", h.max()));
    s
}

/// One rate's table (corrected, then uncorrected) and its reconciliation lines.
pub fn print_rate(rate: u64, cfg: &BenchConfig, rows: &[RunResult]) {
    println!();
    println!(
        "## rate {rate} msg/s: latency ns from the intended send time (warm-up {:.1} s not recorded)",
        cfg.warmup.as_secs_f64()
    );
    let head: String = QUANTILES.iter().map(|(l, _)| format!(" {l:>9}")).collect();
    println!(
        "{:<14} {:>12} {:>10}{head} {:>11}",
        "impl", "achieved/s", "samples", "max"
    );
    for r in rows {
        println!(
            "{:<14} {:>12.0} {:>10}{}",
            r.implementation,
            r.achieved_rate(),
            r.rec.corrected.len(),
            quantile_cells(&r.rec.corrected)
        );
    }
    println!("# uncorrected (now - actual send):");
    for r in rows {
        println!(
            "{:<14} {:>12} {:>10}{}",
            r.implementation,
            "",
            r.rec.uncorrected.len(),
            quantile_cells(&r.rec.uncorrected)
        );
    }
    for r in rows {
        println!("{} rate {rate}: {}", r.implementation, recon(r));
        for n in &r.notes {
            println!("#   {n}");
        }
    }
}

/// The unpaced throughput table.
pub fn print_throughput(rows: &[RunResult]) {
    println!();
    println!("## max sustained throughput (unpaced, lossless: a full queue is retried)");
    println!("{:<14} {:>14} {:>12}", "impl", "msg/s", "dropped");
    for r in rows {
        println!(
            "{:<14} {:>14.0} {:>12}",
            r.implementation,
            r.throughput(),
            r.sent.dropped
        );
    }
    for r in rows {
        println!("{} throughput: {}", r.implementation, recon(r));
        for n in &r.notes {
            println!("#   {n}");
        }
    }
}

/// mongoose (latency recording off) against one peer.
#[derive(Debug, Clone)]
pub struct Ratio {
    /// `crossbeam` or `rtrb`.
    pub peer: &'static str,
    /// Per rate: (rate, p50, p99, p99.9) ratios.
    pub per_rate: Vec<(u64, f64, f64, f64)>,
    /// p99 ratio at the highest rate.
    pub latency_p99: f64,
    /// Throughput ratio.
    pub throughput: f64,
}

fn div(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

fn find(rows: &[RunResult], which: Impl) -> Option<&RunResult> {
    rows.iter().find(|r| r.implementation == which.label())
}

/// Ratios of mongoose to crossbeam and to rtrb.
pub fn ratios(latency: &[(u64, Vec<RunResult>)], tput: &[RunResult]) -> Vec<Ratio> {
    let mut out = Vec::new();
    for peer in [Impl::Crossbeam, Impl::Rtrb] {
        let mut per_rate = Vec::new();
        for (rate, rows) in latency {
            if let (Some(m), Some(p)) = (find(rows, Impl::Mongoose), find(rows, peer)) {
                let r = |q: f64| div(m.q(q) as f64, p.q(q) as f64);
                per_rate.push((*rate, r(0.5), r(0.99), r(0.999)));
            }
        }
        let latency_p99 = latency
            .iter()
            .max_by_key(|(rate, _)| *rate)
            .and_then(|(_, rows)| Some((find(rows, Impl::Mongoose)?, find(rows, peer)?)))
            .map_or(f64::NAN, |(m, p)| div(m.q(0.99) as f64, p.q(0.99) as f64));
        let throughput = match (find(tput, Impl::Mongoose), find(tput, peer)) {
            (Some(m), Some(p)) => div(m.throughput(), p.throughput()),
            _ => f64::NAN,
        };
        out.push(Ratio {
            peer: peer.label(),
            per_rate,
            latency_p99,
            throughput,
        });
    }
    out
}

/// The ratio lines: per rate, then the summary `ratio mongoose/PEER latency_p99 X throughput Y`
/// (latency at the highest rate; lower latency and higher throughput favour mongoose).
pub fn print_ratios(ratios: &[Ratio]) {
    println!();
    println!("## ratios (mongoose with latency recording off / peer)");
    for r in ratios {
        for (rate, p50, p99, p999) in &r.per_rate {
            println!(
                "ratio mongoose/{} rate={rate} p50={p50:.2} p99={p99:.2} p99.9={p999:.2}",
                r.peer
            );
        }
    }
    for r in ratios {
        println!(
            "ratio mongoose/{} latency_p99 {:.2} throughput {:.2}",
            r.peer, r.latency_p99, r.throughput
        );
    }
}

fn run_json(r: &RunResult) -> Value {
    let qs = |h: &hdrhistogram::Histogram<u64>| {
        let mut m = serde_json::Map::new();
        for (l, q) in QUANTILES {
            m.insert(l.into(), json!(h.value_at_quantile(q)));
        }
        m.insert("max".into(), json!(h.max()));
        m.insert("count".into(), json!(h.len()));
        Value::Object(m)
    };
    json!({
        "implementation": r.implementation,
        "target_rate": r.rate,
        "achieved_rate": if r.rate.is_some() { r.achieved_rate() } else { r.throughput() },
        "sent": r.sent.sent, "received": r.rec.received, "dropped": r.sent.dropped,
        "reconciled": r.reconciled(),
        "corrected_ns": qs(&r.rec.corrected),
        "uncorrected_ns": qs(&r.rec.uncorrected),
        "notes": r.notes,
    })
}

/// Writes `results.json` and one `.hgrm` per latency run and histogram into `dir`.
pub fn write_out(
    dir: &Path,
    env: &Environment,
    cfg: &BenchConfig,
    latency: &[(u64, Vec<RunResult>)],
    tput: &[RunResult],
    ratios: &[Ratio],
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    for (rate, rows) in latency {
        for r in rows {
            for (kind, h) in [
                ("corrected", &r.rec.corrected),
                ("uncorrected", &r.rec.uncorrected),
            ] {
                let name = format!("{}-{rate}-{kind}.hgrm", r.implementation.replace('+', "-"));
                std::fs::write(dir.join(name), hgrm(h))?;
            }
        }
    }
    let doc = json!({
        "unix_time": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "environment": env.json(),
        "config": {
            "rates": cfg.rates, "warmup_s": cfg.warmup.as_secs_f64(),
            "duration_s": cfg.duration.as_secs_f64(), "capacity": cfg.capacity,
            "publisher_core": cfg.cores.publisher, "consumer_core": cfg.cores.consumer,
        },
        "latency": latency.iter().map(|(rate, rows)| json!({
            "rate": rate, "runs": rows.iter().map(run_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "throughput": tput.iter().map(run_json).collect::<Vec<_>>(),
        "ratios": ratios.iter().map(|r| json!({
            "peer": r.peer, "latency_p99": r.latency_p99, "throughput": r.throughput,
            "per_rate": r.per_rate.iter().map(|(rate, a, b, c)| json!({
                "rate": rate, "p50": a, "p99": b, "p99.9": c,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let path = dir.join("results.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&doc).map_err(std::io::Error::other)?,
    )?;
    Ok(path)
}
