//! ronctl: the operator CLI of the ron workspace (ARCHITECTURE.md; issue 8).
//!
//! What it is for: `ronctl up` runs the whole stack from the workspace's own binaries on
//! embedded defaults, wired as one system (see [`stack`] for the picture): sentinel-proxy
//! in front, routing `/edge/*` and `/cas/*` to svc-edge and everything else to rustchat,
//! and mongoose-server tailing sentinel's JSON access log into per-route request counts
//! and error rates in 10 s windows. It waits for every readiness endpoint, prints the URLs,
//! and on Ctrl-C/SIGTERM drains front door first. `ronctl status` prints each service's
//! readiness.
//!
//! Not for: building anything (it starts binaries that already exist, by default the ones
//! next to itself in the cargo target directory), or production supervision (use the
//! systemd units and manifests under deploy/).
//!
//! `ronctl chaos inject|proxy` runs the runbooks' fault drills against loopback targets
//! ([`chaos`]); the proxy's fault window (`--fault-after`, `--fault-for`) gives a drill its
//! baseline, fault and recovery phases through one proxy.
//!
//! The runbook conformance suite lives beside this crate: `conformance/substitutions.md`
//! (the one table of runbook text → what runs here), `conformance/<runbook>.toml` (every
//! operator command of each runbook, verbatim, with its expected outcome), run by
//! `tests/runbook_conformance.rs` against a stack `ronctl up --ports auto` starts.
//!
//! Decisions:
//! - State (generated configs, data, logs) lives in `./.ronctl` so a second `up` reuses the
//!   chat database and the sample pack; the generated configs are rewritten every start.
//! - The front door listens on 127.0.0.1:8080 unless `--listen` says otherwise: a demo
//!   should not expose itself to the network by default.
//! - The services inherit ronctl's environment (so `RUSTCHAT_DATABASE_URL` and friends
//!   work), but the addresses and directories ronctl sets win over inherited ones.
//! - Each service's output goes to `<state>/<service>/<service>.log`; ronctl's own lines
//!   on stdout are prefixed `ronctl:`. sentinel-proxy also writes its app and access logs
//!   to `<state>/sentinel-proxy/log/{sentinel,access}.log`, the runbook's
//!   `/var/log/sentinel/` layout, so the runbook's `grep`s work unchanged.
//! - `ronctl.json` in the state directory records the ports, pids, URLs and logs of the
//!   running stack (what `status` and the conformance suite read).
//! - Services get SIGTERM if ronctl itself is killed (parent-death signal), so they drain
//!   rather than run unsupervised.

pub mod chaos;
pub mod cli;
pub mod probe;
pub mod stack;
pub mod status;
pub mod supervise;
pub mod up;

use std::process::ExitCode;

/// Runs one command line.
pub fn run(cli: cli::Cli) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ronctl: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match cli.command {
        cli::Command::Up(a) => rt.block_on(up::run(a)),
        cli::Command::Status(a) => rt.block_on(status::run(a)),
        cli::Command::Chaos(c) => rt.block_on(chaos::run(c)),
    }
}
