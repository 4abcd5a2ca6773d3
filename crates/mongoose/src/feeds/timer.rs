//! `timer` feed (MNG-R12, §4 "File and timer feeds"): a tick generator polled by the
//! `feeds` agent.
//!
//! - **Rate.** Every `intervalMs` (default 1000), or `ratePerSec` times a second; the two
//!   are mutually exclusive. Tick n (from 1) is due at `start + n × period`, where `start`
//!   is the first poll, so the rate does not drift with poll timing.
//! - **Falling behind.** When polls come late (a stalled agent), every missed tick is
//!   published at once; none is skipped. At most [`MAX_TICKS_PER_POLL`] go out per poll so
//!   the agent's other feeds keep running, and the next poll continues at once.
//! - **Payload.** By default `{"tick":n,"ts":RFC3339}`, where `ts` is the tick's scheduled
//!   wall time (so catch-up ticks keep distinct, truthful times); with `payload`, that JSON
//!   value on every tick.
//! - **Count.** Ticks stop after `count` (unbounded when absent).
//! - A rejected tick (`fail-fast`) is counted by the publisher and not retried: a generator
//!   has nothing to hold back.

use std::marker::PhantomData;
use std::time::Instant;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{LineOutcome, publish_one};
use crate::builtins::parse_config;
use crate::event::JsonEvent;
use crate::feed::{AgentFeed, DecodeError, FeedEnv, FeedOut, FeedRunner, RunsOn};
use crate::processor::ConfigMap;
use crate::quarantine::{now_ms, rfc3339_ms};

/// Where the feed runs: the `feeds` agent.
pub const RUNS_ON: RunsOn = RunsOn::Agent;
/// One generator publishes.
pub const MULTI_PRODUCER: bool = false;

/// Most ticks published in one poll while catching up.
pub const MAX_TICKS_PER_POLL: u64 = 4096;

/// Longest `intervalMs`: one day.
const MAX_INTERVAL_MS: u64 = 86_400_000;
/// Highest `ratePerSec`.
const MAX_RATE: f64 = 1_000_000.0;

/// `timer` feed config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TimerConfig {
    /// Period, 1..=86400000 ms (default 1000 when `ratePerSec` is absent).
    #[serde(default)]
    pub interval_ms: Option<u64>,
    /// Ticks per second, above 0 and at most 1000000.
    #[serde(default)]
    pub rate_per_sec: Option<f64>,
    /// Ticks in total, at least 1; unbounded when absent.
    #[serde(default)]
    pub count: Option<u64>,
    /// Published on every tick instead of `{"tick","ts"}`.
    #[serde(default)]
    pub payload: Option<Value>,
}

impl TimerConfig {
    /// The tick period in nanoseconds.
    pub fn period_ns(&self) -> u64 {
        match (self.interval_ms, self.rate_per_sec) {
            (_, Some(rate)) => ((1e9 / rate).round() as u64).max(1),
            (Some(ms), None) => ms * 1_000_000,
            (None, None) => 1_000_000_000,
        }
    }
}

/// Parses and range-checks a `timer` config.
pub fn parse(config: &ConfigMap) -> Result<TimerConfig, String> {
    let cfg: TimerConfig = parse_config(config)?;
    if cfg.interval_ms.is_some() && cfg.rate_per_sec.is_some() {
        return Err("config: intervalMs and ratePerSec are mutually exclusive".into());
    }
    if let Some(ms) = cfg.interval_ms
        && !(1..=MAX_INTERVAL_MS).contains(&ms)
    {
        return Err(format!("config: intervalMs must be 1-{MAX_INTERVAL_MS}"));
    }
    if let Some(rate) = cfg.rate_per_sec
        && !(rate.is_finite() && rate > 0.0 && rate <= MAX_RATE)
    {
        return Err("config: ratePerSec must be above 0 and at most 1000000".into());
    }
    if cfg.count == Some(0) {
        return Err("config: count must be at least 1".into());
    }
    Ok(cfg)
}

/// Checks a `timer` config.
pub fn validate(config: &ConfigMap) -> Result<(), String> {
    parse(config).map(|_| ())
}

/// Returns the agent-polled generator (nothing to connect; the payload must convert to
/// the event type).
pub fn build<E: JsonEvent>(config: &ConfigMap, _env: &FeedEnv) -> Result<FeedRunner<E>, String> {
    let cfg = parse(config)?;
    Ok(FeedRunner::Agent(Box::new(TimerFeed::<E>::new(&cfg)?)))
}

/// The `timer` feed's runner.
pub struct TimerFeed<E> {
    period_ns: u64,
    count: Option<u64>,
    /// The configured payload, converted once and cloned per tick.
    payload: Option<E>,
    /// First poll: monotonic and wall time.
    start: Option<(Instant, i64)>,
    fired: u64,
    stopped: bool,
    _event: PhantomData<fn() -> E>,
}

impl<E: JsonEvent> TimerFeed<E> {
    /// A generator per `cfg`.
    pub fn new(cfg: &TimerConfig) -> Result<Self, String> {
        let payload = match &cfg.payload {
            Some(v) => Some(E::from_json(v.clone()).map_err(|e| format!("config: payload: {e}"))?),
            None => None,
        };
        Ok(TimerFeed {
            period_ns: cfg.period_ns(),
            count: cfg.count,
            payload,
            start: None,
            fired: 0,
            stopped: false,
            _event: PhantomData,
        })
    }

    /// Ticks published so far.
    pub fn fired(&self) -> u64 {
        self.fired
    }

    /// One poll at time `now` (tests drive the clock): publishes every tick due by then.
    pub fn poll_at(&mut self, now: Instant, out: &mut FeedOut<E>) -> usize {
        if self.stopped {
            return 0;
        }
        let (start, wall_start) = *self.start.get_or_insert_with(|| (now, now_ms()));
        let elapsed = now.saturating_duration_since(start).as_nanos();
        let mut due = u64::try_from(elapsed / u128::from(self.period_ns)).unwrap_or(u64::MAX);
        if let Some(count) = self.count {
            due = due.min(count);
        }
        let todo = due.saturating_sub(self.fired).min(MAX_TICKS_PER_POLL);
        for _ in 0..todo {
            let n = self.fired + 1;
            self.fired = n;
            let event = match &self.payload {
                Some(p) => p.clone(),
                None => {
                    let at_ms = u128::from(n) * u128::from(self.period_ns) / 1_000_000;
                    let ts = wall_start.saturating_add(i64::try_from(at_ms).unwrap_or(i64::MAX));
                    match E::from_json(json!({"tick": n, "ts": rfc3339_ms(ts)})) {
                        Ok(e) => e,
                        Err(e) => {
                            out.decode_error(DecodeError::BadJson, "{\"tick\"}", &e);
                            continue;
                        }
                    }
                }
            };
            if publish_one(out, event) == LineOutcome::NotRunning {
                self.stopped = true;
                break;
            }
        }
        todo as usize
    }
}

impl<E: JsonEvent> AgentFeed<E> for TimerFeed<E> {
    fn poll(&mut self, out: &mut FeedOut<E>) -> usize {
        self.poll_at(Instant::now(), out)
    }

    fn stop(&mut self, _out: &mut FeedOut<E>) {
        self.stopped = true;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testkit::*;
    use super::*;
    use crate::event::Record;
    use crate::queue::Policy;

    fn timer(v: Value) -> TimerFeed<Record> {
        TimerFeed::new(&parse(&cfg(v)).unwrap()).unwrap()
    }

    #[test]
    fn config_validation() {
        let e = validate(&cfg(json!({"intervalMs": 5, "ratePerSec": 2.0}))).unwrap_err();
        assert!(e.contains("intervalMs") && e.contains("ratePerSec"), "{e}");
        let e = validate(&cfg(json!({"intervalMs": 0}))).unwrap_err();
        assert!(e.contains("intervalMs"), "{e}");
        let e = validate(&cfg(json!({"ratePerSec": 0.0}))).unwrap_err();
        assert!(e.contains("ratePerSec"), "{e}");
        let e = validate(&cfg(json!({"count": 0}))).unwrap_err();
        assert!(e.contains("count"), "{e}");
        let e = validate(&cfg(json!({"interval": 5}))).unwrap_err();
        assert!(e.contains("interval"), "{e}");
        assert_eq!(parse(&cfg(json!({}))).unwrap().period_ns(), 1_000_000_000);
        assert_eq!(
            parse(&cfg(json!({"ratePerSec": 4.0}))).unwrap().period_ns(),
            250_000_000
        );
        assert_eq!(
            parse(&cfg(json!({"intervalMs": 3}))).unwrap().period_ns(),
            3_000_000
        );
    }

    #[test]
    fn ticks_on_schedule_and_stop_after_count() {
        let mut t = timer(json!({"intervalMs": 10, "count": 3}));
        let (mut out, mut probe) = harness(false, 64, Policy::DropNewest);
        let t0 = Instant::now();
        assert_eq!(t.poll_at(t0, &mut out), 0);
        assert_eq!(t.poll_at(t0 + Duration::from_millis(9), &mut out), 0);
        assert_eq!(t.poll_at(t0 + Duration::from_millis(10), &mut out), 1);
        assert_eq!(t.poll_at(t0 + Duration::from_millis(25), &mut out), 1);
        assert_eq!(t.poll_at(t0 + Duration::from_secs(10), &mut out), 1);
        assert_eq!(t.poll_at(t0 + Duration::from_secs(20), &mut out), 0);
        let vals = probe.values();
        let ticks: Vec<u64> = vals.iter().map(|v| v["tick"].as_u64().unwrap()).collect();
        assert_eq!(ticks, vec![1, 2, 3]);
        assert_eq!(t.fired(), 3);
    }

    #[test]
    fn missed_ticks_are_published_at_once() {
        let mut t = timer(json!({"ratePerSec": 1000.0}));
        let (mut out, mut probe) = harness(false, 8192, Policy::DropNewest);
        let t0 = Instant::now();
        t.poll_at(t0, &mut out);
        // A 250 ms stall: 250 ticks due, all published by the next poll, in order.
        assert_eq!(t.poll_at(t0 + Duration::from_millis(250), &mut out), 250);
        let envs = probe.drain();
        assert_eq!(envs.len(), 250);
        for (i, e) in envs.iter().enumerate() {
            assert_eq!(e.seq(), i as u64 + 1);
            assert_eq!(e.event().value()["tick"], json!(i + 1));
        }
        // A longer stall is caught up in bounded steps, still skipping none.
        let later = t0 + Duration::from_secs(10);
        let mut total = 0;
        while total < 10_000 - 250 {
            let n = t.poll_at(later, &mut out);
            assert!(n as u64 <= MAX_TICKS_PER_POLL && n > 0);
            total += n;
            probe.drain();
        }
        assert_eq!(t.fired(), 10_000);
    }

    #[test]
    fn default_payload_shape_and_custom_payload() {
        let mut t = timer(json!({"intervalMs": 1000}));
        let (mut out, mut probe) = harness(false, 8, Policy::DropNewest);
        let t0 = Instant::now();
        t.poll_at(t0, &mut out);
        t.poll_at(t0 + Duration::from_secs(2), &mut out);
        let vals = probe.values();
        assert_eq!(vals.len(), 2);
        let obj = vals[0].as_object().unwrap();
        assert_eq!(obj.len(), 2);
        assert_eq!(obj["tick"], json!(1));
        let ts = obj["ts"].as_str().unwrap();
        // RFC3339 UTC with milliseconds, e.g. 2024-01-02T03:04:05.678Z.
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(ts.ends_with('Z') && &ts[10..11] == "T", "{ts}");
        assert_ne!(vals[0]["ts"], vals[1]["ts"]);

        let mut t = timer(json!({"intervalMs": 1, "payload": {"k": [1, 2]}}));
        t.poll_at(t0, &mut out);
        t.poll_at(t0 + Duration::from_millis(2), &mut out);
        assert_eq!(probe.values(), vec![json!({"k": [1, 2]}); 2]);
    }

    #[test]
    fn stops_publishing_once_the_server_closes() {
        let mut t = timer(json!({"intervalMs": 1}));
        let (mut out, mut probe) = harness(false, 64, Policy::DropNewest);
        let t0 = Instant::now();
        t.poll_at(t0, &mut out);
        probe.phase.store(
            crate::publish::PHASE_CLOSED,
            std::sync::atomic::Ordering::Release,
        );
        t.poll_at(t0 + Duration::from_millis(5), &mut out);
        assert_eq!(t.poll_at(t0 + Duration::from_millis(50), &mut out), 0);
        assert!(probe.values().is_empty());
    }
}
