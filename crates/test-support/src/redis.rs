//! Real Redis servers for tests, from Debian's `redis-server` (and `redis-tools` for
//! `redis-cli`).
//!
//! Each [`RedisServer`] is a test's own: `redis-server` on 127.0.0.1 on a free port, no
//! persistence (`--save ''`, `--appendonly no`), working directory and a Unix socket (used
//! only to probe readiness) in a scratch directory. The packaged service is never used. Redis
//! runs as the test process's user, root included. Lifetime and cleanup are those of every
//! server here (see the `daemon` module): dead with the test process, directory removed at
//! exit.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::daemon::{Daemon, Scratch};

/// A running `redis-server` on 127.0.0.1, killed and deleted when dropped.
pub struct RedisServer {
    // Fields drop in order: the server stops before its directory is removed.
    daemon: Daemon,
    scratch: Scratch,
    server_bin: PathBuf,
    cli_bin: PathBuf,
    port: u16,
}

impl RedisServer {
    /// Starts a server for this test; `None` after a "skipping: redis-server not installed"
    /// notice when `redis-server` or `redis-cli` is missing from PATH (a panic instead when
    /// `RON_REQUIRE_EXTERNAL_TOOLS` is set).
    pub fn start() -> Option<RedisServer> {
        let (Some(server_bin), Some(cli_bin)) = (
            crate::find_on_path("redis-server"),
            crate::find_on_path("redis-cli"),
        ) else {
            return crate::not_installed("redis-server", "redis-server redis-tools");
        };
        let scratch = Scratch::new("redis");
        let log = scratch.path().join("redis.log");
        let mut server = RedisServer {
            daemon: Daemon::new("redis-server", log, libc::SIGTERM),
            scratch,
            server_bin,
            cli_bin,
            port: 0,
        };
        server.port = server
            .daemon
            .start_on_free_port(|port| server.server_command(port), |_| server.ready());
        Some(server)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `redis-cli -h 127.0.0.1 -p <port> <args>` and returns its output without the
    /// final newline (raw format: `PONG`, `OK`, one line per array element). A Redis error
    /// reply is output (`ERR ...`), not a failure; panics when redis-cli itself fails, e.g.
    /// the server is down.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(&self.cli_bin)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run redis-cli: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "redis-cli {args:?} failed ({}): {}{}",
            out.status,
            stdout.trim_end(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
        stdout.trim_end_matches('\n').to_owned()
    }

    /// Runs many commands through one `redis-cli` (one command per line of `commands`, read
    /// from its stdin); returns its output. Panics when redis-cli itself fails.
    pub fn pipe(&self, commands: &str) -> String {
        use std::io::Write;
        let mut child = Command::new(&self.cli_bin)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run redis-cli: {e}"));
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = commands.to_owned();
        // Written from a thread so a full stdout pipe cannot deadlock the two.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("redis-cli: {e}"));
        let _ = writer.join();
        assert!(
            out.status.success(),
            "redis-cli failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the server (SIGTERM; nothing is saved); its port then refuses connections.
    pub fn stop(&self) {
        self.daemon.stop();
    }

    /// Starts the stopped server again on the same port, empty (nothing was persisted);
    /// panics when the port was taken meanwhile or the server is already running.
    pub fn restart(&self) {
        self.daemon
            .start(self.server_command(self.port), || self.ready())
            .unwrap_or_else(|msg| panic!("restart on port {}: {msg}", self.port));
    }

    fn server_command(&self, port: u16) -> Command {
        let mut cmd = Command::new(&self.server_bin);
        cmd.current_dir(self.scratch.path())
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.scratch.path())
            .arg("--unixsocket")
            .arg(self.socket())
            .args(["--unixsocketperm", "700"]);
        cmd
    }

    /// Pings the private Unix socket rather than the TCP port: a server of someone else's
    /// that grabbed the port cannot answer there, and Redis opens the socket only after
    /// binding TCP (failing to bind it is fatal).
    fn ready(&self) -> bool {
        Command::new(&self.cli_bin)
            .arg("-s")
            .arg(self.socket())
            .arg("ping")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"PONG")
    }

    fn socket(&self) -> PathBuf {
        self.scratch.path().join("redis.sock")
    }
}
