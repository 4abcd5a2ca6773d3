//! Accounting at the end of a response (spec §5): `sentinel_requests_total`, the duration
//! histogram and summary (head received → last response byte) and the access-log line are
//! recorded when the response body ends — or as status 499 when the client goes away
//! first, which is never sent but shows client cancellations.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::access_log::Record;
use crate::proxy::{BoxError, ProxyBody, Shared};

/// What is known about a request when its response head is ready.
pub struct Finish {
    /// Shared state (metrics, access log).
    pub shared: Arc<Shared>,
    /// Route label.
    pub route: String,
    /// When the head arrived.
    pub started: Instant,
    /// The status sent.
    pub status: u16,
    /// The access-log record, when the access log is on.
    pub record: Option<Record>,
    /// Request body bytes read so far (counted while the body streams upstream).
    pub bytes_in: Arc<AtomicU64>,
}

impl Finish {
    /// Records the request: `bytes_out` body bytes sent, `client_gone` when the client
    /// left before the last byte.
    fn complete(self, bytes_out: u64, client_gone: bool) {
        let status = if client_gone { 499 } else { self.status };
        let secs = self.started.elapsed().as_secs_f64();
        let m = &self.shared.metrics;
        let code = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
        m.requests
            .with_label_values(&[&self.route, code.as_str()])
            .inc();
        m.duration.with_label_values(&[&self.route]).observe(secs);
        m.observe_request(&self.route, status, secs);
        if let Some(mut rec) = self.record {
            rec.status = status;
            rec.latency_ms = secs * 1000.0;
            rec.bytes_out = bytes_out;
            rec.bytes_in = self.bytes_in.load(Ordering::Relaxed);
            if client_gone && rec.error.is_none() {
                rec.error = Some("client_closed".into());
            }
            self.shared.access_log.log(&rec);
        }
    }
}

/// A response body that counts its bytes and calls [`Finish`] when it ends or is dropped.
pub struct TrackedBody {
    inner: ProxyBody,
    finish: Option<Finish>,
    bytes_out: u64,
}

impl TrackedBody {
    /// Wraps `inner`.
    pub fn new(inner: ProxyBody, finish: Finish) -> TrackedBody {
        TrackedBody {
            inner,
            finish: Some(finish),
            bytes_out: 0,
        }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    self.bytes_out += d.len() as u64;
                }
                // A sized body that just completed may never be polled again.
                if self.inner.is_end_stream()
                    && let Some(f) = self.finish.take()
                {
                    f.complete(self.bytes_out, false);
                }
            }
            Poll::Ready(None) => {
                if let Some(f) = self.finish.take() {
                    f.complete(self.bytes_out, false);
                }
            }
            // An upstream that dies mid-body truncates the response; the status sent
            // stands and the access line says so.
            Poll::Ready(Some(Err(_))) => {
                if let Some(mut f) = self.finish.take() {
                    if let Some(rec) = f.record.as_mut() {
                        rec.error.get_or_insert_with(|| "upstream_body".into());
                    }
                    f.complete(self.bytes_out, false);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if let Some(f) = self.finish.take() {
            // hyper may drop an empty body (HEAD, 204, 304) without polling it: that is a
            // complete response, not a client that went away.
            let done = self.inner.is_end_stream();
            f.complete(self.bytes_out, !done);
        }
    }
}
