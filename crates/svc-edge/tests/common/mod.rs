//! Helpers shared by the integration-test crates. Each test crate uses a different subset,
//! so items unused in one crate are expected.
#![allow(dead_code)]

pub mod edge;
pub mod origin;

/// The external tool `name` from PATH. Absent, the calling test skips its part with a
/// notice, unless `RON_REQUIRE_EXTERNAL_TOOLS` is set (scripts/test.sh sets it), in which
/// case the test fails.
pub fn external(name: &str) -> Option<std::path::PathBuf> {
    let found = test_support::tool(name);
    assert!(
        found.is_some() || std::env::var_os("RON_REQUIRE_EXTERNAL_TOOLS").is_none(),
        "{name} is required (RON_REQUIRE_EXTERNAL_TOOLS is set)"
    );
    found
}

/// The repository root.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// REDbot's HAR notes at level BAD (subnotes included) for `url`.
pub fn redbot_bad_notes(redbot: &std::path::Path, url: &str) -> Vec<String> {
    let out = std::process::Command::new(redbot)
        .args(["-o", "har", url])
        .output()
        .expect("run redbot");
    let har: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "redbot gave no HAR for {url}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let mut bad = Vec::new();
    let entries = har["log"]["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!entries.is_empty(), "redbot checked nothing at {url}");
    for e in entries {
        for m in e["_red_messages"].as_array().cloned().unwrap_or_default() {
            let mut notes = vec![m.clone()];
            notes.extend(m["subnotes"].as_array().cloned().unwrap_or_default());
            for n in notes {
                if n["level"]
                    .as_str()
                    .is_some_and(|l| l.eq_ignore_ascii_case("bad"))
                {
                    bad.push(format!("{url}: {} {}", n["note_id"], n["summary"]));
                }
            }
        }
    }
    bad
}
