//! MET-T26, the runbook §9 chaos drill, server side: slow-loris connections at 5/s for 20 s
//! while 64 keep-alive clients load `/metrics` and a `/readyz` probe runs every second.
//!
//! Pass criteria (spec §9): every slow-loris socket is closed ≤ 2.5 s after it opened; the
//! load sees 0 errors and 0 non-2xx; the probe never times out and answers 503 only with
//! `exposer_capacity`; afterwards the exposition is clean, the label grep matches every
//! sample and every counter/histogram family ends in `_total`/`_seconds`/`_bytes`.
//! The drill's client side lives here until `ronctl chaos inject` exists; the load is
//! bounded in time and targets loopback only.

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{blocking, expfmt, promtool_check, start};
use test_support::read_response;

const DRILL: Duration = Duration::from_secs(20);
const SLOWLORIS_EVERY: Duration = Duration::from_millis(200);
const LOAD_CONNECTIONS: usize = 64;

fn slowloris(addr: SocketAddr) -> Duration {
    let t0 = Instant::now();
    let mut c = TcpStream::connect(addr).expect("slowloris connect");
    let _ = c.write_all(b"GET /metrics HTTP/1.1\r\nHo");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    test_support::time_to_close(c, t0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_under_load_keeps_the_exposer_healthy() {
    let s = start(|o| o).await;
    let addr = s.addr;
    let (slow, ok, errors, probes) = blocking(move || {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let loaders: Vec<_> = (0..LOAD_CONNECTIONS)
            .map(|_| {
                let (stop, ok, errors) = (stop.clone(), ok.clone(), errors.clone());
                std::thread::spawn(move || {
                    let mut c = TcpStream::connect(addr).unwrap();
                    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    while !stop.load(Ordering::Relaxed) {
                        let sent = c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
                        match sent.and_then(|_| read_response(&mut c, false)) {
                            Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                            _ => errors.fetch_add(1, Ordering::Relaxed),
                        };
                        std::thread::sleep(Duration::from_millis(20));
                    }
                })
            })
            .collect();
        let prober = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let r = test_support::http_raw(
                        addr,
                        b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                        false,
                    );
                    answers.push(r.map(|r| (r.status, r.text())).map_err(|e| e.to_string()));
                    std::thread::sleep(Duration::from_secs(1));
                }
                answers
            })
        };
        let started = Instant::now();
        let mut slow = Vec::new();
        while started.elapsed() < DRILL {
            slow.push(std::thread::spawn(move || slowloris(addr)));
            std::thread::sleep(SLOWLORIS_EVERY);
        }
        let slow: Vec<Duration> = slow.into_iter().map(|h| h.join().unwrap()).collect();
        stop.store(true, Ordering::Relaxed);
        for l in loaders {
            l.join().unwrap();
        }
        let probes = prober.join().unwrap();
        (
            slow,
            ok.load(Ordering::Relaxed),
            errors.load(Ordering::Relaxed),
            probes,
        )
    })
    .await;

    assert!(
        slow.len() >= 95,
        "only {} slow-loris connections",
        slow.len()
    );
    let worst = slow.iter().max().unwrap();
    assert!(
        *worst <= Duration::from_millis(2500),
        "a slow-loris socket lived {worst:?}"
    );
    assert_eq!(errors, 0, "load saw errors");
    assert!(ok > 1000, "load made only {ok} requests");
    assert!(probes.len() >= 15);
    for p in &probes {
        let (status, body) = p.as_ref().expect("readyz probe failed");
        assert!(
            *status == 200 || (*status == 503 && body.contains("exposer_capacity")),
            "{status} {body}"
        );
    }
    let reads = s
        .metrics
        .io_timeouts_total
        .with_label_values(&["read"])
        .get();
    assert!(reads >= slow.len() as u64 - 1);

    let addr = s.addr;
    let text = blocking(move || test_support::get(addr, "/metrics", &[]).text()).await;
    let stats = expfmt::check(&text, false).unwrap_or_else(|e| panic!("{e}"));
    assert!(support::runbook_label_grep_matches_every_sample(&text));
    for (name, ty) in &stats.types {
        let ok = match ty.as_str() {
            "counter" => name.ends_with("_total"),
            "histogram" => name.ends_with("_seconds") || name.ends_with("_bytes"),
            _ => true,
        };
        assert!(ok, "{name} ({ty}) breaks the suffix rule");
    }
    if let Some((code, out)) = promtool_check(&text, false) {
        assert_eq!((code, out.as_str()), (0, ""));
    }
}
