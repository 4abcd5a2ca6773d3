//! Dev-only helpers shared by the workspace's black-box tests.
//!
//! What it is for: starting a real binary (built by cargo for the test) with its listener on
//! `127.0.0.1:0` and learning the bound address from its JSON start-up log line, sending
//! raw HTTP/1.1 over TCP or a Unix socket and reading the exact response, finding external
//! tools (promtool, python3) and skipping with a notice when one is absent, starting real
//! PostgreSQL ([`PgServer`]) and Redis ([`RedisServer`]) servers on free loopback ports that
//! die with the test process, and checking a service's shipped Prometheus rules and Grafana
//! dashboard against what it exports ([`monitoring`], [`promql`]).
//!
//! Missing external tools: a test skips the part that needs the tool, with a notice on stderr,
//! unless [`ENV_REQUIRE_EXTERNAL_TOOLS`] is set (scripts/test.sh sets it, having installed
//! them), in which case it fails.
//!
//! What it is not for: production code. Never a fixed port.

#![warn(missing_docs)]

mod daemon;
pub mod monitoring;
mod pg;
pub mod promql;
mod redis;

pub use pg::{PG_BIN_DIR, PG_USER, PgServer};
pub use redis::RedisServer;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a spawned service may take to log that it is listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Read timeout of the raw HTTP client.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A running child process, killed (SIGKILL) when dropped.
pub struct Service {
    /// The process.
    pub child: Child,
    /// Lines the process wrote to stdout after start-up, as they arrive.
    pub lines: mpsc::Receiver<String>,
    /// Address from the start-up line (`bound_addr`).
    pub addr: String,
}

impl Service {
    /// Spawns `bin` with `env`, waiting for a stdout line containing `"message":"<ready_msg>"`
    /// and reading its `bound_addr` field.
    pub fn spawn(bin: &Path, env: &[(&str, &str)], ready_msg: &str) -> Service {
        let (mut svc, seen) = Service::start(command(bin, env), ready_msg, 1);
        svc.addr = json_field(&seen[0], "bound_addr").unwrap_or_default();
        svc
    }

    /// Starts `cmd` (stdout piped) and waits until `count` stdout lines carry
    /// `"message":"<msg>"`; returns them with the running service.
    pub fn start(mut cmd: Command, msg: &str, count: usize) -> (Service, Vec<String>) {
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = pump(stdout);
        let needle = format!("\"message\":\"{msg}\"");
        let deadline = Instant::now() + START_TIMEOUT;
        let mut seen = Vec::new();
        while seen.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(&needle) => seen.push(line),
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    panic!("service did not log {msg:?} {count} times in time");
                }
            }
        }
        let svc = Service {
            child,
            lines,
            addr: String::new(),
        };
        (svc, seen)
    }

    /// The bound TCP address.
    pub fn tcp(&self) -> SocketAddr {
        self.addr
            .parse()
            .unwrap_or_else(|_| panic!("not a TCP address: {}", self.addr))
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill with a valid pid and signal number has no memory-safety preconditions.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits up to `limit` for the process to exit; returns its status code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Collects stdout lines that arrive within `wait`.
    pub fn drain_lines(&self, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        while let Ok(l) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            out.push(l);
        }
        out
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prefixes of the services' environment knobs; a spawned service never inherits them
/// from the developer's shell or CI, only what the test passes.
pub const SERVICE_ENV_PREFIXES: [&str; 4] = ["RON_", "SVC_EDGE_", "SENTINEL_", "RUSTCHAT_"];

/// A command for `bin` with the services' knobs (and `RUST_LOG`) cleared, then `env`
/// applied, stdin closed.
pub fn command(bin: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.stdin(Stdio::null()).env_remove("RUST_LOG");
    for (var, _) in std::env::vars_os() {
        let name = var.to_string_lossy();
        if SERVICE_ENV_PREFIXES.iter().any(|p| name.starts_with(p)) {
            cmd.env_remove(&var);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Reads from `c` until the server closes it; returns the time since `since`.
pub fn time_to_close<R: Read>(mut c: R, since: Instant) -> Duration {
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return since.elapsed(),
            Ok(_) => {}
        }
    }
}

fn pump(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The string value of `"key":"…"` in a flat JSON line (no escapes inside the value).
pub fn json_field(line: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\":\"");
    let start = line.find(&needle)? + needle.len();
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_owned())
}

/// A parsed HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers with lower-cased names, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes (empty for HEAD).
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `raw` on a fresh TCP connection and reads one response (`head_request`: no body).
pub fn http_raw(addr: SocketAddr, raw: &[u8], head_request: bool) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.write_all(raw)?;
    read_response(&mut s, head_request)
}

/// `GET path` with extra header lines (each `Name: value`).
pub fn get(addr: SocketAddr, path: &str, headers: &[&str]) -> Response {
    let raw = request("GET", path, headers);
    http_raw(addr, raw.as_bytes(), false).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// A request head with `Host` and `Connection: close`.
pub fn request(method: &str, path: &str, headers: &[&str]) -> String {
    let mut s = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s
}

/// Sends `raw` over a Unix socket and reads one response.
pub fn http_uds(path: &Path, raw: &[u8]) -> std::io::Result<Response> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.write_all(raw)?;
    read_response(&mut s, false)
}

/// Reads one HTTP/1.1 response with a `Content-Length` body (or until EOF).
pub fn read_response<R: Read>(r: &mut R, head_request: bool) -> std::io::Result<Response> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = r.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("connection closed after {} bytes", buf.len()),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buf[head_end..].to_vec();
    if !head_request {
        let len = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        match len {
            Some(len) => {
                while body.len() < len {
                    let n = r.read(&mut chunk)?;
                    if n == 0 {
                        break;
                    }
                    body.extend_from_slice(&chunk[..n]);
                }
                body.truncate(len);
            }
            None => {
                r.read_to_end(&mut body)?;
            }
        }
    } else {
        body.clear();
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Set (to any value) when a missing external tool must fail the test instead of skipping.
pub const ENV_REQUIRE_EXTERNAL_TOOLS: &str = "RON_REQUIRE_EXTERNAL_TOOLS";

/// Whether [`ENV_REQUIRE_EXTERNAL_TOOLS`] is set.
pub fn external_tools_required() -> bool {
    std::env::var_os(ENV_REQUIRE_EXTERNAL_TOOLS).is_some()
}

/// The external tool `name` from PATH. Absent, the calling test skips its part with a
/// notice, unless [`ENV_REQUIRE_EXTERNAL_TOOLS`] is set, in which case the test fails.
pub fn external(name: &str) -> Option<PathBuf> {
    let found = tool(name);
    assert!(
        found.is_some() || !external_tools_required(),
        "{name} is required ({ENV_REQUIRE_EXTERNAL_TOOLS} is set)"
    );
    found
}

/// `None` after a "skipping: <what> not installed" notice naming the Debian `packages`, or a
/// panic saying the same when [`ENV_REQUIRE_EXTERNAL_TOOLS`] is set.
pub(crate) fn not_installed<T>(what: &str, packages: &str) -> Option<T> {
    assert!(
        !external_tools_required(),
        "{what} is required ({ENV_REQUIRE_EXTERNAL_TOOLS} is set) but not installed; \
         install the Debian packages {packages} (scripts/test.sh does)"
    );
    eprintln!(
        "skipping: {what} not installed (Debian packages {packages}; scripts/test.sh installs them)"
    );
    None
}

/// The first regular file `name` in a PATH directory, silently.
pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The path of an external tool, or `None` after printing a skip notice.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = find_on_path(name);
    if found.is_none() {
        eprintln!(
            "notice: {name} not found on PATH; skipping the part of this test that needs it (scripts/test.sh installs it)"
        );
    }
    found
}

/// Whether the Python OpenMetrics parser is importable.
pub fn python_openmetrics() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import prometheus_client.openmetrics.parser"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "notice: python prometheus-client not installed; skipping OpenMetrics parser check"
        );
    }
    ok
}

/// Runs `program args` with `input` on stdin; returns (status code, stdout, stderr).
pub fn run_with_stdin(program: &Path, args: &[&str], input: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for child");
    let _ = writer.join();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value of the first sample in Prometheus `text` whose name is `series`' name and
/// whose line contains every `label="value"` written in `series` (a partial label set such
/// as `http_requests_total{route="tiles"` is fine); -1 when there is none.
pub fn sample_value(text: &str, series: &str) -> f64 {
    let mut parts = series.split('{');
    let name = parts.next().unwrap_or_default();
    let labels: Vec<&str> = parts
        .next()
        .map(|l| l.trim_end_matches('}').split(',').collect())
        .unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.split(['{', ' ']).next() == Some(name) && labels.iter().all(|p| l.contains(p)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}

/// `sample_value` of the `/metrics` page served at `addr`.
pub fn scrape(addr: SocketAddr, series: &str) -> f64 {
    sample_value(&get(addr, "/metrics", &[]).text(), series)
}

/// Removes `ron-test-<tag>-<pid>-<n>` directories whose process no longer exists (the tag
/// may contain '-', so the pid is the second field from the end).
fn sweep_dead_temp_dirs() {
    daemon::sweep_dead("ron-test-", |rest| rest.rsplit('-').nth(1), |_| {});
}

/// A fresh private temporary directory for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    static SWEEP: std::sync::Once = std::sync::Once::new();
    // Directories of test processes that have exited are removed once per process, so
    // repeated runs (CI on the same machine) do not fill the disk.
    SWEEP.call_once(sweep_dead_temp_dirs);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("ron-test-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}
