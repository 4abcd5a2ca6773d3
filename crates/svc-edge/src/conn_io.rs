//! Read deadlines of an API connection (spec §4.2): a request head must arrive within
//! `timeout_secs` of its first byte, else the connection closes and
//! `io_timeouts_total{op="client_header"}` counts it (a new connection's first head counts
//! from the accept); an idle keep-alive connection (answered, and no byte of a next request
//! yet) closes quietly after [`IDLE_KEEP_ALIVE`].
//!
//! hyper's `header_read_timeout` cannot tell the two apart: its timer starts as soon as the
//! connection waits for a head, idle time included, so it closed every idle keep-alive
//! connection after `timeout_secs` and counted each one as a slow header sender (a pooling
//! proxy in front, sentinel-proxy in the stack, then races those closes). [`DeadlineIo`]
//! wraps the socket instead and watches the bytes: idle until a request's first byte, then
//! the head until its blank line, then busy (body, handler, response: bounded by the
//! request deadline and body caps, not here) until the response is written, then idle
//! again.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use ron_metrics::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a keep-alive connection may wait for its next request.
pub const IDLE_KEEP_ALIVE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of a request (after accept or after a response).
    Idle,
    /// Inside a request head: until its blank line.
    Head,
    /// Head complete: body, handler and response; no read deadline here.
    Busy,
}

/// A socket with the two read deadlines above.
pub struct DeadlineIo<T> {
    inner: T,
    phase: Phase,
    head_timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    /// When a response byte last went out (the idle wait counts from there).
    last_write: Instant,
    /// The head scanner: at the start of a line (a bare `\r` there keeps it).
    at_line_start: bool,
    /// Whether the head has a byte other than CR/LF yet (leading blank lines are skipped).
    head_started: bool,
    client_header_timeouts: Counter,
}

impl<T> DeadlineIo<T> {
    /// Wraps `inner`; `head_timeout` is `ingress.timeout_secs`, and `client_header_timeouts`
    /// the `io_timeouts_total{op="client_header"}` child.
    pub fn new(inner: T, head_timeout: Duration, client_header_timeouts: Counter) -> Self {
        // A new connection owes its first head within the head timeout, as before any
        // keep-alive: only a connection that has been answered may sit idle.
        DeadlineIo {
            inner,
            phase: Phase::Head,
            head_timeout,
            sleep: Box::pin(tokio::time::sleep(head_timeout)),
            last_write: Instant::now(),
            at_line_start: false,
            head_started: false,
            client_header_timeouts,
        }
    }

    /// Feeds bytes just read to the phase machine.
    fn saw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.phase == Phase::Idle {
            self.phase = Phase::Head;
            self.at_line_start = false;
            self.head_started = false;
            let deadline = Instant::now() + self.head_timeout;
            self.sleep.as_mut().reset(deadline);
        }
        if self.phase != Phase::Head {
            return;
        }
        for &b in bytes {
            match b {
                b'\n' if self.at_line_start && self.head_started => {
                    self.phase = Phase::Busy;
                    return;
                }
                b'\n' => self.at_line_start = true,
                b'\r' => {}
                _ => {
                    self.at_line_start = false;
                    self.head_started = true;
                }
            }
        }
    }

    /// A response byte went out: the next byte read starts a new request. The timer is
    /// re-armed once per response; later writes only move `last_write`.
    fn wrote(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.last_write = Instant::now();
        if self.phase != Phase::Idle {
            self.phase = Phase::Idle;
            self.sleep.as_mut().reset(self.last_write + IDLE_KEEP_ALIVE);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for DeadlineIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.saw(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.phase == Phase::Busy {
                    return Poll::Pending;
                }
                loop {
                    ready!(this.sleep.as_mut().poll(cx));
                    let idle_end = this.last_write + IDLE_KEEP_ALIVE;
                    if this.phase == Phase::Idle && idle_end > Instant::now() {
                        // A long response kept writing after the timer was armed.
                        this.sleep.as_mut().reset(idle_end);
                        continue;
                    }
                    break;
                }
                if this.phase == Phase::Idle {
                    // End of the keep-alive wait: a clean EOF, which hyper closes quietly.
                    return Poll::Ready(Ok(()));
                }
                this.client_header_timeouts.inc();
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "request head not received in time",
                )))
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for DeadlineIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.wrote(n);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        this.wrote(n);
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
