//! What the ronctl tests share: the binaries cargo built and a running `ronctl up`.

#![allow(dead_code)] // each test binary uses its own part

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The service binaries `ronctl up` starts, in start order.
pub const SERVICES: [&str; 4] = ["rustchat", "svc-edge", "sentinel-proxy", "mongoose-server"];

/// The `ronctl` binary under test.
pub fn ronctl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ronctl"))
}

/// The directory with every service binary, building those that are missing.
pub fn bins() -> PathBuf {
    let dir = ronctl().parent().expect("target dir").to_path_buf();
    if SERVICES.iter().all(|s| dir.join(s).is_file()) {
        return dir;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build", "--bins", "-p", "rustchat", "-p", "svc-edge", "-p", "sentinel", "-p",
            "mongoose",
        ])
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building the service binaries failed");
    dir
}

/// A running `ronctl up` on free loopback ports and its stdout lines; SIGTERM on drop.
pub struct Up {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
    pub state: PathBuf,
}

impl Up {
    /// Starts the stack in `state` with `env` added (e.g. rustchat's database URL) and
    /// waits until ronctl reports it ready.
    pub fn start(state: &Path, env: &[(String, String)]) -> Up {
        let mut cmd = Command::new(ronctl());
        cmd.args([
            "up",
            "--ports",
            "auto",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(state)
        .arg("--bin-dir")
        .arg(bins())
        .env_remove("RUSTCHAT_DATABASE_URL")
        .env_remove("RUSTCHAT_REDIS_URL")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn ronctl");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut up = Up {
            child,
            lines,
            seen: Vec::new(),
            state: state.to_path_buf(),
        };
        up.wait_line("ronctl: stack ready", Duration::from_secs(180));
        up
    }

    /// Waits for a stdout line containing `needle`; panics with what ronctl said if none
    /// comes within `limit`.
    pub fn wait_line(&mut self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(l) => {
                    let hit = l.contains(needle);
                    self.seen.push(l);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!("no {needle:?} line; ronctl said:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// `ronctl.json` in the state directory.
    pub fn state_doc(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.state.join("ronctl.json")).unwrap()).unwrap()
    }

    /// Waits for ronctl to exit; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> i32 {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(l);
                }
                return st.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("ronctl did not exit; said:\n{}", self.seen.join("\n"));
    }

    /// Sends SIGTERM to ronctl (drain in order).
    pub fn terminate(&self) {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
            let _ = self.child.wait();
        }
    }
}
