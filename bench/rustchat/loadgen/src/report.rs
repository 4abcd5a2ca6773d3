//! The human summary of a JSON report (the JSON is the record; this is what a person reads).

use std::fmt::Write;

use serde_json::Value;

fn f(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", x as i64),
        Some(x) => format!("{x:.2}"),
        None => "-".into(),
    }
}

/// Formats the report as a few lines of text.
pub fn summary(r: &Value) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "rustchat-loadgen {} driver={} servers={} seed: {} users, {} channels, {} posts in {} s",
        r["label"].as_str().unwrap_or(""),
        r["driver"].as_str().unwrap_or("?"),
        r["servers"].as_array().map_or(0, Vec::len),
        f(&r["seed"]["users"]),
        f(&r["seed"]["channels"]),
        f(&r["seed"]["posts"]),
        f(&r["seed"]["seconds"]),
    );
    for w in r["windows"].as_array().into_iter().flatten() {
        let g = &w["gates"];
        let d = &w["window"]["delivery"];
        let x = &w["window"]["delivery_cross_node"];
        let _ = writeln!(
            s,
            "  {:>6} users: gates {:<4} calls {} mean {} ms p99 {} ms 5xx+err {:.4}% timeouts {:.4}% | delivery n={} p50 {} ms p99 {} ms{}",
            f(&w["users"]),
            if g["pass"].as_bool() == Some(true) {
                "PASS"
            } else {
                "FAIL"
            },
            f(&g["calls"]),
            f(&g["mean_ms"]["value"]),
            f(&g["p99_ms"]["value"]),
            g["error_ratio"]["value"].as_f64().unwrap_or(0.0) * 100.0,
            g["timeout_ratio"]["value"].as_f64().unwrap_or(0.0) * 100.0,
            f(&d["count"]),
            f(&d["p50_ms"]),
            f(&d["p99_ms"]),
            if x["count"].as_u64().unwrap_or(0) > 0 {
                format!(
                    " | cross-node p50 {} ms p99 {} ms",
                    f(&x["p50_ms"]),
                    f(&x["p99_ms"])
                )
            } else {
                String::new()
            }
        );
        let cpu = &w["cpu"];
        let rss: Vec<String> = w["server_rss"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "{} MiB",
                    p["rss_bytes"]
                        .as_f64()
                        .map_or("-".into(), |b| format!("{:.0}", b / 1048576.0))
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "          cpu: server {} cores, generator {} cores (of {}); server RSS {}",
            f(&cpu["server_cores"]),
            f(&cpu["generator_cores"]),
            f(&cpu["machine_cores"]),
            if rss.is_empty() {
                "-".into()
            } else {
                rss.join(" + ")
            },
        );
    }
    let rec = &r["reconciliation"];
    let _ = writeln!(
        s,
        "  reconciliation {}: posts sent {} created {} | deliveries expected {} got {} missing {} duplicates {} foreign {} | seq gaps {}",
        if rec["ok"].as_bool() == Some(true) {
            "ok"
        } else {
            "FAILED"
        },
        f(&rec["posts_sent"]),
        f(&rec["posts_created"]),
        f(&rec["expected_deliveries"]),
        f(&rec["delivered_expected"]),
        f(&rec["missing"]),
        f(&rec["duplicates"]),
        f(&rec["foreign"]),
        f(&r["users"]["seq_gaps"]),
    );
    let mm = &r["mattermost_reference"];
    let _ = writeln!(
        s,
        "  users within gates: {} → Mattermost reference ratio {} (÷ {}; not like-for-like)",
        f(&r["users_within_gates"]),
        f(&mm["ratio"]),
        f(&mm["users_per_node"]),
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_survives_empty_and_odd_reports() {
        assert!(summary(&Value::Null).contains("reconciliation FAILED"));
        let r = serde_json::json!({"windows": [{"users": 5, "gates": {"pass": true}}], "reconciliation": {"ok": true}});
        let s = summary(&r);
        assert!(s.contains("     5 users: gates PASS"), "{s}");
        assert!(s.contains("reconciliation ok"));
    }
}
