//! A second SIGTERM during the drain (spec decision 2, MNG-R30): the rest of the drain is
//! skipped, leftovers are counted as `shutdown_undrained`, and the exit status is 1.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(pid: u32, sig: i32) {
    unsafe extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    // SAFETY: kill(2) on our child's pid with a valid signal has no memory effects.
    unsafe {
        kill(pid as i32, sig);
    }
}

#[test]
fn a_second_sigterm_skips_the_drain_counts_the_leftovers_and_exits_1() {
    let dir = test_support::temp_dir("mg-second-signal");
    let cfg = dir.join("server.yaml");
    // A `log` processor at info writes a JSON line per event: slow enough that a deep
    // queue takes far longer to drain than the test waits.
    std::fs::write(
        &cfg,
        "name: second-signal
admin:
  address: 'off'
shutdown:
  drainDeadlineMs: 600000
eventFeeds:
  - name: lines
    type: stdin
    queueCapacity: 1048576
    config: {format: json}
eventHandlers:
  - agentName: slow
    idleStrategy: sleeping-millis
    processors:
      show:
        type: log
        feeds: [lines]
",
    )
    .unwrap();
    let mut child = Kill(
        Command::new(env!("CARGO_BIN_EXE_mongoose-server"))
            .args(["--config", cfg.to_str().unwrap(), "--log-to", "stderr"])
            .env_remove("MONGOOSE_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let kept = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let err = child.0.stderr.take().unwrap();
    let (k2, s2) = (kept.clone(), seen.clone());
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            if l.contains("\"message\":\"event\"") {
                s2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            } else {
                k2.lock().unwrap().push(l);
            }
        }
    });
    let has = |message: &str| {
        kept.lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(&format!("\"message\":\"{message}\"")))
            .cloned()
    };
    let wait = |what: &str, f: &dyn Fn() -> bool| {
        let d = Instant::now() + Duration::from_secs(30);
        while !f() {
            assert!(
                Instant::now() < d,
                "timed out waiting for {what}: {:?}",
                kept.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait("server_ready", &|| has("server_ready").is_some());
    let mut stdin = child.0.stdin.take().unwrap();
    let mut batch = String::new();
    for i in 0..200_000 {
        batch.push_str(&format!("{{\"i\":{i}}}\n"));
    }
    stdin.write_all(batch.as_bytes()).unwrap();
    stdin.flush().unwrap();
    wait("the group to be busy", &|| {
        seen.load(std::sync::atomic::Ordering::Relaxed) > 100
    });
    let pid = child.0.id();
    signal(pid, 15);
    wait("shutdown_begin", &|| has("shutdown_begin").is_some());
    signal(pid, 15);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no exit after the second SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1));
    wait("shutdown_complete", &|| has("shutdown_complete").is_some());
    let done: Value = serde_json::from_str(&has("shutdown_complete").unwrap()).unwrap();
    let undrained = done["undrained"].as_u64().unwrap();
    let logged = seen.load(std::sync::atomic::Ordering::Relaxed);
    assert!(undrained > 0, "the drain was cut short: {done}");
    assert!(
        logged + undrained <= 200_000,
        "nothing counted twice: {logged} logged + {undrained} undrained"
    );
    assert!(has("second signal: skipping the rest of the drain").is_some());
    drop(stdin);
}
