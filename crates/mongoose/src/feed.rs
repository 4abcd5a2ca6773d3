//! Feeds other than `memory` (MNG-R07, R12, R19 step 7): how a built-in or user feed type
//! is connected at startup and then run.
//!
//! A feed type's factory gets its `config` and a [`FeedEnv`] and must *connect* before it
//! returns (bind the listener, open the file, reach Redis): a critical feed that cannot
//! connect within `startup.connectTimeoutMs` fails startup with the factory's error. A
//! non-critical feed returns a runner that keeps reconnecting on its own, with the backoff
//! of [`reconnect_backoff`], and reports `connected` through [`FeedOut::set_connected`].
//!
//! Where a runner runs (spec decision 13): [`FeedRunner::Agent`] is polled by the `feeds`
//! agent thread (`file`, `timer`); [`FeedRunner::Thread`] gets its own thread (`stdin`,
//! whose reads block); [`FeedRunner::Io`] is a task on the server's tokio runtime (`tcp`,
//! `http`, `redis-stream`). Every runner gets a [`FeedOut`] when the server reaches
//! `start_complete` (publishes before that would be `NotStarted`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::event::Event;
use crate::processor::ConfigMap;
use crate::publish::{FeedShared, Publisher};
use crate::quarantine::{Kind, Quarantine, QuarantineRecord, clip, now_ms};

/// Longest raw text kept in a `decode_error` quarantine record.
pub const DECODE_ERROR_KEEP_BYTES: usize = 1024;

/// Why a line or entry could not become an event (`mongoose_feed_decode_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Not JSON.
    BadJson = 0,
    /// Over `maxLineBytes` / `maxBodyBytes`.
    TooLong = 1,
    /// Not UTF-8 (text format replaces lossily and counts it).
    Utf8 = 2,
    /// A redis entry without the configured field.
    MissingField = 3,
}

/// Every decode error reason, in label order.
pub const DECODE_ERRORS: [DecodeError; 4] = [
    DecodeError::BadJson,
    DecodeError::TooLong,
    DecodeError::Utf8,
    DecodeError::MissingField,
];

impl DecodeError {
    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeError::BadJson => "bad_json",
            DecodeError::TooLong => "too_long",
            DecodeError::Utf8 => "utf8",
            DecodeError::MissingField => "missing_field",
        }
    }
}

/// What a feed factory may use while connecting.
#[derive(Clone)]
pub struct FeedEnv {
    /// The feed's name.
    pub name: &'static str,
    /// The server's name (the default redis consumer name).
    pub server: &'static str,
    /// Whether a failure to connect fails startup.
    pub critical: bool,
    /// `startup.connectTimeoutMs`.
    pub connect_timeout: Duration,
    /// The server's I/O runtime, for `Io` feeds to bind or connect on.
    pub io: tokio::runtime::Handle,
}

/// A feed that the `feeds` agent polls; `poll` must not block.
pub trait AgentFeed<E: Event>: Send {
    /// Does the available work (reads lines, fires due ticks); returns how much, 0 when
    /// idle, so the agent's idle strategy can back off.
    fn poll(&mut self, out: &mut FeedOut<E>) -> usize;
    /// Called once when the feed stops.
    fn stop(&mut self, _out: &mut FeedOut<E>) {}
}

/// A boxed future run on the I/O runtime.
pub type IoTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How a connected feed runs.
pub enum FeedRunner<E: Event> {
    /// Polled by the `feeds` agent.
    Agent(Box<dyn AgentFeed<E>>),
    /// Runs on its own thread until `out.stop` is cancelled or its input ends.
    Thread(Box<dyn FnOnce(FeedOut<E>) + Send>),
    /// A task on the I/O runtime; it must return soon after `out.stop` is cancelled.
    Io(Box<dyn FnOnce(FeedOut<E>) -> IoTask + Send>),
}

/// Connects a feed type; see the module docs.
pub type BuildFeed<E> =
    Arc<dyn Fn(&ConfigMap, &FeedEnv) -> Result<FeedRunner<E>, String> + Send + Sync>;

/// Where a feed type runs (for validation: `agentName` is rejected on I/O-runtime types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunsOn {
    /// The publisher's own thread (`memory`).
    Caller,
    /// A feeds agent.
    Agent,
    /// Its own thread.
    Thread,
    /// The I/O runtime.
    Io,
}

/// What a running feed publishes through and reports to.
pub struct FeedOut<E: Event> {
    /// Publishes onto the feed's subscriptions.
    pub publisher: Publisher<E>,
    /// The feed's counters (connected, decode errors, acks).
    pub shared: Arc<FeedShared>,
    /// Where undecodable input goes.
    pub quarantine: Arc<Quarantine>,
    /// The server's name.
    pub server: &'static str,
    /// Cancelled when the feed must stop (shutdown step 2).
    pub stop: CancellationToken,
    /// Asks the server to shut down (`stdin` with `exitOnEof`).
    pub request_shutdown: Arc<dyn Fn() + Send + Sync>,
    /// The feed's subscriptions (their watermarks tell an acknowledging feed what its
    /// groups have processed).
    pub subs: Vec<Arc<crate::queue::SubShared>>,
}

impl<E: Event> FeedOut<E> {
    /// The feed's name.
    pub fn name(&self) -> &'static str {
        self.shared.name
    }

    /// Whether the feed must stop.
    pub fn stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Records a connection change, logging `feed_connected` / `feed_disconnected` on
    /// transitions only.
    pub fn set_connected(&self, up: bool, error: Option<&str>) {
        let was = self.shared.connected.swap(up, Ordering::AcqRel);
        if was == up {
            return;
        }
        if up {
            tracing::info!(feed = self.shared.name, "feed_connected");
        } else {
            tracing::warn!(
                feed = self.shared.name,
                error = error.unwrap_or(""),
                "feed_disconnected"
            );
        }
    }

    /// Counts a decode error and quarantines the first KiB of the raw input as
    /// `decode_error`.
    pub fn decode_error(&self, reason: DecodeError, raw: &str, error: &str) {
        self.shared.decode_errors[reason as usize].fetch_add(1, Ordering::Relaxed);
        let (kept, cut) = clip(raw, DECODE_ERROR_KEEP_BYTES);
        let now = now_ms();
        self.quarantine.put(QuarantineRecord {
            ts_ms: now,
            first_seen_ms: now,
            server: self.server.to_string(),
            kind: Kind::DecodeError,
            feed: Some(self.shared.name.to_string()),
            seq: None,
            group: None,
            processor: None,
            sink: None,
            attempts: None,
            error: Some(format!("{}: {error}", reason.as_str())),
            payload: serde_json::Value::String(kept),
            truncated: cut,
        });
    }

    /// The highest seq every live subscription has processed (MNG-R32 step 6); `None` while
    /// there is no live subscription, in which case every publish was unrouted.
    pub fn processed_through(&self) -> Option<u64> {
        processed_through(&self.subs)
    }

    /// Counts a decode error that keeps no record (lossy UTF-8 replacement).
    pub fn count_decode_error(&self, reason: DecodeError) {
        self.shared.decode_errors[reason as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// The lowest watermark of the live (not detached) subscriptions in `subs`.
pub fn processed_through(subs: &[Arc<crate::queue::SubShared>]) -> Option<u64> {
    subs.iter()
        .filter(|s| s.state.load(Ordering::Acquire) != crate::queue::DETACHED)
        .map(|s| s.watermark.load(Ordering::Acquire))
        .min()
}

/// The reconnect delay after `failures` consecutive failures: 100 ms doubling to 30 s.
pub fn reconnect_backoff(failures: u32) -> Duration {
    let ms = 100u64.saturating_mul(1u64 << failures.min(16));
    Duration::from_millis(ms.min(30_000))
}

/// The `feeds` agent: polls every agent-hosted feed each duty cycle until `stop`, then
/// calls each feed's `stop`.
pub fn spawn_agent<E: Event>(
    mut feeds: Vec<(Box<dyn AgentFeed<E>>, FeedOut<E>)>,
    placement: &crate::server::AgentPlacement,
    stats: Arc<crate::group::AgentStats>,
    stop: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let (name, idle, core) = (placement.agent.clone(), placement.idle, placement.core);
    std::thread::Builder::new()
        .name(name.chars().take(15).collect())
        .spawn(move || {
            crate::idle::pin_current(&name, core, &stats.core);
            let mut idler = crate::idle::Idler::new(idle);
            let mut failed = vec![false; feeds.len()];
            while !stop.is_cancelled() {
                let mut work = 0usize;
                for ((f, out), failed) in feeds.iter_mut().zip(failed.iter_mut()) {
                    if *failed {
                        continue;
                    }
                    // A panicking feed must not take the other feeds on this thread down
                    // (MNG-R20): it is marked failed and no longer polled.
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.poll(out))) {
                        Ok(n) => work += n,
                        Err(_) => {
                            *failed = true;
                            tracing::error!(feed = out.name(), "feed panicked; marked failed");
                            out.set_connected(false, Some("panicked"));
                        }
                    }
                }
                // Single writer: plain store, no locked add.
                stats.duty_cycles.store(
                    stats.duty_cycles.load(Ordering::Relaxed) + 1,
                    Ordering::Relaxed,
                );
                if work == 0 {
                    stats.idle_cycles.store(
                        stats.idle_cycles.load(Ordering::Relaxed) + 1,
                        Ordering::Relaxed,
                    );
                }
                idler.idle(work, &stats.state);
            }
            for (f, out) in feeds.iter_mut() {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.stop(out)));
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_backoff_doubles_from_100ms_to_30s() {
        assert_eq!(reconnect_backoff(0), Duration::from_millis(100));
        assert_eq!(reconnect_backoff(1), Duration::from_millis(200));
        assert_eq!(reconnect_backoff(8), Duration::from_millis(25_600));
        assert_eq!(reconnect_backoff(9), Duration::from_secs(30));
        assert_eq!(reconnect_backoff(200), Duration::from_secs(30));
    }
}
