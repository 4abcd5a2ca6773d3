//! Module-level black-box tests of the CAS, the RAM cache and live fill (EDGE-T14 to T20)
//! through the crate's public API, against an in-process HTTPS origin: a tokio-rustls
//! server with an rcgen test CA and a `localhost` certificate, reached with
//! `allow_private=true` and `ca_file` set.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::origin::{Origin, delayed, full, redirect, streamed};
use svc_edge::cas::{Cas, CasError};
use svc_edge::config::{EdgeConfig, Mode};
use svc_edge::errors::EdgeError;
use svc_edge::fill::store::Store;
use svc_edge::fill::{FillHit, Filler};
use svc_edge::metrics::EdgeMetrics;
use svc_edge::ramcache::RamCache;

struct Rig {
    filler: Filler,
    metrics: EdgeMetrics,
}

fn rig(config: &EdgeConfig, store: Store) -> Rig {
    let m = ron_metrics::Metrics::builder().build().unwrap();
    let metrics = EdgeMetrics::register(m, &["localhost".to_owned()]).unwrap();
    let store = match store {
        Store::Cas(c) => Store::Cas(c.with_metrics(&metrics)),
        ram => ram,
    };
    Rig {
        filler: Filler::new(config, &metrics, store).unwrap(),
        metrics,
    }
}

impl Rig {
    fn counter(&self, family: &str, label: &str) -> u64 {
        let m = &self.metrics;
        match family {
            "attempts" => m.fill_attempts.with_label_values(&[label]).get(),
            "success" => m.fill_success.with_label_values(&[label]).get(),
            "retries" => m.fill_retries.with_label_values(&[label]).get(),
            "io_timeouts" => m.io_timeouts.with_label_values(&[label]).get(),
            "cas_writes" => m.cas_writes.with_label_values(&[label]).get(),
            "hits" => m.hits.with_label_values(&[label]).get(),
            "coalesced" => m.fill_coalesced.get(),
            other => panic!("no counter {other}"),
        }
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

fn cas_dir(tag: &str) -> PathBuf {
    test_support::temp_dir(tag)
}

fn count_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() { count_files(&p) } else { 1 }
        })
        .sum()
}

fn object_path(root: &Path, hex: &str) -> PathBuf {
    root.join("b3").join(&hex[..2]).join(&hex[2..4]).join(hex)
}

async fn get(r: &Rig, host: &str, path: &[&str], b3: Option<&str>) -> Result<FillHit, EdgeError> {
    r.filler.get(host, path, b3, soon()).await
}

#[tokio::test]
async fn edge_t14_cas_reads_are_verified_once_and_corrupt_objects_are_quarantined() {
    let root = cas_dir("t14");
    let cas = Cas::open(&root, true).unwrap();
    let good = cas.put(b"good object", None).await.unwrap().hex;
    let obj = cas.get(&good).await.unwrap().unwrap();
    assert_eq!(&obj.body[..], b"good object");
    assert_eq!(&*obj.etag, format!("\"b3:{good}\""));
    assert!(cas.get(&"0".repeat(64)).await.unwrap().is_none());
    assert!(matches!(
        cas.get(&good.to_uppercase()).await,
        Err(CasError::BadDigest(_))
    ));
    assert!(matches!(
        cas.get(&good[..63]).await,
        Err(CasError::BadDigest(_))
    ));

    // Flip bytes on disk before the first read of a fresh process (a new handle).
    let victim = blake3::hash(b"victim bytes").to_hex().to_string();
    let path = object_path(&root, &victim);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"victim bytez").unwrap();
    let m = ron_metrics::Metrics::builder().build().unwrap();
    let metrics = EdgeMetrics::register(m, &[]).unwrap();
    let fresh = Cas::open(&root, true).unwrap().with_metrics(&metrics);
    let err = fresh.get(&victim).await.unwrap_err();
    assert!(matches!(err, CasError::Integrity { .. }));
    assert_eq!(err.edge_error(), EdgeError::Integrity);
    assert_eq!(metrics.integrity.with_label_values(&["cas"]).get(), 1);
    assert!(!path.exists());
    assert_eq!(count_files(&root.join("quarantine")), 1);
    assert!(fresh.get(&victim).await.unwrap().is_none());
    std::fs::remove_dir_all(root).unwrap();
}

#[tokio::test]
async fn edge_t15_a_fill_stores_object_and_ref_and_the_second_get_skips_the_origin() {
    let origin = Origin::start(|_, _| full(200, "tile bytes")).await;
    let root = cas_dir("t15");
    let r = rig(
        &origin.config(Some(&root)),
        Store::Cas(Cas::open(&root, true).unwrap()),
    );
    let first = get(&r, &origin.host(), &["tiles", "a.txt"], None)
        .await
        .unwrap();
    assert_eq!(&first.body[..], b"tile bytes");
    assert!(!first.cached);
    assert_eq!(&*first.content_type, "text/plain");
    let hex = blake3::hash(b"tile bytes").to_hex().to_string();
    assert_eq!(&*first.hash, hex);
    assert_eq!(&*first.etag, format!("\"b3:{hex}\""));
    assert!(object_path(&root, &hex).is_file());
    assert_eq!(count_files(&root.join("refs")), 1);
    assert_eq!(count_files(&root.join("tmp")), 0);
    let second = get(&r, &origin.host(), &["tiles", "a.txt"], None)
        .await
        .unwrap();
    assert!(second.cached);
    assert_eq!(second.body, first.body);
    assert_eq!(origin.requests_for("/tiles/a.txt"), 1);
    assert_eq!(r.counter("attempts", "localhost"), 1);
    assert_eq!(r.counter("success", "localhost"), 1);
    assert_eq!(r.counter("cas_writes", "ok"), 1);
    assert_eq!(r.counter("hits", "live"), 1);
    let sent = origin.requests.lock()[0].1.clone();
    let allowed: BTreeSet<String> = ["accept", "accept-encoding", "host", "user-agent"]
        .map(String::from)
        .into();
    assert_eq!(sent, allowed);
    std::fs::remove_dir_all(root).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_t16_fifty_concurrent_gets_make_one_origin_request() {
    let origin = Origin::start(|_, _| delayed(b"slow object", Duration::from_millis(500))).await;
    let root = cas_dir("t16");
    let r = Arc::new(rig(
        &origin.config(Some(&root)),
        Store::Cas(Cas::open(&root, true).unwrap()),
    ));
    let host = origin.host();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (r, host) = (r.clone(), host.clone());
            tokio::spawn(async move { get(&r, &host, &["slow"], None).await.unwrap().body })
        })
        .collect();
    for t in tasks {
        assert_eq!(&t.await.unwrap()[..], b"slow object");
    }
    assert_eq!(origin.requests_for("/slow"), 1);
    assert_eq!(r.counter("attempts", "localhost"), 1);
    assert_eq!(r.counter("coalesced", ""), 49);
    std::fs::remove_dir_all(root).unwrap();
}

#[tokio::test]
async fn edge_t17_b3_pins_the_digest_and_a_known_digest_needs_no_origin() {
    let origin = Origin::start(|path, _| full(200, format!("body of {path}"))).await;
    let root = cas_dir("t17");
    let config = origin.config(Some(&root));
    let r = rig(&config, Store::Cas(Cas::open(&root, true).unwrap()));
    let host = origin.host();

    let wrong = "f".repeat(64);
    let err = get(&r, &host, &["x"], Some(&wrong)).await.err();
    assert_eq!(err, Some(EdgeError::DigestMismatch));
    assert_eq!(count_files(&root.join("b3")), 0);
    assert_eq!(count_files(&root.join("refs")), 0);
    assert_eq!(count_files(&root.join("tmp")), 0);

    let right = blake3::hash(b"body of /x").to_hex().to_string();
    let hit = get(&r, &host, &["x"], Some(&right)).await.unwrap();
    assert_eq!(&*hit.hash, right);
    assert!(object_path(&root, &right).is_file());
    assert_eq!(origin.requests_for("/x"), 2);

    let mut offline = config.clone();
    offline.edge.mode = Mode::Offline;
    r.filler.reconfigure(&offline).unwrap();
    let again = get(&r, &host, &["other", "path"], Some(&right))
        .await
        .unwrap();
    assert!(again.cached);
    assert_eq!(origin.requests_for("/other/path"), 0);
    assert_eq!(
        get(&r, &host, &["never"], None).await.err(),
        Some(EdgeError::NotFound)
    );
    assert_eq!(
        get(&r, &host, &["x"], Some("ABC")).await.err(),
        Some(EdgeError::BadRequest)
    );
    std::fs::remove_dir_all(root).unwrap();
}

#[tokio::test]
async fn edge_t18_the_allow_list_vetting_and_redirect_rules_hold() {
    let origin = Origin::start(move |path, _| {
        let port = path.split('/').nth(2).unwrap_or("0").to_owned();
        match path.split('/').nth(1).unwrap_or("") {
            "ok" => full(200, "fine"),
            "to-ok" => redirect("/ok"),
            "to-abs" => redirect(&format!("https://localhost:{port}/ok")),
            "to-unlisted" => redirect(&format!("https://127.0.0.1:{port}/ok")),
            "to-http" => redirect(&format!("http://localhost:{port}/ok")),
            "hop" => {
                let left: usize = path.rsplit('/').next().unwrap().parse().unwrap();
                if left == 0 {
                    full(200, "end")
                } else {
                    redirect(&format!("/hop/{port}/{}", left - 1))
                }
            }
            _ => full(404, ""),
        }
    })
    .await;
    let root = cas_dir("t18");
    let config = origin.config(Some(&root));
    let r = rig(&config, Store::Cas(Cas::open(&root, true).unwrap()));
    let host = origin.host();
    let port = origin.port.to_string();

    assert_eq!(
        get(&r, "localhost:1", &["ok"], None).await.err(),
        Some(EdgeError::NotAllowed)
    );
    assert_eq!(
        get(&r, "evil.example", &["ok"], None).await.err(),
        Some(EdgeError::NotAllowed)
    );
    assert_eq!(origin.connections.load(Ordering::SeqCst), 0);

    let upper = format!("LOCALHOST:{}", origin.port);
    assert_eq!(
        &get(&r, &upper, &["ok"], None).await.unwrap().body[..],
        b"fine"
    );
    assert_eq!(
        &get(&r, &host, &["to-ok"], None).await.unwrap().body[..],
        b"fine"
    );
    assert_eq!(
        &get(&r, &host, &["to-abs", &port], None).await.unwrap().body[..],
        b"fine"
    );
    for bad in ["to-unlisted", "to-http"] {
        assert_eq!(
            get(&r, &host, &[bad, &port], None).await.err(),
            Some(EdgeError::Upstream),
            "{bad}"
        );
    }
    assert_eq!(
        &get(&r, &host, &["hop", &port, "5"], None)
            .await
            .unwrap()
            .body[..],
        b"end"
    );
    assert_eq!(
        get(&r, &host, &["hop", &port, "6"], None).await.err(),
        Some(EdgeError::Upstream)
    );

    let mut strict = config.clone();
    strict.edge.allow_private = false;
    r.filler.reconfigure(&strict).unwrap();
    let before = origin.connections.load(Ordering::SeqCst);
    assert_eq!(
        get(&r, &host, &["ok", "fresh"], None).await.err(),
        Some(EdgeError::PrivateAddress)
    );
    assert_eq!(origin.connections.load(Ordering::SeqCst), before);
    std::fs::remove_dir_all(root).unwrap();
}

#[tokio::test]
async fn edge_t19_size_time_status_and_retry_bounds_hold() {
    let origin = Origin::start(|path, n| match path {
        "/big-declared" => full(200, vec![0u8; 4096]),
        "/big-chunked" => streamed(4, None),
        "/stall" => streamed(0, Some((10, 1000))),
        "/flaky" if n <= 2 => full(503, ""),
        "/flaky" => full(200, "third time"),
        "/gone" => full(404, ""),
        "/forbidden" => full(403, ""),
        _ => full(500, ""),
    })
    .await;
    let root = cas_dir("t19");
    let mut config = origin.config(Some(&root));
    config.edge.max_object_bytes = 2048;
    config.edge.fill_timeout_secs = 1;
    let r = rig(&config, Store::Cas(Cas::open(&root, true).unwrap()));
    let host = origin.host();

    for path in ["big-declared", "big-chunked"] {
        assert_eq!(
            get(&r, &host, &[path], None).await.err(),
            Some(EdgeError::TooLarge),
            "{path}"
        );
    }
    assert_eq!(
        count_files(&root.join("b3"))
            + count_files(&root.join("tmp"))
            + count_files(&root.join("refs")),
        0
    );

    let started = Instant::now();
    assert_eq!(
        get(&r, &host, &["stall"], None).await.err(),
        Some(EdgeError::Timeout)
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(r.counter("io_timeouts", "fill"), 1);
    assert_eq!(count_files(&root.join("tmp")), 0);

    let ok = get(&r, &host, &["flaky"], None).await.unwrap();
    assert_eq!(&ok.body[..], b"third time");
    assert_eq!(r.counter("retries", "localhost"), 2);
    assert_eq!(origin.requests_for("/flaky"), 3);

    assert_eq!(
        get(&r, &host, &["gone"], None).await.err(),
        Some(EdgeError::NotFound)
    );
    assert_eq!(
        get(&r, &host, &["forbidden"], None).await.err(),
        Some(EdgeError::Upstream4xx)
    );
    assert_eq!(origin.requests_for("/forbidden"), 1);
    std::fs::remove_dir_all(root).unwrap();
}

#[tokio::test]
async fn edge_t20_amnesia_fills_live_in_ram_and_refuse_objects_over_a_quarter_of_it() {
    let origin = Origin::start(|path, _| match path {
        "/small" => full(200, "in memory"),
        _ => full(200, vec![0u8; 2000]),
    })
    .await;
    let cwd = test_support::temp_dir("t20-cwd");
    std::env::set_current_dir(&cwd).unwrap();
    let mut config = origin.config(None);
    config.security.amnesia = true;
    config.edge.ram_cache_bytes = 4096;
    let ram = Arc::new(RamCache::new(config.edge.ram_cache_bytes));
    let r = rig(&config, Store::Ram(ram.clone()));
    let host = origin.host();

    let first = get(&r, &host, &["small"], None).await.unwrap();
    assert_eq!(&first.body[..], b"in memory");
    let second = get(&r, &host, &["small"], None).await.unwrap();
    assert!(second.cached);
    assert_eq!(origin.requests_for("/small"), 1);
    let by_digest = r
        .filler
        .store()
        .by_digest(&first.hash, "x")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_digest.body, first.body);
    assert_eq!(r.metrics.ram_cache_bytes.get() as u64, ram.bytes_used());

    assert_eq!(
        get(&r, &host, &["large"], None).await.err(),
        Some(EdgeError::Amnesia)
    );
    assert!(ram.bytes_used() <= 4096);
    assert_eq!(count_files(&cwd), 0);
    std::fs::remove_dir_all(cwd).unwrap();
}

#[tokio::test]
async fn an_origin_without_tls_fails_the_fill_and_counts_a_handshake_failure() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi")
                .await;
        }
    });
    let origin = Origin::start(|_, _| full(200, "")).await;
    let mut config = origin.config(None);
    config.edge.allow = vec![format!("localhost:{port}")];
    config.security.amnesia = true;
    let r = rig(&config, Store::Ram(Arc::new(RamCache::new(1 << 20))));
    let host = format!("localhost:{port}");
    assert_eq!(
        get(&r, &host, &["x"], None).await.err(),
        Some(EdgeError::Upstream)
    );
    assert_eq!(
        r.metrics
            .tls_failures
            .with_label_values(&["outbound"])
            .get(),
        1
    );
}
