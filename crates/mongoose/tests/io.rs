//! Black-box I/O tests of the `mongoose-server` binary (spec §2.2–§2.4, §3.2, MNG-R19,
//! R26, R27, R30, R31, §5.2): the built-in feeds and sinks wired from YAML, startup
//! failures, the quarantine sink, SIGHUP reload and SIGTERM shutdown.
//!
//! Every test starts the real binary with a YAML written to a fresh temp dir, reads its JSON
//! log lines, and finds the admin address from `admin_listening` (YAML
//! `admin: {address: 127.0.0.1:0}`). Feeds that listen get a port picked by binding
//! `127.0.0.1:0` in the test and dropping the listener. Children are killed on drop.

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::{Response, http_raw, read_response, sample_value};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Deadline for any wait in these tests.
const WAIT: Duration = Duration::from_secs(20);

const SIGHUP: i32 = 1;
const SIGTERM: i32 = 15;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mongoose-server")
}

fn unsafe_kill(pid: u32, sig: i32) {
    unsafe extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    // SAFETY: kill(2) with a child's pid and a valid signal number has no memory effects.
    unsafe {
        kill(pid as i32, sig);
    }
}

/// A port that was free a moment ago (bound on 127.0.0.1:0, then released).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Polls `f` every 10 ms until it holds; panics naming `what` after [`WAIT`].
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        if f() {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Forwards each line of `r` to the returned channel.
fn pump(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Which of the child's streams carries the JSON log lines.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LogsOn {
    Stdout,
    Stderr,
}

/// A running `mongoose-server`; killed and reaped when dropped.
struct Server {
    child: Child,
    cfg: PathBuf,
    logs: Receiver<String>,
    /// Log lines read so far.
    seen: Vec<String>,
    /// The stream that does not carry logs.
    other: Receiver<String>,
    other_seen: Vec<String>,
}

impl Server {
    /// Writes `yaml` to `dir/server.yaml` and starts the binary on it. `stdin` is piped
    /// when `piped_stdin`, else closed.
    fn spawn(dir: &Path, yaml: &str, logs_on: LogsOn, piped_stdin: bool) -> Server {
        let cfg = dir.join("server.yaml");
        std::fs::write(&cfg, yaml).unwrap();
        let mut cmd = Command::new(bin());
        cmd.arg("--config").arg(&cfg).env_remove("RUST_LOG");
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("MONGOOSE_") {
                cmd.env_remove(&k);
            }
        }
        cmd.stdin(if piped_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn mongoose-server");
        let out = pump(child.stdout.take().unwrap());
        let err = pump(child.stderr.take().unwrap());
        let (logs, other) = match logs_on {
            LogsOn::Stdout => (out, err),
            LogsOn::Stderr => (err, out),
        };
        Server {
            child,
            cfg,
            logs,
            seen: Vec::new(),
            other,
            other_seen: Vec::new(),
        }
    }

    /// Starts and waits for `server_ready`.
    fn start(dir: &Path, yaml: &str) -> Server {
        let mut s = Server::spawn(dir, yaml, LogsOn::Stdout, false);
        s.wait_log("server_ready", |v| v["message"] == "server_ready");
        s
    }

    /// Moves every log line that has arrived into `seen`.
    fn pull(&mut self) {
        while let Ok(l) = self.logs.try_recv() {
            self.seen.push(l);
        }
    }

    /// The first log line (already seen or arriving within [`WAIT`]) for which `pred`
    /// holds, parsed.
    fn wait_log(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let matches = |l: &str| serde_json::from_str::<Value>(l).ok().filter(|v| pred(v));
        if let Some(v) = self.seen.iter().find_map(|l| matches(l)) {
            return v;
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.logs.recv_timeout(left) {
                Ok(l) => {
                    let hit = matches(&l);
                    self.seen.push(l);
                    if let Some(v) = hit {
                        return v;
                    }
                }
                Err(_) => {
                    let other: Vec<String> = self.other.try_iter().collect();
                    panic!(
                        "no {what} log line; logs: {:#?}\nother stream: {other:#?}",
                        self.seen
                    );
                }
            }
        }
    }

    /// Every parsed log line seen so far for which `pred` holds.
    fn logs_where(&mut self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.pull();
        self.seen
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| pred(v))
            .collect()
    }

    /// The admin listener's address, from the `admin_listening` line.
    fn admin_addr(&mut self) -> SocketAddr {
        let v = self.wait_log("admin_listening", |v| v["message"] == "admin_listening");
        v["address"]
            .as_str()
            .unwrap_or_else(|| panic!("admin_listening without address: {v}"))
            .parse()
            .unwrap()
    }

    fn signal(&self, sig: i32) {
        unsafe_kill(self.child.id(), sig);
    }

    /// Waits up to [`WAIT`] for the process to exit; its status code.
    fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            assert!(Instant::now() < deadline, "the server did not exit in time");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// After exit: every remaining line of both streams (until they close).
    fn collect_after_exit(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.logs.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => break,
            }
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.other.recv_timeout(left) {
                Ok(l) => self.other_seen.push(l),
                Err(_) => break,
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Complete (`\n`-terminated) lines of `path`; none if it does not exist.
fn file_lines(path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    lines.pop(); // the part after the last newline: empty, or a partial line
    lines
}

/// Waits until `path` holds at least `n` complete lines; returns them.
fn wait_file_lines(path: &Path, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    wait_until(&format!("{n} lines in {}", path.display()), || {
        got = file_lines(path);
        got.len() >= n
    });
    got
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
}

/// `/metrics` series value (see `test_support::sample_value`); -1 when absent.
fn metric(admin: SocketAddr, series: &str) -> f64 {
    sample_value(&test_support::get(admin, "/metrics", &[]).text(), series)
}

fn wait_metric(admin: SocketAddr, series: &str, want: f64) {
    let what = format!("{series} == {want}");
    let deadline = Instant::now() + WAIT;
    loop {
        let last = metric(admin, series);
        if last == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last {last}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `POST /admin/commands/<name>` with no args; the `output` of a 200 answer.
fn admin_cmd(admin: SocketAddr, name: &str) -> Value {
    let body = r#"{"args":[]}"#;
    let raw = format!(
        "POST /admin/commands/{name} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = http_raw(admin, raw.as_bytes(), false).unwrap();
    assert_eq!(r.status, 200, "{name}: {}", r.text());
    parse(&r.text())["output"].clone()
}

/// The `policy` the `queues` command shows for (feed, group).
fn queue_policy(admin: SocketAddr, feed: &str, group: &str) -> String {
    let q = admin_cmd(admin, "queues");
    q.as_array()
        .unwrap()
        .iter()
        .find(|s| s["feed"] == feed && s["group"] == group)
        .unwrap_or_else(|| panic!("no queue {feed}/{group}: {q}"))["policy"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Sends `raw` and reads one response.
fn http(addr: SocketAddr, raw: &[u8]) -> Response {
    http_raw(addr, raw, false).unwrap_or_else(|e| panic!("request to {addr}: {e}"))
}

fn post(addr: SocketAddr, path: &str, content_type: &str, body: &str) -> Response {
    let raw = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    http(addr, raw.as_bytes())
}

fn body_json(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

// ---------------------------------------------------------------------------------------
// MNG-T05: tcp → filter → file
// ---------------------------------------------------------------------------------------

// MNG-T05: of 1000 lines sent over one TCP connection, exactly the 500 matching ones are
// written to the file, in order.
#[test]
fn tcp_filter_file_writes_exactly_the_matching_lines_in_order() {
    let dir = test_support::temp_dir("mg-io-t05");
    let port = free_port();
    let out = dir.join("out.jsonl");
    let yaml = format!(
        "name: io-t05
admin: {{address: off}}
eventFeeds:
  - name: lines
    type: tcp
    queueCapacity: 2048
    config: {{address: \"127.0.0.1:{port}\"}}
eventSinks:
  - name: out
    type: file
    config: {{path: \"{}\"}}
eventHandlers:
  - agentName: sel
    processors:
      pick:
        type: filter
        feeds: [lines]
        config: {{field: n, op: lt, value: 500, to: out}}
",
        out.display()
    );
    let mut srv = Server::start(&dir, &yaml);

    // n = 37·i mod 1000 is a permutation of 0..1000, so exactly 500 lines have n < 500,
    // interleaved with the others.
    let sent: Vec<Value> = (0..1000)
        .map(|i| json!({"i": i, "n": (i * 37) % 1000}))
        .collect();
    let expect: Vec<Value> = sent
        .iter()
        .filter(|v| v["n"].as_i64().unwrap() < 500)
        .cloned()
        .collect();
    assert_eq!(expect.len(), 500);
    let mut payload = String::new();
    for v in &sent {
        payload.push_str(&v.to_string());
        payload.push('\n');
    }
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(payload.as_bytes()).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();

    wait_file_lines(&out, 500);
    // Graceful stop drains and flushes; nothing more may appear.
    srv.signal(SIGTERM);
    assert_eq!(srv.wait_exit(), Some(0));
    let got: Vec<Value> = file_lines(&out).iter().map(|l| parse(l)).collect();
    assert_eq!(got.len(), 500, "exactly the matching lines");
    assert_eq!(got, expect, "the matching lines, in order");
}

// ---------------------------------------------------------------------------------------
// MNG-T04: startup failures
// ---------------------------------------------------------------------------------------

/// Runs a config that must fail to start; (exit code, stderr lines).
fn failed_start(tag: &str, yaml: &str) -> (Option<i32>, Vec<String>) {
    let dir = test_support::temp_dir(tag);
    let mut srv = Server::spawn(&dir, yaml, LogsOn::Stdout, false);
    let code = srv.wait_exit();
    srv.collect_after_exit();
    (code, srv.other_seen.clone())
}

// MNG-T04 (the cases that need no redis): a critical tcp feed on an occupied port, a
// critical file feed on a missing file (`waitForFile: false`) and a processor whose `init`
// fails (a `filter` whose `to` names no sink; validation does not resolve `to`) each exit 1
// with one `startup failed:` line naming the component.
#[test]
fn critical_startup_failures_exit_1_naming_the_component() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let tcp = format!(
        "name: io-t04a
admin: {{address: off}}
eventFeeds:
  - name: prices
    type: tcp
    config: {{address: \"127.0.0.1:{port}\"}}
eventSinks: [{{name: mem, type: memory}}]
eventHandlers:
  - agentName: g
    processors:
      p: {{type: filter, feeds: [prices], config: {{field: x, op: exists, to: mem}}}}
"
    );
    let (code, err) = failed_start("mg-io-t04a", &tcp);
    assert_eq!(code, Some(1), "{err:?}");
    assert_eq!(err.len(), 1, "one stderr line: {err:?}");
    assert!(
        err[0].starts_with("startup failed: feed 'prices' (tcp): ")
            && err[0].contains("address in use")
            && err[0].contains(&port.to_string()),
        "{err:?}"
    );
    drop(taken);

    let missing = test_support::temp_dir("mg-io-t04-missing").join("nope.log");
    let file = format!(
        "name: io-t04b
admin: {{address: off}}
eventFeeds:
  - name: tail
    type: file
    config: {{path: \"{}\", waitForFile: false}}
eventSinks: [{{name: mem, type: memory}}]
eventHandlers:
  - agentName: g
    processors:
      p: {{type: filter, feeds: [tail], config: {{field: x, op: exists, to: mem}}}}
",
        missing.display()
    );
    let (code, err) = failed_start("mg-io-t04b", &file);
    assert_eq!(code, Some(1), "{err:?}");
    assert_eq!(err.len(), 1, "one stderr line: {err:?}");
    assert!(
        err[0].starts_with("startup failed: feed 'tail' (file): "),
        "{err:?}"
    );

    let init = "name: io-t04c
admin: {address: off}
eventFeeds: [{name: in, type: memory}]
eventSinks: [{name: mem, type: memory}]
eventHandlers:
  - agentName: g
    processors:
      broken: {type: filter, feeds: [in], config: {field: x, op: exists, to: nosuch}}
";
    let (code, err) = failed_start("mg-io-t04c", init);
    assert_eq!(code, Some(1), "{err:?}");
    assert_eq!(err.len(), 1, "one stderr line: {err:?}");
    assert!(
        err[0].starts_with("startup failed: processor 'broken'") && err[0].contains("nosuch"),
        "{err:?}"
    );
}

// MNG-R19 / §5.2: a critical failure logs `startup_failed` (ERROR) with `component`,
// `kind` and `error`.
#[test]
fn startup_failed_log_line_has_component_kind_and_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let yaml = format!(
        "name: io-t04log
admin: {{address: off}}
eventFeeds:
  - name: prices
    type: tcp
    config: {{address: \"127.0.0.1:{port}\"}}
eventSinks: [{{name: mem, type: memory}}]
eventHandlers:
  - agentName: g
    processors:
      p: {{type: filter, feeds: [prices], config: {{field: x, op: exists, to: mem}}}}
"
    );
    let dir = test_support::temp_dir("mg-io-t04log");
    let mut srv = Server::spawn(&dir, &yaml, LogsOn::Stdout, false);
    assert_eq!(srv.wait_exit(), Some(1));
    srv.collect_after_exit();
    let v = srv.wait_log("startup_failed", |v| v["message"] == "startup_failed");
    assert_eq!(v["level"], "ERROR", "{v}");
    assert!(
        v["component"]
            .as_str()
            .is_some_and(|c| c.contains("prices")),
        "{v}"
    );
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("address in use")),
        "{v}"
    );
    assert!(
        v["kind"].as_str().is_some_and(|k| !k.is_empty()),
        "`kind` is missing: {v}"
    );
    drop(taken);
}

// §5.2: `component_started` (INFO) carries `component`, `kind` and `agent`; a timer feed
// runs on the implicit `feeds` agent.
#[test]
fn component_started_names_the_hosting_agent() {
    let dir = test_support::temp_dir("mg-io-started");
    let yaml = "name: io-started
admin: {address: off}
eventFeeds:
  - name: ticks
    type: timer
    config: {intervalMs: 1000, count: 1}
eventSinks: [{name: mem, type: memory}]
eventHandlers:
  - agentName: g
    processors:
      p: {type: filter, feeds: [ticks], config: {field: tick, op: exists, to: mem}}
";
    let mut srv = Server::start(&dir, yaml);
    let v = srv.wait_log("component_started for ticks", |v| {
        v["message"] == "component_started" && v["component"] == "ticks"
    });
    assert_eq!(v["level"], "INFO", "{v}");
    assert_eq!(v["kind"], "timer", "{v}");
    assert_eq!(v["agent"], "feeds", "{v}");
    srv.signal(SIGTERM);
    assert_eq!(srv.wait_exit(), Some(0));
}

// ---------------------------------------------------------------------------------------
// MNG-T29: http ingest
// ---------------------------------------------------------------------------------------

// MNG-T29 via the binary: a bad NDJSON line 2 gets 400 `bad_json` naming line 2 and
// publishes nothing; 3 lines get 202 `accepted:3`; oversized 413, GET 405, another path
// 404, wrong content type 415.
#[test]
fn http_ingest_validates_the_whole_body_before_publishing() {
    let dir = test_support::temp_dir("mg-io-t29");
    let port = free_port();
    let out = dir.join("out.jsonl");
    let yaml = format!(
        "name: io-t29
admin: {{address: \"127.0.0.1:0\"}}
eventFeeds:
  - name: ingest
    type: http
    config: {{address: \"127.0.0.1:{port}\", maxBodyBytes: 1024}}
eventSinks:
  - name: out
    type: file
    config: {{path: \"{}\"}}
eventHandlers:
  - agentName: g
    processors:
      keep: {{type: filter, feeds: [ingest], config: {{field: id, op: exists, to: out}}}}
",
        out.display()
    );
    let mut srv = Server::start(&dir, &yaml);
    let admin = srv.admin_addr();
    let ingest: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let published = "mongoose_feed_published_total{feed=\"ingest\"}";
    assert_eq!(metric(admin, published), 0.0);

    let r = post(
        ingest,
        "/ingest",
        "application/x-ndjson",
        "{\"id\":1}\n{\"id\":\n{\"id\":3}\n",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let v = body_json(&r);
    assert_eq!(v["code"], "bad_json", "{v}");
    assert!(v["message"].as_str().unwrap().starts_with("line 2"), "{v}");
    assert!(v["corr_id"].is_string(), "{v}");
    assert_eq!(metric(admin, published), 0.0, "nothing published");

    let r = post(
        ingest,
        "/ingest",
        "application/x-ndjson",
        "{\"id\":10}\n{\"id\":11}\n\n{\"id\":12}\n",
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let v = body_json(&r);
    assert_eq!(
        (
            v["accepted"].clone(),
            v["dropped"].clone(),
            v["rejected"].clone()
        ),
        (json!(3), json!(0), json!(0)),
        "{v}"
    );
    wait_metric(admin, published, 3.0);
    let lines: Vec<Value> = wait_file_lines(&out, 3).iter().map(|l| parse(l)).collect();
    assert_eq!(
        lines,
        [json!({"id":10}), json!({"id":11}), json!({"id":12})]
    );

    // Oversized: the declared length alone is over maxBodyBytes (the body is not sent, so
    // the early answer cannot race an unread body).
    let raw = "POST /ingest HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
               Content-Type: application/json\r\nContent-Length: 4096\r\n\r\n";
    let mut s = TcpStream::connect(ingest).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(body_json(&r)["code"], "payload_too_large");

    let r = http(
        ingest,
        b"GET /ingest HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 405, "{}", r.text());
    assert!(
        r.header("allow").is_some_and(|a| a.contains("POST")),
        "{:?}",
        r.headers
    );

    let r = post(ingest, "/other", "application/json", "{\"id\":21}");
    assert_eq!(r.status, 404, "{}", r.text());

    let r = post(ingest, "/ingest", "text/plain", "{\"id\":20}");
    assert_eq!(r.status, 415, "{}", r.text());
    assert_eq!(body_json(&r)["code"], "unsupported_media_type");

    assert_eq!(
        metric(admin, published),
        3.0,
        "rejected requests publish nothing"
    );
    srv.signal(SIGTERM);
    assert_eq!(srv.wait_exit(), Some(0));
    assert_eq!(file_lines(&out).len(), 3);
}

// ---------------------------------------------------------------------------------------
// MNG-T30: stdin → stdout
// ---------------------------------------------------------------------------------------

// MNG-T30: with a `stdout` sink, stdout carries only the sink's JSONL and the logs go to
// stderr; a `stdin` feed with `exitOnEof` processes every line, then the process exits 0.
#[test]
fn stdin_to_stdout_processes_every_line_then_exits_0() {
    let dir = test_support::temp_dir("mg-io-t30");
    let yaml = "name: io-t30
admin: {address: off}
eventFeeds:
  - name: in
    type: stdin
    config: {format: json, exitOnEof: true}
eventSinks: [{name: out, type: stdout}]
eventHandlers:
  - agentName: g
    processors:
      keep: {type: filter, feeds: [in], config: {field: id, op: exists, to: out}}
";
    let mut srv = Server::spawn(&dir, yaml, LogsOn::Stderr, true);
    let sent: Vec<Value> = (0..200)
        .map(|i| json!({"id": i, "name": format!("item-{i}"), "tags": ["a", i % 3]}))
        .collect();
    let mut input = String::new();
    for v in &sent {
        input.push_str(&v.to_string());
        input.push('\n');
    }
    {
        let mut stdin = srv.child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
    } // closed: EOF
    assert_eq!(srv.wait_exit(), Some(0), "exits 0 by itself at EOF");
    srv.collect_after_exit();
    let got: Vec<Value> = srv.other_seen.iter().map(|l| parse(l)).collect();
    assert_eq!(got, sent, "stdout holds exactly the sink's JSONL, in order");
    // The logs are JSON lines on stderr.
    assert!(!srv.seen.is_empty());
    for l in &srv.seen {
        let v = parse(l);
        assert!(v["message"].is_string() && v["level"].is_string(), "{l}");
    }
    let msgs: Vec<String> = srv
        .seen
        .iter()
        .map(|l| parse(l)["message"].as_str().unwrap().to_string())
        .collect();
    for m in ["server_ready", "shutdown_begin", "shutdown_complete"] {
        assert!(
            msgs.iter().any(|x| x == m),
            "{m} missing from stderr: {msgs:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// MNG-T26: SIGHUP reload
// ---------------------------------------------------------------------------------------

fn t26_yaml(port: u16, max_batch: u32, policy: &str, extra: &str) -> String {
    format!(
        "name: io-t26
admin: {{address: \"127.0.0.1:0\"}}
eventFeeds:
  - name: ticks
    type: tcp
    backpressure: {policy}
    config: {{address: \"127.0.0.1:{port}\"}}
{extra}eventSinks: [{{name: mem, type: memory}}]
eventHandlers:
  - agentName: grp
    maxBatch: {max_batch}
    processors:
      fwd: {{type: filter, feeds: [ticks], config: {{field: x, op: exists, to: mem}}}}
"
    )
}

// MNG-T26: SIGHUP with a changed `maxBatch` and policy gives `ok` and the new policy is in
// force; an unknown key gives `invalid` (WARN `reload`) and the old config stays; adding a
// feed gives `rejected`, the WARN `reload` line names the key, and nothing changes.
#[test]
fn sighup_applies_rejects_or_refuses_a_reload() {
    let dir = test_support::temp_dir("mg-io-t26");
    let port = free_port();
    let mut srv = Server::start(&dir, &t26_yaml(port, 64, "block", ""));
    let admin = srv.admin_addr();
    let series = |o: &str| format!("mongoose_config_reloads_total{{outcome=\"{o}\"}}");
    assert_eq!(queue_policy(admin, "ticks", "grp"), "block");

    // (a) reloadable changes.
    std::fs::write(&srv.cfg, t26_yaml(port, 4, "fail-fast", "")).unwrap();
    srv.signal(SIGHUP);
    wait_metric(admin, &series("ok"), 1.0);
    assert_eq!(queue_policy(admin, "ticks", "grp"), "fail-fast");
    let ok = srv.wait_log("reload ok", |v| {
        v["message"] == "reload" && v["outcome"] == "ok"
    });
    let changed = ok["changed"].to_string();
    assert!(
        changed.contains("maxBatch") && changed.contains("backpressure"),
        "{ok}"
    );
    // maxBatch 4 is in force: a burst of 5000 lines is drained in batches of at most 4.
    let mut burst = String::new();
    for i in 0..5000 {
        burst.push_str(&format!("{{\"x\":{i}}}\n"));
    }
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(burst.as_bytes()).unwrap();
    drop(c);
    wait_metric(
        admin,
        "mongoose_feed_published_total{feed=\"ticks\"}",
        5000.0,
    );
    wait_metric(
        admin,
        "mongoose_queue_depth{feed=\"ticks\",group=\"grp\"}",
        0.0,
    );
    let text = test_support::get(admin, "/metrics", &[]).text();
    let all = sample_value(&text, "mongoose_batches_total{group=\"grp\",le=\"+Inf\"}");
    let small = sample_value(&text, "mongoose_batches_total{group=\"grp\",le=\"4\"}");
    assert!(all > 0.0, "batches counted: {all}");
    assert_eq!(
        small, all,
        "every batch after the reload holds at most 4 events"
    );

    // (b) an unknown key: invalid, old (reloaded) config stays.
    std::fs::write(
        &srv.cfg,
        t26_yaml(port, 8, "drop-newest", "")
            .replace("    maxBatch: 8", "    maxBatch: 8\n    maxBatchTypo: 8"),
    )
    .unwrap();
    srv.signal(SIGHUP);
    wait_metric(admin, &series("invalid"), 1.0);
    let inv = srv.wait_log("reload invalid", |v| {
        v["message"] == "reload" && v["outcome"] == "invalid"
    });
    assert_eq!(inv["level"], "WARN", "{inv}");
    assert!(inv["error"].to_string().contains("maxBatchTypo"), "{inv}");
    assert_eq!(queue_policy(admin, "ticks", "grp"), "fail-fast");
    assert_eq!(metric(admin, &series("ok")), 1.0);

    // (c) a new feed (with a policy change alongside): rejected, nothing applied.
    let extra = "  - name: more\n    type: memory\n";
    std::fs::write(&srv.cfg, t26_yaml(port, 4, "drop-newest", extra)).unwrap();
    srv.signal(SIGHUP);
    wait_metric(admin, &series("rejected"), 1.0);
    let rej = srv.wait_log("reload rejected", |v| {
        v["message"] == "reload" && v["outcome"] == "rejected"
    });
    assert_eq!(rej["level"], "WARN", "{rej}");
    let changed = rej["changed"].to_string();
    assert!(
        changed.contains("eventFeeds[1]") && changed.contains("more"),
        "the WARN names the added feed: {rej}"
    );
    assert_eq!(queue_policy(admin, "ticks", "grp"), "fail-fast");
    assert_eq!(metric(admin, &series("ok")), 1.0);
    assert_eq!(metric(admin, &series("invalid")), 1.0);

    // Still running, and ready once the burst's backlog sample has cleared.
    let mut last = String::new();
    wait_until("/readyz 200 after the reloads", || {
        let r = test_support::get(admin, "/readyz", &[]);
        last = r.text();
        r.status == 200
    });
    srv.signal(SIGTERM);
    assert_eq!(srv.wait_exit(), Some(0));
}

// ---------------------------------------------------------------------------------------
// Quarantine sink (§3.2, §7, MNG-R25)
// ---------------------------------------------------------------------------------------

const RECORD_KEYS: [&str; 13] = [
    "ts",
    "first_seen",
    "server",
    "kind",
    "feed",
    "seq",
    "group",
    "processor",
    "sink",
    "attempts",
    "error",
    "payload",
    "truncated",
];

fn assert_record_shape(r: &Value) {
    let keys: BTreeSet<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = RECORD_KEYS.into_iter().collect();
    assert_eq!(keys, want, "every §3.2 key, nothing else: {r}");
    for k in ["ts", "first_seen"] {
        let t = r[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k} not a string: {r}"));
        assert!(
            t.len() >= 20 && t.as_bytes()[4] == b'-' && t.as_bytes()[10] == b'T',
            "{k} not RFC3339: {r}"
        );
    }
    assert!(r["truncated"].is_boolean(), "{r}");
}

// §7 / §3.2 / MNG-R25: `quarantine.sink` naming a `file` sink creates the file with mode
// 0600 (whatever `mode` says); a bad JSON line on a tcp feed lands there as a
// `decode_error` record with its raw text, a line over `maxLineBytes` as one with its first
// KiB (`truncated`) while the connection stays open, and an event a built-in fails on
// (`map` with `missing: error`) as an `error` record after 1 + maxRetries attempts; every
// record has all 13 keys.
#[test]
fn quarantine_file_sink_gets_decode_errors_and_failed_events() {
    use std::os::unix::fs::PermissionsExt;
    let dir = test_support::temp_dir("mg-io-quar");
    let port = free_port();
    let out = dir.join("out.jsonl");
    let quar = dir.join("q").join("quarantine.jsonl");
    let yaml = format!(
        "name: io-quar
admin: {{address: off}}
quarantine: {{sink: q}}
retry: {{maxRetries: 2, initialBackoffMs: 5}}
eventFeeds:
  - name: lines
    type: tcp
    config: {{address: \"127.0.0.1:{port}\", maxLineBytes: 256}}
eventSinks:
  - name: out
    type: file
    config: {{path: \"{}\"}}
  - name: q
    type: file
    config: {{path: \"{}\", mode: \"0644\"}}
eventHandlers:
  - agentName: g
    processors:
      proj:
        type: map
        feeds: [lines]
        config: {{fields: {{id: id}}, missing: error, to: out}}
",
        out.display(),
        quar.display()
    );
    let mut srv = Server::start(&dir, &yaml);
    let mode = std::fs::metadata(&quar)
        .unwrap_or_else(|e| panic!("quarantine file not created at startup: {e}"))
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "quarantine file mode {:o}",
        mode & 0o777
    );

    // A good line, bad JSON, an event `map` fails on, a line over maxLineBytes (skipped,
    // its first KiB quarantined, the connection stays open), a good line.
    let long = format!("{{\"big\":\"{}\"}}", "a".repeat(3000));
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(
        format!("{{\"id\":1}}\nnot json {{\n{{\"noid\":true}}\n{long}\n{{\"id\":2}}\n").as_bytes(),
    )
    .unwrap();
    c.flush().unwrap();

    let recs: Vec<Value> = wait_file_lines(&quar, 3).iter().map(|l| parse(l)).collect();
    let written: Vec<Value> = wait_file_lines(&out, 2).iter().map(|l| parse(l)).collect();
    assert_eq!(written, [json!({"id": 1}), json!({"id": 2})]);
    for r in &recs {
        assert_record_shape(r);
        assert_eq!(r["server"], "io-quar", "{r}");
    }
    let decode = recs
        .iter()
        .find(|r| r["kind"] == "decode_error" && r["payload"] == "not json {")
        .unwrap_or_else(|| panic!("no decode_error record with the raw text: {recs:?}"));
    assert_eq!(decode["feed"], "lines", "{decode}");
    assert!(decode["error"].is_string(), "{decode}");
    assert_eq!(decode["truncated"], false, "{decode}");
    let too_long = recs
        .iter()
        .find(|r| r["kind"] == "decode_error" && r["payload"] != "not json {")
        .unwrap_or_else(|| panic!("no decode_error record for the long line: {recs:?}"));
    assert_eq!(too_long["feed"], "lines", "{too_long}");
    assert_eq!(
        too_long["payload"].as_str(),
        Some(&long[..1024]),
        "the first KiB of the long line: {too_long}"
    );
    assert_eq!(too_long["truncated"], true, "{too_long}");
    let failed = recs
        .iter()
        .find(|r| r["kind"] == "error")
        .unwrap_or_else(|| panic!("no error record: {recs:?}"));
    assert_eq!(failed["feed"], "lines", "{failed}");
    // The bad line was never published, so the failing event is the feed's second.
    assert_eq!(failed["seq"], 2, "{failed}");
    assert_eq!(failed["group"], "g", "{failed}");
    assert_eq!(failed["processor"], "proj", "{failed}");
    assert_eq!(failed["attempts"], 3, "{failed}");
    assert!(
        failed["error"].as_str().is_some_and(|e| e.contains("id")),
        "{failed}"
    );
    assert_eq!(failed["payload"], json!({"noid": true}), "{failed}");

    drop(c);
    srv.signal(SIGTERM);
    assert_eq!(srv.wait_exit(), Some(0));
    assert_eq!(file_lines(&quar).len(), 3, "no further records");
    let mode = std::fs::metadata(&quar).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

// ---------------------------------------------------------------------------------------
// MNG-T15: http sink circuit breaker
// ---------------------------------------------------------------------------------------

/// (status answered, request body) of each request the stub saw.
type Seen = Arc<Mutex<Vec<(u16, Vec<u8>)>>>;

/// A keep-alive HTTP/1.1 stub: answers 500 to the first `failures` requests, then 200;
/// records (status, body) of each request.
struct Stub {
    addr: SocketAddr,
    seen: Seen,
    stop: Arc<AtomicBool>,
}

impl Stub {
    fn start(failures: usize) -> Stub {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen: Seen = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if stop2.load(Ordering::Acquire) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let seen = seen2.clone();
                std::thread::spawn(move || serve_stub(conn, failures, &seen));
            }
        });
        Stub { addr, seen, stop }
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_stub(mut s: TcpStream, failures: usize, seen: &Mutex<Vec<(u16, Vec<u8>)>>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head_end..head_end + len].to_vec();
        buf.drain(..head_end + len);
        let status = {
            let mut seen = seen.lock().unwrap();
            let status = if seen.len() < failures { 500 } else { 200 };
            seen.push((status, body));
            status
        };
        let reason = if status == 200 {
            "OK"
        } else {
            "Internal Server Error"
        };
        let resp = format!("HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\n\r\n");
        if s.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// The MNG-T15 scenario: an `http` sink (threshold 3, openMs 200) against a stub that
/// answers 500 three times, then 200, fed 5 timer ticks through `map`. The group's retry
/// budget outlasts the open period, so events refused with `CircuitOpen` meanwhile are
/// retried, not quarantined. Returns once all 5 are written.
fn breaker_scenario(tag: &str) -> (Server, SocketAddr, Stub) {
    let stub = Stub::start(3);
    let dir = test_support::temp_dir(tag);
    let yaml = format!(
        "name: {tag}
admin: {{address: \"127.0.0.1:0\"}}
eventFeeds:
  - name: ticks
    type: timer
    config: {{intervalMs: 50, count: 5}}
eventSinks:
  - name: web
    type: http
    circuitBreaker: {{failureThreshold: 3, openMs: 200}}
    config: {{url: \"http://{}/hook\"}}
eventHandlers:
  - agentName: g
    retry: {{maxRetries: 10, initialBackoffMs: 50, multiplier: 2.0, maxBackoffMs: 400}}
    processors:
      fwd: {{type: map, feeds: [ticks], config: {{fields: {{tick: tick}}, to: web}}}}
",
        stub.addr
    );
    let mut srv = Server::start(&dir, &yaml);
    let admin = srv.admin_addr();
    wait_metric(admin, "mongoose_sink_written_total{sink=\"web\"}", 5.0);
    (srv, admin, stub)
}

// MNG-T15 via the binary: the breaker opens after 3 failures, the half-open probe succeeds
// and closes it, all 5 events are written and each payload reaches the stub.
#[test]
fn http_sink_breaker_opens_then_recovers_and_delivers_everything() {
    let (mut srv, admin, stub) = breaker_scenario("mg-io-t15");
    let text = test_support::get(admin, "/metrics", &[]).text();
    let opened = sample_value(
        &text,
        "mongoose_sink_circuit_transitions_total{sink=\"web\",to=\"open\"}",
    );
    assert!(opened >= 1.0, "the breaker opened: {opened}");
    assert_eq!(
        sample_value(
            &text,
            "mongoose_sink_errors_total{sink=\"web\",kind=\"retryable\"}"
        ),
        3.0
    );
    assert_eq!(
        sample_value(
            &text,
            "mongoose_sink_circuit_state{sink=\"web\",state=\"closed\"}"
        ),
        1.0,
        "closed again after the probe"
    );
    assert_eq!(
        sample_value(&text, "mongoose_quarantined_total{kind=\"error\"}"),
        0.0,
        "nothing quarantined"
    );
    let seen = stub.seen.lock().unwrap().clone();
    let failed = seen.iter().filter(|(s, _)| *s == 500).count();
    assert_eq!(failed, 3, "{seen:?}");
    let ticks: BTreeSet<i64> = seen
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| parse(&String::from_utf8_lossy(b))["tick"].as_i64().unwrap())
        .collect();
    assert_eq!(ticks, (1..=5).collect(), "{seen:?}");
    // Events sent while the breaker was open were refused (`CircuitOpen`), not queued.
    assert!(
        sample_value(
            &text,
            "mongoose_sink_rejected_total{sink=\"web\",reason=\"circuit_open\"}"
        ) >= 1.0,
        "send returned CircuitOpen while open"
    );
    srv.signal(SIGTERM);
    assert_eq!(srv.wait_exit(), Some(0));
}

// MNG-R26 / §5.2: every breaker transition is logged as a WARN `circuit_state` line with
// `sink`, `from`, `to` and `failures`.
#[test]
fn http_sink_breaker_transitions_log_circuit_state_lines() {
    let (mut srv, _admin, _stub) = breaker_scenario("mg-io-t15-log");
    for (from, to) in [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ] {
        let v = srv.wait_log(&format!("circuit_state {from} -> {to}"), |v| {
            v["message"] == "circuit_state" && v["from"] == from && v["to"] == to
        });
        assert_eq!(v["level"], "WARN", "{v}");
        assert_eq!(v["sink"], "web", "{v}");
        assert!(v["failures"].is_number(), "{v}");
    }
    srv.signal(SIGTERM);
    assert_eq!(srv.wait_exit(), Some(0));
}

// MNG-R26 / §5.1: `mongoose_sink_circuit_transitions_total{sink,to}` counts every
// transition, so after open → half_open → closed each `to` has a sample of at least 1.
#[test]
fn http_sink_breaker_transitions_are_counted_per_target_state() {
    let (mut srv, admin, _stub) = breaker_scenario("mg-io-t15-cnt");
    let text = test_support::get(admin, "/metrics", &[]).text();
    for to in ["open", "half_open", "closed"] {
        let series = format!("mongoose_sink_circuit_transitions_total{{sink=\"web\",to=\"{to}\"}}");
        let family: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("mongoose_sink_circuit_transitions_total"))
            .collect();
        assert!(sample_value(&text, &series) >= 1.0, "{series}: {family:#?}");
    }
    srv.signal(SIGTERM);
    assert_eq!(srv.wait_exit(), Some(0));
}

// ---------------------------------------------------------------------------------------
// MNG-T17 (binary half): SIGTERM under load
// ---------------------------------------------------------------------------------------

/// What one SIGTERM-under-load run left behind.
struct Drained {
    srv: Server,
    code: Option<i32>,
    /// Line numbers (= ids) the feed acked `ok` (published to every group).
    acked: HashSet<u64>,
    /// Ids in the sink's file, in file order.
    written: Vec<u64>,
    /// Quarantine records.
    records: Vec<Value>,
    /// Lines the client wrote (ids 1..=sent).
    sent: u64,
}

/// Starts tcp (`ack: true`) → filter → file with a file quarantine sink, streams lines
/// `{"id":n}` over one connection, sends SIGTERM once 2000 are acked, and collects what
/// was written and quarantined. The sink's queue is large enough that forwarding never
/// finds it full, so nothing is retried or quarantined before the signal.
fn sigterm_under_load(tag: &str) -> Drained {
    let dir = test_support::temp_dir(tag);
    let port = free_port();
    let out = dir.join("out.jsonl");
    let quar = dir.join("quarantine.jsonl");
    let yaml = format!(
        "name: {tag}
admin: {{address: off}}
quarantine: {{sink: q}}
eventFeeds:
  - name: lines
    type: tcp
    config: {{address: \"127.0.0.1:{port}\", ack: true}}
eventSinks:
  - name: out
    type: file
    queueCapacity: 262144
    config: {{path: \"{}\"}}
  - name: q
    type: file
    config: {{path: \"{}\"}}
eventHandlers:
  - agentName: g
    processors:
      keep: {{type: filter, feeds: [lines], config: {{field: id, op: exists, to: out}}}}
",
        out.display(),
        quar.display()
    );
    let mut srv = Server::start(&dir, &yaml);

    let conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    conn.set_write_timeout(Some(WAIT)).unwrap();
    let mut writer = conn.try_clone().unwrap();
    let reader = conn.try_clone().unwrap();
    let acked: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let acked2 = acked.clone();
    // Acks are read up to each newline; a last fragment cut off when the server closes the
    // connection is not an ack.
    let read_thread = std::thread::spawn(move || {
        let mut r = BufReader::new(reader);
        let mut line = Vec::new();
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if line.last() != Some(&b'\n') => break,
                Ok(_) => {}
            }
            let v: Value = serde_json::from_slice(&line).unwrap_or_else(|e| {
                panic!(
                    "ack is not JSON ({e}): {:?}",
                    String::from_utf8_lossy(&line)
                )
            });
            if v["ok"] == true {
                acked2.lock().unwrap().insert(v["seq"].as_u64().unwrap());
            }
        }
    });
    let write_thread = std::thread::spawn(move || {
        let mut id = 0u64;
        while id < 5_000_000 {
            let mut batch = String::new();
            for _ in 0..100 {
                id += 1;
                batch.push_str(&format!("{{\"id\":{id}}}\n"));
            }
            if writer.write_all(batch.as_bytes()).is_err() {
                break;
            }
        }
        id
    });
    wait_until("2000 acked lines", || acked.lock().unwrap().len() >= 2000);
    srv.signal(SIGTERM);
    let code = srv.wait_exit();
    let sent = write_thread.join().unwrap();
    read_thread.join().unwrap();
    srv.collect_after_exit();
    let written = file_lines(&out)
        .iter()
        .map(|l| parse(l)["id"].as_u64().unwrap())
        .collect();
    let records = file_lines(&quar).iter().map(|l| parse(l)).collect();
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    Drained {
        srv,
        code,
        acked,
        written,
        records,
        sent,
    }
}

// MNG-T17 (the binary's part; `/readyz` before the listener closes is left to the library
// tests, it is racy from outside): SIGTERM while a tcp client streams lines logs
// `shutdown_begin` with `"signal":"SIGTERM"` and `deadline_ms`, then `shutdown_complete`
// with `undrained` and `duration_ms`, and exits 0; what was written is what was sent, each
// line at most once and in order (nothing is retried: the sink queue never fills), and
// the quarantine holds only `shutdown_undrained` leftovers of lines not written.
#[test]
fn sigterm_under_load_drains_and_exits_0() {
    let mut d = sigterm_under_load("mg-io-t17");
    assert_eq!(d.code, Some(0));
    let begin = d
        .srv
        .wait_log("shutdown_begin", |v| v["message"] == "shutdown_begin");
    assert_eq!(begin["signal"], "SIGTERM", "{begin}");
    assert_eq!(
        begin["deadline_ms"], 5000,
        "the default drain deadline: {begin}"
    );
    let done = d
        .srv
        .wait_log("shutdown_complete", |v| v["message"] == "shutdown_complete");
    assert!(
        done["undrained"].is_number() && done["duration_ms"].is_number(),
        "{done}"
    );
    assert_eq!(
        d.srv
            .logs_where(|v| v["message"] == "shutdown_complete")
            .len(),
        1
    );
    assert!(d.written.len() >= 2000, "the acked lines were written");
    assert!(
        d.written.windows(2).all(|w| w[0] < w[1]),
        "each line once, in order"
    );
    assert!(d.written.iter().all(|id| (1..=d.sent).contains(id)));
    let written: HashSet<u64> = d.written.iter().copied().collect();
    for r in &d.records {
        assert_record_shape(r);
        assert_eq!(r["kind"], "shutdown_undrained", "{r}");
        let id = r["payload"]["id"].as_u64().unwrap();
        assert!(!written.contains(&id), "both written and quarantined: {r}");
    }
}

// MNG-T17 / MNG-R24 / R30: every line the feed acked (published to every group) is written
// or quarantined as `shutdown_undrained`: written + quarantined = accepted. The loss is
// intermittent, so the scenario runs up to 10 times.
#[test]
fn sigterm_under_load_loses_no_acked_line() {
    for round in 0..10 {
        let d = sigterm_under_load(&format!("mg-io-t17-acct{round}"));
        assert_eq!(d.code, Some(0));
        let written: HashSet<u64> = d.written.iter().copied().collect();
        let quarantined: HashSet<u64> = d
            .records
            .iter()
            .filter(|r| r["kind"] == "shutdown_undrained")
            .filter_map(|r| r["payload"]["id"].as_u64())
            .collect();
        let mut lost: Vec<u64> = d
            .acked
            .iter()
            .filter(|id| !written.contains(id) && !quarantined.contains(id))
            .copied()
            .collect();
        lost.sort_unstable();
        assert!(
            lost.is_empty(),
            "round {round}: {} acked lines neither written nor quarantined: {:?}; {} acked, \
             {} written (max {:?}), {} quarantined",
            lost.len(),
            &lost[..lost.len().min(10)],
            d.acked.len(),
            written.len(),
            d.written.iter().max(),
            quarantined.len(),
        );
    }
}

// §5.2: `backpressure_drops` (at most one per feed/group/policy per 10 s, with the count),
// and `processor_error` / `event_quarantined` at most one per second with a `suppressed`
// count, so a flood of failures cannot flood the log.
#[test]
fn failure_log_lines_are_gated_and_count_what_they_held_back() {
    let dir = test_support::temp_dir("mg-io-gates");
    let port = free_port();
    let yaml = format!(
        "name: io-gates
admin:
  address: 127.0.0.1:0
retry:
  maxRetries: 0
eventFeeds:
  - name: lines
    type: tcp
    queueCapacity: 16
    backpressure: drop-newest
    config: {{address: '127.0.0.1:{port}'}}
eventSinks:
  - name: out
    type: memory
eventHandlers:
  - agentName: g1
    idleStrategy: sleeping-millis
    processors:
      need:
        type: map
        feeds: [lines]
        config: {{fields: {{x: x}}, missing: error, to: out}}
"
    );
    let mut srv = Server::start(&dir, &yaml);
    let admin = srv.admin_addr();
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut burst = String::new();
    for i in 0..5000 {
        burst.push_str(&format!("{{\"n\":{i}}}\n"));
    }
    c.write_all(burst.as_bytes()).unwrap();
    c.flush().unwrap();
    wait_until("5000 published", || {
        metric(admin, r#"mongoose_feed_published_total{feed="lines"}"#) >= 5000.0
    });
    let dropped = metric(
        admin,
        r#"mongoose_feed_dropped_total{feed="lines",group="g1",policy="drop-newest"}"#,
    );
    assert!(dropped > 0.0, "a 16-slot queue under a burst drops");
    let drops = srv.wait_log("backpressure_drops", |v| {
        v["message"] == "backpressure_drops"
    });
    assert_eq!(drops["level"], "WARN");
    assert_eq!(
        (drops["feed"].clone(), drops["group"].clone()),
        (json!("lines"), json!("g1"))
    );
    assert_eq!(drops["policy"], "drop-newest");
    assert_eq!(drops["window_s"], 10);
    assert!(drops["count"].as_u64().unwrap() >= 1, "{drops}");
    // Every consumed event failed (no `x`) and was quarantined at once (maxRetries 0).
    let consumed = metric(
        admin,
        r#"mongoose_queue_consumed_total{feed="lines",group="g1"}"#,
    );
    wait_until("all consumed events quarantined", || {
        metric(admin, r#"mongoose_quarantined_total{kind="error"}"#) >= consumed
    });
    assert!(
        consumed >= 2.0,
        "enough failures to show the gate: {consumed}"
    );
    let errors = srv.logs_where(|v| v["message"] == "processor_error");
    let quarantined = srv.logs_where(|v| v["message"] == "event_quarantined");
    assert!(!errors.is_empty() && !quarantined.is_empty());
    assert!(
        (errors.len() as f64) < consumed,
        "{} processor_error lines for {consumed} failures",
        errors.len()
    );
    for e in &errors {
        for k in [
            "group",
            "processor",
            "feed",
            "seq",
            "attempt",
            "kind",
            "error",
            "suppressed",
        ] {
            assert!(e.get(k).is_some(), "processor_error lacks {k}: {e}");
        }
    }
    assert_eq!(errors[0]["attempt"], 1);
    assert!(quarantined.iter().all(|q| q.get("suppressed").is_some()));
    // Later lines (if the run spanned more than a second) report what was held back.
    let total: u64 = errors
        .iter()
        .map(|e| 1 + e["suppressed"].as_u64().unwrap())
        .sum();
    assert!(total <= consumed as u64, "{total} > {consumed}");
    srv.signal(15);
    assert_eq!(srv.wait_exit(), Some(0));
}

// §2.3: feeds and sinks run on the agent their `agentName` names (default `feeds` /
// `sinks`), with that agent's idle strategy from `agentThreads` unless the entry sets one.
#[test]
fn feeds_and_sinks_run_on_their_named_agents_with_their_idle_strategies() {
    let dir = test_support::temp_dir("mg-io-agents");
    let out = dir.join("out.jsonl");
    let yaml = format!(
        "name: io-agents
admin:
  address: 127.0.0.1:0
agentThreads:
  - agentName: ticker
    idleStrategy: sleeping-millis
eventFeeds:
  - name: ticks
    type: timer
    agentName: ticker
    config: {{intervalMs: 10, count: 5}}
  - name: more
    type: timer
    config: {{intervalMs: 10, count: 5}}
eventSinks:
  - name: out
    type: file
    agentName: writer
    idleStrategy: yielding
    config: {{path: {out}, flushEveryMs: 0}}
eventHandlers:
  - agentName: g1
    idleStrategy: sleeping-millis
    processors:
      keep:
        type: filter
        feeds: [ticks, more]
        config: {{field: tick, op: exists, to: out}}
",
        out = out.display()
    );
    let mut srv = Server::start(&dir, &yaml);
    let admin = srv.admin_addr();
    wait_file_lines(&out, 10);
    let agents = admin_cmd(admin, "agents");
    let find = |name: &str| {
        agents
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("no agent {name}: {agents}"))
            .clone()
    };
    let ticker = find("ticker");
    assert_eq!(
        (
            ticker["role"].clone(),
            ticker["idle_strategy"].clone(),
            ticker["hosts"].clone()
        ),
        (json!("feeds"), json!("sleeping-millis"), json!(["ticks"]))
    );
    let feeds = find("feeds");
    assert_eq!(feeds["hosts"], json!(["more"]));
    assert_eq!(feeds["idle_strategy"], "backoff");
    let writer = find("writer");
    assert_eq!(
        (
            writer["role"].clone(),
            writer["idle_strategy"].clone(),
            writer["hosts"].clone()
        ),
        (json!("sinks"), json!("yielding"), json!(["out"]))
    );
    assert_eq!(writer["core"], Value::Null, "not pinned");
    assert!(metric(admin, r#"mongoose_agent_duty_cycles_total{agent="ticker"}"#) > 0.0);
    assert!(metric(admin, r#"mongoose_agent_duty_cycles_total{agent="writer"}"#) > 0.0);
    assert_eq!(
        metric(admin, r#"mongoose_agent_core{agent="writer"}"#),
        -1.0
    );
    srv.signal(15);
    assert_eq!(srv.wait_exit(), Some(0));
}
