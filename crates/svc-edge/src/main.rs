//! `svc-edge` binary: parse flags, load config (exit 2 on a bad one), run.

use std::process::ExitCode;

use ron_kernel::config::exit_on_error;
use ron_kernel::logging::{self, LogConfig};
use svc_edge::{cli, config, server};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("svc-edge: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.help {
        println!("{}", cli::USAGE);
        return ExitCode::SUCCESS;
    }
    if cli.version {
        println!("svc-edge {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if let Some(tool_args) = &cli.tools {
        let mut out = std::io::stdout().lock();
        return match svc_edge::tools::run(tool_args, &mut out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("svc-edge: {e}");
                ExitCode::from(e.exit_code() as u8)
            }
        };
    }
    let loaded = match config::loader(cli.config.clone(), cli.flags.clone()).load() {
        Ok(l) => l.into_inner(),
        Err(e) => exit_on_error("svc-edge", &e),
    };
    if cli.check_config {
        return ExitCode::from(svc_edge::check::check_config(&loaded) as u8);
    }
    let log = match logging::init(LogConfig {
        service: "svc-edge".into(),
        event_key: true,
        ..LogConfig::default()
    }) {
        Ok(l) => l,
        Err(e) => exit_on_error("svc-edge", &e),
    };
    let workers = match loaded.workers {
        // The CPUs of the affinity mask, so `taskset -c 0` means one worker.
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => usize::from(n),
    };
    // One worker runs on the single-threaded scheduler: same semantics (blocking work still
    // goes to the blocking pool) without the work-stealing bookkeeping per task wake-up.
    let mut rt = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("svc-edge: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let source = server::ConfigSource {
        file: cli.config,
        flags: cli.flags,
    };
    let code = rt.block_on(server::run(loaded, source, log));
    ExitCode::from(code as u8)
}
