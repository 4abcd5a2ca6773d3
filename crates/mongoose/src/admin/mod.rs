//! The operator command surface (MNG-R13, R14, §3.1): the built-in commands, run directly
//! by embedders through [`Admin::exec`] or over HTTP through [`http::router`], and the
//! `mongoose-server admin` client in [`client`].
//!
//! Commands that touch processors (`processors.stop`, `latency.*`) are routed to the
//! group's thread through its control queue and wait at most `admin.commandTimeoutMs`
//! (504 `command_timeout` after that). The rest read counters other threads already keep.
//! Every command is counted in `mongoose_admin_commands_total{command,outcome}` (unknown
//! names as `command="unknown"`).

pub mod client;
pub mod http;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde_json::{Value, json};

use crate::group::{AgentStats, Control, GroupShared, LatencyFigures, PROC_STATES, StopError};
use crate::health::{Health, HealthReport};
use crate::idle::STATE_NAMES;
use crate::publish::FeedShared;
use crate::quarantine::Quarantine;
use crate::queue::{DROP_LABELS, Policy, SubShared};

/// Longest command body (`413 payload_too_large` above it).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most arguments a command takes.
pub const MAX_ARGS: usize = 16;
/// Longest argument.
pub const MAX_ARG_BYTES: usize = 256;
/// Admin requests per second per peer IP.
pub const RATE_PER_SEC: u32 = 50;
/// Default `quarantine.list` count.
pub const DEFAULT_QUARANTINE_LIST: usize = 20;

/// The admin listener's settings (`admin.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSpec {
    /// Where to listen; None is `admin.address: off` (the router can still be mounted).
    pub address: Option<SocketAddr>,
    /// Bearer token; None means loopback peers only.
    pub token: Option<String>,
    /// How long a routed command may take.
    pub command_timeout: Duration,
}

impl Default for AdminSpec {
    fn default() -> Self {
        AdminSpec {
            address: Some(SocketAddr::from(([127, 0, 0, 1], 9200))),
            token: None,
            command_timeout: Duration::from_millis(2000),
        }
    }
}

/// A command's failure, as the HTTP layer renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminError {
    /// HTTP status.
    pub status: u16,
    /// Machine-readable code (`bad_args`, `not_found`, ...).
    pub code: &'static str,
    /// Human-readable text.
    pub message: String,
}

impl AdminError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        AdminError {
            status,
            code,
            message: message.into(),
        }
    }
    fn bad_args(m: impl Into<String>) -> Self {
        Self::new(400, "bad_args", m)
    }
    fn timeout(ms: u128) -> Self {
        Self::new(
            504,
            "command_timeout",
            format!("the group did not answer within {ms} ms"),
        )
    }
}

/// One feed as `event-sources` lists it.
pub struct FeedInfo {
    /// Counters.
    pub shared: Arc<FeedShared>,
    /// Registered type.
    pub type_name: String,
    /// Whether it is critical.
    pub critical: bool,
    /// Whether it is broadcast.
    pub broadcast: bool,
}

/// A command a processor registered; it runs on the processor's group thread.
pub struct CustomCommand {
    /// Command name.
    pub name: String,
    /// Help text.
    pub help: String,
    /// The processor that answers it.
    pub processor: String,
    /// Its group.
    pub group: Arc<GroupShared>,
}

/// Where an agent's counters live.
pub enum AgentSource {
    /// A handler group (its counters are inline).
    Group(Arc<GroupShared>),
    /// Any other agent.
    Stats(Arc<AgentStats>),
}

/// One agent thread as `agents` lists it.
pub struct AgentInfo {
    /// Agent (and thread) name.
    pub name: String,
    /// `group`, `feeds`, `sinks`, `service` or `custom`.
    pub role: &'static str,
    /// Idle strategy name.
    pub idle_strategy: &'static str,
    /// What it hosts.
    pub hosts: Vec<String>,
    /// Counters.
    pub source: AgentSource,
}

impl AgentInfo {
    fn stats(&self) -> &AgentStats {
        match &self.source {
            AgentSource::Group(g) => &g.agent,
            AgentSource::Stats(s) => s,
        }
    }
}

/// What the commands read and steer.
pub struct AdminCore {
    /// Server name.
    pub server: String,
    /// Feeds.
    pub feeds: Vec<FeedInfo>,
    /// Subscriptions.
    pub subs: Vec<Arc<SubShared>>,
    /// Groups.
    pub groups: Vec<Arc<GroupShared>>,
    /// Agents.
    pub agents: Vec<AgentInfo>,
    /// Processor name → registered type.
    pub processor_types: HashMap<String, String>,
    /// Services.
    pub services: Vec<Arc<crate::service::ServiceEntry>>,
    /// Commands processors registered.
    pub custom: Vec<CustomCommand>,
    /// The quarantine.
    pub quarantine: Arc<Quarantine>,
    /// Health.
    pub health: Arc<Health>,
}

impl AdminCore {
    /// What a starting server can show: nothing wired yet.
    pub fn empty(server: &str, quarantine: Arc<Quarantine>, health: Arc<Health>) -> Self {
        AdminCore {
            server: server.to_string(),
            feeds: Vec::new(),
            subs: Vec::new(),
            groups: Vec::new(),
            agents: Vec::new(),
            processor_types: HashMap::new(),
            services: Vec::new(),
            custom: Vec::new(),
            quarantine,
            health,
        }
    }
}

/// The command surface of one server.
pub struct Admin {
    /// Swapped once when startup finishes.
    core: RwLock<Arc<AdminCore>>,
    token: RwLock<Option<String>>,
    timeout_ms: AtomicU32,
    counts: Mutex<BTreeMap<(String, &'static str), u64>>,
    reloads: [std::sync::atomic::AtomicU64; 3],
}

/// Built-in commands: (name, args, help).
pub const COMMANDS: [(&str, &str, &str); 15] = [
    (
        "agents",
        "",
        "every agent thread: role, idle strategy, state, core, cycles, staleness, what it hosts",
    ),
    ("commands", "", "the command names"),
    (
        "event-sources",
        "",
        "every feed with its subscriptions, depths and drops",
    ),
    ("health", "", "the readiness JSON plus liveness detail"),
    ("help", "[command]", "usage of every command, or of one"),
    ("latency.disable", "", "stop recording handler latency"),
    ("latency.enable", "", "record handler latency"),
    (
        "latency.reset",
        "",
        "clear the cumulative latency histograms of every group",
    ),
    (
        "latency.status",
        "[processor]",
        "handler latency percentiles in ns, last window and cumulative",
    ),
    (
        "processors.list",
        "",
        "every processor with its state and counters",
    ),
    (
        "processors.stop",
        "NAME",
        "stop a processor on its group thread (stop, tear_down, out of dispatch)",
    ),
    (
        "quarantine.list",
        "[N=20]",
        "the last N records of the memory quarantine ring",
    ),
    (
        "queues",
        "",
        "every (feed, group) queue: kind, capacity, depth, counters, state, policy",
    ),
    (
        "queues.reconnect",
        "FEED GROUP",
        "reattach a disconnected subscription",
    ),
    ("services.list", "", "every service with its state"),
];

fn figures(f: &LatencyFigures) -> Value {
    json!({"count": f.0, "p50": f.1[0], "p90": f.1[1], "p99": f.1[2], "p999": f.1[3], "max": f.1[4]})
}

fn drops(s: &SubShared) -> Value {
    let mut m = serde_json::Map::new();
    // Index 0 is `block`, which never drops by itself (its fallback does).
    for (i, label) in DROP_LABELS.iter().enumerate().skip(1) {
        m.insert((*label).to_string(), json!(s.drops(i)));
    }
    Value::Object(m)
}

fn sub_state(s: &SubShared) -> &'static str {
    match s.state.load(Ordering::Acquire) {
        crate::queue::CONNECTED => "connected",
        crate::queue::DISCONNECTED => "disconnected",
        _ => "detached",
    }
}

fn policy_name(s: &SubShared) -> &'static str {
    Policy::from_u8(s.policy.load(Ordering::Relaxed)).name()
}

/// The readiness body (`/readyz` and the `health` command).
pub fn readiness_json(r: &HealthReport) -> Value {
    json!({
        "degraded": !r.ready,
        "missing": r.missing,
        "retry_after": r.retry_after,
        "since": crate::quarantine::rfc3339_ms(
            r.since
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        ),
    })
}

impl Admin {
    /// The command surface over `core`.
    pub fn new(core: AdminCore, spec: &AdminSpec) -> Self {
        Admin {
            core: RwLock::new(Arc::new(core)),
            token: RwLock::new(spec.token.clone()),
            timeout_ms: AtomicU32::new(spec.command_timeout.as_millis() as u32),
            counts: Mutex::new(BTreeMap::new()),
            reloads: Default::default(),
        }
    }

    /// The server's name.
    pub fn server(&self) -> String {
        self.core.read().server.clone()
    }

    /// Installs the started server's components.
    pub fn set_core(&self, core: AdminCore) {
        *self.core.write() = Arc::new(core);
    }

    /// The configured token.
    pub fn token(&self) -> Option<String> {
        self.token.read().clone()
    }

    /// Replaces the token (reload).
    pub fn set_token(&self, t: Option<String>) {
        *self.token.write() = t;
    }

    /// Replaces the routed-command timeout (reload).
    pub fn set_command_timeout(&self, d: Duration) {
        self.timeout_ms
            .store(d.as_millis() as u32, Ordering::Relaxed);
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.timeout_ms.load(Ordering::Relaxed)))
    }

    /// The health state.
    pub fn health(&self) -> Arc<Health> {
        self.core.read().health.clone()
    }

    /// `mongoose_admin_commands_total` by (command, outcome).
    pub fn counts(&self) -> Vec<((String, &'static str), u64)> {
        self.counts
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// Counts one reload outcome (`ok`, `invalid`, `rejected`).
    pub fn count_reload(&self, outcome: &str) {
        if let Some(i) = crate::reload::OUTCOMES.iter().position(|o| *o == outcome) {
            self.reloads[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `mongoose_config_reloads_total` by outcome.
    pub fn reloads(&self) -> [(&'static str, u64); 3] {
        let o = crate::reload::OUTCOMES;
        [0, 1, 2].map(|i| (o[i], self.reloads[i].load(Ordering::Relaxed)))
    }

    /// Every command: (name, args, help), built-ins then the processors' own.
    pub fn list(&self) -> Vec<(String, String, String)> {
        let mut v: Vec<(String, String, String)> = COMMANDS
            .iter()
            .map(|(n, a, h)| (n.to_string(), a.to_string(), h.to_string()))
            .collect();
        for c in &self.core.read().custom {
            v.push((c.name.clone(), "[args..]".into(), c.help.clone()));
        }
        v
    }

    /// Counts one command outcome (`ok`, `error`, `denied`, ...).
    pub fn count(&self, command: &str, outcome: &'static str) {
        let known = COMMANDS.iter().any(|(n, ..)| *n == command)
            || self.core.read().custom.iter().any(|c| c.name == command);
        let key = (if known { command } else { "unknown" }).to_string();
        *self.counts.lock().entry((key, outcome)).or_insert(0) += 1;
    }

    /// Sends a command to a group's thread and waits at most `commandTimeoutMs` for its
    /// answer: 503 `busy` when the control queue is full, 504 `command_timeout` after.
    fn route<T>(
        &self,
        g: &GroupShared,
        make: impl FnOnce(crate::group::Reply<T>) -> Control,
    ) -> Result<T, AdminError> {
        let (tx, rx) = sync_channel(1);
        if !g.send(make(tx)) {
            return Err(AdminError::new(
                503,
                "busy",
                "the group's control queue is full",
            ));
        }
        rx.recv_timeout(self.timeout())
            .map_err(|_| AdminError::timeout(self.timeout().as_millis()))
    }

    /// Runs `name` with `args`.
    pub fn exec(&self, name: &str, args: &[String]) -> Result<Value, AdminError> {
        let c = self.core.read().clone();
        let no_args = |args: &[String]| {
            if args.is_empty() {
                Ok(())
            } else {
                Err(AdminError::bad_args(format!("{name} takes no arguments")))
            }
        };
        match name {
            "help" => {
                if args.len() > 1 {
                    return Err(AdminError::bad_args("help takes at most one command name"));
                }
                let pick: Vec<_> = self
                    .list()
                    .into_iter()
                    .filter(|(n, ..)| args.first().is_none_or(|a| a == n))
                    .map(|(n, a, h)| json!({"name": n, "args": a, "help": h, "usage": format!("{n} {a}").trim_end().to_string()}))
                    .collect();
                if pick.is_empty() {
                    return Err(AdminError::new(
                        404,
                        "unknown_command",
                        format!("no command {:?}", args[0]),
                    ));
                }
                Ok(json!({"commands": pick}))
            }
            "commands" => {
                no_args(args)?;
                let mut names: Vec<String> = self.list().into_iter().map(|(n, ..)| n).collect();
                names.sort_unstable();
                Ok(json!({ "commands": names }))
            }
            "event-sources" => {
                no_args(args)?;
                Ok(Value::Array(
                    c.feeds
                        .iter()
                        .map(|f| {
                            let subs: Vec<Value> = c
                                .subs
                                .iter()
                                .filter(|s| s.feed == f.shared.name)
                                .map(|s| {
                                    let procs: Vec<&str> = c
                                        .groups
                                        .iter()
                                        .filter(|g| g.name == s.group)
                                        .flat_map(|g| {
                                            g.procs
                                                .lock()
                                                .iter()
                                                .filter(|p| {
                                                    f.broadcast || p.feeds.contains(&f.shared.name)
                                                })
                                                .map(|p| p.name)
                                                .collect::<Vec<_>>()
                                        })
                                        .collect();
                                    json!({
                                        "group": s.group,
                                        "processors": procs,
                                        "depth": s.depth(),
                                        "capacity": s.capacity,
                                        "dropped": drops(s),
                                        "state": sub_state(s),
                                    })
                                })
                                .collect();
                            let policy = c
                                .subs
                                .iter()
                                .find(|s| s.feed == f.shared.name)
                                .map(|s| policy_name(s));
                            json!({
                                "name": f.shared.name,
                                "type": f.type_name,
                                "critical": f.critical,
                                "connected": f.shared.connected.load(Ordering::Relaxed),
                                "broadcast": f.broadcast,
                                "policy": policy,
                                "published": f.shared.published.load(Ordering::Relaxed),
                                "subscriptions": subs,
                            })
                        })
                        .collect(),
                ))
            }
            "services.list" => {
                no_args(args)?;
                Ok(Value::Array(
                    c.services
                        .iter()
                        .map(|s| {
                            json!({
                                "name": s.name,
                                "type": s.type_name,
                                "critical": s.critical,
                                "state": s.state_name(),
                                "healthy": s.up(),
                            })
                        })
                        .collect(),
                ))
            }
            "processors.list" => {
                no_args(args)?;
                let mut out = Vec::new();
                for g in &c.groups {
                    for p in g.procs.lock().iter() {
                        out.push(json!({
                            "name": p.name,
                            "group": g.name,
                            "type": c.processor_types.get(p.name).map(String::as_str).unwrap_or("custom"),
                            "state": PROC_STATES.get(p.state.load(Ordering::Relaxed) as usize).copied().unwrap_or("failed"),
                            "feeds": p.feeds,
                            "events": p.events.load(Ordering::Relaxed),
                            "errors": p.errors.load(Ordering::Relaxed) + p.panics.load(Ordering::Relaxed),
                            "retries": p.retries.load(Ordering::Relaxed),
                            "quarantined": p.quarantined.load(Ordering::Relaxed),
                        }));
                    }
                }
                Ok(Value::Array(out))
            }
            "processors.stop" => {
                let [p] = args else {
                    return Err(AdminError::bad_args("usage: processors.stop NAME"));
                };
                let g = c
                    .groups
                    .iter()
                    .find(|g| g.procs.lock().iter().any(|x| x.name == p))
                    .ok_or_else(|| {
                        AdminError::new(404, "not_found", format!("no processor {p:?}"))
                    })?;
                match self.route(g, |tx| Control::StopProcessor(p.clone(), tx))? {
                    Ok(()) => Ok(json!({"stopped": p})),
                    Err(StopError::AlreadyStopped) => Err(AdminError::new(
                        409,
                        "conflict",
                        format!("processor {p:?} is already stopped"),
                    )),
                    Err(StopError::NotFound) => Err(AdminError::new(
                        404,
                        "not_found",
                        format!("no processor {p:?}"),
                    )),
                }
            }
            "latency.status" => {
                if args.len() > 1 {
                    return Err(AdminError::bad_args("usage: latency.status [PROCESSOR]"));
                }
                let enabled = c
                    .groups
                    .iter()
                    .all(|g| g.latency_enabled.load(Ordering::Relaxed));
                let mut rows = Vec::new();
                for g in &c.groups {
                    if let Some(want) = args.first()
                        && !g.procs.lock().iter().any(|p| p.name == want)
                    {
                        continue;
                    }
                    let got = self.route(g, Control::LatencyStatus)?;
                    for r in got {
                        if args.first().is_some_and(|w| *w != r.name) {
                            continue;
                        }
                        rows.push(json!({
                            "name": r.name,
                            "group": g.name,
                            "interval": figures(&r.interval),
                            "cumulative": figures(&r.cumulative),
                        }));
                    }
                }
                if let Some(want) = args.first()
                    && rows.is_empty()
                {
                    return Err(AdminError::new(
                        404,
                        "not_found",
                        format!("no processor {want:?}"),
                    ));
                }
                Ok(json!({"enabled": enabled, "processors": rows}))
            }
            "latency.enable" | "latency.disable" => {
                no_args(args)?;
                let on = name == "latency.enable";
                for g in &c.groups {
                    g.latency_enabled.store(on, Ordering::Relaxed);
                }
                Ok(json!({"enabled": on}))
            }
            "latency.reset" => {
                no_args(args)?;
                for g in &c.groups {
                    self.route(g, Control::ResetLatency)?;
                }
                Ok(json!({"reset": true}))
            }
            "queues" => {
                no_args(args)?;
                Ok(Value::Array(
                    c.subs
                        .iter()
                        .map(|s| {
                            json!({
                                "feed": s.feed,
                                "group": s.group,
                                "kind": s.kind,
                                "capacity": s.capacity,
                                "depth": s.depth(),
                                "threshold": s.threshold.load(Ordering::Relaxed),
                                "enqueued": s.enqueued.load(Ordering::Relaxed),
                                "consumed": s.consumed.load(Ordering::Relaxed),
                                "dropped": drops(s),
                                "state": sub_state(s),
                                "policy": policy_name(s),
                            })
                        })
                        .collect(),
                ))
            }
            "queues.reconnect" => {
                let [feed, group] = args else {
                    return Err(AdminError::bad_args("usage: queues.reconnect FEED GROUP"));
                };
                if !c.subs.iter().any(|s| s.feed == feed && s.group == group) {
                    return Err(AdminError::new(
                        404,
                        "not_found",
                        format!("no subscription {feed}/{group}"),
                    ));
                }
                let g = c
                    .groups
                    .iter()
                    .find(|g| g.name == group)
                    .expect("sub's group");
                match self.route(g, |tx| Control::Reconnect(feed.clone(), tx))? {
                    Ok(()) => Ok(json!({"reconnected": format!("{feed}/{group}")})),
                    Err(()) => Err(AdminError::new(
                        409,
                        "conflict",
                        format!("{feed}/{group} is not disconnected"),
                    )),
                }
            }
            "agents" => {
                no_args(args)?;
                let stale = c.health.report().stale;
                Ok(Value::Array(
                    c.agents
                        .iter()
                        .map(|a| {
                            let st = a.stats();
                            let core = st.core.load(Ordering::Relaxed);
                            json!({
                                "name": a.name,
                                "role": a.role,
                                "thread": a.name.chars().take(15).collect::<String>(),
                                "idle_strategy": a.idle_strategy,
                                "state": STATE_NAMES.get(st.state.load(Ordering::Relaxed) as usize).copied().unwrap_or("working"),
                                "core": if core < 0 { Value::Null } else { json!(core) },
                                "duty_cycles": st.duty_cycles.load(Ordering::Relaxed),
                                "idle_cycles": st.idle_cycles.load(Ordering::Relaxed),
                                "heartbeat_age_ms": st.heartbeat_age_ms.load(Ordering::Relaxed),
                                "stale": stale.contains(&a.name),
                                "hosts": a.hosts,
                            })
                        })
                        .collect(),
                ))
            }
            "health" => {
                no_args(args)?;
                let r = c.health.report();
                let mut body = readiness_json(&r);
                body["alive"] = json!(r.alive);
                body["stale"] = json!(r.stale);
                body["checks"] = json!({
                    "feeds": c.feeds.iter().map(|f| json!({
                        "name": f.shared.name,
                        "critical": f.critical,
                        "connected": f.shared.connected.load(Ordering::Relaxed),
                    })).collect::<Vec<_>>(),
                    "backlogs": c.subs.iter().map(|s| json!({
                        "feed": s.feed,
                        "group": s.group,
                        "depth": s.depth(),
                        "threshold": s.threshold.load(Ordering::Relaxed),
                        "state": sub_state(s),
                    })).collect::<Vec<_>>(),
                    "groups": c.groups.iter().map(|g| json!({
                        "name": g.name,
                        "exited": g.exited.load(Ordering::Relaxed),
                        "heartbeat_age_ms": g.agent.heartbeat_age_ms.load(Ordering::Relaxed),
                    })).collect::<Vec<_>>(),
                });
                Ok(body)
            }
            "quarantine.list" => {
                if args.len() > 1 {
                    return Err(AdminError::bad_args("usage: quarantine.list [N]"));
                }
                let n = match args.first() {
                    None => DEFAULT_QUARANTINE_LIST,
                    Some(a) => a
                        .parse::<usize>()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| AdminError::bad_args("N must be a positive integer"))?,
                };
                Ok(Value::Array(
                    c.quarantine.last(n).iter().map(|r| r.to_json()).collect(),
                ))
            }
            _ => {
                let Some(cc) = c.custom.iter().find(|cc| cc.name == name) else {
                    return Err(AdminError::new(
                        404,
                        "unknown_command",
                        format!("no command {name:?}; GET /admin/commands lists them"),
                    ));
                };
                let (proc, cmd, a) = (cc.processor.clone(), name.to_string(), args.to_vec());
                self.route(&cc.group, |tx| Control::Admin(proc, cmd, a, tx))?
                    .map_err(|e| AdminError::new(500, "command_failed", e))
            }
        }
    }
}
