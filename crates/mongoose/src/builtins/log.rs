//! `log`: logs every Nth event (feed, seq, and the data or only the listed fields). The only
//! built-in that logs per event.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::parse_config;
use crate::event::{Envelope, Event, lookup};
use crate::processor::{Context, Processor, ProcessorError};

/// `log` config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogConfig {
    /// `error|warn|info|debug|trace`.
    #[serde(default = "default_level")]
    pub level: String,
    /// Log one event in this many.
    #[serde(default = "one")]
    pub every: u64,
    /// Only these field paths of the data (empty: all of it).
    #[serde(default)]
    pub fields: Vec<String>,
}

fn default_level() -> String {
    "info".into()
}
fn one() -> u64 {
    1
}

/// The `log` processor.
pub struct Log {
    cfg: LogConfig,
    n: u64,
}

impl Log {
    /// From a `config` map.
    pub fn new(config: &crate::processor::ConfigMap) -> Result<Self, String> {
        let cfg: LogConfig = parse_config(config)?;
        if cfg.every == 0 {
            return Err("config: every must be at least 1".into());
        }
        if !["error", "warn", "info", "debug", "trace"].contains(&cfg.level.as_str()) {
            return Err(format!(
                "config: level {:?} is not error|warn|info|debug|trace",
                cfg.level
            ));
        }
        Ok(Log { cfg, n: 0 })
    }
}

impl<E: Event> Processor<E> for Log {
    fn on_event(
        &mut self,
        env: &Envelope<E>,
        ctx: &mut Context<'_, E>,
    ) -> Result<(), ProcessorError> {
        self.n += 1;
        if !(self.n - 1).is_multiple_of(self.cfg.every) {
            return Ok(());
        }
        let data = env.event().to_json();
        let data = if self.cfg.fields.is_empty() {
            data
        } else {
            let mut m = Map::new();
            for f in &self.cfg.fields {
                m.insert(f.clone(), lookup(&data, f).cloned().unwrap_or(Value::Null));
            }
            Value::Object(m)
        };
        let data = if ctx.wraps(env) {
            serde_json::json!({"feed": env.feed(), "seq": env.seq(), "data": data})
        } else {
            data
        };
        let (feed, seq, name, data) = (env.feed(), env.seq(), ctx.name(), data.to_string());
        match self.cfg.level.as_str() {
            "error" => tracing::error!(processor = name, feed, seq, data, "event"),
            "warn" => tracing::warn!(processor = name, feed, seq, data, "event"),
            "debug" => tracing::debug!(processor = name, feed, seq, data, "event"),
            "trace" => tracing::trace!(processor = name, feed, seq, data, "event"),
            _ => tracing::info!(processor = name, feed, seq, data, "event"),
        }
        Ok(())
    }
}
