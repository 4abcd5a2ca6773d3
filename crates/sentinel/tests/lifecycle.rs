//! Black-box lifecycle tests: SIGTERM drain (SEN-T25), reload under load (T24), weight-0
//! drain by reload (T16) and the SO_REUSEPORT rolling restart with the pid-file hand-over
//! (T26).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::upstream::Upstream;
use common::{BIN, Proxy};
use test_support::{Service, command, get, read_response, temp_dir};

fn kdl(pid: &Path, listen: &str, admin: &str, upstream: &str, extra: &str) -> String {
    format!(
        "server {{\n    listen \"{listen}\"\n    pid-file \"{}\"\n    graceful-shutdown-timeout-secs 5\n}}\nmetrics {{\n    address \"{admin}\"\n}}\nupstream \"app\" {{\n    targets {{\n        {upstream}\n    }}\n}}\nroute \"all\" {{\n    upstream \"app\"\n}}\n{extra}",
        pid.display()
    )
}

fn slow_upstream(delay: Duration) -> Upstream {
    Upstream::start(move |seen| {
        if seen.target.starts_with("/slow") {
            std::thread::sleep(delay);
        }
        (200, "done".into())
    })
}

#[test]
fn sigterm_drains_in_flight_work_refuses_new_connections_and_exits_zero() {
    let dir = temp_dir("sen-term");
    let up = slow_upstream(Duration::from_secs(2));
    let pid = dir.join("sentinel.pid");
    let mut p = Proxy::start(
        &dir,
        &kdl(
            &pid,
            "127.0.0.1:0",
            "127.0.0.1:0",
            &format!("target \"{}\"", up.addr),
            "",
        ),
        &[],
        0,
    );
    let addr = p.addr;
    let slow = std::thread::spawn(move || get(addr, "/slow", &[]));
    // A keep-alive connection that is open before the drain.
    let mut keep = TcpStream::connect(p.addr).unwrap();
    keep.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    keep.write_all(b"GET /ready HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut keep, false).unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(300));
    p.svc.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    let r = get(p.admin, "/readyz", &[]);
    assert_eq!(r.status, 503);
    assert!(
        r.text().contains("\"missing\":[\"draining\"]"),
        "{}",
        r.text()
    );
    keep.write_all(b"GET /ready HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let r = read_response(&mut keep, false).unwrap();
    assert_eq!(r.status, 503, "/ready on an open connection while draining");
    assert!(r.text().contains("\"draining\""));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        TcpStream::connect(p.addr).is_err(),
        "new connections are refused"
    );
    let done = slow.join().unwrap();
    assert_eq!(done.status, 200, "the in-flight request completes");
    assert_eq!(p.svc.wait_exit(Duration::from_secs(8)), Some(0));
    assert!(!pid.exists(), "pid file removed");
    let lines = p.lines_with("shutdown complete", Duration::from_millis(200));
    assert_eq!(lines.len(), 1, "{:?}", p.log);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_drain_deadline_aborts_and_a_second_sigterm_exits_one() {
    let dir = temp_dir("sen-term2");
    let up = slow_upstream(Duration::from_secs(10));
    let pid = dir.join("sentinel.pid");
    let short = kdl(
        &pid,
        "127.0.0.1:0",
        "127.0.0.1:0",
        &format!("target \"{}\"", up.addr),
        "",
    )
    .replace(
        "graceful-shutdown-timeout-secs 5",
        "graceful-shutdown-timeout-secs 1",
    );
    let mut p = Proxy::start(&dir, &short, &[], 0);
    let addr = p.addr;
    let _slow = std::thread::spawn(move || {
        test_support::http_raw(addr, b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n", false)
    });
    std::thread::sleep(Duration::from_millis(300));
    p.svc.signal(libc::SIGTERM);
    assert_eq!(
        p.svc.wait_exit(Duration::from_secs(5)),
        Some(0),
        "deadline expiry is a clean stop"
    );

    let mut p = Proxy::start(
        &dir,
        &short.replace(
            "graceful-shutdown-timeout-secs 1",
            "graceful-shutdown-timeout-secs 30",
        ),
        &[],
        0,
    );
    let addr = p.addr;
    let _slow = std::thread::spawn(move || {
        test_support::http_raw(addr, b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n", false)
    });
    std::thread::sleep(Duration::from_millis(300));
    p.svc.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    p.svc.signal(libc::SIGTERM);
    assert_eq!(
        p.svc.wait_exit(Duration::from_secs(5)),
        Some(1),
        "a second SIGTERM forces exit 1"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn reloads_under_load_fail_no_request_and_weight_zero_drains_a_target() {
    let dir = temp_dir("sen-hup-load");
    let a = slow_upstream(Duration::from_millis(800));
    let b = Upstream::start(|_| (200, "b".into()));
    let pid = dir.join("sentinel.pid");
    let targets = |wa: u32| {
        format!(
            "target \"{}\" weight={wa}\n        target \"{}\"",
            a.addr, b.addr
        )
    };
    let good1 = kdl(&pid, "127.0.0.1:0", "127.0.0.1:0", &targets(1), "");
    let p = Proxy::start(&dir, &good1, &[], 0);
    let fixed = |cfg: &str| {
        cfg.replace("listen \"127.0.0.1:0\"", &format!("listen \"{}\"", p.addr))
            .replace(
                "address \"127.0.0.1:0\"",
                &format!("address \"{}\"", p.admin),
            )
    };
    let good1 = fixed(&good1);
    let good2 = fixed(&kdl(
        &pid,
        "127.0.0.1:0",
        "127.0.0.1:0",
        &targets(1),
        "route \"extra\" {\n    matches {\n        path \"/extra\"\n    }\n    upstream \"app\"\n}\n",
    ));
    let broken = "server { nope 1 }\n".to_owned();

    // A slow request on target a, started before the reload that drains a.
    let addr = p.addr;
    let gated =
        std::thread::spawn(move || (0..2).map(|_| get(addr, "/slow", &[])).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_millis(200));

    let failures = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (failures, sent) = (failures.clone(), sent.clone());
            std::thread::spawn(move || {
                for _ in 0..500 {
                    let ok = test_support::http_raw(
                        addr,
                        test_support::request("GET", "/x", &[]).as_bytes(),
                        false,
                    )
                    .is_ok_and(|r| r.status == 200);
                    if !ok {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                    sent.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for i in 0..20 {
        let cfg = match i % 3 {
            0 => &good2,
            1 => &broken,
            _ => &good1,
        };
        std::fs::write(&p.config, cfg).unwrap();
        p.svc.signal(libc::SIGHUP);
        std::thread::sleep(Duration::from_millis(50));
    }
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(sent.load(Ordering::SeqCst), 2000);
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "no request failed during 20 reloads"
    );
    for r in gated.join().unwrap() {
        assert_eq!(r.status, 200, "requests spanning reloads complete");
    }

    // Weight 0 on a: no new requests reach it.
    std::fs::write(
        &p.config,
        fixed(&kdl(&pid, "127.0.0.1:0", "127.0.0.1:0", &targets(0), "")),
    )
    .unwrap();
    p.svc.signal(libc::SIGHUP);
    // Wait for that reload to be live: the admin API shows a draining.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v: serde_json::Value =
            serde_json::from_str(&get(p.admin, "/admin/upstreams/app/health", &[]).text())
                .unwrap_or_default();
        let draining = v["upstreams"][0]["targets"].as_array().is_some_and(|t| {
            t.iter()
                .any(|t| t["address"] == a.addr.to_string().as_str() && t["draining"] == true)
        });
        if draining {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the weight-0 reload never went live: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = a.hits();
    for _ in 0..10 {
        assert_eq!(get(p.addr, "/x", &[]).text(), "b");
    }
    assert_eq!(a.hits(), before, "a weight-0 target gets no new requests");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_second_instance_takes_over_the_ports_and_the_pid_file() {
    // SEN-R40: with tcp_migrate_req the kernel moves connections queued in A's backlog to
    // B when A closes its listener, so none is reset.
    const MIGRATE: &str = "/proc/sys/net/ipv4/tcp_migrate_req";
    let current = std::fs::read_to_string(MIGRATE).unwrap_or_default();
    if current.trim() != "1" {
        std::fs::write(MIGRATE, "1").unwrap_or_else(|e| {
            panic!("cannot set {MIGRATE}=1 ({e}); the rolling-restart test needs it (run as root or set the sysctl)")
        });
    }
    let dir = temp_dir("sen-rolling");
    let up = Upstream::start(|_| (200, "ok".into()));
    let pid = dir.join("sentinel.pid");
    let mut a = Proxy::start(
        &dir,
        &kdl(
            &pid,
            "127.0.0.1:0",
            "127.0.0.1:0",
            &format!("target \"{}\"", up.addr),
            "",
        ),
        &[],
        0,
    );
    let a_pid = a.svc.child.id();
    assert_eq!(
        std::fs::read_to_string(&pid).unwrap().trim(),
        a_pid.to_string()
    );
    // Instance B: the same config on the same (now known) ports.
    let cfg_b = dir.join("b.kdl");
    std::fs::write(
        &cfg_b,
        kdl(
            &pid,
            &a.addr.to_string(),
            &a.admin.to_string(),
            &format!("target \"{}\"", up.addr),
            "",
        ),
    )
    .unwrap();
    let mut cmd = command(Path::new(BIN), &[]);
    cmd.current_dir(&dir).arg("--config").arg(&cfg_b);
    let (b, _) = Service::start(cmd, "sentinel-proxy started", 1);
    let b_pid = b.child.id();
    assert_eq!(
        std::fs::read_to_string(&pid).unwrap().trim(),
        b_pid.to_string(),
        "B owns the pid file once ready"
    );

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let addr = a.addr;
    let (s, f) = (stop.clone(), failures.clone());
    let client = std::thread::spawn(move || {
        let mut n = 0;
        while !s.load(Ordering::SeqCst) {
            let ok = get_ok(addr);
            if !ok {
                f.fetch_add(1, Ordering::SeqCst);
            }
            n += 1;
        }
        n
    });
    std::thread::sleep(Duration::from_millis(300));
    a.svc.signal(libc::SIGTERM);
    assert_eq!(a.svc.wait_exit(Duration::from_secs(10)), Some(0));
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let n = client.join().unwrap();
    assert!(n > 10);
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "no request failed across the hand-over"
    );
    assert_eq!(
        std::fs::read_to_string(&pid).unwrap().trim(),
        b_pid.to_string(),
        "A left B's pid file in place"
    );
    assert_eq!(get(addr, "/x", &[]).status, 200, "B serves alone");
    drop(b);
    std::fs::remove_dir_all(dir).unwrap();
}

/// One request on a fresh connection; a refused connect during the hand-over window is a
/// failure too.
fn get_ok(addr: std::net::SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf.starts_with(b"HTTP/1.1 200")
}
