//! Per-target upstream connection pools (spec §4.5 R29, §4.6 R34).
//!
//! What it is for: keep-alive HTTP/1.1 (or one multiplexed h2c) connection(s) to one
//! target, with a slot limit of `max-connections`, at most `max-idle` idle connections no
//! older than `idle-timeout-secs`, connects bounded by `connect-secs`, and the ability to
//! close every idle connection at once (drain, reload, SIGUSR1).
//!
//! Hand-written on hyper's connection API rather than hyper-util's pooled client because
//! the proxy must tell "could not connect" (nothing sent: any request may be retried, its
//! body intact) from "sent and failed", must close idle connections on demand, and must
//! count opens, reuses and slot waits itself; the pooled client does none of these.
//!
//! A [`Lease`] holds a slot and a ready connection; after the response body ends the
//! connection goes back to the idle list ([`Lease::release`]). A lease dropped without a
//! release closes its connection (the exchange may have been cut short).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{Pool as PoolCfg, UpstreamProtocol};

/// Request body type sent upstream.
pub type UpBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Why no connection could be had.
#[derive(Debug)]
pub enum PoolError {
    /// No slot freed up in time (503 `pool_exhausted`, not a target failure).
    Exhausted,
    /// TCP connect timed out (504 `upstream_connect_timeout`).
    ConnectTimeout,
    /// TCP connect refused, reset or unreachable (502 `upstream_connect_failed`).
    ConnectFailed(io::Error),
    /// The HTTP handshake failed right after connecting.
    Handshake(hyper::Error),
}

/// Counters the pool keeps for the metrics families.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Open sockets.
    pub open: AtomicI64,
    /// Slots held.
    pub in_use: AtomicI64,
    /// New connections by result.
    pub connects_ok: AtomicI64,
    /// Failed connects.
    pub connects_error: AtomicI64,
    /// Timed-out connects.
    pub connects_timeout: AtomicI64,
    /// Attempts served on an existing connection.
    pub reused: AtomicI64,
    /// Slot waits that ran out.
    pub exhausted: AtomicI64,
}

enum Sender {
    H1(http1::SendRequest<UpBody>),
    H2(http2::SendRequest<UpBody>),
}

impl Sender {
    /// Waits until the connection can take a request (at most [`READY_WAIT`]); false when
    /// it closed instead.
    async fn ready(&mut self) -> bool {
        let ready = async {
            match self {
                Sender::H1(s) => s.ready().await.is_ok(),
                Sender::H2(s) => s.ready().await.is_ok(),
            }
        };
        tokio::time::timeout(READY_WAIT, ready)
            .await
            .unwrap_or(false)
    }
}

/// How long a reused connection may take to become ready before it is given up.
pub const READY_WAIT: Duration = Duration::from_millis(200);

struct Idle {
    sender: http1::SendRequest<UpBody>,
    since: Instant,
}

/// The pool of one target.
pub struct TargetPool {
    addr: SocketAddr,
    protocol: UpstreamProtocol,
    cfg: PoolCfg,
    connect_timeout: Duration,
    slots: Arc<Semaphore>,
    idle: Mutex<Vec<Idle>>,
    h2: Mutex<Option<http2::SendRequest<UpBody>>>,
    /// Set when the target is drained or removed: released connections close instead of
    /// going back to the idle list.
    retired: AtomicBool,
    /// Counters.
    pub stats: Arc<PoolStats>,
}

/// A slot and a connection for one attempt.
pub struct Lease {
    pool: Arc<TargetPool>,
    sender: Option<Sender>,
    _permit: OwnedSemaphorePermit,
    /// Whether the connection was reused.
    pub reused: bool,
}

impl TargetPool {
    /// A pool for `addr`.
    pub fn new(
        addr: SocketAddr,
        protocol: UpstreamProtocol,
        cfg: PoolCfg,
        connect_timeout: Duration,
        stats: Arc<PoolStats>,
    ) -> Arc<TargetPool> {
        Arc::new(TargetPool {
            addr,
            protocol,
            slots: Arc::new(Semaphore::new(cfg.max_connections as usize)),
            cfg,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
            h2: Mutex::new(None),
            retired: AtomicBool::new(false),
            stats,
        })
    }

    /// The target address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether a slot is free right now (target selection prefers such targets).
    pub fn has_free_slot(&self) -> bool {
        self.slots.available_permits() > 0
    }

    /// Whether this pool was built with `cfg`, `protocol` and `connect` (reload keeps it).
    pub fn same_settings(
        &self,
        cfg: &PoolCfg,
        protocol: UpstreamProtocol,
        connect: Duration,
    ) -> bool {
        self.cfg == *cfg && self.protocol == protocol && self.connect_timeout == connect
    }

    /// A slot (waiting until `deadline` at most) and a ready connection: an idle one when
    /// available, else a new one.
    pub async fn lease(
        self: &Arc<Self>,
        deadline: tokio::time::Instant,
    ) -> Result<Lease, PoolError> {
        let permit =
            match tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned()).await {
                Ok(Ok(p)) => p,
                _ => {
                    self.stats.exhausted.fetch_add(1, Ordering::Relaxed);
                    return Err(PoolError::Exhausted);
                }
            };
        self.stats.in_use.fetch_add(1, Ordering::Relaxed);
        let lease = |sender, reused| Lease {
            pool: self.clone(),
            sender: Some(sender),
            _permit: permit,
            reused,
        };
        while let Some(mut s) = self.take_idle() {
            // A connection just released may still be finishing its last exchange; wait
            // for it briefly, and drop it if it turns out closed.
            if s.ready().await {
                self.stats.reused.fetch_add(1, Ordering::Relaxed);
                return Ok(lease(s, true));
            }
        }
        match self.connect(deadline).await {
            Ok(s) => Ok(lease(s, false)),
            Err(e) => {
                self.stats.in_use.fetch_sub(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn take_idle(&self) -> Option<Sender> {
        if self.protocol == UpstreamProtocol::H2c {
            let h2 = self.h2.lock();
            return h2
                .as_ref()
                .filter(|s| !s.is_closed())
                .map(|s| Sender::H2(s.clone()));
        }
        let max_age = Duration::from_secs(self.cfg.idle_timeout_secs);
        let mut idle = self.idle.lock();
        // Newest last: reuse the warmest connection, drop stale ones on the way.
        while let Some(c) = idle.pop() {
            if c.since.elapsed() < max_age && !c.sender.is_closed() {
                return Some(Sender::H1(c.sender));
            }
        }
        None
    }

    async fn connect(&self, deadline: tokio::time::Instant) -> Result<Sender, PoolError> {
        let connect_deadline = deadline.min(tokio::time::Instant::now() + self.connect_timeout);
        let stream =
            match tokio::time::timeout_at(connect_deadline, TcpStream::connect(self.addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    self.stats.connects_error.fetch_add(1, Ordering::Relaxed);
                    return Err(PoolError::ConnectFailed(e));
                }
                Err(_) => {
                    self.stats.connects_timeout.fetch_add(1, Ordering::Relaxed);
                    return Err(PoolError::ConnectTimeout);
                }
            };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(stream);
        let stats = self.stats.clone();
        stats.open.fetch_add(1, Ordering::Relaxed);
        let sender = match self.protocol {
            UpstreamProtocol::Http1 => {
                let (sender, conn) = http1::Builder::new()
                    .handshake(io)
                    .await
                    .map_err(|e| self.handshake_failed(e))?;
                tokio::spawn(async move {
                    let _ = conn.with_upgrades().await;
                    stats.open.fetch_sub(1, Ordering::Relaxed);
                });
                Sender::H1(sender)
            }
            UpstreamProtocol::H2c => {
                let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .handshake(io)
                    .await
                    .map_err(|e| self.handshake_failed(e))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                    stats.open.fetch_sub(1, Ordering::Relaxed);
                });
                *self.h2.lock() = Some(sender.clone());
                Sender::H2(sender)
            }
        };
        self.stats.connects_ok.fetch_add(1, Ordering::Relaxed);
        Ok(sender)
    }

    fn handshake_failed(&self, e: hyper::Error) -> PoolError {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
        self.stats.connects_error.fetch_add(1, Ordering::Relaxed);
        PoolError::Handshake(e)
    }

    /// Closes every idle connection now; returns how many were closed. With `retire`, later
    /// releases close their connections too (weight 0, target removed).
    pub fn close_idle(&self, retire: bool) -> usize {
        if retire {
            self.retired.store(true, Ordering::Release);
        }
        let closed = std::mem::take(&mut *self.idle.lock()).len();
        let h2 = self.h2.lock().take().is_some();
        closed + usize::from(h2)
    }

    /// Lets released connections return to the idle list again (weight back above 0).
    pub fn reinstate(&self) {
        self.retired.store(false, Ordering::Release);
    }

    fn put_back(&self, sender: Sender) {
        let Sender::H1(s) = sender else {
            // h2c: the shared sender stays in `h2`; this clone just goes.
            return;
        };
        if self.retired.load(Ordering::Acquire) || s.is_closed() {
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() < self.cfg.max_idle as usize {
            idle.push(Idle {
                sender: s,
                since: Instant::now(),
            });
        }
    }
}

impl Lease {
    /// Sends `req` on the leased connection.
    pub async fn send(
        &mut self,
        req: http::Request<UpBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, SendError> {
        match self.sender.as_mut() {
            Some(Sender::H1(s)) => s.send_request(req).await.map_err(SendError::Hyper),
            Some(Sender::H2(s)) => s.send_request(req).await.map_err(SendError::Hyper),
            None => Err(SendError::Released),
        }
    }

    /// Returns the connection to the idle list (call after the response body ended).
    pub fn release(mut self) {
        if let Some(s) = self.sender.take() {
            self.pool.put_back(s);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.stats.in_use.fetch_sub(1, Ordering::Relaxed);
        // An unreleased HTTP/1 sender is dropped here, which closes its connection once
        // the exchange in progress (if any) ends.
    }
}

/// Why a send on a lease failed.
#[derive(Debug)]
pub enum SendError {
    /// hyper reported the failure (closed before the head, invalid head, I/O).
    Hyper(hyper::Error),
    /// The lease no longer holds a connection (a bug, answered as a closed connection).
    Released,
}
