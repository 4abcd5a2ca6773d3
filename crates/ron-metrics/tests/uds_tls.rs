//! Unix-socket and TLS listeners (MET-T11, MET-T12).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ron_kernel::{HealthState, ShutdownCoordinator};
use ron_metrics::{EnvSource, ServeOptions};
use support::{blocking, metrics};
use test_support::{http_uds, request, temp_dir};
use tokio_rustls::rustls;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uds_in_a_fresh_dir_is_private_and_answers_curl() {
    let dir = temp_dir("uds-fresh");
    let path = dir.join("run").join("metrics.sock");
    let coord = ShutdownCoordinator::new();
    let (_h, bound) = metrics()
        .serve_with(
            path.clone(),
            HealthState::new(),
            ServeOptions::default().shutdown(coord.token()),
        )
        .await
        .unwrap();
    assert_eq!(bound.to_string(), format!("unix:{}", path.display()));
    assert_eq!(
        std::fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::symlink_metadata(&path).unwrap().mode() & 0o777,
        0o600
    );
    let p2 = path.clone();
    let r =
        blocking(move || http_uds(&p2, request("GET", "/healthz", &[]).as_bytes()).unwrap()).await;
    assert_eq!(r.text(), "ok");
    if test_support::tool("curl").is_some() {
        let out = Command::new("curl")
            .args(["-sS", "--unix-socket"])
            .arg(&path)
            .arg("http://x/healthz")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ok");
    }
    coord.force();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_uds_targets_are_refused_and_left_untouched() {
    let dir = temp_dir("uds-refuse");
    chmod(&dir, 0o755);
    let err = metrics()
        .serve_with(
            dir.join("m.sock"),
            HealthState::new(),
            ServeOptions::default(),
        )
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("mode 0755; need 0700"), "{err}");
    chmod(&dir, 0o700);

    let file = dir.join("regular");
    std::fs::write(&file, b"data").unwrap();
    assert!(
        metrics()
            .serve_with(file.clone(), HealthState::new(), ServeOptions::default())
            .await
            .is_err()
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"data");

    let link = dir.join("link.sock");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let err = metrics()
        .serve_with(link.clone(), HealthState::new(), ServeOptions::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("symlink"), "{err}");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );

    let live = dir.join("live.sock");
    let coord = ShutdownCoordinator::new();
    metrics()
        .serve_with(
            live.clone(),
            HealthState::new(),
            ServeOptions::default().shutdown(coord.token()),
        )
        .await
        .unwrap();
    let err = metrics()
        .serve_with(live.clone(), HealthState::new(), ServeOptions::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("in use"), "{err}");
    coord.force();

    let stale = dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let coord = ShutdownCoordinator::new();
    metrics()
        .serve_with(
            stale.clone(),
            HealthState::new(),
            ServeOptions::default().shutdown(coord.token()),
        )
        .await
        .expect("stale socket is replaced");
    coord.force();
}

struct Pki {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    der: Vec<u8>,
}

fn make_cert(dir: &Path, key_mode: u32) -> Pki {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    chmod(&key, key_mode);
    Pki {
        cert,
        key,
        der: ck.cert.der().to_vec(),
    }
}

fn client_config(der: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(der.to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// One TLS GET /healthz; returns (body, whether the handshake resumed).
fn tls_get(addr: SocketAddr, cfg: &Arc<rustls::ClientConfig>) -> (String, bool) {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(cfg.clone(), name).unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf);
    let resumed = tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    (String::from_utf8_lossy(&buf).into_owned(), resumed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_with_resumption_and_counts_plaintext_handshakes_as_failures() {
    let dir = temp_dir("tls");
    let pki = make_cert(&dir, 0o600);
    let env = EnvSource::fixed([
        ("RON_METRICS_TLS_CERT", pki.cert.to_str().unwrap()),
        ("RON_METRICS_TLS_KEY", pki.key.to_str().unwrap()),
    ]);
    let coord = ShutdownCoordinator::new();
    let opts = ServeOptions::from_env_source(&env)
        .unwrap()
        .shutdown(coord.token());
    assert!(opts.tls_enabled());
    let m = metrics();
    let (_h, bound) = m
        .clone()
        .serve_with(
            "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
            HealthState::new(),
            opts,
        )
        .await
        .unwrap();
    let addr: SocketAddr = bound.to_string().parse().unwrap();
    let cfg = client_config(&pki.der);
    let cert = pki.cert.clone();
    let (first, second, curl_out) = blocking(move || {
        let first = tls_get(addr, &cfg);
        let second = tls_get(addr, &cfg);
        let curl_out = test_support::tool("curl").map(|c| {
            let out = Command::new(c)
                .args(["-sS", "--cacert"])
                .arg(&cert)
                .arg("--resolve")
                .arg(format!("localhost:{}:127.0.0.1", addr.port()))
                .arg(format!("https://localhost:{}/healthz", addr.port()))
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        });
        // Plaintext to the TLS port.
        let mut plain = TcpStream::connect(addr).unwrap();
        plain
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        plain
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut sink = Vec::new();
        let _ = plain.read_to_end(&mut sink);
        (first, second, curl_out)
    })
    .await;
    assert!(first.0.ends_with("ok"), "{}", first.0);
    assert!(!first.1);
    assert!(second.0.ends_with("ok"));
    assert!(second.1, "second connection did not resume");
    if let Some(out) = curl_out {
        assert_eq!(out, "ok");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while m.tls_handshake_failures_total.get() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "plaintext not counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    coord.force();
}

#[test]
fn world_readable_key_or_missing_cert_is_a_config_error_naming_the_file() {
    let dir = temp_dir("tls-bad");
    let pki = make_cert(&dir, 0o644);
    let env = EnvSource::fixed([
        ("RON_METRICS_TLS_CERT", pki.cert.to_str().unwrap()),
        ("RON_METRICS_TLS_KEY", pki.key.to_str().unwrap()),
    ]);
    let err = ServeOptions::from_env_source(&env)
        .err()
        .unwrap()
        .to_string();
    assert!(err.starts_with("RON_METRICS_TLS_KEY = "), "{err}");
    assert!(err.contains("world-readable"), "{err}");

    let env = EnvSource::fixed([
        ("RON_METRICS_TLS_CERT", "/nonexistent/cert.pem"),
        ("RON_METRICS_TLS_KEY", pki.key.to_str().unwrap()),
    ]);
    let err = ServeOptions::from_env_source(&env)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");

    // A symlinked private key (mounted secret) is accepted.
    chmod(&pki.key, 0o600);
    let link = dir.join("key-link.pem");
    std::os::unix::fs::symlink(&pki.key, &link).unwrap();
    let env = EnvSource::fixed([
        ("RON_METRICS_TLS_CERT", pki.cert.to_str().unwrap()),
        ("RON_METRICS_TLS_KEY", link.to_str().unwrap()),
    ]);
    assert!(ServeOptions::from_env_source(&env).is_ok());
}
