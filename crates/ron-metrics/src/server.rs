//! The standalone exposer: listeners (TCP, TLS, UDS), the connection cap, saturation
//! readiness and the shutdown sequence.
//!
//! Connections are served by [`crate::conn`], a small HTTP/1 loop over `httparse` rather
//! than hyper's server: the exposer's contract needs a header-read deadline that starts at
//! accept (or at a request's first byte) separate from the idle keep-alive limit, both
//! counted in metrics; a 415 sent without reading the body and without a `100 Continue`;
//! and byte-level control of the canned answers. Those are hard to get from hyper's
//! builder, and the loop is short.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ron_kernel::{CorrId, HealthState, ShutdownToken};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::Metrics;
use crate::conn::{self, ConnCtx};
use crate::exposer::{Exposer, error_body};
use crate::options::{BindTarget, BoundAddr, ServeOptions};
use crate::uds::{self, BoundUds};

/// Grace for in-flight responses after the stop, on top of the write deadline.
pub const STOP_GRACE: Duration = Duration::from_millis(500);
/// Pause after an accept error (e.g. out of file descriptors) before accepting again.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(20);

/// Open connections, the cap and the saturation flag.
pub(crate) struct Capacity {
    open: AtomicUsize,
    max: usize,
    flag: Option<String>,
    health: Arc<HealthState>,
    metrics: Arc<Metrics>,
    idle: Notify,
}

enum Listener {
    Tcp(TcpListener),
    Uds(UnixListener, BoundUds),
}

/// Binds and spawns the accept loop.
pub(crate) async fn serve_with(
    metrics: Arc<Metrics>,
    bind: BindTarget,
    health: Arc<HealthState>,
    opts: ServeOptions,
) -> anyhow::Result<(JoinHandle<()>, BoundAddr)> {
    opts.validate()
        .map_err(|e| anyhow::anyhow!("invalid exposer options: {e}"))?;
    let (listener, bound) = match &bind {
        BindTarget::Tcp(addr) => {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot bind metrics exposer to {addr}: {e}"))?;
            let local = l.local_addr()?;
            if !addr.ip().is_loopback() {
                tracing::warn!(addr = %local, "metrics_public_bind");
            }
            (Listener::Tcp(l), BoundAddr::Tcp(local))
        }
        BindTarget::Uds(path) => {
            if opts.tls_enabled() {
                anyhow::bail!(
                    "TLS is served over TCP only; cannot use it on unix:{}",
                    path.display()
                );
            }
            let b = uds::bind(path).map_err(|e| anyhow::anyhow!("{e}"))?;
            let l = UnixListener::from_std(b.listener.try_clone()?)
                .map_err(|e| anyhow::anyhow!("cannot register uds {}: {e}", path.display()))?;
            (Listener::Uds(l, b), BoundAddr::Uds(path.clone()))
        }
    };
    let exposer = Exposer::new(metrics.clone(), health.clone(), opts.mount());
    let cap = Arc::new(Capacity {
        open: AtomicUsize::new(0),
        max: opts.max_connections as usize,
        flag: opts.saturation_flag.clone(),
        health,
        metrics: metrics.clone(),
        idle: Notify::new(),
    });
    let ctx = Arc::new(ConnCtx::new(exposer, &opts));
    tracing::info!(
        bound_addr = %bound,
        tls = opts.tls_enabled(),
        max_connections = opts.max_connections,
        "metrics exposer started"
    );
    let token = opts.shutdown.clone();
    let write_timeout = opts.write_timeout;
    let handle = tokio::spawn(accept_loop(listener, ctx, cap, token, write_timeout));
    Ok((handle, bound))
}

async fn accept_loop(
    listener: Listener,
    ctx: Arc<ConnCtx>,
    cap: Arc<Capacity>,
    mut token: ShutdownToken,
    write_timeout: Duration,
) {
    loop {
        let accepted = tokio::select! {
            _ = token.stopped() => break,
            a = accept(&listener) => a,
        };
        match accepted {
            Ok((io, peer)) => on_accept(io, peer, &ctx, &cap),
            Err(e) => {
                tracing::warn!(error = %e, "exposer accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
    let uds_identity = match &listener {
        Listener::Uds(_, b) => Some((b.path.clone(), b.identity())),
        Listener::Tcp(_) => None,
    };
    drop(listener);
    if let Some((path, (dev, ino))) = uds_identity {
        BoundUds::remove_if_ours(&path, dev, ino);
    }
    // Connections see the stop themselves; give in-flight writes their deadline.
    let deadline = tokio::time::Instant::now() + write_timeout + STOP_GRACE;
    while cap.open.load(Ordering::Acquire) > 0 {
        let notified = cap.idle.notified();
        if cap.open.load(Ordering::Acquire) == 0 {
            break;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            break;
        }
    }
    tracing::info!(
        open_connections = cap.open.load(Ordering::Acquire),
        "exposer stopped"
    );
}

enum Accepted {
    Tcp(tokio::net::TcpStream),
    Uds(tokio::net::UnixStream),
}

async fn accept(l: &Listener) -> std::io::Result<(Accepted, String)> {
    match l {
        Listener::Tcp(l) => {
            let (s, peer) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok((Accepted::Tcp(s), peer_string(peer)))
        }
        Listener::Uds(l, _) => {
            let (s, _) = l.accept().await?;
            Ok((Accepted::Uds(s), "uds".to_owned()))
        }
    }
}

fn peer_string(a: SocketAddr) -> String {
    a.to_string()
}

fn on_accept(io: Accepted, peer: String, ctx: &Arc<ConnCtx>, cap: &Arc<Capacity>) {
    let accepted_at = Instant::now();
    let open = cap.open.fetch_add(1, Ordering::AcqRel) + 1;
    if open > cap.max {
        cap.open.fetch_sub(1, Ordering::AcqRel);
        refuse_busy(io, &peer, ctx);
        return;
    }
    cap.changed(open);
    let ctx = ctx.clone();
    let cap = cap.clone();
    tokio::spawn(async move {
        let _guard = OpenGuard(cap);
        match io {
            Accepted::Tcp(s) => conn::serve_tcp(ctx, s, peer, accepted_at).await,
            Accepted::Uds(s) => conn::serve_plain(ctx, s, peer, accepted_at).await,
        }
    });
}

/// The canned `busy` answer, written without waiting, then the socket is closed.
fn refuse_busy(io: Accepted, peer: &str, ctx: &ConnCtx) {
    let corr = CorrId::generate();
    ctx.exposer
        .count_reject("conn_limit", "", "", 503, None, peer, &corr);
    let body = error_body(
        "busy",
        "Too many connections; retry shortly.",
        corr.as_str(),
    );
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\n{}: {corr}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len(),
        ctx.corr_header
    );
    let _ = match &io {
        Accepted::Tcp(s) => s.try_write(resp.as_bytes()),
        Accepted::Uds(s) => s.try_write(resp.as_bytes()),
    };
}

struct OpenGuard(Arc<Capacity>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        let open = self.0.open.fetch_sub(1, Ordering::AcqRel) - 1;
        self.0.changed(open);
        if open == 0 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Capacity {
    /// Degrades readiness at ≥ 90% of the cap and restores below 75%, so `/readyz` warns
    /// before connections are refused.
    fn changed(&self, open: usize) {
        self.metrics.internal.exposer_connections.set(open as i64);
        let Some(flag) = &self.flag else { return };
        if open * 10 >= self.max * 9 {
            if !self.health.is_degraded_by(flag) {
                self.health.degrade(flag);
                let snap = self.health.snapshot();
                tracing::warn!(missing = ?snap.missing, since = %crate::readyz::rfc3339_millis(snap.since), "ready.degraded");
            }
        } else if open * 4 < self.max * 3 && self.health.is_degraded_by(flag) {
            self.health.restore(flag);
            let snap = self.health.snapshot();
            tracing::info!(missing = ?snap.missing, since = %crate::readyz::rfc3339_millis(snap.since), "ready.restored");
        }
    }
}
