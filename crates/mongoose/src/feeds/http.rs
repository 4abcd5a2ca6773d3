//! `http` feed (MNG-R12, §3.2, §7, MNG-T29): an ingest endpoint on the I/O runtime, served
//! with hyper's HTTP/1 server directly (one route, so a router adds nothing, and the body
//! limit must apply while reading).
//!
//! `POST <path>` (default `/ingest`):
//! - `application/json`: the body is one JSON value and becomes one event;
//!   `application/x-ndjson`: one event per non-empty line (`\r\n` allowed).
//! - The whole body is read (at most `maxBodyBytes`, enforced while reading) and decoded
//!   before anything is published: a bad line answers 400
//!   `{"code":"bad_json","message":"line 2: …","corr_id"}` and nothing from the request is
//!   published. It is counted in `decode_errors{bad_json}` but not quarantined: the client
//!   got the error and still has its data (the same holds for 413 and `too_long`).
//! - 202 `{"accepted":a,"dropped":d,"rejected":r,"corr_id"}`: `accepted` counts events
//!   that reached every subscribed group (`PublishReport::lossless`), `rejected` those every
//!   target refused (`fail-fast`), `dropped` the rest (dropped or evicted for some group).
//!   503 `backpressure` with `Retry-After: 1` when every event was rejected.
//! - 503 `not_ready` (with `Retry-After: 1`) while the server is not running (starting or
//!   draining). If the server stops in the middle of a request, the events not yet
//!   published count as rejected.
//! - 401 `unauthorized` (+ `WWW-Authenticate: Bearer`) when `token` is set and the request
//!   lacks `Authorization: Bearer <token>` (compared in constant time); 404 `not_found`
//!   for another path; 405 `method_not_allowed` (+ `Allow: POST`); 413
//!   `payload_too_large`; 415 `unsupported_media_type`; 408 `request_timeout` when the body
//!   takes over 30 s.
//! - `X-Correlation-Id` is taken from the request (1-128 visible ASCII characters) or
//!   generated, and echoed in the response header and the JSON body.
//!
//! Bounds (§7): a non-loopback `address` needs `token`; request heads are limited to
//! 64 KiB and must arrive within 30 s (which also closes idle keep-alive connections); at
//! most [`MAX_CONNECTIONS`] connections are open at once (more are closed at once).
//! Connected while the listener is bound; on stop the listener closes and open
//! connections finish their current request, then close.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use super::{Acceptor, TlsConfig, accept_loop, bind_for_build, is_loopback, run_blocking};
use crate::builtins::parse_config;
use crate::event::JsonEvent;
use crate::feed::{DecodeError, FeedEnv, FeedOut, FeedRunner, RunsOn};
use crate::processor::ConfigMap;
use crate::publish::{FeedShared, PHASE_RUNNING, PublishError};

/// Where the feed runs: the I/O runtime.
pub const RUNS_ON: RunsOn = RunsOn::Io;
/// Every connection publishes.
pub const MULTI_PRODUCER: bool = true;

/// Most connections open at once.
pub const MAX_CONNECTIONS: usize = 256;
/// Largest accepted `maxBodyBytes`: 256 MiB.
pub const MAX_BODY_BYTES_LIMIT: usize = 256 * 1024 * 1024;
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_CORR_ID: usize = 128;
/// How long a stopping connection may finish its request.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// `http` feed config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpConfig {
    /// Listen address, `host:port`.
    pub address: String,
    /// The ingest path.
    #[serde(default = "default_path")]
    pub path: String,
    /// Largest body, 1..=256 MiB.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Bearer token required on every request; required for a non-loopback address.
    #[serde(default)]
    pub token: Option<String>,
    /// rustls server certificate and key.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

fn default_path() -> String {
    "/ingest".into()
}
fn default_max_body_bytes() -> usize {
    1024 * 1024
}

/// Parses and checks an `http` config (ranges, the token rule, the `tls` feature).
pub fn parse(config: &ConfigMap) -> Result<HttpConfig, String> {
    let cfg: HttpConfig = parse_config(config)?;
    if cfg.token.as_deref() == Some("") {
        return Err("config: token must not be empty".into());
    }
    if !is_loopback(&cfg.address)? && cfg.token.is_none() {
        return Err(format!(
            "config: address {} is not loopback; a token is required",
            cfg.address
        ));
    }
    if !cfg.path.starts_with('/')
        || cfg.path.len() > 1024
        || cfg
            .path
            .bytes()
            .any(|b| !b.is_ascii_graphic() || b == b'?' || b == b'#')
    {
        return Err(format!(
            "config: path must be an absolute URL path, got '{}'",
            cfg.path
        ));
    }
    if !(1..=MAX_BODY_BYTES_LIMIT).contains(&cfg.max_body_bytes) {
        return Err(format!(
            "config: maxBodyBytes must be 1-{MAX_BODY_BYTES_LIMIT}"
        ));
    }
    if let Some(t) = &cfg.tls {
        t.check()?;
    }
    Ok(cfg)
}

/// Checks an `http` config without binding or reading the TLS files.
pub fn validate(config: &ConfigMap) -> Result<(), String> {
    parse(config).map(|_| ())
}

/// Loads TLS, binds the listener on the I/O runtime (a critical feed fails on error, e.g.
/// `127.0.0.1:8080 address in use`) and returns the I/O task.
pub fn build<E: JsonEvent>(config: &ConfigMap, env: &FeedEnv) -> Result<FeedRunner<E>, String> {
    let cfg = parse(config)?;
    let acceptor = Acceptor::from_config(cfg.tls.as_ref())?;
    let bound = bind_for_build(&cfg.address, env)?;
    let cfg = Arc::new(cfg);
    Ok(FeedRunner::Io(Box::new(move |out: FeedOut<E>| {
        let addr = cfg.address.clone();
        Box::pin(accept_loop(
            bound,
            addr,
            out,
            MAX_CONNECTIONS,
            move |stream, _peer, conn_out| {
                serve_accepted(stream, acceptor.clone(), cfg.clone(), conn_out)
            },
        ))
    })))
}

/// One connection's state, shared by its requests (HTTP/1 serves them one at a time).
struct Conn<E: JsonEvent> {
    cfg: Arc<HttpConfig>,
    shared: Arc<FeedShared>,
    out: Mutex<FeedOut<E>>,
}

async fn serve_accepted<E: JsonEvent>(
    stream: TcpStream,
    acceptor: Acceptor,
    cfg: Arc<HttpConfig>,
    out: FeedOut<E>,
) {
    let _ = stream.set_nodelay(true);
    match acceptor {
        Acceptor::Plain => serve(TokioIo::new(stream), cfg, out).await,
        #[cfg(feature = "tls")]
        Acceptor::Tls(a) => {
            let stop = out.stop.clone();
            tokio::select! {
                _ = stop.cancelled() => {}
                r = tokio::time::timeout(super::TLS_HANDSHAKE_TIMEOUT, a.accept(stream)) => match r {
                    Ok(Ok(tls)) => serve(TokioIo::new(tls), cfg, out).await,
                    Ok(Err(e)) => tracing::debug!(feed = out.name(), error = %e, "tls handshake failed"),
                    Err(_) => tracing::debug!(feed = out.name(), "tls handshake timed out"),
                }
            }
        }
    }
}

async fn serve<I, E>(io: I, cfg: Arc<HttpConfig>, out: FeedOut<E>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    E: JsonEvent,
{
    let stop = out.stop.clone();
    let conn = Arc::new(Conn {
        cfg,
        shared: out.shared.clone(),
        out: Mutex::new(out),
    });
    let svc = service_fn(move |req| {
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(handle(&conn, req).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES);
    let http = builder.serve_connection(io, svc);
    tokio::pin!(http);
    let stopping = tokio::select! {
        r = http.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "ingest connection ended with an error");
            }
            false
        }
        _ = stop.cancelled() => true,
    };
    if stopping {
        // Finish the request in flight (its publishes now return Closed), then close.
        http.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(STOP_GRACE, http).await;
    }
}

/// The request body's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Json,
    Ndjson,
}

fn body_kind(headers: &HeaderMap) -> Option<BodyKind> {
    let v = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media = v.split(';').next()?.trim();
    if media.eq_ignore_ascii_case("application/json") {
        Some(BodyKind::Json)
    } else if media.eq_ignore_ascii_case("application/x-ndjson") {
        Some(BodyKind::Ndjson)
    } else {
        None
    }
}

/// Equal in time independent of where the bytes differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

fn bearer_ok(headers: &HeaderMap, token: &str) -> bool {
    let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    match v.trim().split_once(' ') {
        Some((scheme, given)) if scheme.eq_ignore_ascii_case("bearer") => {
            ct_eq(given.trim().as_bytes(), token.as_bytes())
        }
        _ => false,
    }
}

/// The request's correlation id, or a new one.
fn corr_id(headers: &HeaderMap) -> String {
    if let Some(v) = headers.get("x-correlation-id") {
        let b = v.as_bytes();
        if (1..=MAX_CORR_ID).contains(&b.len()) && b.iter().all(|c| c.is_ascii_graphic()) {
            return String::from_utf8_lossy(b).into_owned();
        }
    }
    new_corr_id()
}

/// 32 hex digits from the clock and a process counter, mixed so ids look unrelated.
fn new_corr_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    fn mix(mut z: u64) -> u64 {
        // splitmix64 finaliser.
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let a = mix(t ^ n.rotate_left(32));
    let b = mix(a ^ n ^ u64::from(std::process::id()));
    format!("{a:016x}{b:016x}")
}

fn reply(status: StatusCode, body: Value, corr: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(corr) {
        h.insert("x-correlation-id", v);
    }
    r
}

fn error(status: StatusCode, code: &str, message: &str, corr: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        json!({"code": code, "message": message, "corr_id": corr}),
        corr,
    )
}

fn with_header(
    mut r: Response<Full<Bytes>>,
    name: header::HeaderName,
    value: &'static str,
) -> Response<Full<Bytes>> {
    r.headers_mut()
        .insert(name, HeaderValue::from_static(value));
    r
}

/// serde_json's message with its position restated relative to the line.
fn describe(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let at = format!(" at line {} column {}", e.line(), e.column());
    match full.strip_suffix(&at) {
        Some(msg) => format!("{msg} at column {}", e.column()),
        None => full,
    }
}

/// Decodes a whole body; the error names the line.
fn decode_body<E: JsonEvent>(body: &[u8], kind: BodyKind) -> Result<Vec<E>, String> {
    match kind {
        BodyKind::Json => {
            let v: Value = serde_json::from_slice(body)
                .map_err(|e| format!("line {}: {}", e.line().max(1), describe(&e)))?;
            Ok(vec![E::from_json(v).map_err(|e| format!("line 1: {e}"))?])
        }
        BodyKind::Ndjson => {
            let mut events = Vec::new();
            for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
                let line = raw.strip_suffix(b"\r").unwrap_or(raw);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let n = i + 1;
                let v: Value = serde_json::from_slice(line)
                    .map_err(|e| format!("line {n}: {}", describe(&e)))?;
                events.push(E::from_json(v).map_err(|e| format!("line {n}: {e}"))?);
            }
            Ok(events)
        }
    }
}

/// What publishing a request's events did.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    accepted: u64,
    dropped: u64,
    rejected: u64,
    /// The server stopped before every event was offered.
    not_running: bool,
}

fn publish_all<E: JsonEvent>(out: &mut FeedOut<E>, events: Vec<E>) -> Tally {
    let mut t = Tally::default();
    let total = events.len() as u64;
    for ev in events {
        match out.publisher.publish(ev) {
            Ok(r) if r.lossless() => t.accepted += 1,
            Ok(_) => t.dropped += 1,
            Err(PublishError::Rejected { .. }) => t.rejected += 1,
            Err(PublishError::NotStarted(_) | PublishError::Closed(_)) => {
                t.not_running = true;
                t.rejected = total - t.accepted - t.dropped;
                break;
            }
        }
    }
    t
}

fn not_ready(corr: &str) -> Response<Full<Bytes>> {
    with_header(
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the server is starting or draining",
            corr,
        ),
        header::RETRY_AFTER,
        "1",
    )
}

async fn handle<E: JsonEvent>(conn: &Conn<E>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let corr = corr_id(req.headers());
    let cfg = &conn.cfg;
    let path = req.uri().path();
    if path != cfg.path {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no route for {path}"),
            &corr,
        );
    }
    if req.method() != Method::POST {
        return with_header(
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                &format!("{} is not allowed; use POST", req.method()),
                &corr,
            ),
            header::ALLOW,
            "POST",
        );
    }
    if let Some(token) = &cfg.token
        && !bearer_ok(req.headers(), token)
    {
        return with_header(
            error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong bearer token",
                &corr,
            ),
            header::WWW_AUTHENTICATE,
            "Bearer",
        );
    }
    let Some(kind) = body_kind(req.headers()) else {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/json or application/x-ndjson",
            &corr,
        );
    };
    if conn.shared.phase.load(Ordering::Acquire) != PHASE_RUNNING {
        return not_ready(&corr);
    }
    let too_large = || {
        conn.shared.decode_errors[DecodeError::TooLong as usize].fetch_add(1, Ordering::Relaxed);
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            &format!("body over {} bytes", cfg.max_body_bytes),
            &corr,
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > cfg.max_body_bytes as u64) {
        return too_large();
    }
    let limited = Limited::new(req.into_body(), cfg.max_body_bytes);
    let body = match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "body not received in time",
                &corr,
            );
        }
        Ok(Err(e)) if e.is::<LengthLimitError>() => return too_large(),
        Ok(Err(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("body: {e}"),
                &corr,
            );
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let events = match decode_body::<E>(&body, kind) {
        Ok(events) => events,
        Err(message) => {
            conn.shared.decode_errors[DecodeError::BadJson as usize]
                .fetch_add(1, Ordering::Relaxed);
            return error(StatusCode::BAD_REQUEST, "bad_json", &message, &corr);
        }
    };
    let total = events.len() as u64;
    let tally = run_blocking(|| publish_all(&mut conn.out.lock(), events));
    if tally.not_running && tally.accepted + tally.dropped == 0 {
        return not_ready(&corr);
    }
    if total > 0 && tally.rejected == total {
        tracing::debug!(feed = conn.shared.name, corr_id = %corr, rejected = total, "ingest rejected by backpressure");
        return with_header(
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "backpressure",
                &format!("all {total} events were rejected; retry later"),
                &corr,
            ),
            header::RETRY_AFTER,
            "1",
        );
    }
    reply(
        StatusCode::ACCEPTED,
        json!({
            "accepted": tally.accepted,
            "dropped": tally.dropped,
            "rejected": tally.rejected,
            "corr_id": corr,
        }),
        &corr,
    )
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use test_support::{Response as Resp, http_raw};

    use super::super::testkit::*;
    use super::*;
    use crate::event::Record;
    use crate::publish::PHASE_STARTING;
    use crate::queue::Policy;

    fn free_addr() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    }

    /// Builds and starts a critical feed on a free port.
    fn start(rt: &tokio::runtime::Runtime, mut config: Value, out: FeedOut<Record>) -> SocketAddr {
        let addr = free_addr();
        config["address"] = json!(addr);
        let runner = build::<Record>(&cfg(config), &env(rt, true)).unwrap();
        let FeedRunner::Io(task) = runner else {
            panic!("http runs on the I/O runtime")
        };
        rt.spawn(task(out));
        addr.parse().unwrap()
    }

    fn send(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Resp {
        let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
        for h in headers {
            raw.push_str(h);
            raw.push_str("\r\n");
        }
        raw.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut raw = raw.into_bytes();
        raw.extend_from_slice(body);
        http_raw(addr, &raw, false).unwrap()
    }

    fn ndjson(addr: SocketAddr, body: &str) -> Resp {
        send(
            addr,
            "POST",
            "/ingest",
            &["Content-Type: application/x-ndjson"],
            body.as_bytes(),
        )
    }

    fn body(r: &Resp) -> Value {
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
    }

    #[test]
    fn config_validation() {
        let e = validate(&cfg(json!({}))).unwrap_err();
        assert!(e.contains("address"), "{e}");
        let e = validate(&cfg(json!({"address": "0.0.0.0:8080"}))).unwrap_err();
        assert!(e.contains("token"), "{e}");
        validate(&cfg(json!({"address": "0.0.0.0:8080", "token": "s3cret"}))).unwrap();
        let e = validate(&cfg(json!({"address": "127.0.0.1:1", "token": ""}))).unwrap_err();
        assert!(e.contains("token"), "{e}");
        let e = validate(&cfg(json!({"address": "127.0.0.1:1", "path": "ingest"}))).unwrap_err();
        assert!(e.contains("path"), "{e}");
        let e = validate(&cfg(json!({"address": "127.0.0.1:1", "maxBodyBytes": 0}))).unwrap_err();
        assert!(e.contains("maxBodyBytes"), "{e}");
        let e = validate(&cfg(json!({"address": "127.0.0.1:1", "maxBody": 5}))).unwrap_err();
        assert!(e.contains("maxBody"), "{e}");
        let c = parse(&cfg(json!({"address": "127.0.0.1:1"}))).unwrap();
        assert_eq!((c.path.as_str(), c.max_body_bytes), ("/ingest", 1_048_576));
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
    }

    /// MNG-T29.
    #[test]
    fn ingest_contract() {
        let rt = runtime();
        let (out, mut probe) = harness(true, 64, Policy::DropNewest);
        let addr = start(&rt, json!({"maxBodyBytes": 64}), out);

        // Bad JSON on line 2: 400 naming line 2, nothing published.
        let r = ndjson(addr, "{\"a\":1}\n{\"a\":\n{\"a\":3}\n");
        assert_eq!(r.status, 400, "{}", r.text());
        let b = body(&r);
        assert_eq!(b["code"], "bad_json");
        assert!(
            b["message"].as_str().unwrap().starts_with("line 2: "),
            "{b}"
        );
        assert_eq!(b["corr_id"].as_str(), r.header("x-correlation-id"));
        assert_eq!(probe.decode_errors(DecodeError::BadJson), 1);
        std::thread::sleep(Duration::from_millis(20));
        assert!(probe.values().is_empty());

        // Three NDJSON lines (blank lines and \r\n allowed): 202 accepted 3.
        let r = ndjson(addr, "{\"a\":1}\r\n\n{\"a\":2}\n{\"a\":3}");
        assert_eq!(r.status, 202, "{}", r.text());
        let b = body(&r);
        assert_eq!(
            (
                b["accepted"].clone(),
                b["dropped"].clone(),
                b["rejected"].clone()
            ),
            (json!(3), json!(0), json!(0))
        );
        assert_eq!(
            probe.values(),
            vec![json!({"a":1}), json!({"a":2}), json!({"a":3})]
        );

        // One JSON value, with a charset parameter.
        let r = send(
            addr,
            "POST",
            "/ingest",
            &["Content-Type: application/json; charset=utf-8"],
            b"[1,2]",
        );
        assert_eq!(r.status, 202, "{}", r.text());
        assert_eq!(body(&r)["accepted"], 1);
        assert_eq!(probe.values(), vec![json!([1, 2])]);

        // Oversized: by Content-Length, and while reading a chunked body.
        let r = ndjson(addr, &format!("\"{}\"", "x".repeat(70)));
        assert_eq!(r.status, 413, "{}", r.text());
        assert_eq!(body(&r)["code"], "payload_too_large");
        let chunk = format!("\"{}\"", "y".repeat(100));
        let raw = format!(
            "POST /ingest HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
            chunk.len()
        );
        let r = http_raw(addr, raw.as_bytes(), false).unwrap();
        assert_eq!(r.status, 413, "{}", r.text());
        assert_eq!(probe.decode_errors(DecodeError::TooLong), 2);

        // Other method, path and content type.
        let r = send(addr, "GET", "/ingest", &[], b"");
        assert_eq!(r.status, 405);
        assert_eq!(r.header("allow"), Some("POST"));
        let r = send(
            addr,
            "POST",
            "/other",
            &["Content-Type: application/json"],
            b"1",
        );
        assert_eq!(r.status, 404);
        assert_eq!(body(&r)["code"], "not_found");
        let r = send(addr, "POST", "/ingest", &["Content-Type: text/plain"], b"1");
        assert_eq!(r.status, 415);
        assert_eq!(body(&r)["code"], "unsupported_media_type");
        let r = send(addr, "POST", "/ingest", &[], b"1");
        assert_eq!(r.status, 415);
        assert!(probe.values().is_empty());
        probe.stop.cancel();
    }

    /// MNG-T29: under fail-fast with a full queue, 503 with Retry-After.
    #[test]
    fn full_queue_under_fail_fast() {
        let rt = runtime();
        let (out, mut probe) = harness(true, 2, Policy::FailFast);
        let addr = start(&rt, json!({}), out);
        let r = ndjson(addr, "1\n2\n3\n");
        assert_eq!(r.status, 202, "{}", r.text());
        let b = body(&r);
        assert_eq!(
            (b["accepted"].clone(), b["rejected"].clone()),
            (json!(2), json!(1))
        );
        let r = ndjson(addr, "4\n");
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(body(&r)["code"], "backpressure");
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(probe.values(), vec![json!(1), json!(2)]);
        assert_eq!(probe.sub.drops(Policy::FailFast as usize), 2);
        // Room again: accepted.
        assert_eq!(ndjson(addr, "5\n").status, 202);
        probe.stop.cancel();
    }

    #[test]
    fn dropped_events_are_reported_separately() {
        let rt = runtime();
        let (out, mut probe) = harness(true, 1, Policy::DropNewest);
        let addr = start(&rt, json!({}), out);
        let b = body(&ndjson(addr, "1\n2\n"));
        assert_eq!(
            (
                b["accepted"].clone(),
                b["dropped"].clone(),
                b["rejected"].clone()
            ),
            (json!(1), json!(1), json!(0))
        );
        assert_eq!(probe.values(), vec![json!(1)]);
        probe.stop.cancel();
    }

    #[test]
    fn token_is_required_when_set() {
        let rt = runtime();
        let (out, mut probe) = harness(true, 8, Policy::DropNewest);
        let addr = start(&rt, json!({"token": "s3cret-token"}), out);
        let ct = "Content-Type: application/json";
        let r = send(addr, "POST", "/ingest", &[ct], b"1");
        assert_eq!(r.status, 401);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        assert_eq!(body(&r)["code"], "unauthorized");
        let r = send(
            addr,
            "POST",
            "/ingest",
            &[ct, "Authorization: Bearer s3cret-tokeN"],
            b"1",
        );
        assert_eq!(r.status, 401);
        let r = send(
            addr,
            "POST",
            "/ingest",
            &[ct, "Authorization: Bearer s3cret"],
            b"1",
        );
        assert_eq!(r.status, 401);
        let r = send(
            addr,
            "POST",
            "/ingest",
            &[ct, "Authorization: Basic s3cret-token"],
            b"1",
        );
        assert_eq!(r.status, 401);
        assert!(probe.values().is_empty());
        let r = send(
            addr,
            "POST",
            "/ingest",
            &[ct, "Authorization: Bearer s3cret-token"],
            b"1",
        );
        assert_eq!(r.status, 202, "{}", r.text());
        assert_eq!(probe.values(), vec![json!(1)]);
        probe.stop.cancel();
    }

    #[test]
    fn not_ready_until_the_server_runs() {
        let rt = runtime();
        let (out, mut probe) = harness(true, 8, Policy::DropNewest);
        probe.phase.store(PHASE_STARTING, Ordering::Release);
        let addr = start(&rt, json!({}), out);
        let r = ndjson(addr, "1\n");
        assert_eq!(r.status, 503);
        assert_eq!(body(&r)["code"], "not_ready");
        assert!(probe.values().is_empty());
        probe.phase.store(PHASE_RUNNING, Ordering::Release);
        assert_eq!(ndjson(addr, "1\n").status, 202);
        assert_eq!(probe.values(), vec![json!(1)]);
        probe.stop.cancel();
    }

    #[test]
    fn correlation_id_is_propagated_or_generated() {
        let rt = runtime();
        let (out, probe) = harness(true, 8, Policy::DropNewest);
        let addr = start(&rt, json!({}), out);
        let ct = "Content-Type: application/x-ndjson";
        let r = send(
            addr,
            "POST",
            "/ingest",
            &[ct, "X-Correlation-Id: abc-123"],
            b"1\n",
        );
        assert_eq!(r.header("x-correlation-id"), Some("abc-123"));
        assert_eq!(body(&r)["corr_id"], "abc-123");
        let a = send(addr, "POST", "/ingest", &[ct], b"1\n");
        let b = send(
            addr,
            "POST",
            "/ingest",
            &[ct, "X-Correlation-Id: has space"],
            b"1\n",
        );
        let (ida, idb) = (
            a.header("x-correlation-id").unwrap(),
            b.header("x-correlation-id").unwrap(),
        );
        assert_eq!(ida.len(), 32);
        assert_ne!(ida, idb);
        assert_ne!(idb, "has space");
        assert_eq!(body(&a)["corr_id"], ida);
        probe.stop.cancel();
    }

    #[test]
    fn stop_closes_the_listener() {
        let rt = runtime();
        let (out, probe) = harness(true, 8, Policy::DropNewest);
        let addr = start(&rt, json!({}), out);
        assert_eq!(ndjson(addr, "1\n").status, 202);
        assert!(probe.connected());
        probe.stop.cancel();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(addr).is_ok() {
            assert!(std::time::Instant::now() < deadline, "listener still open");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn constant_time_compare_and_body_decoding() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(!ct_eq(b"", b"a"));
        let e = decode_body::<Record>(b"{\n  \"a\": nope\n}", BodyKind::Json).unwrap_err();
        assert!(e.starts_with("line 2: "), "{e}");
        let e = decode_body::<Record>(b"1\n\n[", BodyKind::Ndjson).unwrap_err();
        assert!(e.starts_with("line 3: ") && e.contains("column"), "{e}");
        assert!(
            decode_body::<Record>(b"", BodyKind::Ndjson)
                .unwrap()
                .is_empty()
        );
        assert!(decode_body::<Record>(b"", BodyKind::Json).is_err());
    }
}
