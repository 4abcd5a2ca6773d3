//! Built-in processors (MNG-R12): `log` (any event type) and the JSON ones, `filter`,
//! `map`, `count-by-key` and `route-by-field` (events implementing [`JsonEvent`]).
//!
//! Each reads its `config` map into its own `deny_unknown_fields` struct, so a misspelt key
//! is an error naming it, and takes its sink handles in `init` (handles cannot be looked up
//! later: MNG-R05).

pub mod count_by_key;
pub mod filter;
pub mod log;
pub mod map;
pub mod route;

use serde::de::DeserializeOwned;

use crate::processor::ConfigMap;

/// Reads a processor's `config` into `T`, naming the bad key on failure.
pub fn parse_config<T: DeserializeOwned>(config: &ConfigMap) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::Object(config.clone()))
        .map_err(|e| format!("config: {e}"))
}

/// What a built-in forwards for `v` derived from `env`: `v`, or `{"feed","seq","data"}`
/// when the source feed has `wrapWithNamedEvent`.
pub fn outgoing<E: crate::event::JsonEvent>(
    ctx: &crate::processor::Context<'_, E>,
    env: &crate::event::Envelope<E>,
    v: E,
) -> Result<E, crate::processor::ProcessorError> {
    if !ctx.wraps(env) {
        return Ok(v);
    }
    let named = serde_json::json!({"feed": env.feed(), "seq": env.seq(), "data": v.to_json()});
    E::from_json(named).map_err(crate::processor::ProcessorError::new)
}

/// The text of a JSON value as route keys and count keys use it: strings bare, the rest as
/// JSON.
pub fn key_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
