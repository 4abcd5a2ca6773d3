//! Black-box TLS listener tests (SEN-T09 part, T23 part): ALPN h2 and http/1.1 both proxy
//! to an HTTP/1.1 upstream, and a SIGHUP makes new handshakes see rotated certificates.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::Proxy;
use common::upstream::Upstream;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use test_support::temp_dir;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// Writes a fresh CA and a `localhost` leaf signed by it to `dir`; returns the CA cert DER.
fn issue(dir: &Path) -> CertificateDer<'static> {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
    ca.der().clone()
}

/// GET `path` over TLS with ALPN `alpn`; returns (negotiated ALPN, status, body).
async fn fetch(
    addr: std::net::SocketAddr,
    ca: &CertificateDer<'static>,
    alpn: &[u8],
    path: &str,
) -> Result<(Vec<u8>, u16, String), String> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let negotiated = tls.get_ref().1.alpn_protocol().unwrap_or_default().to_vec();
    let req = http::Request::get(format!("https://localhost{path}"))
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = if negotiated == b"h2" {
        let (mut tx, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        tx.send_request(req).await.map_err(|e| e.to_string())?
    } else {
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut req = req;
        *req.uri_mut() = path.parse().unwrap();
        tx.send_request(req).await.map_err(|e| e.to_string())?
    };
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((
        negotiated,
        status,
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

#[test]
fn https_listeners_speak_h2_and_http1_and_pick_up_rotated_certificates() {
    let dir = temp_dir("sen-tls");
    let ca1 = issue(&dir);
    let up = Upstream::start(|seen| {
        (
            200,
            format!(
                "proto={}",
                seen.headers
                    .get("x-forwarded-proto")
                    .map(|v| v.to_str().unwrap_or(""))
                    .unwrap_or("")
            ),
        )
    });
    let kdl = format!(
        "server {{\n    listen \"127.0.0.1:0\"\n}}\nmetrics {{\n    address \"127.0.0.1:0\"\n}}\nlisteners {{\n    listener \"secure\" {{\n        address \"127.0.0.1:0\"\n        protocol \"https\"\n        tls {{\n            cert-file \"cert.pem\"\n            key-file \"key.pem\"\n        }}\n    }}\n}}\nupstream \"app\" {{\n    targets {{\n        target \"{}\"\n    }}\n}}\nroute \"all\" {{\n    upstream \"app\"\n}}\n",
        up.addr
    );
    let mut p = Proxy::start(&dir, &kdl, &[], 1);
    let secure = p.listener("secure");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (alpn, status, body) = rt.block_on(fetch(secure, &ca1, b"h2", "/x")).unwrap();
    assert_eq!(
        (alpn.as_slice(), status, body.as_str()),
        (&b"h2"[..], 200, "proto=https")
    );
    let (alpn, status, body) = rt.block_on(fetch(secure, &ca1, b"http/1.1", "/x")).unwrap();
    assert_eq!(
        (alpn.as_slice(), status, body.as_str()),
        (&b"http/1.1"[..], 200, "proto=https")
    );

    // Rotate to a certificate from another CA; after SIGHUP new handshakes use it.
    let ca2 = issue(&dir);
    p.svc.signal(libc::SIGHUP);
    let done = p.lines_with("Configuration reload completed", Duration::from_secs(3));
    assert_eq!(done.len(), 1, "{:?}", p.log);
    assert!(
        rt.block_on(fetch(secure, &ca1, b"h2", "/x")).is_err(),
        "old CA no longer verifies"
    );
    let (_, status, _) = rt.block_on(fetch(secure, &ca2, b"h2", "/x")).unwrap();
    assert_eq!(status, 200);
    std::fs::remove_dir_all(dir).unwrap();
}
