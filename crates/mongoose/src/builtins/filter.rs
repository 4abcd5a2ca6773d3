//! `filter`: forwards events whose field matches to sink `to`. Numbers compare numerically,
//! strings lexically; mixed types never match.

use serde::Deserialize;
use serde_json::Value;

use super::parse_config;
use crate::event::{Envelope, JsonEvent};
use crate::processor::{Context, Processor, ProcessorError};
use crate::sink::{SinkHandle, SinkSendError};

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// Equal.
    Eq,
    /// Not equal (same type).
    Ne,
    /// Greater than.
    Gt,
    /// Greater or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less or equal.
    Le,
    /// The field is present.
    Exists,
    /// The field is absent.
    Missing,
    /// Equal to one of `value` (an array).
    In,
    /// String contains `value`, or array holds it.
    Contains,
    /// String starts with `value`.
    Prefix,
}

/// `filter` config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Field path.
    pub field: String,
    /// Operator.
    pub op: Op,
    /// Operand (unused by exists/missing; an array for `in`).
    #[serde(default)]
    pub value: Value,
    /// Sink for matching events.
    pub to: String,
}

/// Does `v` (the field, or None) satisfy `op value`?
pub fn matches(op: Op, v: Option<&Value>, value: &Value) -> bool {
    use std::cmp::Ordering::*;
    let cmp = |a: &Value, b: &Value| -> Option<std::cmp::Ordering> {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
            (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
            (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
            _ => None,
        }
    };
    match op {
        Op::Exists => v.is_some(),
        Op::Missing => v.is_none(),
        _ => {
            let Some(v) = v else { return false };
            match op {
                Op::Eq => cmp(v, value) == Some(Equal),
                Op::Ne => matches!(cmp(v, value), Some(Less | Greater)),
                Op::Gt => cmp(v, value) == Some(Greater),
                Op::Ge => matches!(cmp(v, value), Some(Greater | Equal)),
                Op::Lt => cmp(v, value) == Some(Less),
                Op::Le => matches!(cmp(v, value), Some(Less | Equal)),
                Op::In => value
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| cmp(v, x) == Some(Equal))),
                Op::Contains => match (v, value) {
                    (Value::String(s), Value::String(needle)) => s.contains(needle.as_str()),
                    (Value::Array(a), x) => a.iter().any(|e| cmp(e, x) == Some(Equal)),
                    _ => false,
                },
                Op::Prefix => {
                    matches!((v, value), (Value::String(s), Value::String(p)) if s.starts_with(p.as_str()))
                }
                Op::Exists | Op::Missing => unreachable!("handled above"),
            }
        }
    }
}

/// The `filter` processor.
pub struct Filter<E> {
    cfg: FilterConfig,
    to: Option<SinkHandle<E>>,
}

impl<E> Filter<E> {
    /// From a `config` map.
    pub fn new(config: &crate::processor::ConfigMap) -> Result<Self, String> {
        let cfg: FilterConfig = parse_config(config)?;
        if cfg.op == Op::In && !cfg.value.is_array() {
            return Err("config: value must be an array for op in".into());
        }
        Ok(Filter { cfg, to: None })
    }
}

/// Maps a full sink queue to a retryable processor error (the event is retried later).
pub fn send_error<E>(e: SinkSendError<E>, sink: &str) -> ProcessorError {
    match e {
        SinkSendError::Full(_) => ProcessorError::new(format!("sink {sink} is full")),
        SinkSendError::CircuitOpen(_) => ProcessorError::new(format!("sink {sink} circuit open")),
        SinkSendError::Closed(_) => ProcessorError::new(format!("sink {sink} closed")),
    }
}

impl<E: JsonEvent> Processor<E> for Filter<E> {
    fn init(&mut self, ctx: &mut Context<'_, E>) -> Result<(), String> {
        self.to = Some(ctx.sink(&self.cfg.to).map_err(|e| e.to_string())?);
        Ok(())
    }
    fn on_event(
        &mut self,
        env: &Envelope<E>,
        ctx: &mut Context<'_, E>,
    ) -> Result<(), ProcessorError> {
        if matches(
            self.cfg.op,
            env.event().field(&self.cfg.field),
            &self.cfg.value,
        ) {
            let sink = self.to.as_ref().expect("sink taken in init");
            let v = super::outgoing(ctx, env, env.event().clone())?;
            ctx.forward(sink, v)
                .map_err(|e| send_error(e, &self.cfg.to))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn comparisons_are_typed_and_mixed_types_never_match() {
        assert!(matches(Op::Gt, Some(&json!(10)), &json!(9.5)));
        assert!(
            !matches(Op::Gt, Some(&json!("10")), &json!(9)),
            "string vs number"
        );
        assert!(matches(Op::Lt, Some(&json!("abc")), &json!("abd")));
        assert!(matches(Op::In, Some(&json!("b")), &json!(["a", "b"])));
        assert!(matches(Op::Contains, Some(&json!("hello")), &json!("ell")));
        assert!(matches(Op::Prefix, Some(&json!("/api/x")), &json!("/api")));
        assert!(matches(Op::Missing, None, &Value::Null));
        assert!(
            !matches(Op::Ne, Some(&json!(1)), &json!("1")),
            "mixed types never match, ne included"
        );
    }
}
