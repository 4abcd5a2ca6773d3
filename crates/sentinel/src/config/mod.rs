//! Sentinel's configuration (spec §2): the typed model ([`model`]), the strict KDL loader,
//! environment overrides, the canonical printer and the resource checks of a full load.
//!
//! Three entry points, from pure to complete:
//! - [`parse_str`]: text → validated [`Config`] (no file access, no DNS): `--validate`,
//!   `--print-config`, tests;
//! - [`load`]: what the running proxy starts from and each SIGHUP rebuilds: read the file
//!   (or the built-in defaults), parse, apply env, read body/token files, check TLS pairs,
//!   resolve target hosts;
//! - [`test_config`]: `--test-config`, a [`load`] plus the writable-directory checks.
//!
//! What it is not for: binding, opening logs or building the runtime snapshot; those are
//! the runtime's.

pub mod model;

mod env;
mod error;
mod parse;
mod print;
mod reader;
mod resources;
mod route;
mod rules;
mod upstream;
mod validate;

use std::path::{Path, PathBuf};

pub use env::{ENV_AMNESIA, ENV_CONFIG, ENV_METRICS_ADDR, ENV_RUST_LOG, ENV_WORKERS, EnvOverrides};
pub use error::{ConfigError, ConfigErrors, MAX_ERROR_LINES, Pos};
pub use model::*;
pub use parse::REDACTED;
pub use print::print;
pub use resources::{
    MAX_RESOURCE_FILE_BYTES, RESOLVE_TIMEOUT, ResolvedTargets, load_certified_key,
};

/// The config path used when neither `--config` nor `SENTINEL_CONFIG` is given (relative
/// to the working directory).
pub const DEFAULT_CONFIG_PATH: &str = "config/sentinel.kdl";

/// Where the running config came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A file named by `--config` or `SENTINEL_CONFIG` (must exist), or the default path
    /// when it existed at load time.
    File(PathBuf),
    /// The default path was not given explicitly: load it when it exists, else run on the
    /// built-in defaults. Checked again at each load (SEN-R36 step 1).
    BuiltInDefaults {
        /// The default path (`config/sentinel.kdl`).
        default_path: PathBuf,
    },
}

impl ConfigSource {
    /// The path this source reads (the default path for `BuiltInDefaults`).
    pub fn path(&self) -> &Path {
        match self {
            ConfigSource::File(p) => p,
            ConfigSource::BuiltInDefaults { default_path } => default_path,
        }
    }
}

/// Something to log once logging is up: INFO `duplicate block merged` {block, overridden},
/// WARN `no configuration file at config/sentinel.kdl; using built-in defaults`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Log level.
    pub level: tracing::Level,
    /// Log message.
    pub message: String,
    /// Event fields, in order.
    pub fields: Vec<(String, String)>,
}

impl Note {
    fn new(level: tracing::Level, message: &str, fields: &[(&str, &str)]) -> Note {
        Note {
            level,
            message: message.to_owned(),
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    pub(crate) fn info(message: &str, fields: &[(&str, &str)]) -> Note {
        Note::new(tracing::Level::INFO, message, fields)
    }
}

impl std::fmt::Display for Note {
    /// `info: duplicate block merged block=limits overridden=max-total-connections`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            self.level.as_str().to_ascii_lowercase(),
            self.message
        )?;
        for (k, v) in &self.fields {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

/// What the runtime starts from (and what each SIGHUP reload rebuilds).
#[derive(Debug, Clone)]
pub struct Startup {
    /// The effective config (env applied, body and token files read).
    pub config: Config,
    /// Every target host resolved.
    pub resolved: ResolvedTargets,
    /// Where the config came from: `File(default_path)` when the default file existed,
    /// `BuiltInDefaults` when it did not.
    pub source: ConfigSource,
    /// Events to log once logging is up.
    pub notes: Vec<Note>,
    /// The env overrides that were applied.
    pub env: EnvOverrides,
}

/// Pure parse + validate of KDL text (no DNS, no file access): used by `--validate`,
/// `--print-config` and tests. `file` names the text in errors and anchors relative paths.
pub fn parse_str(text: &str, file: &Path) -> Result<(Config, Vec<Note>), ConfigErrors> {
    parse::parse(text, file, parse::Options::default()).map(|p| (p.config, p.notes))
}

/// Full load for running: read the file (or the built-in defaults when `source` is
/// `BuiltInDefaults` and the default path is absent), parse, validate, apply env, read
/// `body-file`/`token-file`, check that TLS cert/key pairs load and match, resolve target
/// hosts (system resolver, 2 s per name).
pub fn load(source: &ConfigSource, env: &EnvOverrides) -> Result<Startup, ConfigErrors> {
    load_with(source, env, false)
}

/// `--test-config`: [`load`] without env overrides, plus a check that the directories of
/// `pid-file`, `logging.file` and the access log exist or can be created and are writable.
pub fn test_config(file: &Path) -> Result<Startup, ConfigErrors> {
    load_with(
        &ConfigSource::File(file.to_path_buf()),
        &EnvOverrides::default(),
        true,
    )
}

/// Reads `file` and parses it; a missing or unreadable file is one error.
pub fn read_and_parse(file: &Path) -> Result<(Config, Vec<Note>), ConfigErrors> {
    let text = read_config(file)?;
    parse_str(&text, file)
}

/// The built-in defaults notice (SEN-R02), for callers that fall back to defaults.
pub fn defaults_note(default_path: &Path) -> Note {
    Note::new(
        tracing::Level::WARN,
        &format!(
            "no configuration file at {}; using built-in defaults",
            default_path.display()
        ),
        &[],
    )
}

fn read_config(file: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(file).map_err(|e| {
        ConfigErrors::one(ConfigError::file(
            file,
            format!("cannot read the config file: {e}"),
        ))
    })
}

fn load_with(
    source: &ConfigSource,
    env: &EnvOverrides,
    check_outputs: bool,
) -> Result<Startup, ConfigErrors> {
    let (file, used_source) = match source {
        ConfigSource::File(p) => (Some(p.clone()), source.clone()),
        ConfigSource::BuiltInDefaults { default_path } if default_path.exists() => (
            Some(default_path.clone()),
            ConfigSource::File(default_path.clone()),
        ),
        ConfigSource::BuiltInDefaults { .. } => (None, source.clone()),
    };
    let (mut parsed, file) = match file {
        Some(f) => {
            let text = read_config(&f)?;
            (parse::parse(&text, &f, parse::Options::default())?, f)
        }
        None => {
            let default_path = source.path().to_path_buf();
            let parsed = parse::Parsed {
                config: Config::default(),
                notes: vec![defaults_note(&default_path)],
                locs: parse::Locations::default(),
            };
            (parsed, default_path)
        }
    };
    env.apply(&mut parsed.config)?;
    let mut checker = resources::Checker {
        file: &file,
        errors: Vec::new(),
    };
    checker.read_files(&mut parsed.config, &parsed.locs);
    checker.check_tls(&parsed.config, &parsed.locs);
    let resolved = checker.resolve(&parsed.config, &parsed.locs);
    if check_outputs {
        checker.check_output_dirs(&parsed.config, &parsed.locs);
    }
    if !checker.errors.is_empty() {
        let mut errs = ConfigErrors(checker.errors);
        errs.sort();
        return Err(errs);
    }
    Ok(Startup {
        config: parsed.config,
        resolved,
        source: used_source,
        notes: parsed.notes,
        env: env.clone(),
    })
}

#[cfg(test)]
mod tests;
