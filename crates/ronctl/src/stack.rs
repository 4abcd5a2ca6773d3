//! The stack `ronctl up` runs: which binaries, on which ports, with which generated
//! configs, and in which order they start and stop.
//!
//! ```text
//!   client ──► sentinel-proxy (front door, --listen)
//!                ├─ /edge/*, /cas/*  ──► svc-edge   (sample PMTiles pack + a static pack)
//!                └─ everything else  ──► rustchat   (UI and API, embedded SQLite)
//!              sentinel's JSON access log ──► mongoose-server (file feed)
//!                └─ count-by-key route, 10 s windows, errorWhen status >= 500
//!                   ──► <state>/mongoose/route-stats.jsonl
//! ```
//!
//! Start order: the backends (rustchat, svc-edge), then the front door, then mongoose.
//! Stop order: the front door first (no new traffic), then the backends, then mongoose (so
//! it reads the last access-log lines before it drains).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cli::PortMode;

/// Service names, as printed and as subdirectories of the state directory.
pub const RUSTCHAT: &str = "rustchat";
/// svc-edge.
pub const SVC_EDGE: &str = "svc-edge";
/// sentinel-proxy.
pub const SENTINEL: &str = "sentinel-proxy";
/// mongoose-server.
pub const MONGOOSE: &str = "mongoose-server";

/// The ports of one stack.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ports {
    /// sentinel-proxy's listener.
    pub front: SocketAddr,
    /// rustchat.
    pub chat: u16,
    /// svc-edge's public listener.
    pub edge: u16,
    /// svc-edge's metrics/health listener.
    pub edge_metrics: u16,
    /// sentinel-proxy's metrics and admin listener.
    pub sentinel_metrics: u16,
    /// mongoose-server's admin listener.
    pub mongoose_admin: u16,
}

impl Ports {
    /// Well-known ports, or free ephemeral ones.
    pub fn choose(mode: PortMode, listen: SocketAddr) -> std::io::Result<Ports> {
        match mode {
            PortMode::Fixed => Ok(Ports {
                front: listen,
                chat: 3000,
                edge: 8180,
                edge_metrics: 9909,
                sentinel_metrics: 9090,
                mongoose_admin: 9200,
            }),
            PortMode::Auto => {
                // Held together until all are chosen, so no two are the same.
                let held: Vec<TcpListener> = (0..6)
                    .map(|_| TcpListener::bind("127.0.0.1:0"))
                    .collect::<Result<_, _>>()?;
                let p = |i: usize| held[i].local_addr().map(|a| a.port());
                let front = if listen.port() == 0 {
                    SocketAddr::new(listen.ip(), p(0)?)
                } else {
                    listen
                };
                Ok(Ports {
                    front,
                    chat: p(1)?,
                    edge: p(2)?,
                    edge_metrics: p(3)?,
                    sentinel_metrics: p(4)?,
                    mongoose_admin: p(5)?,
                })
            }
        }
    }
}

/// One process of the stack.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceSpec {
    /// Name (also its state subdirectory).
    pub name: &'static str,
    /// The binary.
    pub bin: PathBuf,
    /// Arguments.
    pub args: Vec<String>,
    /// Environment added to the one inherited from ronctl (these win).
    pub env: Vec<(String, String)>,
    /// Working directory (its state subdirectory).
    pub dir: PathBuf,
    /// `GET` here answers 200 when the service is ready.
    pub ready_url: String,
    /// Its metrics.
    pub metrics_url: String,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

/// Everything `up` needs: specs in start order plus the files to write first.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The ports.
    pub ports: Ports,
    /// Services in start order.
    pub services: Vec<ServiceSpec>,
    /// Files to write before starting (path, content).
    #[serde(skip)]
    pub files: Vec<(PathBuf, String)>,
    /// Where mongoose writes the per-route windows.
    pub route_stats: PathBuf,
    /// sentinel-proxy's JSON access log.
    pub access_log: PathBuf,
}

fn loopback(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// A KDL string literal.
fn kdl(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The stack in `state` with binaries from `bins`.
pub fn plan(state: &Path, bins: &Path, ports: Ports) -> Plan {
    let dir = |name: &str| state.join(name);
    let log = |name: &str| state.join(name).join(format!("{name}.log"));
    // Laid out like the runbook's /var/log/sentinel/ (app log and access log side by side).
    let access_log = dir(SENTINEL).join("log").join("access.log");
    let route_stats = dir(MONGOOSE).join("route-stats.jsonl");
    let front = ports.front;

    let chat = ServiceSpec {
        name: RUSTCHAT,
        bin: bins.join(RUSTCHAT),
        args: vec![],
        env: vec![
            ("RUSTCHAT_HOST".into(), "127.0.0.1".into()),
            ("RUSTCHAT_PORT".into(), ports.chat.to_string()),
            (
                "RUSTCHAT_DATA_DIR".into(),
                dir(RUSTCHAT).join("data").display().to_string(),
            ),
        ],
        dir: dir(RUSTCHAT),
        ready_url: format!("http://{}/api/v1/health/ready", loopback(ports.chat)),
        metrics_url: format!("http://{}/api/v1/health/metrics", loopback(ports.chat)),
        log: log(RUSTCHAT),
    };

    let edge_dir = dir(SVC_EDGE);
    let edge = ServiceSpec {
        name: SVC_EDGE,
        bin: bins.join(SVC_EDGE),
        args: vec![
            "--bind".into(),
            loopback(ports.edge),
            "--metrics".into(),
            loopback(ports.edge_metrics),
            "--pack".into(),
            edge_dir.join("world.pmtiles").display().to_string(),
            "--pack".into(),
            edge_dir.join("static").display().to_string(),
        ],
        env: vec![],
        dir: edge_dir.clone(),
        ready_url: format!("http://{}/readyz", loopback(ports.edge_metrics)),
        metrics_url: format!("http://{}/metrics", loopback(ports.edge_metrics)),
        log: log(SVC_EDGE),
    };

    let sentinel_dir = dir(SENTINEL);
    let kdl_path = sentinel_dir.join("sentinel.kdl");
    let sentinel_cfg = sentinel_kdl(&ports, &sentinel_dir, &access_log);
    let sentinel = ServiceSpec {
        name: SENTINEL,
        bin: bins.join(SENTINEL),
        args: vec!["--config".into(), kdl_path.display().to_string()],
        env: vec![],
        dir: sentinel_dir,
        ready_url: format!("http://{front}/ready"),
        metrics_url: format!("http://{}/metrics", loopback(ports.sentinel_metrics)),
        log: log(SENTINEL),
    };

    let mongoose_dir = dir(MONGOOSE);
    let yaml_path = mongoose_dir.join("mongoose.yaml");
    let mongoose_cfg = mongoose_yaml(&ports, &mongoose_dir, &access_log, &route_stats);
    let mongoose = ServiceSpec {
        name: MONGOOSE,
        bin: bins.join(MONGOOSE),
        args: vec!["--config".into(), yaml_path.display().to_string()],
        env: vec![],
        dir: mongoose_dir,
        ready_url: format!("http://{}/readyz", loopback(ports.mongoose_admin)),
        metrics_url: format!("http://{}/metrics", loopback(ports.mongoose_admin)),
        log: log(MONGOOSE),
    };

    Plan {
        ports,
        files: vec![
            (kdl_path, sentinel_cfg),
            (yaml_path, mongoose_cfg),
            (
                edge_dir.join("static").join("index.html"),
                STATIC_INDEX.to_string(),
            ),
        ],
        services: vec![chat, edge, sentinel, mongoose],
        route_stats,
        access_log,
    }
}

/// The small page the static pack serves at `/edge/assets/index.html`.
const STATIC_INDEX: &str = "<!doctype html>\n<title>ron edge</title>\n<h1>Served by svc-edge through sentinel-proxy</h1>\n";

/// sentinel-proxy's config: the front door routing to the backends, JSON access log to a
/// file mongoose tails, and the JSON app log both on stdout (ronctl's per-service log) and
/// in `log/sentinel.log` beside it, as the runbook's commands expect.
fn sentinel_kdl(ports: &Ports, dir: &Path, access_log: &Path) -> String {
    let upstream = |name: &str, port: u16, ready: &str| {
        format!(
            r#"    upstream "{name}" {{
        targets {{
            target {{
                address "127.0.0.1:{port}"
            }}
        }}
        health-check {{
            type "http" {{
                path "{ready}"
                expected-status 200
            }}
            interval-secs 5
            timeout-secs 2
        }}
    }}
"#
        )
    };
    format!(
        r#"// Generated by `ronctl up`; edits are overwritten at the next start.
server {{
    listen {listen}
    pid-file {pid}
    graceful-shutdown-timeout-secs 10
}}

// The sample's cap, explicit so the runbook's emergency prepend of a smaller
// `limits {{ max-total-connections … }}` overrides it by the first-occurrence merge.
limits {{
    max-total-connections 10000
}}

upstreams {{
{chat}{edge}}}

routes {{
    route "edge" {{
        priority "high"
        matches {{
            path-prefix "/edge/"
        }}
        upstream "svc-edge"
    }}
    route "cas" {{
        priority "high"
        matches {{
            path-prefix "/cas/"
        }}
        upstream "svc-edge"
    }}
    route "chat" {{
        priority "low"
        matches {{
            path-prefix "/"
        }}
        upstream "rustchat"
    }}
}}

metrics {{
    address "127.0.0.1:{metrics}"
    enabled #true
}}

logging {{
    level "info"
    format "json"
    stdout #true
    file {app_log}
    access-log {access}
}}
"#,
        listen = kdl(&ports.front.to_string()),
        pid = kdl(&dir.join("sentinel.pid").display().to_string()),
        chat = upstream("rustchat", ports.chat, "/readyz"),
        edge = upstream("svc-edge", ports.edge, "/readyz"),
        metrics = ports.sentinel_metrics,
        access = kdl(&access_log.display().to_string()),
        app_log = kdl(&dir.join("log").join("sentinel.log").display().to_string()),
    )
}

/// mongoose-server's config: the access log in, per-route 10 s windows out.
fn mongoose_yaml(ports: &Ports, dir: &Path, access_log: &Path, route_stats: &Path) -> String {
    let q = |p: &Path| serde_json::to_string(&p.display().to_string()).unwrap_or_default();
    format!(
        r#"# Generated by `ronctl up`; edits are overwritten at the next start.
name: ronctl-route-stats
pinning: best-effort
idleStrategy: {{type: backoff, maxSpins: 10, maxYields: 5, minParkNs: 1000, maxParkNs: 1000000}}
admin:
  address: 127.0.0.1:{admin}
quarantine:
  sink: quarantine-file
eventFeeds:
  - name: access-log
    type: file
    critical: false
    config: {{path: {access}, format: json, waitForFile: true}}
eventSinks:
  - name: route-stats
    type: file
    config: {{path: {stats}, flushEveryMs: 100}}
  - name: quarantine-file
    type: file
    config: {{path: {quarantine}, flushEveryMs: 0}}
eventHandlers:
  - agentName: stats
    processors:
      per-route:
        type: count-by-key
        feeds: [access-log]
        config:
          key: route
          windowMs: 10000
          to: route-stats
          maxKeys: 1000
          errorWhen: {{field: status, op: ge, value: 500}}
"#,
        admin = ports.mongoose_admin,
        access = q(access_log),
        stats = q(route_stats),
        quarantine = q(&dir.join("quarantine.jsonl")),
    )
}
