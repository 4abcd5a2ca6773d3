//! Reload diff (MNG-R31 step 2): which changed keys SIGHUP can apply and which reject the
//! whole reload, per the Reload column of spec §2.3.
//!
//! Entries of `eventFeeds`, `eventSinks`, `services`, `pipes`, `eventHandlers` and
//! `processors` are matched by name, so a key path names the entry's index in the new config.
//! Adding, removing or reordering entries is a topology change and is rejected (decision 15;
//! reordering processors changes dispatch order, reordering feeds changes feed ids).

use super::schema::{
    FeedConfig, GroupConfig, PipeConfig, ProcessorConfig, ServerConfig, ServiceConfig, SinkConfig,
};

/// The outcome of comparing a running config with a new one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Key paths whose change SIGHUP applies (e.g. `eventHandlers[0].maxBatch`).
    pub reloadable_changes: Vec<String>,
    /// Key paths whose change rejects the whole reload (e.g. `eventFeeds[1] (added "b")`).
    pub rejected_keys: Vec<String>,
}

impl Diff {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.reloadable_changes.is_empty() && self.rejected_keys.is_empty()
    }

    /// The reload must be rejected.
    pub fn is_rejected(&self) -> bool {
        !self.rejected_keys.is_empty()
    }
}

/// Compares `old` (running) with `new` (already validated). The log-destination override is
/// not a YAML key and is ignored.
pub fn diff(old: &ServerConfig, new: &ServerConfig) -> Diff {
    let mut d = Diff::default();
    d.no("name", &old.name, &new.name);
    d.no("idleStrategy", &old.idle_strategy, &new.idle_strategy);
    d.no("pinning", &old.pinning, &new.pinning);
    d.no("ioThreads", &old.io_threads, &new.io_threads);
    d.no("agentThreads", &old.agent_threads, &new.agent_threads);
    d.list(
        "services",
        &old.services,
        &new.services,
        |s| &s.name,
        Diff::service,
    );

    d.no("admin.address", &old.admin.address, &new.admin.address);
    d.yes("admin.token", &old.admin.token, &new.admin.token);
    d.yes(
        "admin.commandTimeoutMs",
        &old.admin.command_timeout_ms,
        &new.admin.command_timeout_ms,
    );
    d.no(
        "quarantine.sink",
        &old.quarantine.sink,
        &new.quarantine.sink,
    );
    d.no(
        "quarantine.memoryCapacity",
        &old.quarantine.memory_capacity,
        &new.quarantine.memory_capacity,
    );

    let (o, n) = (&old.retry, &new.retry);
    d.yes("retry.maxRetries", &o.max_retries, &n.max_retries);
    d.yes(
        "retry.initialBackoffMs",
        &o.initial_backoff_ms,
        &n.initial_backoff_ms,
    );
    d.yes("retry.multiplier", &o.multiplier, &n.multiplier);
    d.yes("retry.maxBackoffMs", &o.max_backoff_ms, &n.max_backoff_ms);
    d.no("retry.maxPending", &o.max_pending, &n.max_pending);

    let (o, n) = (&old.health, &new.health);
    d.yes(
        "health.checkIntervalMs",
        &o.check_interval_ms,
        &n.check_interval_ms,
    );
    d.yes("health.agentStaleMs", &o.agent_stale_ms, &n.agent_stale_ms);
    d.yes(
        "health.backlogThresholdPct",
        &o.backlog_threshold_pct,
        &n.backlog_threshold_pct,
    );
    d.yes("health.retryAfterS", &o.retry_after_s, &n.retry_after_s);
    d.yes(
        "latency.enabled",
        &old.latency.enabled,
        &new.latency.enabled,
    );
    d.no(
        "latency.snapshotMs",
        &old.latency.snapshot_ms,
        &new.latency.snapshot_ms,
    );
    d.yes(
        "shutdown.drainDeadlineMs",
        &old.shutdown.drain_deadline_ms,
        &new.shutdown.drain_deadline_ms,
    );
    d.no("startup", &old.startup, &new.startup);

    d.list(
        "eventFeeds",
        &old.event_feeds,
        &new.event_feeds,
        |f| &f.name,
        Diff::feed,
    );
    d.list(
        "eventSinks",
        &old.event_sinks,
        &new.event_sinks,
        |s| &s.name,
        Diff::sink,
    );
    d.list(
        "eventHandlers",
        &old.event_handlers,
        &new.event_handlers,
        |g| &g.agent_name,
        Diff::group,
    );
    d.list("pipes", &old.pipes, &new.pipes, |p| &p.name, Diff::pipe);
    d
}

impl Diff {
    fn yes<T: PartialEq>(&mut self, path: impl Into<String>, old: &T, new: &T) {
        if old != new {
            self.reloadable_changes.push(path.into());
        }
    }

    fn no<T: PartialEq>(&mut self, path: impl Into<String>, old: &T, new: &T) {
        if old != new {
            self.rejected_keys.push(path.into());
        }
    }

    /// Matches entries by name; additions, removals and reorders are rejected.
    fn list<T>(
        &mut self,
        key: &str,
        old: &[T],
        new: &[T],
        name: impl Fn(&T) -> &String,
        each: impl Fn(&mut Diff, &str, &T, &T),
    ) {
        // Processors are a map in YAML, so their paths use the name as validation does.
        let entry = |i: usize, nm: &str| {
            if key.ends_with(".processors") {
                format!("{key}.{nm}")
            } else {
                format!("{key}[{i}]")
            }
        };
        for (i, n) in new.iter().enumerate() {
            if !old.iter().any(|o| name(o) == name(n)) {
                let path = entry(i, name(n));
                self.rejected_keys
                    .push(format!("{path} (added \"{}\")", name(n)));
            }
        }
        for (i, o) in old.iter().enumerate() {
            if !new.iter().any(|n| name(n) == name(o)) {
                let path = entry(i, name(o));
                self.rejected_keys
                    .push(format!("{path} (removed \"{}\")", name(o)));
            }
        }
        let common_old: Vec<&String> = old
            .iter()
            .map(&name)
            .filter(|o| new.iter().any(|n| name(n) == *o))
            .collect();
        let common_new: Vec<&String> = new
            .iter()
            .map(&name)
            .filter(|n| old.iter().any(|o| name(o) == *n))
            .collect();
        if common_old != common_new {
            self.rejected_keys.push(format!("{key} (order changed)"));
        }
        for (i, n) in new.iter().enumerate() {
            if let Some(o) = old.iter().find(|o| name(o) == name(n)) {
                each(self, &entry(i, name(n)), o, n);
            }
        }
    }

    fn service(&mut self, path: &str, o: &ServiceConfig, n: &ServiceConfig) {
        self.no(path, o, n);
    }

    fn feed(&mut self, path: &str, o: &FeedConfig, n: &FeedConfig) {
        self.no(format!("{path}.type"), &o.type_name, &n.type_name);
        self.no(format!("{path}.critical"), &o.critical, &n.critical);
        self.no(format!("{path}.broadcast"), &o.broadcast, &n.broadcast);
        self.no(
            format!("{path}.wrapWithNamedEvent"),
            &o.wrap_with_named_event,
            &n.wrap_with_named_event,
        );
        self.no(
            format!("{path}.queueCapacity"),
            &o.queue_capacity,
            &n.queue_capacity,
        );
        self.yes(
            format!("{path}.backpressure"),
            &o.backpressure,
            &n.backpressure,
        );
        self.yes(
            format!("{path}.backlogThreshold"),
            &o.backlog_threshold,
            &n.backlog_threshold,
        );
        self.no(format!("{path}.agentName"), &o.agent_name, &n.agent_name);
        self.no(
            format!("{path}.idleStrategy"),
            &o.idle_strategy,
            &n.idle_strategy,
        );
        self.no(format!("{path}.config"), &o.config, &n.config);
    }

    fn sink(&mut self, path: &str, o: &SinkConfig, n: &SinkConfig) {
        self.no(format!("{path}.type"), &o.type_name, &n.type_name);
        self.no(format!("{path}.critical"), &o.critical, &n.critical);
        self.no(
            format!("{path}.queueCapacity"),
            &o.queue_capacity,
            &n.queue_capacity,
        );
        self.no(format!("{path}.agentName"), &o.agent_name, &n.agent_name);
        self.no(
            format!("{path}.idleStrategy"),
            &o.idle_strategy,
            &n.idle_strategy,
        );
        self.yes(
            format!("{path}.circuitBreaker"),
            &o.circuit_breaker,
            &n.circuit_breaker,
        );
        self.no(format!("{path}.config"), &o.config, &n.config);
    }

    fn group(&mut self, path: &str, o: &GroupConfig, n: &GroupConfig) {
        self.no(
            format!("{path}.idleStrategy"),
            &o.idle_strategy,
            &n.idle_strategy,
        );
        self.no(format!("{path}.coreId"), &o.core_id, &n.core_id);
        self.yes(format!("{path}.maxBatch"), &o.max_batch, &n.max_batch);
        self.no(format!("{path}.maxTimers"), &o.max_timers, &n.max_timers);
        let pending = |g: &GroupConfig| g.retry.and_then(|r| r.max_pending);
        self.no(format!("{path}.retry.maxPending"), &pending(o), &pending(n));
        let rest = |g: &GroupConfig| {
            g.retry.map(|mut r| {
                r.max_pending = None;
                r
            })
        };
        self.yes(format!("{path}.retry"), &rest(o), &rest(n));
        self.list(
            &format!("{path}.processors"),
            &o.processors,
            &n.processors,
            |p| &p.name,
            Diff::processor,
        );
    }

    fn processor(&mut self, path: &str, o: &ProcessorConfig, n: &ProcessorConfig) {
        self.no(format!("{path}.type"), &o.type_name, &n.type_name);
        self.no(format!("{path}.feeds"), &o.feeds, &n.feeds);
        self.no(format!("{path}.critical"), &o.critical, &n.critical);
        self.no(format!("{path}.enabled"), &o.enabled, &n.enabled);
        self.yes(format!("{path}.config"), &o.config, &n.config);
    }

    fn pipe(&mut self, path: &str, o: &PipeConfig, n: &PipeConfig) {
        self.no(format!("{path}.sinkName"), &o.sink_name, &n.sink_name);
        self.no(format!("{path}.broadcast"), &o.broadcast, &n.broadcast);
        self.no(
            format!("{path}.wrapWithNamedEvent"),
            &o.wrap_with_named_event,
            &n.wrap_with_named_event,
        );
        self.no(
            format!("{path}.queueCapacity"),
            &o.queue_capacity,
            &n.queue_capacity,
        );
        self.yes(
            format!("{path}.backpressure"),
            &o.backpressure,
            &n.backpressure,
        );
        self.yes(
            format!("{path}.backlogThreshold"),
            &o.backlog_threshold,
            &n.backlog_threshold,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AdminAddress, PolicyConfig, from_yaml_str};

    fn base() -> ServerConfig {
        from_yaml_str(
            "eventFeeds: [{name: in, type: memory}]\n\
             eventSinks: [{name: out, type: file}]\n\
             pipes: [{name: p}]\n\
             eventHandlers: [{agentName: g, processors: {a: {type: log, feeds: [in]}, b: {type: log}}}]\n",
            "t",
        )
        .unwrap()
    }

    #[test]
    fn identical_configs_have_an_empty_diff() {
        assert!(diff(&base(), &base()).is_empty());
    }

    #[test]
    fn reloadable_keys_are_listed_and_not_rejected() {
        let old = base();
        let mut new = base();
        new.event_handlers[0].max_batch = 4;
        new.event_feeds[0].backpressure.policy = PolicyConfig::DropOldest;
        new.event_feeds[0].backlog_threshold = Some(10);
        new.pipes[0].backpressure.max_wait_ms = 1;
        new.event_sinks[0].circuit_breaker = Some(Default::default());
        new.retry.max_retries = 5;
        new.latency.enabled = false;
        new.admin.token = Some("0123456789abcdef".into());
        new.admin.command_timeout_ms = 500;
        new.health.retry_after_s = 9;
        new.shutdown.drain_deadline_ms = 1;
        new.event_handlers[0].processors[0]
            .config
            .insert("every".into(), 5.into());
        let d = diff(&old, &new);
        assert_eq!(d.rejected_keys, Vec::<String>::new());
        assert_eq!(d.reloadable_changes.len(), 12, "{d:?}");
        assert!(
            d.reloadable_changes
                .contains(&"eventHandlers[0].processors.a.config".to_owned())
        );
    }

    #[test]
    fn topology_and_static_keys_are_rejected() {
        let old = base();
        let mut new = base();
        new.name = "other".into();
        new.admin.address = AdminAddress::Off;
        new.retry.max_pending = 8;
        new.latency.snapshot_ms = 200;
        new.event_feeds[0].queue_capacity = 8;
        new.event_handlers[0].processors[0].feeds.clear();
        new.event_sinks.remove(0);
        let d = diff(&old, &new);
        assert_eq!(
            d.rejected_keys,
            [
                "name",
                "admin.address",
                "retry.maxPending",
                "latency.snapshotMs",
                "eventFeeds[0].queueCapacity",
                "eventSinks[0] (removed \"out\")",
                "eventHandlers[0].processors.a.feeds",
            ]
        );
    }

    #[test]
    fn reordering_processors_is_rejected() {
        let old = base();
        let mut new = base();
        new.event_handlers[0].processors.reverse();
        let d = diff(&old, &new);
        assert_eq!(
            d.rejected_keys,
            ["eventHandlers[0].processors (order changed)"]
        );
    }

    #[test]
    fn adding_a_processor_is_rejected_naming_it() {
        let old = base();
        let mut new = base();
        let mut c = new.event_handlers[0].processors[1].clone();
        c.name = "c".into();
        new.event_handlers[0].processors.push(c);
        let d = diff(&old, &new);
        assert_eq!(
            d.rejected_keys,
            ["eventHandlers[0].processors.c (added \"c\")"]
        );
    }

    #[test]
    fn group_retry_is_reloadable_except_max_pending() {
        let old = base();
        let mut new = base();
        new.event_handlers[0].retry = Some(crate::config::RetryOverride {
            max_retries: Some(1),
            ..Default::default()
        });
        let d = diff(&old, &new);
        assert_eq!(d.reloadable_changes, ["eventHandlers[0].retry"]);
        assert!(!d.is_rejected());
        new.event_handlers[0].retry = Some(crate::config::RetryOverride {
            max_pending: Some(4),
            ..Default::default()
        });
        assert_eq!(
            diff(&old, &new).rejected_keys,
            ["eventHandlers[0].retry.maxPending"]
        );
    }
}
