//! Helpers shared by sentinel's integration-test crates; each crate uses a subset.
#![allow(dead_code)]

pub mod upstream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use test_support::{Service, command, get, json_field};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_sentinel-proxy");

/// A running sentinel-proxy.
pub struct Proxy {
    /// The process (killed on drop).
    pub svc: Service,
    /// Main proxy listener.
    pub addr: SocketAddr,
    /// Metrics/admin listener.
    pub admin: SocketAddr,
    /// The config file.
    pub config: PathBuf,
    /// Stdout lines read so far.
    pub log: Vec<String>,
}

impl Proxy {
    /// Writes `kdl` to `dir/sentinel.kdl` and starts the proxy with `--config`, waiting for
    /// the admin and main `listening` lines (plus `extra_listeners` more).
    pub fn start(dir: &Path, kdl: &str, env: &[(&str, &str)], extra_listeners: usize) -> Proxy {
        let config = dir.join("sentinel.kdl");
        std::fs::write(&config, kdl).unwrap();
        let mut cmd = command(Path::new(BIN), env);
        cmd.current_dir(dir).arg("--config").arg(&config);
        let (svc, lines) = Service::start(cmd, "listening", 2 + extra_listeners);
        let addr_of = |which: &str| -> SocketAddr {
            lines
                .iter()
                .find(|l| l.contains(&format!("\"listener\":\"{which}\"")))
                .and_then(|l| json_field(l, "address"))
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no {which} listening line in {lines:?}"))
        };
        let p = Proxy {
            addr: addr_of("main"),
            admin: addr_of("admin"),
            svc,
            config,
            log: lines,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while get(p.addr, "/ready", &[]).status != 200 {
            assert!(Instant::now() < deadline, "not ready within 5 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        p
    }

    /// The bound address of listener `name`, from its `listening` line.
    pub fn listener(&self, name: &str) -> SocketAddr {
        self.log
            .iter()
            .find(|l| {
                l.contains("\"message\":\"listening\"")
                    && l.contains(&format!("\"listener\":\"{name}\""))
            })
            .and_then(|l| json_field(l, "address"))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no listening line for {name}"))
    }

    /// Reads stdout for up to `wait` and returns the lines containing `needle`.
    pub fn lines_with(&mut self, needle: &str, wait: Duration) -> Vec<String> {
        self.log.extend(self.svc.drain_lines(wait));
        self.log
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    /// Waits up to 5 s for the sample `series` to read `value`.
    pub fn wait_metric(&self, series: &str, value: f64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.metric(series) != value {
            assert!(
                Instant::now() < deadline,
                "{series} stayed at {} (waiting for {value})",
                self.metric(series)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Value of the first `/metrics` sample named like `series`, containing every
    /// `label="value"` of it; -1 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        test_support::scrape(self.admin, series)
    }
}

/// The external tool `name` from PATH. Absent, the calling test skips its part with a
/// notice, unless `RON_REQUIRE_EXTERNAL_TOOLS` is set, in which case the test fails.
pub fn external(name: &str) -> Option<PathBuf> {
    let found = test_support::tool(name);
    assert!(
        found.is_some() || std::env::var_os("RON_REQUIRE_EXTERNAL_TOOLS").is_none(),
        "{name} is required (RON_REQUIRE_EXTERNAL_TOOLS is set)"
    );
    found
}
