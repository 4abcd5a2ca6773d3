//! CPU time and memory of processes from /proc (Linux): the server's pids and our own, so
//! the report can split the two shared cores between server and generator.

use serde_json::{Value, json};

/// utime + stime of `pid` in seconds (`self` for this process); None when unreadable.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".into(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    parse_cpu_ticks(&text).map(|t| t as f64 / clock_ticks())
}

/// Fields 14 (utime) and 15 (stime) of a stat line; the command (field 2) may contain
/// spaces and parentheses, so counting starts after its last ')'.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14 → index 11.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// (VmRSS, VmHWM) of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(key))?;
        line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()
    };
    Some((kb("VmRSS:")? * 1024, kb("VmHWM:")? * 1024))
}

/// CPU seconds of the servers (summed) and of this process.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSample {
    pub server: f64,
    pub generator: f64,
    pub at: Option<std::time::Instant>,
}

pub fn sample(server_pids: &[u32]) -> CpuSample {
    CpuSample {
        server: server_pids
            .iter()
            .filter_map(|p| cpu_seconds(Some(*p)))
            .sum(),
        generator: cpu_seconds(None).unwrap_or(0.0),
        at: Some(std::time::Instant::now()),
    }
}

/// CPU use between two samples, in cores and as shares of the machine.
pub fn split(a: &CpuSample, b: &CpuSample) -> Value {
    let wall = match (a.at, b.at) {
        (Some(x), Some(y)) => y.saturating_duration_since(x).as_secs_f64(),
        _ => 0.0,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let s = (b.server - a.server).max(0.0);
    let g = (b.generator - a.generator).max(0.0);
    let per = |x: f64| if wall > 0.0 { x / wall } else { 0.0 };
    json!({
        "wall_seconds": crate::metrics::round3(wall),
        "server_cpu_seconds": crate::metrics::round3(s),
        "generator_cpu_seconds": crate::metrics::round3(g),
        "server_cores": crate::metrics::round3(per(s)),
        "generator_cores": crate::metrics::round3(per(g)),
        "machine_cores": cores,
        "server_share_of_machine": crate::metrics::round3(per(s) / cores),
        "generator_share_of_machine": crate::metrics::round3(per(g) / cores),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let line = "1234 (my (odd) cmd) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 4 0 99 1000 200";
        assert_eq!(parse_cpu_ticks(line), Some(300));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        assert_eq!(parse_cpu_ticks("1 (x) S 1"), None);
        assert!(cpu_seconds(None).is_some());
        assert!(rss_bytes(std::process::id()).is_some_and(|(r, h)| r > 0 && h >= r));
    }
}
