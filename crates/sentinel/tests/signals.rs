//! Black-box signal tests (SEN-T27): a SIGHUP right after spawn is harmless; SIGUSR1 turns
//! debug logging on and releases memory; SIGUSR2 turns debug logging off.

mod common;

use std::path::Path;
use std::time::Duration;

use common::upstream::Upstream;
use common::{BIN, Proxy};
use test_support::{command, get, temp_dir};

fn kdl(up: std::net::SocketAddr) -> String {
    format!(
        "server {{\n    listen \"127.0.0.1:0\"\n}}\nmetrics {{\n    address \"127.0.0.1:0\"\n}}\nupstream \"app\" {{\n    targets {{\n        target \"{up}\"\n    }}\n}}\nroute \"all\" {{\n    upstream \"app\"\n}}\n"
    )
}

#[test]
fn an_early_sighup_does_not_kill_the_process() {
    let dir = temp_dir("sen-early-hup");
    let up = Upstream::start(|_| (200, "ok".into()));
    let file = dir.join("sentinel.kdl");
    std::fs::write(&file, kdl(up.addr)).unwrap();
    let mut cmd = command(Path::new(BIN), &[]);
    cmd.current_dir(&dir).arg("--config").arg(&file);
    cmd.stdout(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    // Repeatedly through the start-up window (argument parsing, config load, runtime and
    // listener setup). The first lands 5 ms after spawn: exec and the dynamic loader run
    // before any code of ours, and no program can catch a signal there.
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(5));
        send_signal(child.id(), libc::SIGHUP);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the process survived the early SIGHUP"
    );
    child.kill().unwrap();
    let _ = child.wait();
    std::fs::remove_dir_all(dir).unwrap();
}

/// kill(1), since the process is not wrapped in a test_support::Service yet.
fn send_signal(pid: u32, sig: i32) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn usr1_enables_debug_and_releases_memory_and_usr2_restores() {
    let dir = temp_dir("sen-usr");
    let up = Upstream::start(|_| (200, "ok".into()));
    let mut p = Proxy::start(&dir, &kdl(up.addr), &[], 0);
    assert_eq!(
        get(p.addr, "/x", &[]).status,
        200,
        "a pooled connection exists"
    );
    p.svc.signal(libc::SIGUSR1);
    let released = p.lines_with("memory released", Duration::from_secs(2));
    assert_eq!(released.len(), 1, "{:?}", p.log);
    assert!(released[0].contains("rss_before_bytes") && released[0].contains("rss_after_bytes"));
    assert!(
        released[0].contains("\"idle_connections_closed\":1"),
        "{}",
        released[0]
    );
    assert_eq!(
        p.lines_with("debug logging enabled (SIGUSR1)", Duration::ZERO)
            .len(),
        1
    );
    // Debug lines now appear for requests.
    get(p.addr, "/x", &[]);
    let debug = p.lines_with("\"level\":\"DEBUG\"", Duration::from_millis(500));
    assert!(!debug.is_empty(), "DEBUG lines after SIGUSR1");
    p.svc.signal(libc::SIGUSR2);
    let off = p.lines_with("debug logging disabled (SIGUSR2)", Duration::from_secs(2));
    assert_eq!(off.len(), 1);
    let before = p.lines_with("\"level\":\"DEBUG\"", Duration::ZERO).len();
    get(p.addr, "/x", &[]);
    let after = p
        .lines_with("\"level\":\"DEBUG\"", Duration::from_millis(500))
        .len();
    assert_eq!(before, after, "no DEBUG lines after SIGUSR2");
    std::fs::remove_dir_all(dir).unwrap();
}
