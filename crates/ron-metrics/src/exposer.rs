//! The exposer's request logic, shared by the standalone server and mounted handlers:
//! routing rules (path, method, body, upgrade, in that order), `/healthz`, `/readyz`,
//! `/metrics` with negotiation and gzip, error bodies, accounting and reject logs.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use parking_lot::Mutex;
use ron_kernel::{CorrId, HealthState};
use tracing::Instrument;

use crate::handles::{Counter, Histogram};
use crate::metrics::REJECT_REASONS;
use crate::negotiate::{accepts_gzip, choose_format};
use crate::options::{Endpoint, MountOptions};
use crate::readyz::ReadyzBody;
use crate::{Format, Metrics};

/// Bodies larger than this (on the previous scrape) are encoded on the blocking pool.
pub const BLOCKING_ENCODE_BYTES: usize = 256 * 1024;
/// Longest request path kept in a reject log line.
pub const MAX_LOGGED_PATH: usize = 128;

/// `endpoint` span field by route index (metrics, healthz, readyz, unmatched).
const ENDPOINT_NAMES: [&str; 4] = ["metrics", "healthz", "readyz", "other"];
/// `method` span field and latency label by method index.
const METHOD_NAMES: [&str; 3] = ["GET", "HEAD", "other"];

pub(crate) const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
pub(crate) const JSON: &str = "application/json";

/// The parts of a request the exposer looks at.
pub(crate) struct Head<'a> {
    pub(crate) method: &'a str,
    /// Path with the query string dropped.
    pub(crate) path: &'a str,
    pub(crate) accept: Option<&'a str>,
    pub(crate) accept_encoding: Option<&'a str>,
    /// `Content-Length` > 0 or any `Transfer-Encoding`.
    pub(crate) has_body: bool,
    pub(crate) upgrade: bool,
    pub(crate) user_agent: Option<&'a str>,
    pub(crate) peer: &'a str,
    pub(crate) corr: CorrId,
}

/// A response before it is written (standalone) or turned into `http::Response` (mounted).
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: Bytes,
    pub(crate) gzip: bool,
    pub(crate) allow: bool,
    pub(crate) vary: bool,
    pub(crate) retry_after: Option<u32>,
    pub(crate) close: bool,
    pub(crate) head_only: bool,
    pub(crate) corr: CorrId,
}

#[derive(Clone)]
struct Encoded {
    body: Bytes,
    gzip: bool,
}

type EncodeFuture = Shared<BoxFuture<'static, Encoded>>;

/// Per-exposer state: metric handles cached for the request path, the shared in-flight
/// encodes and the reject-log limiter.
pub(crate) struct Exposer {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) health: Arc<HealthState>,
    pub(crate) mount: MountOptions,
    /// `[endpoint or other][GET, HEAD, other]`.
    latency: [[Histogram; 3]; 4],
    rejected: HashMap<&'static str, Counter>,
    inflight: [Mutex<Option<EncodeFuture>>; 4],
    last_size: AtomicUsize,
    reject_log: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl Exposer {
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        health: Arc<HealthState>,
        mount: MountOptions,
    ) -> Arc<Exposer> {
        let route = |i: usize| {
            match i {
                0 => mount.metrics.clone(),
                1 => mount.healthz.clone(),
                2 => mount.readyz.clone(),
                _ => None,
            }
            .unwrap_or_else(|| "other".to_owned())
        };
        let latency = std::array::from_fn(|i| {
            let r = route(i);
            METHOD_NAMES.map(|m| metrics.request_latency_seconds.with_label_values(&[&r, m]))
        });
        let rejected = REJECT_REASONS
            .iter()
            .map(|r| (*r, metrics.rejected_total.with_label_values(&[r])))
            .collect();
        metrics.ensure_tasks();
        Arc::new(Exposer {
            metrics,
            health,
            mount,
            latency,
            rejected,
            inflight: Default::default(),
            last_size: AtomicUsize::new(0),
            reject_log: Mutex::new(HashMap::new()),
        })
    }

    /// Answers one request. `ep` is the matched endpoint (`None`: no mounted path matched).
    pub(crate) async fn handle(self: &Arc<Self>, ep: Option<Endpoint>, head: &Head<'_>) -> Reply {
        let started = Instant::now();
        let method_idx = match head.method {
            "GET" => 0,
            "HEAD" => 1,
            _ => 2,
        };
        let route_idx = match ep {
            Some(Endpoint::Metrics) => 0,
            Some(Endpoint::Healthz) => 1,
            Some(Endpoint::Readyz) => 2,
            None => 3,
        };
        let span = tracing::info_span!(
            "svc.ron_metrics.expose",
            corr_id = %head.corr,
            endpoint = ENDPOINT_NAMES[route_idx],
            method = METHOD_NAMES[method_idx],
        );
        let reply = self.route(ep, head, method_idx == 1).instrument(span).await;
        self.latency[route_idx][method_idx].observe(started.elapsed().as_secs_f64());
        reply
    }

    async fn route(
        self: &Arc<Self>,
        ep: Option<Endpoint>,
        head: &Head<'_>,
        is_head: bool,
    ) -> Reply {
        let Some(ep) = ep else {
            return self.reject(head, "not_found", 404, "not_found", "No such endpoint.");
        };
        if !(head.method == "GET" || is_head) {
            let mut r = self.reject(
                head,
                "method",
                405,
                "method_not_allowed",
                "Only GET and HEAD are allowed.",
            );
            r.allow = true;
            return r;
        }
        if head.has_body {
            let mut r = self.reject(
                head,
                "body",
                415,
                "unsupported_media_type",
                "Requests to this endpoint must not carry a body.",
            );
            r.close = true;
            return r;
        }
        let mut reply = match ep {
            Endpoint::Healthz => self.reply(head, 200, TEXT_PLAIN, Bytes::from_static(b"ok")),
            Endpoint::Readyz => self.readyz(head),
            Endpoint::Metrics => self.metrics_reply(head).await,
        };
        reply.head_only = is_head;
        // An upgrade is never granted; the normal answer closes the connection.
        reply.close |= head.upgrade;
        reply
    }

    fn readyz(&self, head: &Head<'_>) -> Reply {
        let snap = self.health.snapshot();
        let body = ReadyzBody::from_snapshot(&snap, self.mount.retry_after_secs);
        let status = if snap.ready { 200 } else { 503 };
        let mut r = self.reply(head, status, JSON, Bytes::from(body.to_json()));
        if !snap.ready {
            r.retry_after = Some(self.mount.retry_after_secs);
        }
        r
    }

    async fn metrics_reply(self: &Arc<Self>, head: &Head<'_>) -> Reply {
        let fmt = choose_format(head.accept);
        let gzip = accepts_gzip(head.accept_encoding);
        let enc = self.shared_encode(fmt, gzip).await;
        let mut r = self.reply(head, 200, fmt.content_type(), enc.body);
        r.gzip = enc.gzip;
        r.vary = true;
        r
    }

    /// Concurrent scrapes of the same (format, gzip) share one in-flight encode; the slot
    /// is cleared when that encode finishes, so a result is never reused afterwards.
    async fn shared_encode(self: &Arc<Self>, fmt: Format, gzip: bool) -> Encoded {
        let slot = usize::from(fmt == Format::OpenMetrics100) * 2 + usize::from(gzip);
        let fut = {
            let mut g = self.inflight[slot].lock();
            match &*g {
                Some(f) => f.clone(),
                None => {
                    let me = self.clone();
                    let f = async move {
                        let out = me.encode_now(fmt, gzip).await;
                        *me.inflight[slot].lock() = None;
                        out
                    }
                    .boxed()
                    .shared();
                    *g = Some(f.clone());
                    f
                }
            }
        };
        fut.await
    }

    async fn encode_now(self: &Arc<Self>, fmt: Format, gzip: bool) -> Encoded {
        if self.last_size.load(Ordering::Relaxed) > BLOCKING_ENCODE_BYTES {
            let me = self.clone();
            if let Ok(e) = tokio::task::spawn_blocking(move || me.encode_sync(fmt, gzip)).await {
                return e;
            }
        }
        self.encode_sync(fmt, gzip)
    }

    fn encode_sync(&self, fmt: Format, gzip: bool) -> Encoded {
        let started = Instant::now();
        let last = self.last_size.load(Ordering::Relaxed);
        let mut out = Vec::with_capacity(last + last / 8 + 256);
        let series = self
            .metrics
            .registry()
            .encode_into(Some(&self.health), fmt, &mut out);
        let identity_len = out.len();
        self.last_size.store(identity_len, Ordering::Relaxed);
        let internal = &self.metrics.internal;
        internal.exposition_size_bytes.set(identity_len as i64);
        internal.exposition_series.set(series as i64);
        let compress = gzip && identity_len >= self.mount.gzip_min_bytes as usize;
        let body = if compress {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(identity_len / 4),
                flate2::Compression::fast(),
            );
            // Writing to a Vec cannot fail.
            let _ = enc.write_all(&out);
            Bytes::from(enc.finish().unwrap_or_default())
        } else {
            Bytes::from(out)
        };
        internal
            .exposition_metrics
            .observe(started.elapsed().as_secs_f64());
        tracing::debug!(
            endpoint = "/metrics",
            status = 200,
            format = fmt.as_str(),
            gzip = compress,
            bytes = body.len(),
            series,
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "metrics.scrape"
        );
        Encoded {
            body,
            gzip: compress,
        }
    }

    fn reply(&self, head: &Head<'_>, status: u16, ct: &'static str, body: Bytes) -> Reply {
        Reply {
            status,
            content_type: ct,
            body,
            gzip: false,
            allow: false,
            vary: false,
            retry_after: None,
            close: false,
            head_only: false,
            corr: head.corr.clone(),
        }
    }

    /// A JSON error reply, counted and logged (at most once a second per reason).
    pub(crate) fn reject(
        &self,
        head: &Head<'_>,
        reason: &'static str,
        status: u16,
        code: &str,
        message: &str,
    ) -> Reply {
        self.count_reject(
            reason,
            head.method,
            head.path,
            status,
            head.user_agent,
            head.peer,
            &head.corr,
        );
        let body = error_body(code, message, head.corr.as_str());
        let mut r = self.reply(head, status, JSON, Bytes::from(body));
        r.head_only = head.method == "HEAD";
        r
    }

    /// Counts a rejection and logs it, rate-limited per reason.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn count_reject(
        &self,
        reason: &'static str,
        method: &str,
        path: &str,
        status: u16,
        user_agent: Option<&str>,
        peer: &str,
        corr: &CorrId,
    ) {
        if let Some(c) = self.rejected.get(reason) {
            c.inc();
        }
        let suppressed = {
            let mut log = self.reject_log.lock();
            let now = Instant::now();
            let entry = log
                .entry(reason)
                .or_insert((now - std::time::Duration::from_secs(2), 0));
            if now.duration_since(entry.0).as_secs_f64() < 1.0 {
                entry.1 += 1;
                return;
            }
            entry.0 = now;
            std::mem::take(&mut entry.1)
        };
        let path = crate::text::truncate_at_char(path, MAX_LOGGED_PATH);
        let ua: String = user_agent
            .unwrap_or("")
            .chars()
            .filter(|c| c.is_ascii_graphic() || *c == ' ')
            .take(128)
            .collect();
        tracing::info!(
            reason,
            method = %crate::text::truncate_at_char(method, 16),
            path = %path,
            status,
            user_agent = %ua,
            suppressed,
            corr_id = %corr,
            peer_addr = %peer,
            "exposer_reject"
        );
    }
}

/// `{"code":…,"message":…,"corr_id":…}`; `message` is a fixed sentence.
pub(crate) fn error_body(code: &str, message: &str, corr: &str) -> String {
    format!("{{\"code\":\"{code}\",\"message\":\"{message}\",\"corr_id\":\"{corr}\"}}")
}

/// Reason phrases for the statuses the exposer sends.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}
