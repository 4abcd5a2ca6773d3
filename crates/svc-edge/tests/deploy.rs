//! The runbook's operational artefacts against the real binary and real tools (EDGE-T28,
//! T30): the §5 `jq` log filters over captured stdout, every Appendix C query evaluated by
//! a Prometheus server scraping the metrics listener, the systemd unit through
//! `systemd-analyze verify` with every Appendix G directive, and the Kubernetes manifests
//! matching Appendix B's probes and securityContext.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::edge::Edge;
use common::{external, repo_root};
use test_support::{get, run_with_stdin, temp_dir};

fn start_sample_edge(dir: &Path) -> Edge {
    let packs = repo_root().join("data/world.pmtiles");
    let e = Edge::start(
        dir,
        &format!("[edge]\npacks = [\"{}\"]\n", packs.display()),
        &[],
    );
    e.wait_ready();
    e
}

#[test]
fn edge_t28_the_runbook_jq_filters_read_every_log_line() {
    let Some(jq) = external("jq") else { return };
    let dir = temp_dir("deploy-jq");
    let mut e = start_sample_edge(&dir);
    get(e.api, "/edge/tiles/world/0/0/0.mvt", &[]);
    get(e.api, "/edge/assets/missing.bin", &[]);
    get(e.api, "/edge/assets/%2e%2e/x", &[]);
    e.events("request", Duration::from_millis(400));
    let captured = e.log.join("\n") + "\n";
    assert!(e.log.len() >= 6, "{:?}", e.log);
    let filter = r#".ts+" "+.level+" "+.event+" "+(.reason//"")+" "+(.latency_ms|tostring)+"ms""#;
    let (code, out, err) = run_with_stdin(&jq, &["-r", filter], captured.as_bytes());
    assert_eq!(code, 0, "jq -r failed: {err}");
    assert_eq!(out.lines().count(), e.log.len());
    assert!(
        out.lines().any(|l| l.contains(" request bad_path ")),
        "{out}"
    );
    let (code, _, err) = run_with_stdin(&jq, &["."], captured.as_bytes());
    assert_eq!(code, 0, "jq . failed: {err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A Prometheus server on a free loopback port, killed on drop.
struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_prometheus(bin: &Path, dir: &Path, target: std::net::SocketAddr) -> Prometheus {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: svc-edge\n    static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    )
    .unwrap();
    // Prometheus cannot report a port-0 bind, so take a free port and hand it over.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

fn promtool_query(promtool: &Path, url: &str, expr: &str) -> (bool, String) {
    let out = Command::new(promtool)
        .args(["query", "instant", url, expr])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn edge_t30_appendix_c_queries_evaluate_against_prometheus_scraping_the_edge() {
    let (Some(prometheus), Some(promtool)) = (external("prometheus"), external("promtool")) else {
        return;
    };
    let dir = temp_dir("deploy-prom");
    let e = start_sample_edge(&dir);
    let p = start_prometheus(&prometheus, &dir, e.metrics);
    // Wait for the first successful scrape.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        get(e.api, "/edge/tiles/world/0/0/0.mvt", &[]);
        let (ok, out) = promtool_query(&promtool, &p.url, "up{job=\"svc-edge\"} == 1");
        if ok && out.contains("=> 1") {
            break;
        }
        assert!(Instant::now() < deadline, "Prometheus never scraped: {out}");
        std::thread::sleep(Duration::from_millis(250));
    }
    let (ok, out) = promtool_query(
        &promtool,
        &p.url,
        "http_requests_total{route=\"tiles\",service=\"svc-edge\",amnesia=\"off\"}",
    );
    assert!(ok && out.contains("status=\"200\""), "{out}");
    let queries =
        std::fs::read_to_string(repo_root().join("deploy/svc-edge/prometheus/queries.promql"))
            .unwrap();
    let exprs: Vec<&str> = queries
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(exprs.len(), 8, "every Appendix C expression is in the file");
    for expr in exprs {
        let (ok, out) = promtool_query(&promtool, &p.url, expr);
        assert!(ok, "{expr}: {out}");
    }
    // A broken expression does fail, so the loop above is a real check.
    let (ok, _) = promtool_query(&promtool, &p.url, "sum(rate(http_requests_total[5m]");
    assert!(!ok);
    drop(p);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runbook Appendix G: every directive the hardened unit must carry.
const APPENDIX_G: [&str; 9] = [
    "ProtectSystem=strict",
    "ProtectHome=true",
    "PrivateTmp=true",
    "ProtectKernelTunables=true",
    "ProtectControlGroups=true",
    "MemoryDenyWriteExecute=true",
    "RestrictSUIDSGID=true",
    "LockPersonality=true",
    "SystemCallFilter=@system-service",
];

/// Deploy-file choices beyond Appendix G: a dedicated user and a state directory for the CAS.
const UNIT_EXTRAS: [&str; 3] = [
    "User=svc-edge",
    "StateDirectory=svc-edge",
    "NoNewPrivileges=true",
];

#[test]
fn edge_t30_the_systemd_unit_verifies_and_carries_appendix_g() {
    let unit =
        std::fs::read_to_string(repo_root().join("deploy/svc-edge/systemd/svc-edge.service"))
            .unwrap();
    for directive in APPENDIX_G.iter().chain(&UNIT_EXTRAS) {
        assert!(
            unit.lines().any(|l| l.trim() == *directive),
            "missing {directive}"
        );
    }
    let Some(analyze) = external("systemd-analyze") else {
        return;
    };
    let dir = temp_dir("deploy-systemd");
    let rewritten = unit
        .lines()
        .map(|l| match l.strip_prefix("ExecStart=") {
            Some(rest) => {
                let args = rest.split_once(' ').map(|(_, a)| a).unwrap_or("");
                format!("ExecStart={} {args}", common::edge::BIN)
            }
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.join("svc-edge.service");
    std::fs::write(&path, &rewritten).unwrap();
    let out = Command::new(&analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A unit pointing at a missing binary is refused, so the check above can fail.
    let broken = rewritten.replace(common::edge::BIN, "/nonexistent/svc-edge");
    std::fs::write(&path, broken).unwrap();
    let out = Command::new(&analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success() || !out.stderr.is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn edge_t30_kubernetes_manifests_match_appendix_b() {
    use serde_json::{Value, json};
    let text =
        std::fs::read_to_string(repo_root().join("deploy/svc-edge/k8s/deployment.yaml")).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment");
    let c = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["args"], json!(["--config", "/etc/ron/svc-edge.toml"]));
    assert_eq!(
        c["readinessProbe"],
        json!({"httpGet": {"path": "/readyz", "port": "http"}, "initialDelaySeconds": 3,
               "periodSeconds": 5, "failureThreshold": 6})
    );
    assert_eq!(
        c["livenessProbe"],
        json!({"httpGet": {"path": "/healthz", "port": "http"}, "initialDelaySeconds": 3,
               "periodSeconds": 5})
    );
    assert_eq!(
        c["securityContext"],
        json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
               "runAsNonRoot": true, "runAsUser": 10001, "capabilities": {"drop": ["ALL"]}})
    );
    let ports: Vec<(String, u64)> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [("http".to_owned(), 8080), ("metrics".to_owned(), 9909)]
    );
    assert!(docs.iter().any(|d| d["kind"] == "Service"));
    let hpa: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo_root().join("deploy/svc-edge/k8s/hpa.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        hpa["spec"]["metrics"][0]["pods"]["metric"]["name"],
        "edge_inflight"
    );
}
