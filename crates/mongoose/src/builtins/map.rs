//! `map`: forwards a new object holding projected fields (`fields: {out: path}`) to `to`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::filter::send_error;
use super::parse_config;
use crate::event::{Envelope, JsonEvent};
use crate::processor::{Context, Processor, ProcessorError};
use crate::sink::SinkHandle;

/// What to do with a missing path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Missing {
    /// Leave the output key out.
    #[default]
    Omit,
    /// Output null.
    Null,
    /// Fail the event (retried, then quarantined).
    Error,
}

/// `map` config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapConfig {
    /// Output key -> input path.
    pub fields: BTreeMap<String, String>,
    /// Missing paths.
    #[serde(default)]
    pub missing: Missing,
    /// Sink.
    pub to: String,
}

/// The `map` processor.
pub struct MapProc<E> {
    cfg: MapConfig,
    to: Option<SinkHandle<E>>,
}

impl<E> MapProc<E> {
    /// From a `config` map.
    pub fn new(config: &crate::processor::ConfigMap) -> Result<Self, String> {
        Ok(MapProc {
            cfg: parse_config(config)?,
            to: None,
        })
    }
}

impl<E: JsonEvent> Processor<E> for MapProc<E> {
    fn init(&mut self, ctx: &mut Context<'_, E>) -> Result<(), String> {
        self.to = Some(ctx.sink(&self.cfg.to).map_err(|e| e.to_string())?);
        Ok(())
    }
    fn on_event(
        &mut self,
        env: &Envelope<E>,
        ctx: &mut Context<'_, E>,
    ) -> Result<(), ProcessorError> {
        let mut out = Map::new();
        for (key, path) in &self.cfg.fields {
            match env.event().field(path) {
                Some(v) => {
                    out.insert(key.clone(), v.clone());
                }
                None => match self.cfg.missing {
                    Missing::Omit => {}
                    Missing::Null => {
                        out.insert(key.clone(), Value::Null);
                    }
                    Missing::Error => {
                        return Err(ProcessorError::new(format!("missing field {path}")));
                    }
                },
            }
        }
        let v = E::from_json(Value::Object(out)).map_err(ProcessorError::new)?;
        let v = super::outgoing(ctx, env, v)?;
        let sink = self.to.as_ref().expect("sink taken in init");
        ctx.forward(sink, v)
            .map_err(|e| send_error(e, &self.cfg.to))
    }
}
