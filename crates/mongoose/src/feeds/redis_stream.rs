//! `redis-stream` feed (MNG-R12, R32): reads a Redis stream through a consumer group and
//! acknowledges an entry only once every consuming group has processed it, so a crash means
//! redelivery, never loss.
//!
//! The loop, on the I/O runtime:
//! 1. `XGROUP CREATE <stream> <group> <startId> MKSTREAM` when `createGroup` (BUSYGROUP is
//!    fine);
//! 2. republish this consumer's pending entries (`XREADGROUP ... 0`), then read new ones
//!    (`>`) with `COUNT`/`BLOCK`;
//! 3. remember each published entry as (seq, id) in a bounded in-flight ring (reading pauses
//!    while it is full);
//! 4. every `ackIntervalMs`, and at shutdown, `XACK` every id whose seq is at or below the
//!    lowest watermark of the feed's live subscriptions (groups publish them after each
//!    batch; quarantined events count as processed);
//! 5. `claimIdleMs > 0` also takes over entries other consumers left idle that long
//!    (`XAUTOCLAIM`).
//!
//! Entries whose `field` is missing or not JSON are quarantined as `decode_error` and acked
//! at once. A rejected publish (the feed is lossless: `fail-fast`, or `block` falling back to
//! `fail-fast`) is retried with backoff and nothing new is read meanwhile. A dropped
//! connection marks the feed disconnected and reconnects with the 100 ms → 30 s backoff,
//! then re-reads its pending entries (which may republish some: at-least-once).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value as RValue};
use serde::Deserialize;

use super::{LineOutcome, publish_one, run_blocking};
use crate::event::JsonEvent;
use crate::feed::{DecodeError, FeedEnv, FeedOut, FeedRunner, RunsOn, reconnect_backoff};
use crate::processor::ConfigMap;

/// Runs on the I/O runtime.
pub const RUNS_ON: RunsOn = RunsOn::Io;
/// One reader task publishes.
pub const MULTI_PRODUCER: bool = false;
/// Most entries published and not yet acknowledged; reading pauses at this many.
pub const MAX_IN_FLIGHT: usize = 65_536;
/// Longest the final acknowledgement waits for the groups to drain.
const FINAL_ACK_WAIT: Duration = Duration::from_secs(10);
/// Longest a single Redis command may take besides its BLOCK time.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

fn default_true() -> bool {
    true
}
fn default_start() -> String {
    "$".into()
}
fn default_field() -> String {
    "data".into()
}
fn default_count() -> u32 {
    128
}
fn default_block() -> u32 {
    100
}
fn default_ack() -> u32 {
    100
}

/// `redis-stream` feed config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RedisStreamConfig {
    /// `redis://` or `rediss://` URL.
    pub url: String,
    /// Stream key.
    pub stream: String,
    /// Consumer group.
    pub group: String,
    /// Consumer name (default: the server's name).
    #[serde(default)]
    pub consumer: Option<String>,
    /// Create the group (and stream) if missing.
    #[serde(default = "default_true")]
    pub create_group: bool,
    /// Where a created group starts (`$` = new entries only, `0` = everything).
    #[serde(default = "default_start")]
    pub start_id: String,
    /// The entry field holding the JSON event.
    #[serde(default = "default_field")]
    pub field: String,
    /// Entries per read.
    #[serde(default = "default_count")]
    pub count: u32,
    /// Read BLOCK time, ms.
    #[serde(default = "default_block")]
    pub block_ms: u32,
    /// Acknowledgement period, ms.
    #[serde(default = "default_ack")]
    pub ack_interval_ms: u32,
    /// Take over entries idle this long at other consumers (0 = never).
    #[serde(default)]
    pub claim_idle_ms: u32,
}

/// Parses and range-checks a config.
pub fn parse(config: &ConfigMap) -> Result<RedisStreamConfig, String> {
    let c: RedisStreamConfig = crate::builtins::parse_config(config)?;
    let shown = crate::sinks::redis_stream::redacted_url(&c.url);
    if !(c.url.starts_with("redis://") || c.url.starts_with("rediss://")) {
        return Err(format!(
            "config.url: {shown}: expected redis:// or rediss://"
        ));
    }
    if c.url.contains('#') {
        return Err(format!(
            "config.url: {shown}: a URL fragment is not allowed; certificate verification cannot be turned off"
        ));
    }
    redis::Client::open(c.url.as_str()).map_err(|e| {
        format!(
            "config.url: {shown} is not a valid Redis URL ({})",
            e.category()
        )
    })?;
    for (k, v) in [
        ("stream", &c.stream),
        ("group", &c.group),
        ("field", &c.field),
    ] {
        if v.is_empty() {
            return Err(format!("config.{k}: must not be empty"));
        }
    }
    if c.consumer.as_deref() == Some("") {
        return Err("config.consumer: must not be empty".into());
    }
    let ranged = |k: &str, v: u32, lo: u32, hi: u32| {
        if (lo..=hi).contains(&v) {
            Ok(())
        } else {
            Err(format!("config.{k}: {v} is out of range {lo}..={hi}"))
        }
    };
    ranged("count", c.count, 1, 10_000)?;
    ranged("blockMs", c.block_ms, 1, 60_000)?;
    ranged("ackIntervalMs", c.ack_interval_ms, 1, 60_000)?;
    ranged("claimIdleMs", c.claim_idle_ms, 0, 86_400_000)?;
    Ok(c)
}

/// Checks a config without side effects.
pub fn validate(config: &ConfigMap) -> Result<(), String> {
    parse(config).map(|_| ())
}

struct Reader {
    cfg: RedisStreamConfig,
    consumer: String,
    shown: String,
    client: redis::Client,
}

impl Reader {
    async fn connect(&self, timeout: Duration) -> Result<MultiplexedConnection, String> {
        let conf = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            // Reads BLOCK for blockMs; the response budget must cover that.
            .set_response_timeout(Some(
                COMMAND_TIMEOUT + Duration::from_millis(u64::from(self.cfg.block_ms)),
            ));
        let mut conn = tokio::time::timeout(
            timeout,
            self.client
                .get_multiplexed_async_connection_with_config(&conf),
        )
        .await
        .map_err(|_| format!("{}: timed out after {} ms", self.shown, timeout.as_millis()))?
        .map_err(|e| format!("{}: {e}", self.shown))?;
        if self.cfg.create_group {
            let r: redis::RedisResult<RValue> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&self.cfg.stream)
                .arg(&self.cfg.group)
                .arg(&self.cfg.start_id)
                .arg("MKSTREAM")
                .query_async(&mut conn)
                .await;
            if let Err(e) = r
                && e.code() != Some("BUSYGROUP")
            {
                return Err(format!("{}: XGROUP CREATE: {e}", self.shown));
            }
        }
        Ok(conn)
    }
}

/// Builds the feed: connects (and creates the group) within `connectTimeoutMs`; a critical
/// feed that cannot fails startup, a non-critical one keeps reconnecting.
pub fn build<E: JsonEvent>(config: &ConfigMap, env: &FeedEnv) -> Result<FeedRunner<E>, String> {
    let cfg = parse(config)?;
    let reader = Reader {
        consumer: cfg
            .consumer
            .clone()
            .unwrap_or_else(|| env.server.to_string()),
        shown: crate::sinks::redis_stream::redacted_url(&cfg.url),
        client: redis::Client::open(cfg.url.as_str()).map_err(|e| e.to_string())?,
        cfg,
    };
    let timeout = env.connect_timeout;
    let first = if tokio::runtime::Handle::try_current().is_ok() {
        // Inside a runtime block_on would panic; connect in the task instead.
        None
    } else {
        Some(env.io.block_on(reader.connect(timeout)))
    };
    let conn = match first {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) if env.critical => return Err(e),
        Some(Err(e)) => {
            tracing::error!(feed = env.name, error = %e, "redis-stream feed cannot connect yet; retrying");
            None
        }
        None => None,
    };
    Ok(FeedRunner::Io(Box::new(move |out| {
        Box::pin(run::<E>(reader, conn, timeout, out))
    })))
}

/// One entry as read: its id and the field's text, if present.
struct Entry {
    id: String,
    data: Option<Vec<u8>>,
}

fn text(v: &RValue) -> Option<Vec<u8>> {
    match v {
        RValue::BulkString(b) => Some(b.clone()),
        RValue::SimpleString(s) => Some(s.as_bytes().to_vec()),
        _ => None,
    }
}

/// Entries of a reply `[[stream, [[id, [k, v, ...]], ...]]]` (XREADGROUP) or of the second
/// element of an XAUTOCLAIM reply.
fn entries(list: &RValue, field: &str) -> Vec<Entry> {
    let RValue::Array(items) = list else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|e| {
            let RValue::Array(pair) = e else { return None };
            let id = String::from_utf8(text(pair.first()?)?).ok()?;
            let data = match pair.get(1) {
                Some(RValue::Array(kv)) => kv
                    .chunks(2)
                    .find(|c| c.len() == 2 && text(&c[0]).as_deref() == Some(field.as_bytes()))
                    .and_then(|c| text(&c[1])),
                // A deleted entry still pending comes back with a nil body.
                _ => None,
            };
            Some(Entry { id, data })
        })
        .collect()
}

fn read_reply(v: &RValue, field: &str) -> Vec<Entry> {
    match v {
        RValue::Array(streams) => streams
            .iter()
            .flat_map(|s| match s {
                RValue::Array(pair) if pair.len() == 2 => entries(&pair[1], field),
                _ => Vec::new(),
            })
            .collect(),
        RValue::Map(m) => m.iter().flat_map(|(_, v)| entries(v, field)).collect(),
        _ => Vec::new(),
    }
}

struct State {
    /// (seq, id) published and not acknowledged, in seq order.
    in_flight: VecDeque<(u64, String)>,
    /// Ids to acknowledge regardless of watermarks (quarantined at the feed).
    ack_now: Vec<String>,
    /// Seq of the last publish (mirrors the single producer's counter).
    seq: u64,
    /// Re-reading this consumer's pending entries, from this id.
    pending_from: Option<String>,
    last_ack: Instant,
    last_claim: Instant,
    claim_cursor: String,
}

async fn run<E: JsonEvent>(
    reader: Reader,
    mut conn: Option<MultiplexedConnection>,
    timeout: Duration,
    mut out: FeedOut<E>,
) {
    let mut st = State {
        in_flight: VecDeque::new(),
        ack_now: Vec::new(),
        seq: 0,
        pending_from: Some("0".into()),
        last_ack: Instant::now(),
        last_claim: Instant::now(),
        claim_cursor: "0-0".into(),
    };
    let mut failures = 0u32;
    if conn.is_none() {
        out.set_connected(false, Some("not connected yet"));
    }
    while !out.stopping() {
        let Some(c) = conn.as_mut() else {
            tokio::select! {
                _ = out.stop.cancelled() => break,
                _ = tokio::time::sleep(reconnect_backoff(failures)) => {}
            }
            match reader.connect(timeout).await {
                Ok(c) => {
                    conn = Some(c);
                    failures = 0;
                    // What this consumer had before the drop is pending again.
                    st.pending_from = Some("0".into());
                    out.set_connected(true, None);
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    out.set_connected(false, Some(&e));
                }
            }
            continue;
        };
        out.set_connected(true, None);
        match step(&reader, c, &mut st, &mut out).await {
            Ok(()) => {}
            Err(e) => {
                out.set_connected(false, Some(&e));
                conn = None;
            }
        }
    }
    // Shutdown step 6: the groups drain after the feeds stop; once their watermarks cover
    // what was published, the final XACK.
    let subs = out.subs.clone();
    wait_for_groups(&subs, &st).await;
    if let Some(c) = conn.as_mut() {
        let through = out.processed_through();
        let _ = ack(&reader, c, &mut st, through, &out.shared).await;
    }
}

/// After the feeds stop the groups drain; their final watermarks cover every published
/// entry (quarantined ones included) once they exit.
async fn wait_for_groups(subs: &[std::sync::Arc<crate::queue::SubShared>], st: &State) {
    let Some(last) = st.in_flight.back().map(|b| b.0) else {
        return;
    };
    let deadline = Instant::now() + FINAL_ACK_WAIT;
    while Instant::now() < deadline
        && crate::feed::processed_through(subs).is_some_and(|w| w < last)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn step<E: JsonEvent>(
    reader: &Reader,
    c: &mut MultiplexedConnection,
    st: &mut State,
    out: &mut FeedOut<E>,
) -> Result<(), String> {
    let cfg = &reader.cfg;
    if st.last_ack.elapsed() >= Duration::from_millis(u64::from(cfg.ack_interval_ms)) {
        let through = out.processed_through();
        let shared = out.shared.clone();
        ack(reader, c, st, through, &shared).await?;
    }
    if st.in_flight.len() >= MAX_IN_FLIGHT {
        tokio::time::sleep(Duration::from_millis(u64::from(cfg.ack_interval_ms))).await;
        return Ok(());
    }
    let mut got: Vec<Entry> = Vec::new();
    if cfg.claim_idle_ms > 0
        && st.last_claim.elapsed() >= Duration::from_millis(u64::from(cfg.claim_idle_ms / 2).max(1))
    {
        st.last_claim = Instant::now();
        let v: RValue = redis::cmd("XAUTOCLAIM")
            .arg(&cfg.stream)
            .arg(&cfg.group)
            .arg(&reader.consumer)
            .arg(cfg.claim_idle_ms)
            .arg(&st.claim_cursor)
            .arg("COUNT")
            .arg(cfg.count)
            .query_async(c)
            .await
            .map_err(|e| format!("{}: XAUTOCLAIM: {e}", reader.shown))?;
        if let RValue::Array(parts) = &v
            && parts.len() >= 2
        {
            if let Some(next) = text(&parts[0]).and_then(|b| String::from_utf8(b).ok()) {
                st.claim_cursor = next;
            }
            got = entries(&parts[1], &cfg.field);
        }
    }
    if got.is_empty() {
        let from = st.pending_from.clone();
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&cfg.group)
            .arg(&reader.consumer)
            .arg("COUNT")
            .arg(cfg.count);
        if from.is_none() {
            cmd.arg("BLOCK").arg(cfg.block_ms);
        }
        cmd.arg("STREAMS")
            .arg(&cfg.stream)
            .arg(from.as_deref().unwrap_or(">"));
        let v: RValue = cmd
            .query_async(c)
            .await
            .map_err(|e| format!("{}: XREADGROUP: {e}", reader.shown))?;
        got = read_reply(&v, &cfg.field);
        if from.is_some() {
            // Pending entries come back in id order; an empty page ends the re-read.
            st.pending_from = got.last().map(|e| e.id.clone());
        }
    }
    for e in got {
        publish(e, st, out, &cfg.field).await;
        if out.stopping() {
            break;
        }
    }
    Ok(())
}

async fn publish<E: JsonEvent>(e: Entry, st: &mut State, out: &mut FeedOut<E>, field: &str) {
    let Some(raw) = e.data else {
        out.decode_error(
            DecodeError::MissingField,
            &format!("entry {} has no field {field:?}", e.id),
            "missing field",
        );
        st.ack_now.push(e.id);
        return;
    };
    let value: serde_json::Value = match serde_json::from_slice(&raw) {
        Ok(v) => v,
        Err(err) => {
            out.decode_error(
                DecodeError::BadJson,
                &String::from_utf8_lossy(&raw),
                &err.to_string(),
            );
            st.ack_now.push(e.id);
            return;
        }
    };
    let event = match E::from_json(value) {
        Ok(ev) => ev,
        Err(err) => {
            out.decode_error(DecodeError::BadJson, &String::from_utf8_lossy(&raw), &err);
            st.ack_now.push(e.id);
            return;
        }
    };
    // Lossless: a rejected publish is retried with backoff; nothing new is read meanwhile.
    let mut attempt = 0u32;
    loop {
        let ev = event.clone();
        match run_blocking(|| publish_one(out, ev)) {
            LineOutcome::Published(_) => {
                st.seq += 1;
                st.in_flight.push_back((st.seq, e.id));
                return;
            }
            LineOutcome::Rejected => {
                // The seq was consumed by the rejected attempt.
                st.seq += 1;
                attempt = attempt.saturating_add(1);
                let wait = Duration::from_millis((1u64 << attempt.min(7)).min(100));
                tokio::select! {
                    _ = out.stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            // Closing: the entry stays pending in Redis and is redelivered.
            _ => return,
        }
    }
}

async fn ack(
    reader: &Reader,
    c: &mut MultiplexedConnection,
    st: &mut State,
    through: Option<u64>,
    shared: &crate::publish::FeedShared,
) -> Result<(), String> {
    st.last_ack = Instant::now();
    // With no live subscription every publish was unrouted: nothing is waiting for it.
    let through = through.unwrap_or(u64::MAX);
    let mut ids = std::mem::take(&mut st.ack_now);
    while st.in_flight.front().is_some_and(|(seq, _)| *seq <= through) {
        if let Some((_, id)) = st.in_flight.pop_front() {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    let cfg = &reader.cfg;
    let n: redis::RedisResult<u64> = redis::cmd("XACK")
        .arg(&cfg.stream)
        .arg(&cfg.group)
        .arg(&ids)
        .query_async(c)
        .await;
    match n {
        Ok(n) => {
            shared
                .acked
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
        Err(e) => {
            // Not acknowledged: they stay pending in Redis and come back after a reconnect.
            Err(format!("{}: XACK: {e}", reader.shown))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: serde_json::Value) -> ConfigMap {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn config_validation_names_the_key() {
        let ok = json!({"url": "redis://127.0.0.1:6379", "stream": "s", "group": "g"});
        let c = parse(&cfg(ok.clone())).unwrap();
        assert_eq!(
            (c.count, c.block_ms, c.ack_interval_ms, c.claim_idle_ms),
            (128, 100, 100, 0)
        );
        assert_eq!(
            (c.start_id.as_str(), c.field.as_str(), c.create_group),
            ("$", "data", true)
        );
        let mut bad = ok.clone();
        bad["stram"] = json!("x");
        assert!(validate(&cfg(bad)).unwrap_err().contains("stram"));
        let mut bad = ok.clone();
        bad.as_object_mut().unwrap().remove("group");
        assert!(validate(&cfg(bad)).unwrap_err().contains("group"));
        let mut bad = ok.clone();
        bad["count"] = json!(0);
        assert!(validate(&cfg(bad)).unwrap_err().contains("config.count"));
        let mut bad = ok.clone();
        bad["url"] = json!("http://x");
        assert!(validate(&cfg(bad)).unwrap_err().contains("config.url"));
        let mut bad = ok;
        bad["url"] = json!("redis://user:hunter2@h:1");
        bad["stream"] = json!("");
        let e = validate(&cfg(bad)).unwrap_err();
        assert!(e.contains("config.stream") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn replies_yield_ids_and_the_configured_field() {
        let b = |s: &str| RValue::BulkString(s.as_bytes().to_vec());
        let reply = RValue::Array(vec![RValue::Array(vec![
            b("s"),
            RValue::Array(vec![
                RValue::Array(vec![
                    b("1-0"),
                    RValue::Array(vec![b("data"), b("{\"a\":1}")]),
                ]),
                RValue::Array(vec![b("2-0"), RValue::Array(vec![b("other"), b("x")])]),
                RValue::Array(vec![b("3-0"), RValue::Nil]),
            ]),
        ])]);
        let got = read_reply(&reply, "data");
        assert_eq!(got.len(), 3);
        assert_eq!(
            (got[0].id.as_str(), got[0].data.as_deref()),
            ("1-0", Some(&b"{\"a\":1}"[..]))
        );
        assert!(got[1].data.is_none() && got[2].data.is_none());
        assert!(read_reply(&RValue::Nil, "data").is_empty());
    }
}
