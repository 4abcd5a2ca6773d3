//! `rustchat`: parse flags, load config (exit 2 on a bad one), run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc malloc. Why: at 5,000 simulated users glibc's malloc, free
/// and chunk consolidation were about 14 % of the server's CPU (bench/rustchat RESULTS.md,
/// profile of run P), every WebSocket frame and JSON body being a short-lived allocation
/// made on one worker thread and often freed on another.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// rustchat: self-hosted team chat server.
#[derive(Parser, Debug)]
#[command(name = "rustchat", version, about)]
struct Cli {
    /// TOML config file (also RUSTCHAT_CONFIG).
    #[arg(long)]
    config: Option<PathBuf>,
    /// dotenv file read at start (default: ./.env).
    #[arg(long)]
    env_file: Option<PathBuf>,
    /// Listen IP (overrides server.host).
    #[arg(long)]
    host: Option<String>,
    /// Listen port (overrides server.port).
    #[arg(long)]
    port: Option<String>,
    /// Validate config and probe dependencies; never binds, migrates or creates files.
    #[arg(long, conflicts_with = "migrate_only")]
    check_config: bool,
    /// Apply pending migrations and exit.
    #[arg(long)]
    migrate_only: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts =
        rustchat::config::LoadOptions::from_process(cli.config, cli.env_file, cli.host, cli.port);
    rustchat::cli::main(opts, cli.check_config, cli.migrate_only)
}
