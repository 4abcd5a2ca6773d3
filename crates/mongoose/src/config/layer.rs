//! Layering (spec §2.2): the file, then `MONGOOSE_*` environment variables, then run flags.
//!
//! The environment is passed in as pairs (the binary passes `std::env::vars()`), so tests and
//! embedders control it. An empty variable counts as unset. The result is not validated
//! here: callers run [`super::validate`] on the layered config.

use std::str::FromStr;

use super::error::ConfigError;
use super::policy::{AdminAddress, LogTo, Pinning};
use super::schema::ServerConfig;

/// Environment variable naming the config file (read by the binary, not here).
pub const ENV_CONFIG: &str = "MONGOOSE_CONFIG";
/// Overrides `name`.
pub const ENV_NAME: &str = "MONGOOSE_NAME";
/// Overrides `admin.address`.
pub const ENV_ADMIN_ADDR: &str = "MONGOOSE_ADMIN_ADDR";
/// Overrides `admin.token`.
pub const ENV_ADMIN_TOKEN: &str = "MONGOOSE_ADMIN_TOKEN";
/// Overrides `pinning`.
pub const ENV_PINNING: &str = "MONGOOSE_PINNING";
/// Overrides `shutdown.drainDeadlineMs`.
pub const ENV_DRAIN_DEADLINE_MS: &str = "MONGOOSE_DRAIN_DEADLINE_MS";
/// Sets the log destination.
pub const ENV_LOG_TO: &str = "MONGOOSE_LOG_TO";

/// Run flags that override the file and the environment; `None` leaves the value alone.
///
/// Every field type implements `FromStr`, so a CLI parser can use them directly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--name`.
    pub name: Option<String>,
    /// `--admin-addr`.
    pub admin_addr: Option<AdminAddress>,
    /// `--pinning strict|best-effort`.
    pub pinning: Option<Pinning>,
    /// `--drain-deadline-ms`.
    pub drain_deadline_ms: Option<u32>,
    /// `--log-to stdout|stderr`.
    pub log_to: Option<LogTo>,
}

/// Applies the `MONGOOSE_*` variables in `env`, then `flags`, over `cfg`.
///
/// # Errors
/// A variable whose value does not parse, e.g. `MONGOOSE_PINNING = loose: unknown pinning
/// mode …`.
pub fn apply_overrides(
    mut cfg: ServerConfig,
    env: &[(String, String)],
    flags: &Overrides,
) -> Result<ServerConfig, ConfigError> {
    let var = |key: &str| {
        env.iter()
            .rev()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    };

    if let Some(v) = var(ENV_NAME) {
        cfg.name = v.to_owned();
    }
    if let Some(v) = var(ENV_ADMIN_ADDR) {
        cfg.admin.address = parse_env(ENV_ADMIN_ADDR, v)?;
    }
    if let Some(v) = var(ENV_ADMIN_TOKEN) {
        cfg.admin.token = Some(v.to_owned());
    }
    if let Some(v) = var(ENV_PINNING) {
        cfg.pinning = parse_env(ENV_PINNING, v)?;
    }
    if let Some(v) = var(ENV_DRAIN_DEADLINE_MS) {
        cfg.shutdown.drain_deadline_ms = parse_env(ENV_DRAIN_DEADLINE_MS, v)?;
    }
    if let Some(v) = var(ENV_LOG_TO) {
        cfg.log_to = Some(parse_env(ENV_LOG_TO, v)?);
    }

    if let Some(v) = &flags.name {
        cfg.name.clone_from(v);
    }
    if let Some(v) = flags.admin_addr {
        cfg.admin.address = v;
    }
    if let Some(v) = flags.pinning {
        cfg.pinning = v;
    }
    if let Some(v) = flags.drain_deadline_ms {
        cfg.shutdown.drain_deadline_ms = v;
    }
    if let Some(v) = flags.log_to {
        cfg.log_to = Some(v);
    }
    Ok(cfg)
}

fn parse_env<T: FromStr>(key: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e: T::Err| ConfigError::invalid(key, value, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn file() -> ServerConfig {
        ServerConfig {
            name: "from-file".into(),
            ..ServerConfig::default()
        }
    }

    #[test]
    fn file_values_stand_without_env_or_flags() {
        let c = apply_overrides(file(), &[], &Overrides::default()).unwrap();
        assert_eq!(c, file());
    }

    #[test]
    fn env_overrides_file() {
        let c = apply_overrides(
            file(),
            &env(&[
                ("MONGOOSE_NAME", "from-env"),
                ("MONGOOSE_ADMIN_ADDR", "0.0.0.0:9300"),
                ("MONGOOSE_ADMIN_TOKEN", "0123456789abcdef"),
                ("MONGOOSE_PINNING", "best-effort"),
                ("MONGOOSE_DRAIN_DEADLINE_MS", "250"),
                ("MONGOOSE_LOG_TO", "stderr"),
                ("UNRELATED", "x"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.name, "from-env");
        assert_eq!(c.admin.address.to_string(), "0.0.0.0:9300");
        assert_eq!(c.admin.token.as_deref(), Some("0123456789abcdef"));
        assert_eq!(c.pinning, Pinning::BestEffort);
        assert_eq!(c.shutdown.drain_deadline_ms, 250);
        assert_eq!(c.log_to, Some(LogTo::Stderr));
    }

    #[test]
    fn flags_override_env() {
        let flags = Overrides {
            name: Some("from-flag".into()),
            admin_addr: Some(AdminAddress::Off),
            pinning: Some(Pinning::Strict),
            drain_deadline_ms: Some(9),
            log_to: Some(LogTo::Stdout),
        };
        let c = apply_overrides(
            file(),
            &env(&[
                ("MONGOOSE_NAME", "from-env"),
                ("MONGOOSE_ADMIN_ADDR", "0.0.0.0:9300"),
                ("MONGOOSE_PINNING", "best-effort"),
                ("MONGOOSE_DRAIN_DEADLINE_MS", "250"),
                ("MONGOOSE_LOG_TO", "stderr"),
            ]),
            &flags,
        )
        .unwrap();
        assert_eq!(c.name, "from-flag");
        assert_eq!(c.admin.address, AdminAddress::Off);
        assert_eq!(c.pinning, Pinning::Strict);
        assert_eq!(c.shutdown.drain_deadline_ms, 9);
        assert_eq!(c.log_to, Some(LogTo::Stdout));
    }

    #[test]
    fn empty_env_value_counts_as_unset() {
        let c = apply_overrides(
            file(),
            &env(&[("MONGOOSE_NAME", "")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.name, "from-file");
    }

    #[test]
    fn bad_env_value_names_the_variable_and_value() {
        let err = apply_overrides(
            file(),
            &env(&[("MONGOOSE_DRAIN_DEADLINE_MS", "soon")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("MONGOOSE_DRAIN_DEADLINE_MS = soon: "),
            "{err}"
        );
        let err = apply_overrides(
            file(),
            &env(&[("MONGOOSE_PINNING", "loose")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("expected one of strict, best-effort"),
            "{err}"
        );
    }
}
