//! Proxy listeners (spec §4.1 step 7, §4.2, §4.9): sockets bound with SO_REUSEADDR and
//! SO_REUSEPORT (so a new instance can bind beside a draining one), a 65535 backlog and
//! TCP_NODELAY on accepted connections; one hyper connection per client speaking
//! HTTP/1.x and, when enabled, HTTP/2 prior knowledge; graceful close on drain.

use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use ron_kernel::shutdown::ShutdownCoordinator;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::conncap::Caps;
use crate::proxy::{self, ConnInfo, Shared};
use crate::timed_io::{SEND_TIMEOUT, TimedIo};

/// The service error of a request whose handler panicked (the connection is closed).
#[derive(Debug)]
pub struct TaskPanicked;

impl std::fmt::Display for TaskPanicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("task panicked")
    }
}

impl std::error::Error for TaskPanicked {}

/// How long an open connection may stay after draining begins before it is closed when
/// idle (SEN-R39: "idle for ≥ 1 s since draining began").
pub const DRAIN_IDLE_GRACE: Duration = Duration::from_secs(1);

/// Kernel accept backlog requested (capped by `net.core.somaxconn`).
pub const BACKLOG: i32 = 65_535;

/// Binds `addr` for a proxy listener that may share its port with another instance.
pub fn bind_reuseport(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Accepts on `listener` until draining begins, then returns (the socket closes when
/// dropped, so new connects are refused while open connections finish).
pub async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    name: Arc<str>,
    tls: Option<TlsAcceptor>,
) {
    let https = tls.is_some();
    let coord = ShutdownCoordinator::global();
    let mut token = coord.token();
    let m = &shared.metrics;
    let open = m.open_connections.with_label_values(&[&name]);
    let accepted = m.connections.with_label_values(&[&name]);
    let here = Arc::new(std::sync::atomic::AtomicU64::new(0));
    loop {
        let (stream, peer) = tokio::select! {
            _ = token.draining() => break,
            a = listener.accept() => match a {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(listener = %name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let caps = {
            let snap = shared.snapshot.load();
            Caps {
                total: u64::from(snap.config.limits.max_total_connections),
                listener: u64::from(snap.config.server.max_connections),
                per_client: snap.config.limits.max_connections_per_client,
            }
        };
        let slot = match shared.conns.admit(peer.ip(), &here, caps) {
            Ok(slot) => slot,
            Err(reason) => {
                // Closed at once: dropping the stream sends no bytes.
                drop(stream);
                m.connections_rejected
                    .with_label_values(&[&name, reason])
                    .inc();
                if shared.conns.warn_due(reason) {
                    tracing::warn!(listener = %name, reason, "connection rejected at accept");
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        accepted.inc();
        open.inc();
        let info = Arc::new(ConnInfo {
            peer,
            https,
            listener: name.clone(),
            forwarded_for: crate::forward::client_entry(peer.ip()),
        });
        let (shared, open, tls) = (shared.clone(), open.clone(), tls.clone());
        // An open connection is in-flight work for the drain (SEN-R39 step 4): the process
        // waits until each one has answered with `Connection: close` or idled out, up to
        // the shutdown deadline, so a keep-alive client never loses a request it is sending
        // while the old instance exits during a rolling restart.
        let conn_guard = coord.inflight();
        tokio::spawn(async move {
            let _slot = slot;
            let _conn_guard = conn_guard;
            let send = Duration::from_secs(
                shared
                    .snapshot
                    .load()
                    .config
                    .server
                    .client_send_timeout_secs,
            );
            match tls {
                None => connection(shared, TokioIo::new(TimedIo::new(stream, send)), info).await,
                Some(acceptor) => {
                    let limit = Duration::from_secs(
                        shared
                            .snapshot
                            .load()
                            .config
                            .server
                            .client_header_timeout_secs,
                    );
                    // The handshake counts against the header timeout (SEN-R24).
                    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            connection(shared, TokioIo::new(TimedIo::new(tls, send)), info).await
                        }
                        _ => {
                            shared
                                .metrics
                                .downstream_errors
                                .with_label_values(&[&info.listener, "tls_handshake"])
                                .inc();
                        }
                    }
                }
            }
            open.dec();
        });
    }
}

/// Serves one client connection until it closes, or gracefully once draining begins.
async fn connection<I>(shared: Arc<Shared>, io: TokioIo<I>, info: Arc<ConnInfo>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let listener = info.listener.clone();
    let snap = shared.snapshot.load_full();
    let server = &snap.config.server;
    let limits = &snap.config.limits;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper arms its head timer while a kept-alive connection waits for the next request,
    // so an idle connection closes after the shorter of the two timeouts (crate docs).
    let keepalive = server.client_keepalive_timeout_secs;
    let head_timer = match keepalive {
        0 => server.client_header_timeout_secs,
        k => server.client_header_timeout_secs.min(k),
    };
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(head_timer))
        .keep_alive(server.client_keepalive_timeout_secs > 0)
        .max_headers(limits.max_header_count as usize)
        .max_buf_size(limits.max_header_size_bytes.max(8192) as usize);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(server.h2_max_concurrent_streams)
        .max_header_list_size(limits.max_header_size_bytes.min(u64::from(u32::MAX)) as u32);
    let builder = if server.h2c {
        builder
    } else {
        builder.http1_only()
    };
    drop(snap);
    let coord = ShutdownCoordinator::global();
    let mut token = coord.token();
    let svc_shared = shared.clone();
    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let guard = coord.inflight();
        let correlation = crate::forward::correlation_id(req.headers());
        let shared = svc_shared.clone();
        let fut = proxy::handle(shared.clone(), info.clone(), req);
        async move {
            let _guard = guard;
            // A panic on the request path drops this connection only (hyper closes it when
            // the service fails); the process and every other connection go on.
            match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(Ok(resp)) => Ok(resp),
                Ok(Err(never)) => match never {},
                Err(_) => {
                    shared.metrics.panics.inc();
                    tracing::error!(
                        correlation_id = correlation.to_str().unwrap_or_default(),
                        "task panicked"
                    );
                    Err(TaskPanicked)
                }
            }
        }
    });
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = token.draining() => {
            // SEN-R39 step 4: requests still arriving on this connection get answers with
            // `Connection: close` for a moment; then hyper closes it once idle (HTTP/1) or
            // sends GOAWAY (HTTP/2).
            tokio::select! {
                r = conn.as_mut() => r,
                _ = tokio::time::sleep(DRAIN_IDLE_GRACE) => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            }
        }
    };
    if let Err(e) = result {
        let kind = classify(&*e);
        if let Some(kind) = kind {
            shared
                .metrics
                .downstream_errors
                .with_label_values(&[&listener, kind])
                .inc();
        }
    }
}

/// `sentinel_downstream_errors_total{kind}` for a connection error, if it is one.
fn classify(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    // A stalled write to the client, from TimedIo, anywhere in the source chain.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            io.kind() == std::io::ErrorKind::TimedOut && io.to_string() == SEND_TIMEOUT
        }) {
            return Some("send_timeout");
        }
        cause = c.source();
    }
    let h = e.downcast_ref::<hyper::Error>()?;
    if h.is_timeout() {
        Some("header_timeout")
    } else if h.is_parse() || h.is_parse_too_large() {
        Some("parse")
    } else if h.is_incomplete_message() || h.is_canceled() {
        None
    } else {
        Some("io")
    }
}
