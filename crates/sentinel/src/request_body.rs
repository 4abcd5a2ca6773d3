//! The client's request body on its way upstream (spec §3.1 SEN-R14 item 8, §4.2 R24):
//! streamed frame by frame, counted for the access log, cut off when it passes
//! `max-body-size-bytes` (a chunked body has no length to check up front) or stalls for
//! longer than `client-body-timeout-secs`. The verdict tells the request path which answer
//! to give (413 or 408) when the upstream send fails because of it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;

use crate::proxy::BoxError;

/// Why the body was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Past `max-body-size-bytes` (413).
    TooLarge,
    /// No bytes for `client-body-timeout-secs` (408).
    Stalled,
}

/// Shared verdict of one request body.
#[derive(Debug, Default)]
pub struct Verdict(AtomicU8);

impl Verdict {
    /// The cut, if the body was cut off.
    pub fn cut(&self) -> Option<Cut> {
        match self.0.load(Ordering::Acquire) {
            1 => Some(Cut::TooLarge),
            2 => Some(Cut::Stalled),
            _ => None,
        }
    }

    fn set(&self, cut: Cut) {
        let v = match cut {
            Cut::TooLarge => 1,
            Cut::Stalled => 2,
        };
        self.0.store(v, Ordering::Release);
    }
}

/// The error the body ends with when cut off.
#[derive(Debug, thiserror::Error)]
#[error("request body cut off: {0:?}")]
pub struct BodyCut(pub Cut);

/// A bounded, timed, counted request body.
pub struct GuardedBody {
    inner: Incoming,
    limit: u64,
    seen: u64,
    counted: Arc<AtomicU64>,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
    verdict: Arc<Verdict>,
}

impl GuardedBody {
    /// Wraps `inner`; `limit` 0 means unlimited.
    pub fn new(
        inner: Incoming,
        limit: u64,
        idle: Duration,
        counted: Arc<AtomicU64>,
        verdict: Arc<Verdict>,
    ) -> GuardedBody {
        GuardedBody {
            inner,
            limit,
            seen: 0,
            counted,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
            verdict,
        }
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    let n = d.len() as u64;
                    self.seen += n;
                    self.counted.fetch_add(n, Ordering::Relaxed);
                    if self.limit > 0 && self.seen > self.limit {
                        self.verdict.set(Cut::TooLarge);
                        return Poll::Ready(Some(Err(Box::new(BodyCut(Cut::TooLarge)))));
                    }
                }
                let next = tokio::time::Instant::now() + self.idle;
                self.sleep.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if self.sleep.as_mut().poll(cx).is_ready() {
                    self.verdict.set(Cut::Stalled);
                    return Poll::Ready(Some(Err(Box::new(BodyCut(Cut::Stalled)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
