//! The `redis-stream` feed against a real Redis (MNG-R32): MNG-T16 (at-least-once across a
//! SIGKILL, nothing left pending, bad entries quarantined and acked) and the redis halves of
//! MNG-T04 (a critical feed that cannot connect fails startup; a non-critical one starts
//! disconnected).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::RedisServer;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mongoose-server")
}

/// A running `mongoose-server`, killed when dropped.
struct Srv {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Srv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Srv {
    fn start(cfg: &Path) -> Srv {
        let mut child = Command::new(bin())
            .args(["--config", cfg.to_str().unwrap()])
            .env_remove("MONGOOSE_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l2 = lines.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                l2.lock().unwrap().push(l);
            }
        });
        Srv { child, lines }
    }

    fn wait_log(&self, message: &str) -> Value {
        let d = Instant::now() + Duration::from_secs(20);
        loop {
            let hit = self.lines.lock().unwrap().iter().find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                (v["message"] == message).then_some(v)
            });
            if let Some(v) = hit {
                return v;
            }
            assert!(
                Instant::now() < d,
                "no {message} line: {:?}",
                self.lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn admin(&self) -> SocketAddr {
        self.wait_log("admin_listening")["address"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    fn signal(&self, sig: i32) {
        unsafe extern "C" {
            fn kill(pid: i32, sig: i32) -> i32;
        }
        // SAFETY: kill(2) on our child's pid with a valid signal has no memory effects.
        unsafe {
            kill(self.child.id() as i32, sig);
        }
    }

    fn wait_exit(&mut self) -> Option<i32> {
        let d = Instant::now() + Duration::from_secs(30);
        while Instant::now() < d {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server did not exit");
    }
}

fn ids_in(path: &Path) -> BTreeSet<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        // A SIGKILL may cut the last line short.
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["i"].as_u64())
        .collect()
}

fn wait_for(what: &str, limit: Duration, f: impl Fn() -> bool) {
    let d = Instant::now() + limit;
    while Instant::now() < d {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out waiting for {what}");
}

fn write_config(dir: &Path, url: &str, out: &Path, q: &Path) -> PathBuf {
    let cfg = dir.join("server.yaml");
    std::fs::write(
        &cfg,
        format!(
            "name: redis-t16
admin:
  address: 127.0.0.1:0
quarantine:
  sink: q
eventFeeds:
  - name: orders
    type: redis-stream
    backpressure: fail-fast
    config:
      url: {url}
      stream: orders
      group: mg
      consumer: c1
      startId: '0'
      blockMs: 50
      ackIntervalMs: 50
eventSinks:
  - name: out
    type: file
    config: {{path: {out}, flushEveryMs: 0}}
  - name: q
    type: file
    config: {{path: {q}, flushEveryMs: 0}}
eventHandlers:
  - agentName: g1
    idleStrategy: sleeping-millis
    processors:
      keep:
        type: filter
        feeds: [orders]
        config: {{field: i, op: exists, to: out}}
",
            out = out.display(),
            q = q.display()
        ),
    )
    .unwrap();
    cfg
}

const N: u64 = 10_000;

// MNG-T16.
#[test]
fn a_sigkill_loses_nothing_and_the_restart_drains_the_pending_entries() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let dir = test_support::temp_dir("mg-redis");
    let (out, q) = (dir.join("out.jsonl"), dir.join("q.jsonl"));
    let cfg = write_config(&dir, &redis.url(), &out, &q);
    let mut cmds = String::new();
    for i in 0..N / 2 {
        cmds.push_str(&format!("XADD orders * data '{{\"i\":{i}}}'\n"));
    }
    cmds.push_str("XADD orders * data not-json\n");
    cmds.push_str("XADD orders * other 1\n");
    for i in N / 2..N {
        cmds.push_str(&format!("XADD orders * data '{{\"i\":{i}}}'\n"));
    }
    redis.pipe(&cmds);
    assert_eq!(redis.cli(&["XLEN", "orders"]), (N + 2).to_string());

    let mut first = Srv::start(&cfg);
    first.wait_log("server_ready");
    wait_for(
        "a third of the events written",
        Duration::from_secs(60),
        || ids_in(&out).len() as u64 >= N / 3,
    );
    first.signal(9);
    first.wait_exit();
    let before = ids_in(&out).len() as u64;
    assert!(before < N + 2, "killed midway");

    let mut second = Srv::start(&cfg);
    let admin = second.admin();
    wait_for("every id written", Duration::from_secs(120), || {
        ids_in(&out).len() as u64 == N
    });
    assert_eq!(ids_in(&out), (0..N).collect::<BTreeSet<_>>());
    // The acks trail by ackIntervalMs; then nothing is pending for the group.
    wait_for("XPENDING 0", Duration::from_secs(20), || {
        redis
            .cli(&["XPENDING", "orders", "mg"])
            .lines()
            .next()
            .is_some_and(|l| l.trim() == "0")
    });
    let metrics = test_support::get(admin, "/metrics", &[]).text();
    let acked = test_support::sample_value(&metrics, "mongoose_feed_acked_total");
    assert!(acked >= 1.0, "{metrics}");
    second.signal(15);
    assert_eq!(second.wait_exit(), Some(0));

    // The non-JSON entry and the one without `data` were quarantined (and acked above).
    let records: Vec<Value> = std::fs::read_to_string(&q)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let decode: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "decode_error" && r["feed"] == "orders")
        .collect();
    assert!(
        decode.iter().any(|r| r["payload"] == "not-json"),
        "{records:?}"
    );
    assert!(
        decode.iter().any(|r| r["error"]
            .as_str()
            .is_some_and(|e| e.contains("missing_field"))),
        "{records:?}"
    );
    for r in &decode {
        assert_eq!(r.as_object().unwrap().len(), 13, "every key present: {r}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&q).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "quarantine files hold payloads");
}

// MNG-T04, redis halves.
#[test]
fn a_critical_redis_feed_that_cannot_connect_fails_startup_and_a_non_critical_one_waits() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = test_support::temp_dir("mg-redis-t04");
    let yaml = |critical: bool| {
        format!(
            "name: redis-t04
admin:
  address: 127.0.0.1:0
startup:
  connectTimeoutMs: 500
eventFeeds:
  - name: r
    type: redis-stream
    critical: {critical}
    backpressure: fail-fast
    config: {{url: 'redis://127.0.0.1:{port}', stream: s, group: g}}
eventHandlers:
  - agentName: g1
    idleStrategy: sleeping-millis
    processors:
      show:
        type: log
        feeds: [r]
",
            port = closed.port()
        )
    };
    let cfg = dir.join("critical.yaml");
    std::fs::write(&cfg, yaml(true)).unwrap();
    let out = Command::new(bin())
        .args(["--config", cfg.to_str().unwrap()])
        .env_remove("MONGOOSE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let line: Vec<&str> = err.lines().collect();
    assert_eq!(line.len(), 1, "{err}");
    assert!(
        line[0].starts_with("startup failed: feed 'r' (redis-stream): redis://127.0.0.1:"),
        "{err}"
    );

    let cfg = dir.join("optional.yaml");
    std::fs::write(&cfg, yaml(false)).unwrap();
    let mut srv = Srv::start(&cfg);
    let admin = srv.admin();
    srv.wait_log("server_ready");
    wait_for("ready", Duration::from_secs(10), || {
        test_support::get(admin, "/readyz", &[]).status == 200
    });
    let m = test_support::get(admin, "/metrics", &[]).text();
    assert_eq!(
        test_support::sample_value(&m, "mongoose_feed_connected{feed=\"r\"}"),
        0.0,
        "{m}"
    );
    srv.signal(15);
    assert_eq!(srv.wait_exit(), Some(0));
}
