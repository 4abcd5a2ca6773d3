//! The `sentinel-proxy` command line (spec §2.1, SEN-R02/R03): the offline commands
//! `--validate`, `--test-config`, `--print-config` and `--version`, and run mode, which
//! picks the config source, loads it and hands over to [`crate::runtime::run`].
//!
//! Exit codes: 0 success, 2 usage or config error (one `error: …` line per problem on
//! stderr); run mode returns the runtime's code.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use crate::config::{
    self, ConfigErrors, ConfigSource, DEFAULT_CONFIG_PATH, ENV_CONFIG, EnvOverrides,
};

/// Exit status for usage and config errors.
pub const EXIT_CONFIG: u8 = 2;

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(
    name = "sentinel-proxy",
    about = "HTTP reverse proxy with a strict KDL config",
    disable_version_flag = true
)]
pub struct Args {
    /// Config file (overrides SENTINEL_CONFIG; default config/sentinel.kdl).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Parse and validate the config only (no DNS, no other files), then exit.
    #[arg(long, conflicts_with_all = ["test_config", "print_config"])]
    pub validate: bool,
    /// Validate FILE and check its resources (DNS, TLS files, body/token files, output
    /// directories), then exit.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["config", "print_config"])]
    pub test_config: Option<PathBuf>,
    /// Print the effective config as canonical KDL v2, then exit.
    #[arg(long)]
    pub print_config: bool,
    /// Print the version, then exit.
    #[arg(long)]
    pub version: bool,
}

/// Parses the process arguments and runs the requested command.
pub fn main() -> ExitCode {
    // First of all, so a SIGHUP/SIGUSR sent right after spawn (during argument parsing or
    // the possibly slow config load: DNS, files) is never fatal (SEN-R22 step 2).
    crate::runtime::guard_early_signals();
    crate::memory::limit_arenas();
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => return usage_error(&e),
    };
    let get_env = |k: &str| std::env::var(k).ok();
    run(&args, &get_env)
}

/// Runs `args` with the environment read through `get_env`.
pub fn run(args: &Args, get_env: &dyn Fn(&str) -> Option<String>) -> ExitCode {
    if args.version {
        println!("sentinel-proxy {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if let Some(file) = &args.test_config {
        return match config::test_config(file) {
            Ok(startup) => {
                print_notes(&startup.notes);
                println!("configuration test successful: {}", file.display());
                ExitCode::SUCCESS
            }
            Err(errs) => config_error(&errs),
        };
    }
    let source = match source(args, get_env) {
        Ok(s) => s,
        Err(errs) => return config_error(&errs),
    };
    if args.validate {
        return match parse_source(&source) {
            Ok((cfg, notes)) => {
                print_notes(&notes);
                println!(
                    "configuration OK: {} ({} routes, {} upstreams, {} listeners)",
                    source_name(&source),
                    cfg.routes.len(),
                    cfg.upstreams.len(),
                    cfg.listeners.len() + 1
                );
                ExitCode::SUCCESS
            }
            Err(errs) => config_error(&errs),
        };
    }
    let env = match EnvOverrides::from_env(get_env) {
        Ok(e) => e,
        Err(errs) => return config_error(&errs),
    };
    if args.print_config {
        let result = parse_source(&source).and_then(|(mut cfg, notes)| {
            env.apply(&mut cfg)?;
            Ok((cfg, notes))
        });
        return match result {
            Ok((cfg, notes)) => {
                print_notes(&notes);
                let mut out = std::io::stdout().lock();
                // A closed stdout (e.g. `| head`) is not a config error.
                let _ = out.write_all(config::print(&cfg).as_bytes());
                ExitCode::SUCCESS
            }
            Err(errs) => config_error(&errs),
        };
    }
    match config::load(&source, &env) {
        Ok(startup) => crate::runtime::run(startup),
        Err(errs) => config_error(&errs),
    }
}

/// `--config F` > `SENTINEL_CONFIG` > the default path (which may be absent).
fn source(
    args: &Args,
    get_env: &dyn Fn(&str) -> Option<String>,
) -> Result<ConfigSource, ConfigErrors> {
    if let Some(f) = &args.config {
        return Ok(ConfigSource::File(f.clone()));
    }
    match get_env(ENV_CONFIG) {
        Some(v) if v.is_empty() => Err(ConfigErrors::one(config::ConfigError::env(
            ENV_CONFIG,
            "expected a file path, got \"\"",
        ))),
        Some(v) => Ok(ConfigSource::File(PathBuf::from(v))),
        None => Ok(ConfigSource::BuiltInDefaults {
            default_path: PathBuf::from(DEFAULT_CONFIG_PATH),
        }),
    }
}

/// Parses what `source` names without any resource access; an absent default path gives
/// the built-in defaults and their notice.
fn parse_source(
    source: &ConfigSource,
) -> Result<(config::Config, Vec<config::Note>), ConfigErrors> {
    match source {
        ConfigSource::BuiltInDefaults { default_path } if !default_path.exists() => Ok((
            config::Config::default(),
            vec![config::defaults_note(default_path)],
        )),
        other => config::read_and_parse(other.path()),
    }
}

fn source_name(source: &ConfigSource) -> String {
    match source {
        ConfigSource::BuiltInDefaults { default_path } if !default_path.exists() => {
            "built-in defaults".to_owned()
        }
        other => display(other.path()),
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

fn print_notes(notes: &[config::Note]) {
    for n in notes {
        eprintln!("{n}");
    }
}

fn config_error(errs: &ConfigErrors) -> ExitCode {
    eprintln!("{errs}");
    ExitCode::from(EXIT_CONFIG)
}

/// Help goes to stdout with status 0; any other parse failure is one line on stderr, 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        print!("{e}");
        return ExitCode::SUCCESS;
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    eprintln!("error: usage: {first} (see --help)");
    ExitCode::from(EXIT_CONFIG)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("sentinel-proxy").chain(args.iter().copied()))
    }

    #[test]
    fn test_config_with_config_is_a_usage_error() {
        assert!(parse(&["--test-config", "a.kdl", "--config", "b.kdl"]).is_err());
        assert!(parse(&["--validate", "--print-config"]).is_err());
        assert!(parse(&["--validate", "--config", "b.kdl"]).is_ok());
        assert!(parse(&["--bogus"]).is_err());
    }

    #[test]
    fn config_flag_beats_env_which_beats_the_default() {
        let env = |k: &str| (k == ENV_CONFIG).then(|| "/etc/sentinel/env.kdl".to_owned());
        let none = |_: &str| None;
        let with_flag = parse(&["--config", "/x.kdl"]).unwrap_or_else(|e| panic!("{e}"));
        let bare = parse(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            source(&with_flag, &env).ok(),
            Some(ConfigSource::File("/x.kdl".into()))
        );
        assert_eq!(
            source(&bare, &env).ok(),
            Some(ConfigSource::File("/etc/sentinel/env.kdl".into()))
        );
        assert_eq!(
            source(&bare, &none).ok(),
            Some(ConfigSource::BuiltInDefaults {
                default_path: DEFAULT_CONFIG_PATH.into()
            })
        );
        let empty = |k: &str| (k == ENV_CONFIG).then(String::new);
        assert!(source(&bare, &empty).is_err());
    }
}
