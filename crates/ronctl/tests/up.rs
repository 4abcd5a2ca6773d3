//! `ronctl up` and `ronctl status` end to end (issue 8, ARCHITECTURE.md): the real
//! binaries of the workspace started as one stack on free loopback ports, traffic through
//! sentinel-proxy to rustchat and svc-edge, mongoose's per-route windows from the access
//! log, and the drain order on SIGTERM.
//!
//! The service binaries are the ones cargo built next to `ronctl`; `cargo test --workspace`
//! builds them all first, and a lone `cargo test -p ronctl` builds the missing ones.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::{http_raw, temp_dir};

mod common;
use common::{SERVICES, Up, ronctl};

fn status(state: &Path) -> (i32, String) {
    let out = Command::new(ronctl())
        .args(["status", "--state-dir"])
        .arg(state)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn addr_of(url: &str) -> std::net::SocketAddr {
    let rest = url.trim_start_matches("http://");
    rest[..rest.find('/').unwrap_or(rest.len())]
        .parse()
        .unwrap()
}

fn call(front: &str, method: &str, path: &str, body: Option<&str>) -> test_support::Response {
    let raw = match body {
        Some(b) => format!(
            "{method} {path} HTTP/1.1\r\nHost: ron\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ),
        None => test_support::request(method, path, &[]),
    };
    http_raw(addr_of(front), raw.as_bytes(), false).expect("request through the front door")
}

fn alive(pid: u64) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

#[test]
fn up_serves_the_stack_behind_sentinel_and_drains_front_door_first() {
    let state = temp_dir("ronctl-up");
    let mut up = Up::start(&state, &[]);
    let doc = up.state_doc();
    let front = doc["front"].as_str().unwrap().to_string();
    let names: Vec<&str> = doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, SERVICES, "start order");

    // Chat (everything not under /edge or /cas) through sentinel to rustchat.
    let live = call(&front, "GET", "/api/v1/health/live", None);
    assert_eq!(live.status, 200, "{}", live.text());
    let reg = call(
        &front,
        "POST",
        "/api/v1/auth/register",
        Some(r#"{"username":"opsuser","email":"ops@example.com","password":"password-123"}"#),
    );
    assert_eq!(reg.status, 201, "{}", reg.text());
    // Edge assets, tiles and the CAS through sentinel to svc-edge.
    let page = call(&front, "GET", "/edge/assets/index.html", None);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("svc-edge"), "{}", page.text());
    let tj = call(&front, "GET", "/edge/tiles/world.json", None);
    assert_eq!(tj.status, 200);
    assert!(serde_json::from_slice::<Value>(&tj.body).unwrap()["tiles"].is_array());
    let cas = call(&front, "GET", &format!("/cas/b3/{}", "0".repeat(64)), None);
    assert_eq!(cas.status, 404, "{}", cas.text());
    assert!(
        cas.text().contains("not_found"),
        "svc-edge's JSON 404: {}",
        cas.text()
    );

    let (code, out) = status(&state);
    assert_eq!(code, 0, "{out}");
    for s in SERVICES {
        assert!(
            out.lines()
                .any(|l| l.starts_with(s) && l.contains(" ready ")),
            "{s} ready in:\n{out}"
        );
    }
    for s in doc["services"].as_array().unwrap() {
        let url = s["metrics_url"].as_str().unwrap();
        let rest = url.trim_start_matches("http://");
        let path = &rest[rest.find('/').unwrap()..];
        let m = test_support::get(addr_of(url), path, &[]);
        assert_eq!(m.status, 200, "{url}");
        assert!(m.text().contains("build_version"), "{url}: base labels");
    }

    // mongoose turns sentinel's access log into per-route windows with error rates.
    let stats = PathBuf::from(doc["route_stats"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(40);
    let rows = loop {
        let rows: Vec<Value> = std::fs::read_to_string(&stats)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let keys: Vec<&str> = rows.iter().filter_map(|r| r["key"].as_str()).collect();
        if keys.contains(&"chat") && keys.contains(&"edge") && keys.contains(&"cas") {
            break rows;
        }
        assert!(Instant::now() < deadline, "route windows so far: {rows:?}");
        std::thread::sleep(Duration::from_millis(500));
    };
    // The requests may straddle a window boundary: add the chat windows up.
    let chat: Vec<&Value> = rows.iter().filter(|r| r["key"] == "chat").collect();
    let total: u64 = chat.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    let errors: u64 = chat.iter().map(|r| r["errors"].as_u64().unwrap()).sum();
    assert!(total >= 2, "{chat:?}");
    assert_eq!(errors, 0, "{chat:?}");
    assert!(chat.iter().all(|r| r["error_rate"].is_number()));

    let pids: Vec<u64> = doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["pid"].as_u64().unwrap())
        .collect();
    up.terminate();
    assert_eq!(
        up.wait_exit(Duration::from_secs(150)),
        0,
        "{}",
        up.seen.join("\n")
    );
    let pos = |needle: &str| {
        up.seen
            .iter()
            .position(|l| l == &format!("ronctl: {needle}"))
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{}", up.seen.join("\n")))
    };
    assert!(pos("sentinel-proxy stopped (exit status: 0)") < pos("stopping rustchat"));
    assert!(pos("sentinel-proxy stopped (exit status: 0)") < pos("stopping svc-edge"));
    assert!(pos("rustchat stopped (exit status: 0)") < pos("stopping mongoose-server"));
    assert!(pos("svc-edge stopped (exit status: 0)") < pos("stopping mongoose-server"));
    assert!(up.seen.iter().any(|l| l == "ronctl: stack stopped"));
    for pid in pids {
        assert!(!alive(pid), "service pid {pid} outlived ronctl");
    }
    let (code, out) = status(&state);
    assert_eq!(code, 3, "{out}");
}

#[test]
fn a_service_that_dies_stops_the_stack_with_status_1() {
    let state = temp_dir("ronctl-die");
    let mut up = Up::start(&state, &[]);
    let doc = up.state_doc();
    let edge = doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "svc-edge")
        .unwrap()["pid"]
        .as_u64()
        .unwrap();
    // SAFETY: killing a process this test's ronctl started.
    unsafe {
        libc::kill(edge as i32, libc::SIGKILL);
    }
    assert_eq!(up.wait_exit(Duration::from_secs(150)), 1);
    assert!(
        up.seen
            .iter()
            .any(|l| l == "ronctl: stopped because svc-edge exited"),
        "{}",
        up.seen.join("\n")
    );
    for s in doc["services"].as_array().unwrap() {
        assert!(
            !alive(s["pid"].as_u64().unwrap()),
            "{} still running",
            s["name"]
        );
    }
}

#[test]
fn missing_binaries_exit_2_naming_the_path() {
    let state = temp_dir("ronctl-nobin");
    let out = Command::new(ronctl())
        .args([
            "up",
            "--ports",
            "auto",
            "--bin-dir",
            "/nonexistent/bin",
            "--state-dir",
        ])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("/nonexistent/bin/rustchat not found"),
        "{text}"
    );
    let (code, out) = status(&state);
    assert_eq!(code, 3, "{out}");
}
