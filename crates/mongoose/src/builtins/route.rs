//! `route-by-field`: the field's value, as text, selects the sink; no route and no
//! `default` counts the event as unrouted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;

use super::filter::send_error;
use super::{key_text, parse_config};
use crate::event::{Envelope, JsonEvent};
use crate::processor::{Context, Processor, ProcessorError};
use crate::sink::SinkHandle;

/// `route-by-field` config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Field path.
    pub field: String,
    /// Value text -> sink.
    pub routes: BTreeMap<String, String>,
    /// Sink for everything else.
    #[serde(default)]
    pub default: Option<String>,
}

/// The `route-by-field` processor.
pub struct Route<E> {
    cfg: RouteConfig,
    sinks: BTreeMap<String, SinkHandle<E>>,
    default: Option<SinkHandle<E>>,
    /// Events with no route (`mongoose_processor_unrouted_total`).
    pub unrouted: Arc<AtomicU64>,
}

impl<E> Route<E> {
    /// From a `config` map.
    pub fn new(config: &crate::processor::ConfigMap) -> Result<Self, String> {
        Ok(Route {
            cfg: parse_config(config)?,
            sinks: BTreeMap::new(),
            default: None,
            unrouted: Arc::default(),
        })
    }
}

impl<E: JsonEvent> Processor<E> for Route<E> {
    fn init(&mut self, ctx: &mut Context<'_, E>) -> Result<(), String> {
        for (value, sink) in &self.cfg.routes {
            self.sinks
                .insert(value.clone(), ctx.sink(sink).map_err(|e| e.to_string())?);
        }
        if let Some(d) = &self.cfg.default {
            self.default = Some(ctx.sink(d).map_err(|e| e.to_string())?);
        }
        Ok(())
    }
    fn on_event(
        &mut self,
        env: &Envelope<E>,
        ctx: &mut Context<'_, E>,
    ) -> Result<(), ProcessorError> {
        let target = env
            .event()
            .field(&self.cfg.field)
            .and_then(|v| self.sinks.get(&key_text(v)))
            .or(self.default.as_ref());
        match target {
            Some(s) => {
                let name = s.name();
                let v = super::outgoing(ctx, env, env.event().clone())?;
                ctx.forward(s, v).map_err(|e| send_error(e, name))
            }
            None => {
                self.unrouted.fetch_add(1, Ordering::Relaxed);
                ctx.count_unrouted();
                Ok(())
            }
        }
    }
}
