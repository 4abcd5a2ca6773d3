//! Semantic validation of a parsed [`ServerConfig`]: every range of spec §2.3, names,
//! uniqueness, references between entries, registered types and core ids.
//!
//! [`validate_all`] collects every problem in document order; [`validate`] returns the first,
//! which is what the binary prints. Type-specific `config` maps are not looked at: the
//! registry's factories validate them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Display;
use std::ops::RangeInclusive;

use super::error::ConfigError;
use super::policy::{AdminAddress, BackpressureConfig, IdleStrategyConfig, Pinning, PolicyConfig};
use super::schema::{RetryConfig, ServerConfig};

/// Types that run on the I/O runtime and so take no `agentName` or `idleStrategy`
/// (decision 13).
pub const IO_RUNTIME_TYPES: &[&str] = &["tcp", "http", "redis-stream"];
/// Longest server `name`.
pub const MAX_NAME_LEN: usize = 64;
/// Longest agent (and group) name; thread names are truncated to 15 bytes anyway.
pub const MAX_AGENT_NAME_LEN: usize = 32;
/// Shortest admin token.
pub const MIN_TOKEN_LEN: usize = 16;
/// `agentStaleMs` must be at least this many check intervals.
pub const STALE_INTERVALS: u64 = 2;
/// `agentStaleMs` must be at least this many times the longest idle park or sleep.
pub const STALE_PARKS: u64 = 10;

/// The kind of a registered type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TypeKind {
    /// `eventFeeds[].type`.
    Feed,
    /// `eventSinks[].type`.
    Sink,
    /// `processors.*.type`.
    Processor,
    /// `services[].type`.
    Service,
}

impl TypeKind {
    fn noun(self) -> &'static str {
        match self {
            TypeKind::Feed => "feed",
            TypeKind::Sink => "sink",
            TypeKind::Processor => "processor",
            TypeKind::Service => "service",
        }
    }
}

/// The type names the registry knows, by kind, so YAML can name registered types only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownTypes {
    /// Registered names per kind.
    pub names: BTreeMap<TypeKind, BTreeSet<String>>,
    /// Built-in names compiled out by a cargo feature: name → feature. Naming one is an
    /// error that names the feature (MNG-R01).
    pub feature_gated: BTreeMap<String, String>,
}

impl KnownTypes {
    /// No types at all.
    pub fn new() -> Self {
        KnownTypes::default()
    }

    /// The spec's built-in types (§2.4), as `Registry::<Record>::standard()` holds them with
    /// every feature on.
    pub fn builtin() -> Self {
        let mut k = KnownTypes::new();
        for f in [
            "memory",
            "file",
            "stdin",
            "tcp",
            "http",
            "timer",
            "redis-stream",
        ] {
            k.insert(TypeKind::Feed, f);
        }
        for s in ["stdout", "file", "tcp", "http", "redis-stream", "memory"] {
            k.insert(TypeKind::Sink, s);
        }
        for p in ["log", "filter", "map", "count-by-key", "route-by-field"] {
            k.insert(TypeKind::Processor, p);
        }
        k
    }

    /// Adds a registered name.
    pub fn insert(&mut self, kind: TypeKind, name: impl Into<String>) -> &mut Self {
        self.names.entry(kind).or_default().insert(name.into());
        self
    }

    /// Whether `name` is registered as `kind`.
    pub fn contains(&self, kind: TypeKind, name: &str) -> bool {
        self.names.get(&kind).is_some_and(|s| s.contains(name))
    }

    fn check(&self, kind: TypeKind, path: String, name: &str, errs: &mut Vec<ConfigError>) {
        if self.contains(kind, name) {
            return;
        }
        let noun = kind.noun();
        let reason = match self.feature_gated.get(name) {
            Some(feature) => {
                format!("{noun} type needs cargo feature `{feature}`, which is off in this build")
            }
            None => {
                let known: Vec<&str> = self
                    .names
                    .get(&kind)
                    .map(|s| s.iter().map(String::as_str).collect())
                    .unwrap_or_default();
                if known.is_empty() {
                    format!("unknown {noun} type (no {noun} types are registered)")
                } else {
                    format!("unknown {noun} type (expected one of {})", known.join(", "))
                }
            }
        };
        errs.push(ConfigError::invalid(path, name, reason));
    }
}

/// Validates `cfg` and returns the first problem. `coreId`s are checked against the process
/// affinity set (`core_affinity::get_core_ids()`) under `pinning: strict` only.
///
/// # Errors
/// The first [`ConfigError::Invalid`] in document order.
pub fn validate(cfg: &ServerConfig, known: &KnownTypes) -> Result<(), ConfigError> {
    match validate_all(cfg, known).into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Validates `cfg` and returns every problem, in document order.
pub fn validate_all(cfg: &ServerConfig, known: &KnownTypes) -> Vec<ConfigError> {
    let needs_affinity = cfg.pinning == Pinning::Strict
        && (cfg.agent_threads.iter().any(|a| a.core_id.is_some())
            || cfg.event_handlers.iter().any(|g| g.core_id.is_some()));
    let affinity = needs_affinity.then(|| {
        core_affinity::get_core_ids()
            .map(|ids| ids.into_iter().map(|c| c.id).collect::<Vec<_>>())
            .unwrap_or_default()
    });
    validate_with_affinity(cfg, known, affinity.as_deref())
}

/// [`validate_all`] with an explicit affinity set (`None`: do not check cores against it).
pub(crate) fn validate_with_affinity(
    cfg: &ServerConfig,
    known: &KnownTypes,
    affinity: Option<&[usize]>,
) -> Vec<ConfigError> {
    let mut v = Checker { errs: Vec::new() };
    v.server(cfg, known, affinity);
    v.errs
}

struct Checker {
    errs: Vec<ConfigError>,
}

impl Checker {
    fn push(&mut self, path: impl Into<String>, value: impl Display, reason: impl Into<String>) {
        self.errs.push(ConfigError::invalid(path, value, reason));
    }

    fn range<T: PartialOrd + Display + Copy>(&mut self, path: &str, v: T, r: RangeInclusive<T>) {
        if !r.contains(&v) {
            let reason = format!("out of range (expected {}..={})", r.start(), r.end());
            self.push(path, v, reason);
        }
    }

    fn name(&mut self, path: &str, name: &str, max: usize, allow_dot: bool) {
        let ok = !name.is_empty()
            && name.len() <= max
            && name.bytes().all(|b| {
                b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (allow_dot && b == b'.')
            });
        if !ok {
            let class = if allow_dot {
                "A-Za-z0-9_.-"
            } else {
                "A-Za-z0-9_-"
            };
            self.push(
                path,
                name,
                format!("must be 1..={max} characters of [{class}]"),
            );
        }
    }

    fn idle(&mut self, path: &str, s: &IdleStrategyConfig) {
        match *s {
            IdleStrategyConfig::Sleeping { nanos } => {
                self.range(&format!("{path}.nanos"), nanos, 1..=1_000_000_000);
            }
            IdleStrategyConfig::SleepingMillis { millis } => {
                self.range(&format!("{path}.millis"), millis, 1..=10_000);
            }
            IdleStrategyConfig::Backoff {
                min_park_ns,
                max_park_ns,
                ..
            } if min_park_ns > max_park_ns => {
                self.push(
                    format!("{path}.minParkNs"),
                    min_park_ns,
                    format!("must not exceed maxParkNs ({max_park_ns})"),
                );
            }
            _ => {}
        }
    }

    fn queue(&mut self, path: &str, capacity: u32, threshold: Option<u32>) {
        if !(2..=1_048_576).contains(&capacity) || !capacity.is_power_of_two() {
            self.push(
                format!("{path}.queueCapacity"),
                capacity,
                "must be a power of two in 2..=1048576 (e.g. 1024)",
            );
        }
        if let Some(t) = threshold
            && !(1..=capacity).contains(&t)
        {
            self.push(
                format!("{path}.backlogThreshold"),
                t,
                format!("out of range (expected 1..=queueCapacity, {capacity})"),
            );
        }
    }

    fn backpressure(&mut self, path: &str, b: &BackpressureConfig) {
        self.range(
            &format!("{path}.backpressure.maxWaitMs"),
            b.max_wait_ms,
            0..=60_000,
        );
        if b.fallback == PolicyConfig::Block {
            self.push(
                format!("{path}.backpressure.fallback"),
                b.fallback,
                "must not be `block` (expected drop-newest, drop-oldest, disconnect or fail-fast)",
            );
        }
    }

    fn retry(&mut self, path: &str, r: &RetryConfig) {
        self.range(&format!("{path}.maxRetries"), r.max_retries, 0..=10);
        self.range(
            &format!("{path}.initialBackoffMs"),
            r.initial_backoff_ms,
            0..=60_000,
        );
        if !(1.0..=10.0).contains(&r.multiplier) {
            self.push(
                format!("{path}.multiplier"),
                r.multiplier,
                "out of range (expected 1..=10)",
            );
        }
        if r.max_backoff_ms < r.initial_backoff_ms {
            self.push(
                format!("{path}.maxBackoffMs"),
                r.max_backoff_ms,
                format!(
                    "must be at least initialBackoffMs ({})",
                    r.initial_backoff_ms
                ),
            );
        }
        self.range(&format!("{path}.maxPending"), r.max_pending, 1..=65_536);
    }

    fn io_runtime(&mut self, path: &str, type_name: &str, agent: Option<&str>, idle: bool) {
        if !IO_RUNTIME_TYPES.contains(&type_name) {
            return;
        }
        if let Some(agent) = agent {
            self.push(
                format!("{path}.agentName"),
                agent,
                format!("`{type_name}` runs on the I/O runtime and takes no agentName; remove it"),
            );
        }
        if idle {
            self.push(
                format!("{path}.idleStrategy"),
                type_name,
                format!(
                    "`{type_name}` runs on the I/O runtime and takes no idleStrategy; remove it"
                ),
            );
        }
    }

    fn server(&mut self, cfg: &ServerConfig, known: &KnownTypes, affinity: Option<&[usize]>) {
        self.name("name", &cfg.name, MAX_NAME_LEN, true);
        self.idle("idleStrategy", &cfg.idle_strategy);
        self.range("ioThreads", cfg.io_threads, 1..=64);

        let groups: HashSet<&str> = cfg
            .event_handlers
            .iter()
            .map(|g| g.agent_name.as_str())
            .collect();
        let not_a_group = |c: &mut Checker, path: String, agent: &Option<String>| {
            if let Some(a) = agent {
                c.name(&path, a, MAX_AGENT_NAME_LEN, false);
                if groups.contains(a.as_str()) {
                    c.push(
                        path,
                        a,
                        "names a handler group; group agents host nothing else (pick another agent)",
                    );
                }
            }
        };

        let mut agents = HashSet::new();
        for (i, a) in cfg.agent_threads.iter().enumerate() {
            let path = format!("agentThreads[{i}]");
            self.name(
                &format!("{path}.agentName"),
                &a.agent_name,
                MAX_AGENT_NAME_LEN,
                false,
            );
            if !agents.insert(a.agent_name.as_str()) {
                self.push(
                    format!("{path}.agentName"),
                    &a.agent_name,
                    "duplicate agentThreads entry",
                );
            }
            if let Some(s) = &a.idle_strategy {
                self.idle(&format!("{path}.idleStrategy"), s);
            }
        }

        // One namespace for feeds, sinks, services and pipes (both sides), decision 10.
        let mut components: HashMap<String, String> = HashMap::new();
        let mut claim = |c: &mut Checker, path: String, name: &str| {
            c.name(&path, name, MAX_NAME_LEN, true);
            if let Some(first) = components.get(name) {
                c.push(
                    path,
                    name,
                    format!("already used by {first} (feeds, sinks, services and pipes share one namespace)"),
                );
            } else {
                components.insert(name.to_owned(), path);
            }
        };

        for (i, s) in cfg.services.iter().enumerate() {
            let path = format!("services[{i}]");
            claim(self, format!("{path}.name"), &s.name);
            known.check(
                TypeKind::Service,
                format!("{path}.type"),
                &s.type_name,
                &mut self.errs,
            );
            not_a_group(self, format!("{path}.agentName"), &s.agent_name);
            if let Some(st) = &s.idle_strategy {
                self.idle(&format!("{path}.idleStrategy"), st);
            }
        }

        self.admin(cfg);

        let sinks: HashSet<&str> = cfg.event_sinks.iter().map(|s| s.name.as_str()).collect();
        if let Some(q) = &cfg.quarantine.sink
            && !sinks.contains(q.as_str())
        {
            let pipe = cfg.pipes.iter().any(|p| p.effective_sink_name() == *q);
            let reason = if pipe {
                "is a pipe; the quarantine sink must be an eventSinks entry".to_owned()
            } else {
                let mut names: Vec<&str> = sinks.iter().copied().collect();
                names.sort_unstable();
                format!(
                    "unknown sink (expected one of eventSinks: {})",
                    names.join(", ")
                )
            };
            self.push("quarantine.sink", q, reason);
        }
        self.range(
            "quarantine.memoryCapacity",
            cfg.quarantine.memory_capacity,
            1..=1_000_000,
        );

        self.retry("retry", &cfg.retry);
        self.health(cfg);
        self.range("latency.snapshotMs", cfg.latency.snapshot_ms, 100..=60_000);
        self.range(
            "shutdown.drainDeadlineMs",
            cfg.shutdown.drain_deadline_ms,
            0..=600_000,
        );
        self.range(
            "startup.connectTimeoutMs",
            cfg.startup.connect_timeout_ms,
            100..=600_000,
        );
        self.range(
            "startup.startTimeoutMs",
            cfg.startup.start_timeout_ms,
            100..=600_000,
        );

        for (i, f) in cfg.event_feeds.iter().enumerate() {
            let path = format!("eventFeeds[{i}]");
            claim(self, format!("{path}.name"), &f.name);
            known.check(
                TypeKind::Feed,
                format!("{path}.type"),
                &f.type_name,
                &mut self.errs,
            );
            self.queue(&path, f.queue_capacity, f.backlog_threshold);
            self.backpressure(&path, &f.backpressure);
            not_a_group(self, format!("{path}.agentName"), &f.agent_name);
            if let Some(s) = &f.idle_strategy {
                self.idle(&format!("{path}.idleStrategy"), s);
            }
            self.io_runtime(
                &path,
                &f.type_name,
                f.agent_name.as_deref(),
                f.idle_strategy.is_some(),
            );
            let b = f.backpressure;
            let lossless = b.policy == PolicyConfig::FailFast
                || (b.policy == PolicyConfig::Block && b.fallback == PolicyConfig::FailFast);
            if f.type_name == "redis-stream" && !lossless {
                self.push(
                    format!("{path}.backpressure"),
                    format!("{}/{}", b.policy, b.fallback),
                    "redis-stream feeds must be lossless: use `fail-fast`, or `block` with fallback `fail-fast`",
                );
            }
        }

        for (i, s) in cfg.event_sinks.iter().enumerate() {
            let path = format!("eventSinks[{i}]");
            claim(self, format!("{path}.name"), &s.name);
            known.check(
                TypeKind::Sink,
                format!("{path}.type"),
                &s.type_name,
                &mut self.errs,
            );
            self.queue(&path, s.queue_capacity, None);
            not_a_group(self, format!("{path}.agentName"), &s.agent_name);
            if let Some(st) = &s.idle_strategy {
                self.idle(&format!("{path}.idleStrategy"), st);
            }
            self.io_runtime(
                &path,
                &s.type_name,
                s.agent_name.as_deref(),
                s.idle_strategy.is_some(),
            );
            if let Some(cb) = &s.circuit_breaker {
                if s.type_name == "memory" {
                    self.push(
                        format!("{path}.circuitBreaker"),
                        "{…}",
                        "not allowed on `memory` sinks (they always succeed); remove it",
                    );
                }
                self.range(
                    &format!("{path}.circuitBreaker.openMs"),
                    cb.open_ms,
                    1..=600_000,
                );
                self.range(
                    &format!("{path}.circuitBreaker.halfOpenProbes"),
                    cb.half_open_probes,
                    1..=1000,
                );
            }
        }

        let mut subscribable: Vec<&str> = cfg.event_feeds.iter().map(|f| f.name.as_str()).collect();
        for (i, p) in cfg.pipes.iter().enumerate() {
            let path = format!("pipes[{i}]");
            claim(self, format!("{path}.name"), &p.name);
            claim(self, format!("{path}.sinkName"), &p.effective_sink_name());
            self.queue(&path, p.queue_capacity, p.backlog_threshold);
            self.backpressure(&path, &p.backpressure);
            subscribable.push(&p.name);
        }
        subscribable.sort_unstable();

        self.groups(cfg, known, &subscribable);
        self.cores(cfg, affinity);
    }

    fn admin(&mut self, cfg: &ServerConfig) {
        let admin = &cfg.admin;
        if let AdminAddress::Socket(addr) = admin.address
            && !addr.ip().is_loopback()
            && admin.token.is_none()
        {
            self.push(
                "admin.address",
                addr,
                "a non-loopback address requires admin.token (set it or MONGOOSE_ADMIN_TOKEN, or bind 127.0.0.1)",
            );
        }
        if let Some(t) = &admin.token
            && t.chars().count() < MIN_TOKEN_LEN
        {
            self.push(
                "admin.token",
                "***",
                format!("must be at least {MIN_TOKEN_LEN} characters"),
            );
        }
        self.range(
            "admin.commandTimeoutMs",
            admin.command_timeout_ms,
            100..=60_000,
        );
    }

    fn health(&mut self, cfg: &ServerConfig) {
        let h = &cfg.health;
        self.range("health.checkIntervalMs", h.check_interval_ms, 10..=10_000);
        self.range(
            "health.backlogThresholdPct",
            h.backlog_threshold_pct,
            1..=100,
        );
        self.range("health.retryAfterS", h.retry_after_s, 1..=3600);
        let stale = u64::from(h.agent_stale_ms);
        let min_by_interval = STALE_INTERVALS * u64::from(h.check_interval_ms);
        if stale < min_by_interval {
            self.push(
                "health.agentStaleMs",
                stale,
                format!("must be at least {STALE_INTERVALS}× checkIntervalMs ({min_by_interval})"),
            );
        }
        let (pause_ns, at) = longest_pause(cfg);
        let min_by_park_ms = (STALE_PARKS * pause_ns).div_ceil(1_000_000);
        if stale < min_by_park_ms {
            self.push(
                "health.agentStaleMs",
                stale,
                format!(
                    "must be at least {STALE_PARKS}× the longest idle park ({pause_ns} ns at {at}), i.e. {min_by_park_ms}"
                ),
            );
        }
    }

    fn groups(&mut self, cfg: &ServerConfig, known: &KnownTypes, subscribable: &[&str]) {
        let mut group_names = HashSet::new();
        let mut proc_names: HashMap<&str, String> = HashMap::new();
        for (i, g) in cfg.event_handlers.iter().enumerate() {
            let path = format!("eventHandlers[{i}]");
            let name_path = format!("{path}.agentName");
            self.name(&name_path, &g.agent_name, MAX_AGENT_NAME_LEN, false);
            if !group_names.insert(g.agent_name.as_str()) {
                self.push(&name_path, &g.agent_name, "duplicate group agentName");
            }
            if let Some(s) = &g.idle_strategy {
                self.idle(&format!("{path}.idleStrategy"), s);
            }
            self.range(&format!("{path}.maxBatch"), g.max_batch, 1..=4096);
            self.range(&format!("{path}.maxTimers"), g.max_timers, 1..=1_000_000);
            if g.retry.is_some() {
                self.retry(&format!("{path}.retry"), &g.effective_retry(&cfg.retry));
            }
            for p in &g.processors {
                let ppath = format!("{path}.processors.{}", p.name);
                self.name(&ppath, &p.name, MAX_NAME_LEN, true);
                if let Some(first) = proc_names.get(p.name.as_str()) {
                    self.push(
                        &ppath,
                        &p.name,
                        format!("processor names are unique server-wide; already used at {first}"),
                    );
                } else {
                    proc_names.insert(&p.name, ppath.clone());
                }
                known.check(
                    TypeKind::Processor,
                    format!("{ppath}.type"),
                    &p.type_name,
                    &mut self.errs,
                );
                for (j, feed) in p.feeds.iter().enumerate() {
                    if !subscribable.contains(&feed.as_str()) {
                        self.push(
                            format!("{ppath}.feeds[{j}]"),
                            feed,
                            format!(
                                "unknown feed (expected one of the eventFeeds or pipes: {})",
                                subscribable.join(", ")
                            ),
                        );
                    }
                }
            }
        }
    }

    fn cores(&mut self, cfg: &ServerConfig, affinity: Option<&[usize]>) {
        // Effective core per agent: a group's own coreId, else its agentThreads entry's.
        let mut uses: Vec<(String, usize)> = Vec::new();
        let group_names: HashSet<&str> = cfg
            .event_handlers
            .iter()
            .map(|g| g.agent_name.as_str())
            .collect();
        for (i, g) in cfg.event_handlers.iter().enumerate() {
            if let Some(c) = g.core_id {
                uses.push((format!("eventHandlers[{i}].coreId"), c));
            } else if let Some((j, a)) = cfg
                .agent_threads
                .iter()
                .enumerate()
                .find(|(_, a)| a.agent_name == g.agent_name)
                && let Some(c) = a.core_id
            {
                uses.push((format!("agentThreads[{j}].coreId"), c));
            }
        }
        for (j, a) in cfg.agent_threads.iter().enumerate() {
            if !group_names.contains(a.agent_name.as_str())
                && let Some(c) = a.core_id
            {
                uses.push((format!("agentThreads[{j}].coreId"), c));
            }
        }
        uses.sort_by(|a, b| a.0.cmp(&b.0));
        let mut seen: HashMap<usize, &str> = HashMap::new();
        for (path, core) in &uses {
            if let Some(set) = affinity
                && !set.contains(core)
            {
                let list: Vec<String> = set.iter().map(usize::to_string).collect();
                self.push(
                    path,
                    core,
                    format!(
                        "core not in the process affinity set [{}] (pinning: strict; use best-effort to only warn)",
                        list.join(", ")
                    ),
                );
            }
            if let Some(first) = seen.get(core) {
                self.push(path, core, format!("core already used by {first}"));
            } else {
                seen.insert(*core, path);
            }
        }
    }
}

/// The longest idle park or sleep any configured strategy can take, and where it is set.
fn longest_pause(cfg: &ServerConfig) -> (u64, String) {
    let mut best = (
        cfg.idle_strategy.longest_pause_ns(),
        "idleStrategy".to_owned(),
    );
    let mut consider = |s: &Option<IdleStrategyConfig>, path: String| {
        if let Some(s) = s
            && s.longest_pause_ns() > best.0
        {
            best = (s.longest_pause_ns(), path);
        }
    };
    for (i, a) in cfg.agent_threads.iter().enumerate() {
        consider(&a.idle_strategy, format!("agentThreads[{i}].idleStrategy"));
    }
    for (i, s) in cfg.services.iter().enumerate() {
        consider(&s.idle_strategy, format!("services[{i}].idleStrategy"));
    }
    for (i, f) in cfg.event_feeds.iter().enumerate() {
        consider(&f.idle_strategy, format!("eventFeeds[{i}].idleStrategy"));
    }
    for (i, s) in cfg.event_sinks.iter().enumerate() {
        consider(&s.idle_strategy, format!("eventSinks[{i}].idleStrategy"));
    }
    for (i, g) in cfg.event_handlers.iter().enumerate() {
        consider(&g.idle_strategy, format!("eventHandlers[{i}].idleStrategy"));
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_yaml_str;
    use crate::config::policy::BackpressureConfig;

    const BASE: &str = "eventFeeds: [{name: in, type: memory}]\n\
        eventSinks: [{name: out, type: file}, {name: mem, type: memory}]\n\
        pipes: [{name: p}]\n\
        agentThreads: [{agentName: g}, {agentName: h}]\n\
        eventHandlers: [{agentName: g, retry: {}, processors: {a: {type: log, feeds: [in, p]}}}]\n";

    fn base() -> ServerConfig {
        from_yaml_str(BASE, "t").unwrap()
    }

    fn errors(cfg: &ServerConfig) -> Vec<ConfigError> {
        validate_with_affinity(cfg, &KnownTypes::builtin(), Some(&[0, 1]))
    }

    fn first_path(cfg: &ServerConfig) -> Option<String> {
        errors(cfg).first().map(|e| e.path().to_owned())
    }

    fn expect_err(cfg: &ServerConfig, path: &str, reason_part: &str) {
        let errs = errors(cfg);
        assert!(
            errs.iter()
                .any(|e| e.path() == path && e.to_string().contains(reason_part)),
            "expected {path}: {reason_part}; got {errs:?}"
        );
    }

    /// Checks that `ok` values pass and `bad` values fail at `path`.
    fn bounds(path: &str, set: impl Fn(&mut ServerConfig, u64), ok: &[u64], bad: &[u64]) {
        for &v in ok {
            let mut c = base();
            set(&mut c, v);
            assert_eq!(first_path(&c), None, "{path} = {v} should pass");
        }
        for &v in bad {
            let mut c = base();
            set(&mut c, v);
            assert_eq!(
                first_path(&c).as_deref(),
                Some(path),
                "{path} = {v} should fail"
            );
        }
    }

    #[test]
    fn base_is_valid() {
        assert_eq!(errors(&base()), []);
    }

    #[test]
    fn every_numeric_range_accepts_its_bounds_and_rejects_beyond() {
        bounds(
            "ioThreads",
            |c, v| c.io_threads = v as u16,
            &[1, 64],
            &[0, 65],
        );
        bounds(
            "admin.commandTimeoutMs",
            |c, v| c.admin.command_timeout_ms = v as u32,
            &[100, 60_000],
            &[99, 60_001],
        );
        bounds(
            "quarantine.memoryCapacity",
            |c, v| c.quarantine.memory_capacity = v as u32,
            &[1, 1_000_000],
            &[0, 1_000_001],
        );
        bounds(
            "retry.maxRetries",
            |c, v| c.retry.max_retries = v as u8,
            &[0, 10],
            &[11],
        );
        bounds(
            "retry.initialBackoffMs",
            |c, v| {
                c.retry.initial_backoff_ms = v as u32;
                c.retry.max_backoff_ms = 60_000;
            },
            &[0, 60_000],
            &[60_001],
        );
        bounds(
            "retry.multiplier",
            |c, v| c.retry.multiplier = v as f64 / 10.0,
            &[10, 100],
            &[9, 101],
        );
        bounds(
            "retry.maxBackoffMs",
            |c, v| c.retry.max_backoff_ms = v as u32,
            &[5, 1_000_000],
            &[4],
        );
        bounds(
            "retry.maxPending",
            |c, v| c.retry.max_pending = v as u32,
            &[1, 65_536],
            &[0, 65_537],
        );
        bounds(
            "health.checkIntervalMs",
            |c, v| {
                c.health.check_interval_ms = v as u32;
                c.health.agent_stale_ms = 20_000;
            },
            &[10, 10_000],
            &[9, 10_001],
        );
        bounds(
            "health.backlogThresholdPct",
            |c, v| c.health.backlog_threshold_pct = v as u8,
            &[1, 100],
            &[0, 101],
        );
        bounds(
            "health.retryAfterS",
            |c, v| c.health.retry_after_s = v as u32,
            &[1, 3600],
            &[0, 3601],
        );
        bounds(
            "latency.snapshotMs",
            |c, v| c.latency.snapshot_ms = v as u32,
            &[100, 60_000],
            &[99, 60_001],
        );
        bounds(
            "shutdown.drainDeadlineMs",
            |c, v| c.shutdown.drain_deadline_ms = v as u32,
            &[0, 600_000],
            &[600_001],
        );
        bounds(
            "startup.connectTimeoutMs",
            |c, v| c.startup.connect_timeout_ms = v as u32,
            &[100, 600_000],
            &[99, 600_001],
        );
        bounds(
            "startup.startTimeoutMs",
            |c, v| c.startup.start_timeout_ms = v as u32,
            &[100, 600_000],
            &[99, 600_001],
        );
        bounds(
            "eventFeeds[0].queueCapacity",
            |c, v| c.event_feeds[0].queue_capacity = v as u32,
            &[2, 1_048_576],
            &[0, 1, 3, 1000, 2_097_152],
        );
        bounds(
            "eventSinks[0].queueCapacity",
            |c, v| c.event_sinks[0].queue_capacity = v as u32,
            &[2, 1024],
            &[1000],
        );
        bounds(
            "pipes[0].queueCapacity",
            |c, v| c.pipes[0].queue_capacity = v as u32,
            &[2, 1_048_576],
            &[6],
        );
        bounds(
            "eventFeeds[0].backlogThreshold",
            |c, v| c.event_feeds[0].backlog_threshold = Some(v as u32),
            &[1, 1024],
            &[0, 1025],
        );
        bounds(
            "pipes[0].backlogThreshold",
            |c, v| c.pipes[0].backlog_threshold = Some(v as u32),
            &[1, 1024],
            &[0, 1025],
        );
        bounds(
            "eventFeeds[0].backpressure.maxWaitMs",
            |c, v| c.event_feeds[0].backpressure.max_wait_ms = v as u32,
            &[0, 60_000],
            &[60_001],
        );
        bounds(
            "pipes[0].backpressure.maxWaitMs",
            |c, v| c.pipes[0].backpressure.max_wait_ms = v as u32,
            &[0, 60_000],
            &[60_001],
        );
        bounds(
            "eventHandlers[0].maxBatch",
            |c, v| c.event_handlers[0].max_batch = v as u32,
            &[1, 4096],
            &[0, 4097],
        );
        bounds(
            "eventHandlers[0].maxTimers",
            |c, v| c.event_handlers[0].max_timers = v as u32,
            &[1, 1_000_000],
            &[0, 1_000_001],
        );
        bounds(
            "eventHandlers[0].retry.maxRetries",
            |c, v| {
                c.event_handlers[0].retry = Some(crate::config::RetryOverride {
                    max_retries: Some(v as u8),
                    ..Default::default()
                });
            },
            &[0, 10],
            &[11],
        );
        bounds(
            "idleStrategy.nanos",
            |c, v| c.idle_strategy = IdleStrategyConfig::Sleeping { nanos: v },
            &[1, 1_000_000],
            &[0, 1_000_000_001],
        );
        bounds(
            "idleStrategy.millis",
            |c, v| c.idle_strategy = IdleStrategyConfig::SleepingMillis { millis: v },
            &[1, 100],
            &[0, 10_001],
        );
        bounds(
            "eventSinks[0].circuitBreaker.openMs",
            |c, v| {
                c.event_sinks[0].circuit_breaker = Some(crate::config::CircuitBreakerConfig {
                    open_ms: v as u32,
                    ..Default::default()
                });
            },
            &[1, 600_000],
            &[0, 600_001],
        );
    }

    #[test]
    fn names_follow_their_patterns() {
        let mut c = base();
        c.name = "a.b-c_D9".into();
        assert_eq!(errors(&c), []);
        c.name = "bad name".into();
        expect_err(&c, "name", "1..=64 characters");
        c.name = "x".repeat(65);
        expect_err(&c, "name", "1..=64");
        let mut c = base();
        c.agent_threads[1].agent_name = "has.dot".into();
        expect_err(&c, "agentThreads[1].agentName", "[A-Za-z0-9_-]");
        c.agent_threads[1].agent_name = "y".repeat(33);
        expect_err(&c, "agentThreads[1].agentName", "1..=32");
    }

    #[test]
    fn agent_names_are_unique() {
        let mut c = base();
        c.agent_threads[1].agent_name = "g".into();
        expect_err(&c, "agentThreads[1].agentName", "duplicate");
        let mut c = base();
        c.event_handlers.push(c.event_handlers[0].clone());
        c.event_handlers[1].processors[0].name = "b".into();
        expect_err(&c, "eventHandlers[1].agentName", "duplicate group");
    }

    #[test]
    fn feeds_sinks_services_and_pipes_share_one_namespace() {
        let mut c = base();
        c.event_sinks[0].name = "in".into();
        expect_err(
            &c,
            "eventSinks[0].name",
            "already used by eventFeeds[0].name",
        );
        let mut c = base();
        c.event_sinks[0].name = "p.sink".into();
        expect_err(
            &c,
            "pipes[0].sinkName",
            "already used by eventSinks[0].name",
        );
    }

    #[test]
    fn processor_names_are_unique_server_wide() {
        let mut c = base();
        let mut g2 = c.event_handlers[0].clone();
        g2.agent_name = "h".into();
        c.event_handlers.push(g2);
        expect_err(&c, "eventHandlers[1].processors.a", "unique server-wide");
    }

    #[test]
    fn fallback_must_not_be_block() {
        let mut c = base();
        c.event_feeds[0].backpressure.fallback = PolicyConfig::Block;
        expect_err(
            &c,
            "eventFeeds[0].backpressure.fallback",
            "must not be `block`",
        );
    }

    #[test]
    fn agent_name_of_feeds_sinks_and_services_must_not_name_a_group() {
        let mut c = base();
        c.event_feeds[0].agent_name = Some("g".into());
        c.event_sinks[0].agent_name = Some("g".into());
        expect_err(&c, "eventFeeds[0].agentName", "names a handler group");
        expect_err(&c, "eventSinks[0].agentName", "names a handler group");
        c.event_feeds[0].agent_name = Some("h".into());
        c.event_sinks[0].agent_name = Some("h".into());
        assert_eq!(errors(&c), []);
    }

    #[test]
    fn io_runtime_types_take_no_agent_or_idle_strategy() {
        let mut c = base();
        c.event_feeds[0].type_name = "tcp".into();
        c.event_feeds[0].agent_name = Some("h".into());
        c.event_feeds[0].idle_strategy = Some(IdleStrategyConfig::Yielding);
        expect_err(&c, "eventFeeds[0].agentName", "I/O runtime");
        expect_err(&c, "eventFeeds[0].idleStrategy", "I/O runtime");
    }

    #[test]
    fn circuit_breaker_is_not_allowed_on_memory_sinks() {
        let mut c = base();
        c.event_sinks[1].circuit_breaker = Some(Default::default());
        expect_err(&c, "eventSinks[1].circuitBreaker", "memory");
    }

    #[test]
    fn redis_stream_feeds_must_be_lossless() {
        let mut c = base();
        c.event_feeds[0].type_name = "redis-stream".into();
        expect_err(&c, "eventFeeds[0].backpressure", "lossless");
        c.event_feeds[0].backpressure.fallback = PolicyConfig::FailFast;
        assert_eq!(errors(&c), []);
        c.event_feeds[0].backpressure = BackpressureConfig {
            policy: PolicyConfig::FailFast,
            ..Default::default()
        };
        assert_eq!(errors(&c), []);
        c.event_feeds[0].backpressure.policy = PolicyConfig::DropOldest;
        expect_err(&c, "eventFeeds[0].backpressure", "lossless");
    }

    #[test]
    fn admin_token_must_be_long_enough_and_is_not_echoed() {
        let mut c = base();
        c.admin.token = Some("short-secret".into());
        let errs = errors(&c);
        assert_eq!(
            errs[0].to_string(),
            "admin.token = ***: must be at least 16 characters"
        );
        c.admin.address = crate::config::AdminAddress::Off;
        c.admin.token = None;
        assert_eq!(errors(&c), []);
    }

    #[test]
    fn quarantine_sink_must_exist_and_not_be_a_pipe() {
        let mut c = base();
        c.quarantine.sink = Some("out".into());
        assert_eq!(errors(&c), []);
        c.quarantine.sink = Some("p.sink".into());
        expect_err(&c, "quarantine.sink", "is a pipe");
        c.quarantine.sink = Some("nope".into());
        expect_err(
            &c,
            "quarantine.sink",
            "unknown sink (expected one of eventSinks: mem, out)",
        );
    }

    #[test]
    fn agent_stale_ms_covers_two_intervals_and_ten_parks() {
        let mut c = base();
        c.health.agent_stale_ms = 499;
        expect_err(&c, "health.agentStaleMs", "2× checkIntervalMs (500)");
        c.health.agent_stale_ms = 500;
        assert_eq!(errors(&c), []);
        c.event_handlers[0].idle_strategy =
            Some(IdleStrategyConfig::SleepingMillis { millis: 100 });
        expect_err(
            &c,
            "health.agentStaleMs",
            "eventHandlers[0].idleStrategy), i.e. 1000",
        );
        c.health.agent_stale_ms = 1000;
        assert_eq!(errors(&c), []);
    }

    #[test]
    fn backoff_min_park_must_not_exceed_max_park() {
        let mut c = base();
        c.agent_threads[0].idle_strategy = Some(IdleStrategyConfig::Backoff {
            max_spins: 1,
            max_yields: 1,
            min_park_ns: 10,
            max_park_ns: 9,
        });
        expect_err(
            &c,
            "agentThreads[0].idleStrategy.minParkNs",
            "must not exceed maxParkNs (9)",
        );
    }

    #[test]
    fn core_ids_are_checked_against_affinity_only_under_strict_and_used_once() {
        let mut c = base();
        c.agent_threads[1].core_id = Some(99);
        expect_err(&c, "agentThreads[1].coreId", "affinity set [0, 1]");
        c.pinning = Pinning::BestEffort;
        let best_effort = validate_all(&c, &KnownTypes::builtin());
        assert_eq!(best_effort, []);
        c.agent_threads[1].core_id = Some(1);
        c.event_handlers[0].core_id = Some(1);
        expect_err(
            &c,
            "eventHandlers[0].coreId",
            "core already used by agentThreads[1].coreId",
        );
    }

    #[test]
    fn group_core_comes_from_its_agent_threads_entry() {
        let mut c = base();
        c.agent_threads[0].core_id = Some(1);
        c.agent_threads[1].core_id = Some(1);
        expect_err(
            &c,
            "agentThreads[1].coreId",
            "already used by agentThreads[0].coreId",
        );
    }

    #[test]
    fn unknown_types_are_reported_per_kind() {
        let mut c = base();
        c.event_sinks[0].type_name = "kafka".into();
        expect_err(
            &c,
            "eventSinks[0].type",
            "unknown sink type (expected one of file, http, memory, redis-stream, stdout, tcp)",
        );
        let mut c = base();
        c.services.push(crate::config::ServiceConfig {
            name: "svc".into(),
            type_name: "cache".into(),
            critical: true,
            agent_name: None,
            idle_strategy: None,
            config: Default::default(),
        });
        expect_err(&c, "services[0].type", "no service types are registered");
    }

    #[test]
    fn validate_returns_the_first_of_all_problems() {
        let mut c = base();
        c.io_threads = 0;
        c.event_feeds[0].queue_capacity = 3;
        let all = validate_all(&c, &KnownTypes::builtin());
        assert_eq!(all.len(), 2);
        assert_eq!(validate(&c, &KnownTypes::builtin()), Err(all[0].clone()));
        assert_eq!(all[0].path(), "ioThreads");
    }
}
