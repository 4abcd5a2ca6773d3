//! Black-box reliability drills (SEN-T31), streaming (T08), built-in defaults and env
//! (T05 runtime parts), and h2c prior knowledge (T09 part).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::upstream::Upstream;
use common::{BIN, Proxy};
use test_support::{Service, command, get, json_field, temp_dir};

fn two_targets(a: std::net::SocketAddr, b: std::net::SocketAddr, extra: &str) -> String {
    format!(
        "server {{\n    listen \"127.0.0.1:0\"\n    client-header-timeout-secs 2\n}}\nmetrics {{\n    address \"127.0.0.1:0\"\n}}\nupstream \"app\" {{\n    targets {{\n        target \"{a}\"\n        target \"{b}\"\n    }}\n{extra}}}\nroute \"all\" {{\n    upstream \"app\"\n}}\n"
    )
}

#[test]
fn a_target_killed_mid_load_costs_no_get() {
    let dir = temp_dir("sen-kill");
    let mut a = Upstream::start(|_| (200, "a".into()));
    let b = Upstream::start(|_| (200, "b".into()));
    let probes = "    health-check {\n        type \"tcp\"\n        interval-secs 1\n        timeout-secs 1\n    }\n";
    let p = Proxy::start(&dir, &two_targets(a.addr, b.addr, probes), &[], 0);
    let failures = Arc::new(AtomicUsize::new(0));
    let (addr, f) = (p.addr, failures.clone());
    let client = std::thread::spawn(move || {
        for _ in 0..2000 {
            if get(addr, "/x", &[]).status != 200 {
                f.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    a.kill();
    client.join().unwrap();
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "retries carried every GET to b"
    );
    let health = format!(
        "sentinel_upstream_health{{upstream=\"app\",target=\"{}\"",
        a.addr
    );
    let deadline = Instant::now() + Duration::from_secs(8);
    while p.metric(&health) != 0.0 {
        assert!(
            Instant::now() < deadline,
            "the killed target's gauge never fell to 0"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_slow_target_gives_504_until_its_breaker_opens_then_503() {
    let dir = temp_dir("sen-slow");
    let slow = Arc::new(AtomicBool::new(true));
    let s = slow.clone();
    let up = Upstream::start(move |_| {
        if s.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1500));
        }
        (200, "ok".into())
    });
    let kdl = format!(
        "server {{\n    listen \"127.0.0.1:0\"\n}}\nmetrics {{\n    address \"127.0.0.1:0\"\n}}\nupstream \"app\" {{\n    targets {{\n        target \"{}\"\n    }}\n    passive-health {{\n        enabled #false\n    }}\n    circuit-breaker {{\n        failure-threshold 3\n        timeout-secs 1\n        success-threshold 1\n    }}\n}}\nroute \"all\" {{\n    upstream \"app\"\n    policies {{\n        timeout-secs 1\n        retries 0\n    }}\n}}\n",
        up.addr
    );
    let p = Proxy::start(&dir, &kdl, &[], 0);
    let codes: Vec<String> = (0..5)
        .map(|_| json_field(&get(p.addr, "/x", &[]).text(), "code").unwrap_or_default())
        .collect();
    assert_eq!(&codes[..3], ["upstream_timeout"; 3], "{codes:?}");
    assert_eq!(
        &codes[3..],
        ["no_healthy_upstream"; 2],
        "the breaker opened: {codes:?}"
    );
    slow.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1600));
    let deadline = Instant::now() + Duration::from_secs(5);
    while get(p.addr, "/x", &[]).status != 200 {
        assert!(Instant::now() < deadline, "never recovered");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn slowloris_connections_are_closed_while_normal_requests_succeed() {
    let dir = temp_dir("sen-loris");
    let a = Upstream::start(|_| (200, "ok".into()));
    let b = Upstream::start(|_| (200, "ok".into()));
    let p = Proxy::start(&dir, &two_targets(a.addr, b.addr, ""), &[], 0);
    let open = "sentinel_open_connections{listener=\"main\"";
    let baseline = p.metric(open);
    let closed = Arc::new(AtomicUsize::new(0));
    let drippers: Vec<_> = (0..200)
        .map(|_| {
            let (addr, closed) = (p.addr, closed.clone());
            std::thread::spawn(move || {
                let Ok(mut s) = TcpStream::connect(addr) else {
                    return;
                };
                let _ = s.set_read_timeout(Some(Duration::from_secs(6)));
                for byte in b"GET /x HTTP/1.1\r\nHost: t\r\n".iter().take(5) {
                    if s.write_all(&[*byte]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                let mut buf = [0u8; 64];
                if matches!(s.read(&mut buf), Ok(0) | Err(_)) {
                    closed.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..20 {
        assert_eq!(
            get(p.addr, "/x", &[]).status,
            200,
            "normal requests keep succeeding"
        );
    }
    for d in drippers {
        d.join().unwrap();
    }
    assert_eq!(
        closed.load(Ordering::SeqCst),
        200,
        "every slow head was closed by the proxy"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.metric(open) > baseline {
        assert!(
            Instant::now() < deadline,
            "open connections back to baseline"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        p.metric("sentinel_downstream_errors_total{listener=\"main\",kind=\"header_timeout\"")
            >= 1.0
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn built_in_defaults_serve_health_and_no_route_and_env_moves_the_admin_port() {
    let dir = temp_dir("sen-defaults");
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = free.local_addr().unwrap();
    drop(free);
    // The built-in defaults listen on 0.0.0.0:8080 (SEN-R02); when something else holds
    // that port the part of T05 that needs it cannot run here.
    if std::net::TcpListener::bind("0.0.0.0:8080").is_err() {
        eprintln!("notice: port 8080 is busy; skipping the built-in-defaults check");
        return;
    }
    // No config/sentinel.kdl in this directory; only the admin port is moved, by env.
    let mut cmd = command(
        Path::new(BIN),
        &[("SENTINEL_METRICS_ADDR", &admin.to_string())],
    );
    cmd.current_dir(&dir);
    let (svc, lines) = Service::start(cmd, "listening", 2);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"listener\":\"admin\"") && l.contains(&admin.to_string())),
        "{lines:?}"
    );
    let main: std::net::SocketAddr = lines
        .iter()
        .find(|l| l.contains("\"listener\":\"main\""))
        .and_then(|l| json_field(l, "address"))
        .and_then(|a| a.parse().ok())
        .unwrap();
    assert_eq!(main.port(), 8080, "built-in default listen address");
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], main.port()));
    assert_eq!(get(local, "/health", &[]).status, 200);
    let r = get(local, "/anything", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(json_field(&r.text(), "code").as_deref(), Some("no_route"));
    assert_eq!(get(admin, "/readyz", &[]).status, 200);
    drop(svc);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_client_that_stops_reading_is_aborted_and_keepalive_zero_closes_after_each_answer() {
    let dir = temp_dir("sen-send");
    let big = "x".repeat(32 << 20);
    let up = Upstream::start(move |_| (200, big.clone()));
    let kdl = format!(
        "server {{\n    listen \"127.0.0.1:0\"\n    client-send-timeout-secs 1\n    client-keepalive-timeout-secs 0\n}}\nmetrics {{\n    address \"127.0.0.1:0\"\n}}\nupstream \"app\" {{\n    targets {{\n        target \"{}\"\n    }}\n}}\nroute \"all\" {{\n    upstream \"app\"\n}}\n",
        up.addr
    );
    let p = Proxy::start(&dir, &kdl, &[], 0);
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    // Read nothing: the proxy's writes stall once the socket buffers are full.
    let metric = "sentinel_downstream_errors_total{listener=\"main\",kind=\"send_timeout\"";
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.metric(metric) < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the stalled client was never aborted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(s);

    // keepalive 0: one answer per connection.
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 1, "{text}");
    std::fs::remove_dir_all(dir).unwrap();
}
