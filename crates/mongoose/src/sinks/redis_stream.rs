//! `redis-stream`: each item appended to a Redis stream with XADD (§2.4, §3.2; feature
//! `redis`).
//!
//! Keys: `url`\* (`redis://`, `rediss://` with feature `tls`, `redis+unix://`), `stream`\*,
//! `field: data`, optional `maxLen` (approximate trim).
//!
//! - **Command.** `XADD <stream> [MAXLEN ~ <maxLen>] * <field> <json> origin_feed <feed>
//!   origin_seq <seq>`, the origin pair only when the item has one (quarantine records have
//!   none). `<json>` is the item's compact JSON.
//! - **Connection.** One `redis::aio::MultiplexedConnection` driven on the server's I/O
//!   runtime with `env.io.block_on`. `start` connects within `startup.connectTimeoutMs`; the
//!   same bound applies to every later connect and to each XADD (the spec gives this sink no
//!   timeout key of its own).
//! - **Verdicts.** A connection error (refused, dropped, timed out, authentication) is
//!   `Retryable` and drops the connection, so the next write reconnects. A command error is
//!   `Permanent`, except the replies that say "not now" rather than "never" (`LOADING`,
//!   `BUSY`, `TRYAGAIN`, `MASTERDOWN`, `CLUSTERDOWN`, `READONLY`, `OOM`, `MISCONF`,
//!   `NOREPLICAS`, `NOAUTH`/`WRONGPASS`), which are `Retryable` too: retrying them later can
//!   succeed, and quarantining every item during a failover would be wrong.
//! - **TLS.** `rediss://` uses the redis client's rustls support, which verifies the server
//!   certificate against the platform's trust store; a URL fragment (`#insecure`) is
//!   rejected, so verification cannot be turned off (§7).
//! - **Secrets.** The URL may carry a password: errors and logs show it as
//!   `redis://***@host` (§7).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError, RetryMethod};
use serde::Deserialize;

use super::parse;
use crate::event::Event;
use crate::processor::ConfigMap;
use crate::sink::SinkItem;
use crate::sink_agent::{Sink, SinkEnv, SinkError};

/// Field names the sink writes besides `field`.
const ORIGIN_FIELDS: [&str; 2] = ["origin_feed", "origin_seq"];
/// Error codes (outside the kinds the client knows) that mean "try again later".
const TRANSIENT_CODES: [&str; 6] = [
    "BUSY",
    "OOM",
    "MISCONF",
    "NOREPLICAS",
    "NOAUTH",
    "WRONGPASS",
];

/// `redis-stream` sink config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RedisStreamConfig {
    /// Server URL (may carry credentials; shown redacted).
    pub url: String,
    /// Stream key.
    pub stream: String,
    /// Field holding the item's JSON.
    #[serde(default = "default_field")]
    pub field: String,
    /// Approximate length cap (`MAXLEN ~`).
    #[serde(default)]
    pub max_len: Option<u64>,
}

fn default_field() -> String {
    "data".into()
}

/// `url` as it may appear in errors and logs: userinfo replaced by `***`.
pub fn redacted_url(url: &str) -> String {
    crate::config::redact_userinfo(url).unwrap_or_else(|| url.to_string())
}

fn checked(config: &ConfigMap) -> Result<(RedisStreamConfig, redis::Client), String> {
    let cfg: RedisStreamConfig = parse(config)?;
    let shown = redacted_url(&cfg.url);
    if cfg.url.starts_with("rediss://") && !cfg!(feature = "tls") {
        return Err(format!(
            "config.url: {shown}: rediss needs the `tls` feature, which this build lacks"
        ));
    }
    // `rediss://host#insecure` would skip certificate checks; §7 forbids turning them off.
    if cfg.url.contains('#') {
        return Err(format!(
            "config.url: {shown}: a URL fragment (e.g. #insecure) is not allowed; \
             certificate verification cannot be turned off"
        ));
    }
    // Parsing only: no connection, no DNS.
    let client = redis::Client::open(cfg.url.as_str()).map_err(|e| {
        // The client's parse errors do not quote the URL; still, never risk echoing a
        // password, so only the error category is shown next to the redacted URL.
        format!(
            "config.url: {shown} is not a valid Redis URL ({})",
            e.category()
        )
    })?;
    if cfg.stream.is_empty() {
        return Err("config.stream: must not be empty".into());
    }
    if cfg.field.is_empty() {
        return Err("config.field: must not be empty".into());
    }
    if ORIGIN_FIELDS.contains(&cfg.field.as_str()) {
        return Err(format!(
            "config.field: {:?} is written by the sink itself (origin_feed, origin_seq)",
            cfg.field
        ));
    }
    if cfg.max_len == Some(0) {
        return Err("config.maxLen: must be at least 1".into());
    }
    Ok((cfg, client))
}

/// Checks a `redis-stream` sink's `config` (no side effects: nothing is resolved or
/// connected).
pub fn validate(config: &ConfigMap) -> Result<(), String> {
    checked(config).map(|_| ())
}

/// Builds a `redis-stream` sink (no I/O: `start` connects).
pub fn build<E: Event>(config: &ConfigMap, env: &SinkEnv) -> Result<Box<dyn Sink<E>>, String> {
    let (cfg, client) = checked(config)?;
    Ok(Box::new(RedisStreamSink {
        name: env.name,
        shown: redacted_url(&cfg.url),
        client,
        stream: cfg.stream,
        field: cfg.field,
        max_len: cfg.max_len,
        io: env.io.clone(),
        timeout: env.connect_timeout,
        conn: None,
    }))
}

/// The `redis-stream` sink.
pub struct RedisStreamSink {
    name: &'static str,
    /// The redacted URL.
    shown: String,
    client: redis::Client,
    stream: String,
    field: String,
    max_len: Option<u64>,
    io: tokio::runtime::Handle,
    timeout: Duration,
    conn: Option<MultiplexedConnection>,
}

impl RedisStreamSink {
    fn connect(&self) -> Result<MultiplexedConnection, String> {
        let t = self.timeout;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(t))
            .set_response_timeout(Some(t));
        let client = self.client.clone();
        let connected = self.io.block_on(async move {
            tokio::time::timeout(
                t,
                client.get_multiplexed_async_connection_with_config(&config),
            )
            .await
        });
        match connected {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(format!("redis-stream sink: connect to {}: {e}", self.shown)),
            Err(_) => Err(format!(
                "redis-stream sink: connect to {}: timed out after {} ms",
                self.shown,
                t.as_millis()
            )),
        }
    }

    fn command<E: Event>(&self, item: &SinkItem<E>) -> redis::Cmd {
        let json = serde_json::to_string(&item.to_json()).unwrap_or_else(|_| "null".into());
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&self.stream);
        if let Some(n) = self.max_len {
            cmd.arg("MAXLEN").arg("~").arg(n);
        }
        cmd.arg("*").arg(&self.field).arg(json);
        if let Some((feed, seq)) = item.origin() {
            cmd.arg(ORIGIN_FIELDS[0])
                .arg(feed)
                .arg(ORIGIN_FIELDS[1])
                .arg(seq);
        }
        cmd
    }

    /// Maps a failed XADD to a verdict; drops the connection unless the server answered.
    fn verdict(&mut self, e: &RedisError) -> SinkError {
        let msg = format!(
            "redis-stream sink: XADD {} on {}: {e}",
            self.stream, self.shown
        );
        let transient = match e.kind() {
            ErrorKind::Server(_) => !matches!(e.retry_method(), RetryMethod::NoRetry),
            ErrorKind::Extension => e.code().is_some_and(|c| TRANSIENT_CODES.contains(&c)),
            // Not an answer from the server: the connection is broken or unusable.
            _ => {
                self.conn = None;
                return SinkError::Retryable(msg);
            }
        };
        if transient {
            // A failover or restart may be behind it: reconnect for the next attempt.
            self.conn = None;
            SinkError::Retryable(msg)
        } else {
            SinkError::Permanent(msg)
        }
    }
}

impl<E: Event> Sink<E> for RedisStreamSink {
    fn start(&mut self) -> Result<(), String> {
        self.conn = Some(self.connect()?);
        Ok(())
    }

    fn write(&mut self, item: &SinkItem<E>) -> Result<(), SinkError> {
        let cmd = self.command(item);
        let mut conn = match &self.conn {
            Some(c) => c.clone(),
            None => {
                let c = self.connect().map_err(SinkError::Retryable)?;
                self.conn = Some(c.clone());
                c
            }
        };
        let t = self.timeout;
        let sent = self.io.block_on(async move {
            tokio::time::timeout(t, cmd.query_async::<redis::Value>(&mut conn)).await
        });
        match sent {
            Ok(Ok(_id)) => Ok(()),
            Ok(Err(e)) => {
                let v = self.verdict(&e);
                tracing::debug!(sink = self.name, error = %v, "redis-stream sink: XADD failed");
                Err(v)
            }
            Err(_) => {
                self.conn = None;
                Err(SinkError::Retryable(format!(
                    "redis-stream sink: XADD {} on {}: timed out after {} ms",
                    self.stream,
                    self.shown,
                    t.as_millis()
                )))
            }
        }
    }

    fn stop(&mut self) {
        self.conn = None;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use test_support::RedisServer;

    use super::*;
    use crate::Record;
    use crate::sinks::test_util::{env, map, runtime};

    fn item(n: u64) -> SinkItem<Record> {
        SinkItem::Event {
            value: Record::new(json!({"n": n})),
            origin: Some(("prices", n)),
        }
    }

    fn record() -> SinkItem<Record> {
        SinkItem::Quarantine(Box::new(crate::quarantine::QuarantineRecord {
            ts_ms: 0,
            first_seen_ms: 0,
            server: "s".into(),
            kind: crate::quarantine::Kind::DecodeError,
            feed: Some("prices".into()),
            seq: Some(9),
            group: None,
            processor: None,
            sink: None,
            attempts: None,
            error: Some("bad".into()),
            payload: json!("raw"),
            truncated: false,
        }))
    }

    /// A port on 127.0.0.1 nothing listens on.
    fn closed_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn config_validation_names_the_key() {
        validate(&map(
            json!({"url": "redis://127.0.0.1:6379", "stream": "s"}),
        ))
        .unwrap();
        validate(&map(
            json!({"url": "redis://h/2", "stream": "s", "maxLen": 5, "field": "d"}),
        ))
        .unwrap();
        for (cfg, key) in [
            (json!({"stream": "s"}), "url"),
            (json!({"url": "redis://h"}), "stream"),
            (
                json!({"url": "redis://h", "stream": "s", "maxlen": 1}),
                "maxlen",
            ),
        ] {
            let e = validate(&map(cfg.clone())).unwrap_err();
            assert!(e.contains(key), "{cfg}: {e}");
        }
        for (cfg, key) in [
            (
                json!({"url": "redis://h", "stream": "s", "maxLen": 0}),
                "config.maxLen:",
            ),
            (
                json!({"url": "redis://h", "stream": "s", "maxLen": -1}),
                "config.maxLen:",
            ),
            (json!({"url": "redis://h", "stream": ""}), "config.stream:"),
            (
                json!({"url": "redis://h", "stream": "s", "field": ""}),
                "config.field:",
            ),
            (
                json!({"url": "redis://h", "stream": "s", "field": "origin_seq"}),
                "config.field:",
            ),
            (json!({"url": "http://h", "stream": "s"}), "config.url:"),
            (
                json!({"url": "rediss://h#insecure", "stream": "s"}),
                "config.url:",
            ),
        ] {
            let e = validate(&map(cfg.clone())).unwrap_err();
            assert!(e.starts_with(key), "{cfg}: {e}");
        }
        // A bad URL is named, redacted.
        let e = validate(&map(
            json!({"url": "redis://u:hunter2@h:xx", "stream": "s"}),
        ))
        .unwrap_err();
        assert!(
            e.starts_with("config.url:") && !e.contains("hunter2"),
            "{e}"
        );
        #[cfg(feature = "tls")]
        validate(&map(json!({"url": "rediss://h:6380", "stream": "s"}))).unwrap();
    }

    #[test]
    fn urls_with_credentials_are_redacted_in_errors() {
        assert_eq!(
            redacted_url("redis://user:pw@cache.local:6379/0"),
            "redis://***@cache.local:6379/0"
        );
        assert_eq!(redacted_url("redis://:pw@h"), "redis://***@h");
        assert_eq!(redacted_url("redis://h:1"), "redis://h:1");
        let rt = runtime();
        let url = format!("redis://admin:hunter2@127.0.0.1:{}", closed_port());
        let mut sink =
            build::<Record>(&map(json!({"url": url, "stream": "s"})), &env(&rt)).unwrap();
        let e = sink.start().unwrap_err();
        assert!(e.contains("redis://***@127.0.0.1:"), "{e}");
        assert!(!e.contains("hunter2") && !e.contains("admin"), "{e}");
        match sink.write(&item(1)) {
            Err(SinkError::Retryable(e)) => assert!(!e.contains("hunter2"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn xadd_writes_the_json_field_and_origin_fields() {
        let Some(redis) = RedisServer::start() else {
            eprintln!("skipping xadd_writes_the_json_field_and_origin_fields: no redis-server");
            return;
        };
        let rt = runtime();
        let cfg = json!({"url": redis.url(), "stream": "events", "field": "payload"});
        let mut sink = build::<Record>(&map(cfg), &env(&rt)).unwrap();
        sink.start().unwrap();
        sink.write(&item(7)).unwrap();
        sink.write(&record()).unwrap();
        let out = redis.cli(&["XRANGE", "events", "-", "+"]);
        let lines: Vec<&str> = out.lines().collect();
        // Entry 1: id, then payload, origin_feed, origin_seq pairs.
        assert_eq!(
            &lines[1..7],
            [
                "payload",
                "{\"n\":7}",
                "origin_feed",
                "prices",
                "origin_seq",
                "7"
            ],
            "{out}"
        );
        // Entry 2, a quarantine record: its JSON only, no origin fields.
        assert_eq!(lines.len(), 10, "{out}");
        assert_eq!(lines[8], "payload", "{out}");
        let rec: serde_json::Value = serde_json::from_str(lines[9]).unwrap();
        assert_eq!(rec["kind"], "decode_error");
        assert_eq!(rec["seq"], 9);
        sink.stop();
    }

    #[test]
    fn max_len_trims_the_stream_approximately() {
        let Some(redis) = RedisServer::start() else {
            eprintln!("skipping max_len_trims_the_stream_approximately: no redis-server");
            return;
        };
        // Small stream nodes, so `MAXLEN ~` (which trims whole nodes) trims close to 20.
        assert_eq!(
            redis.cli(&["CONFIG", "SET", "stream-node-max-entries", "10"]),
            "OK"
        );
        let rt = runtime();
        let cfg = json!({"url": redis.url(), "stream": "capped", "maxLen": 20});
        let mut sink = build::<Record>(&map(cfg), &env(&rt)).unwrap();
        sink.start().unwrap();
        for n in 0..300 {
            sink.write(&item(n)).unwrap();
        }
        let len: u64 = redis.cli(&["XLEN", "capped"]).parse().unwrap();
        assert!((20..=40).contains(&len), "XLEN {len}");
        // Without maxLen nothing is trimmed.
        let cfg = json!({"url": redis.url(), "stream": "full"});
        let mut sink = build::<Record>(&map(cfg), &env(&rt)).unwrap();
        for n in 0..50 {
            sink.write(&item(n)).unwrap();
        }
        assert_eq!(redis.cli(&["XLEN", "full"]), "50");
    }

    #[test]
    fn connection_errors_are_retryable_and_the_sink_reconnects() {
        let rt = runtime();
        let url = format!("redis://127.0.0.1:{}", closed_port());
        let mut sink =
            build::<Record>(&map(json!({"url": url, "stream": "s"})), &env(&rt)).unwrap();
        assert!(sink.start().is_err());
        assert!(matches!(sink.write(&item(1)), Err(SinkError::Retryable(_))));

        let Some(redis) = RedisServer::start() else {
            eprintln!("skipping the reconnect part: no redis-server");
            return;
        };
        let cfg = json!({"url": redis.url(), "stream": "s"});
        let mut sink = build::<Record>(&map(cfg), &env(&rt)).unwrap();
        sink.start().unwrap();
        sink.write(&item(1)).unwrap();
        redis.stop();
        match sink.write(&item(2)) {
            Err(SinkError::Retryable(e)) => assert!(e.contains("redis://127.0.0.1:"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(sink.write(&item(2)), Err(SinkError::Retryable(_))));
        redis.restart();
        sink.write(&item(2)).unwrap();
        assert_eq!(redis.cli(&["XLEN", "s"]), "1");
    }

    #[test]
    fn command_errors_are_permanent() {
        let Some(redis) = RedisServer::start() else {
            eprintln!("skipping command_errors_are_permanent: no redis-server");
            return;
        };
        assert_eq!(redis.cli(&["SET", "not-a-stream", "x"]), "OK");
        let rt = runtime();
        let cfg = json!({"url": redis.url(), "stream": "not-a-stream"});
        let mut sink = build::<Record>(&map(cfg), &env(&rt)).unwrap();
        sink.start().unwrap();
        match sink.write(&item(1)) {
            Err(SinkError::Permanent(e)) => assert!(e.contains("WRONGTYPE"), "{e}"),
            other => panic!("{other:?}"),
        }
        // Once the key is a stream again, the next item goes through.
        assert_eq!(redis.cli(&["DEL", "not-a-stream"]), "1");
        sink.write(&item(2)).unwrap();
        assert_eq!(redis.cli(&["XLEN", "not-a-stream"]), "1");
    }
}
