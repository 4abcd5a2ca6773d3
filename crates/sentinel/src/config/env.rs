//! Environment overrides (spec SEN-R04): read once at startup, validated (a bad value is a
//! config error naming the variable), and re-applied to every config the process loads, so
//! a SIGHUP reload keeps them. Precedence: built-in < file < env < CLI.

use super::error::{ConfigError, ConfigErrors};
use super::model::Config;
use super::rules;

/// Config path when no `--config` is given.
pub const ENV_CONFIG: &str = "SENTINEL_CONFIG";
/// Worker threads, overriding `server.worker-threads`.
pub const ENV_WORKERS: &str = "SENTINEL_WORKERS";
/// Metrics/admin listen address, overriding `metrics.address`.
pub const ENV_METRICS_ADDR: &str = "SENTINEL_METRICS_ADDR";
/// Log filter (EnvFilter syntax), overriding `logging.level`.
pub const ENV_RUST_LOG: &str = "RUST_LOG";
/// The `amnesia` base label (`on`/`off`).
pub const ENV_AMNESIA: &str = "RON_AMNESIA";
/// Largest `SENTINEL_WORKERS`.
pub const MAX_WORKERS: u32 = 1024;

/// Env overrides read once at startup (`SENTINEL_WORKERS`, `SENTINEL_METRICS_ADDR`,
/// `RUST_LOG`, `RON_AMNESIA`); `RUST_LOG` is only validated and kept as text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvOverrides {
    /// `SENTINEL_WORKERS` (0 = CPUs).
    pub workers: Option<u32>,
    /// `SENTINEL_METRICS_ADDR` (`IP:port`).
    pub metrics_addr: Option<String>,
    /// `RUST_LOG`, a valid EnvFilter.
    pub rust_log: Option<String>,
    /// `RON_AMNESIA=on`.
    pub amnesia: bool,
}

impl EnvOverrides {
    /// Reads and validates the variables through `get` (e.g. `|k| std::env::var(k).ok()`).
    /// Every bad variable is reported, one error each.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<EnvOverrides, ConfigErrors> {
        let mut errors = Vec::new();
        let mut env = EnvOverrides::default();
        if let Some(v) = get(ENV_WORKERS) {
            match v.trim().parse::<u32>() {
                Ok(n) if n <= MAX_WORKERS => env.workers = Some(n),
                _ => errors.push(ConfigError::env(
                    ENV_WORKERS,
                    format!("expected integer 0..={MAX_WORKERS}, got {v:?}"),
                )),
            }
        }
        if let Some(v) = get(ENV_METRICS_ADDR) {
            match rules::listen_addr(&v) {
                Ok(_) => env.metrics_addr = Some(v),
                Err(why) => errors.push(ConfigError::env(
                    ENV_METRICS_ADDR,
                    format!("{why}, got {v:?}"),
                )),
            }
        }
        if let Some(v) = get(ENV_RUST_LOG) {
            // An empty RUST_LOG is treated as unset, as tracing-subscriber does.
            if !v.trim().is_empty() {
                match tracing_subscriber::EnvFilter::try_new(&v) {
                    Ok(_) => env.rust_log = Some(v),
                    Err(e) => errors.push(ConfigError::env(
                        ENV_RUST_LOG,
                        format!(
                            "expected a log filter such as \"info,hyper=warn\", got {v:?} ({e})"
                        ),
                    )),
                }
            }
        }
        if let Some(v) = get(ENV_AMNESIA) {
            match v.as_str() {
                "on" => env.amnesia = true,
                "off" | "" => env.amnesia = false,
                _ => errors.push(ConfigError::env(
                    ENV_AMNESIA,
                    format!("expected \"on\" or \"off\", got {v:?}"),
                )),
            }
        }
        if errors.is_empty() {
            Ok(env)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Applies the overrides to `config` (workers, metrics address, log level as text);
    /// fails if the metrics address now clashes with a proxy listener.
    pub fn apply(&self, config: &mut Config) -> Result<(), ConfigErrors> {
        if let Some(w) = self.workers {
            config.server.worker_threads = w;
        }
        if let Some(level) = &self.rust_log {
            config.logging.level.clone_from(level);
        }
        if let Some(addr) = &self.metrics_addr {
            config.metrics.address.clone_from(addr);
            let Ok(metrics) = addr.parse::<std::net::SocketAddr>() else {
                return Ok(());
            };
            if !config.metrics.enabled {
                return Ok(());
            }
            let proxies = std::iter::once(("server.listen", config.server.listen.as_str())).chain(
                config
                    .listeners
                    .iter()
                    .map(|l| (l.name.as_str(), l.address.as_str())),
            );
            for (what, a) in proxies {
                if a.parse::<std::net::SocketAddr>()
                    .is_ok_and(|a| rules::addrs_clash(a, metrics))
                {
                    return Err(ConfigErrors::one(ConfigError::env(
                        ENV_METRICS_ADDR,
                        format!("address {addr} clashes with {what} ({a})"),
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<EnvOverrides, ConfigErrors> {
        EnvOverrides::from_env(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn valid_values_are_read() {
        let e = env(&[
            (ENV_WORKERS, "4"),
            (ENV_METRICS_ADDR, "127.0.0.1:0"),
            (ENV_RUST_LOG, "debug,hyper=info"),
            (ENV_AMNESIA, "on"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.workers, Some(4));
        assert_eq!(e.metrics_addr.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(e.rust_log.as_deref(), Some("debug,hyper=info"));
        assert!(e.amnesia);
    }

    #[test]
    fn each_bad_variable_is_one_error_naming_it() {
        let errs = env(&[
            (ENV_WORKERS, "abc"),
            (ENV_METRICS_ADDR, "localhost:9090"),
            (ENV_RUST_LOG, "info,=[{"),
            (ENV_AMNESIA, "yes"),
        ])
        .err()
        .unwrap_or_default();
        let text = errs.to_string();
        assert_eq!(errs.0.len(), 4, "{text}");
        assert!(
            text.contains("error: env: SENTINEL_WORKERS: expected integer 0..=1024, got \"abc\"")
        );
        assert!(text.contains("SENTINEL_METRICS_ADDR"));
        assert!(text.contains("RUST_LOG"));
        assert!(text.contains("RON_AMNESIA"));
        assert!(env(&[(ENV_WORKERS, "1025")]).is_err());
    }

    #[test]
    fn apply_overrides_the_file_values() {
        let mut c = Config::default();
        let e = env(&[
            (ENV_WORKERS, "2"),
            (ENV_METRICS_ADDR, "127.0.0.1:9191"),
            (ENV_RUST_LOG, "warn"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        e.apply(&mut c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.server.worker_threads, 2);
        assert_eq!(c.metrics.address, "127.0.0.1:9191");
        assert_eq!(c.logging.level, "warn");
        let clash = env(&[(ENV_METRICS_ADDR, "0.0.0.0:8080")]).unwrap_or_else(|e| panic!("{e}"));
        assert!(clash.apply(&mut Config::default()).is_err());
    }
}
