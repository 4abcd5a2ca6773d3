//! Records the compiler version and the git commit for `mongoose-server --version`
//! (`mongoose-server <semver> (<git sha>, rustc <ver>)`, MNG-R09).

use std::path::Path;
use std::process::Command;

fn output(cmd: &mut Command) -> Option<String> {
    let o = cmd.output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8(o.stdout).ok())
        .flatten()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = output(Command::new(rustc).arg("--version"))
        .and_then(|s| s.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=MONGOOSE_RUSTC_VERSION={version}");
    // RON_BUILD_SHA (set by packaging) wins; else the checkout's commit; else "unknown".
    let sha = std::env::var("RON_BUILD_SHA")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| output(Command::new("git").args(["rev-parse", "--short=12", "HEAD"])))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=MONGOOSE_GIT_SHA={sha}");
    println!("cargo:rerun-if-env-changed=RON_BUILD_SHA");
    println!("cargo:rerun-if-changed=build.rs");
    // Re-run when the checkout moves to another commit.
    let git = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.git");
    let head = git.join("HEAD");
    if head.exists() {
        println!("cargo:rerun-if-changed={}", head.display());
        if let Some(r) = std::fs::read_to_string(&head)
            .ok()
            .and_then(|h| h.strip_prefix("ref: ").map(|r| r.trim().to_string()))
        {
            println!("cargo:rerun-if-changed={}", git.join(r).display());
        }
    }
}
