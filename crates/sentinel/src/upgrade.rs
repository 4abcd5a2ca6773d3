//! Protocol upgrades (spec §3.1 SEN-R17): an HTTP/1.1 request with `Connection: upgrade`
//! and an `Upgrade` other than `h2c` goes to the upstream over a fresh HTTP/1.1 connection;
//! a 101 answer turns both connections into a byte tunnel until either side closes.
//!
//! What it is for: WebSocket and similar upgrades through the proxy. What it is not for:
//! `Upgrade: h2c` (stripped before routing, the request proceeds normally) or upgrades over
//! HTTP/2 (spec: later).

use std::time::Duration;

use http::header::{self, HeaderMap};
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use ron_kernel::shutdown::ShutdownCoordinator;
use tokio::net::TcpStream;

use crate::errors::ProxyError;
use crate::pool::UpBody;
use crate::proxy::{BoxError, ProxyBody};

/// Whether `req` asks for an upgrade sentinel tunnels (not `h2c`).
pub fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11
        && connection_has(req.headers(), "upgrade")
        && req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|u| !u.trim().eq_ignore_ascii_case("h2c"))
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Sends the upgrade request `head` (headers already rewritten, `Upgrade` kept) to
/// `target` on a fresh connection. On 101, answers 101 downstream and runs the tunnel in
/// the background (it is in-flight work for the drain); any other answer is forwarded.
pub async fn forward(
    target: std::net::SocketAddr,
    mut down: Request<Incoming>,
    head: http::request::Parts,
    connect: Duration,
    tunnels: ron_metrics::IntGauge,
) -> Result<Response<ProxyBody>, ProxyError> {
    let down_upgrade = hyper::upgrade::on(&mut down);
    let stream = match tokio::time::timeout(connect, TcpStream::connect(target)).await {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => return Err(ProxyError::UpstreamConnectFailed),
        Err(_) => return Err(ProxyError::UpstreamConnectTimeout),
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| ProxyError::UpstreamClosed)?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let body: UpBody = Empty::new().map_err(|never| match never {}).boxed();
    let mut up_req = Request::from_parts(head, body);
    *up_req.version_mut() = Version::HTTP_11;
    let mut resp = sender.send_request(up_req).await.map_err(|e| {
        if e.is_parse() || e.is_parse_too_large() {
            ProxyError::UpstreamProtocolError
        } else {
            ProxyError::UpstreamClosed
        }
    })?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (mut parts, body) = resp.into_parts();
        crate::forward::strip_hop_by_hop(&mut parts.headers, false, false);
        let body = body.map_err(|e| -> BoxError { Box::new(e) }).boxed();
        return Ok(Response::from_parts(parts, body));
    }
    let up_upgrade = hyper::upgrade::on(&mut resp);
    let guard = ShutdownCoordinator::global().inflight();
    tokio::spawn(async move {
        let _guard = guard;
        let (Ok(up), Ok(down)) = (up_upgrade.await, down_upgrade.await) else {
            return;
        };
        let (mut up, mut down) = (TokioIo::new(up), TokioIo::new(down));
        tunnels.inc();
        // Half-closes propagate: copy_bidirectional shuts each write side down when the
        // other side's read side ends.
        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
        tunnels.dec();
    });
    let (mut parts, _) = resp.into_parts();
    crate::forward::strip_hop_by_hop(&mut parts.headers, true, false);
    Ok(Response::from_parts(
        parts,
        Empty::new().map_err(|never| match never {}).boxed(),
    ))
}
