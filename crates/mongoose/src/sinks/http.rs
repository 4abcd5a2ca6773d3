//! `http`: each item as an HTTP request to a webhook-style endpoint (§2.4, §3.2, §7).
//!
//! Keys: `url`\* (`http://` or, with feature `tls`, `https://`), `method: POST` (or `PUT`,
//! `PATCH`), `timeoutMs: 2000`, `headers: {}`, `batchMax: 1`, and optional `tls{caPath?}`:
//! extra trusted CA certificates (PEM) for https on top of the webpki roots (§7: outbound
//! https verifies against the webpki roots plus `caPath`; verification cannot be turned off).
//!
//! - **Requests.** `batchMax: 1` sends one item per request, its JSON as the body with
//!   `Content-Type: application/json`. Every request carries a fresh `X-Correlation-Id` (a
//!   ULID) and, when the item has an origin, `X-Mongoose-Origin: <feed>/<seq>`. Configured
//!   `headers` are added as given (e.g. `Authorization`); the headers the sink sets itself
//!   (`Host`, `Content-Type`, `Content-Length`, `X-Correlation-Id`, `X-Mongoose-Origin`, and
//!   the hop-by-hop ones) cannot be configured.
//! - **Verdicts.** 2xx → `Ok`. A network error or timeout, 408, 429 and 5xx → `Retryable`.
//!   Any other status → `Permanent` (the item is quarantined as `sink_rejected`): other 4xx
//!   per the spec, and also 1xx/3xx, since redirects are not followed and retrying cannot
//!   change the answer. Each request, connect included, is bounded by `timeoutMs`.
//! - **Connections.** One kept-alive HTTP/1.1 connection (hyper's `client::conn::http1`,
//!   driven on the server's I/O runtime with `env.io.block_on`). `start` opens it within
//!   `startup.connectTimeoutMs` (TCP connect, TLS handshake for https), so a critical sink
//!   with an unreachable target fails startup. A request that fails on a reused connection
//!   (the server may have closed it while idle) is sent once more on a fresh one before it
//!   counts as an error; delivery is at-least-once. hyper's pooled `client::legacy::Client`
//!   is not used: it needs a `tower::Service` connector for https, and a single connection
//!   is all one sink on one thread uses.
//! - **`batchMax > 1`** sends NDJSON (`Content-Type: application/x-ndjson`, one compact JSON
//!   line per item) of up to `batchMax` items per request, and `X-Mongoose-Origin` lists the
//!   items' origins comma-separated (the first [`MAX_BATCH_ORIGINS`]). A write appends its
//!   item and returns `Ok` while the batch is not full (the item counts as written, held by
//!   the sink); the write that fills the batch sends it. A batch is also sent by `flush`
//!   (shutdown) and by a ticker started in `start` once its oldest item has waited
//!   [`BATCH_LINGER`], so a quiet period does not strand items. How failures map onto the
//!   `Sink` contract:
//!   - retryable failure of a full batch: the item that filled it is taken out again and
//!     the write returns `Retryable`, so the agent keeps it pending and retries it (breaker
//!     included); the earlier items stay buffered and go out with that retry. Nothing is
//!     lost or sent twice by the sink itself.
//!   - retryable failure of a lingering batch (ticker): the items stay buffered and the
//!     ticker retries with a backoff doubling up to [`MAX_LINGER_BACKOFF`].
//!   - permanent failure (a 4xx for the whole batch): the item that filled it is returned
//!     `Permanent` and quarantined; the batch's earlier items were already reported written
//!     and cannot be handed back through `Sink::write`, so they are dropped with an ERROR log
//!     giving their count and origins. The same applies to a lingering batch and to a batch
//!     still unsent at `stop`. Use `batchMax: 1` where every refused item must reach the
//!     quarantine.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde::Deserialize;

use super::{Ticker, check_range, json_line, parse};
use crate::event::Event;
use crate::processor::ConfigMap;
use crate::sink::SinkItem;
use crate::sink_agent::{Sink, SinkEnv, SinkError};

/// Default `timeoutMs`.
pub const DEFAULT_TIMEOUT_MS: u32 = 2000;
/// Longest `timeoutMs`.
pub const MAX_TIMEOUT_MS: u32 = 600_000;
/// Largest `batchMax`.
pub const MAX_BATCH: u32 = 10_000;
/// How long a partial batch may wait before the ticker sends it.
pub const BATCH_LINGER: Duration = Duration::from_millis(100);
/// Longest wait between the ticker's retries of a failing lingering batch.
pub const MAX_LINGER_BACKOFF: Duration = Duration::from_secs(5);
/// Origins listed in a batch's `X-Mongoose-Origin` (keeps the header small).
pub const MAX_BATCH_ORIGINS: usize = 64;
/// Response bodies longer than this are not read; the connection is dropped instead.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Header names the sink sets or that frame the message.
const RESERVED_HEADERS: [&str; 10] = [
    "host",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "upgrade",
    "x-correlation-id",
    "x-mongoose-origin",
];

/// `http` sink config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpConfig {
    /// Target URL.
    pub url: String,
    /// `POST`, `PUT` or `PATCH`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Bound on each request, connect included.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u32,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Items per request (above 1: NDJSON).
    #[serde(default = "one")]
    pub batch_max: u32,
    /// https trust settings.
    #[serde(default)]
    pub tls: Option<HttpTlsConfig>,
}

/// `http` sink `tls` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpTlsConfig {
    /// Extra trusted CA certificates (PEM), on top of the webpki roots.
    #[serde(default)]
    pub ca_path: Option<String>,
}

fn default_method() -> String {
    "POST".into()
}
fn default_timeout_ms() -> u32 {
    DEFAULT_TIMEOUT_MS
}
fn one() -> u32 {
    1
}

/// Everything about the target that never changes, checked.
#[derive(Debug)]
struct Target {
    url: String,
    https: bool,
    host: String,
    port: u16,
    authority: HeaderValue,
    path: Uri,
    method: Method,
    headers: HeaderMap,
    timeout: Duration,
    batch_max: usize,
    /// Read only by the TLS setup; without the `tls` feature https is rejected earlier.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    ca_path: Option<String>,
}

fn checked(config: &ConfigMap) -> Result<Target, String> {
    let cfg: HttpConfig = parse(config)?;
    let bad_url = |why: &str| format!("config.url: {:?} {why}", cfg.url);
    let uri: Uri = cfg
        .url
        .parse()
        .map_err(|e| bad_url(&format!("is not a URL: {e}")))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") if cfg!(feature = "tls") => true,
        Some("https") => {
            return Err("config.url: https needs the `tls` feature, which this build lacks".into());
        }
        _ => return Err(bad_url("must start with http:// or https://")),
    };
    let authority = uri.authority().ok_or_else(|| bad_url("has no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad_url(
            "must not carry credentials; put them in headers (e.g. Authorization)",
        ));
    }
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .to_string();
    if host.is_empty() {
        return Err(bad_url("has no host"));
    }
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    if port == 0 {
        return Err(bad_url("has port 0"));
    }
    let authority_value =
        HeaderValue::from_str(authority.as_str()).map_err(|_| bad_url("has a bad host"))?;
    let path: Uri = uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| !p.is_empty())
        .unwrap_or("/")
        .parse()
        .map_err(|_| bad_url("has a bad path"))?;
    let method = match cfg.method.to_ascii_uppercase().as_str() {
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "PATCH" => Method::PATCH,
        _ => {
            return Err(format!(
                "config.method: {:?} is not POST, PUT or PATCH",
                cfg.method
            ));
        }
    };
    check_range("timeoutMs", cfg.timeout_ms, 1, MAX_TIMEOUT_MS)?;
    check_range("batchMax", cfg.batch_max, 1, MAX_BATCH)?;
    let mut headers = HeaderMap::new();
    for (k, v) in &cfg.headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("config.headers.{k}: not a valid header name"))?;
        if RESERVED_HEADERS.contains(&name.as_str()) {
            return Err(format!(
                "config.headers.{k}: set by the sink, cannot be configured"
            ));
        }
        // The value may be a secret (Authorization): it is never echoed.
        let value = HeaderValue::from_str(v)
            .map_err(|_| format!("config.headers.{k}: not a valid header value"))?;
        headers.append(name, value);
    }
    let ca_path = cfg.tls.as_ref().and_then(|t| t.ca_path.clone());
    if ca_path.as_deref().is_some_and(|p| p.trim().is_empty()) {
        return Err("config.tls.caPath: must not be empty".into());
    }
    if ca_path.is_some() && !https {
        return Err("config.tls: applies to https URLs only".into());
    }
    Ok(Target {
        url: format!(
            "{}://{}{}",
            uri.scheme_str().unwrap_or("http"),
            authority,
            path
        ),
        https,
        host,
        port,
        authority: authority_value,
        path,
        method,
        headers,
        timeout: Duration::from_millis(u64::from(cfg.timeout_ms)),
        batch_max: cfg.batch_max as usize,
        ca_path,
    })
}

/// Checks an `http` sink's `config` (no side effects: nothing is resolved, read or
/// connected).
pub fn validate(config: &ConfigMap) -> Result<(), String> {
    checked(config).map(|_| ())
}

/// Builds an `http` sink (no I/O: `start` connects).
pub fn build<E: Event>(config: &ConfigMap, env: &SinkEnv) -> Result<Box<dyn Sink<E>>, String> {
    let target = Arc::new(checked(config)?);
    Ok(Box::new(HttpSink {
        name: env.name,
        connect_timeout: env.connect_timeout,
        batch_max: target.batch_max,
        inner: Arc::new(Mutex::new(Inner {
            client: Client {
                target,
                io: env.io.clone(),
                tls: None,
                sender: None,
            },
            batch: Batch::default(),
        })),
        ticker: None,
    }))
}

#[cfg(feature = "tls")]
type TlsConfig = tokio_rustls::rustls::ClientConfig;
/// Never built: without the `tls` feature `validate` rejects https.
#[cfg(not(feature = "tls"))]
type TlsConfig = std::convert::Infallible;

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// The connection to the target.
struct Client {
    target: Arc<Target>,
    io: tokio::runtime::Handle,
    tls: Option<Arc<TlsConfig>>,
    sender: Option<Sender>,
}

impl Client {
    /// The rustls config for https (reads `caPath` once), `None` for http.
    fn tls(&mut self) -> Result<Option<Arc<TlsConfig>>, String> {
        if !self.target.https || self.tls.is_some() {
            return Ok(self.tls.clone());
        }
        #[cfg(feature = "tls")]
        {
            let c = super::tls_client_config(self.target.ca_path.as_deref(), "tls.caPath")?;
            self.tls = Some(c);
        }
        Ok(self.tls.clone())
    }

    /// Opens the connection within `within` (what `start` does).
    fn connect(&mut self, within: Duration) -> Result<(), String> {
        let tls = self.tls()?;
        let target = self.target.clone();
        let opened = self
            .io
            .block_on(async { tokio::time::timeout(within, open(&target, tls)).await });
        match opened {
            Ok(Ok(sender)) => {
                self.sender = Some(sender);
                Ok(())
            }
            Ok(Err(e)) => Err(format!("http sink: connect to {}: {e}", target.url)),
            Err(_) => Err(format!(
                "http sink: connect to {}: timed out after {} ms",
                target.url,
                within.as_millis()
            )),
        }
    }

    /// One request; keeps the connection for the next one when it stays usable.
    fn send(
        &mut self,
        body: Bytes,
        content_type: &'static str,
        origin: Option<String>,
    ) -> Result<(), SinkError> {
        let tls = self.tls().map_err(SinkError::Retryable)?;
        let target = self.target.clone();
        let corr = ron_kernel::CorrId::generate();
        let previous = self.sender.take().filter(|s| !s.is_closed());
        let t = target.clone();
        let exchange = async move {
            let reused = previous.is_some();
            let mut sender = match previous {
                Some(s) => s,
                None => match open(&t, tls.clone()).await {
                    Ok(s) => s,
                    Err(e) => return (Err(format!("connect: {e}")), None),
                },
            };
            let mut retried = !reused;
            loop {
                let req = request(&t, body.clone(), content_type, corr.as_str(), &origin);
                let sent = match sender.ready().await {
                    Ok(()) => sender.send_request(req).await,
                    Err(e) => Err(e),
                };
                match sent {
                    Ok(resp) => {
                        let status = resp.status();
                        let keep = drain(resp.into_body()).await;
                        return (Ok(status), keep.then_some(sender));
                    }
                    // The server may have closed the idle connection just as we reused it:
                    // one more try on a fresh connection.
                    Err(_) if !retried => {
                        retried = true;
                        sender = match open(&t, tls.clone()).await {
                            Ok(s) => s,
                            Err(e) => return (Err(format!("connect: {e}")), None),
                        };
                    }
                    Err(e) => return (Err(e.to_string()), None),
                }
            }
        };
        let timeout = target.timeout;
        let outcome = self
            .io
            .block_on(async { tokio::time::timeout(timeout, exchange).await });
        match outcome {
            Ok((Ok(status), sender)) => {
                self.sender = sender;
                verdict(&target.url, status)
            }
            Ok((Err(e), _)) => Err(SinkError::Retryable(format!(
                "http sink: {}: {e}",
                target.url
            ))),
            // The connection is in an unknown state: dropped, the next request reconnects.
            Err(_) => Err(SinkError::Retryable(format!(
                "http sink: {}: timed out after {} ms",
                target.url,
                timeout.as_millis()
            ))),
        }
    }
}

/// The spec's status mapping (§2.4).
fn verdict(url: &str, status: StatusCode) -> Result<(), SinkError> {
    let msg = || format!("http sink: {url} answered {status}");
    match status.as_u16() {
        200..=299 => Ok(()),
        408 | 429 | 500..=599 => Err(SinkError::Retryable(msg())),
        _ => Err(SinkError::Permanent(msg())),
    }
}

fn request(
    t: &Target,
    body: Bytes,
    content_type: &'static str,
    corr: &str,
    origin: &Option<String>,
) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = t.method.clone();
    *req.uri_mut() = t.path.clone();
    let h = req.headers_mut();
    h.clone_from(&t.headers);
    h.insert(HOST, t.authority.clone());
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(corr) {
        h.insert("x-correlation-id", v);
    }
    if let Some(v) = origin
        .as_deref()
        .and_then(|o| HeaderValue::from_str(o).ok())
    {
        h.insert("x-mongoose-origin", v);
    }
    req
}

/// Reads the response body so the connection can carry the next request; false when it is
/// too long or broken (the connection is then dropped).
async fn drain(mut body: hyper::body::Incoming) -> bool {
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                seen += f.data_ref().map_or(0, |d| d.len());
                if seen > MAX_RESPONSE_BYTES {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// TCP connect, TLS for https, HTTP/1.1 handshake; the connection task runs on the runtime.
async fn open(t: &Target, tls: Option<Arc<TlsConfig>>) -> Result<Sender, String> {
    let tcp = tokio::net::TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    #[cfg(feature = "tls")]
    if let Some(config) = tls {
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(t.host.clone())
            .map_err(|e| format!("tls: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        return handshake(TokioIo::new(stream)).await;
    }
    #[cfg(not(feature = "tls"))]
    let _ = tls;
    handshake(TokioIo::new(tcp)).await
}

async fn handshake<T>(io: T) -> Result<Sender, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "http sink: connection ended");
        }
    });
    Ok(sender)
}

/// Items waiting to be sent as one NDJSON request (`batchMax > 1`).
#[derive(Default)]
struct Batch {
    body: Vec<u8>,
    /// Byte offset where each buffered item starts.
    starts: Vec<usize>,
    origins: Vec<Option<String>>,
    oldest: Option<Instant>,
    /// The ticker's next attempt after a failure, and the current backoff.
    retry_at: Option<Instant>,
    backoff: Duration,
}

impl Batch {
    fn len(&self) -> usize {
        self.starts.len()
    }

    fn push(&mut self, line: &[u8], origin: Option<String>) {
        self.starts.push(self.body.len());
        self.body.extend_from_slice(line);
        self.origins.push(origin);
        self.oldest.get_or_insert_with(Instant::now);
    }

    fn pop_last(&mut self) {
        if let Some(start) = self.starts.pop() {
            self.body.truncate(start);
            self.origins.pop();
        }
        if self.starts.is_empty() {
            self.oldest = None;
        }
    }

    fn origin_header(&self) -> Option<String> {
        let list: Vec<&str> = self
            .origins
            .iter()
            .flatten()
            .take(MAX_BATCH_ORIGINS)
            .map(String::as_str)
            .collect();
        (!list.is_empty()).then(|| list.join(", "))
    }

    fn clear(&mut self) {
        *self = Batch::default();
    }

    /// Drops the buffered items after a permanent refusal, saying so (they were already
    /// reported written and cannot be quarantined from here).
    fn drop_refused(&mut self, sink: &str, why: &str) {
        if self.len() > 0 {
            let origins: Vec<&str> = self.origins.iter().flatten().map(String::as_str).collect();
            tracing::error!(
                sink,
                dropped = self.len(),
                origins = %origins.join(","),
                error = why,
                "http sink: batch refused permanently; its items are dropped"
            );
        }
        self.clear();
    }
}

struct Inner {
    client: Client,
    batch: Batch,
}

impl Inner {
    fn send_batch(&mut self) -> Result<(), SinkError> {
        let body = Bytes::copy_from_slice(&self.batch.body);
        let origin = self.batch.origin_header();
        self.client.send(body, "application/x-ndjson", origin)
    }
}

/// The `http` sink.
pub struct HttpSink {
    name: &'static str,
    connect_timeout: Duration,
    batch_max: usize,
    /// Shared with the batch ticker.
    inner: Arc<Mutex<Inner>>,
    ticker: Option<Ticker>,
}

impl HttpSink {
    fn start_ticker(&mut self) -> Result<(), String> {
        let (inner, name) = (self.inner.clone(), self.name);
        self.ticker = Some(Ticker::spawn("mg-http-batch", BATCH_LINGER, move || {
            let mut g = inner.lock();
            let now = Instant::now();
            let due = g
                .batch
                .oldest
                .is_some_and(|t| now.duration_since(t) >= BATCH_LINGER)
                && g.batch.retry_at.is_none_or(|t| now >= t);
            if !due {
                return;
            }
            match g.send_batch() {
                Ok(()) => g.batch.clear(),
                Err(SinkError::Retryable(e)) => {
                    let b = &mut g.batch;
                    b.backoff = (b.backoff * 2).clamp(BATCH_LINGER, MAX_LINGER_BACKOFF);
                    b.retry_at = Some(now + b.backoff);
                    tracing::debug!(sink = name, error = %e, "http sink: lingering batch not sent; will retry");
                }
                Err(SinkError::Permanent(e)) => g.batch.drop_refused(name, &e),
            }
        })?);
        Ok(())
    }
}

impl<E: Event> Sink<E> for HttpSink {
    fn start(&mut self) -> Result<(), String> {
        self.inner.lock().client.connect(self.connect_timeout)?;
        if self.batch_max > 1 && self.ticker.is_none() {
            self.start_ticker()?;
        }
        Ok(())
    }

    fn write(&mut self, item: &SinkItem<E>) -> Result<(), SinkError> {
        let mut line = json_line(item, false);
        let origin = item.origin().map(|(feed, seq)| format!("{feed}/{seq}"));
        let mut g = self.inner.lock();
        if self.batch_max == 1 {
            line.pop(); // the newline: the body is one JSON document
            return g.client.send(Bytes::from(line), "application/json", origin);
        }
        g.batch.push(&line, origin);
        if g.batch.len() < self.batch_max {
            return Ok(());
        }
        match g.send_batch() {
            Ok(()) => {
                g.batch.clear();
                Ok(())
            }
            Err(SinkError::Retryable(e)) => {
                // The agent keeps this item pending and writes it again; the rest wait here.
                g.batch.pop_last();
                Err(SinkError::Retryable(e))
            }
            Err(SinkError::Permanent(e)) => {
                g.batch.pop_last();
                g.batch.drop_refused(self.name, &e);
                Err(SinkError::Permanent(e))
            }
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        let mut g = self.inner.lock();
        if g.batch.len() == 0 {
            return Ok(());
        }
        match g.send_batch() {
            Ok(()) => {
                g.batch.clear();
                Ok(())
            }
            Err(SinkError::Permanent(e)) => {
                g.batch.drop_refused(self.name, &e);
                Err(SinkError::Permanent(e))
            }
            Err(e) => Err(e),
        }
    }

    fn stop(&mut self) {
        self.ticker.take();
        let mut g = self.inner.lock();
        if g.batch.len() > 0 {
            let origins: Vec<&str> = g
                .batch
                .origins
                .iter()
                .flatten()
                .map(String::as_str)
                .collect();
            tracing::error!(
                sink = self.name,
                dropped = g.batch.len(),
                origins = %origins.join(","),
                "http sink: stopped with a batch that could not be sent"
            );
            g.batch.clear();
        }
        g.client.sender = None;
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        // Stops the ticker thread, which holds a reference to `inner`.
        self.ticker.take();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{SocketAddr, TcpListener};

    use serde_json::json;

    use super::*;
    use crate::Record;
    use crate::sinks::test_util::{env, map, runtime};

    /// One request as the stub saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        request_line: String,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// A tiny HTTP/1.1 server answering each request with the next scripted status (200
    /// once the script runs out), keeping connections alive; a status + [`CLOSE`] answers
    /// the status, then closes the connection without announcing it.
    struct Stub {
        addr: SocketAddr,
        seen: Arc<Mutex<Vec<Seen>>>,
        conns: Arc<std::sync::atomic::AtomicUsize>,
    }

    const CLOSE: u16 = 1000;

    impl Stub {
        fn start(script: &[u16]) -> Stub {
            Self::start_with(script, None)
        }

        #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
        fn start_with(script: &[u16], tls: Option<Arc<TlsServer>>) -> Stub {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
            let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let (s2, sc2, c2) = (seen.clone(), script.clone(), conns.clone());
            // Detached: it lives as long as the test process, serving only this test.
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    let Ok(sock) = conn else { continue };
                    c2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let (seen, script) = (s2.clone(), sc2.clone());
                    #[cfg(feature = "tls")]
                    let tls = tls.clone();
                    std::thread::spawn(move || {
                        #[cfg(feature = "tls")]
                        if let Some(cfg) = tls {
                            let Ok(conn) = tokio_rustls::rustls::ServerConnection::new(cfg) else {
                                return;
                            };
                            serve(
                                tokio_rustls::rustls::StreamOwned::new(conn, sock),
                                &seen,
                                &script,
                            );
                            return;
                        }
                        serve(sock, &seen, &script);
                    });
                }
            });
            Stub { addr, seen, conns }
        }

        fn conns(&self) -> usize {
            self.conns.load(std::sync::atomic::Ordering::SeqCst)
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().clone()
        }

        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }
    }

    #[cfg(feature = "tls")]
    type TlsServer = tokio_rustls::rustls::ServerConfig;
    #[cfg(not(feature = "tls"))]
    type TlsServer = ();

    fn serve<S: Read + Write>(stream: S, seen: &Mutex<Vec<Seen>>, script: &Mutex<VecDeque<u16>>) {
        let mut r = BufReader::new(stream);
        loop {
            let mut request_line = String::new();
            if r.read_line(&mut request_line).unwrap_or(0) == 0 {
                return;
            }
            let mut headers = Vec::new();
            loop {
                let mut l = String::new();
                if r.read_line(&mut l).unwrap_or(0) == 0 {
                    return;
                }
                let l = l.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':') {
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            if r.read_exact(&mut body).is_err() {
                return;
            }
            seen.lock().push(Seen {
                request_line: request_line.trim_end().to_string(),
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let code = script.lock().pop_front().unwrap_or(200);
            let status = code % CLOSE;
            let resp = format!("HTTP/1.1 {status} Scripted\r\nContent-Length: 2\r\n\r\nok");
            let w = r.get_mut();
            if w.write_all(resp.as_bytes())
                .and_then(|()| w.flush())
                .is_err()
                || code >= CLOSE
            {
                return;
            }
        }
    }

    fn item(n: u64, origin: bool) -> SinkItem<Record> {
        SinkItem::Event {
            value: Record::new(json!({"n": n})),
            origin: origin.then_some(("prices", n)),
        }
    }

    #[test]
    fn config_validation_names_the_key() {
        validate(&map(json!({"url": "http://127.0.0.1:9/x"}))).unwrap();
        let e = validate(&map(json!({}))).unwrap_err();
        assert!(e.contains("url"), "{e}");
        let e = validate(&map(json!({"url": "http://h/", "batch": 2}))).unwrap_err();
        assert!(e.contains("batch"), "{e}");
        for (cfg, key) in [
            (json!({"url": "ftp://h/"}), "config.url:"),
            (json!({"url": "not a url"}), "config.url:"),
            (json!({"url": "http://u:pw@h/"}), "config.url:"),
            (
                json!({"url": "http://h/", "method": "GET"}),
                "config.method:",
            ),
            (
                json!({"url": "http://h/", "timeoutMs": 0}),
                "config.timeoutMs:",
            ),
            (
                json!({"url": "http://h/", "timeoutMs": 600_001}),
                "config.timeoutMs:",
            ),
            (
                json!({"url": "http://h/", "batchMax": 0}),
                "config.batchMax:",
            ),
            (
                json!({"url": "http://h/", "batchMax": 10_001}),
                "config.batchMax:",
            ),
            (
                json!({"url": "http://h/", "headers": {"Host": "x"}}),
                "config.headers.Host:",
            ),
            (
                json!({"url": "http://h/", "headers": {"bad name": "x"}}),
                "config.headers.bad name:",
            ),
            (
                json!({"url": "http://h/", "headers": {"X-A": "a\nb"}}),
                "config.headers.X-A:",
            ),
            (
                json!({"url": "http://h/", "headers": {"X-A": 1}}),
                "config.headers.X-A:",
            ),
            (
                json!({"url": "http://h/", "tls": {"caPath": "/x.pem"}}),
                "config.tls:",
            ),
            (
                json!({"url": "http://h/", "tls": {"insecure": true}}),
                "config.tls.insecure:",
            ),
        ] {
            let e = validate(&map(cfg.clone())).unwrap_err();
            assert!(e.starts_with(key), "{cfg}: {e}");
        }
        // Secrets in header values are not echoed.
        let e = validate(&map(
            json!({"url": "http://h/", "headers": {"Authorization": "s3cret\n"}}),
        ))
        .unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
        #[cfg(feature = "tls")]
        validate(&map(
            json!({"url": "https://h/", "tls": {"caPath": "/none.pem"}}),
        ))
        .unwrap();
    }

    #[test]
    fn a_2xx_is_ok_and_requests_carry_correlation_and_origin_headers() {
        let stub = Stub::start(&[200, 204]);
        let rt = runtime();
        let cfg = json!({"url": stub.url("/hook?x=1"), "headers": {"Authorization": "Bearer t"}});
        let mut sink = build::<Record>(&map(cfg), &env(&rt)).unwrap();
        sink.start().unwrap();
        sink.write(&item(7, true)).unwrap();
        sink.write(&item(8, false)).unwrap();
        let seen = stub.seen();
        assert_eq!(seen.len(), 2, "{seen:?}");
        let (a, b) = (&seen[0], &seen[1]);
        assert_eq!(a.request_line, "POST /hook?x=1 HTTP/1.1");
        assert_eq!(a.body, "{\"n\":7}");
        assert_eq!(a.header("content-type"), Some("application/json"));
        assert_eq!(a.header("x-mongoose-origin"), Some("prices/7"));
        assert_eq!(a.header("authorization"), Some("Bearer t"));
        assert_eq!(a.header("host"), Some(stub.addr.to_string().as_str()));
        let corr_a = a.header("x-correlation-id").expect("correlation id");
        let corr_b = b.header("x-correlation-id").expect("correlation id");
        assert_eq!(corr_a.len(), 26, "{corr_a}");
        assert_ne!(corr_a, corr_b);
        assert_eq!(b.header("x-mongoose-origin"), None);
    }

    #[test]
    fn statuses_map_to_retryable_and_permanent() {
        let stub = Stub::start(&[500, 429, 408, 503, 400, 404, 301, 200]);
        let rt = runtime();
        let mut sink = build::<Record>(&map(json!({"url": stub.url("/")})), &env(&rt)).unwrap();
        sink.start().unwrap();
        for want in ["500", "429", "408", "503"] {
            match sink.write(&item(1, true)) {
                Err(SinkError::Retryable(e)) => assert!(e.contains(want), "{e}"),
                other => panic!("{want}: {other:?}"),
            }
        }
        for want in ["400", "404", "301"] {
            match sink.write(&item(1, true)) {
                Err(SinkError::Permanent(e)) => assert!(e.contains(want), "{e}"),
                other => panic!("{want}: {other:?}"),
            }
        }
        sink.write(&item(1, true)).unwrap();
        assert_eq!(stub.seen().len(), 8);
    }

    #[test]
    fn a_closed_port_fails_start_and_writes_are_retryable() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let rt = runtime();
        let url = format!("http://{addr}/");
        let mut sink = build::<Record>(&map(json!({"url": url})), &env(&rt)).unwrap();
        let e = sink.start().unwrap_err();
        assert!(e.contains(&addr.to_string()), "{e}");
        match sink.write(&item(1, true)) {
            Err(SinkError::Retryable(e)) => assert!(e.contains("connect"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_server_that_never_answers_times_out_as_retryable() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let rt = runtime();
        let cfg = json!({"url": format!("http://{addr}/"), "timeoutMs": 200});
        let mut sink = build::<Record>(&map(cfg), &env(&rt)).unwrap();
        let t0 = Instant::now();
        match sink.write(&item(1, true)) {
            Err(SinkError::Retryable(e)) => assert!(e.contains("timed out"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(t0.elapsed() < Duration::from_secs(5));
        drop(listener);
    }

    #[test]
    fn batches_send_ndjson_when_full_and_retry_without_loss_or_duplicates() {
        let stub = Stub::start(&[500, 200, 400]);
        let rt = runtime();
        let cfg = json!({"url": stub.url("/b"), "batchMax": 3});
        // Not started: no ticker, so only full batches and flush send.
        let mut sink = build::<Record>(&map(cfg), &env(&rt)).unwrap();
        sink.write(&item(1, true)).unwrap();
        sink.write(&item(2, false)).unwrap();
        assert!(stub.seen().is_empty());
        // The batch fills, the server answers 500: the third item is pending again.
        assert!(matches!(
            sink.write(&item(3, true)),
            Err(SinkError::Retryable(_))
        ));
        sink.write(&item(3, true)).unwrap();
        let seen = stub.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1].body, "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
        assert_eq!(seen[1].header("content-type"), Some("application/x-ndjson"));
        assert_eq!(
            seen[1].header("x-mongoose-origin"),
            Some("prices/1, prices/3")
        );
        // A 400 for a full batch: the filling item is permanent, the batch is gone.
        for n in 4..6 {
            sink.write(&item(n, true)).unwrap();
        }
        assert!(matches!(
            sink.write(&item(6, true)),
            Err(SinkError::Permanent(_))
        ));
        // flush sends a partial batch.
        sink.write(&item(7, true)).unwrap();
        sink.flush().unwrap();
        let seen = stub.seen();
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[3].body, "{\"n\":7}\n");
    }

    #[test]
    fn a_lingering_partial_batch_is_sent_by_the_ticker() {
        let stub = Stub::start(&[]);
        let rt = runtime();
        let cfg = json!({"url": stub.url("/b"), "batchMax": 100});
        let mut sink = build::<Record>(&map(cfg), &env(&rt)).unwrap();
        sink.start().unwrap();
        sink.write(&item(1, true)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while stub.seen().is_empty() {
            assert!(Instant::now() < deadline, "batch never sent");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(stub.seen()[0].body, "{\"n\":1}\n");
        sink.stop();
    }

    #[test]
    fn keep_alive_connections_are_reused_and_a_closed_one_is_replaced() {
        let stub = Stub::start(&[200, 200, 200 + CLOSE, 200]);
        let rt = runtime();
        let mut sink = build::<Record>(&map(json!({"url": stub.url("/")})), &env(&rt)).unwrap();
        sink.start().unwrap();
        for n in 0..3 {
            sink.write(&item(n, true)).unwrap();
        }
        assert_eq!(stub.conns(), 1, "one kept-alive connection");
        // The server dropped the connection after the third answer without saying so: the
        // next write still succeeds, on a new connection, and is delivered once.
        sink.write(&item(3, true)).unwrap();
        assert_eq!(stub.conns(), 2);
        let bodies: Vec<String> = stub.seen().into_iter().map(|s| s.body).collect();
        assert_eq!(bodies, ["{\"n\":0}", "{\"n\":1}", "{\"n\":2}", "{\"n\":3}"]);
    }

    #[cfg(feature = "tls")]
    #[test]
    fn https_verifies_against_ca_path() {
        let dir = test_support::temp_dir("sink-http-tls");
        let Some((cert, key)) = crate::sinks::test_util::self_signed_cert(&dir) else {
            return;
        };
        let server = crate::sinks::test_util::tls_server_config(&cert, &key);
        let stub = Stub::start_with(&[200], Some(server));
        let url = format!("https://{}/secure", stub.addr);
        let rt = runtime();
        let mut untrusted = build::<Record>(&map(json!({"url": url})), &env(&rt)).unwrap();
        let e = untrusted.start().unwrap_err();
        assert!(e.contains("tls"), "{e}");
        let cfg = json!({"url": url, "tls": {"caPath": cert}});
        let mut sink = build::<Record>(&map(cfg), &env(&rt)).unwrap();
        sink.start().unwrap();
        sink.write(&item(1, true)).unwrap();
        let seen = stub.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].request_line, "POST /secure HTTP/1.1");
    }
}
