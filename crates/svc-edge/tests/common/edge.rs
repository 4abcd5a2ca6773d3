//! Starting the real svc-edge binary for a test: a TOML config written to a temp dir,
//! both listeners on `127.0.0.1:0` (ports read from the `listening` lines), and small
//! readers for `/metrics` samples and stdout log lines.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use test_support::{Service, command, get, json_field};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_svc-edge");

/// A running svc-edge.
pub struct Edge {
    /// The process (killed on drop).
    pub svc: Service,
    /// API listener.
    pub api: SocketAddr,
    /// Metrics listener.
    pub metrics: SocketAddr,
    /// Stdout lines read so far (start-up lines first).
    pub log: Vec<String>,
}

impl Edge {
    /// Writes `toml` (after the listener addresses and `access_log="all"`) to
    /// `dir/svc-edge.toml` and starts the binary there with `--config`, plus `env`.
    pub fn start(dir: &Path, toml: &str, env: &[(&str, &str)]) -> Edge {
        let file = dir.join("svc-edge.toml");
        let body = format!(
            "bind_addr = \"127.0.0.1:0\"\nmetrics_addr = \"127.0.0.1:0\"\naccess_log = \"all\"\n{toml}"
        );
        std::fs::write(&file, body).unwrap();
        let mut cmd = command(Path::new(BIN), env);
        cmd.current_dir(dir).arg("--config").arg(&file);
        Edge::launch(cmd)
    }

    /// Starts the binary in `cwd` configured by `env` alone (no file), listeners on
    /// `127.0.0.1:0`.
    pub fn start_env(cwd: &Path, env: &[(&str, &str)]) -> Edge {
        let mut all = vec![
            ("SVC_EDGE_BIND_ADDR", "127.0.0.1:0"),
            ("SVC_EDGE_METRICS_ADDR", "127.0.0.1:0"),
            ("SVC_EDGE_ACCESS_LOG", "all"),
        ];
        all.extend_from_slice(env);
        let mut cmd = command(Path::new(BIN), &all);
        cmd.current_dir(cwd);
        Edge::launch(cmd)
    }

    fn launch(cmd: std::process::Command) -> Edge {
        let (svc, lines) = Service::start(cmd, "listening", 2);
        let addr = |which: &str| -> SocketAddr {
            lines
                .iter()
                .find(|l| l.contains(&format!("\"listener\":\"{which}\"")))
                .and_then(|l| json_field(l, "addr"))
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no {which} listening line"))
        };
        Edge {
            api: addr("api"),
            metrics: addr("metrics"),
            svc,
            log: lines,
        }
    }

    /// Waits up to 5 s for `/readyz` 200.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while get(self.api, "/readyz", &[]).status != 200 {
            assert!(Instant::now() < deadline, "not ready within 5 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The value of the first sample whose name is `series`' name and whose line contains
    /// every `label="value"` pair written in `series`; -1 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        test_support::scrape(self.metrics, series)
    }

    /// Reads stdout lines for up to `wait`, appends them to [`Edge::log`], and returns the
    /// lines whose `event` is `event`.
    pub fn events(&mut self, event: &str, wait: Duration) -> Vec<String> {
        self.log.extend(self.svc.drain_lines(wait));
        let needle = format!("\"event\":\"{event}\"");
        self.log
            .iter()
            .filter(|l| l.contains(&needle))
            .cloned()
            .collect()
    }
}

/// Every file under `dir`, recursively (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() { files_under(&p) } else { vec![p] }
        })
        .collect()
}

/// Where the CAS keeps object `hex`.
pub fn object_path(root: &Path, hex: &str) -> PathBuf {
    root.join("b3").join(&hex[..2]).join(&hex[2..4]).join(hex)
}
