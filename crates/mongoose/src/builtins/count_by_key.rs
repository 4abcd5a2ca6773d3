//! `count-by-key`: counts events per key in tumbling processing-time windows aligned to
//! epoch multiples of `windowMs`. A timer at each boundary emits
//! `{"window_start","window_end","key","count"}` per key (RFC3339 times) to `to`. Keys
//! beyond `maxKeys` count under `"__overflow__"`. `stop` emits the open window with
//! `"partial": true`.
//!
//! Extension beyond the spec's table (optional, off by default): `errorWhen: {field, op,
//! value}` (the `filter` predicate) also counts the events that match it per key, and each
//! record then carries `"errors"` and `"error_rate"` (errors / count), so per-route request
//! counts and error rates come from one processor and one window (ronctl's access-log stats).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::json;

use super::filter::{Op, matches, send_error};
use super::{key_text, parse_config};
use crate::event::{Envelope, JsonEvent};
use crate::processor::{Context, Processor, ProcessorError};
use crate::quarantine::rfc3339_ms;
use crate::sink::SinkHandle;

/// Key under which keys beyond `maxKeys` are counted.
pub const OVERFLOW_KEY: &str = "__overflow__";

/// `count-by-key` config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CountConfig {
    /// Field path of the key.
    pub key: String,
    /// Window length, 10..=86400000 ms.
    #[serde(default = "second")]
    pub window_ms: u64,
    /// Sink.
    pub to: String,
    /// Distinct keys tracked per window.
    #[serde(default = "max_keys")]
    pub max_keys: usize,
    /// Emit a `__empty__`-free record for windows with no events? (false: emit nothing).
    #[serde(default)]
    pub emit_empty: bool,
    /// Also count events matching this predicate (`errors`, `error_rate` in each record).
    #[serde(default)]
    pub error_when: Option<ErrorWhen>,
}

/// The `errorWhen` predicate: the `filter` processor's field, op and value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorWhen {
    /// Field path.
    pub field: String,
    /// Operator.
    pub op: Op,
    /// Operand.
    #[serde(default)]
    pub value: serde_json::Value,
}

fn second() -> u64 {
    1000
}
fn max_keys() -> usize {
    100_000
}

/// The `count-by-key` processor.
pub struct CountByKey<E> {
    cfg: CountConfig,
    to: Option<SinkHandle<E>>,
    /// Per key: (events, events matching `errorWhen`).
    counts: HashMap<String, (u64, u64)>,
    window_start: u64,
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl<E> CountByKey<E> {
    /// From a `config` map.
    pub fn new(config: &crate::processor::ConfigMap) -> Result<Self, String> {
        let cfg: CountConfig = parse_config(config)?;
        if !(10..=86_400_000).contains(&cfg.window_ms) {
            return Err("config: windowMs must be 10-86400000".into());
        }
        if cfg.max_keys == 0 {
            return Err("config: maxKeys must be at least 1".into());
        }
        Ok(CountByKey {
            cfg,
            to: None,
            counts: HashMap::new(),
            window_start: 0,
        })
    }
}

impl<E: JsonEvent> CountByKey<E> {
    fn arm(&mut self, ctx: &mut Context<'_, E>) -> Result<(), String> {
        let now = wall_ms();
        self.window_start = now - now % self.cfg.window_ms;
        let next = self.window_start + self.cfg.window_ms;
        ctx.schedule_after(Duration::from_millis(next - now), next)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn emit(
        &mut self,
        ctx: &mut Context<'_, E>,
        end: u64,
        partial: bool,
    ) -> Result<(), ProcessorError> {
        let sink = self.to.clone().expect("sink taken in init");
        let (start, end_s) = (rfc3339_ms(self.window_start as i64), rfc3339_ms(end as i64));
        if self.counts.is_empty() && self.cfg.emit_empty {
            let mut v =
                json!({"window_start": start, "window_end": end_s, "key": null, "count": 0});
            if partial {
                v["partial"] = json!(true);
            }
            let e = E::from_json(v).map_err(ProcessorError::new)?;
            ctx.forward(&sink, e)
                .map_err(|e| send_error(e, &self.cfg.to))?;
        }
        let mut keys: Vec<(String, (u64, u64))> = self.counts.drain().collect();
        keys.sort();
        for (key, (count, errors)) in keys {
            let mut v =
                json!({"window_start": start, "window_end": end_s, "key": key, "count": count});
            if self.cfg.error_when.is_some() {
                v["errors"] = json!(errors);
                v["error_rate"] = json!(errors as f64 / count.max(1) as f64);
            }
            if partial {
                v["partial"] = json!(true);
            }
            let e = E::from_json(v).map_err(ProcessorError::new)?;
            ctx.forward(&sink, e)
                .map_err(|e| send_error(e, &self.cfg.to))?;
        }
        Ok(())
    }
}

impl<E: JsonEvent> Processor<E> for CountByKey<E> {
    fn init(&mut self, ctx: &mut Context<'_, E>) -> Result<(), String> {
        self.to = Some(ctx.sink(&self.cfg.to).map_err(|e| e.to_string())?);
        Ok(())
    }
    fn start(&mut self, ctx: &mut Context<'_, E>) -> Result<(), String> {
        self.arm(ctx)
    }
    fn on_event(
        &mut self,
        env: &Envelope<E>,
        _ctx: &mut Context<'_, E>,
    ) -> Result<(), ProcessorError> {
        let key = env
            .event()
            .field(&self.cfg.key)
            .map(key_text)
            .unwrap_or_else(|| "null".into());
        let error = self
            .cfg
            .error_when
            .as_ref()
            .is_some_and(|w| matches(w.op, env.event().field(&w.field), &w.value));
        let slot = if let Some(c) = self.counts.get_mut(&key) {
            c
        } else if self.counts.len() < self.cfg.max_keys {
            self.counts.entry(key).or_insert((0, 0))
        } else {
            self.counts
                .entry(OVERFLOW_KEY.to_string())
                .or_insert((0, 0))
        };
        slot.0 += 1;
        slot.1 += u64::from(error);
        Ok(())
    }
    fn on_timer(&mut self, token: u64, ctx: &mut Context<'_, E>) -> Result<(), ProcessorError> {
        // The token is the boundary this timer closes.
        let out = self.emit(ctx, token, false);
        self.window_start = token;
        let now = wall_ms();
        let mut next = token + self.cfg.window_ms;
        while next <= now {
            next += self.cfg.window_ms;
        }
        ctx.schedule_after(Duration::from_millis(next - now), next)
            .map_err(|e| ProcessorError::new(e.to_string()))?;
        out
    }
    fn stop(&mut self, ctx: &mut Context<'_, E>) {
        let _ = self.emit(ctx, wall_ms(), true);
    }
}
