//! `ronctl chaos`: bounded, loopback-only fault drills for the runbooks' chaos sections
//! (ron-metrics §9, svc-edge §9 and Appendix D, sentinel's upstream drills).
//!
//! - `inject --target URL --fault=slowloris|latency|reset|flood --rate=N/s --duration=Ns`
//!   opens connections against the target at a fixed rate for a fixed time and reports
//!   what the server did (see [`inject`]).
//! - `proxy --listen ADDR --upstream ADDR --latency 80ms --jitter 20ms` is a TCP proxy that
//!   delays every chunk each way (and can reset connections): the portable stand-in for
//!   `tc netem` and Toxiproxy, to put between svc-edge and a live-fill origin or sentinel
//!   and an upstream (see [`proxy`]).
//!
//! Bounds: targets and upstreams must be loopback addresses (a drill is never pointed at
//! someone else's server by mistake), rates ≤ 10 000/s, durations ≤ 1 h, at most
//! [`MAX_OPEN`] connections open at once (the rest are counted as skipped, not queued).

pub mod args;
pub mod inject;
pub mod proxy;
pub mod report;

/// Most connections a drill holds open at once.
pub const MAX_OPEN: usize = 4096;

use std::process::ExitCode;

use crate::cli::{ChaosCommand, InjectArgs, ProxyArgs};

/// Exit status for bad drill arguments.
const EXIT_USAGE: u8 = 2;

fn usage(msg: String) -> ExitCode {
    println!("ronctl: {msg}");
    ExitCode::from(EXIT_USAGE)
}

/// Runs one chaos subcommand.
pub async fn run(cmd: ChaosCommand) -> ExitCode {
    match cmd {
        ChaosCommand::Inject(a) => run_inject(a).await,
        ChaosCommand::Proxy(a) => run_proxy(a).await,
    }
}

async fn run_inject(a: InjectArgs) -> ExitCode {
    let parsed = (|| {
        Ok::<_, String>(inject::Drill {
            target: args::target(&a.target)?,
            url: a.target.clone(),
            fault: a.fault,
            rate: args::rate(&a.rate)?,
            duration: args::duration(&a.duration)?,
            trickle: args::duration(&a.trickle)?,
        })
    })();
    let drill = match parsed {
        Ok(d) => d,
        Err(e) => return usage(e),
    };
    let report = inject::run(drill).await;
    for line in report.lines() {
        println!("ronctl: {line}");
    }
    if a.json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    }
    ExitCode::SUCCESS
}

async fn run_proxy(a: ProxyArgs) -> ExitCode {
    let parsed = (|| {
        Ok::<_, String>(proxy::ProxyPlan {
            listen: args::loopback(&a.listen, 0)?,
            upstream: args::loopback(&a.upstream, 80)?,
            latency: args::duration(&a.latency)?,
            jitter: args::duration(&a.jitter)?,
            reset_every: a.reset_every,
            duration: a.duration.as_deref().map(args::duration).transpose()?,
            fault_after: args::duration(&a.fault_after)?,
            fault_for: a.fault_for.as_deref().map(args::duration).transpose()?,
        })
    })();
    let plan = match parsed {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let listener = match proxy::bind(&plan).await {
        Ok(l) => l,
        Err(e) => return usage(format!("cannot listen on {}: {e}", plan.listen)),
    };
    let addr = listener.local_addr().map_or(plan.listen, |a| a);
    println!(
        "ronctl: chaos proxy listening on {addr} -> {} (latency {:?} ±{:?}, reset every {}, fault from {:?} for {})",
        plan.upstream,
        plan.latency,
        plan.jitter,
        plan.reset_every,
        plan.fault_after,
        plan.fault_for.map_or("ever".into(), |d| format!("{d:?}"))
    );
    let stop = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    };
    let stats = proxy::serve(listener, plan, stop).await;
    println!(
        "ronctl: chaos proxy stopped: {}",
        serde_json::to_string(&stats).unwrap_or_default()
    );
    ExitCode::SUCCESS
}
