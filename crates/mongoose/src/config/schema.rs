//! The YAML server config (spec §2.3, MNG-R11) as serde types.
//!
//! Keys are camelCase, unknown keys are rejected at every level, and every optional key has
//! the spec's default (the `DEFAULT_*` constants). Ranges and cross-references are checked by
//! [`super::validate`], not here. Every string value goes through `${env:}`/`${file:}`
//! substitution while it is deserialized.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::policy::{self, AdminAddress, BackpressureConfig, IdleStrategyConfig, LogTo, Pinning};
use super::subst;

/// Type-specific `config: {}` map, validated by the registry's factories.
pub type TypeConfig = Map<String, Value>;

/// Default `name`.
pub const DEFAULT_NAME: &str = "mongoose";
/// Default `ioThreads`.
pub const DEFAULT_IO_THREADS: u16 = 2;
/// Default `admin.commandTimeoutMs`.
pub const DEFAULT_COMMAND_TIMEOUT_MS: u32 = 2000;
/// Default `quarantine.memoryCapacity`.
pub const DEFAULT_QUARANTINE_MEMORY_CAPACITY: u32 = 1000;
/// Default `retry.maxRetries`.
pub const DEFAULT_MAX_RETRIES: u8 = 2;
/// Default `retry.initialBackoffMs`.
pub const DEFAULT_INITIAL_BACKOFF_MS: u32 = 5;
/// Default `retry.multiplier`.
pub const DEFAULT_RETRY_MULTIPLIER: f64 = 2.0;
/// Default `retry.maxBackoffMs`.
pub const DEFAULT_MAX_BACKOFF_MS: u32 = 100;
/// Default `retry.maxPending` (per group).
pub const DEFAULT_MAX_PENDING: u32 = 1024;
/// Default `health.checkIntervalMs`.
pub const DEFAULT_CHECK_INTERVAL_MS: u32 = 250;
/// Default `health.agentStaleMs`.
pub const DEFAULT_AGENT_STALE_MS: u32 = 5000;
/// Default `health.backlogThresholdPct`.
pub const DEFAULT_BACKLOG_THRESHOLD_PCT: u8 = 80;
/// Default `health.retryAfterS`.
pub const DEFAULT_RETRY_AFTER_S: u32 = 5;
/// Default `latency.snapshotMs`.
pub const DEFAULT_SNAPSHOT_MS: u32 = 1000;
/// Default `shutdown.drainDeadlineMs`.
pub const DEFAULT_DRAIN_DEADLINE_MS: u32 = 5000;
/// Default `startup.connectTimeoutMs`.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u32 = 5000;
/// Default `startup.startTimeoutMs`.
pub const DEFAULT_START_TIMEOUT_MS: u32 = 10_000;
/// Default `queueCapacity` of feeds, sinks and pipes.
pub const DEFAULT_QUEUE_CAPACITY: u32 = 1024;
/// Default `maxBatch` of a group.
pub const DEFAULT_MAX_BATCH: u32 = 64;
/// Default `maxTimers` of a group.
pub const DEFAULT_MAX_TIMERS: u32 = 4096;
/// Default `circuitBreaker.failureThreshold` (0 disables the breaker).
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
/// Default `circuitBreaker.openMs`.
pub const DEFAULT_OPEN_MS: u32 = 1000;
/// Default `circuitBreaker.halfOpenProbes`.
pub const DEFAULT_HALF_OPEN_PROBES: u32 = 1;
/// Agent that hosts feeds without an `agentName`.
pub const DEFAULT_FEED_AGENT: &str = "feeds";
/// Agent that hosts sinks without an `agentName`.
pub const DEFAULT_SINK_AGENT: &str = "sinks";
/// Suffix of a pipe's default `sinkName`.
pub const PIPE_SINK_SUFFIX: &str = ".sink";

fn yes() -> bool {
    true
}
fn default_queue_capacity() -> u32 {
    DEFAULT_QUEUE_CAPACITY
}
fn default_max_batch() -> u32 {
    DEFAULT_MAX_BATCH
}
fn default_max_timers() -> u32 {
    DEFAULT_MAX_TIMERS
}

/// One server: the whole YAML document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ServerConfig {
    /// `name`: the `instance` label, unique per process; `[A-Za-z0-9_.-]{1,64}`.
    #[serde(deserialize_with = "subst::string")]
    pub name: String,
    /// `idleStrategy`: inherited by every agent without its own.
    pub idle_strategy: IdleStrategyConfig,
    /// `pinning`: `strict` or `best-effort`.
    pub pinning: Pinning,
    /// `ioThreads`: tokio workers, 1..=64, created only if needed.
    pub io_threads: u16,
    /// `agentThreads[]`: per-agent idle strategy and core.
    pub agent_threads: Vec<AgentThreadConfig>,
    /// `services[]`.
    pub services: Vec<ServiceConfig>,
    /// `admin`: the admin listener.
    pub admin: AdminConfig,
    /// `quarantine`.
    pub quarantine: QuarantineConfig,
    /// `retry`: the default retry policy of every group.
    pub retry: RetryConfig,
    /// `health`.
    pub health: HealthConfig,
    /// `latency`.
    pub latency: LatencyConfig,
    /// `shutdown`.
    pub shutdown: ShutdownConfig,
    /// `startup`.
    pub startup: StartupConfig,
    /// `eventFeeds[]`.
    pub event_feeds: Vec<FeedConfig>,
    /// `eventSinks[]`.
    pub event_sinks: Vec<SinkConfig>,
    /// `eventHandlers[]`: the handler groups.
    pub event_handlers: Vec<GroupConfig>,
    /// `pipes[]`.
    pub pipes: Vec<PipeConfig>,
    /// `--log-to` / `MONGOOSE_LOG_TO`; not a YAML key. `None` lets the server choose
    /// (stderr when a `stdout` sink exists, decision 14).
    #[serde(skip)]
    pub log_to: Option<LogTo>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            name: DEFAULT_NAME.to_owned(),
            idle_strategy: IdleStrategyConfig::default(),
            pinning: Pinning::default(),
            io_threads: DEFAULT_IO_THREADS,
            agent_threads: Vec::new(),
            services: Vec::new(),
            admin: AdminConfig::default(),
            quarantine: QuarantineConfig::default(),
            retry: RetryConfig::default(),
            health: HealthConfig::default(),
            latency: LatencyConfig::default(),
            shutdown: ShutdownConfig::default(),
            startup: StartupConfig::default(),
            event_feeds: Vec::new(),
            event_sinks: Vec::new(),
            event_handlers: Vec::new(),
            pipes: Vec::new(),
            log_to: None,
        }
    }
}

/// `agentThreads[]`: settings of a named agent (a group or a hosting agent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentThreadConfig {
    /// `agentName`: `[A-Za-z0-9_-]{1,32}`, unique.
    #[serde(deserialize_with = "subst::string")]
    pub agent_name: String,
    /// `idleStrategy`; `None` inherits the top-level one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_strategy: Option<IdleStrategyConfig>,
    /// `coreId`: pin to this core; `None` does not pin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_id: Option<usize>,
}

/// `services[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceConfig {
    /// `name`: unique across feeds, sinks, services and pipes.
    #[serde(deserialize_with = "subst::string")]
    pub name: String,
    /// `type`: a registered service type.
    #[serde(rename = "type", deserialize_with = "subst::string")]
    pub type_name: String,
    /// `critical`: a failure to start fails startup.
    #[serde(default = "yes")]
    pub critical: bool,
    /// `agentName`: hosting agent for agent-hosted services.
    #[serde(
        default,
        deserialize_with = "subst::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub agent_name: Option<String>,
    /// `idleStrategy` of the hosting agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_strategy: Option<IdleStrategyConfig>,
    /// `config`: type-specific keys.
    #[serde(default, deserialize_with = "subst::json_map")]
    pub config: TypeConfig,
}

/// `admin`: the admin listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct AdminConfig {
    /// `address`: `IP:port` or `off`; a non-loopback address requires a token.
    pub address: AdminAddress,
    /// `token`: bearer token, at least 16 characters; reloadable.
    #[serde(deserialize_with = "subst::opt_string")]
    pub token: Option<String>,
    /// `commandTimeoutMs`: routed-command timeout, 100..=60000; reloadable.
    pub command_timeout_ms: u32,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            address: AdminAddress::default(),
            token: None,
            command_timeout_ms: DEFAULT_COMMAND_TIMEOUT_MS,
        }
    }
}

/// `quarantine`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct QuarantineConfig {
    /// `sink`: an `eventSinks[]` name; `None` keeps records in the memory ring only.
    #[serde(
        deserialize_with = "subst::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub sink: Option<String>,
    /// `memoryCapacity`: size of the fallback ring, 1..=10^6.
    pub memory_capacity: u32,
}

impl Default for QuarantineConfig {
    fn default() -> Self {
        QuarantineConfig {
            sink: None,
            memory_capacity: DEFAULT_QUARANTINE_MEMORY_CAPACITY,
        }
    }
}

/// `retry`: mirrors `crate::group::RetryPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct RetryConfig {
    /// `maxRetries`: 0..=10.
    pub max_retries: u8,
    /// `initialBackoffMs`: 0..=60000.
    pub initial_backoff_ms: u32,
    /// `multiplier`: 1..=10.
    pub multiplier: f64,
    /// `maxBackoffMs`: at least `initialBackoffMs`.
    pub max_backoff_ms: u32,
    /// `maxPending`: retry store per group, 1..=65536; not reloadable.
    pub max_pending: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: DEFAULT_MAX_RETRIES,
            initial_backoff_ms: DEFAULT_INITIAL_BACKOFF_MS,
            multiplier: DEFAULT_RETRY_MULTIPLIER,
            max_backoff_ms: DEFAULT_MAX_BACKOFF_MS,
            max_pending: DEFAULT_MAX_PENDING,
        }
    }
}

/// A group's `retry`: each key set overrides the top-level `retry`, key by key.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct RetryOverride {
    /// `maxRetries`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u8>,
    /// `initialBackoffMs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_backoff_ms: Option<u32>,
    /// `multiplier`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<f64>,
    /// `maxBackoffMs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_backoff_ms: Option<u32>,
    /// `maxPending`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_pending: Option<u32>,
}

impl RetryOverride {
    /// The effective policy: these keys over `base`.
    pub fn over(&self, base: &RetryConfig) -> RetryConfig {
        RetryConfig {
            max_retries: self.max_retries.unwrap_or(base.max_retries),
            initial_backoff_ms: self.initial_backoff_ms.unwrap_or(base.initial_backoff_ms),
            multiplier: self.multiplier.unwrap_or(base.multiplier),
            max_backoff_ms: self.max_backoff_ms.unwrap_or(base.max_backoff_ms),
            max_pending: self.max_pending.unwrap_or(base.max_pending),
        }
    }
}

/// `health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct HealthConfig {
    /// `checkIntervalMs`: 10..=10000.
    pub check_interval_ms: u32,
    /// `agentStaleMs`: at least 2× the interval and 10× the longest agent park.
    pub agent_stale_ms: u32,
    /// `backlogThresholdPct`: default backlog threshold, % of capacity, 1..=100.
    pub backlog_threshold_pct: u8,
    /// `retryAfterS`: `Retry-After` of a degraded `/readyz`, 1..=3600.
    pub retry_after_s: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            check_interval_ms: DEFAULT_CHECK_INTERVAL_MS,
            agent_stale_ms: DEFAULT_AGENT_STALE_MS,
            backlog_threshold_pct: DEFAULT_BACKLOG_THRESHOLD_PCT,
            retry_after_s: DEFAULT_RETRY_AFTER_S,
        }
    }
}

/// `latency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct LatencyConfig {
    /// `enabled`: record handler latency; reloadable.
    pub enabled: bool,
    /// `snapshotMs`: histogram merge period, 100..=60000.
    pub snapshot_ms: u32,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        LatencyConfig {
            enabled: true,
            snapshot_ms: DEFAULT_SNAPSHOT_MS,
        }
    }
}

/// `shutdown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ShutdownConfig {
    /// `drainDeadlineMs`: 0..=600000; reloadable.
    pub drain_deadline_ms: u32,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            drain_deadline_ms: DEFAULT_DRAIN_DEADLINE_MS,
        }
    }
}

/// `startup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct StartupConfig {
    /// `connectTimeoutMs`: 100..=600000.
    pub connect_timeout_ms: u32,
    /// `startTimeoutMs`: 100..=600000.
    pub start_timeout_ms: u32,
}

impl Default for StartupConfig {
    fn default() -> Self {
        StartupConfig {
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            start_timeout_ms: DEFAULT_START_TIMEOUT_MS,
        }
    }
}

/// `eventFeeds[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FeedConfig {
    /// `name`: unique across feeds, sinks, services and pipes.
    #[serde(deserialize_with = "subst::string")]
    pub name: String,
    /// `type`: a registered feed type.
    #[serde(rename = "type", deserialize_with = "subst::string")]
    pub type_name: String,
    /// `critical`.
    #[serde(default = "yes")]
    pub critical: bool,
    /// `broadcast`.
    #[serde(default)]
    pub broadcast: bool,
    /// `wrapWithNamedEvent`: built-ins render `{"feed","seq","data"}`.
    #[serde(default)]
    pub wrap_with_named_event: bool,
    /// `queueCapacity`: per consuming group; a power of two, 2..=1048576.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: u32,
    /// `backpressure`: reloadable.
    #[serde(default, deserialize_with = "policy::backpressure")]
    pub backpressure: BackpressureConfig,
    /// `backlogThreshold`: 1..=queueCapacity; `None` derives it from
    /// `health.backlogThresholdPct`. Reloadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog_threshold: Option<u32>,
    /// `agentName`: hosting agent; `None` is the implicit `feeds` agent.
    #[serde(
        default,
        deserialize_with = "subst::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub agent_name: Option<String>,
    /// `idleStrategy` of the hosting agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_strategy: Option<IdleStrategyConfig>,
    /// `config`: type-specific keys.
    #[serde(default, deserialize_with = "subst::json_map")]
    pub config: TypeConfig,
}

impl FeedConfig {
    /// The effective backlog threshold: the explicit one, else `max(1, ⌊pct × capacity⌋)`.
    pub fn effective_backlog_threshold(&self, pct: u8) -> u32 {
        effective_backlog_threshold(self.backlog_threshold, self.queue_capacity, pct)
    }

    /// The hosting agent's name.
    pub fn effective_agent_name(&self) -> &str {
        self.agent_name.as_deref().unwrap_or(DEFAULT_FEED_AGENT)
    }
}

fn effective_backlog_threshold(explicit: Option<u32>, capacity: u32, pct: u8) -> u32 {
    explicit.unwrap_or_else(|| {
        let derived = u64::from(capacity) * u64::from(pct) / 100;
        u32::try_from(derived).unwrap_or(u32::MAX).max(1)
    })
}

/// `eventSinks[].circuitBreaker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct CircuitBreakerConfig {
    /// `failureThreshold`: consecutive retryable failures that open it; 0 disables it.
    pub failure_threshold: u32,
    /// `openMs`: time open before a half-open probe, 1..=600000.
    pub open_ms: u32,
    /// `halfOpenProbes`: successful probes that close it, 1..=1000.
    pub half_open_probes: u32,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            open_ms: DEFAULT_OPEN_MS,
            half_open_probes: DEFAULT_HALF_OPEN_PROBES,
        }
    }
}

/// `eventSinks[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SinkConfig {
    /// `name`: unique across feeds, sinks, services and pipes.
    #[serde(deserialize_with = "subst::string")]
    pub name: String,
    /// `type`: a registered sink type.
    #[serde(rename = "type", deserialize_with = "subst::string")]
    pub type_name: String,
    /// `critical`.
    #[serde(default = "yes")]
    pub critical: bool,
    /// `queueCapacity`: a power of two, 2..=1048576.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: u32,
    /// `agentName`: hosting agent; `None` is the implicit `sinks` agent.
    #[serde(
        default,
        deserialize_with = "subst::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub agent_name: Option<String>,
    /// `idleStrategy` of the hosting agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_strategy: Option<IdleStrategyConfig>,
    /// `circuitBreaker`: `None` means the default breaker (none on `memory` sinks).
    /// Reloadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreakerConfig>,
    /// `config`: type-specific keys.
    #[serde(default, deserialize_with = "subst::json_map")]
    pub config: TypeConfig,
}

impl SinkConfig {
    /// The effective breaker: none on `memory` sinks or with a zero threshold.
    pub fn effective_circuit_breaker(&self) -> Option<CircuitBreakerConfig> {
        if self.type_name == "memory" {
            return None;
        }
        let cb = self.circuit_breaker.unwrap_or_default();
        (cb.failure_threshold > 0).then_some(cb)
    }

    /// The hosting agent's name.
    pub fn effective_agent_name(&self) -> &str {
        self.agent_name.as_deref().unwrap_or(DEFAULT_SINK_AGENT)
    }
}

/// `eventHandlers[]`: a handler group, one thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupConfig {
    /// `agentName`: the group (and thread) name, `[A-Za-z0-9_-]{1,32}`, unique.
    #[serde(deserialize_with = "subst::string")]
    pub agent_name: String,
    /// `idleStrategy`: else the `agentThreads` entry, else the top level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_strategy: Option<IdleStrategyConfig>,
    /// `coreId`: else the `agentThreads` entry's; else no pin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_id: Option<usize>,
    /// `maxBatch`: events per feed per duty cycle, 1..=4096; reloadable.
    #[serde(default = "default_max_batch")]
    pub max_batch: u32,
    /// `maxTimers`: timer store size, 1..=10^6.
    #[serde(default = "default_max_timers")]
    pub max_timers: u32,
    /// `retry`: overrides of the top-level `retry`; reloadable except `maxPending`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryOverride>,
    /// `processors`: an ordered map name → processor; the order is the dispatch order.
    #[serde(deserialize_with = "processors_de", serialize_with = "processors_ser")]
    pub processors: Vec<ProcessorConfig>,
}

impl GroupConfig {
    /// The group's effective retry policy over the top-level one.
    pub fn effective_retry(&self, top: &RetryConfig) -> RetryConfig {
        self.retry.map_or(*top, |r| r.over(top))
    }
}

/// One entry of a group's `processors` map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProcessorConfig {
    /// The map key: unique server-wide.
    #[serde(skip)]
    pub name: String,
    /// `type`: a registered processor type.
    #[serde(rename = "type", deserialize_with = "subst::string")]
    pub type_name: String,
    /// `feeds`: feed or pipe names to subscribe to.
    #[serde(default, deserialize_with = "subst::string_vec")]
    pub feeds: Vec<String>,
    /// `critical`.
    #[serde(default = "yes")]
    pub critical: bool,
    /// `enabled`: `false` leaves it out.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `config`: type-specific keys; the only reloadable part.
    #[serde(default, deserialize_with = "subst::json_map")]
    pub config: TypeConfig,
}

/// `pipes[]`: a multi-producer feed `name` plus an inline sink `sinkName`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PipeConfig {
    /// `name`: the feed side; unique across feeds, sinks, services and pipes.
    #[serde(deserialize_with = "subst::string")]
    pub name: String,
    /// `sinkName`: the sink side; `None` is `<name>.sink`.
    #[serde(
        default,
        deserialize_with = "subst::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub sink_name: Option<String>,
    /// `broadcast`.
    #[serde(default)]
    pub broadcast: bool,
    /// `wrapWithNamedEvent`.
    #[serde(default)]
    pub wrap_with_named_event: bool,
    /// `queueCapacity`: a power of two, 2..=1048576.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: u32,
    /// `backpressure`: reloadable.
    #[serde(default, deserialize_with = "policy::backpressure")]
    pub backpressure: BackpressureConfig,
    /// `backlogThreshold`: 1..=queueCapacity; reloadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog_threshold: Option<u32>,
}

impl PipeConfig {
    /// The sink side's name: `sinkName`, else `<name>.sink`.
    pub fn effective_sink_name(&self) -> String {
        self.sink_name
            .clone()
            .unwrap_or_else(|| format!("{}{PIPE_SINK_SUFFIX}", self.name))
    }

    /// The effective backlog threshold, as for feeds.
    pub fn effective_backlog_threshold(&self, pct: u8) -> u32 {
        effective_backlog_threshold(self.backlog_threshold, self.queue_capacity, pct)
    }
}

/// Reads the `processors` map in document order (serde-saphyr hands entries over in order,
/// and rejects a duplicate key itself).
fn processors_de<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ProcessorConfig>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<ProcessorConfig>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of processor name to {type, feeds, critical, enabled, config}")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(name) = map.next_key::<String>()? {
                let mut proc: ProcessorConfig = map.next_value()?;
                proc.name = name;
                out.push(proc);
            }
            Ok(out)
        }
    }
    d.deserialize_map(V)
}

fn processors_ser<S: Serializer>(procs: &[ProcessorConfig], s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(procs.len()))?;
    for p in procs {
        m.serialize_entry(&p.name, p)?;
    }
    m.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> ServerConfig {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn empty_document_gives_every_top_level_default() {
        let c = parse("{}");
        assert_eq!(c, ServerConfig::default());
        assert_eq!(c.name, "mongoose");
        assert_eq!(c.idle_strategy, IdleStrategyConfig::default());
        assert_eq!(c.pinning, Pinning::Strict);
        assert_eq!(c.io_threads, 2);
        assert!(c.agent_threads.is_empty() && c.services.is_empty() && c.pipes.is_empty());
        assert_eq!(c.admin.address.to_string(), "127.0.0.1:9200");
        assert_eq!(c.admin.token, None);
        assert_eq!(c.admin.command_timeout_ms, 2000);
        assert_eq!(c.quarantine.sink, None);
        assert_eq!(c.quarantine.memory_capacity, 1000);
        assert_eq!(
            (
                c.retry.max_retries,
                c.retry.initial_backoff_ms,
                c.retry.multiplier,
                c.retry.max_backoff_ms,
                c.retry.max_pending
            ),
            (2, 5, 2.0, 100, 1024)
        );
        assert_eq!(
            (
                c.health.check_interval_ms,
                c.health.agent_stale_ms,
                c.health.backlog_threshold_pct,
                c.health.retry_after_s
            ),
            (250, 5000, 80, 5)
        );
        assert!(c.latency.enabled);
        assert_eq!(c.latency.snapshot_ms, 1000);
        assert_eq!(c.shutdown.drain_deadline_ms, 5000);
        assert_eq!(c.startup.connect_timeout_ms, 5000);
        assert_eq!(c.startup.start_timeout_ms, 10_000);
        assert_eq!(c.log_to, None);
    }

    #[test]
    fn entries_get_every_entry_default() {
        let c = parse(
            "eventFeeds: [{name: f, type: memory}]\n\
             eventSinks: [{name: s, type: file}]\n\
             services: [{name: v, type: x}]\n\
             pipes: [{name: p}]\n\
             agentThreads: [{agentName: a}]\n\
             eventHandlers: [{agentName: g, processors: {p1: {type: log}}}]\n",
        );
        let f = &c.event_feeds[0];
        assert!(f.critical && !f.broadcast && !f.wrap_with_named_event);
        assert_eq!(f.queue_capacity, 1024);
        assert_eq!(f.backpressure, BackpressureConfig::default());
        assert_eq!(f.backlog_threshold, None);
        assert_eq!(f.effective_backlog_threshold(80), 819);
        assert_eq!(f.effective_agent_name(), "feeds");
        assert!(f.config.is_empty() && f.idle_strategy.is_none());
        let s = &c.event_sinks[0];
        assert!(s.critical);
        assert_eq!(s.queue_capacity, 1024);
        assert_eq!(s.effective_agent_name(), "sinks");
        assert_eq!(
            s.effective_circuit_breaker(),
            Some(CircuitBreakerConfig {
                failure_threshold: 5,
                open_ms: 1000,
                half_open_probes: 1
            })
        );
        let v = &c.services[0];
        assert!(v.critical && v.agent_name.is_none() && v.config.is_empty());
        let p = &c.pipes[0];
        assert_eq!(p.effective_sink_name(), "p.sink");
        assert_eq!(p.queue_capacity, 1024);
        assert!(!p.broadcast && !p.wrap_with_named_event);
        assert_eq!(p.backpressure, BackpressureConfig::default());
        let a = &c.agent_threads[0];
        assert_eq!((a.idle_strategy, a.core_id), (None, None));
        let g = &c.event_handlers[0];
        assert_eq!((g.max_batch, g.max_timers), (64, 4096));
        assert_eq!(g.effective_retry(&c.retry), c.retry);
        let p1 = &g.processors[0];
        assert_eq!(p1.name, "p1");
        assert!(p1.critical && p1.enabled && p1.feeds.is_empty() && p1.config.is_empty());
    }

    #[test]
    fn processors_keep_document_order() {
        let c = parse(
            "eventHandlers:\n  - agentName: g\n    processors:\n      zeta: {type: log}\n      alpha: {type: log}\n      mid: {type: log}\n",
        );
        let names: Vec<_> = c.event_handlers[0]
            .processors
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["zeta", "alpha", "mid"]);
    }

    #[test]
    fn backlog_threshold_is_at_least_one() {
        assert_eq!(effective_backlog_threshold(None, 2, 1), 1);
        assert_eq!(effective_backlog_threshold(Some(7), 2, 1), 7);
    }

    #[test]
    fn memory_sinks_and_zero_threshold_have_no_breaker() {
        let c = parse(
            "eventSinks: [{name: m, type: memory}, {name: s, type: stdout, circuitBreaker: {failureThreshold: 0}}]",
        );
        assert_eq!(c.event_sinks[0].effective_circuit_breaker(), None);
        assert_eq!(c.event_sinks[1].effective_circuit_breaker(), None);
    }

    #[test]
    fn group_retry_overrides_key_by_key() {
        let c = parse(
            "retry: {maxRetries: 4}\neventHandlers: [{agentName: g, retry: {initialBackoffMs: 9}, processors: {}}]",
        );
        let r = c.event_handlers[0].effective_retry(&c.retry);
        assert_eq!(
            (r.max_retries, r.initial_backoff_ms, r.max_backoff_ms),
            (4, 9, 100)
        );
    }
}
