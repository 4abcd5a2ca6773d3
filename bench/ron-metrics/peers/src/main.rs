//! `ron-metrics-bench`: the side-by-side encode benchmark behind
//! `bench/ron-metrics/encode.sh` (spec MET-R26, goal G1).
//!
//! What it is for: building the spec's large-load data set (11,000 series, about 24,000
//! sample lines) with the same names, labels and values in ron-metrics, `prometheus` 0.14,
//! `prometheus-client` 0.25 and `metrics-exporter-prometheus` 0.18, checking that every
//! library prints exactly the same samples, and timing one full text exposition per library
//! (3 warm-ups, then 30 rounds in which the libraries take turns). It prints a Markdown
//! table with median, p90 and `ratio_vs_fastest` (median over the fastest peer's median);
//! G1 holds when ours is at most 1.00. With `--gate` a failed G1 exits 1.
//!
//! What it is not for: HTTP serving (see `healthz-vs-nginx.sh` and `latency.sh`) or
//! hot-path costs (the criterion benches in `crates/ron-metrics/benches`). It never asserts
//! timings in tests.
//!
//! Usage: `ron-metrics-bench encode [--gate] [--warmups N] [--iterations N]`.

mod contenders;
mod dataset;
mod report;
mod samples;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ron_metrics::{EnvSource, Format, Metrics};

use crate::contenders::{Contender, MetricsExporter, Ours, Prometheus, PrometheusClient};
use crate::dataset::{BASE_LABELS, DataSet};
use crate::report::{Row, print_table};

const DEFAULT_WARMUPS: usize = 3;
const DEFAULT_ITERATIONS: usize = 30;
/// G1: ours over the fastest peer, medians.
const G1_MAX_RATIO: f64 = 1.00;
const USAGE: &str = "usage: ron-metrics-bench encode [--gate] [--warmups N] [--iterations N]";

struct Args {
    gate: bool,
    warmups: usize,
    iterations: usize,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ron-metrics-bench: {e:#}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("ron-metrics-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args> {
    match it.next().as_deref() {
        Some("encode") => {}
        Some(other) => bail!("unknown command {other:?}, expected `encode`"),
        None => bail!("missing command, expected `encode`"),
    }
    let mut args = Args {
        gate: false,
        warmups: DEFAULT_WARMUPS,
        iterations: DEFAULT_ITERATIONS,
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--gate" => args.gate = true,
            "--warmups" | "--iterations" => {
                let v = it.next().with_context(|| format!("{a} needs a value"))?;
                let n: usize = v
                    .parse()
                    .with_context(|| format!("{a} = {v:?}: expected a whole number"))?;
                if a == "--warmups" {
                    args.warmups = n;
                } else if n == 0 {
                    bail!("--iterations = 0: expected at least 1");
                } else {
                    args.iterations = n;
                }
            }
            other => bail!("unknown option {other:?}"),
        }
    }
    Ok(args)
}

/// Returns whether G1 holds (always true without `--gate` semantics applied by the caller).
fn run(args: &Args) -> Result<bool> {
    let data = DataSet::large();
    let prometheus = Prometheus::build(&data)?;
    let encode_only = prometheus.encode_only();
    let contenders: Vec<Box<dyn Contender>> = vec![
        Box::new(Ours::build(&data, true)?),
        Box::new(Ours::build(&data, false)?),
        Box::new(prometheus),
        Box::new(encode_only),
        Box::new(PrometheusClient::build(&data)?),
        Box::new(MetricsExporter::build(&data)?),
    ];

    let expected = data.expected_samples();
    let reference = samples::parse(&contenders[0].encode()?)?;
    check_against_synthetic_load(&reference)?;
    for c in &contenders {
        let got = samples::parse(&c.encode()?)
            .with_context(|| format!("parsing {} output", c.library()))?;
        let diffs = samples::diff(&reference, &got);
        if got.len() != expected || !diffs.is_empty() {
            bail!(
                "{} ({}) printed {} samples, expected {expected}; first differences from ours: {}",
                c.library(),
                c.operation(),
                got.len(),
                diffs.join("; ")
            );
        }
    }
    println!(
        "data set: {expected} samples per library, identical across libraries (names, labels, values)"
    );

    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(args.iterations); contenders.len()];
    let mut bytes = vec![0usize; contenders.len()];
    for round in 0..args.warmups + args.iterations {
        for (i, c) in contenders.iter().enumerate() {
            let started = Instant::now();
            let out = c.encode()?;
            let elapsed = started.elapsed().as_secs_f64();
            bytes[i] = out.len();
            drop(out);
            if round >= args.warmups {
                times[i].push(elapsed);
            }
        }
    }

    let rows: Vec<Row> = contenders
        .iter()
        .zip(times)
        .zip(bytes)
        .map(|((c, t), b)| Row::new(c.as_ref(), t, b, expected))
        .collect();
    let g1 = print_table(&rows, args.warmups, args.iterations)?;
    let pass = g1 <= G1_MAX_RATIO;
    println!(
        "G1 (ours / fastest peer, medians) = {g1:.2} (target <= {G1_MAX_RATIO:.2}): {}",
        if pass { "PASS" } else { "FAIL" }
    );
    Ok(pass || !args.gate)
}

/// Our data set must be the one `RON_METRICS_LOAD=large` serves, sample for sample.
fn check_against_synthetic_load(ours: &samples::SampleSet) -> Result<()> {
    let [service, instance, build_version, _] = BASE_LABELS.map(|(_, v)| v);
    let metrics = Metrics::builder()
        .env(EnvSource::fixed::<&str, &str>([]))
        .service(service)
        .instance(instance)
        .build_version(build_version)
        .amnesia(false)
        .synthetic_load(true)
        .build()
        .context("building Metrics with synthetic load")?;
    let mut out = Vec::new();
    metrics.encode(None, Format::Text004, &mut out);
    let mut served = samples::parse(&out)?;
    served.retain(|k, _| k.starts_with("ron_synthetic_"));
    let diffs = samples::diff(&served, ours);
    if !diffs.is_empty() {
        bail!(
            "bench data set differs from RON_METRICS_LOAD=large: {}",
            diffs.join("; ")
        );
    }
    Ok(())
}
