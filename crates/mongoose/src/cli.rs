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
    /// `admin ...`: talk to a running server.
    #[command(subcommand)]
    pub command: Option<Command>,
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
    /// Admin address (`IP:port` or `off`).
    #[arg(long)]
    pub admin_addr: Option<String>,
    /// `strict` or `best-effort`.
    #[arg(long)]
    pub pinning: Option<String>,
    /// `stdout` or `stderr`.
    #[arg(long)]
    pub log_to: Option<String>,
}

/// Subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// `POST /admin/commands/<command>` on a running server.
    Admin(AdminArgs),
}

/// `mongoose-server admin [--addr A] [--token T] [--json] [--timeout-ms N] <command> [args..]`.
#[derive(clap::Args, Debug)]
pub struct AdminArgs {
    /// Admin address (default MONGOOSE_ADMIN_ADDR, else 127.0.0.1:9200).
    #[arg(long)]
    pub addr: Option<String>,
    /// Bearer token (default MONGOOSE_ADMIN_TOKEN).
    #[arg(long)]
    pub token: Option<String>,
    /// Print the raw JSON body.
    #[arg(long)]
    pub json: bool,
    /// Whole-call budget.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// The command.
    pub command: String,
    /// Its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

fn admin_main(a: AdminArgs) -> ExitCode {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let call = crate::admin::client::Call {
        addr: a
            .addr
            .or_else(|| env(config::ENV_ADMIN_ADDR))
            .unwrap_or_else(|| crate::admin::client::DEFAULT_ADDR.into()),
        token: a.token.or_else(|| env(config::ENV_ADMIN_TOKEN)),
        json: a.json,
        timeout: Duration::from_millis(a.timeout_ms.max(1)),
        command: a.command,
        args: a.args,
    };
    let (code, out, err) = crate::admin::client::run(&call);
    print!("{out}");
    eprint!("{err}");
    ExitCode::from(code)
}

/// The version line: `mongoose-server <semver> (<git sha>, rustc <ver>)`.
pub fn version_line() -> String {
    format!(
        "mongoose-server {} ({}, rustc {})",
        env!("CARGO_PKG_VERSION"),
        env!("MONGOOSE_GIT_SHA"),
        env!("MONGOOSE_RUSTC_VERSION")
    )
}

fn bad(line: impl std::fmt::Display) -> ExitCode {
    eprintln!("{line}");
    ExitCode::from(2)
}

/// Entry point used by `main`.
pub fn main(cli: Cli) -> ExitCode {
    fn parse_flag<T: std::str::FromStr<Err = String>>(
        flag: &str,
        v: &Option<String>,
    ) -> Result<Option<T>, String> {
        v.as_deref()
            .map(|s| s.parse().map_err(|e| format!("--{flag} {s}: {e}")))
            .transpose()
    }
    if let Some(Command::Admin(a)) = cli.command {
        return admin_main(a);
    }
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
    let flags = match (|| {
        Ok::<_, String>(Overrides {
            name: cli.name.clone(),
            drain_deadline_ms: cli.drain_deadline_ms,
            admin_addr: parse_flag("admin-addr", &cli.admin_addr)?,
            pinning: parse_flag("pinning", &cli.pinning)?,
            log_to: parse_flag("log-to", &cli.log_to)?,
        })
    })() {
        Ok(f) => f,
        Err(e) => return bad(e),
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
    // MNG-R27: a stdout sink owns stdout, so logs go to stderr.
    let has_stdout_sink = cfg.event_sinks.iter().any(|s| s.type_name == "stdout");
    let writer = match cfg.log_to {
        _ if has_stdout_sink => LogWriter::Stderr,
        Some(config::LogTo::Stderr) => LogWriter::Stderr,
        _ => LogWriter::Stdout,
    };
    let log = LogConfig {
        fields: FieldLayout::Flat,
        writer,
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
            signal(SignalKind::hangup())?,
        ))
    });
    let Ok((mut term, mut int, mut hup)) = signals else {
        eprintln!("startup failed: cannot install signal handlers");
        return ExitCode::from(1);
    };
    let drain_ms = cfg.shutdown.drain_deadline_ms;
    let server = match crate::embed::Server::from_config(cfg, reg) {
        Ok(s) => s,
        Err(e) => return bad(e),
    };
    let srv: RunningServer<Record> = match server.start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("startup failed: {}: {}", e.component, e.error);
            return ExitCode::from(1);
        }
    };
    let eof = srv.shutdown_requested();
    let signal = loop {
        let got = rt.block_on(async {
            tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                _ = eof.cancelled() => "EOF",
                _ = hup.recv() => "SIGHUP",
            }
        });
        if got != "SIGHUP" {
            break got;
        }
        // MNG-R31: the same layering as at start (file, then env, then flags).
        let new =
            config::from_yaml_file(&path).and_then(|c| config::apply_overrides(c, &env, &flags));
        match new {
            Err(e) => {
                srv.admin().count_reload("invalid");
                tracing::warn!(outcome = "invalid", error = %e, "reload");
            }
            Ok(new) => {
                srv.reload(new);
            }
        }
    };
    let drain_ms = srv
        .running_config()
        .map_or(drain_ms, |c| c.shutdown.drain_deadline_ms);
    let deadline = Duration::from_millis(u64::from(drain_ms));
    // Decision 2: a second SIGTERM/SIGINT during the drain skips the rest of it; exit 1.
    // Decision 2: a second SIGTERM/SIGINT during the drain skips the rest of it; exit 1.
    // The same listeners (registered since start) keep listening, so none is missed.
    drop(hup);
    let forced = std::sync::atomic::AtomicBool::new(false);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| watch_second_signal(&srv, rt, (term, int), &forced, &done));
        srv.shutdown_for(deadline, signal);
        done.store(true, std::sync::atomic::Ordering::Release);
    });
    if forced.load(std::sync::atomic::Ordering::Acquire) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Waits for a second SIGTERM/SIGINT until `done`; on one, forces the drain to end.
fn watch_second_signal(
    srv: &RunningServer<Record>,
    rt: tokio::runtime::Runtime,
    (mut term, mut int): (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
    forced: &std::sync::atomic::AtomicBool,
    done: &std::sync::atomic::AtomicBool,
) {
    use std::sync::atomic::Ordering;
    while !done.load(Ordering::Acquire) {
        let got = rt.block_on(async {
            tokio::select! {
                _ = term.recv() => true,
                _ = int.recv() => true,
                _ = tokio::time::sleep(Duration::from_millis(50)) => false,
            }
        });
        if got {
            forced.store(true, Ordering::Release);
            srv.force_drain();
            return;
        }
    }
}
