//! rustchat's configuration (spec §2.1-2.3, §4.14): schema, defaults, environment
//! spellings, validation, secrets and SIGHUP reload.
//!
//! Layering is ron-kernel's loader: defaults < TOML file (`--config` or
//! `RUSTCHAT_CONFIG`) < `.env` (working directory or `--env-file`; never overrides the
//! process environment) < process environment < `--host`/`--port`. This module adds the
//! rustchat rules on top: the single-underscore spellings, ignored Kubernetes variables,
//! unknown-variable errors with suggestions, the typed [`Config`] and its validation, and
//! error lines of the form `config error: <key or VAR> = <value>: <reason>` with secrets
//! and URL passwords redacted.
//!
//! Loading only reads files; it never creates the data directory, the SQLite file or the
//! development key (`--check-config` relies on that). Probing the database, Redis, the
//! data directory and OIDC discovery is the caller's job.

mod env;
mod model;
mod raw;
mod reload;
mod secrets;
mod validate;

use std::fmt;
use std::path::PathBuf;

use ron_kernel::config::{ConfigErrorKind, ConfigLoader};

pub use env::{
    ENV_CONFIG, ENV_PREFIX, ENV_TEST_PREFIX, PROVIDER_FIELDS, SECTIONS, canonical_var,
    is_ignored_env, is_service_link, single_underscore_var,
};
pub use model::*;
pub use reload::{RELOADABLE_KEYS, is_reloadable, reloadable_keys};
pub use ron_kernel::config::EXIT_CONFIG;
pub use secrets::{
    DEV_ENCRYPTION_KEY_FILE, DEV_KEY_BYTES, MIN_SECRET_BYTES, MIN_SECRET_ENTROPY_BITS, REDACTED,
    SecretString, WEAK_SECRET_WORDS, dev_jwt_secret, entropy_bits, key_material,
    load_or_create_dev_encryption_key, redact_url, redact_urls_in, secret_weaknesses,
};
pub use validate::{PG_TEXT_SEARCH_CONFIGS, provider_from_json};

use env::EnvSpellings;
use raw::RawConfig;

/// Where to load the configuration from.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--config FILE`; when `None`, `RUSTCHAT_CONFIG` in `env` names the file, if set.
    pub config_file: Option<PathBuf>,
    /// `--env-file FILE` (must exist); when `None`, `<cwd>/.env` is read if present.
    pub env_file: Option<PathBuf>,
    /// `--host IP`.
    pub host: Option<String>,
    /// `--port N`.
    pub port: Option<String>,
    /// The process environment (tests pass their own).
    pub env: Vec<(String, String)>,
    /// Where `.env` is looked for when `env_file` is `None`.
    pub cwd: PathBuf,
}

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Things that work but deserve a WARN line (and a `warn` line in `--check-config`).
    pub warnings: Vec<ConfigWarning>,
    /// `RUSTCHAT_*` variables ignored as Kubernetes service links or test variables, for
    /// a debug line.
    pub ignored_env: Vec<String>,
}

/// The result of [`reload`].
#[derive(Debug, Clone)]
pub struct ReloadResult {
    /// The running config with every reloadable key taken from the re-read sources.
    pub config: Config,
    /// Warnings of the re-read configuration.
    pub warnings: Vec<ConfigWarning>,
    /// Reloadable keys whose value changed (now in `config`).
    pub applied: Vec<String>,
    /// Changed keys that only a restart applies (kept at their running value); log
    /// WARN `config reload: restart required` when not empty.
    pub restart_required: Vec<String>,
}

/// Something that works but deserves the operator's attention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The key concerned (`site_url`, `jwt_secret`, …).
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// Everything wrong with a configuration (at least one problem).
///
/// Display is one line: `config error: <first problem>`, plus a count of the others;
/// [`ConfigError::problems`] lists them all for `--check-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    problems: Vec<ConfigProblem>,
}

/// One configuration mistake; Display is `<key or VAR> = <value>: <reason> (<where>)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// What kind of mistake it is.
    pub kind: ConfigErrorKind,
    /// The dotted key (`server.port`), or the variable name for an unknown variable.
    pub key: String,
    /// The environment variable that set the value, if one did.
    pub var: Option<String>,
    /// The value as written, already redacted (`***` for secrets and URL passwords);
    /// `None` when unset.
    pub value: Option<String>,
    /// `FILE:LINE` (TOML file or `.env`) or `flag --port`, when known.
    pub location: Option<String>,
    /// What was expected and what to do.
    pub reason: String,
}

impl LoadOptions {
    /// Options for the running process: its environment and working directory.
    pub fn from_process(
        config_file: Option<PathBuf>,
        env_file: Option<PathBuf>,
        host: Option<String>,
        port: Option<String>,
    ) -> Self {
        Self {
            config_file,
            env_file,
            host,
            port,
            env: std::env::vars_os()
                .filter_map(|(k, v)| {
                    Some((k.into_string().ok()?, v.to_string_lossy().into_owned()))
                })
                .collect(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        }
    }

    /// The TOML file to read: `--config`, else `RUSTCHAT_CONFIG` when set and not empty.
    pub fn config_path(&self) -> Option<PathBuf> {
        self.config_file.clone().or_else(|| {
            self.env
                .iter()
                .find(|(name, value)| name == ENV_CONFIG && !value.is_empty())
                .map(|(_, value)| PathBuf::from(value))
        })
    }

    /// The dotenv file to read: `--env-file`, else `<cwd>/.env`.
    pub fn dotenv_path(&self) -> PathBuf {
        self.env_file
            .clone()
            .unwrap_or_else(|| self.cwd.join(".env"))
    }

    fn env_var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Loads and validates every layer. Never creates files.
pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    load_with_node_id(opts, &|| default_node_id(opts))
}

/// Every settable key (dotted) except the per-provider `oauth.providers.<name>.<field>`
/// ones, sorted.
pub fn config_keys() -> Vec<String> {
    EnvSpellings::new().keys().map(str::to_owned).collect()
}

/// Re-reads every layer for SIGHUP. An invalid result is an error (keep `current`);
/// otherwise the reloadable keys are taken from it and the other changed keys are
/// listed in [`ReloadResult::restart_required`].
pub fn reload(opts: &LoadOptions, current: &Config) -> Result<ReloadResult, ConfigError> {
    // An unset node id would otherwise be drawn anew and look like a change.
    let loaded = load_with_node_id(opts, &|| current.cluster.node_id.clone())?;
    let (applied, restart_required) = current
        .changed_keys(&loaded.config)
        .into_iter()
        .partition(|key| is_reloadable(key));
    let mut config = current.clone();
    config.apply_reloadable(&loaded.config);
    Ok(ReloadResult {
        config,
        warnings: loaded.warnings,
        applied,
        restart_required,
    })
}

fn load_with_node_id(
    opts: &LoadOptions,
    node_id: &dyn Fn() -> String,
) -> Result<Loaded, ConfigError> {
    if let Some(path) = &opts.env_file
        && !path.is_file()
    {
        return Err(ConfigError::from(ConfigProblem {
            kind: ConfigErrorKind::Io,
            key: "--env-file".to_owned(),
            var: None,
            value: Some(path.display().to_string()),
            location: None,
            reason: "no such file; check the path".to_owned(),
        }));
    }
    let spellings = EnvSpellings::new();
    let mut loader = ConfigLoader::<RawConfig>::new(ENV_PREFIX)
        .defaults(RawConfig::default())
        .dotenv(opts.dotenv_path())
        .env_from(opts.env.clone())
        .ignore_env(is_ignored_env)
        .secret("jwt_secret")
        .secret("encryption_key")
        .secret("oauth.providers.*.client_secret");
    if let Some(file) = opts.config_path() {
        loader = loader.file(file);
    }
    for (var, key) in spellings.aliases() {
        loader = loader.env_alias(var, key);
    }
    let check = spellings.clone();
    loader = loader.check_env_key(move |var, key| check.check(var, key));
    let flags = [
        ("server.host", &opts.host, "--host"),
        ("server.port", &opts.port, "--port"),
    ];
    loader = loader.cli(
        flags
            .into_iter()
            .filter_map(|(key, value, flag)| value.clone().map(|v| (key, v, flag))),
    );
    let loaded = loader.load().map_err(ConfigError::from_kernel)?;
    let built = validate::build(&loaded.value, node_id);
    let Some(config) = built.config else {
        // Unreachable in practice: the loader ran the same checks as `validate()`.
        return Err(ConfigError::from_pairs(built.problems));
    };
    Ok(Loaded {
        config,
        warnings: built.warnings,
        ignored_env: loaded
            .ignored_env()
            .iter()
            .filter(|name| *name != ENV_CONFIG)
            .cloned()
            .collect(),
    })
}

/// `<hostname>-<6 random [a-z0-9]>`: unique per process even when several share a host
/// (containers with one hostname, two nodes on one machine).
fn default_node_id(opts: &LoadOptions) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let host = opts
        .env_var("HOSTNAME")
        .map(str::to_owned)
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_default();
    let mut host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(57)
        .collect();
    if host.is_empty() {
        host = "rustchat".to_owned();
    }
    let mut rng = rand::rng();
    let suffix: String = (0..6)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("{host}-{suffix}")
}

impl ConfigError {
    /// Every problem, in the order found.
    pub fn problems(&self) -> &[ConfigProblem] {
        &self.problems
    }

    /// The first problem (the one Display shows).
    pub fn first(&self) -> &ConfigProblem {
        &self.problems[0]
    }

    /// Exit status for a bad configuration at start (`--check-config` exits 1 instead).
    pub fn exit_code(&self) -> i32 {
        EXIT_CONFIG
    }

    fn from_kernel(err: ron_kernel::config::ConfigError) -> Self {
        Self {
            problems: err
                .problems()
                .iter()
                .map(ConfigProblem::from_kernel)
                .collect(),
        }
    }

    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self {
            problems: pairs
                .into_iter()
                .map(|(key, reason)| ConfigProblem {
                    kind: ConfigErrorKind::Invalid,
                    key,
                    var: None,
                    value: None,
                    location: None,
                    reason,
                })
                .collect(),
        }
    }
}

impl From<ConfigProblem> for ConfigError {
    fn from(problem: ConfigProblem) -> Self {
        Self {
            problems: vec![problem],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = format!("config error: {}", self.first());
        f.write_str(&line.replace(['\n', '\r'], " "))?;
        match self.problems.len() {
            1 => Ok(()),
            2 => f.write_str(" (and 1 more problem; --check-config lists all)"),
            n => write!(
                f,
                " (and {} more problems; --check-config lists all)",
                n - 1
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigProblem {
    /// The name shown first: the variable that set the value, else the key.
    pub fn name(&self) -> &str {
        self.var.as_deref().unwrap_or(&self.key)
    }

    fn from_kernel(p: &ron_kernel::config::ConfigProblem) -> Self {
        let (mut var, mut location) = split_source(&p.source);
        let mut key = p.key.clone();
        let mut raw = p.value.clone();
        if raw.as_deref() == Some(TABLE_VALUE)
            && let Some((parent, name)) = p.key.rsplit_once('.')
        {
            // A problem with a table's name (`oauth.providers.<name>`): the name is the value.
            raw = Some(name.to_owned());
            key = parent.to_owned();
        }
        if raw.is_none() || key != p.key {
            // The source is that of the nearest enclosing table: its file line helps, but
            // the variable that happened to create the table did not set this key.
            if var.take().is_some() {
                location = None;
            }
        }
        let secret = p.secret || (p.kind == ConfigErrorKind::UnknownKey && looks_secret(&p.key));
        let value = match raw {
            Some(v) if v == "null" && p.source == "default" => None,
            None => None,
            Some(_) if secret => Some(REDACTED.to_owned()),
            Some(v) => Some(redact_urls_in(&v)),
        };
        let mut reason = redact_urls_in(&p.why.replace(ron_kernel::config::REDACTED, REDACTED))
            .replace("expected i64", "expected an integer");
        if secret && let Some(raw) = p.value.as_deref().filter(|v| !v.is_empty()) {
            reason = reason.replace(raw, REDACTED);
        }
        Self {
            kind: p.kind,
            key,
            var,
            value,
            location,
            reason,
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = ", self.name())?;
        match &self.value {
            Some(v) if v == REDACTED => f.write_str(REDACTED)?,
            Some(v) => write!(f, "{v:?}")?,
            None => f.write_str("<unset>")?,
        }
        write!(f, ": {}", self.reason)?;
        let mut detail = Vec::new();
        if self.var.as_deref().is_some_and(|var| var != self.key) {
            detail.push(self.key.as_str());
        }
        if let Some(location) = &self.location {
            detail.push(location);
        }
        if !detail.is_empty() {
            write!(f, " ({})", detail.join(", "))?;
        }
        Ok(())
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// How ron-kernel renders a table value.
const TABLE_VALUE: &str = "{…}";

/// Splits a ron-kernel source (`env VAR`, `env VAR from FILE:LINE`, `FILE:LINE`,
/// `flag --x`, `default`, `loader`) into the variable and the location.
fn split_source(source: &str) -> (Option<String>, Option<String>) {
    if let Some(env) = source.strip_prefix("env ") {
        return match env.split_once(" from ") {
            Some((var, at)) => (Some(var.to_owned()), Some(at.to_owned())),
            None => (Some(env.to_owned()), None),
        };
    }
    match source {
        "default" | "loader" => (None, None),
        other => (None, Some(other.to_owned())),
    }
}

/// Whether an unknown variable's name suggests it holds a secret (a misspelt
/// `RUSTCHAT_JWT_SECRET` must not print its value).
fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["SECRET", "KEY", "PASSWORD", "TOKEN"]
        .iter()
        .any(|w| upper.contains(w))
}

#[cfg(test)]
mod tests;
