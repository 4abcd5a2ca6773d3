//! MNG-T31: a tiny `--quick` run of the built binary exits 0, prints the
//! `ratio mongoose/crossbeam` line and reconciles `sent = received + dropped` for every
//! implementation. Durations are tiny so a 2-core CI box is busy for a few seconds only;
//! nothing here asserts a timing.

use std::process::Command;

#[test]
fn quick_run_prints_ratios_and_reconciles_every_implementation() {
    let dir = std::env::temp_dir().join(format!("mongoose-bench-t31-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_mongoose-bench"))
        .args([
            "--quick",
            "--warmup-s",
            "0",
            "--duration-s",
            "0.5",
            "--rates",
            "20000",
            "--capacity",
            "256",
            "--out",
        ])
        .arg(&dir)
        .output()
        .expect("mongoose-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ratio mongoose/crossbeam latency_p99 "),
        "{stdout}"
    );
    assert!(
        stdout.contains("ratio mongoose/rtrb latency_p99 "),
        "{stdout}"
    );
    for label in ["mongoose", "mongoose+lat", "crossbeam", "rtrb"] {
        for phase in [
            format!("{label} rate 20000: "),
            format!("{label} throughput: "),
        ] {
            let line = stdout
                .lines()
                .find(|l| l.starts_with(&phase))
                .unwrap_or_else(|| panic!("no '{phase}' line in\n{stdout}"));
            assert!(
                line.contains(" = received ") && line.ends_with(": ok"),
                "{line}"
            );
            // The numbers themselves add up: "sent S = received R + dropped D: ok".
            let n: Vec<u64> = line[phase.len()..]
                .split_whitespace()
                .filter_map(|w| w.trim_end_matches(':').parse().ok())
                .collect();
            assert_eq!(n.len(), 3, "{line}");
            assert_eq!(n[0], n[1] + n[2], "{line}");
        }
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("results.json")).expect("results.json"))
            .expect("valid JSON");
    assert_eq!(json["latency"][0]["runs"].as_array().map(Vec::len), Some(4));
    assert!(dir.join("mongoose-20000-corrected.hgrm").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
