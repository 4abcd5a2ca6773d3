//! Black-box streaming and HTTP/2 tests: 64 MiB up and down through the proxy with bounded
//! memory (SEN-T08), h2c prior knowledge from the client, and HTTP/2 end to end to an h2c
//! upstream with trailers (T09 parts).

mod common;

use std::collections::hash_map::DefaultHasher;
use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use common::Proxy;
use common::upstream::Upstream;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use test_support::temp_dir;

const MIB64: usize = 64 << 20;

fn digest(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn kdl(up: std::net::SocketAddr, protocol: &str) -> String {
    format!(
        "server {{\n    listen \"127.0.0.1:0\"\n}}\nlimits {{\n    max-body-size-bytes 0\n}}\nmetrics {{\n    address \"127.0.0.1:0\"\n}}\nupstream \"app\" {{\n    protocol \"{protocol}\"\n    targets {{\n        target \"{up}\"\n    }}\n}}\nroute \"all\" {{\n    upstream \"app\"\n}}\n"
    )
}

#[test]
fn sixty_four_mib_pass_both_ways_intact_with_bounded_memory() {
    let dir = temp_dir("sen-stream");
    let big = pattern(MIB64);
    let want = digest(&big);
    let down = String::from_utf8(big.iter().map(|b| b'a' + b % 26).collect()).unwrap();
    let down_digest = digest(down.as_bytes());
    let up = Upstream::start(move |seen| {
        if seen.method == "POST" {
            (200, format!("{} {}", seen.body.len(), digest(&seen.body)))
        } else {
            (200, down.clone())
        }
    });
    let p = Proxy::start(&dir, &kdl(up.addr, "http1"), &[], 0);
    let pid = p.svc.child.id();
    let before = rss_kib(pid);

    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: {MIB64}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    for chunk in big.chunks(1 << 20) {
        s.write_all(chunk).unwrap();
    }
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(
        answer.ends_with(&format!("{MIB64} {want}")),
        "{}",
        &answer[..answer.len().min(200)]
    );

    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(b"GET /down HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let body_at = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(all.len() - body_at, MIB64);
    assert_eq!(digest(&all[body_at..]), down_digest);
    let grew = rss_kib(pid).saturating_sub(before);
    assert!(
        grew < 16 * 1024,
        "RSS grew by {grew} KiB for 128 MiB streamed"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn h2c_prior_knowledge_reaches_an_http1_upstream() {
    let dir = temp_dir("sen-h2c");
    let up = Upstream::start(|seen| {
        (
            200,
            format!(
                "host={}",
                seen.headers
                    .get("host")
                    .map(|v| v.to_str().unwrap_or(""))
                    .unwrap_or("")
            ),
        )
    });
    let p = Proxy::start(&dir, &kdl(up.addr, "http1"), &[], 0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(p.addr).await.unwrap();
        let (mut tx, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get("http://api.test/x")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = tx.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    });
    assert_eq!(status, 200);
    assert_eq!(body, "host=api.test", ":authority becomes Host");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn http2_end_to_end_to_an_h2c_upstream_keeps_trailers() {
    let dir = temp_dir("sen-h2-trailers");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let up_addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |_req: http::Request<hyper::body::Incoming>| async {
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("x-checksum", http::HeaderValue::from_static("abc"));
                        let frames = futures_util::stream::iter(vec![
                            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"payload"))),
                            Ok(Frame::trailers(trailers)),
                        ]);
                        Ok::<_, Infallible>(http::Response::new(StreamBody::new(frames)))
                    },
                );
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    let p = Proxy::start(&dir, &kdl(up_addr, "h2c"), &[], 0);
    let (body, trailer) = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(p.addr).await.unwrap();
        let (mut tx, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get("http://t/x")
            .header("te", "trailers")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = tx.send_request(req).await.unwrap();
        let collected = resp.into_body().collect().await.unwrap();
        let trailer = collected
            .trailers()
            .and_then(|t| t.get("x-checksum"))
            .map(|v| v.to_str().unwrap_or("").to_owned());
        (collected.to_bytes(), trailer)
    });
    assert_eq!(&body[..], b"payload");
    assert_eq!(
        trailer.as_deref(),
        Some("abc"),
        "trailers cross the proxy over HTTP/2"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
