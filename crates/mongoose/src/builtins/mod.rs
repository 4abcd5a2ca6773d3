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

/// Reads a feed's, sink's or processor's `config` into `T`. The error names the key
/// (`config.<path>: ...`), also for type errors, which plain serde_json reports without
/// the path.
pub fn parse_config<T: DeserializeOwned>(config: &ConfigMap) -> Result<T, String> {
    let value = serde_json::Value::Object(config.clone());
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            format!("config: {inner}")
        } else {
            format!("config.{path}: {inner}")
        }
    })
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
