//! `rustchat-loadgen`: see the crate docs (`lib.rs`) and `bench/rustchat/run.sh`.
//! Exit status: 0 the run completed and reconciled; 1 it completed but deliveries did not
//! reconcile (missing, duplicate or misdirected frames, seq gaps); 2 it could not run.

use clap::Parser;
use rustchat_loadgen::{opts::Opts, report, run};

fn main() {
    let opts = Opts::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rustchat-loadgen: runtime: {e}");
            std::process::exit(2);
        }
    };
    let path = opts.report.clone();
    let report = match rt.block_on(run::run(opts)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rustchat-loadgen: {e:#}");
            std::process::exit(2);
        }
    };
    if let Some(p) = path {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        if let Err(e) = std::fs::write(&p, text + "\n") {
            eprintln!("rustchat-loadgen: write {}: {e}", p.display());
            std::process::exit(2);
        }
    }
    print!("{}", report::summary(&report));
    // Sockets and tasks may still be closing; the report is written, so do not wait.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(if report["ok"].as_bool() == Some(true) {
        0
    } else {
        1
    });
}
