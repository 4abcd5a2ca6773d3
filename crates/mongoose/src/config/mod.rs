//! The YAML server config (spec §2.3, MNG-R11): schema, parsing, `${env:}`/`${file:}`
//! substitution, env and flag layering, validation, the reload diff and `--print-config`.
//!
//! Flow in the binary: [`from_yaml_file`] → [`apply_overrides`] → [`validate`] (plus every
//! factory's own `validate`, which the registry runs on the `config` maps). Any error is one
//! line ([`ConfigError`]) and exit code 2. On SIGHUP the same steps run, then [`diff`] decides
//! between applying and rejecting.
//!
//! Not here: building anything from the config (the server does that), the type-specific
//! `config` maps' schemas (the registry's factories), and exit codes (the binary).
//! `serde-saphyr` is the only YAML parser (`serde_yaml`/`serde_yml` are forbidden), used only
//! through [`from_yaml_str`].

mod builder;
mod diff;
mod error;
mod layer;
mod policy;
mod print;
mod runtime;
mod schema;
mod subst;
mod validate;

use std::path::Path;

pub use builder::ServerConfigBuilder;
pub use diff::{Diff, diff};
pub use error::ConfigError;
pub use layer::{
    ENV_ADMIN_ADDR, ENV_ADMIN_TOKEN, ENV_CONFIG, ENV_DRAIN_DEADLINE_MS, ENV_LOG_TO, ENV_NAME,
    ENV_PINNING, Overrides, apply_overrides,
};
pub use policy::{
    AdminAddress, BackpressureConfig, DEFAULT_ADMIN_ADDRESS, DEFAULT_BACKOFF_MAX_PARK_NS,
    DEFAULT_BACKOFF_MAX_SPINS, DEFAULT_BACKOFF_MAX_YIELDS, DEFAULT_BACKOFF_MIN_PARK_NS,
    DEFAULT_MAX_WAIT_MS, DEFAULT_SLEEPING_MILLIS, DEFAULT_SLEEPING_NANOS, IdleStrategyConfig,
    LogTo, Pinning, PolicyConfig,
};
pub use print::{REDACTED, print_yaml, redact_userinfo, redacted};
pub use schema::*;
pub use subst::substitute;
pub use validate::{
    IO_RUNTIME_TYPES, KnownTypes, MAX_AGENT_NAME_LEN, MAX_NAME_LEN, MIN_TOKEN_LEN, STALE_INTERVALS,
    STALE_PARKS, TypeKind, validate, validate_all,
};

/// Largest accepted config file (spec §2.3).
pub const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;
/// Cap on events replayed through YAML aliases in one document (alias-bomb guard).
pub const MAX_ALIAS_REPLAYED_EVENTS: usize = 100_000;
/// Cap on alias nesting while replaying.
pub const MAX_ALIAS_DEPTH: usize = 16;
/// Cap on the number of alias uses in one document.
pub const MAX_ALIASES: usize = 1_000;
/// Cap on mapping/sequence nesting.
pub const MAX_DEPTH: usize = 32;

/// Parses one YAML document into a [`ServerConfig`], substituting `${env:NAME}` and
/// `${file:PATH}` in string values. `source` names the text in errors (usually the path).
///
/// Does not validate ranges or references: call [`validate`] after layering.
///
/// # Errors
/// [`ConfigError::Read`] when `text` is over [`MAX_CONFIG_BYTES`]; [`ConfigError::Parse`]
/// (with the line and key path) for YAML syntax, unknown keys, wrong types, exceeded alias or
/// depth budgets and failed substitutions.
pub fn from_yaml_str(text: &str, source: &str) -> Result<ServerConfig, ConfigError> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(too_large(source, text.len()));
    }
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_aliases: MAX_ALIASES,
            max_depth: MAX_DEPTH,
            max_documents: 1,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_ALIAS_REPLAYED_EVENTS,
            max_replay_stack_depth: MAX_ALIAS_DEPTH,
        },
        strict_booleans: true,
        with_snippet: false,
    };
    let mut path = String::new();
    serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            path = e.path().to_string();
            e.into_inner()
        })
    })
    .map_err(|e| error::from_saphyr(source, &path, &e))
}

/// Reads and parses a config file (at most [`MAX_CONFIG_BYTES`]); errors name the path.
///
/// # Errors
/// As [`from_yaml_str`], plus [`ConfigError::Read`] when the file cannot be read.
pub fn from_yaml_file(path: impl AsRef<Path>) -> Result<ServerConfig, ConfigError> {
    let path = path.as_ref();
    let source = path.display().to_string();
    let read_err = |e: std::io::Error| ConfigError::Read {
        file: source.clone(),
        reason: format!("cannot read config: {e}"),
    };
    let len = std::fs::metadata(path).map_err(read_err)?.len();
    if len > MAX_CONFIG_BYTES as u64 {
        return Err(too_large(
            &source,
            usize::try_from(len).unwrap_or(usize::MAX),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    from_yaml_str(&text, &source)
}

fn too_large(source: &str, len: usize) -> ConfigError {
    ConfigError::Read {
        file: source.to_owned(),
        reason: format!(
            "config is {len} bytes; the limit is {MAX_CONFIG_BYTES} (4 MiB): split out data or shrink it"
        ),
    }
}

#[cfg(test)]
mod tests;
