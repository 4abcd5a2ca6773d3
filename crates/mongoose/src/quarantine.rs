//! Quarantine (MNG-R25, §3.2): where poison events end up, with their metadata.
//!
//! There is always a quarantine: a bounded memory ring (default 1000 records), optionally
//! fronted by a configured sink. Delivery never blocks a group: if the sink's queue is
//! full, its breaker is open or it is closed, the record goes to the ring instead and the
//! fallback is counted and logged.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;
use serde_json::{Value, json};

/// Longest error text kept.
pub const MAX_ERROR_BYTES: usize = 1024;
/// Longest payload kept.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// Why an event was quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `on_event` kept returning `Err`.
    Error,
    /// `on_event` kept panicking.
    Panic,
    /// The retry store was full.
    RetryOverflow,
    /// The processor stopped (or the server shut down) with the retry pending.
    ProcessorStopped,
    /// A feed could not decode the input.
    DecodeError,
    /// A sink refused the item permanently.
    SinkRejected,
    /// Still queued at the drain deadline.
    ShutdownUndrained,
}

/// All kinds, for pre-registered metric series.
pub const KINDS: [Kind; 7] = [
    Kind::Error,
    Kind::Panic,
    Kind::RetryOverflow,
    Kind::ProcessorStopped,
    Kind::DecodeError,
    Kind::SinkRejected,
    Kind::ShutdownUndrained,
];

impl Kind {
    /// Label and record value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Error => "error",
            Kind::Panic => "panic",
            Kind::RetryOverflow => "retry_overflow",
            Kind::ProcessorStopped => "processor_stopped",
            Kind::DecodeError => "decode_error",
            Kind::SinkRejected => "sink_rejected",
            Kind::ShutdownUndrained => "shutdown_undrained",
        }
    }
}

/// One quarantine record; every key is always present in its JSON (null when unused).
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineRecord {
    /// When quarantined (ms).
    pub ts_ms: i64,
    /// When the first failure happened (ms).
    pub first_seen_ms: i64,
    /// Server name.
    pub server: String,
    /// Why.
    pub kind: Kind,
    /// Source feed.
    pub feed: Option<String>,
    /// Sequence number in the feed.
    pub seq: Option<u64>,
    /// Group.
    pub group: Option<String>,
    /// Processor.
    pub processor: Option<String>,
    /// Sink (sink rejections).
    pub sink: Option<String>,
    /// Failed attempts.
    pub attempts: Option<u32>,
    /// Last error (≤ 1 KiB).
    pub error: Option<String>,
    /// `Event::to_json` (≤ 64 KiB).
    pub payload: Value,
    /// Something was cut to its bound.
    pub truncated: bool,
}

/// RFC3339 UTC with milliseconds, from epoch milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    time_from_ms(ms).unwrap_or_default()
}

fn rfc3339(ms: i64) -> String {
    rfc3339_ms(ms)
}

fn time_from_ms(ms: i64) -> Option<String> {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    // Civil-from-days (Howard Hinnant's algorithm), to avoid a date dependency.
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    ))
}

/// Truncates to at most `max` bytes on a char boundary.
pub fn clip(s: &str, max: usize) -> (String, bool) {
    if s.len() <= max {
        return (s.to_string(), false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (s[..end].to_string(), true)
}

impl QuarantineRecord {
    /// The §3.2 JSON object.
    pub fn to_json(&self) -> Value {
        json!({
            "ts": rfc3339(self.ts_ms),
            "first_seen": rfc3339(self.first_seen_ms),
            "server": self.server,
            "kind": self.kind.as_str(),
            "feed": self.feed,
            "seq": self.seq,
            "group": self.group,
            "processor": self.processor,
            "sink": self.sink,
            "attempts": self.attempts,
            "error": self.error,
            "payload": self.payload,
            "truncated": self.truncated,
        })
    }

    /// Bounds `payload` to 64 KiB of JSON text (replaced by its clipped text).
    pub fn bound_payload(mut self) -> Self {
        let text = self.payload.to_string();
        if text.len() > MAX_PAYLOAD_BYTES {
            let (clipped, _) = clip(&text, MAX_PAYLOAD_BYTES);
            self.payload = Value::String(clipped);
            self.truncated = true;
        }
        if let Some(e) = &self.error {
            let (clipped, cut) = clip(e, MAX_ERROR_BYTES);
            self.error = Some(clipped);
            self.truncated |= cut;
        }
        self
    }
}

/// Wall-clock milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Hands a record to the configured quarantine sink without blocking; gives it back when
/// the sink cannot take it.
pub type RecordSink =
    Box<dyn Fn(Box<QuarantineRecord>) -> Result<(), Box<QuarantineRecord>> + Send + Sync>;

/// The memory ring plus counters by kind, and the configured sink once it started.
pub struct Quarantine {
    ring: ArrayQueue<QuarantineRecord>,
    counts: [AtomicU64; 7],
    sink: OnceLock<RecordSink>,
    /// Records that could not go to the configured sink.
    pub write_failures: AtomicU64,
}

impl Quarantine {
    /// A ring of `capacity` records.
    pub fn new(capacity: usize) -> Self {
        Quarantine {
            ring: ArrayQueue::new(capacity.max(1)),
            counts: Default::default(),
            sink: OnceLock::new(),
            write_failures: AtomicU64::new(0),
        }
    }

    /// Routes later records to `sink` (set once, when the quarantine sink has started).
    pub fn set_sink(&self, sink: RecordSink) {
        let _ = self.sink.set(sink);
    }

    /// Whether a quarantine sink is configured and started.
    pub fn has_sink(&self) -> bool {
        self.sink.get().is_some()
    }

    /// Counts `rec` and delivers it: to the sink when one is set and takes it, else to the
    /// ring (a failed sink hand-off counts a write failure and logs an ERROR).
    pub fn put(&self, rec: QuarantineRecord) {
        self.count(rec.kind);
        let rec = match self.sink.get() {
            None => rec,
            Some(send) => match send(Box::new(rec)) {
                Ok(()) => return,
                Err(rec) => *rec,
            },
        };
        if self.sink.get().is_some() {
            self.fallback(rec);
        } else {
            self.to_ring(rec);
        }
    }

    /// A record the quarantine sink took but could not write: into the ring, counted and
    /// logged with its metadata.
    pub fn fallback(&self, rec: QuarantineRecord) {
        self.write_failures.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            kind = rec.kind.as_str(),
            feed = rec.feed.as_deref(),
            seq = rec.seq,
            group = rec.group.as_deref(),
            processor = rec.processor.as_deref(),
            sink = rec.sink.as_deref(),
            "quarantine write failed; record kept in the memory ring"
        );
        self.to_ring(rec);
    }

    /// Records into the ring (evicting the oldest when full).
    pub fn to_ring(&self, r: QuarantineRecord) {
        self.ring.force_push(r);
    }

    /// Counts a record of `kind`.
    pub fn count(&self, kind: Kind) {
        self.counts[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Records quarantined of `kind`.
    pub fn total(&self, kind: Kind) -> u64 {
        self.counts[kind as usize].load(Ordering::Relaxed)
    }

    /// The last `n` records in the ring, oldest first (drained and put back).
    pub fn last(&self, n: usize) -> Vec<QuarantineRecord> {
        let mut all = Vec::with_capacity(self.ring.len());
        while let Some(r) = self.ring.pop() {
            all.push(r);
        }
        for r in &all {
            self.ring.force_push(r.clone());
        }
        let skip = all.len().saturating_sub(n);
        all.into_iter().skip(skip).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_render_every_key_and_bound_their_size() {
        let r = QuarantineRecord {
            ts_ms: 0,
            first_seen_ms: 86_400_000 + 3_723_004,
            server: "s".into(),
            kind: Kind::Error,
            feed: Some("f".into()),
            seq: Some(3),
            group: None,
            processor: Some("p".into()),
            sink: None,
            attempts: Some(3),
            error: Some("x".repeat(2000)),
            payload: Value::String("y".repeat(70_000)),
            truncated: false,
        }
        .bound_payload();
        let v = r.to_json();
        assert_eq!(v.as_object().unwrap().len(), 13);
        assert_eq!(v["ts"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["first_seen"], "1970-01-02T01:02:03.004Z");
        assert_eq!(v["group"], Value::Null);
        assert_eq!(v["truncated"], true);
        assert!(v["error"].as_str().unwrap().len() <= MAX_ERROR_BYTES);
        assert!(v["payload"].as_str().unwrap().len() <= MAX_PAYLOAD_BYTES);
    }
}
