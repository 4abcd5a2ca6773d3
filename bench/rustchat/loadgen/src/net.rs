//! Transport: one keep-alive HTTP/1.1 connection and one WebSocket per simulated user, each
//! bound to that user's own loopback source address.
//!
//! Why bind: rustchat's auth (10/min) and WebSocket (30/min) limits are per client IP. Giving
//! every user its own address in 127.1.0.0/16 (Linux routes all of 127/8 to `lo`) keeps the
//! server at its default limits while thousands of users log in, exactly as real clients on
//! distinct hosts would. It also gives every user its own ephemeral-port space.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};

/// A request taking longer than this is a timeout (Mattermost's gate definition).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The source address of simulated user `idx` (0-based): 127.1.0.1 upwards.
pub fn user_addr(idx: u32) -> Option<Ipv4Addr> {
    // 127.1.0.0/16 holds 65,534 usable host addresses after skipping .0.0.
    let n = idx.checked_add(1)?;
    (n <= 0xFFFE).then(|| Ipv4Addr::from(0x7F01_0000u32 | n))
}

/// The source address of seeding worker `idx`: 127.2.0.1 upwards (outside the users' range,
/// so seeding never uses up a user's rate-limit budget).
pub fn worker_addr(idx: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x7F02_0000u32 | ((idx % 0xFFFE) + 1))
}

/// Opens a TCP connection to `server` from `src`.
pub async fn connect_from(src: Ipv4Addr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(IpAddr::V4(src), 0))?;
    let s = sock.connect(server).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Why a request produced no HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No complete answer within [`REQUEST_TIMEOUT`].
    Timeout,
    /// Connect, write or read failed.
    Transport,
}

/// An answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON (Null when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A request body with its content type.
pub enum Body {
    Empty,
    Json(serde_json::Value),
    Raw { content_type: String, data: Bytes },
}

/// One user's HTTP connection (reconnected lazily after the server closed it).
pub struct Http {
    src: Ipv4Addr,
    server: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// `Authorization: Bearer` value, once logged in.
    pub token: Option<String>,
}

impl Http {
    pub fn new(src: Ipv4Addr, server: SocketAddr) -> Http {
        Http {
            src,
            server,
            sender: None,
            token: None,
        }
    }

    async fn sender(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, Failure> {
        let usable = self.sender.as_ref().is_some_and(|s| !s.is_closed());
        if !usable {
            let stream = connect_from(self.src, self.server)
                .await
                .map_err(|_| Failure::Transport)?;
            let (tx, conn) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|_| Failure::Transport)?;
            tokio::spawn(async move {
                // The connection task ends when the server or we close the connection; its
                // error is seen by the request that was in flight.
                let _ = conn.await;
            });
            self.sender = Some(tx);
        }
        let tx = self.sender.as_mut().ok_or(Failure::Transport)?;
        tx.ready().await.map_err(|_| Failure::Transport)?;
        Ok(tx)
    }

    /// Sends one request and reads the whole answer, within [`REQUEST_TIMEOUT`].
    pub async fn call(&mut self, method: &str, path: &str, body: Body) -> Result<Reply, Failure> {
        let out = tokio::time::timeout(REQUEST_TIMEOUT, self.call_inner(method, path, body)).await;
        match out {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(f)) => {
                self.sender = None;
                Err(f)
            }
            Err(_) => {
                // The connection may still carry the late answer: never reuse it.
                self.sender = None;
                Err(Failure::Timeout)
            }
        }
    }

    async fn call_inner(&mut self, method: &str, path: &str, body: Body) -> Result<Reply, Failure> {
        let host = self.server.to_string();
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", host)
            .header("user-agent", "rustchat-loadgen");
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let data = match body {
            Body::Empty => Bytes::new(),
            Body::Json(v) => {
                req = req.header("content-type", "application/json");
                Bytes::from(v.to_string())
            }
            Body::Raw { content_type, data } => {
                req = req.header("content-type", content_type);
                data
            }
        };
        let req = req.body(Full::new(data)).map_err(|_| Failure::Transport)?;
        let tx = self.sender().await?;
        let resp = tx.send_request(req).await.map_err(|_| Failure::Transport)?;
        let status = resp.status().as_u16();
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|_| Failure::Transport)?
            .to_bytes();
        Ok(Reply {
            status,
            headers: parts.headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_addresses_stay_inside_127_1_0_0_16() {
        assert_eq!(user_addr(0), Some(Ipv4Addr::new(127, 1, 0, 1)));
        assert_eq!(user_addr(255), Some(Ipv4Addr::new(127, 1, 1, 0)));
        assert_eq!(user_addr(0xFFFD), Some(Ipv4Addr::new(127, 1, 255, 254)));
        assert_eq!(user_addr(0xFFFE), None);
        assert_eq!(user_addr(u32::MAX), None);
        assert_eq!(worker_addr(0), Ipv4Addr::new(127, 2, 0, 1));
    }
}
