//! From a validated [`ServerConfig`] and a [`Registry`] to a startable [`ServerSpec`]
//! (MNG-R03, R19 step 1): every type's own `validate` runs here too, so `--check` and a
//! real start reject exactly the same configs.

use std::time::Duration;

use std::collections::HashMap;
use std::sync::Arc;

use crate::admin::AdminSpec;
use crate::config::{AdminAddress, ConfigError, ServerConfig, validate};
use crate::event::Event;
use crate::feed::{FeedEnv, RunsOn};
use crate::group::{GroupSpec, ProcSpec};
use crate::health::HealthConfig;
use crate::registry::Registry;
use crate::server::{AgentPlacement, FeedSource, FeedSpec, ServerSpec, leak};
use crate::service::ServiceSpec;
use crate::sink_agent::{SinkEnv, SinkSpec};

/// Default `memory` sink capacity.
pub const DEFAULT_MEMORY_SINK_CAPACITY: usize = 10_000;

/// Layer-independent checks: the schema rules plus every type's own `config` validation.
pub fn check<E: Event>(cfg: &ServerConfig, reg: &Registry<E>) -> Result<(), ConfigError> {
    validate(cfg, &reg.known_types())?;
    for (gi, g) in cfg.event_handlers.iter().enumerate() {
        for p in &g.processors {
            let t = reg.processor(&p.type_name).ok_or_else(|| {
                ConfigError::invalid(
                    format!("eventHandlers[{gi}].processors.{}.type", p.name),
                    &p.type_name,
                    "not registered",
                )
            })?;
            (t.validate)(&p.config).map_err(|e| {
                ConfigError::invalid(
                    format!("eventHandlers[{gi}].processors.{}.config", p.name),
                    "{…}",
                    e,
                )
            })?;
        }
    }
    for (i, f) in cfg.event_feeds.iter().enumerate() {
        let t = reg.feed(&f.type_name).ok_or_else(|| {
            ConfigError::invalid(
                format!("eventFeeds[{i}].type"),
                &f.type_name,
                "not registered",
            )
        })?;
        (t.validate)(&f.config)
            .map_err(|e| ConfigError::invalid(format!("eventFeeds[{i}].config"), "{…}", e))?;
        if t.runs_on == RunsOn::Io && f.agent_name.is_some() {
            return Err(ConfigError::invalid(
                format!("eventFeeds[{i}].agentName"),
                f.agent_name.as_deref().unwrap_or(""),
                format!(
                    "{} feeds run on the I/O runtime, not on an agent",
                    f.type_name
                ),
            ));
        }
    }
    for (i, s) in cfg.services.iter().enumerate() {
        let t = reg.service(&s.type_name).ok_or_else(|| {
            ConfigError::invalid(
                format!("services[{i}].type"),
                &s.type_name,
                "not registered",
            )
        })?;
        (t.validate)(&s.config)
            .map_err(|e| ConfigError::invalid(format!("services[{i}].config"), "{…}", e))?;
    }
    for (i, s) in cfg.event_sinks.iter().enumerate() {
        let t = reg.sink(&s.type_name).ok_or_else(|| {
            ConfigError::invalid(
                format!("eventSinks[{i}].type"),
                &s.type_name,
                "not registered",
            )
        })?;
        (t.validate)(&s.config)
            .map_err(|e| ConfigError::invalid(format!("eventSinks[{i}].config"), "{…}", e))?;
    }
    Ok(())
}

/// `capacity` of a memory sink (10000 by default).
pub fn memory_capacity(config: &crate::processor::ConfigMap) -> Result<usize, String> {
    if let Some(k) = config.keys().find(|k| *k != "capacity") {
        return Err(format!("unknown key {k} (expected capacity)"));
    }
    match config.get("capacity") {
        None => Ok(DEFAULT_MEMORY_SINK_CAPACITY),
        Some(v) => v
            .as_u64()
            .filter(|c| (1..=10_000_000).contains(c))
            .map(|c| c as usize)
            .ok_or_else(|| "capacity: expected an integer in 1..=10000000".into()),
    }
}

/// `producers: single|multi` of a memory feed (single by default).
pub fn memory_producers(config: &crate::processor::ConfigMap) -> Result<bool, String> {
    if let Some(k) = config.keys().find(|k| *k != "producers") {
        return Err(format!("unknown key {k} (expected producers)"));
    }
    match config.get("producers").map(|v| v.as_str()) {
        None | Some(Some("single")) => Ok(false),
        Some(Some("multi")) => Ok(true),
        _ => Err("expected single or multi".into()),
    }
}

/// The startable spec.
pub fn to_spec<E: Event>(
    cfg: &ServerConfig,
    reg: &Registry<E>,
) -> Result<ServerSpec<E>, ConfigError> {
    check(cfg, reg)?;
    let pct = cfg.health.backlog_threshold_pct;
    let feeds = cfg
        .event_feeds
        .iter()
        .map(|f| {
            Ok(FeedSpec {
                name: f.name.clone(),
                multi: match reg.feed(&f.type_name) {
                    Some(t) if t.build.is_some() => t.multi_producer,
                    _ => memory_producers(&f.config).unwrap_or(false),
                },
                queue_capacity: f.queue_capacity,
                backpressure: f.backpressure.into(),
                backlog_threshold: Some(f.effective_backlog_threshold(pct)),
                broadcast: f.broadcast,
                acknowledged: reg.feed(&f.type_name).is_some_and(|t| t.acknowledges),
                wrap_named: f.wrap_with_named_event,
            })
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    let mut feeds = feeds;
    let mut pipes = Vec::new();
    for p in &cfg.pipes {
        // Pipes are always multi-producer: any group may send (MNG-R28).
        feeds.push(FeedSpec {
            name: p.name.clone(),
            multi: true,
            queue_capacity: p.queue_capacity,
            backpressure: p.backpressure.into(),
            backlog_threshold: Some(p.effective_backlog_threshold(pct)),
            broadcast: p.broadcast,
            acknowledged: false,
            wrap_named: p.wrap_with_named_event,
        });
        pipes.push((p.name.clone(), p.effective_sink_name()));
    }
    let memory_sinks = cfg
        .event_sinks
        .iter()
        .filter(|s| s.type_name == "memory")
        .map(|s| {
            let cap = memory_capacity(&s.config).unwrap_or(DEFAULT_MEMORY_SINK_CAPACITY);
            (s.name.clone(), cap)
        })
        .collect();
    let mut sinks = Vec::new();
    for s in &cfg.event_sinks {
        let Some(mut build) = reg.sink(&s.type_name).and_then(|t| t.build.clone()) else {
            continue;
        };
        // Quarantine files hold payloads: created 0600 whatever `mode` says (§7).
        if cfg.quarantine.sink.as_deref() == Some(s.name.as_str()) && s.type_name == "file" {
            build = Arc::new(crate::sinks::file::build_for_quarantine::<E>);
        }
        let config = s.config.clone();
        let breaker = s
            .effective_circuit_breaker()
            .map(|cb| ron_kernel::BreakerConfig {
                failure_threshold: cb.failure_threshold,
                open_for: Duration::from_millis(u64::from(cb.open_ms)),
                half_open_max_probes: cb.half_open_probes.max(1),
                success_threshold: cb.half_open_probes.max(1),
            });
        sinks.push(SinkSpec {
            name: s.name.clone(),
            capacity: s.queue_capacity as usize,
            breaker,
            critical: s.critical,
            factory: Box::new(move |env: &SinkEnv| build(&config, env)),
        });
    }
    // The quarantine sink drains last at shutdown, so it can take the others' leftovers.
    if let Some(q) = &cfg.quarantine.sink {
        sinks.sort_by_key(|s| s.name == *q);
    }
    let mut feed_sources = Vec::new();
    for f in &cfg.event_feeds {
        let Some(build) = reg.feed(&f.type_name).and_then(|t| t.build.clone()) else {
            continue;
        };
        let config = f.config.clone();
        feed_sources.push(FeedSource {
            feed: f.name.clone(),
            type_name: f.type_name.clone(),
            critical: f.critical,
            connect: Box::new(move |env: &FeedEnv| build(&config, env)),
        });
    }
    // Where agent-run feeds and hosted sinks run (entry idleStrategy, else the agent's
    // agentThreads entry, else top level; the agent's core from agentThreads). Entries
    // sharing an agent share its thread, so the first entry's strategy is the agent's.
    let place = |agent: &str, idle: Option<crate::config::IdleStrategyConfig>| {
        let thread = cfg.agent_threads.iter().find(|t| t.agent_name == agent);
        AgentPlacement {
            agent: agent.to_string(),
            idle: idle
                .or_else(|| thread.and_then(|t| t.idle_strategy))
                .unwrap_or(cfg.idle_strategy)
                .into(),
            core: thread.and_then(|t| t.core_id),
        }
    };
    let mut services = Vec::new();
    for sv in &cfg.services {
        let build = reg
            .service(&sv.type_name)
            .expect("checked above")
            .build
            .clone();
        let config = sv.config.clone();
        let agent = sv.agent_name.as_ref().map(|a| place(a, sv.idle_strategy));
        services.push(ServiceSpec {
            name: sv.name.clone(),
            type_name: sv.type_name.clone(),
            critical: sv.critical,
            agent,
            factory: Box::new(move || build(&config)),
        });
    }
    let mut placements = HashMap::new();
    for f in &cfg.event_feeds {
        if reg
            .feed(&f.type_name)
            .is_some_and(|t| t.runs_on == RunsOn::Agent)
        {
            placements.insert(
                f.name.clone(),
                place(f.effective_agent_name(), f.idle_strategy),
            );
        }
    }
    for sk in &cfg.event_sinks {
        if sk.type_name != "memory" {
            placements.insert(
                sk.name.clone(),
                place(sk.effective_agent_name(), sk.idle_strategy),
            );
        }
    }
    let mut processor_types = HashMap::new();
    for g in &cfg.event_handlers {
        for p in &g.processors {
            processor_types.insert(p.name.clone(), p.type_name.clone());
        }
    }
    let mut groups = Vec::new();
    for g in &cfg.event_handlers {
        let thread = cfg
            .agent_threads
            .iter()
            .find(|a| a.agent_name == g.agent_name);
        let idle = g
            .idle_strategy
            .or_else(|| thread.and_then(|t| t.idle_strategy))
            .unwrap_or(cfg.idle_strategy);
        let core_id = g.core_id.or_else(|| thread.and_then(|t| t.core_id));
        let mut processors = Vec::new();
        for p in &g.processors {
            let t = reg.processor(&p.type_name).expect("checked above");
            let build = t.build.clone();
            let config = p.config.clone();
            processors.push(ProcSpec {
                name: leak(&p.name),
                factory: Box::new(move || build(&config)),
                feeds: p.feeds.clone(),
                critical: p.critical,
                enabled: p.enabled,
                config: p.config.clone(),
            });
        }
        groups.push(GroupSpec {
            name: leak(&g.agent_name),
            idle: idle.into(),
            core_id,
            max_batch: g.max_batch,
            max_timers: g.max_timers,
            retry: g.effective_retry(&cfg.retry).into(),
            processors,
        });
    }
    Ok(ServerSpec {
        name: cfg.name.clone(),
        feeds,
        groups,
        memory_sinks,
        sinks,
        feed_sources,
        admin: AdminSpec {
            address: match cfg.admin.address {
                AdminAddress::Off => None,
                AdminAddress::Socket(a) => Some(a),
            },
            token: cfg.admin.token.clone(),
            command_timeout: Duration::from_millis(u64::from(cfg.admin.command_timeout_ms)),
        },
        io_threads: cfg.io_threads,
        connect_timeout: Duration::from_millis(u64::from(cfg.startup.connect_timeout_ms)),
        quarantine_sink: cfg.quarantine.sink.clone(),
        processor_types,
        agent_idle: cfg.idle_strategy.into(),
        pipes,
        placements,
        services,
        latency_enabled: cfg.latency.enabled,
        snapshot_ms: cfg.latency.snapshot_ms,
        quarantine_capacity: cfg.quarantine.memory_capacity as usize,
        start_timeout: Duration::from_millis(u64::from(cfg.startup.start_timeout_ms)),
        health: HealthConfig {
            check_interval: Duration::from_millis(u64::from(cfg.health.check_interval_ms)),
            agent_stale: Duration::from_millis(u64::from(cfg.health.agent_stale_ms)),
            retry_after_s: cfg.health.retry_after_s,
        },
    })
}
