//! `ronctl status`: each service of a running `ronctl up` and whether it is ready.

use std::process::ExitCode;

use serde_json::Value;

use crate::cli::StatusArgs;
use crate::up::STATE_FILE;

/// Prints one line per service (`name  ready|not-ready|down  detail`); exit 0 when all
/// are ready, 1 when any is not, 3 when no stack is running there.
pub async fn run(args: StatusArgs) -> ExitCode {
    let path = args.state_dir.join(STATE_FILE);
    let doc: Value = match std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(d) => d,
        None => {
            println!(
                "no running stack in {} (start one with `ronctl up`)",
                args.state_dir.display()
            );
            return ExitCode::from(3);
        }
    };
    println!("front door: {}", doc["front"].as_str().unwrap_or("?"));
    let mut all = true;
    for s in doc["services"].as_array().into_iter().flatten() {
        let name = s["name"].as_str().unwrap_or("?");
        let url = s["ready_url"].as_str().unwrap_or("");
        let (state, detail) = match crate::probe::status(url).await {
            Ok(200) => ("ready", format!("200 {url}")),
            Ok(code) => ("not-ready", format!("{code} {url}")),
            Err(e) => ("down", format!("{e} ({url})")),
        };
        all &= state == "ready";
        println!("{name:<16} {state:<9} pid {:<7} {detail}", s["pid"]);
    }
    if all {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
