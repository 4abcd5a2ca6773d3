//! `mongoose-server` (MNG-R09, R10): the offline modes (`--check`, `--print-config`,
//! `--list-types`, `--version`) and running a YAML config until SIGTERM/SIGINT.
//!
//! Exit statuses: 0 graceful; 1 startup or runtime failure; 2 bad config or usage.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ron_kernel::logging::{FieldLayout, LogConfig, LogWriter};

use crate::config::{self, ENV_CONFIG, Overrides};
use crate::event::Record;
use crate::registry::Registry;
use crate::server::RunningServer;

/// mongoose-server: run an event-processing server from a YAML config.
#[derive(Parser, Debug)]
#[command(name = "mongoose-server", disable_version_flag = true)]
pub struct Cli {
    /// Config file (also MONGOOSE_CONFIG).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Validate the layered config, bind nothing, print `config ok`.
    #[arg(long)]
    pub check: bool,
    /// Print the effective config with secrets as ***.
    #[arg(long)]
    pub print_config: bool,
    /// List the registered types.
    #[arg(long)]
    pub list_types: bool,
    /// Print the version.
    #[arg(long)]
    pub version: bool,
    /// Server name.
    #[arg(long)]
    pub name: Option<String>,
    /// Drain deadline at shutdown, ms.
    #[arg(long)]
    pub drain_deadline_ms: Option<u32>,
}

/// The version line: `mongoose-server <semver> (<git sha>, rustc <ver>)`.
pub fn version_line() -> String {
    format!(
        "mongoose-server {} ({}, rustc {})",
        env!("CARGO_PKG_VERSION"),
        option_env!("RON_BUILD_SHA").unwrap_or("unknown"),
        env!("MONGOOSE_RUSTC_VERSION")
    )
}

fn bad(line: impl std::fmt::Display) -> ExitCode {
    eprintln!("{line}");
    ExitCode::from(2)
}

/// Entry point used by `main`.
pub fn main(cli: Cli) -> ExitCode {
    let reg = Registry::<Record>::standard();
    if cli.version {
        println!("{}", version_line());
        return ExitCode::SUCCESS;
    }
    if cli.list_types {
        for (kind, name, version, feature) in reg.list() {
            println!(
                "{kind:<10} {name:<16} {version:<8} {}",
                feature.unwrap_or("-")
            );
        }
        return ExitCode::SUCCESS;
    }
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let path = cli.config.clone().or_else(|| {
        env.iter()
            .find(|(k, v)| k == ENV_CONFIG && !v.is_empty())
            .map(|(_, v)| PathBuf::from(v))
    });
    let Some(path) = path else {
        return bad("usage: mongoose-server --config FILE (or MONGOOSE_CONFIG)");
    };
    let cfg = match config::from_yaml_file(&path) {
        Ok(c) => c,
        Err(e) => return bad(e),
    };
    let flags = Overrides {
        name: cli.name.clone(),
        drain_deadline_ms: cli.drain_deadline_ms,
        ..Default::default()
    };
    let cfg = match config::apply_overrides(cfg, &env, &flags) {
        Ok(c) => c,
        Err(e) => return bad(e),
    };
    if let Err(e) = crate::plan::check(&cfg, &reg) {
        return bad(e);
    }
    if cli.check {
        println!("config ok");
        return ExitCode::SUCCESS;
    }
    if cli.print_config {
        print!("{}", config::print_yaml(&cfg));
        return ExitCode::SUCCESS;
    }
    let log = LogConfig {
        fields: FieldLayout::Flat,
        writer: LogWriter::Stderr,
        ..LogConfig::new("mongoose")
    }
    .static_field("server", cfg.name.clone());
    if let Err(e) = ron_kernel::logging::init(log) {
        return bad(format!("config error: RUST_LOG: {e}"));
    }
    ron_kernel::logging::install_panic_hook();
    tracing::info!(path = %path.display(), feeds = cfg.event_feeds.len(), groups = cfg.event_handlers.len(), sinks = cfg.event_sinks.len(), "config_loaded");
    // Signal handlers first: a SIGTERM that arrives while starting must drain, not kill.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("startup failed: signals: {e}");
            return ExitCode::from(1);
        }
    };
    let signals = rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        Ok::<_, std::io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    });
    let Ok((mut term, mut int)) = signals else {
        eprintln!("startup failed: cannot install signal handlers");
        return ExitCode::from(1);
    };
    let spec = match crate::plan::to_spec(&cfg, &reg) {
        Ok(s) => s,
        Err(e) => return bad(e),
    };
    let srv = match RunningServer::start(spec) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("startup failed: {}: {}", e.component, e.error);
            return ExitCode::from(1);
        }
    };
    let signal = rt.block_on(async {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    });
    let deadline = Duration::from_millis(u64::from(cfg.shutdown.drain_deadline_ms));
    tracing::info!(
        signal,
        deadline_ms = deadline.as_millis() as u64,
        "shutdown_begin"
    );
    srv.shutdown(deadline);
    ExitCode::SUCCESS
}
