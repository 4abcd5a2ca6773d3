//! `ronctl up`: write the generated configs, start the stack in order, wait for every
//! readiness endpoint, print the URLs, then hold until Ctrl-C/SIGTERM (or a service dies)
//! and drain in order.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::UpArgs;
use crate::stack::{self, MONGOOSE, Plan, Ports, SENTINEL, SVC_EDGE};
use crate::supervise::{self, Running};

/// The file `ronctl status` reads: the running stack's services and URLs.
pub const STATE_FILE: &str = "ronctl.json";

/// Exit status for a usage problem (missing binaries, bad state dir), like a bad config.
const EXIT_USAGE: u8 = 2;

fn say(line: impl AsRef<str>) {
    println!("ronctl: {}", line.as_ref());
}

/// Runs `up` to completion.
pub async fn run(args: UpArgs) -> ExitCode {
    let bins = match args.bin_dir.clone().or_else(own_dir) {
        Some(b) => b,
        None => {
            say("cannot find the service binaries; pass --bin-dir");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    for name in [stack::RUSTCHAT, SVC_EDGE, SENTINEL, MONGOOSE] {
        if !bins.join(name).is_file() {
            say(format!(
                "{} not found; build the workspace first (cargo build --release --workspace) or pass --bin-dir",
                bins.join(name).display()
            ));
            return ExitCode::from(EXIT_USAGE);
        }
    }
    let ports = match Ports::choose(args.ports, args.listen) {
        Ok(p) => p,
        Err(e) => {
            say(format!("cannot choose ports: {e}"));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let state = absolute(&args.state_dir);
    let plan = stack::plan(&state, &bins, ports);
    if let Err(e) = prepare(&plan, &bins) {
        say(e);
        return ExitCode::from(1);
    }
    let mut running: Vec<Running> = Vec::new();
    for spec in &plan.services {
        say(format!(
            "starting {} (log {})",
            spec.name,
            spec.log.display()
        ));
        let started = supervise::start(spec);
        let mut r = match started {
            Ok(r) => r,
            Err(e) => return abort(&mut running, &e.to_string()).await,
        };
        match supervise::wait_ready(&mut r).await {
            Ok(took) => say(format!(
                "{} ready in {} ms ({})",
                spec.name,
                took.as_millis(),
                spec.ready_url
            )),
            Err(e) => {
                running.push(r);
                return abort(&mut running, &e.to_string()).await;
            }
        }
        running.push(r);
    }
    if let Err(e) = write_state(&state, &plan, &running) {
        say(format!(
            "cannot write {}: {e}",
            state.join(STATE_FILE).display()
        ));
    }
    print_urls(&plan);
    say("stack ready; Ctrl-C stops it");

    let died = hold(&mut running).await;
    let clean = drain(&mut running).await;
    let _ = std::fs::remove_file(state.join(STATE_FILE));
    match died {
        Some(name) => {
            say(format!("stopped because {name} exited"));
            ExitCode::from(1)
        }
        None if clean => {
            say("stack stopped");
            ExitCode::SUCCESS
        }
        None => ExitCode::from(1),
    }
}

/// The directory of the running ronctl binary, where cargo puts the other binaries too.
fn own_dir() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()?
        .parent()
        .map(Path::to_path_buf)
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map_or_else(|_| p.to_path_buf(), |d| d.join(p))
    }
}

/// Writes the generated files, the sample tile pack (once), and validates both generated
/// configs with their own binaries so a mistake is reported before anything starts.
fn prepare(plan: &Plan, bins: &Path) -> Result<(), String> {
    for (path, text) in &plan.files {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    for s in &plan.services {
        std::fs::create_dir_all(&s.dir).map_err(|e| format!("{}: {e}", s.dir.display()))?;
    }
    if let Some(dir) = plan.access_log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let edge_dir = plan
        .services
        .iter()
        .find(|s| s.name == SVC_EDGE)
        .map(|s| s.dir.clone())
        .unwrap_or_default();
    let pack = edge_dir.join("world.pmtiles");
    if !pack.is_file() {
        check(
            bins.join(SVC_EDGE),
            &[
                "tools",
                "sample-pmtiles",
                "--out",
                &pack.display().to_string(),
            ],
            "svc-edge sample pack",
        )?;
    }
    for s in &plan.services {
        let args: Vec<&str> = match s.name {
            SENTINEL => vec!["--validate", "--config", &s.args[1]],
            MONGOOSE => vec!["--check", "--config", &s.args[1]],
            _ => continue,
        };
        check(s.bin.clone(), &args, s.name)?;
    }
    Ok(())
}

fn check(bin: PathBuf, args: &[&str], what: &str) -> Result<(), String> {
    let out = std::process::Command::new(&bin)
        .args(args)
        .output()
        .map_err(|e| format!("{what}: cannot run {}: {e}", bin.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what}: {} {} failed ({}): {}{}",
            bin.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn write_state(state: &Path, plan: &Plan, running: &[Running]) -> std::io::Result<()> {
    let doc = json!({
        "pid": std::process::id(),
        "front": format!("http://{}/", plan.ports.front),
        "ports": plan.ports,
        "route_stats": plan.route_stats,
        "access_log": plan.access_log,
        "services": running.iter().map(|r| json!({
            "name": r.spec.name,
            "pid": r.pid(),
            "ready_url": r.spec.ready_url,
            "metrics_url": r.spec.metrics_url,
            "log": r.spec.log,
        })).collect::<Vec<_>>(),
    });
    let path = state.join(STATE_FILE);
    let tmp = state.join(format!(".{STATE_FILE}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(&doc)?)?;
    std::fs::rename(tmp, path)
}

fn print_urls(plan: &Plan) {
    let front = plan.ports.front;
    say(format!(
        "chat UI and API   http://{front}/  (API under /api/v1, /api/v4)"
    ));
    say(format!(
        "edge assets       http://{front}/edge/assets/index.html, tiles http://{front}/edge/tiles/world.json, CAS /cas/b3/<hash>"
    ));
    for s in &plan.services {
        say(format!(
            "{:<17} ready {}  metrics {}",
            s.name, s.ready_url, s.metrics_url
        ));
    }
    say(format!(
        "route stats       {} (10 s windows per route)",
        plan.route_stats.display()
    ));
}

/// Waits for Ctrl-C/SIGTERM (None) or for a service to exit on its own (its name).
async fn hold(running: &mut [Running]) -> Option<&'static str> {
    let mut term = signal(SignalKind::terminate()).ok();
    let terminated = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    let exited = async {
        loop {
            for r in running.iter_mut() {
                if let Ok(Some(_)) = r.child.try_wait() {
                    return r.spec.name;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => None,
        _ = terminated => None,
        name = exited => Some(name),
    }
}

/// Stops the front door, then the backends together, then mongoose; true when every
/// service exited 0.
async fn drain(running: &mut [Running]) -> bool {
    let mut clean = true;
    for wave in [&[SENTINEL][..], &[stack::RUSTCHAT, SVC_EDGE], &[MONGOOSE]] {
        let stops = running
            .iter_mut()
            .filter(|r| wave.contains(&r.spec.name))
            .map(|r| async move {
                say(format!("stopping {}", r.spec.name));
                let status = supervise::stop(r).await;
                (r.spec.name, status)
            });
        for (name, status) in futures_util::future::join_all(stops).await {
            let ok = status.is_some_and(|s| s.success());
            clean &= ok;
            say(format!(
                "{name} stopped ({})",
                status.map_or("unknown".into(), |s| s.to_string())
            ));
        }
    }
    clean
}

/// A start-up failure: report it, stop what was started (newest first), exit 1.
async fn abort(running: &mut Vec<Running>, why: &str) -> ExitCode {
    say(format!("start-up failed: {why}"));
    while let Some(mut r) = running.pop() {
        say(format!("stopping {}", r.spec.name));
        let _ = supervise::stop(&mut r).await;
    }
    ExitCode::from(1)
}
