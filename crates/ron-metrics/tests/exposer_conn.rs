//! Connection-level tests of the standalone exposer (MET-T2, T8, T9, T10, T13): readiness
//! transitions, slow-loris and idle deadlines, the write deadline, the connection cap with
//! saturation readiness, and the bind/stop lifecycle.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ron_kernel::HealthState;
use ron_metrics::ServeOptions;
use support::{blocking, start};
use test_support::{get, read_response};

/// Time until the server closes `c`, bounded by a 30 s read timeout.
fn time_to_close(c: TcpStream, since: Instant) -> Duration {
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    test_support::time_to_close(c, since)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_missing_checks_then_turns_ready_with_a_later_since() {
    let s = start(|o| o).await;
    s.health.set("config_loaded", false);
    let addr = s.addr;
    let before = blocking(move || get(addr, "/readyz", &[])).await;
    assert_eq!(before.status, 503);
    assert_eq!(before.header("retry-after"), Some("5"));
    assert_eq!(before.header("content-type"), Some("application/json"));
    let text = before.text();
    assert!(
        text.starts_with(
            "{\"degraded\":true,\"missing\":[\"config_loaded\"],\"retry_after\":5,\"since\":\""
        ),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 4);
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.health.set("config_loaded", true);
    let after = blocking(move || get(addr, "/readyz", &[])).await;
    assert_eq!(after.status, 200);
    assert!(after.header("retry-after").is_none());
    let v2: serde_json::Value = serde_json::from_slice(&after.body).unwrap();
    assert_eq!(v2["retry_after"], 0);
    assert_eq!(v2["degraded"], false);
    assert!(v2["since"].as_str().unwrap() > v["since"].as_str().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_headers_are_cut_after_the_read_deadline_and_counted() {
    let s = start(|o| o).await;
    let addr = s.addr;
    let took = blocking(move || {
        let t0 = Instant::now();
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHo").unwrap();
        time_to_close(c, t0)
    })
    .await;
    assert!(
        took >= Duration::from_millis(1900) && took <= Duration::from_secs(3),
        "closed after {took:?}"
    );
    let read = s
        .metrics
        .io_timeouts_total
        .with_label_values(&["read"])
        .get();
    assert_eq!(read, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connection_is_closed_after_the_idle_limit() {
    let s = start(|o| o).await;
    let addr = s.addr;
    let took = blocking(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let r = read_response(&mut c, false).unwrap();
        assert_eq!(r.status, 200);
        let t0 = Instant::now();
        time_to_close(c, t0)
    })
    .await;
    assert!(
        took >= Duration::from_secs(14) && took <= Duration::from_secs(17),
        "idle close after {took:?}"
    );
    // Idle closes are not errors.
    assert_eq!(
        s.metrics
            .io_timeouts_total
            .with_label_values(&["read"])
            .get(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_by_the_write_deadline() {
    let m = ron_metrics::Metrics::builder()
        .env(ron_metrics::EnvSource::fixed::<&str, &str>([]))
        .synthetic_load(true)
        .build()
        .unwrap();
    let s = support::start_with(m, |o| o.write_timeout(Duration::from_millis(200))).await;
    let addr = s.addr;
    let metrics = s.metrics.clone();
    blocking(move || {
        let c = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        // A tiny receive window keeps the server's write blocked.
        c.set_recv_buffer_size(4096).unwrap();
        c.connect(&addr.into()).unwrap();
        let mut c: TcpStream = c.into();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while metrics
            .io_timeouts_total
            .with_label_values(&["write"])
            .get()
            == 0
        {
            assert!(Instant::now() < deadline, "write deadline never hit");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The server closed its end: draining the socket reaches EOF or a reset.
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut sink = Vec::new();
        let _ = c.read_to_end(&mut sink);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_degrades_readiness_first_then_refuses_with_busy() {
    let s = start(|o| {
        o.max_connections(20)
            .header_read_timeout(Duration::from_secs(20))
    })
    .await;
    let addr = s.addr;
    let metrics = s.metrics.clone();
    blocking(move || {
        let open = |n: usize| -> Vec<TcpStream> {
            (0..n).map(|_| TcpStream::connect(addr).unwrap()).collect()
        };
        let wait_open = |n: i64| {
            let deadline = Instant::now() + Duration::from_secs(5);
            while metrics_conn(&metrics) != n {
                assert!(Instant::now() < deadline, "expected {n} open connections");
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        let mut idle = open(18);
        wait_open(18);
        let r = get(addr, "/readyz", &[]);
        assert_eq!(r.status, 503);
        assert!(r.text().contains("\"exposer_capacity\""), "{}", r.text());

        idle.extend(open(2));
        wait_open(20);
        let t0 = Instant::now();
        let mut extra = TcpStream::connect(addr).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = Vec::new();
        let _ = extra.read_to_end(&mut buf);
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "busy answer took {:?}",
            t0.elapsed()
        );
        let text = String::from_utf8_lossy(&buf);
        assert!(
            text.is_empty()
                || (text.starts_with("HTTP/1.1 503")
                    && text.contains("\"code\":\"busy\"")
                    && text.contains("retry-after: 1")),
            "{text}"
        );
        assert!(
            metrics
                .rejected_total
                .with_label_values(&["conn_limit"])
                .get()
                >= 1
        );

        idle.truncate(10);
        wait_open(10);
        let r = get(addr, "/readyz", &[]);
        assert_eq!(r.status, 200, "{}", r.text());
    })
    .await;
}

fn metrics_conn(m: &ron_metrics::Metrics) -> i64 {
    let mut out = Vec::new();
    m.encode(None, ron_metrics::Format::Text004, &mut out);
    String::from_utf8(out)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("exposer_connections{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_zero_reports_the_real_port_and_in_use_ports_fail_naming_the_address() {
    let s = start(|o| o).await;
    assert_ne!(s.addr.port(), 0);
    let err = support::metrics()
        .serve_with(s.addr, HealthState::new(), ServeOptions::default())
        .await
        .expect_err("second bind must fail");
    assert!(err.to_string().contains(&s.addr.to_string()), "{err}");

    let bad = support::metrics()
        .serve_with(
            "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
            HealthState::new(),
            ServeOptions::default().max_connections(0),
        )
        .await;
    assert!(bad.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_completes_the_join_handle_and_removes_the_socket_file() {
    let s = start(|o| o).await;
    s.coord.trigger();
    let addr = s.addr;
    // While draining the observability listener still answers, with Connection: close.
    let r = blocking(move || {
        test_support::http_raw(addr, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", false).unwrap()
    })
    .await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("connection"), Some("close"));
    s.coord.force();
    tokio::time::timeout(Duration::from_secs(5), s.handle)
        .await
        .expect("join handle completes")
        .unwrap();

    let dir = test_support::temp_dir("uds-stop");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let path = dir.join("m.sock");
    let coord = ron_kernel::ShutdownCoordinator::new();
    let (h, _) = support::metrics()
        .serve_with(
            path.clone(),
            HealthState::new(),
            ServeOptions::default().shutdown(coord.token()),
        )
        .await
        .unwrap();
    assert!(path.exists());
    coord.force();
    tokio::time::timeout(Duration::from_secs(5), h)
        .await
        .unwrap()
        .unwrap();
    assert!(!path.exists());
}
