//! Summary statistics and the Markdown result table.

use anyhow::{Result, bail};

use crate::contenders::Contender;

/// One library's measurements.
pub struct Row {
    library: &'static str,
    operation: &'static str,
    informational: bool,
    ours: bool,
    median_ms: f64,
    p90_ms: f64,
    bytes: usize,
    samples: usize,
}

impl Row {
    /// Summarises `times` (seconds per encode).
    pub fn new(c: &dyn Contender, mut times: Vec<f64>, bytes: usize, samples: usize) -> Row {
        times.sort_by(f64::total_cmp);
        Row {
            library: c.library(),
            operation: c.operation(),
            informational: c.informational(),
            ours: c.is_ours(),
            median_ms: nearest_rank(&times, 0.50) * 1e3,
            p90_ms: nearest_rank(&times, 0.90) * 1e3,
            bytes,
            samples,
        }
    }
}

/// Nearest-rank percentile of sorted values.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Prints the table and returns G1's ratio (ours over the fastest peer, medians).
pub fn print_table(rows: &[Row], warmups: usize, iterations: usize) -> Result<f64> {
    let Some(fastest) = rows
        .iter()
        .filter(|r| !r.ours && !r.informational)
        .map(|r| r.median_ms)
        .min_by(f64::total_cmp)
    else {
        bail!("no peer rows");
    };
    let Some(ours) = rows.iter().find(|r| r.ours) else {
        bail!("no ron-metrics row");
    };
    println!("{warmups} warm-ups + {iterations} iterations per library, round-robin");
    println!();
    println!(
        "| library | operation | median ms | p90 ms | ns/sample | bytes | samples | ratio_vs_fastest |"
    );
    println!("|---|---|--:|--:|--:|--:|--:|--:|");
    for r in rows {
        let note = if r.informational { " (info)" } else { "" };
        println!(
            "| {}{note} | {} | {:.3} | {:.3} | {:.0} | {} | {} | {:.2} |",
            r.library,
            r.operation,
            r.median_ms,
            r.p90_ms,
            r.median_ms * 1e6 / r.samples as f64,
            r.bytes,
            r.samples,
            r.median_ms / fastest
        );
    }
    println!();
    Ok(ours.median_ms / fastest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_picks_the_fifteenth_and_twenty_seventh_of_thirty() {
        let v: Vec<f64> = (1..=30).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 0.5), 15.0);
        assert_eq!(nearest_rank(&v, 0.9), 27.0);
    }
}
