//! From a validated [`ServerConfig`] and a [`Registry`] to a startable [`ServerSpec`]
//! (MNG-R03, R19 step 1): every type's own `validate` runs here too, so `--check` and a
//! real start reject exactly the same configs.

use std::time::Duration;

use crate::config::{ConfigError, ServerConfig, validate};
use crate::event::Event;
use crate::group::{GroupSpec, ProcSpec};
use crate::health::HealthConfig;
use crate::registry::Registry;
use crate::server::{FeedSpec, ServerSpec};

/// Default `memory` sink capacity.
pub const DEFAULT_MEMORY_SINK_CAPACITY: usize = 10_000;

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

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
        if f.type_name == "memory" {
            producers(&f.config).map_err(|e| {
                ConfigError::invalid(format!("eventFeeds[{i}].config.producers"), "…", e)
            })?;
        }
    }
    Ok(())
}

/// `producers: single|multi` of a memory feed (single by default).
fn producers(config: &crate::processor::ConfigMap) -> Result<bool, String> {
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
                multi: producers(&f.config).unwrap_or(false),
                queue_capacity: f.queue_capacity,
                backpressure: f.backpressure.into(),
                backlog_threshold: Some(f.effective_backlog_threshold(pct)),
                broadcast: f.broadcast,
            })
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    let memory_sinks = cfg
        .event_sinks
        .iter()
        .filter(|s| s.type_name == "memory")
        .map(|s| {
            let cap = s
                .config
                .get("capacity")
                .and_then(|v| v.as_u64())
                .map_or(DEFAULT_MEMORY_SINK_CAPACITY, |c| c as usize);
            (s.name.clone(), cap)
        })
        .collect();
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
        sinks: Vec::new(),
        quarantine_capacity: cfg.quarantine.memory_capacity as usize,
        start_timeout: Duration::from_millis(u64::from(cfg.startup.start_timeout_ms)),
        health: HealthConfig {
            check_interval: Duration::from_millis(u64::from(cfg.health.check_interval_ms)),
            agent_stale: Duration::from_millis(u64::from(cfg.health.agent_stale_ms)),
            retry_after_s: cfg.health.retry_after_s,
        },
    })
}
