//! The WebSocket endpoints `/api/v1/ws` and `/api/v4/websocket`, one core (CHAT-R9).
//!
//! `/api/v1/ws` authenticates before upgrading (Bearer, or the session cookie with a
//! matching `Origin`), else 401 JSON. `/api/v4/websocket` also allows an unauthenticated
//! upgrade followed within `ws.auth_timeout_seconds` by an `authentication_challenge`.
//! Admission (node cap, per-user cap) answers 429 `Too many connections` before the
//! upgrade, or FAIL + close 1008 after an in-band challenge.
//!
//! Each connection runs a reader (client actions) and a writer (queue → socket, pings).
//! The writer numbers events: `hello` is 0, then +1 per event, never skipped; replies to
//! client actions carry `seq_reply` and no `seq`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::client_frame::{self, ClientAction, ClientFrame};
use super::hub::{Api, CloseReason, Conn, Outbound, Slot};
use super::{events, presence};
use crate::auth::{AuthUser, Credential, extract};
use crate::error::ApiError;
use crate::ratelimit::ClientIp;
use crate::state::AppState;
use crate::store_read;

/// Largest inbound frame; bigger closes with 1009.
pub const MAX_INBOUND_FRAME: usize = 64 * 1024;
/// Read buffer allocated up front per socket. tungstenite's default (128 KiB) is most of
/// an idle connection's memory (spec §8 P3: ≤ 64 KiB per idle connection); clients send
/// small frames, and a bigger one grows the buffer for as long as it needs.
pub const WS_READ_BUFFER_BYTES: usize = 4 * 1024;
/// A socket write blocked this long closes the connection as a slow client.
pub const WRITE_STALL: Duration = Duration::from_secs(10);
/// Invalid frames tolerated per minute before closing with 1007.
pub const MAX_INVALID_PER_MINUTE: u32 = 10;
/// Missed pongs before the connection is dropped.
pub const MAX_MISSED_PONGS: u32 = 3;
/// Typing notices per (user, channel, parent), at most one per this interval.
pub const TYPING_INTERVAL: Duration = Duration::from_secs(1);

fn count(st: &AppState, api: Api, result: &str) {
    st.metrics
        .ws_connections
        .with_label_values(&[api.as_str(), result])
        .inc();
}

/// Takes an admission slot for one more connection of `user_id`.
fn admit(st: &AppState, user_id: &str) -> Result<Slot, (&'static str, usize)> {
    let node_cap = st.cfg().ws.max_connections_per_node as usize;
    st.hub
        .admit(user_id, node_cap, st.max_connections_per_user())
}

/// The WARN for a refused admission. Like every `ws …` line it is emitted inside a
/// `ws_handler` span {conn_id, user_id, api} (CHAT-R27: the runbook's WebSocket-events query
/// selects `.span.name=="ws_handler"`), with the refused attempt's own id, and it names the
/// client `ip` (hoisted to the top level) as every cap hit does (CHAT-R29).
fn log_too_many(
    st: &AppState,
    api: Api,
    user_id: &str,
    ip: Option<IpAddr>,
    scope: &str,
    limit: usize,
) {
    let conn_id = st.hub.next_id(&st.node_id);
    let span = tracing::info_span!("ws_handler", conn_id = %conn_id, user_id = %user_id, api = api.as_str());
    let _in_span = span.enter();
    match ip {
        Some(ip) => {
            tracing::warn!(ip = %ip, user_id = %user_id, limit, scope, "ws: Too many connections")
        }
        None => tracing::warn!(user_id = %user_id, limit, scope, "ws: Too many connections"),
    }
}

fn client_ip(parts: &http::request::Parts) -> Option<IpAddr> {
    parts.extensions.get::<ClientIp>().map(|c| c.0)
}

fn too_many(
    st: &AppState,
    api: Api,
    user_id: &str,
    ip: Option<IpAddr>,
    scope: &str,
    limit: usize,
) -> Response {
    count(st, api, "over_limit");
    log_too_many(st, api, user_id, ip, scope, limit);
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_connections",
        "Too many connections",
    );
    e.retry_after = Some(5);
    e.into_response()
}

/// The origin a cookie-authenticated upgrade must come from: site_url's, else the Host.
fn origin_ok(st: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers
        .get(http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    match st.cfg().site_url.as_deref() {
        Some(site) => origin.eq_ignore_ascii_case(site.trim_end_matches('/')),
        None => {
            let host = headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            origin
                .split_once("://")
                .is_some_and(|(_, h)| h.eq_ignore_ascii_case(host))
        }
    }
}

/// `GET /api/v1/ws`.
pub async fn v1(
    State(st): State<AppState>,
    ws: WebSocketUpgrade,
    req: axum::extract::Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let user = match extract::authenticate(&st, &parts, false).await {
        Ok(u) => u,
        Err(e) => {
            count(&st, Api::V1, "unauthorized");
            return e.into_response();
        }
    };
    if matches!(user.credential, Credential::Session { cookie: true, .. })
        && !origin_ok(&st, &parts.headers)
    {
        count(&st, Api::V1, "unauthorized");
        return ApiError::forbidden("Origin does not match this site").into_response();
    }
    let slot = match admit(&st, &user.user.id) {
        Ok(s) => s,
        Err((scope, limit)) => {
            return too_many(&st, Api::V1, &user.user.id, client_ip(&parts), scope, limit);
        }
    };
    count(&st, Api::V1, "accepted");
    ws.max_message_size(MAX_INBOUND_FRAME)
        .max_frame_size(MAX_INBOUND_FRAME)
        .read_buffer_size(WS_READ_BUFFER_BYTES)
        .on_upgrade(move |socket| run_socket(st, socket, user, Api::V1, slot))
}

/// `GET /api/v4/websocket`.
pub async fn v4(
    State(st): State<AppState>,
    ws: WebSocketUpgrade,
    req: axum::extract::Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let pre = if parts.headers.contains_key(http::header::AUTHORIZATION)
        || parts.headers.contains_key("token")
    {
        match extract::authenticate(&st, &parts, true).await {
            Ok(u) => Some(u),
            Err(e) => {
                count(&st, Api::V4, "unauthorized");
                return crate::error::V4Error(e).into_response();
            }
        }
    } else {
        None
    };
    let pre = match pre {
        Some(u) => match admit(&st, &u.user.id) {
            Ok(slot) => {
                count(&st, Api::V4, "accepted");
                Some((u, slot))
            }
            Err((scope, limit)) => {
                return too_many(&st, Api::V4, &u.user.id, client_ip(&parts), scope, limit);
            }
        },
        None => None,
    };
    let ip = client_ip(&parts);
    ws.max_message_size(MAX_INBOUND_FRAME)
        .max_frame_size(MAX_INBOUND_FRAME)
        .read_buffer_size(WS_READ_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            match pre {
                Some((u, slot)) => run_socket(st, socket, u, Api::V4, slot).await,
                None => challenge(st, socket, ip).await,
            }
        })
}

async fn send_json(socket: &mut WebSocket, v: &Value) -> bool {
    socket
        .send(Message::Text(Utf8Bytes::from(v.to_string())))
        .await
        .is_ok()
}

async fn close_socket(mut socket: WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await;
}

/// In-band authentication on `/api/v4/websocket`.
async fn challenge(st: AppState, mut socket: WebSocket, ip: Option<IpAddr>) {
    let wait = Duration::from_secs(u64::from(st.cfg().ws.auth_timeout_seconds));
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let msg = match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(m))) => m,
            _ => {
                count(&st, Api::V4, "unauthorized");
                return close_socket(socket, 1008, "authentication timeout").await;
            }
        };
        let Message::Text(text) = msg else { continue };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let seq = v["seq"].as_i64().unwrap_or(0);
        if v["action"] != "authentication_challenge" {
            continue;
        }
        let token = v["data"]["token"].as_str().unwrap_or("");
        let fail = |msg: &str| json!({"status": "FAIL", "seq_reply": seq, "error": {"id": "api.web_socket_router.no_auth.app_error", "message": msg}});
        match extract::authenticate_token(&st, token).await {
            Ok(user) => {
                let slot = match admit(&st, &user.user.id) {
                    Ok(s) => s,
                    Err((scope, limit)) => {
                        count(&st, Api::V4, "over_limit");
                        log_too_many(&st, Api::V4, &user.user.id, ip, scope, limit);
                        send_json(&mut socket, &fail("Too many connections")).await;
                        return close_socket(socket, 1008, "Too many connections").await;
                    }
                };
                count(&st, Api::V4, "accepted");
                if !send_json(&mut socket, &json!({"status": "OK", "seq_reply": seq})).await {
                    return;
                }
                return run_socket(st, socket, user, Api::V4, slot).await;
            }
            Err(_) => {
                count(&st, Api::V4, "unauthorized");
                send_json(&mut socket, &fail("invalid token")).await;
                return close_socket(socket, 1008, "invalid token").await;
            }
        }
    }
}

/// Serves one authenticated connection until it closes; the admission slot is held until
/// then.
async fn run_socket(st: AppState, socket: WebSocket, user: AuthUser, api: Api, slot: Slot) {
    let conn_id = st.hub.next_id(&st.node_id);
    let span = tracing::info_span!("ws_handler", conn_id = %conn_id, user_id = %user.user.id, api = api.as_str());
    serve(st, socket, user, api, conn_id).instrument(span).await;
    drop(slot);
}

async fn serve(st: AppState, socket: WebSocket, user: AuthUser, api: Api, conn_id: String) {
    let uid = user.user.id.clone();
    let u2 = uid.clone();
    let channels = match store_read!(st.store, |c| ops::user_channel_ids(c, &u2).await) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "ws: channel lookup failed");
            return close_socket(socket, 1011, "try again").await;
        }
    };
    let cap = st.cfg().ws.send_queue_messages as usize;
    let (tx, rx) = mpsc::channel(cap);
    let conn = Arc::new(Conn {
        id: conn_id.clone(),
        user_id: uid.clone(),
        session_id: user.session_id().map(str::to_string),
        api,
        tx,
        close: CancellationToken::new(),
        close_reason: Default::default(),
    });
    let first = st.hub.user_connections(&uid) == 0;
    st.hub.register(conn.clone(), channels);
    st.metrics.ws_active.set(st.hub.connections() as i64);
    presence::update_active_users(&st);
    tracing::info!("ws connected");
    // Off this connection's path: presence may talk to Redis.
    let joined = presence::joined(&st, &uid, &conn_id, first);
    let hello = json!({
        "event": "hello",
        "data": {"connection_id": conn_id, "server_version": st.version_id(), "server_hostname": st.node_id},
        "broadcast": {"omit_users": null, "user_id": uid, "channel_id": "", "team_id": ""},
        "seq": 0,
    });
    let (mut sink, mut stream) = socket.split();
    if sink
        .send(Message::Text(Utf8Bytes::from(hello.to_string())))
        .await
        .is_err()
    {
        finish(&st, &conn, "client", joined).await;
        return;
    }
    let missed = Arc::new(AtomicU32::new(0));
    let writer = tokio::spawn(
        write_loop(st.clone(), conn.clone(), sink, rx, missed.clone()).in_current_span(),
    );
    let mut invalid: (Instant, u32) = (Instant::now(), 0);
    let mut typing_at: HashMap<(String, String), Instant> = HashMap::new();
    loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = conn.close.cancelled() => break,
        };
        match msg {
            None => break,
            Some(Err(e)) => {
                let text = e.to_string();
                if text.contains("Space limit exceeded")
                    || text.contains("too long")
                    || text.contains("Message too long")
                {
                    conn.close_with(CloseReason::TooBig);
                }
                break;
            }
            Some(Ok(Message::Text(t))) => match client_frame::parse(&t) {
                Some(frame) => action(&st, &conn, frame, &mut typing_at).await,
                None => bad_frame(&conn, &mut invalid),
            },
            Some(Ok(Message::Binary(_))) => bad_frame(&conn, &mut invalid),
            Some(Ok(Message::Pong(_))) => missed.store(0, Ordering::Relaxed),
            Some(Ok(Message::Ping(_))) => {}
            Some(Ok(Message::Close(_))) => break,
        }
    }
    conn.close.cancel();
    let _ = writer.await;
    let reason = conn
        .close_reason
        .lock()
        .map(|r| r.metric())
        .unwrap_or("client");
    finish(&st, &conn, reason, joined).await;
}

/// Closes every connection with 1001, spread evenly over `window` (at most 100 ms apart)
/// so thousands of clients do not reconnect elsewhere in the same instant.
pub async fn close_all_spread(st: AppState, window: Duration) {
    close_all_spread_with(st, window, CloseReason::Shutdown).await;
}

/// Closes every connection with `reason`, spread over `window` (at most 100 ms apart), so
/// the reconnects that follow do not arrive all at once.
pub async fn close_all_spread_with(st: AppState, window: Duration, reason: CloseReason) {
    let conns = st.hub.all();
    if conns.is_empty() {
        return;
    }
    let step = (window / conns.len() as u32).min(Duration::from_millis(100));
    for c in conns {
        c.close_with(reason);
        tokio::time::sleep(step).await;
    }
}

fn bad_frame(conn: &Conn, invalid: &mut (Instant, u32)) {
    if invalid.0.elapsed() > Duration::from_secs(60) {
        *invalid = (Instant::now(), 0);
    }
    invalid.1 += 1;
    if invalid.1 >= MAX_INVALID_PER_MINUTE {
        conn.close_with(CloseReason::Invalid);
    }
}

async fn finish(st: &AppState, conn: &Conn, reason: &str, joined: tokio::task::JoinHandle<()>) {
    let left = st.hub.unregister(&conn.id);
    st.metrics.ws_active.set(st.hub.connections() as i64);
    presence::update_active_users(st);
    st.metrics.ws_disconnects.with_label_values(&[reason]).inc();
    if reason == "slow_client" {
        tracing::warn!("ws slow client closed");
    }
    tracing::info!(reason, "ws disconnected");
    presence::left(st, &conn.user_id, &conn.id, left, joined);
}

fn reply(conn: &Conn, v: Value) {
    let _ = conn.tx.try_send(Outbound::Reply(Arc::new(v.to_string())));
}

async fn action(
    st: &AppState,
    conn: &Conn,
    frame: ClientFrame,
    typing_at: &mut HashMap<(String, String), Instant>,
) {
    let seq = frame.seq;
    let ok = |data: Option<Value>| {
        let mut r = json!({"status": "OK", "seq_reply": seq});
        if let Some(d) = data {
            r["data"] = d;
        }
        r
    };
    match frame.action {
        ClientAction::UserTyping {
            channel_id,
            parent_id,
        } => {
            let member = match &channel_id {
                Some(ch) => {
                    let (c, u) = (ch.clone(), conn.user_id.clone());
                    matches!(
                        store_read!(st.store, |x| ops::channel_member(x, &c, &u).await),
                        Ok(Some(_))
                    )
                }
                None => false,
            };
            if let (true, Some(ch)) = (member, channel_id) {
                let key = (ch.clone(), parent_id.clone());
                let due = typing_at
                    .get(&key)
                    .is_none_or(|t| t.elapsed() >= TYPING_INTERVAL);
                if due {
                    typing_at.insert(key, Instant::now());
                    events::typing(st, &conn.user_id, &ch, &parent_id);
                }
            }
            reply(conn, ok(None));
        }
        ClientAction::Ping => reply(
            conn,
            ok(Some(
                json!({"text": "pong", "version": st.version_id(), "server_time": crate::store::now_ms(), "node_id": st.node_id}),
            )),
        ),
        ClientAction::GetStatuses(ids) => match presence::statuses(st, &ids).await {
            Ok(m) => reply(conn, ok(Some(json!(m)))),
            Err(_) => reply(
                conn,
                json!({"status": "FAIL", "seq_reply": seq, "error": {"id": "api.rustchat.unavailable.app_error", "message": "try again"}}),
            ),
        },
        ClientAction::Activity => reply(conn, ok(None)),
        ClientAction::Unknown => reply(
            conn,
            json!({"status": "FAIL", "seq_reply": seq, "error": {"id": "api.web_socket_router.bad_action.app_error", "message": "unknown action"}}),
        ),
    }
}

async fn write_loop(
    st: AppState,
    conn: Arc<Conn>,
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Outbound>,
    missed: Arc<AtomicU32>,
) {
    let every = Duration::from_secs(u64::from(st.cfg().ws.ping_interval_seconds));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut numbering = Numbering {
        seq: 0,
        buf: itoa::Buffer::new(),
        delivery: st.metrics.ws_delivery.with_label_values(&[]),
    };
    // One cancellation future for the connection's life, not one per frame.
    let closed = conn.close.cancelled();
    tokio::pin!(closed);
    loop {
        let out = tokio::select! {
            biased;
            _ = &mut closed => break,
            _ = ping.tick() => {
                if missed.fetch_add(1, Ordering::Relaxed) >= MAX_MISSED_PONGS {
                    conn.close_with(CloseReason::Timeout);
                    break;
                }
                Message::Ping(Default::default())
            }
            o = rx.recv() => match o {
                None => break,
                Some(o) => numbering.message(o),
            },
        };
        // Frames already queued behind this one go out in the same flush: a burst costs one
        // write instead of one per frame. The stall bound covers the whole batch.
        let write = async {
            sink.feed(out).await?;
            for _ in 1..WRITE_BATCH {
                match rx.try_recv() {
                    Ok(o) => sink.feed(numbering.message(o)).await?,
                    Err(_) => break,
                }
            }
            sink.flush().await
        };
        match tokio::time::timeout(WRITE_STALL, write).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                conn.close.cancel();
                break;
            }
            Err(_) => {
                conn.close_with(CloseReason::SlowClient);
                break;
            }
        }
    }
    let closing = *conn.close_reason.lock();
    if let Some(r) = closing {
        let (code, reason) = r.code();
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            sink.send(Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            }))),
        )
        .await;
    }
    let _ = sink.close().await;
}

/// Most queued frames written with one flush.
const WRITE_BATCH: usize = 64;

/// A connection's event numbering (`seq`) and delivery-latency histogram.
struct Numbering {
    seq: u64,
    buf: itoa::Buffer,
    delivery: ron_metrics::Histogram,
}

impl Numbering {
    /// The frame for `o`: events get the next `seq` and their delivery latency recorded.
    fn message(&mut self, o: Outbound) -> Message {
        match o {
            Outbound::Reply(text) => Message::Text(Utf8Bytes::from(text.as_str())),
            Outbound::Event(frame) => {
                self.seq += 1;
                let n = self.buf.format(self.seq);
                let mut s = String::with_capacity(frame.prefix.len() + n.len() + 1);
                s.push_str(&frame.prefix);
                s.push_str(n);
                s.push('}');
                self.delivery
                    .observe(frame.published.elapsed().as_secs_f64());
                Message::Text(Utf8Bytes::from(s))
            }
        }
    }
}
