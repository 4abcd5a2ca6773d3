//! One user's WebSocket: connect from the user's address, authenticate (v4: the
//! `authentication_challenge` frame; v1: Bearer header), wait for `hello`, then read frames
//! in a task that timestamps `posted` events for the delivery registry and checks that the
//! envelope `seq` never skips.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use futures_util::SinkExt;
use futures_util::stream::{SplitSink, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::delivery::{find_token, frame_seq};
use crate::net::{connect_from, user_addr};
use crate::opts::Driver;
use crate::sim::Ctx;

pub type Sink = SplitSink<WebSocketStream<TcpStream>, Message>;

/// How long authentication and `hello` may take.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// An open, authenticated socket: the write half and a flag the reader clears on close.
pub struct Socket {
    pub sink: Sink,
    pub alive: Arc<AtomicBool>,
    /// Set before we close, so the reader can tell our close from a drop.
    pub closing: Arc<AtomicBool>,
    /// Next client frame `seq`.
    pub seq: u64,
}

/// Connects user `u` with `token`.
pub async fn connect(ctx: &Arc<Ctx>, u: u32, token: &str) -> Result<Socket> {
    let node = ctx.node_of(u);
    let server = ctx.servers[node as usize];
    let src = user_addr(u).ok_or_else(|| anyhow!("no address for user {u}"))?;
    let stream = connect_from(src, server).await?;
    let mut req =
        format!("ws://{server}{}", crate::api::ws_path(ctx.opts.driver)).into_client_request()?;
    if ctx.opts.driver == Driver::V1 {
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
    }
    let (ws, _) = tokio::time::timeout(HELLO_TIMEOUT, tokio_tungstenite::client_async(req, stream))
        .await
        .map_err(|_| anyhow!("websocket upgrade timed out"))??;
    let (mut sink, mut stream) = ws.split();
    let mut seq = 1;
    if ctx.opts.driver == Driver::V4 {
        let challenge = serde_json::json!({"seq": seq, "action": "authentication_challenge", "data": {"token": token}});
        sink.send(Message::Text(challenge.to_string().into()))
            .await?;
        seq += 1;
    }
    // Authentication reply (v4) and hello, in that order.
    let hello = async {
        while let Some(m) = stream.next().await {
            if let Message::Text(t) = m? {
                if t.contains("\"status\":\"FAIL\"") {
                    bail!("websocket authentication failed: {t}");
                }
                if event_name(&t) == Some("hello") {
                    return Ok(frame_seq(&t).unwrap_or(0));
                }
            }
        }
        bail!("websocket closed before hello")
    };
    let first_seq = tokio::time::timeout(HELLO_TIMEOUT, hello)
        .await
        .map_err(|_| anyhow!("no hello within {HELLO_TIMEOUT:?}"))??;
    ctx.reg.session_up(u);
    let alive = Arc::new(AtomicBool::new(true));
    let closing = Arc::new(AtomicBool::new(false));
    let (ctx2, alive2, closing2) = (ctx.clone(), alive.clone(), closing.clone());
    tokio::spawn(async move {
        let mut last = first_seq;
        while let Some(Ok(m)) = stream.next().await {
            let Message::Text(t) = m else { continue };
            let at = Instant::now();
            on_text(&ctx2, u, &t, at, &mut last);
        }
        ctx2.reg.session_down(u);
        alive2.store(false, Ordering::Release);
        if !closing2.load(Ordering::Acquire) {
            ctx2.counters.ws_dropped.fetch_add(1, Ordering::Relaxed);
        }
    });
    Ok(Socket {
        sink,
        alive,
        closing,
        seq,
    })
}

/// The envelope's event name. Server frames are serialised with sorted keys
/// (`broadcast`, `data`, `event`, then the spliced `seq`), so the envelope's `"event"` is
/// the last one in the text: anything inside `data` comes before it.
pub fn event_name(t: &str) -> Option<&str> {
    let at = t.rfind("\"event\":\"")? + 9;
    let rest = &t[at..];
    Some(&rest[..rest.find('"')?])
}

fn on_text(ctx: &Ctx, u: u32, t: &str, at: Instant, last: &mut u64) {
    // Replies to our own frames (typing) carry seq_reply and no event.
    let Some(event) = event_name(t) else { return };
    if let Some(s) = frame_seq(t) {
        if s != *last + 1 {
            ctx.counters.seq_gaps.fetch_add(1, Ordering::Relaxed);
        }
        *last = s;
    }
    let posted = event == "posted";
    ctx.metrics.frame(posted);
    if posted && let Some(tok) = find_token(t) {
        let world = ctx.world.read();
        ctx.reg
            .delivered(tok, u, at, &ctx.metrics, |c| world.is_member(u, c));
    }
}

/// Sends a `user_typing` frame.
pub async fn typing(sock: &mut Socket, channel_id: &str, parent_id: &str) -> bool {
    let f = serde_json::json!({"action": "user_typing", "seq": sock.seq, "data": {"channel_id": channel_id, "parent_id": parent_id}});
    sock.seq += 1;
    sock.sink
        .send(Message::Text(f.to_string().into()))
        .await
        .is_ok()
}

/// Closes politely (the server answers and the reader ends).
pub async fn close(sock: &mut Socket) {
    sock.closing.store(true, Ordering::Release);
    let _ = tokio::time::timeout(Duration::from_secs(2), sock.sink.close()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_come_from_the_envelope() {
        let f = r#"{"broadcast":{"channel_id":"c"},"data":{"post":"{\"event\":\"x\"}","nested":{"event":"typing"}},"event":"posted","seq":7}"#;
        assert_eq!(event_name(f), Some("posted"));
        assert_eq!(event_name(r#"{"status":"OK","seq_reply":1}"#), None);
        assert_eq!(event_name(r#"{"event":"#), None);
        assert_eq!(event_name(r#"{"event":"unterminated"#), None);
    }
}
