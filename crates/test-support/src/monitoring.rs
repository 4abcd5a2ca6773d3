//! Checks for a service's shipped monitoring files under `deploy/<service>/`, shared by the
//! per-crate `monitoring` tests so every service is held to the same rules:
//!
//! - `prometheus/<service>-rules.yml` passes `promtool check rules`, and its unit tests
//!   `prometheus/<service>-rules.test.yml` pass `promtool test rules`;
//! - every alert carries a severity, a summary, a description and a `runbook` annotation
//!   pointing into `runbooks/<runbook>.md`; the unit tests make every alert fire at least
//!   once, keep it silent at least once, and evaluate every recording rule;
//! - `grafana/<service>.json` is a current-schema dashboard whose panels and queries use the
//!   `$datasource` variable and filter by `$instance`;
//! - every metric the rules and the dashboard read is a family the running service exports
//!   (compared with a real scrape), and every exported family is on a dashboard.
//!
//! What it is not: a PromQL or Grafana validator. promtool checks the PromQL of the rules;
//! the dashboard's PromQL is only read for metric names ([`crate::promql`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::promql::metric_names;

/// Prometheus's own per-target series, which no service exports but rules may read.
pub const PROMETHEUS_SERIES: &[&str] = &["up"];

/// One service's monitoring files: `deploy/<service>/prometheus/<service>-rules.yml`, its
/// `.test.yml`, and `deploy/<service>/grafana/<service>.json`.
#[derive(Debug, Clone)]
pub struct Deploy {
    /// `deploy/<service>` in the repository.
    pub dir: PathBuf,
    /// The service name used in the file names.
    pub service: String,
    /// The runbook file the alerts point at: `runbooks/<runbook>.md`.
    pub runbook: String,
}

/// The metric families of an exposition page: name → type (`# TYPE` lines).
pub fn families(page: &str) -> BTreeMap<String, String> {
    page.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect()
}

/// The family a series name belongs to: `name` itself when it is a family, else the
/// histogram or summary it is a `_bucket`/`_sum`/`_count` series of; `None` when neither.
pub fn family_of<'a>(families: &BTreeMap<String, String>, name: &'a str) -> Option<&'a str> {
    if families.contains_key(name) {
        return Some(name);
    }
    let base_type = |suffix: &str| {
        name.strip_suffix(suffix)
            .and_then(|base| families.get(base).map(|t| (base, t.as_str())))
    };
    if let Some((base, "histogram")) = base_type("_bucket") {
        return Some(base);
    }
    for suffix in ["_sum", "_count"] {
        if let Some((base, "histogram" | "summary")) = base_type(suffix) {
            return Some(base);
        }
    }
    None
}

/// `expr` with every run of whitespace collapsed to one space, for fragment matching.
pub fn squeeze(expr: &str) -> String {
    expr.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every panel of a dashboard, those nested in collapsed rows included.
pub fn panels(dash: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for p in dash["panels"].as_array().expect("dashboard has panels") {
        all.push(p);
        all.extend(p["panels"].as_array().into_iter().flatten());
    }
    all
}

/// (where, PromQL) for every query of a dashboard; for `label_values(SELECTOR, LABEL)`
/// variables, the selector.
pub fn dashboard_queries(dash: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(dash) {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                format!("panel {:?}", p["title"]),
                t["expr"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        let q = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .unwrap_or("");
        if let Some(args) = q.strip_prefix("label_values(") {
            let selector = args.rsplit_once(',').map_or(args, |(s, _)| s);
            out.push((format!("variable {:?}", v["name"]), selector.to_string()));
        }
    }
    out
}

/// Runs `tool args…` in `dir` and returns its stdout and stderr; panics with them unless it
/// exits 0.
pub fn run_ok(tool: &Path, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", tool.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{} {args:?}:\n{text}", tool.display());
    text
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or("")
}

impl Deploy {
    /// The files of `service` under `<repo>/deploy/<service>`, whose alerts point at
    /// `runbooks/<service>.md`.
    pub fn new(repo: &Path, service: &str) -> Deploy {
        Deploy {
            dir: repo.join("deploy").join(service),
            service: service.to_string(),
            runbook: format!("runbooks/{service}.md"),
        }
    }

    /// `prometheus/<service>-rules.yml`'s file name.
    pub fn rules_file(&self) -> String {
        format!("{}-rules.yml", self.service)
    }

    /// `prometheus/<service>-rules.test.yml`'s file name.
    pub fn rules_test_file(&self) -> String {
        format!("{}-rules.test.yml", self.service)
    }

    /// `deploy/<service>/prometheus`.
    pub fn prometheus_dir(&self) -> PathBuf {
        self.dir.join("prometheus")
    }

    /// Every rule of every group of the rules file, as JSON.
    pub fn rules(&self) -> Vec<Value> {
        let path = self.prometheus_dir().join(self.rules_file());
        let doc: Value = serde_saphyr::from_str(&read(&path))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        doc["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .flat_map(|g| g["rules"].as_array().expect("rules").iter().cloned())
            .collect()
    }

    /// The alerting rules by name (names are unique).
    pub fn alerts(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for r in self
            .rules()
            .into_iter()
            .filter(|r| r.get("alert").is_some())
        {
            let name = str_of(&r, "alert").to_string();
            assert!(out.insert(name.clone(), r).is_none(), "alert {name} twice");
        }
        out
    }

    /// The recording rules' names.
    pub fn records(&self) -> BTreeSet<String> {
        self.rules()
            .iter()
            .filter_map(|r| r["record"].as_str().map(str::to_string))
            .collect()
    }

    /// `promtool check rules` and `promtool test rules` both pass.
    pub fn check_with_promtool(&self, promtool: &Path) {
        let dir = self.prometheus_dir();
        let out = run_ok(promtool, &dir, &["check", "rules", &self.rules_file()]);
        assert!(out.contains("SUCCESS"), "{out}");
        let out = run_ok(promtool, &dir, &["test", "rules", &self.rules_test_file()]);
        assert!(out.contains("SUCCESS"), "{out}");
    }

    /// Alert `name` exists and its expression contains every fragment (whitespace
    /// squeezed): how a test ties a runbook row to its rule and threshold.
    pub fn assert_alert(&self, name: &str, fragments: &[&str]) {
        let alerts = self.alerts();
        let rule = alerts
            .get(name)
            .unwrap_or_else(|| panic!("no alert {name}"));
        let expr = squeeze(str_of(rule, "expr"));
        for f in fragments {
            assert!(expr.contains(f), "{name}: {expr:?} lacks {f:?}");
        }
    }

    /// Every `(alert, fragments)` row of a runbook table holds ([`Deploy::assert_alert`]) and
    /// the rules file has no alert the table does not name; returns the alerts by name.
    pub fn assert_runbook_alerts(&self, table: &[(&str, &[&str])]) -> BTreeMap<String, Value> {
        for (name, fragments) in table {
            self.assert_alert(name, fragments);
        }
        let alerts = self.alerts();
        assert_eq!(
            alerts.len(),
            table.len(),
            "{}: an alert the runbook table does not know: {:?}",
            self.service,
            alerts.keys().collect::<Vec<_>>()
        );
        alerts
    }

    /// Every alert has `severity` (one of `severities`), a summary, a description and a
    /// `runbook` annotation starting with `runbooks/<runbook>.md `.
    pub fn check_alert_annotations(&self, severities: &[&str]) {
        let prefix = format!("{} ", self.runbook);
        for (name, rule) in self.alerts() {
            let severity = rule["labels"]["severity"].as_str().unwrap_or("");
            assert!(
                severities.contains(&severity),
                "{name}: severity {severity:?}"
            );
            for field in ["summary", "description"] {
                assert!(
                    !str_of(&rule["annotations"], field).trim().is_empty(),
                    "{name}: no {field}"
                );
            }
            assert!(
                str_of(&rule["annotations"], "runbook").starts_with(&prefix),
                "{name}: the runbook annotation must start with {prefix:?}"
            );
        }
    }

    /// The unit tests load exactly the rules file, make every alert fire at least once and
    /// stay silent at least once, and evaluate every recording rule in a `promql_expr_test`.
    pub fn check_unit_test_coverage(&self) {
        let path = self.prometheus_dir().join(self.rules_test_file());
        let doc: Value = serde_saphyr::from_str(&read(&path))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(doc["rule_files"], serde_json::json!([self.rules_file()]));
        let mut fired = BTreeSet::new();
        let mut silent = BTreeSet::new();
        let mut exprs = Vec::new();
        for case in doc["tests"].as_array().expect("tests") {
            for t in case["alert_rule_test"].as_array().into_iter().flatten() {
                let name = str_of(t, "alertname").to_string();
                match t["exp_alerts"].as_array().map(Vec::len) {
                    Some(0) | None => silent.insert(name),
                    Some(_) => fired.insert(name),
                };
            }
            for t in case["promql_expr_test"].as_array().into_iter().flatten() {
                exprs.push(str_of(t, "expr").to_string());
            }
        }
        let alerts = self.alerts();
        assert!(!alerts.is_empty(), "no alerts");
        for name in alerts.keys() {
            assert!(fired.contains(name), "no unit test fires {name}");
            assert!(silent.contains(name), "no unit test keeps {name} silent");
        }
        for name in fired.iter().chain(&silent) {
            assert!(
                alerts.contains_key(name),
                "a unit test names no alert: {name}"
            );
        }
        for record in self.records() {
            assert!(
                exprs.iter().any(|e| metric_names(e).contains(&record)),
                "no unit test evaluates the recording rule {record}"
            );
        }
    }

    /// The dashboard, parsed.
    pub fn dashboard(&self) -> Value {
        let path = self
            .dir
            .join("grafana")
            .join(format!("{}.json", self.service));
        serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The dashboard has a current schema (≥ 36), a uid, a `$datasource` variable of type
    /// datasource over Prometheus and a multi-value `$instance` query variable using it;
    /// every panel and query uses `${datasource}`, every query is non-empty and filtered by
    /// `instance=~"$instance"`, panel ids are unique, panels fit the 24-column grid, and there
    /// are at least `min_queries` queries.
    pub fn check_dashboard_shape(&self, min_queries: usize) {
        let dash = self.dashboard();
        assert!(dash["schemaVersion"].as_u64().unwrap_or(0) >= 36, "schema");
        assert!(!str_of(&dash, "uid").is_empty(), "uid");
        let vars = dash["templating"]["list"].as_array().expect("templating");
        let var = |name: &str| {
            vars.iter()
                .find(|v| v["name"] == name)
                .unwrap_or_else(|| panic!("no ${name} variable"))
        };
        assert_eq!(var("datasource")["type"], "datasource");
        assert_eq!(var("datasource")["query"], "prometheus");
        let instance = var("instance");
        assert_eq!(instance["type"], "query");
        assert_eq!(instance["datasource"]["uid"], "${datasource}");
        assert_eq!(instance["multi"], true);
        assert_eq!(instance["includeAll"], true);

        let mut ids = BTreeSet::new();
        let mut queries = 0;
        for p in panels(&dash) {
            let title = str_of(p, "title");
            assert!(
                ids.insert(p["id"].as_u64().expect("panel id")),
                "duplicate id: {title}"
            );
            let grid = &p["gridPos"];
            let (x, w) = (grid["x"].as_u64(), grid["w"].as_u64());
            assert!(
                x.zip(w).is_some_and(|(x, w)| x + w <= 24),
                "{title}: gridPos"
            );
            if p["type"] == "row" {
                continue;
            }
            assert!(!title.is_empty(), "a panel without a title");
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
            assert_eq!(p["datasource"]["type"], "prometheus", "{title}");
            let targets = p["targets"].as_array().filter(|t| !t.is_empty());
            for t in targets.unwrap_or_else(|| panic!("{title}: no queries")) {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
                let expr = str_of(t, "expr");
                assert!(!expr.trim().is_empty(), "{title}: empty expr");
                assert!(expr.contains(r#"instance=~"$instance""#), "{title}: {expr}");
                queries += 1;
            }
        }
        assert!(queries >= min_queries, "{queries} queries");
    }

    /// Every metric the rules and the dashboard read is exported on `page` (a scrape of the
    /// running service), is a recording rule of this file, or is Prometheus's `up`.
    /// `label_only` names the rules allowed to select series by labels alone (no metric
    /// name); `absent_ok` accepts names this build cannot export (a family behind a cargo
    /// feature the test was built without), which the caller must justify. Returns the
    /// exported families read.
    pub fn check_reads_only_exported(
        &self,
        page: &str,
        label_only: &[&str],
        absent_ok: impl Fn(&str) -> bool,
    ) -> BTreeSet<String> {
        let families = families(page);
        assert!(!families.is_empty(), "an empty exposition:\n{page}");
        let records = self.records();
        let mut queries: Vec<(String, String)> = self
            .rules()
            .iter()
            .map(|r| {
                let kind = if r.get("alert").is_some() {
                    "alert"
                } else {
                    "record"
                };
                (str_of(r, kind).to_string(), str_of(r, "expr").to_string())
            })
            .collect();
        queries.extend(dashboard_queries(&self.dashboard()));
        let mut missing = Vec::new();
        let mut read = BTreeSet::new();
        for (place, expr) in &queries {
            let names = metric_names(expr);
            if names.is_empty() {
                assert!(
                    label_only.contains(&place.as_str()),
                    "{place}: no metric in {expr:?}"
                );
            }
            for name in names {
                if records.contains(&name) || PROMETHEUS_SERIES.contains(&name.as_str()) {
                    continue;
                }
                match family_of(&families, &name) {
                    Some(f) => {
                        read.insert(f.to_string());
                    }
                    None if absent_ok(&name) => {}
                    None => missing.push(format!("{place}: {name}")),
                }
            }
        }
        assert!(
            missing.is_empty(),
            "read but not exported by {}: {missing:#?}",
            self.service
        );
        read
    }

    /// The exported families this service's dashboard shows.
    pub fn dashboard_families(&self, page_families: &BTreeMap<String, String>) -> BTreeSet<String> {
        dashboard_queries(&self.dashboard())
            .iter()
            .flat_map(|(_, e)| metric_names(e))
            .filter_map(|n| family_of(page_families, &n).map(str::to_string))
            .collect()
    }

    /// Every family on `page` accepted by `first_party` is on this dashboard or on one of
    /// `others` (the exposer library's dashboard, say).
    pub fn check_dashboards_cover(
        &self,
        page: &str,
        others: &[&Deploy],
        first_party: impl Fn(&str) -> bool,
    ) {
        let families = families(page);
        let mut shown = self.dashboard_families(&families);
        for o in others {
            shown.extend(o.dashboard_families(&families));
        }
        let absent: Vec<&String> = families
            .keys()
            .filter(|f| first_party(f) && !shown.contains(*f))
            .collect();
        assert!(
            absent.is_empty(),
            "families of {} without a dashboard panel: {absent:?}",
            self.service
        );
    }

    /// Every family on `page` whose name starts with `prefix` is on this service's own
    /// dashboard (not only on another one).
    pub fn check_own_dashboard_covers(&self, page: &str, prefix: &str) {
        let families = families(page);
        let own = self.dashboard_families(&families);
        let absent: Vec<&String> = families
            .keys()
            .filter(|f| f.starts_with(prefix) && !own.contains(*f))
            .collect();
        assert!(
            absent.is_empty(),
            "not on the {} dashboard: {absent:?}",
            self.service
        );
    }

    /// README.md lists every file under `deploy/<service>/` as `` `relative/path` ``.
    pub fn check_readme_lists_every_file(&self) {
        let readme = read(&self.dir.join("README.md"));
        let mut stack = vec![self.dir.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).expect("deploy dir") {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let rel = path
                    .strip_prefix(&self.dir)
                    .expect("under the deploy dir")
                    .to_string_lossy()
                    .into_owned();
                if rel != "README.md" {
                    assert!(
                        readme.contains(&format!("`{rel}`")),
                        "{}/README.md does not list `{rel}`",
                        self.dir.display()
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{families, family_of};

    #[test]
    fn series_names_resolve_to_their_family() {
        let page = "# HELP a_seconds x\n# TYPE a_seconds histogram\na_seconds_bucket{le=\"1\"} 0\n\
                    # TYPE b summary\n# TYPE c_total counter\n# TYPE d_count gauge\n";
        let f = families(page);
        assert_eq!(f.len(), 4);
        assert_eq!(family_of(&f, "a_seconds_bucket"), Some("a_seconds"));
        assert_eq!(family_of(&f, "a_seconds_count"), Some("a_seconds"));
        assert_eq!(family_of(&f, "b_sum"), Some("b"));
        assert_eq!(family_of(&f, "b_bucket"), None, "summaries have no buckets");
        assert_eq!(family_of(&f, "c_total"), Some("c_total"));
        assert_eq!(
            family_of(&f, "c_total_count"),
            None,
            "counters have no _count"
        );
        assert_eq!(family_of(&f, "d_count"), Some("d_count"));
        assert_eq!(family_of(&f, "e"), None);
    }
}
