//! The runbook's environment knobs (`RON_SERVICE`, `RON_INSTANCE`, `RON_AMNESIA`,
//! `RON_METRICS_*`, `RON_OTEL_ENDPOINT`). An empty value counts as unset; every bad value
//! is a [`ConfigError`] naming the variable, its value and why.

use ron_kernel::config::ConfigError;

/// Service label.
pub const ENV_SERVICE: &str = "RON_SERVICE";
/// Instance label.
pub const ENV_INSTANCE: &str = "RON_INSTANCE";
/// Amnesia label.
pub const ENV_AMNESIA: &str = "RON_AMNESIA";
/// TCP bind address of the exposer.
pub const ENV_METRICS_ADDR: &str = "RON_METRICS_ADDR";
/// Unix socket path of the exposer.
pub const ENV_METRICS_UDS: &str = "RON_METRICS_UDS";
/// PEM certificate chain for TLS.
pub const ENV_METRICS_TLS_CERT: &str = "RON_METRICS_TLS_CERT";
/// PEM private key for TLS.
pub const ENV_METRICS_TLS_KEY: &str = "RON_METRICS_TLS_KEY";
/// Synthetic load switch (`large`).
pub const ENV_METRICS_LOAD: &str = "RON_METRICS_LOAD";
/// OTLP collector endpoint (feature `otel`).
pub const ENV_OTEL_ENDPOINT: &str = "RON_OTEL_ENDPOINT";

const KNOWN_METRICS_VARS: [&str; 5] = [
    ENV_METRICS_ADDR,
    ENV_METRICS_UDS,
    ENV_METRICS_TLS_CERT,
    ENV_METRICS_TLS_KEY,
    ENV_METRICS_LOAD,
];

/// Where variables are read from: the process environment, or a fixed list in tests.
#[derive(Debug, Clone, Default)]
pub struct EnvSource {
    fixed: Option<Vec<(String, String)>>,
}

impl EnvSource {
    /// The process environment.
    pub fn process() -> EnvSource {
        EnvSource { fixed: None }
    }

    /// A fixed set of variables (for tests and embedding).
    pub fn fixed<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> EnvSource {
        EnvSource {
            fixed: Some(
                vars.into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
        }
    }

    /// The variable's value; empty counts as unset.
    pub fn get(&self, key: &str) -> Option<String> {
        let v = match &self.fixed {
            Some(list) => list.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()),
            None => std::env::var(key).ok(),
        };
        v.filter(|v| !v.is_empty())
    }

    fn names(&self) -> Vec<String> {
        match &self.fixed {
            Some(list) => list.iter().map(|(k, _)| k.clone()).collect(),
            None => std::env::vars_os()
                .filter_map(|(k, _)| k.into_string().ok())
                .collect(),
        }
    }

    /// Any `RON_METRICS_*` variable that is not a known knob is an error.
    pub fn check_unknown_metrics_vars(&self) -> Result<(), ConfigError> {
        for name in self.names() {
            if name.starts_with("RON_METRICS_") && !KNOWN_METRICS_VARS.contains(&name.as_str()) {
                let value = self.get(&name).unwrap_or_default();
                return Err(error(
                    &name,
                    &value,
                    "unknown variable; known: RON_METRICS_ADDR, RON_METRICS_UDS, RON_METRICS_TLS_CERT, RON_METRICS_TLS_KEY, RON_METRICS_LOAD",
                ));
            }
        }
        Ok(())
    }
}

/// A config error for environment variable `var`.
pub(crate) fn error(var: &str, value: &str, why: &str) -> ConfigError {
    ConfigError::new(var, value, format!("env {var}"), why)
}

/// `on|off|true|false|1|0` in any case.
pub(crate) fn parse_amnesia(env: &EnvSource) -> Result<Option<bool>, ConfigError> {
    let Some(v) = env.get(ENV_AMNESIA) else {
        return Ok(None);
    };
    match v.to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Ok(Some(true)),
        "off" | "false" | "0" => Ok(Some(false)),
        _ => Err(error(ENV_AMNESIA, &v, "expected on|off|true|false|1|0")),
    }
}

/// `large`, `off` or unset.
pub(crate) fn parse_load(env: &EnvSource) -> Result<bool, ConfigError> {
    match env.get(ENV_METRICS_LOAD).as_deref() {
        None | Some("off") => Ok(false),
        Some("large") => Ok(true),
        Some(v) => Err(error(ENV_METRICS_LOAD, v, "expected large or off")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amnesia_accepts_the_documented_spellings_in_any_case() {
        for (v, want) in [
            ("on", true),
            ("TRUE", true),
            ("1", true),
            ("Off", false),
            ("0", false),
        ] {
            let env = EnvSource::fixed([(ENV_AMNESIA, v)]);
            assert_eq!(parse_amnesia(&env).unwrap(), Some(want));
        }
        let err = parse_amnesia(&EnvSource::fixed([(ENV_AMNESIA, "maybe")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"RON_AMNESIA = "maybe" (env RON_AMNESIA): expected on|off|true|false|1|0"#
        );
        assert_eq!(
            parse_amnesia(&EnvSource::fixed([(ENV_AMNESIA, "")])).unwrap(),
            None
        );
    }

    #[test]
    fn unknown_metrics_variables_are_rejected() {
        let env = EnvSource::fixed([("RON_METRICS_FOO", "1"), ("RON_METRICS_ADDR", "x")]);
        let err = env.check_unknown_metrics_vars().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("RON_METRICS_FOO = \"1\" (env RON_METRICS_FOO)")
        );
        assert!(
            EnvSource::fixed([("RON_METRICS_LOAD", "large")])
                .check_unknown_metrics_vars()
                .is_ok()
        );
    }

    #[test]
    fn load_accepts_large_off_and_empty() {
        assert!(parse_load(&EnvSource::fixed([(ENV_METRICS_LOAD, "large")])).unwrap());
        assert!(!parse_load(&EnvSource::fixed([(ENV_METRICS_LOAD, "")])).unwrap());
        assert!(parse_load(&EnvSource::fixed([(ENV_METRICS_LOAD, "huge")])).is_err());
    }
}
