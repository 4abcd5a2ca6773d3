//! One exposer connection: an HTTP/1.0/1.1 keep-alive loop with the §3.6 deadlines.
//!
//! - header read: from accept for the first request, from the first byte for later ones;
//!   on expiry the socket closes without an answer (`io_timeouts_total{op="read"}`);
//! - idle keep-alive: a connection with no request in progress closes (not an error);
//! - write: each response must be written in time (`io_timeouts_total{op="write"}`);
//! - header block: at most `max_header_bytes` and 64 headers, else 431.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ron_kernel::{CorrId, CorrIdConfig, ShutdownToken};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::exposer::{Exposer, Head, Reply, error_body, reason_phrase};
use crate::options::ServeOptions;

/// Most request headers accepted.
pub const MAX_HEADERS: usize = 64;
/// Bodies up to this size are copied behind the header block and sent in one write.
const COALESCE_BYTES: usize = 16 * 1024;

/// What every connection of one listener shares.
pub(crate) struct ConnCtx {
    pub(crate) exposer: Arc<Exposer>,
    header_read_timeout: Duration,
    write_timeout: Duration,
    idle_timeout: Duration,
    max_header_bytes: usize,
    pub(crate) corr_header: String,
    corr: CorrIdConfig,
    token: ShutdownToken,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
    tls_log: parking_lot::Mutex<Option<Instant>>,
}

impl ConnCtx {
    pub(crate) fn new(exposer: Arc<Exposer>, opts: &ServeOptions) -> ConnCtx {
        ConnCtx {
            exposer,
            header_read_timeout: opts.header_read_timeout,
            write_timeout: opts.write_timeout,
            idle_timeout: opts.idle_timeout,
            max_header_bytes: opts.max_header_bytes as usize,
            corr_header: opts.corr_header.as_str().to_owned(),
            corr: CorrIdConfig {
                header: opts.corr_header.clone(),
                ..CorrIdConfig::default()
            },
            token: opts.shutdown.clone(),
            #[cfg(feature = "tls")]
            tls: opts.tls.clone().map(tokio_rustls::TlsAcceptor::from),
            tls_log: parking_lot::Mutex::new(None),
        }
    }
}

/// Serves a TCP connection, after a TLS handshake when TLS is configured.
pub(crate) async fn serve_tcp(ctx: Arc<ConnCtx>, s: TcpStream, peer: String, accepted: Instant) {
    #[cfg(feature = "tls")]
    if let Some(acceptor) = ctx.tls.clone() {
        let deadline = tokio::time::Instant::from_std(accepted + ctx.header_read_timeout);
        let started = Instant::now();
        let internal = &ctx.exposer.metrics.internal;
        match tokio::time::timeout_at(deadline, acceptor.accept(s)).await {
            Ok(Ok(tls)) => {
                internal
                    .tls_handshake_seconds
                    .observe(started.elapsed().as_secs_f64());
                serve_plain(ctx, tls, peer, accepted).await;
            }
            Ok(Err(e)) => tls_failed(&ctx, &peer, &e.to_string()),
            Err(_) => tls_failed(&ctx, &peer, "handshake timed out"),
        }
        return;
    }
    serve_plain(ctx, s, peer, accepted).await
}

#[cfg(feature = "tls")]
fn tls_failed(ctx: &ConnCtx, peer: &str, reason: &str) {
    ctx.exposer.metrics.tls_handshake_failures_total.inc();
    let mut last = ctx.tls_log.lock();
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
        *last = Some(Instant::now());
        // rustls errors name the failure kind, never a certificate subject.
        tracing::info!(reason, peer_addr = %peer, "tls.handshake_fail");
    }
}

enum Parsed {
    /// A complete head of `len` bytes.
    Complete(usize),
    Partial,
    /// A parser error answered with this status and reject reason.
    Error(u16, &'static str),
}

/// Serves requests on an established (plain or TLS) stream until it closes.
pub(crate) async fn serve_plain<S>(ctx: Arc<ConnCtx>, mut io: S, peer: String, accepted: Instant)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut token = ctx.token.clone();
    let mut buf = vec![0u8; ctx.max_header_bytes];
    let mut filled = 0usize;
    let mut out = Vec::with_capacity(1024);
    let mut first = true;
    loop {
        // Wait for the request's first byte (a later request only) within the idle limit.
        let started_at = if first || filled > 0 {
            if first { accepted } else { Instant::now() }
        } else {
            let read = tokio::select! {
                _ = token.stopped() => return,
                r = tokio::time::timeout(ctx.idle_timeout, io.read(&mut buf[..])) => r,
            };
            match read {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                Ok(Ok(n)) => filled = n,
            }
            Instant::now()
        };
        first = false;
        let deadline = tokio::time::Instant::from_std(started_at + ctx.header_read_timeout);

        // Read until the head is complete, the buffer is full or the deadline passes.
        let head_len = loop {
            match parse(&buf[..filled]) {
                Parsed::Complete(n) => break n,
                Parsed::Error(status, reason) => {
                    parser_error(&ctx, &mut io, &peer, status, reason).await;
                    return;
                }
                Parsed::Partial if filled == buf.len() => {
                    parser_error(&ctx, &mut io, &peer, 431, "header_too_large").await;
                    return;
                }
                Parsed::Partial => {}
            }
            let read = tokio::select! {
                _ = token.stopped() => return,
                r = tokio::time::timeout_at(deadline, io.read(&mut buf[filled..])) => r,
            };
            match read {
                Err(_) => {
                    ctx.exposer.metrics.internal.io_read.inc();
                    return;
                }
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => filled += n,
            }
        };

        let (reply, keep_alive) = {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            // Parsed once above; parsing again here keeps the borrow local to this block.
            if !matches!(
                req.parse(&buf[..head_len]),
                Ok(httparse::Status::Complete(_))
            ) {
                return;
            }
            let head = head_from(&ctx, &req, &peer);
            let path = head.path;
            let ep = ctx.exposer.mount.endpoint_for(path);
            let reply = ctx.exposer.handle(ep, &head).await;
            (reply, wants_keep_alive(&req))
        };
        buf.copy_within(head_len..filled, 0);
        filled -= head_len;

        let close = reply.close || !keep_alive || token.is_draining();
        out.clear();
        render(&mut out, &reply, close, &ctx.corr_header);
        let write = async {
            if reply.head_only || reply.body.len() <= COALESCE_BYTES {
                if !reply.head_only {
                    out.extend_from_slice(&reply.body);
                }
                io.write_all(&out).await?;
            } else {
                io.write_all(&out).await?;
                io.write_all(&reply.body).await?;
            }
            io.flush().await
        };
        match tokio::time::timeout(ctx.write_timeout, write).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                ctx.exposer.metrics.internal.io_write.inc();
                return;
            }
        }
        if close {
            let _ = tokio::time::timeout(Duration::from_millis(100), io.shutdown()).await;
            return;
        }
    }
}

fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => Parsed::Complete(n),
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => Parsed::Error(431, "header_too_large"),
        Err(httparse::Error::Version) => Parsed::Error(505, "protocol"),
        Err(_) => Parsed::Error(400, "bad_request"),
    }
}

fn head_from<'a>(ctx: &ConnCtx, req: &httparse::Request<'a, '_>, peer: &'a str) -> Head<'a> {
    let raw_path = req.path.unwrap_or("/");
    let path = raw_path.split_once('?').map_or(raw_path, |(p, _)| p);
    let mut head = Head {
        method: req.method.unwrap_or(""),
        path,
        accept: None,
        accept_encoding: None,
        has_body: false,
        upgrade: false,
        user_agent: None,
        peer,
        corr: CorrId::generate(),
    };
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).ok();
        let name = h.name;
        if name.eq_ignore_ascii_case("accept") {
            head.accept = value;
        } else if name.eq_ignore_ascii_case("accept-encoding") {
            head.accept_encoding = value;
        } else if name.eq_ignore_ascii_case("content-length") {
            head.has_body |= value.map(str::trim) != Some("0");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.has_body = true;
        } else if name.eq_ignore_ascii_case("upgrade") {
            head.upgrade = true;
        } else if name.eq_ignore_ascii_case("user-agent") {
            head.user_agent = value;
        } else if name.eq_ignore_ascii_case(&ctx.corr_header)
            && let Some(v) = value
            && ctx.corr.accepts(v)
        {
            head.corr = CorrId(v.into());
        }
    }
    head
}

fn wants_keep_alive(req: &httparse::Request<'_, '_>) -> bool {
    let conn = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("connection"))
        .map(|h| h.value.to_ascii_lowercase());
    let has = |tok: &[u8]| {
        conn.as_deref()
            .is_some_and(|v| v.split(|b| *b == b',').any(|t| t.trim_ascii() == tok))
    };
    match req.version {
        Some(1) => !has(b"close"),
        _ => has(b"keep-alive"),
    }
}

/// Answers a request the parser could not accept, then the caller closes.
async fn parser_error<S: AsyncWrite + Unpin>(
    ctx: &ConnCtx,
    io: &mut S,
    peer: &str,
    status: u16,
    reason: &'static str,
) {
    let corr = CorrId::generate();
    ctx.exposer
        .count_reject(reason, "", "", status, None, peer, &corr);
    let code = match status {
        431 => "header_too_large",
        505 => "protocol",
        _ => "bad_request",
    };
    let body = error_body(code, "The request could not be parsed.", corr.as_str());
    let resp = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        reason_phrase(status),
        body.len()
    );
    let _ = tokio::time::timeout(ctx.write_timeout, async {
        io.write_all(resp.as_bytes()).await?;
        io.flush().await?;
        io.shutdown().await
    })
    .await;
}

/// Writes the status line and headers (not the body) of `r`.
pub(crate) fn render(out: &mut Vec<u8>, r: &Reply, close: bool, corr_header: &str) {
    out.extend_from_slice(b"HTTP/1.1 ");
    crate::text::push_u64(out, r.status.into());
    out.push(b' ');
    out.extend_from_slice(reason_phrase(r.status).as_bytes());
    out.extend_from_slice(b"\r\ndate: ");
    push_date(out);
    out.extend_from_slice(b"\r\ncontent-type: ");
    out.extend_from_slice(r.content_type.as_bytes());
    out.extend_from_slice(b"\r\ncontent-length: ");
    crate::text::push_u64(out, r.body.len() as u64);
    out.extend_from_slice(b"\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\n");
    out.extend_from_slice(corr_header.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(r.corr.as_str().as_bytes());
    out.extend_from_slice(b"\r\n");
    if r.vary {
        out.extend_from_slice(b"vary: Accept, Accept-Encoding\r\n");
    }
    if r.gzip {
        out.extend_from_slice(b"content-encoding: gzip\r\n");
    }
    if r.allow {
        out.extend_from_slice(b"allow: GET, HEAD\r\n");
    }
    if let Some(s) = r.retry_after {
        out.extend_from_slice(b"retry-after: ");
        crate::text::push_u64(out, s.into());
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// IMF-fixdate, formatted once per second per thread.
fn push_date(out: &mut Vec<u8>) {
    thread_local! {
        static CACHE: RefCell<(u64, Vec<u8>)> = const { RefCell::new((0, Vec::new())) };
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != now || c.1.is_empty() {
            c.0 = now;
            c.1 = http_date(now).into_bytes();
        }
        out.extend_from_slice(&c.1);
    });
}

fn http_date(secs: u64) -> String {
    let dt = time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[dt.weekday().number_days_from_monday() as usize],
        dt.day(),
        MONTHS[u8::from(dt.month()) as usize - 1],
        dt.year(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date_is_imf_fixdate() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn parser_maps_errors_to_statuses() {
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Parsed::Complete(_)
        ));
        assert!(matches!(parse(b"GET / HTTP/1.1\r\nHo"), Parsed::Partial));
        assert!(matches!(
            parse(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Parsed::Error(505, "protocol")
        ));
        assert!(matches!(
            parse(b"\x16\x03\x01garbage\r\n\r\n"),
            Parsed::Error(400, "bad_request")
        ));
        let many: String = (0..70).map(|i| format!("h{i}: v\r\n")).collect();
        let req = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(
            parse(req.as_bytes()),
            Parsed::Error(431, "header_too_large")
        ));
    }
}
