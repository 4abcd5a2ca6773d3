//! `tcp` feed (MNG-R12, §3.2, §7): a line-oriented listener on the I/O runtime.
//!
//! - **Lines.** End in `\n`; a preceding `\r` is stripped. Each line is one JSON value
//!   (`format: json`, the default) or becomes a JSON string (`format: text`). A line over
//!   `maxLineBytes` is skipped up to its newline, its first KiB quarantined as
//!   `decode_error` (`too_long`), and the connection stays open. Bad JSON is quarantined
//!   and skipped. An unterminated last line before the peer closes still counts.
//! - **Acks** (`ack: true`): each line is answered, in order, with `{"seq":n,"ok":true}`
//!   when the event reached every subscribed group (`PublishReport::lossless`), else
//!   `{"ok":false,"code":"bad_json|backpressure|too_long"}`. `n` is the line's number on
//!   its connection, from 1: the publisher does not hand back the feed-wide sequence, and
//!   the line number lets a client match acks to what it sent. Blank lines in `json`
//!   format carry no event and get no ack (their numbers are still counted).
//! - **Bounds.** At most `maxConnections` connections (more are closed at once); a
//!   connection idle (no bytes read, or an ack write stuck) for `idleTimeoutMs` is closed;
//!   a non-loopback `address` needs `allowRemote: true`. With `tls`, connections are
//!   rustls server sessions (handshake within 10 s).
//! - **Stop.** When `out.stop` is cancelled the listener closes, then every connection.
//! - **Publishing.** Each connection publishes through its own clone of the feed's
//!   multi-producer publisher, via [`run_blocking`](super::run_blocking) since a `block`
//!   policy may wait up to `maxWaitMs`.
//! - **Connected** while the listener is bound. A non-critical feed whose bind fails keeps
//!   retrying with the reconnect backoff.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{
    Acceptor, Format, LineOutcome, LineSplitter, MAX_LINE_BYTES_LIMIT, Piece, TlsConfig,
    accept_loop, bind_for_build, handle_piece, is_loopback, run_blocking,
};
use crate::builtins::parse_config;
use crate::event::JsonEvent;
use crate::feed::{DecodeError, FeedEnv, FeedOut, FeedRunner, RunsOn};
use crate::processor::ConfigMap;

/// Where the feed runs: the I/O runtime.
pub const RUNS_ON: RunsOn = RunsOn::Io;
/// Every connection publishes.
pub const MULTI_PRODUCER: bool = true;

const READ_CHUNK: usize = 64 * 1024;

/// `tcp` feed config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TcpConfig {
    /// Listen address, `host:port`.
    pub address: String,
    /// `json` (default) or `text`.
    #[serde(default = "json_format")]
    pub format: Format,
    /// Concurrent connections, 1..=65536.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Longest line, 1..=64 MiB.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Idle connections close after this, 1..=86400000 ms.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Answer every line.
    #[serde(default)]
    pub ack: bool,
    /// Required for a non-loopback address.
    #[serde(default)]
    pub allow_remote: bool,
    /// rustls server certificate and key.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

fn json_format() -> Format {
    Format::Json
}
fn default_max_connections() -> usize {
    64
}
fn default_max_line_bytes() -> usize {
    65_536
}
fn default_idle_timeout_ms() -> u64 {
    300_000
}

/// Parses and checks a `tcp` config (ranges, the remote rule, the `tls` feature).
pub fn parse(config: &ConfigMap) -> Result<TcpConfig, String> {
    let cfg: TcpConfig = parse_config(config)?;
    if !is_loopback(&cfg.address)? && !cfg.allow_remote {
        return Err(format!(
            "config: address {} is not loopback; set allowRemote: true to listen on it",
            cfg.address
        ));
    }
    if !(1..=65_536).contains(&cfg.max_connections) {
        return Err("config: maxConnections must be 1-65536".into());
    }
    if !(1..=MAX_LINE_BYTES_LIMIT).contains(&cfg.max_line_bytes) {
        return Err(format!(
            "config: maxLineBytes must be 1-{MAX_LINE_BYTES_LIMIT}"
        ));
    }
    if !(1..=86_400_000).contains(&cfg.idle_timeout_ms) {
        return Err("config: idleTimeoutMs must be 1-86400000".into());
    }
    if let Some(t) = &cfg.tls {
        t.check()?;
    }
    Ok(cfg)
}

/// Checks a `tcp` config without binding or reading the TLS files.
pub fn validate(config: &ConfigMap) -> Result<(), String> {
    parse(config).map(|_| ())
}

/// Loads TLS, binds the listener on the I/O runtime (a critical feed fails on error, e.g.
/// `127.0.0.1:7001 address in use`) and returns the I/O task.
pub fn build<E: JsonEvent>(config: &ConfigMap, env: &FeedEnv) -> Result<FeedRunner<E>, String> {
    let cfg = parse(config)?;
    let acceptor = Acceptor::from_config(cfg.tls.as_ref())?;
    let bound = bind_for_build(&cfg.address, env)?;
    let cfg = Arc::new(cfg);
    Ok(FeedRunner::Io(Box::new(move |out: FeedOut<E>| {
        let addr = cfg.address.clone();
        let max = cfg.max_connections;
        Box::pin(accept_loop(
            bound,
            addr,
            out,
            max,
            move |stream, _peer, conn_out| {
                serve_accepted(stream, acceptor.clone(), cfg.clone(), conn_out)
            },
        ))
    })))
}

/// Wraps an accepted stream per `acceptor`, then serves it.
async fn serve_accepted<E: JsonEvent>(
    stream: TcpStream,
    acceptor: Acceptor,
    cfg: Arc<TcpConfig>,
    out: FeedOut<E>,
) {
    let _ = stream.set_nodelay(true);
    match acceptor {
        Acceptor::Plain => serve(stream, &cfg, out).await,
        #[cfg(feature = "tls")]
        Acceptor::Tls(a) => {
            let limit =
                super::TLS_HANDSHAKE_TIMEOUT.min(Duration::from_millis(cfg.idle_timeout_ms));
            let stop = out.stop.clone();
            tokio::select! {
                _ = stop.cancelled() => {}
                r = tokio::time::timeout(limit, a.accept(stream)) => match r {
                    Ok(Ok(tls)) => serve(tls, &cfg, out).await,
                    Ok(Err(e)) => tracing::debug!(feed = out.name(), error = %e, "tls handshake failed"),
                    Err(_) => tracing::debug!(feed = out.name(), "tls handshake timed out"),
                }
            }
        }
    }
}

/// Reads lines from one connection until EOF, idle timeout, error or stop.
async fn serve<S, E>(mut stream: S, cfg: &TcpConfig, mut out: FeedOut<E>)
where
    S: AsyncRead + AsyncWrite + Unpin,
    E: JsonEvent,
{
    let idle = Duration::from_millis(cfg.idle_timeout_ms);
    let stop = out.stop.clone();
    let mut splitter = LineSplitter::new(cfg.max_line_bytes);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut acks: Vec<u8> = Vec::new();
    let mut line_no = 0u64;
    loop {
        let n = tokio::select! {
            _ = stop.cancelled() => break,
            r = tokio::time::timeout(idle, stream.read(&mut buf)) => match r {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    tracing::debug!(feed = out.name(), error = %e, "connection read failed");
                    break;
                }
                Err(_) => {
                    tracing::debug!(feed = out.name(), "connection idle; closing");
                    break;
                }
            }
        };
        let eof = n == 0;
        let closed = run_blocking(|| {
            let mut closed = false;
            let mut on_piece = |piece: Piece<'_>| {
                if closed {
                    return;
                }
                line_no += 1;
                let outcome = handle_piece(&mut out, piece, cfg.format, cfg.max_line_bytes);
                if outcome == LineOutcome::NotRunning {
                    closed = true;
                } else if cfg.ack {
                    write_ack(&mut acks, line_no, outcome);
                }
            };
            if eof {
                splitter.finish(&mut on_piece);
            } else {
                splitter.push(&buf[..n], &mut on_piece);
            }
            closed
        });
        if !acks.is_empty() {
            let sent = tokio::time::timeout(idle, async {
                stream.write_all(&acks).await?;
                stream.flush().await
            })
            .await;
            acks.clear();
            if !matches!(sent, Ok(Ok(()))) {
                break;
            }
        }
        if eof || closed {
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
}

/// Appends the ack line for one outcome (blank lines get none).
fn write_ack(acks: &mut Vec<u8>, line_no: u64, outcome: LineOutcome) {
    let code = match outcome {
        LineOutcome::Published(r) if r.lossless() => {
            acks.extend_from_slice(format!("{{\"seq\":{line_no},\"ok\":true}}\n").as_bytes());
            return;
        }
        LineOutcome::Published(_) | LineOutcome::Rejected => "backpressure",
        LineOutcome::Bad(DecodeError::TooLong) => "too_long",
        LineOutcome::Bad(_) => "bad_json",
        LineOutcome::Blank | LineOutcome::NotRunning => return,
    };
    acks.extend_from_slice(format!("{{\"ok\":false,\"code\":\"{code}\"}}\n").as_bytes());
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::{Value, json};
    use tokio::io::{AsyncBufReadExt, BufReader};

    use super::super::testkit::*;
    use super::*;
    use crate::event::Record;
    use crate::queue::Policy;

    /// Builds and starts a critical feed on a free port; returns its address.
    fn start(
        rt: &tokio::runtime::Runtime,
        mut config: Value,
        out: FeedOut<Record>,
    ) -> std::net::SocketAddr {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        config["address"] = json!(addr);
        let runner = build::<Record>(&cfg(config), &env(rt, true)).unwrap();
        let FeedRunner::Io(task) = runner else {
            panic!("tcp runs on the I/O runtime")
        };
        rt.spawn(task(out));
        addr.parse().unwrap()
    }

    async fn connect(addr: std::net::SocketAddr) -> TcpStream {
        TcpStream::connect(addr).await.unwrap()
    }

    async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Option<String> {
        let mut s = String::new();
        match tokio::time::timeout(Duration::from_secs(5), r.read_line(&mut s)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => None,
            Ok(Ok(_)) => Some(s.trim_end().to_string()),
        }
    }

    #[test]
    fn config_validation() {
        let e = validate(&cfg(json!({}))).unwrap_err();
        assert!(e.contains("address"), "{e}");
        let e = validate(&cfg(json!({"address": "0.0.0.0:7001"}))).unwrap_err();
        assert!(e.contains("allowRemote"), "{e}");
        validate(&cfg(
            json!({"address": "0.0.0.0:7001", "allowRemote": true}),
        ))
        .unwrap();
        let e = validate(&cfg(
            json!({"address": "127.0.0.1:7001", "maxConnections": 0}),
        ))
        .unwrap_err();
        assert!(e.contains("maxConnections"), "{e}");
        let e = validate(&cfg(
            json!({"address": "127.0.0.1:7001", "idleTimeoutMs": 0}),
        ))
        .unwrap_err();
        assert!(e.contains("idleTimeoutMs"), "{e}");
        let e = validate(&cfg(json!({"address": "127.0.0.1:7001", "acks": true}))).unwrap_err();
        assert!(e.contains("acks"), "{e}");
        let e = validate(&cfg(
            json!({"address": "127.0.0.1:7001", "tls": {"certPath": "c"}}),
        ))
        .unwrap_err();
        assert!(e.contains("keyPath"), "{e}");
        let e = validate(&cfg(json!({"address": "nope"}))).unwrap_err();
        assert!(e.contains("address"), "{e}");
        let c = parse(&cfg(json!({"address": "localhost:1"}))).unwrap();
        assert_eq!(c.format, Format::Json);
        assert_eq!(
            (c.max_connections, c.max_line_bytes, c.idle_timeout_ms),
            (64, 65_536, 300_000)
        );
        assert!(!c.ack && !c.allow_remote && c.tls.is_none());
    }

    #[test]
    fn address_in_use_is_an_error_naming_the_address() {
        let rt = runtime();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let e = build::<Record>(&cfg(json!({"address": addr})), &env(&rt, true))
            .err()
            .unwrap();
        assert_eq!(e, format!("{addr} address in use"));
        // Non-critical: it starts, disconnected, and binds once the port frees up.
        let runner = build::<Record>(&cfg(json!({"address": addr})), &env(&rt, false)).unwrap();
        let FeedRunner::Io(task) = runner else {
            panic!()
        };
        let (out, probe) = harness(true, 8, Policy::DropNewest);
        rt.spawn(task(out));
        let deadline = Instant::now() + Duration::from_secs(5);
        while probe.connected() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!probe.connected());
        drop(taken);
        while !probe.connected() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(probe.connected(), "rebound after the port was freed");
        probe.stop.cancel();
    }

    #[test]
    fn build_inside_another_runtime_binds_on_the_io_runtime() {
        // An embedder starting the server from async code: `block_on` would panic there.
        let rt = runtime();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let other = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let runner = other
            .block_on(async { build::<Record>(&cfg(json!({"address": addr})), &env(&rt, true)) })
            .unwrap();
        let FeedRunner::Io(task) = runner else {
            panic!()
        };
        let (out, mut probe) = harness(true, 8, Policy::DropNewest);
        rt.spawn(task(out));
        rt.block_on(async {
            let mut s = connect(addr.parse().unwrap()).await;
            s.write_all(b"7\n").await.unwrap();
        });
        assert_eq!(probe.wait_values(1), vec![json!(7)]);
        let e = other
            .block_on(async { build::<Record>(&cfg(json!({"address": addr})), &env(&rt, true)) })
            .err()
            .unwrap();
        assert_eq!(e, format!("{addr} address in use"));
        probe.stop.cancel();
    }

    #[test]
    fn missing_tls_files_fail_build_naming_the_path() {
        if !cfg!(feature = "tls") {
            return;
        }
        let rt = runtime();
        let e = build::<Record>(
            &cfg(json!({"address": "127.0.0.1:0", "tls": {"certPath": "/nonexistent/c.pem", "keyPath": "/nonexistent/k.pem"}})),
            &env(&rt, true),
        )
        .err()
        .unwrap();
        assert!(
            e.contains("tls.certPath") && e.contains("/nonexistent/c.pem"),
            "{e}"
        );
    }

    /// A self-signed certificate for `localhost` made with openssl, or None (skipped).
    #[cfg(feature = "tls")]
    fn self_signed(dir: &TempDir) -> Option<(String, String)> {
        let openssl = test_support::external("openssl")?;
        let (cert, key) = (dir.file("cert.pem"), dir.file("key.pem"));
        let ok = std::process::Command::new(openssl)
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost"])
            // webpki refuses a CA certificate as the server's own.
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .args(["-keyout", &key, "-out", &cert])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "openssl req failed");
        Some((cert, key))
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_connections_are_served() {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

        let dir = TempDir::new("tcp-tls");
        let Some((cert, key)) = self_signed(&dir) else {
            return;
        };
        let rt = runtime();
        let (out, mut probe) = harness(true, 16, Policy::DropNewest);
        let addr = start(
            &rt,
            json!({"ack": true, "tls": {"certPath": cert, "keyPath": key}}),
            out,
        );
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&cert).unwrap())
            .unwrap();
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let reply = rt.block_on(async {
            let tcp = connect(addr).await;
            let name = ServerName::try_from("localhost").unwrap();
            let tls = connector.connect(name, tcp).await.unwrap();
            let mut tls = BufReader::new(tls);
            tls.get_mut()
                .write_all(b"{\"secure\":true}\n")
                .await
                .unwrap();
            tls.get_mut().flush().await.unwrap();
            read_line(&mut tls).await
        });
        assert_eq!(reply.as_deref(), Some(r#"{"seq":1,"ok":true}"#));
        assert_eq!(probe.values(), vec![json!({"secure": true})]);
        // A plain-text client gets a TLS alert at most, never an ack.
        let plain = rt.block_on(async {
            let mut s = BufReader::new(connect(addr).await);
            s.get_mut().write_all(b"1\n").await.unwrap();
            read_line(&mut s).await
        });
        assert!(!plain.unwrap_or_default().contains("ok"));
        assert!(probe.values().is_empty());
        probe.stop.cancel();
    }

    #[test]
    fn lines_are_published_in_order_across_chunks() {
        let rt = runtime();
        let (out, mut probe) = harness(true, 1024, Policy::DropNewest);
        let addr = start(&rt, json!({}), out);
        rt.block_on(async {
            let mut s = connect(addr).await;
            let mut payload = String::new();
            for i in 0..300 {
                payload.push_str(&format!("{{\"i\":{i}}}\r\n"));
            }
            // Split mid-line to exercise reassembly.
            let (a, b) = payload.split_at(1001);
            s.write_all(a.as_bytes()).await.unwrap();
            s.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            s.write_all(b.as_bytes()).await.unwrap();
        });
        let vals = probe.wait_values(300);
        let got: Vec<u64> = vals.iter().map(|v| v["i"].as_u64().unwrap()).collect();
        assert_eq!(got, (0..300).collect::<Vec<_>>());
        probe.stop.cancel();
    }

    #[test]
    fn acks_answer_every_line_including_errors_and_long_lines_keep_the_connection() {
        let rt = runtime();
        let (out, mut probe) = harness(true, 2, Policy::FailFast);
        let addr = start(&rt, json!({"ack": true, "maxLineBytes": 32}), out);
        let replies = rt.block_on(async {
            let s = connect(addr).await;
            let (r, mut w) = s.into_split();
            let mut r = BufReader::new(r);
            let long = format!("\"{}\"\n", "z".repeat(5000));
            let input = format!("{{\"a\":1}}\nnot json\n{long}[2]\n\n\"third\"\n");
            w.write_all(input.as_bytes()).await.unwrap();
            let mut replies = Vec::new();
            for _ in 0..5 {
                replies.push(read_line(&mut r).await.unwrap());
            }
            replies
        });
        assert_eq!(
            replies,
            vec![
                r#"{"seq":1,"ok":true}"#,
                r#"{"ok":false,"code":"bad_json"}"#,
                r#"{"ok":false,"code":"too_long"}"#,
                r#"{"seq":4,"ok":true}"#,
                // Queue capacity 2 under fail-fast: the third event is refused.
                r#"{"ok":false,"code":"backpressure"}"#,
            ]
        );
        assert_eq!(probe.values(), vec![json!({"a": 1}), json!([2])]);
        assert_eq!(probe.decode_errors(DecodeError::BadJson), 1);
        assert_eq!(probe.decode_errors(DecodeError::TooLong), 1);
        let recs = probe.records(10);
        assert_eq!(recs.len(), 2);
        let kept = recs[1].payload.as_str().unwrap();
        assert!(kept.len() <= 1024 && kept.starts_with("\"zzz"), "{kept}");
        assert!(recs[1].truncated);
        probe.stop.cancel();
    }

    #[test]
    fn text_format_wraps_lines_as_strings() {
        let rt = runtime();
        let (out, mut probe) = harness(true, 16, Policy::DropNewest);
        let addr = start(&rt, json!({"format": "text"}), out);
        rt.block_on(async {
            let mut s = connect(addr).await;
            s.write_all(b"hello world\r\n{\"not\":\"parsed\"}\nlast")
                .await
                .unwrap();
            s.shutdown().await.unwrap();
        });
        assert_eq!(
            probe.wait_values(3),
            vec![
                json!("hello world"),
                json!("{\"not\":\"parsed\"}"),
                json!("last")
            ]
        );
        probe.stop.cancel();
    }

    #[test]
    fn connections_beyond_the_limit_are_closed_and_idle_ones_time_out() {
        let rt = runtime();
        let (out, mut probe) = harness(true, 16, Policy::DropNewest);
        let addr = start(
            &rt,
            json!({"maxConnections": 2, "idleTimeoutMs": 300, "ack": true}),
            out,
        );
        rt.block_on(async {
            let mut a = BufReader::new(connect(addr).await);
            let mut b = BufReader::new(connect(addr).await);
            // Both are served (the acks prove they were accepted before the third).
            a.get_mut().write_all(b"1\n").await.unwrap();
            assert!(read_line(&mut a).await.unwrap().contains("\"ok\":true"));
            b.get_mut().write_all(b"2\n").await.unwrap();
            assert!(read_line(&mut b).await.unwrap().contains("\"ok\":true"));
            let mut c = BufReader::new(connect(addr).await);
            let _ = c.get_mut().write_all(b"3\n").await;
            assert_eq!(
                read_line(&mut c).await,
                None,
                "third connection closed at once"
            );
            // Idle for longer than idleTimeoutMs: the server closes the first two, and a
            // new connection is then accepted.
            tokio::time::sleep(Duration::from_millis(600)).await;
            assert_eq!(read_line(&mut a).await, None);
            let mut d = BufReader::new(connect(addr).await);
            d.get_mut().write_all(b"4\n").await.unwrap();
            assert!(read_line(&mut d).await.unwrap().contains("\"ok\":true"));
        });
        assert_eq!(probe.values(), vec![json!(1), json!(2), json!(4)]);
        probe.stop.cancel();
    }

    #[test]
    fn stop_closes_the_listener_and_connections() {
        let rt = runtime();
        let (out, probe) = harness(true, 16, Policy::DropNewest);
        let addr = start(&rt, json!({}), out);
        rt.block_on(async {
            let mut open = BufReader::new(connect(addr).await);
            probe.stop.cancel();
            assert_eq!(
                read_line(&mut open).await,
                None,
                "connection closed on stop"
            );
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                if TcpStream::connect(addr).await.is_err() {
                    break;
                }
                assert!(Instant::now() < deadline, "listener still open");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    }
}
