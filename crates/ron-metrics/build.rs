//! Finds the git revision for the `build_version` base label.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=RON_GIT_SHA");
    let sha = std::env::var("RON_GIT_SHA")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=8", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .filter(|s| s.len() >= 8 && s.bytes().all(|b| b.is_ascii_hexdigit()));
    if let Some(sha) = sha {
        println!("cargo:rustc-env=RON_BUILD_SHA={}", &sha[..8]);
    }
}
