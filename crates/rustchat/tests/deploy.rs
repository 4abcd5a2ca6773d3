//! The shipped deploy files (CHAT-R5): the systemd unit carries the spec's settings and
//! passes `systemd-analyze verify`; the env example and the sample config are what the
//! runbook expects. The monitoring and Kubernetes files under deploy/rustchat/ (spec §5
//! CHAT-R26, §9 CHAT-R32) are checked against a running server: the Prometheus rules pass
//! `promtool check rules` and their unit tests, read only metrics the server exports, and
//! cover the runbook's alert table; the dashboard reads only exported metrics through its
//! datasource variable; the manifests use the runbook's names, probe paths the server
//! answers and variables `--check-config` accepts.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use test_support::monitoring::{dashboard_queries, families, family_of, run_ok, squeeze};
use test_support::{external, promql, temp_dir};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_systemd_unit_has_the_spec_settings_and_verifies() {
    let unit = std::fs::read_to_string(repo().join("deploy/rustchat/rustchat.service")).unwrap();
    for line in [
        "WorkingDirectory=/opt/rustchat",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=45",
        "Restart=on-failure",
        "LimitNOFILE=1048576",
    ] {
        assert!(unit.lines().any(|l| l.trim() == line), "missing {line}");
    }
    let Some(analyze) = external("systemd-analyze") else {
        return;
    };
    let dir = temp_dir("rustchat-unit");
    let path = dir.join("rustchat.service");
    // Verify against the test binary and a directory that exists here.
    let unit = unit
        .replace("/opt/rustchat/rustchat", common::bin().to_str().unwrap())
        .replace(
            "WorkingDirectory=/opt/rustchat",
            &format!("WorkingDirectory={}", dir.display()),
        )
        .replace("User=rustchat\n", "")
        .replace("Group=rustchat\n", "");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn env_example_names_every_runbook_variable() {
    let env = std::fs::read_to_string(repo().join("deploy/rustchat/env.example")).unwrap();
    for var in [
        "RUSTCHAT_ENVIRONMENT=production",
        "RUSTCHAT_JWT_SECRET=",
        "RUSTCHAT_ENCRYPTION_KEY=",
        "RUSTCHAT_DATABASE_URL=",
        "RUSTCHAT_REDIS_URL=",
        "RUSTCHAT_SECURITY_OAUTH_TOKEN_DELIVERY=cookie",
    ] {
        assert!(env.lines().any(|l| l.starts_with(var)), "missing {var}");
    }
}

fn deploy_dir() -> PathBuf {
    repo().join("deploy/rustchat")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of the YAML stream in `path`, as JSON values.
fn yaml_docs(path: &Path) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(&read(path))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const RULES: &str = "rustchat-rules.yml";
const RULES_TEST: &str = "rustchat-rules.test.yml";
const SCRAPE_CONFIGS: [&str; 2] = ["scrape-static.yml", "scrape-kubernetes.yml"];
const METRICS_PATH: &str = "/api/v1/health/metrics";

/// The rules of every group in the shipped rules file.
fn prometheus_rules() -> Vec<Value> {
    let docs = yaml_docs(&deploy_dir().join("prometheus").join(RULES));
    assert_eq!(docs.len(), 1, "one YAML document");
    docs[0]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").iter().cloned())
        .collect()
}

fn rule_str<'a>(rule: &'a Value, field: &str) -> &'a str {
    rule[field].as_str().unwrap_or("")
}

/// Test 13 / §9 "PromQL" row (CHAT-R26, R32): the rules pass `promtool check rules`, their
/// unit tests fire and clear every alert (`promtool test rules`), and both scrape snippets
/// pass `promtool check config`.
#[test]
fn prometheus_rules_and_scrape_configs_pass_promtool() {
    let dir = deploy_dir().join("prometheus");
    assert!(read(&dir.join(RULES)).contains("alert:"));
    let Some(promtool) = external("promtool") else {
        return;
    };
    let out = run_ok(&promtool, &dir, &["check", "rules", RULES]);
    assert!(out.contains("SUCCESS"), "{out}");
    let out = run_ok(&promtool, &dir, &["test", "rules", RULES_TEST]);
    assert!(out.contains("SUCCESS"), "{out}");
    run_ok(&promtool, &dir, &["check", "config", SCRAPE_CONFIGS[0]]);

    let k8s = SCRAPE_CONFIGS[1];
    let out = Command::new(&promtool)
        .args(["check", "config", k8s])
        .current_dir(&dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        return;
    }
    // Distribution builds of promtool (Debian's) leave the Kubernetes discoverer out, so
    // they reject `kubernetes_sd_configs` itself; check everything else with a static
    // target in its place.
    assert!(
        text.contains("field kubernetes_sd_configs not found"),
        "{k8s}:\n{text}"
    );
    eprintln!(
        "note: this promtool has no Kubernetes discovery; checking {k8s} with a static target"
    );
    let sd = "    kubernetes_sd_configs:\n      - role: pod\n";
    let original = read(&dir.join(k8s));
    assert!(
        original.contains(sd),
        "{k8s} changed shape; update this test"
    );
    let scratch = temp_dir("rustchat-scrape");
    std::fs::write(
        scratch.join(k8s),
        original.replace(
            sd,
            "    static_configs:\n      - targets: [\"10.0.0.1:3000\"]\n",
        ),
    )
    .unwrap();
    std::fs::copy(dir.join(RULES), scratch.join(RULES)).unwrap();
    run_ok(&promtool, &scratch, &["check", "config", k8s]);
    std::fs::remove_dir_all(scratch).unwrap();
}

/// The runbook's "Key Metrics" table (Monitoring), row by row: the alert that carries it and
/// the query text and threshold it must contain. Plus P1 (target down) and P2 (> 5% 5xx).
const RUNBOOK_ALERTS: [(&str, &[&str]); 7] = [
    (
        "RustchatHighErrorRate",
        &[
            r#"rate(rustchat_http_requests_total{status=~"5.."}[5m])"#,
            "> 0.01",
        ],
    ),
    (
        "RustchatHighLatencyP99",
        &[
            "histogram_quantile(0.99,",
            "rate(rustchat_http_request_duration_seconds_bucket[5m])",
            "> 0.5",
        ],
    ),
    (
        "RustchatDbPoolSaturation",
        &["rustchat_db_pool_saturation_ratio > 0.8"],
    ),
    (
        "RustchatWebSocketConnectionLimit",
        &["rustchat_websocket_active_connections >= rustchat_websocket_connection_limit"],
    ),
    (
        "RustchatCircuitBreakerStateChange",
        &["increase(rustchat_circuit_breaker_state_changes_total[5m]) > 0"],
    ),
    ("RustchatDown", &[r#"up{job="rustchat"} == 0"#]),
    (
        "RustchatHighErrorRateCritical",
        &[
            r#"rate(rustchat_http_requests_total{status=~"5.."}[5m])"#,
            "> 0.05",
        ],
    ),
];

/// §9 (CHAT-R32): one alert per row of the runbook's alert table with its query and
/// threshold, each with a severity and a runbook pointer; the unit tests make every alert
/// fire and stay silent at least once and evaluate every recording rule; the scrape
/// snippets use the job name the rules expect.
#[test]
fn alert_rules_carry_the_runbook_table_and_are_unit_tested() {
    let rules = prometheus_rules();
    let alerts: BTreeMap<&str, &Value> = rules
        .iter()
        .filter(|r| r.get("alert").is_some())
        .map(|r| (rule_str(r, "alert"), r))
        .collect();
    for (name, fragments) in RUNBOOK_ALERTS {
        let rule = alerts
            .get(name)
            .unwrap_or_else(|| panic!("no alert {name}"));
        let expr = squeeze(rule_str(rule, "expr"));
        for f in fragments {
            assert!(expr.contains(f), "{name}: {expr:?} lacks {f:?}");
        }
    }
    assert_eq!(
        alerts.len(),
        RUNBOOK_ALERTS.len(),
        "an alert this test does not know"
    );
    for (name, rule) in &alerts {
        assert!(
            matches!(
                rule["labels"]["severity"].as_str(),
                Some("warning" | "critical")
            ),
            "{name}: severity"
        );
        assert!(
            rule["annotations"]["runbook"]
                .as_str()
                .is_some_and(|r| r.starts_with("runbooks/rustchat.md ")),
            "{name}: runbook annotation"
        );
        assert!(
            rule["annotations"]["summary"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{name}: summary"
        );
    }

    let tests = yaml_docs(&deploy_dir().join("prometheus").join(RULES_TEST));
    let tests = &tests[0];
    assert_eq!(tests["rule_files"], serde_json::json!([RULES]));
    let mut fired = BTreeSet::new();
    let mut silent = BTreeSet::new();
    let mut exprs = Vec::new();
    for case in tests["tests"].as_array().expect("tests") {
        for t in case["alert_rule_test"].as_array().into_iter().flatten() {
            let name = t["alertname"].as_str().unwrap().to_string();
            match t["exp_alerts"].as_array().map(Vec::len) {
                Some(0) | None => silent.insert(name),
                Some(_) => fired.insert(name),
            };
        }
        for t in case["promql_expr_test"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    for name in alerts.keys() {
        assert!(fired.contains(*name), "no unit test fires {name}");
        assert!(silent.contains(*name), "no unit test keeps {name} silent");
    }
    for rule in rules.iter().filter(|r| r.get("record").is_some()) {
        let record = rule_str(rule, "record");
        assert!(
            exprs
                .iter()
                .any(|e| promql::metric_names(e).contains(record)),
            "no unit test evaluates the recording rule {record}"
        );
    }

    for file in SCRAPE_CONFIGS {
        let doc = &yaml_docs(&deploy_dir().join("prometheus").join(file))[0];
        let jobs = doc["scrape_configs"].as_array().expect("scrape_configs");
        assert_eq!(jobs.len(), 1, "{file}");
        assert_eq!(
            jobs[0]["job_name"], "rustchat",
            "{file}: RustchatDown matches job=\"rustchat\""
        );
        assert_eq!(jobs[0]["metrics_path"], METRICS_PATH, "{file}");
        assert_eq!(
            jobs[0]["honor_labels"], true,
            "{file}: instance is the node id"
        );
        assert_eq!(doc["rule_files"], serde_json::json!([RULES]), "{file}");
    }
}

/// The shipped Grafana dashboard, parsed.
fn dashboard() -> Value {
    serde_json::from_str(&read(&deploy_dir().join("grafana/rustchat.json")))
        .expect("grafana/rustchat.json is JSON")
}

/// Test 13 / §9 (CHAT-R26, R32): every metric the alert rules, recording rules and dashboard
/// read is a family a freshly started SQLite server exports on the scrape path (families
/// are pre-registered, breaker transitions included), and the dashboard shows every rustchat
/// family.
#[test]
fn every_metric_the_rules_and_dashboard_read_is_exported() {
    let Some(chat) = common::Chat::start(common::Db::Sqlite, &[]) else {
        return;
    };
    let page = test_support::get(chat.addr, METRICS_PATH, &[]);
    assert_eq!(page.status, 200);
    let families = families(&page.text());
    assert!(
        families.contains_key("rustchat_http_requests_total"),
        "{}",
        page.text()
    );

    let rules = prometheus_rules();
    let recorded: BTreeSet<&str> = rules.iter().map(|r| rule_str(r, "record")).collect();
    let mut queries: Vec<(String, String)> = rules
        .iter()
        .map(|r| {
            let name = if r.get("alert").is_some() {
                "alert"
            } else {
                "record"
            };
            (
                format!("{name} {}", rule_str(r, name)),
                rule_str(r, "expr").to_string(),
            )
        })
        .collect();
    let dash = dashboard();
    let dash_queries = dashboard_queries(&dash);
    queries.extend(dash_queries.iter().cloned());

    let mut missing = Vec::new();
    let mut checked = BTreeSet::new();
    for (place, expr) in &queries {
        let names = promql::metric_names(expr);
        assert!(!names.is_empty(), "{place}: no metric in {expr:?}");
        for name in names {
            // `up` is Prometheus's own per-target series (RustchatDown), not rustchat's.
            if recorded.contains(name.as_str()) || name == "up" {
                continue;
            }
            if family_of(&families, &name).is_none() {
                missing.push(format!("{place}: {name}"));
            }
            checked.insert(name);
        }
    }
    assert!(
        missing.is_empty(),
        "not exported by the server: {missing:#?}"
    );
    let on_dashboard: BTreeSet<String> = dash_queries
        .iter()
        .flat_map(|(_, e)| promql::metric_names(e))
        .map(|n| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s).filter(|b| families.contains_key(*b)))
                .map_or(n.clone(), str::to_string)
        })
        .collect();
    let absent: Vec<&String> = families
        .keys()
        .filter(|f| f.starts_with("rustchat_") && !on_dashboard.contains(*f))
        .collect();
    assert!(
        absent.is_empty(),
        "families without a dashboard panel: {absent:?}"
    );
    assert!(checked.len() >= 20, "{checked:?}");
}

/// §5.1 panels (CHAT-R26): the dashboard is a current-schema Grafana dashboard whose every
/// panel and query uses the datasource variable, every query is non-empty and filtered by the
/// instance variable, and panel ids are unique.
#[test]
fn grafana_dashboard_panels_use_the_datasource_and_instance_variables() {
    test_support::monitoring::Deploy::new(&repo(), "rustchat").check_dashboard_shape(20);
}

/// Every object of the Kubernetes manifests, the example Secrets included.
fn k8s_objects() -> Vec<Value> {
    let dir = deploy_dir().join("k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut objects = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.ends_with(".yaml") || name.ends_with(".yaml.example"),
            "unexpected file k8s/{name}"
        );
        for doc in yaml_docs(&f) {
            assert!(
                doc["apiVersion"].is_string() && doc["kind"].is_string(),
                "k8s/{name}: a document without apiVersion/kind"
            );
            assert!(
                doc["metadata"].get("namespace").is_none(),
                "k8s/{name}: manifests are namespace-agnostic"
            );
            objects.push(doc);
        }
    }
    objects
}

fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// Whether a `matchLabels`-style selector selects `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let sel = selector.as_object().expect("selector");
    !sel.is_empty() && sel.iter().all(|(k, v)| labels[k] == *v)
}

/// `key = value` of `[section]` in the shipped sample configuration (configs/rustchat.toml
/// lists every key at its default).
fn sample_default(section: &str, key: &str) -> String {
    let text = read(&repo().join("configs/rustchat.toml"));
    let mut in_section = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == format!("[{section}]");
        } else if in_section
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return v.trim().to_string();
        }
    }
    panic!("configs/rustchat.toml has no {section}.{key}")
}

/// The variables Kubernetes injects into pods for `service` (docker-link style), with
/// `cluster_ip` as its address.
fn service_links(service: &Value, cluster_ip: &str) -> Vec<(String, String)> {
    let prefix = service["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_ascii_uppercase()
        .replace('-', "_");
    let ports = service["spec"]["ports"].as_array().expect("ports");
    let mut vars = vec![(format!("{prefix}_SERVICE_HOST"), cluster_ip.to_string())];
    for (i, p) in ports.iter().enumerate() {
        let port = p["port"].as_u64().unwrap();
        let proto = p["protocol"].as_str().unwrap_or("TCP");
        let url = format!("{}://{cluster_ip}:{port}", proto.to_ascii_lowercase());
        let tail = format!("{prefix}_PORT_{port}_{proto}");
        if i == 0 {
            vars.push((format!("{prefix}_SERVICE_PORT"), port.to_string()));
            vars.push((format!("{prefix}_PORT"), url.clone()));
        }
        if let Some(name) = p["name"].as_str() {
            let name = name.to_ascii_uppercase().replace('-', "_");
            vars.push((format!("{prefix}_SERVICE_PORT_{name}"), port.to_string()));
        }
        vars.push((tail.clone(), url));
        vars.push((format!("{tail}_PROTO"), proto.to_ascii_lowercase()));
        vars.push((format!("{tail}_PORT"), port.to_string()));
        vars.push((format!("{tail}_ADDR"), cluster_ip.to_string()));
    }
    vars
}

/// A strong random secret as `openssl rand -base64 48` makes.
fn strong_secret() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 48];
    rand::fill(&mut bytes[..]);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// CHAT-R5, §9 (R32), decision 7: the Kubernetes manifests carry the runbook's names
/// (`deployment rustchat`, `-l app=rustchat`, Secret `rustchat-secrets` key `jwt`), probe
/// paths the server answers 200 on, the default port, a termination grace above the drain
/// grace, a non-root read-only pod with a writable shared data volume, and a Service whose
/// injected links plus every ConfigMap and Secret variable pass `rustchat --check-config`
/// against loopback PostgreSQL and Redis.
#[test]
fn kubernetes_manifests_match_the_server_and_the_runbook() {
    let objects = k8s_objects();
    let deployment = object(&objects, "Deployment", "rustchat");
    let service = object(&objects, "Service", "rustchat");
    let pdb = object(&objects, "PodDisruptionBudget", "rustchat");
    let config = object(&objects, "ConfigMap", "rustchat-config");
    let config_data = config["data"].as_object().expect("ConfigMap data");
    let cm = |key: &str| config_data.get(key).and_then(Value::as_str);

    // Runbook: `kubectl scale deployment rustchat`, `kubectl logs -l app=rustchat`.
    let spec = &deployment["spec"];
    let replicas = spec["replicas"].as_u64().unwrap();
    assert_eq!(replicas, 2);
    let pod = &spec["template"];
    let labels = &pod["metadata"]["labels"];
    assert_eq!(labels["app"], "rustchat");
    assert!(selects(&spec["selector"]["matchLabels"], labels));
    let pod_spec = &pod["spec"];
    let containers = pod_spec["containers"].as_array().unwrap();
    assert_eq!(
        containers.len(),
        1,
        "`kubectl logs -l app=rustchat` needs one container"
    );
    let c = &containers[0];
    assert!(
        c["image"].as_str().unwrap().contains("REPLACE_WITH"),
        "the image is a documented placeholder"
    );
    assert!(read(&deploy_dir().join("README.md")).contains(c["image"].as_str().unwrap()));

    // Ports: the default port everywhere, the probes on the named container port.
    let default_port: u64 = sample_default("server", "port").parse().unwrap();
    assert_eq!(default_port, 3000, "the runbook's port");
    let ports = c["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["containerPort"].as_u64(), Some(default_port));
    let port_name = ports[0]["name"].as_str().unwrap();
    assert_eq!(
        cm("RUSTCHAT_SERVER_PORT"),
        Some(default_port.to_string().as_str())
    );
    let svc_port = &service["spec"]["ports"][0];
    assert_eq!(svc_port["port"].as_u64(), Some(default_port));
    assert_eq!(svc_port["targetPort"], port_name);
    assert!(selects(&service["spec"]["selector"], labels));
    assert!(selects(&pdb["spec"]["selector"]["matchLabels"], labels));
    assert!(pdb["spec"]["minAvailable"].as_u64().unwrap() < replicas);

    // Probes: the paths a running server answers 200 on, on the named port.
    let chat = common::Chat::start(common::Db::Sqlite, &[]).expect("sqlite");
    for (probe, path) in [
        ("livenessProbe", "/api/v1/health/live"),
        ("readinessProbe", "/api/v1/health/ready"),
    ] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(get["port"], port_name, "{probe}");
        let r = test_support::get(chat.addr, path, &[]);
        assert_eq!(r.status, 200, "{probe} {path}: {}", r.text());
    }
    drop(chat);

    // SIGTERM drain without preStop: the kill deadline covers the drain grace plus the
    // systemd unit's 15 s margin.
    let grace: u64 = cm("RUSTCHAT_SERVER_SHUTDOWN_GRACE_SECONDS")
        .map(str::to_string)
        .unwrap_or_else(|| sample_default("server", "shutdown_grace_seconds"))
        .parse()
        .unwrap();
    let termination = pod_spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(termination >= grace + 15, "{termination} < {grace} + 15");
    assert!(c["lifecycle"].get("preStop").is_none());

    // Non-root, read-only root, writable data volume shared by the replicas.
    assert_eq!(pod_spec["securityContext"]["runAsNonRoot"], true);
    assert!(pod_spec["securityContext"]["runAsUser"].as_u64().unwrap() > 0);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    let data_dir = cm("RUSTCHAT_DATA_DIR").expect("RUSTCHAT_DATA_DIR");
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == data_dir)
        .expect("a volume at RUSTCHAT_DATA_DIR");
    assert_ne!(mount["readOnly"], true);
    let volume = pod_spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    let claim = volume["persistentVolumeClaim"]["claimName"]
        .as_str()
        .unwrap();
    let pvc = object(&objects, "PersistentVolumeClaim", claim);
    assert_eq!(
        pvc["spec"]["accessModes"],
        serde_json::json!(["ReadWriteMany"]),
        "uploads live in the data dir and every replica serves them"
    );
    for kind in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(
                c["resources"][kind][res].is_string(),
                "resources.{kind}.{res}"
            );
        }
    }

    // Secrets: every reference resolves; the runbook's rotation
    // (`kubectl create secret generic rustchat-secrets --from-literal=jwt=…`) replaces
    // rustchat-secrets with `jwt` alone, so nothing else may be read from it.
    assert_eq!(
        c["envFrom"],
        serde_json::json!([{"configMapRef": {"name": "rustchat-config"}}])
    );
    let mut secret_vars = BTreeMap::new();
    for e in c["env"].as_array().unwrap() {
        let var = e["name"].as_str().unwrap();
        let r = &e["valueFrom"]["secretKeyRef"];
        let (secret, key) = (r["name"].as_str().unwrap(), r["key"].as_str().unwrap());
        let value = object(&objects, "Secret", secret)["stringData"][key]
            .as_str()
            .unwrap_or_else(|| panic!("{var}: Secret {secret} has no key {key}"));
        secret_vars.insert(var.to_string(), value.to_string());
        if secret == "rustchat-secrets" {
            assert_eq!(key, "jwt", "{var}: the runbook's rotation drops other keys");
        }
    }
    let rotated = object(&objects, "Secret", "rustchat-secrets");
    assert_eq!(
        rotated["stringData"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["jwt"]
    );

    // Every variable the pod sees: the ConfigMap, the Secrets and the Service links.
    let links = service_links(service, "10.96.18.4");
    assert!(
        links
            .iter()
            .any(|(k, v)| k == "RUSTCHAT_PORT" && v.starts_with("tcp://")),
        "the Service named rustchat injects RUSTCHAT_PORT=tcp://…"
    );
    let (Some(pg), Some(redis)) = (
        test_support::PgServer::shared(),
        test_support::RedisServer::start(),
    ) else {
        return;
    };
    let dir = temp_dir("rustchat-k8s-env");
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    let mut env: Vec<(String, String)> = config_data
        .iter()
        .map(|(k, v)| {
            let v = v
                .as_str()
                .unwrap_or_else(|| panic!("{k}: ConfigMap values are strings"));
            match k.as_str() {
                "RUSTCHAT_DATA_DIR" => (k.clone(), data.display().to_string()),
                _ => (k.clone(), v.to_string()),
            }
        })
        .collect();
    env.extend(links);
    let loopback = |var: &str| match var {
        "RUSTCHAT_JWT_SECRET" | "RUSTCHAT_ENCRYPTION_KEY" => strong_secret(),
        "RUSTCHAT_DATABASE_URL" => pg.fresh_database(),
        "RUSTCHAT_REDIS_URL" => redis.url(),
        other => panic!("no loopback value for the Secret variable {other}"),
    };
    let with_secrets = |secrets: &dyn Fn(&str, &str) -> String| {
        let mut all = env.clone();
        all.extend(secret_vars.iter().map(|(k, v)| (k.clone(), secrets(k, v))));
        all
    };
    let check = |vars: &[(String, String)]| {
        let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        common::run_cli(&dir, &["--check-config"], &refs)
    };

    let (code, out, err) = check(&with_secrets(&|k, _| loopback(k)));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("result: OK"), "{out}");
    assert!(!out.lines().any(|l| l.starts_with("error")), "{out}");
    let pool = format!(
        "max_connections={} min_connections={}",
        cm("RUSTCHAT_DB_POOL__MAX_CONNECTIONS").unwrap(),
        cm("RUSTCHAT_DB_POOL__MIN_CONNECTIONS").unwrap()
    );
    assert!(out.contains(&pool), "ConfigMap values not applied: {out}");

    // The same run catches a misspelt name, so the pass above means every name is known.
    let mut typo = with_secrets(&|k, _| loopback(k));
    typo.push(("RUSTCHAT_DB_POOL__MAX_CONECTIONS".into(), "5".into()));
    let (code, out, _) = check(&typo);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("error  RUSTCHAT_DB_POOL__MAX_CONECTIONS"),
        "{out}"
    );

    // The example Secret placeholders are refused in production, as the file says.
    let (code, out, _) = check(&with_secrets(&|k, v| {
        if k.ends_with("_URL") {
            loopback(k)
        } else {
            v.to_string()
        }
    }));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("error") && l.contains("jwt_secret")),
        "{out}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The README lists every file under deploy/rustchat/.
#[test]
fn the_deploy_readme_lists_every_file() {
    let root = deploy_dir();
    let readme = read(&root.join("README.md"));
    let mut stack = vec![root.clone()];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel != "README.md" {
                assert!(
                    readme.contains(&format!("`{rel}`")),
                    "README.md does not list `{rel}`"
                );
                seen += 1;
            }
        }
    }
    assert!(seen >= 12, "{seen} files");
}
