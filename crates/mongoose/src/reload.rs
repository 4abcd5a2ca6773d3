//! Reload (MNG-R31): SIGHUP or an embedder's call applies the reloadable subset of a new
//! config to a running server, or keeps the old one.
//!
//! 1. The new config is validated in full (`invalid` on failure).
//! 2. It is diffed against the running one; a changed `reload: no` key makes the whole
//!    reload `rejected`, naming the keys.
//! 3. Processors whose `config` changed are asked on their own threads; a refusal makes it
//!    `rejected`. Processors are asked one by one and asking stops at the first refusal, so
//!    ones asked earlier keep their new config (there is no two-phase commit in the
//!    `on_config_change` contract); the refusal is logged with the processor's name.
//! 4. Everything else changes through atomics or the groups' control queues: backpressure
//!    policies and thresholds, `maxBatch`, retry settings, health settings, latency
//!    recording, the admin token and command timeout. `shutdown.drainDeadlineMs` is read by
//!    the caller from the new config.

use std::sync::atomic::Ordering;
use std::sync::mpsc::sync_channel;
use std::time::Duration;

use crate::config::{ServerConfig, diff};
use crate::event::Event;
use crate::group::Control;
use crate::health::HealthConfig;
use crate::registry::Registry;
use crate::server::RunningServer;

/// `mongoose_config_reloads_total{outcome}` label values, by index.
pub const OUTCOMES: [&str; 3] = ["ok", "invalid", "rejected"];

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied; the reloadable key paths that changed.
    Ok(Vec<String>),
    /// The new config does not validate; the error line.
    Invalid(String),
    /// A key that cannot change at runtime changed, or a processor refused its config.
    Rejected {
        /// The offending key paths.
        keys: Vec<String>,
        /// Why.
        error: String,
    },
}

impl Outcome {
    /// The `outcome` label.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Ok(_) => OUTCOMES[0],
            Outcome::Invalid(_) => OUTCOMES[1],
            Outcome::Rejected { .. } => OUTCOMES[2],
        }
    }
}

/// Applies `new` over `running` (the config `srv` was started from), logs `reload` and
/// counts the outcome. The caller keeps `new` as the running config only on `Ok`.
pub fn reload<E: Event>(
    srv: &RunningServer<E>,
    running: &ServerConfig,
    new: &ServerConfig,
    reg: &Registry<E>,
) -> Outcome {
    let out = decide_and_apply(srv, running, new, reg);
    srv.admin().count_reload(out.label());
    match &out {
        Outcome::Ok(changed) => {
            tracing::info!(outcome = "ok", changed = ?changed, "reload")
        }
        Outcome::Invalid(e) => tracing::warn!(outcome = "invalid", error = %e, "reload"),
        Outcome::Rejected { keys, error } => {
            tracing::warn!(outcome = "rejected", changed = ?keys, error = %error, "reload")
        }
    }
    out
}

fn decide_and_apply<E: Event>(
    srv: &RunningServer<E>,
    running: &ServerConfig,
    new: &ServerConfig,
    reg: &Registry<E>,
) -> Outcome {
    if let Err(e) = crate::plan::check(new, reg) {
        return Outcome::Invalid(e.to_string());
    }
    let d = diff(running, new);
    if d.is_rejected() {
        return Outcome::Rejected {
            error: format!("not reloadable: {}", d.rejected_keys.join(", ")),
            keys: d.rejected_keys,
        };
    }
    // drop-oldest needs an evicting (MPSC) ring, which is chosen when the queue is built.
    for (i, f) in new.event_feeds.iter().enumerate() {
        let bp: crate::queue::Backpressure = f.backpressure.into();
        let spsc = srv
            .subscriptions()
            .iter()
            .any(|s| s.feed == f.name && s.kind == "spsc");
        if bp.needs_eviction() && spsc {
            return Outcome::Rejected {
                keys: vec![format!("eventFeeds[{i}].backpressure")],
                error: format!(
                    "feed '{}' was started with an SPSC queue; drop-oldest needs a restart",
                    f.name
                ),
            };
        }
    }
    let timeout = Duration::from_millis(u64::from(new.admin.command_timeout_ms));
    // Step 3: processor configs, on their own threads.
    for (gi, g) in new.event_handlers.iter().enumerate() {
        let Some(shared) = srv.group(&g.agent_name) else {
            continue;
        };
        for p in &g.processors {
            let old = running.event_handlers[gi]
                .processors
                .iter()
                .find(|o| o.name == p.name)
                .map(|o| &o.config);
            if old == Some(&p.config) {
                continue;
            }
            let key = format!("eventHandlers[{gi}].processors.{}.config", p.name);
            let (tx, rx) = sync_channel(1);
            if !shared.send(Control::ConfigChange(p.name.clone(), p.config.clone(), tx)) {
                return Outcome::Rejected {
                    keys: vec![key],
                    error: "the group's control queue is full".into(),
                };
            }
            match rx.recv_timeout(timeout) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    return Outcome::Rejected {
                        keys: vec![key],
                        error: format!("processor '{}' refused its config: {e}", p.name),
                    };
                }
                Err(_) => {
                    return Outcome::Rejected {
                        keys: vec![key],
                        error: format!("processor '{}' did not answer in time", p.name),
                    };
                }
            }
        }
    }
    // Step 4: the rest through atomics and control queues.
    let pct = new.health.backlog_threshold_pct;
    for f in &new.event_feeds {
        for s in srv.subscriptions().iter().filter(|s| s.feed == f.name) {
            s.set_backpressure(f.backpressure.into());
            s.threshold
                .store(f.effective_backlog_threshold(pct), Ordering::Relaxed);
        }
    }
    for g in &new.event_handlers {
        if let Some(shared) = srv.group(&g.agent_name) {
            shared.max_batch.store(g.max_batch, Ordering::Relaxed);
            shared
                .latency_enabled
                .store(new.latency.enabled, Ordering::Relaxed);
            while !shared.send(Control::SetRetry(g.effective_retry(&new.retry).into())) {
                std::thread::yield_now();
            }
        }
    }
    srv.health_state().set_config(HealthConfig {
        check_interval: Duration::from_millis(u64::from(new.health.check_interval_ms)),
        agent_stale: Duration::from_millis(u64::from(new.health.agent_stale_ms)),
        retry_after_s: new.health.retry_after_s,
    });
    srv.admin().set_token(new.admin.token.clone());
    srv.admin().set_command_timeout(timeout);
    Outcome::Ok(d.reloadable_changes)
}
