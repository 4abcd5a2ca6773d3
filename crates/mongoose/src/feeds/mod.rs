//! Built-in feeds other than `memory` (MNG-R12, §3.2, §4 "File and timer feeds"): `file`,
//! `stdin`, `timer`, `tcp` and `http` (the `redis-stream` feed lives elsewhere).
//!
//! Every module has the same shape, which the registry wires up:
//! - a config struct read from the entry's `config` map with `deny_unknown_fields` and
//!   camelCase keys, so a misspelt key is an error naming it;
//! - `validate(&ConfigMap)`: parses and range-checks, with no side effects (`--check`);
//! - `build::<E>(&ConfigMap, &FeedEnv)`: *connects* (binds the listener, checks the file)
//!   and returns the [`FeedRunner`](crate::feed::FeedRunner) that runs the feed;
//! - `RUNS_ON` and `MULTI_PRODUCER`, which the plan uses to pick the runner's home and the
//!   queue kind.
//!
//! This module holds what the line-oriented feeds share: splitting a byte stream into
//! bounded lines ([`LineSplitter`]), turning one line into an event in `json` or `text`
//! format, binding listeners (with the retry loop of non-critical feeds), the accept loop
//! with its connection cap, and TLS.
//!
//! Decisions where the spec is silent:
//! - In `json` format a blank (whitespace-only) line is skipped without an event, a decode
//!   error or an ack, as in NDJSON; in `text` format every line, empty or not, is an event.
//! - At the end of a finite stream (stdin EOF, a tcp peer closing) an unterminated last
//!   line is still a line; a tailed file instead keeps it until its newline arrives.
//! - Publishing on the I/O runtime goes through [`run_blocking`]: `Publisher::publish` may
//!   wait up to the policy's `maxWaitMs` under `block`, so on a multi-thread runtime the
//!   worker hands its other tasks off (`block_in_place`) instead of stalling them.

pub mod file;
pub mod http;
#[cfg(feature = "redis")]
pub mod redis_stream;
pub mod stdin;
pub mod tcp;
pub mod timer;

use std::borrow::Cow;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::event::{Event, JsonEvent};
use crate::feed::{DECODE_ERROR_KEEP_BYTES, DecodeError, FeedEnv, FeedOut, reconnect_backoff};
use crate::publish::{PublishError, PublishReport};

/// Largest accepted `maxLineBytes`: 64 MiB (a line is held whole until its newline).
pub const MAX_LINE_BYTES_LIMIT: usize = 64 * 1024 * 1024;

/// How a line becomes an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The line, as a JSON string.
    #[default]
    Text,
    /// The line is one JSON value.
    Json,
}

/// `tls` of the `tcp` and `http` feeds: PEM files of the certificate chain and its key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_path: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: String,
}

impl TlsConfig {
    /// Checks the keys without touching the files (validation has no side effects).
    pub fn check(&self) -> Result<(), String> {
        if !cfg!(feature = "tls") {
            return Err("config: tls requires the `tls` feature".into());
        }
        if self.cert_path.is_empty() {
            return Err("config: tls.certPath must not be empty".into());
        }
        if self.key_path.is_empty() {
            return Err("config: tls.keyPath must not be empty".into());
        }
        Ok(())
    }
}

/// Splits `host:port` (IPv6 hosts in brackets) and checks the port.
pub fn split_address(addr: &str) -> Result<(&str, u16), String> {
    let bad = || format!("config: address: expected host:port, got '{addr}'");
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host, port))
}

/// Whether a listen address only accepts local peers. Host names other than `localhost`
/// count as remote: resolving them would be a side effect, and they usually are.
pub fn is_loopback(addr: &str) -> Result<bool, String> {
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Ok(sa.ip().is_loopback());
    }
    let (host, _) = split_address(addr)?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip.is_loopback());
    }
    Ok(host.eq_ignore_ascii_case("localhost"))
}

/// One piece of a line stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A complete line without its `\n` (and without a preceding `\r`).
    Line(&'a [u8]),
    /// A line over the limit, skipped; `head` is its first bytes (enough for the 1 KiB
    /// quarantine record and its `truncated` flag).
    TooLong {
        /// The start of the line.
        head: &'a [u8],
    },
}

/// Bytes of an over-long line kept for its quarantine record: a few more than the record
/// keeps, so the record knows it was cut.
const HEAD_KEEP: usize = DECODE_ERROR_KEEP_BYTES + 4;

/// Splits a byte stream into lines of at most `max` bytes, holding at most `max + 1`
/// bytes of an unfinished line; an over-long line is dropped up to its newline, keeping
/// only its head. Works on chunks as they arrive, so file, stdin and tcp share it.
#[derive(Debug)]
pub struct LineSplitter {
    max: usize,
    buf: Vec<u8>,
    skipping: bool,
    head: Vec<u8>,
}

impl LineSplitter {
    /// A splitter for lines of at most `max` bytes (excluding the line end).
    pub fn new(max: usize) -> Self {
        LineSplitter {
            max,
            buf: Vec::new(),
            skipping: false,
            head: Vec::new(),
        }
    }

    /// Forgets an unfinished line (the file was truncated or replaced).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.skipping = false;
        self.head.clear();
    }

    /// Feeds a chunk; `f` gets every line it completes, in order.
    pub fn push(&mut self, mut data: &[u8], f: &mut dyn FnMut(Piece<'_>)) {
        let max = self.max;
        while !data.is_empty() {
            let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                if self.skipping {
                    return;
                }
                // `max + 1` leaves room for a `\r` that the newline will strip.
                if self.buf.len() + data.len() > max.saturating_add(1) {
                    self.head.clear();
                    let from_buf = self.buf.len().min(HEAD_KEEP);
                    self.head.extend_from_slice(&self.buf[..from_buf]);
                    let from_data = (HEAD_KEEP - from_buf).min(data.len());
                    self.head.extend_from_slice(&data[..from_data]);
                    self.buf.clear();
                    self.skipping = true;
                } else {
                    self.buf.extend_from_slice(data);
                }
                return;
            };
            let (seg, rest) = (&data[..nl], &data[nl + 1..]);
            data = rest;
            if self.skipping {
                self.skipping = false;
                f(Piece::TooLong { head: &self.head });
                self.head.clear();
                continue;
            }
            if self.buf.is_empty() {
                emit(seg, max, f);
            } else {
                self.buf.extend_from_slice(seg);
                emit(&self.buf, max, f);
                self.buf.clear();
            }
        }
    }

    /// The stream ended: an unfinished line counts as a last line.
    pub fn finish(&mut self, f: &mut dyn FnMut(Piece<'_>)) {
        if self.skipping {
            f(Piece::TooLong { head: &self.head });
        } else if !self.buf.is_empty() {
            emit(&self.buf, self.max, f);
        }
        self.reset();
    }
}

fn emit(line: &[u8], max: usize, f: &mut dyn FnMut(Piece<'_>)) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > max {
        f(Piece::TooLong {
            head: &line[..line.len().min(HEAD_KEEP)],
        });
    } else {
        f(Piece::Line(line));
    }
}

/// Raw input as text for a quarantine record, converting only what the record keeps.
pub fn raw_text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(&bytes[..bytes.len().min(HEAD_KEEP)])
}

/// A line decoded into an event, or why not.
#[derive(Debug)]
pub enum Decoded<E> {
    /// The event; `lossy` when invalid UTF-8 was replaced (text format).
    Event {
        /// The event.
        event: E,
        /// Invalid UTF-8 was replaced.
        lossy: bool,
    },
    /// A blank line in `json` format: nothing to publish.
    Blank,
    /// Not decodable (`bad_json`), with the error text.
    Bad(String),
}

/// Decodes one line: `json` parses it as one value, `text` wraps it as a JSON string
/// (replacing invalid UTF-8 lossily).
pub fn decode_line<E: JsonEvent>(line: &[u8], format: Format) -> Decoded<E> {
    let (value, lossy) = match format {
        Format::Json => {
            if line.iter().all(u8::is_ascii_whitespace) {
                return Decoded::Blank;
            }
            match serde_json::from_slice::<Value>(line) {
                Ok(v) => (v, false),
                Err(e) => return Decoded::Bad(e.to_string()),
            }
        }
        Format::Text => match std::str::from_utf8(line) {
            Ok(s) => (Value::String(s.to_owned()), false),
            Err(_) => (
                Value::String(String::from_utf8_lossy(line).into_owned()),
                true,
            ),
        },
    };
    match E::from_json(value) {
        Ok(event) => Decoded::Event { event, lossy },
        Err(e) => Decoded::Bad(e),
    }
}

/// What became of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOutcome {
    /// Published; the report says where it went.
    Published(PublishReport),
    /// Every target refused it (`fail-fast`).
    Rejected,
    /// Not decodable: counted and quarantined.
    Bad(DecodeError),
    /// A blank line in `json` format.
    Blank,
    /// The server is not running (feeds stopped): stop reading.
    NotRunning,
}

/// Decodes and publishes one piece, counting and quarantining what cannot be decoded.
pub fn handle_piece<E: JsonEvent>(
    out: &mut FeedOut<E>,
    piece: Piece<'_>,
    format: Format,
    max: usize,
) -> LineOutcome {
    let line = match piece {
        Piece::Line(line) => line,
        Piece::TooLong { head } => {
            out.decode_error(
                DecodeError::TooLong,
                &raw_text(head),
                &format!("line longer than {max} bytes"),
            );
            return LineOutcome::Bad(DecodeError::TooLong);
        }
    };
    match decode_line::<E>(line, format) {
        Decoded::Blank => LineOutcome::Blank,
        Decoded::Bad(err) => {
            out.decode_error(DecodeError::BadJson, &raw_text(line), &err);
            LineOutcome::Bad(DecodeError::BadJson)
        }
        Decoded::Event { event, lossy } => {
            if lossy {
                out.count_decode_error(DecodeError::Utf8);
            }
            publish_one(out, event)
        }
    }
}

/// Publishes one event and classifies the result.
pub fn publish_one<E: Event>(out: &mut FeedOut<E>, event: E) -> LineOutcome {
    match out.publisher.publish(event) {
        Ok(report) => LineOutcome::Published(report),
        Err(PublishError::Rejected { .. }) => LineOutcome::Rejected,
        Err(PublishError::NotStarted(_) | PublishError::Closed(_)) => LineOutcome::NotRunning,
    }
}

/// Runs `f`, which may block for up to a policy's `maxWaitMs`: on a multi-thread tokio
/// worker via `block_in_place` so the worker's other tasks move on; elsewhere directly
/// (plain threads, or a current-thread runtime where `block_in_place` would panic).
pub fn run_blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// A second [`FeedOut`] over a clone of the publisher, for one connection of a
/// multi-producer feed; `None` when the feed was wired single-producer.
pub fn fork_out<E: Event>(out: &FeedOut<E>) -> Option<FeedOut<E>> {
    Some(FeedOut {
        publisher: out.publisher.try_clone()?,
        shared: out.shared.clone(),
        quarantine: out.quarantine.clone(),
        server: out.server,
        stop: out.stop.clone(),
        request_shutdown: out.request_shutdown.clone(),
        subs: out.subs.clone(),
    })
}

/// The text of a bind failure; "address in use" names the address as startup errors do
/// (`127.0.0.1:7001 address in use`).
pub fn bind_error(addr: &str, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        format!("{addr} address in use")
    } else {
        format!("{addr}: {e}")
    }
}

/// Binds `addr` on the feed's I/O runtime within `connectTimeoutMs`.
pub fn bind_listener(addr: &str, env: &FeedEnv) -> Result<TcpListener, String> {
    if tokio::runtime::Handle::try_current().is_ok() {
        // `block_on` would panic inside a runtime (an embedder starting the server from
        // async code): bind synchronously, which only blocks for name resolution.
        return bind_now(addr, env);
    }
    let timeout = env.connect_timeout;
    env.io.block_on(async {
        match tokio::time::timeout(timeout, TcpListener::bind(addr)).await {
            Ok(Ok(l)) => Ok(l),
            Ok(Err(e)) => Err(bind_error(addr, &e)),
            Err(_) => Err(format!(
                "{addr}: bind timed out after {} ms",
                timeout.as_millis()
            )),
        }
    })
}

/// Binds without awaiting, registering the socket with the I/O runtime's reactor; with
/// `SO_REUSEADDR` as `TcpListener::bind` sets it, so a restart is not refused while old
/// connections sit in TIME_WAIT.
fn bind_now(addr: &str, env: &FeedEnv) -> Result<TcpListener, String> {
    use std::net::ToSocketAddrs;
    let _guard = env.io.enter();
    let mut last = None;
    for sa in addr.to_socket_addrs().map_err(|e| format!("{addr}: {e}"))? {
        let attempt = (|| {
            let socket = if sa.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.bind(sa)?;
            socket.listen(1024)
        })();
        match attempt {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => bind_error(addr, &e),
        None => format!("{addr}: no address to bind"),
    })
}

/// Binds for `build`: a critical feed fails startup on error; a non-critical one gets
/// `Ok(Err(error))` and its runner keeps retrying (see [`accept_loop`]).
pub fn bind_for_build(addr: &str, env: &FeedEnv) -> Result<Result<TcpListener, String>, String> {
    match bind_listener(addr, env) {
        Ok(l) => Ok(Ok(l)),
        Err(e) if env.critical => Err(e),
        Err(e) => {
            tracing::warn!(feed = env.name, error = %e, "feed bind failed; retrying with backoff");
            Ok(Err(e))
        }
    }
}

/// Retries binding with [`reconnect_backoff`] until it works or `stop` is cancelled.
async fn rebind(addr: &str, name: &str, stop: &CancellationToken) -> Option<TcpListener> {
    let mut failures = 0u32;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return None,
            _ = tokio::time::sleep(reconnect_backoff(failures)) => {}
        }
        match TcpListener::bind(addr).await {
            Ok(l) => return Some(l),
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::debug!(feed = name, error = %bind_error(addr, &e), "bind retry failed");
            }
        }
    }
}

/// How long stopped connections get to finish before they are aborted.
const CONN_STOP_GRACE: Duration = Duration::from_secs(3);

/// Accepts connections until `out.stop` is cancelled, running `serve` for each on its own
/// task with its own [`FeedOut`]. Connections beyond `max_conns` are closed at once. On
/// stop the listener closes first, then the connections (which watch `out.stop`) get
/// [`CONN_STOP_GRACE`] to finish before being aborted.
pub async fn accept_loop<E, F, Fut>(
    bound: Result<TcpListener, String>,
    addr: String,
    out: FeedOut<E>,
    max_conns: usize,
    serve: F,
) where
    E: Event,
    F: Fn(tokio::net::TcpStream, SocketAddr, FeedOut<E>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if out.publisher.try_clone().is_none() {
        // A wiring error, not an input one: each connection needs its own publisher.
        let msg = "feed must be wired multi-producer (each connection publishes)";
        tracing::error!(feed = out.name(), "{msg}");
        out.set_connected(false, Some(msg));
        return;
    }
    // Only owned handles live across awaits: `FeedOut` is `Send` but not `Sync`.
    let (name, stop) = (out.name(), out.stop.clone());
    let listener = match bound {
        Ok(l) => l,
        Err(e) => {
            out.set_connected(false, Some(&e));
            match rebind(&addr, name, &stop).await {
                Some(l) => l,
                None => return,
            }
        }
    };
    out.set_connected(true, None);
    let mut conns: JoinSet<()> = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            Some(res) = conns.join_next(), if !conns.is_empty() => {
                if let Err(e) = res
                    && e.is_panic()
                {
                    tracing::error!(feed = name, "connection task panicked");
                }
            }
            acc = listener.accept() => match acc {
                Ok((stream, peer)) => {
                    if conns.len() >= max_conns {
                        tracing::debug!(feed = name, %peer, "connection limit reached; closing");
                        drop(stream);
                        continue;
                    }
                    if let Some(conn_out) = fork_out(&out) {
                        conns.spawn(serve(stream, peer, conn_out));
                    }
                }
                Err(e) => {
                    // Out of descriptors and the like: pause instead of spinning on it.
                    tracing::warn!(feed = name, error = %e, "accept failed");
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(CONN_STOP_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        conns.abort_all();
    }
}

/// Builds the TLS acceptor from PEM files; errors name the key and the path.
#[cfg(feature = "tls")]
pub fn tls_acceptor(t: &TlsConfig) -> Result<tokio_rustls::TlsAcceptor, String> {
    use std::sync::Arc;
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let certs = CertificateDer::pem_file_iter(&t.cert_path)
        .map_err(|e| format!("tls.certPath {}: {e}", t.cert_path))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls.certPath {}: {e}", t.cert_path))?;
    if certs.is_empty() {
        return Err(format!(
            "tls.certPath {}: no certificate found",
            t.cert_path
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&t.key_path)
        .map_err(|e| format!("tls.keyPath {}: {e}", t.key_path))?;
    // An explicit provider: the process default may be unset, or ambiguous when several
    // crates in the build enable different providers.
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("tls: {e}"))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("tls: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// How a listener's connections are wrapped.
#[derive(Clone)]
pub enum Acceptor {
    /// Plain TCP.
    Plain,
    /// rustls server side.
    #[cfg(feature = "tls")]
    Tls(tokio_rustls::TlsAcceptor),
}

impl Acceptor {
    /// From an optional `tls` config (loads the PEM files).
    pub fn from_config(tls: Option<&TlsConfig>) -> Result<Acceptor, String> {
        match tls {
            None => Ok(Acceptor::Plain),
            #[cfg(feature = "tls")]
            Some(t) => Ok(Acceptor::Tls(tls_acceptor(t)?)),
            #[cfg(not(feature = "tls"))]
            Some(_) => Err("tls requires the `tls` feature".into()),
        }
    }
}

/// Longest TLS handshake accepted.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
pub(crate) mod testkit {
    //! A `FeedOut<Record>` over a real publisher, one subscription and a quarantine ring,
    //! plus the probe a test reads them back through.

    use std::sync::Arc;
    use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use serde_json::Value;
    use tokio_util::sync::CancellationToken;

    use crate::event::{Envelope, Record};
    use crate::feed::{DecodeError, FeedEnv, FeedOut};
    use crate::processor::ConfigMap;
    use crate::publish::{FeedShared, PHASE_RUNNING, Publisher};
    use crate::quarantine::{Quarantine, QuarantineRecord};
    use crate::queue::{self, Backpressure, Policy, Rx, SubShared};

    /// What a test keeps after handing the `FeedOut` to a feed.
    pub struct Probe {
        pub rx: Rx<Record>,
        pub shared: Arc<FeedShared>,
        pub sub: Arc<SubShared>,
        pub quarantine: Arc<Quarantine>,
        pub phase: Arc<AtomicU8>,
        pub stop: CancellationToken,
        pub shutdowns: Arc<AtomicUsize>,
    }

    /// A running feed's output with `cap` queue slots and policy `policy`.
    pub fn harness(multi: bool, cap: usize, policy: Policy) -> (FeedOut<Record>, Probe) {
        let phase = Arc::new(AtomicU8::new(PHASE_RUNNING));
        let shared = Arc::new(FeedShared::new("f", 0, multi, phase.clone()));
        let bp = Backpressure {
            policy,
            max_wait_ms: 1,
            fallback: Policy::DropNewest,
        };
        let mpsc = multi || bp.needs_eviction();
        let (tx, rx) = queue::channel(cap, mpsc);
        let kind = if mpsc { "mpsc" } else { "spsc" };
        let sub = Arc::new(SubShared::new("f", "g", cap as u32, kind, bp, cap as u32));
        let publisher = Publisher::new(shared.clone(), vec![(tx, sub.clone())]);
        let quarantine = Arc::new(Quarantine::new(100));
        let stop = CancellationToken::new();
        let shutdowns = Arc::new(AtomicUsize::new(0));
        let counter = shutdowns.clone();
        let out = FeedOut {
            publisher,
            shared: shared.clone(),
            quarantine: quarantine.clone(),
            server: "test",
            stop: stop.clone(),
            request_shutdown: Arc::new(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            }),
            subs: vec![sub.clone()],
        };
        let probe = Probe {
            rx,
            shared,
            sub,
            quarantine,
            phase,
            stop,
            shutdowns,
        };
        (out, probe)
    }

    impl Probe {
        /// Everything queued now.
        pub fn drain(&mut self) -> Vec<Envelope<Record>> {
            let mut v = Vec::new();
            while let Some(e) = self.rx.pop() {
                v.push(e);
            }
            v
        }

        /// The values queued now.
        pub fn values(&mut self) -> Vec<Value> {
            self.drain()
                .into_iter()
                .map(|e| e.event().value().clone())
                .collect()
        }

        /// Waits (up to 5 s) until `n` values arrived in total, and returns them.
        pub fn wait_values(&mut self, n: usize) -> Vec<Value> {
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut got = Vec::new();
            while got.len() < n && Instant::now() < deadline {
                got.extend(self.values());
                std::thread::sleep(Duration::from_millis(2));
            }
            got
        }

        /// Decode errors counted under `reason`.
        pub fn decode_errors(&self, reason: DecodeError) -> u64 {
            self.shared.decode_errors[reason as usize].load(Ordering::Relaxed)
        }

        /// The last `n` quarantine records.
        pub fn records(&self, n: usize) -> Vec<QuarantineRecord> {
            self.quarantine.last(n)
        }

        /// Whether the feed reports itself connected.
        pub fn connected(&self) -> bool {
            self.shared.connected.load(Ordering::Acquire)
        }
    }

    /// A fresh directory under the temp dir, removed on drop.
    pub struct TempDir(std::path::PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!("mg-feeds-{}-{tag}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).expect("create temp dir");
            TempDir(p)
        }

        /// The path of `name` inside.
        pub fn file(&self, name: &str) -> String {
            self.0.join(name).to_string_lossy().into_owned()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A config map from a JSON object literal.
    pub fn cfg(v: Value) -> ConfigMap {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    /// A two-worker runtime for I/O feeds.
    pub fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// A feed environment on `rt`.
    pub fn env(rt: &tokio::runtime::Runtime, critical: bool) -> FeedEnv {
        FeedEnv {
            name: "f",
            server: "test",
            critical,
            connect_timeout: Duration::from_secs(2),
            io: rt.handle().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;
    use crate::event::Record;
    use crate::queue::Policy;

    fn split(max: usize, chunks: &[&[u8]], finish: bool) -> Vec<Result<Vec<u8>, Vec<u8>>> {
        let mut s = LineSplitter::new(max);
        let mut got = Vec::new();
        let mut f = |p: Piece<'_>| match p {
            Piece::Line(l) => got.push(Ok(l.to_vec())),
            Piece::TooLong { head } => got.push(Err(head.to_vec())),
        };
        for c in chunks {
            s.push(c, &mut f);
        }
        if finish {
            s.finish(&mut f);
        }
        got
    }

    #[test]
    fn splitter_joins_chunks_strips_cr_and_holds_partial_lines() {
        let got = split(100, &[b"ab", b"c\r\nde", b"f\n\ng"], false);
        assert_eq!(
            got,
            vec![Ok(b"abc".to_vec()), Ok(b"def".to_vec()), Ok(b"".to_vec())]
        );
        let got = split(100, &[b"ab\nxy"], true);
        assert_eq!(got, vec![Ok(b"ab".to_vec()), Ok(b"xy".to_vec())]);
    }

    #[test]
    fn splitter_skips_long_lines_to_their_newline_and_keeps_going() {
        let long = vec![b'x'; 3000];
        let got = split(10, &[b"ok\n", &long, &long, b"tail\nnext\n"], false);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], Ok(b"ok".to_vec()));
        let head = got[1].clone().unwrap_err();
        assert_eq!(head.len(), HEAD_KEEP);
        assert!(head.iter().all(|&b| b == b'x'));
        assert_eq!(got[2], Ok(b"next".to_vec()));
        // Exactly max bytes passes, also with a \r; max + 1 does not.
        let got = split(3, &[b"abc\r\nabcd\n"], false);
        assert_eq!(got, vec![Ok(b"abc".to_vec()), Err(b"abcd".to_vec())]);
    }

    #[test]
    fn decode_line_handles_json_text_blank_and_bad_utf8() {
        match decode_line::<Record>(br#"{"a":1}"#, Format::Json) {
            Decoded::Event { event, lossy } => {
                assert_eq!(event.value(), &serde_json::json!({"a":1}));
                assert!(!lossy);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_line::<Record>(b"  ", Format::Json),
            Decoded::Blank
        ));
        assert!(matches!(
            decode_line::<Record>(b"{x", Format::Json),
            Decoded::Bad(_)
        ));
        match decode_line::<Record>(b"a\xffb", Format::Text) {
            Decoded::Event { event, lossy } => {
                assert_eq!(event.value(), &serde_json::json!("a\u{fffd}b"));
                assert!(lossy);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn handle_piece_quarantines_bad_and_long_lines_and_counts_utf8() {
        let (mut out, mut probe) = harness(false, 8, Policy::DropNewest);
        let r = handle_piece(&mut out, Piece::Line(b"{bad"), Format::Json, 10);
        assert_eq!(r, LineOutcome::Bad(DecodeError::BadJson));
        let r = handle_piece(&mut out, Piece::TooLong { head: b"xxxx" }, Format::Json, 3);
        assert_eq!(r, LineOutcome::Bad(DecodeError::TooLong));
        let r = handle_piece(&mut out, Piece::Line(b"\xff"), Format::Text, 10);
        assert!(matches!(r, LineOutcome::Published(_)));
        assert_eq!(probe.decode_errors(DecodeError::BadJson), 1);
        assert_eq!(probe.decode_errors(DecodeError::TooLong), 1);
        assert_eq!(probe.decode_errors(DecodeError::Utf8), 1);
        let recs = probe.records(10);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].payload, serde_json::json!("{bad"));
        assert!(recs[1].error.as_deref().unwrap().starts_with("too_long"));
        assert_eq!(probe.values(), vec![serde_json::json!("\u{fffd}")]);
    }

    #[test]
    fn loopback_detection_and_address_shape() {
        assert!(is_loopback("127.0.0.1:80").unwrap());
        assert!(is_loopback("[::1]:80").unwrap());
        assert!(is_loopback("localhost:80").unwrap());
        assert!(!is_loopback("0.0.0.0:80").unwrap());
        assert!(!is_loopback("example.com:80").unwrap());
        assert!(is_loopback("127.0.0.1").is_err());
        assert!(is_loopback(":80").is_err());
        assert!(is_loopback("h:99999").is_err());
    }

    #[test]
    fn fork_out_needs_a_multi_producer_feed() {
        let (single, _p1) = harness(false, 4, Policy::DropNewest);
        assert!(fork_out(&single).is_none());
        let (multi, _p2) = harness(true, 4, Policy::DropNewest);
        assert!(fork_out(&multi).is_some());
    }
}
