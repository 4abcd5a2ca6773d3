//! Layered configuration (spec KRN-R3): defaults < file < dotenv < env < CLI flags.
//!
//! A service describes its config as a `#[serde(deny_unknown_fields)]` struct that
//! implements [`Validate`], then:
//!
//! ```
//! use ron_kernel::config::{ConfigLoader, Validate};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Default, Serialize, Deserialize)]
//! #[serde(default, deny_unknown_fields)]
//! struct Cfg {
//!     port: u16,
//!     #[serde(with = "ron_kernel::config::duration::secs")]
//!     idle: std::time::Duration,
//! }
//!
//! impl Validate for Cfg {
//!     fn validate(&self) -> Vec<(String, String)> {
//!         let mut errors = Vec::new();
//!         if self.port == 0 {
//!             errors.push(("port".into(), "must be 1-65535".into()));
//!         }
//!         errors
//!     }
//! }
//!
//! let loaded = ConfigLoader::new("APP")
//!     .defaults(Cfg { port: 80, ..Cfg::default() })
//!     .env_from([("APP_PORT", "8080"), ("APP_IDLE", "90s")])
//!     .cli([("idle", "2m", "--idle")])
//!     .load()
//!     .unwrap();
//! assert_eq!(loaded.value.port, 8080);
//! assert_eq!(loaded.value.idle.as_secs(), 120);
//! assert_eq!(loaded.source_of("idle").as_deref(), Some("flag --idle"));
//! ```
//!
//! Every layer becomes a tree whose leaves remember their source (`FILE:LINE`, `env VAR`,
//! `flag --x`), so every [`ConfigError`] reads `<key> = <value> (<source>): <why>`.
//! Loading never binds ports or opens databases; binaries call [`exit_on_error`] on a bad
//! config. [`ConfigCell`] holds the live value and reloads it atomically.
//!
//! Not for: watching files (reload is explicit, usually on SIGHUP), or secrets storage.

mod cell;
mod de;
pub mod duration;
mod env;
mod error;
mod formats;
mod loader;
pub mod size;
mod tree;

pub use cell::{ChangedKey, ConfigCell, ReloadClass, ReloadOutcome, ReloadPolicy};
pub use error::{ConfigError, ConfigErrorKind, ConfigProblem, REDACTED};
pub use loader::{ConfigLoader, Loaded};
pub use tree::Source;

/// Exit status for a bad configuration, shared by every service binary.
pub const EXIT_CONFIG: i32 = 2;

/// Cross-field and range checks, run after the config deserialised.
pub trait Validate {
    /// Every violation as `(key_path, reason)`; empty when valid. Report all of them: the
    /// operator fixes a config once, not once per error.
    fn validate(&self) -> Vec<(String, String)>;
}

/// The line [`exit_on_error`] prints: `<bin>: config error: <problems>`, never more than one
/// line.
pub fn error_line(bin: &str, err: &ConfigError) -> String {
    let text = err.to_string().replace(['\n', '\r'], " ");
    format!("{bin}: config error: {text}")
}

/// Prints [`error_line`] to stderr and exits with status 2.
pub fn exit_on_error(bin: &str, err: &ConfigError) -> ! {
    eprintln!("{}", error_line(bin, err));
    std::process::exit(EXIT_CONFIG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_line_is_one_line_with_the_binary_name() {
        let err = ConfigError::new("a", "x\ny", "env A", "bad\nreason");
        let line = error_line("svc", &err);
        assert_eq!(line, r#"svc: config error: a = "x\ny" (env A): bad reason"#);
    }
}
