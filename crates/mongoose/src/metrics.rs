//! Metric families (MNG-R33), gathered at scrape time from the counters the agents already
//! keep: a scrape reads atomics and never touches the hot path. The collector is registered
//! on a ron-metrics registry (one per server), which adds the base labels
//! `service="mongoose"`, `instance=<name>`, `build_version` and `amnesia` to every sample.
//!
//! Families of features this library does not run yet (services, redis acks, admin
//! commands, reloads) are emitted by the layer that owns them.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{
    Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType, Quantile, Summary,
};

use crate::event::Event;
use crate::group::{BATCH_BUCKETS, GroupShared};
use crate::health::Health;
use crate::idle::STATE_NAMES;
use crate::publish::FeedShared;
use crate::quarantine::{KINDS, Quarantine};
use crate::queue::{DROP_DETACHED, DROP_LABELS, Policy, SubShared};
use crate::sink::SinkHandle;
use crate::sink_agent::SinkAgentStats;

/// A sink and, when agent-hosted, its agent counters.
pub type SinkSource<E> = (SinkHandle<E>, Option<Arc<SinkAgentStats>>);

/// What the collector reads.
pub struct Sources<E> {
    /// Feeds.
    pub feeds: Vec<Arc<FeedShared>>,
    /// Subscriptions.
    pub subs: Vec<Arc<SubShared>>,
    /// Groups.
    pub groups: Vec<Arc<GroupShared>>,
    /// Quarantine.
    pub quarantine: Arc<Quarantine>,
    /// Sinks with their agent counters (None for inline memory sinks).
    pub sinks: Vec<SinkSource<E>>,
    /// Health.
    pub health: Arc<Health>,
    /// The command surface (`mongoose_admin_commands_total`).
    pub admin: Option<Arc<crate::admin::Admin>>,
    /// Services (`mongoose_service_up`).
    pub services: Vec<Arc<crate::service::ServiceEntry>>,
    /// Agents other than groups (`feeds`, `sinks`, service agents).
    pub agents: Vec<(String, Arc<crate::group::AgentStats>)>,
}

/// The `mongoose_agent_*` samples of one agent into families 1..=5 of `a`.
fn agent_samples(a: &mut [Fam], name: &str, st: &crate::group::AgentStats) {
    let l = [("agent", name)];
    a[1].metrics
        .push(counter(&l, st.duty_cycles.load(Ordering::Relaxed) as f64));
    a[2].metrics
        .push(counter(&l, st.idle_cycles.load(Ordering::Relaxed) as f64));
    let state = st.state.load(Ordering::Relaxed) as usize;
    for (i, s) in STATE_NAMES.iter().enumerate() {
        a[3].metrics.push(gauge(
            &[("agent", name), ("state", s)],
            f64::from(u8::from(i == state)),
        ));
    }
    a[4].metrics.push(gauge(
        &l,
        st.heartbeat_age_ms.load(Ordering::Relaxed) as f64 / 1e3,
    ));
    a[5].metrics
        .push(gauge(&l, st.core.load(Ordering::Relaxed) as f64));
}

/// The collector.
pub struct MongooseCollector<E> {
    src: Sources<E>,
    descs: Vec<Desc>,
}

struct Fam {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    metrics: Vec<Metric>,
}

const FAMILIES: [(&str, &str); 43] = [
    (
        "mongoose_hot_path_allocations_total",
        "allocations inside publish or dispatch (alloc-count builds)",
    ),
    (
        "mongoose_process_allocations_total",
        "allocations by the process (alloc-count builds)",
    ),
    ("mongoose_service_up", "1 when the service is started"),
    (
        "mongoose_config_reloads_total",
        "reload attempts by outcome",
    ),
    (
        "mongoose_admin_commands_total",
        "admin commands by command and outcome",
    ),
    (
        "mongoose_feed_published_total",
        "publish calls that offered an event",
    ),
    (
        "mongoose_feed_unrouted_total",
        "published with no subscriber",
    ),
    ("mongoose_queue_enqueued_total", "placed in the queue"),
    ("mongoose_queue_consumed_total", "dispatched from the queue"),
    ("mongoose_queue_depth", "current depth"),
    ("mongoose_queue_capacity", "configured capacity"),
    ("mongoose_queue_backlog_threshold", "readiness threshold"),
    ("mongoose_feed_dropped_total", "drops by policy"),
    (
        "mongoose_feed_block_timeouts_total",
        "block waits that hit maxWaitMs",
    ),
    (
        "mongoose_feed_blocked_seconds_total",
        "time publishers spent waiting",
    ),
    ("mongoose_feed_connected", "1 when connected"),
    (
        "mongoose_feed_decode_errors_total",
        "inputs the feed could not decode",
    ),
    ("mongoose_feed_acked_total", "redis entries XACKed"),
    (
        "mongoose_batches_total",
        "cumulative batch-size distribution",
    ),
    ("mongoose_agent_duty_cycles_total", "loop iterations"),
    (
        "mongoose_agent_idle_cycles_total",
        "iterations that found no work",
    ),
    ("mongoose_agent_idle_state", "one-hot idle state"),
    (
        "mongoose_agent_heartbeat_age_seconds",
        "time since duty_cycles last moved",
    ),
    ("mongoose_agent_core", "pinned core, or -1"),
    ("mongoose_processor_events_total", "on_event calls"),
    (
        "mongoose_processor_errors_total",
        "failed on_event calls by kind",
    ),
    ("mongoose_processor_retries_total", "retry attempts"),
    (
        "mongoose_processor_unrouted_total",
        "route-by-field events with no route",
    ),
    ("mongoose_quarantined_total", "records quarantined"),
    (
        "mongoose_quarantine_write_failures_total",
        "records sent to the memory ring instead of the quarantine sink",
    ),
    (
        "mongoose_handler_latency_seconds",
        "handler latency since the last reset",
    ),
    ("mongoose_sink_sent_total", "accepted by send"),
    ("mongoose_sink_written_total", "written"),
    ("mongoose_sink_errors_total", "write errors by kind"),
    ("mongoose_sink_rejected_total", "send refusals by reason"),
    ("mongoose_sink_evicted_total", "memory-sink evictions"),
    ("mongoose_sink_queue_depth", "queue depth"),
    ("mongoose_sink_circuit_state", "one-hot breaker state"),
    (
        "mongoose_sink_circuit_transitions_total",
        "breaker transitions",
    ),
    ("mongoose_timers_fired_total", "timers fired"),
    (
        "mongoose_shutdown_undrained_total",
        "left in the queue at the drain deadline",
    ),
    ("mongoose_ready", "1 when ready"),
    (
        "mongoose_process_resident_memory_bytes",
        "resident set size",
    ),
];

fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs
        .iter()
        .map(|(k, v)| {
            let mut l = LabelPair::default();
            l.set_name((*k).to_owned());
            l.set_value((*v).to_owned());
            l
        })
        .collect()
}

fn counter(pairs: &[(&str, &str)], v: f64) -> Metric {
    let mut c = Counter::default();
    c.set_value(v);
    let mut m = Metric::from_label(labels(pairs));
    m.set_counter(c);
    m
}

fn gauge(pairs: &[(&str, &str)], v: f64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(v);
    let mut m = Metric::from_label(labels(pairs));
    m.set_gauge(g);
    m
}

fn rss_bytes() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|pages| pages * 4096.0)
        .unwrap_or(0.0)
}

impl<E: Event> MongooseCollector<E> {
    /// A collector over `src`.
    pub fn new(src: Sources<E>) -> Self {
        let descs = FAMILIES
            .iter()
            .filter_map(|(n, h)| {
                Desc::new((*n).to_owned(), (*h).to_owned(), vec![], Default::default()).ok()
            })
            .collect();
        MongooseCollector { src, descs }
    }

    fn gather(&self) -> Vec<Fam> {
        let f = |name: &'static str, kind: MetricType| Fam {
            name,
            help: FAMILIES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, h)| *h)
                .unwrap_or(""),
            kind,
            metrics: Vec::new(),
        };
        let (c, g) = (MetricType::COUNTER, MetricType::GAUGE);
        let mut fams = vec![
            f("mongoose_feed_published_total", c),
            f("mongoose_feed_unrouted_total", c),
            f("mongoose_feed_connected", g),
            f("mongoose_feed_decode_errors_total", c),
            f("mongoose_feed_acked_total", c),
        ];
        for feed in &self.src.feeds {
            let l = [("feed", feed.name)];
            fams[0]
                .metrics
                .push(counter(&l, feed.published.load(Ordering::Relaxed) as f64));
            fams[1]
                .metrics
                .push(counter(&l, feed.unrouted.load(Ordering::Relaxed) as f64));
            fams[2].metrics.push(gauge(
                &l,
                f64::from(u8::from(feed.connected.load(Ordering::Relaxed))),
            ));
            for reason in crate::feed::DECODE_ERRORS {
                fams[3].metrics.push(counter(
                    &[("feed", feed.name), ("reason", reason.as_str())],
                    feed.decode_errors[reason as usize].load(Ordering::Relaxed) as f64,
                ));
            }
            fams[4]
                .metrics
                .push(counter(&l, feed.acked.load(Ordering::Relaxed) as f64));
        }
        let mut q = vec![
            f("mongoose_queue_enqueued_total", c),
            f("mongoose_queue_consumed_total", c),
            f("mongoose_queue_depth", g),
            f("mongoose_queue_capacity", g),
            f("mongoose_queue_backlog_threshold", g),
            f("mongoose_feed_dropped_total", c),
            f("mongoose_feed_block_timeouts_total", c),
            f("mongoose_feed_blocked_seconds_total", c),
            f("mongoose_shutdown_undrained_total", c),
        ];
        for s in &self.src.subs {
            let l = [("feed", s.feed), ("group", s.group)];
            q[0].metrics
                .push(counter(&l, s.enqueued.load(Ordering::Relaxed) as f64));
            q[1].metrics
                .push(counter(&l, s.consumed.load(Ordering::Relaxed) as f64));
            q[2].metrics.push(gauge(&l, s.depth() as f64));
            q[3].metrics.push(gauge(&l, f64::from(s.capacity)));
            q[4].metrics
                .push(gauge(&l, f64::from(s.threshold.load(Ordering::Relaxed))));
            for idx in [
                Policy::DropNewest as usize,
                Policy::DropOldest as usize,
                Policy::Disconnect as usize,
                Policy::FailFast as usize,
                DROP_DETACHED,
            ] {
                q[5].metrics.push(counter(
                    &[
                        ("feed", s.feed),
                        ("group", s.group),
                        ("policy", DROP_LABELS[idx]),
                    ],
                    s.drops(idx) as f64,
                ));
            }
            q[6].metrics
                .push(counter(&l, s.block_timeouts.load(Ordering::Relaxed) as f64));
            q[7].metrics.push(counter(
                &l,
                s.blocked_ns.load(Ordering::Relaxed) as f64 / 1e9,
            ));
            q[8].metrics.push(counter(
                &l,
                s.shutdown_undrained.load(Ordering::Relaxed) as f64,
            ));
        }
        fams.extend(q);
        let mut a = vec![
            f("mongoose_batches_total", c),
            f("mongoose_agent_duty_cycles_total", c),
            f("mongoose_agent_idle_cycles_total", c),
            f("mongoose_agent_idle_state", g),
            f("mongoose_agent_heartbeat_age_seconds", g),
            f("mongoose_agent_core", g),
            f("mongoose_timers_fired_total", c),
            f("mongoose_processor_events_total", c),
            f("mongoose_processor_errors_total", c),
            f("mongoose_processor_retries_total", c),
            f("mongoose_processor_unrouted_total", c),
            f("mongoose_handler_latency_seconds", MetricType::SUMMARY),
        ];
        for (name, st) in &self.src.agents {
            agent_samples(&mut a, name, st);
        }
        for grp in &self.src.groups {
            let mut cum = 0u64;
            for (i, le) in BATCH_BUCKETS
                .iter()
                .map(|b| b.to_string())
                .chain(["+Inf".to_string()])
                .enumerate()
            {
                cum += grp.batches[i].load(Ordering::Relaxed);
                a[0].metrics
                    .push(counter(&[("group", grp.name), ("le", &le)], cum as f64));
            }
            agent_samples(&mut a, grp.name, &grp.agent);
            a[6].metrics.push(counter(
                &[("group", grp.name)],
                grp.timers_fired.load(Ordering::Relaxed) as f64,
            ));
            let procs = grp.procs.lock().clone();
            for p in procs {
                let l = [("group", grp.name), ("processor", p.name)];
                a[7].metrics
                    .push(counter(&l, p.events.load(Ordering::Relaxed) as f64));
                a[8].metrics.push(counter(
                    &[
                        ("group", grp.name),
                        ("processor", p.name),
                        ("kind", "error"),
                    ],
                    p.errors.load(Ordering::Relaxed) as f64,
                ));
                a[8].metrics.push(counter(
                    &[
                        ("group", grp.name),
                        ("processor", p.name),
                        ("kind", "panic"),
                    ],
                    p.panics.load(Ordering::Relaxed) as f64,
                ));
                a[9].metrics
                    .push(counter(&l, p.retries.load(Ordering::Relaxed) as f64));
                a[10].metrics.push(counter(
                    &[("processor", p.name)],
                    p.unrouted.load(Ordering::Relaxed) as f64,
                ));
                // Published by the group at each snapshotMs boundary: reading them costs
                // the group nothing (MNG-R33).
                let lat: Vec<u64> = p
                    .latency
                    .iter()
                    .map(|c| c.load(Ordering::Relaxed))
                    .collect();
                let mut s = Summary::default();
                s.set_quantile(
                    [0.5, 0.9, 0.99, 0.999]
                        .iter()
                        .zip(&lat[1..5])
                        .map(|(q, v)| {
                            let mut qq = Quantile::default();
                            qq.set_quantile(*q);
                            qq.set_value(*v as f64 / 1e9);
                            qq
                        })
                        .collect(),
                );
                s.set_sample_count(lat[0]);
                // The histogram keeps no exact sum; its mean times its count stands in.
                s.set_sample_sum(lat[6] as f64 / 1e9);
                let mut m = Metric::from_label(labels(&l));
                m.set_summary(s);
                a[11].metrics.push(m);
            }
        }
        fams.extend(a);
        let mut qf = vec![
            f("mongoose_quarantined_total", c),
            f("mongoose_quarantine_write_failures_total", c),
        ];
        for k in KINDS {
            qf[0].metrics.push(counter(
                &[("kind", k.as_str())],
                self.src.quarantine.total(k) as f64,
            ));
        }
        qf[1].metrics.push(counter(
            &[],
            self.src.quarantine.write_failures.load(Ordering::Relaxed) as f64,
        ));
        fams.extend(qf);
        let mut sk = vec![
            f("mongoose_sink_sent_total", c),
            f("mongoose_sink_written_total", c),
            f("mongoose_sink_errors_total", c),
            f("mongoose_sink_rejected_total", c),
            f("mongoose_sink_evicted_total", c),
            f("mongoose_sink_queue_depth", g),
            f("mongoose_sink_circuit_state", g),
            f("mongoose_sink_circuit_transitions_total", c),
        ];
        for (h, agent) in &self.src.sinks {
            let l = [("sink", h.name())];
            let st = h.stats();
            sk[0]
                .metrics
                .push(counter(&l, st.sent.load(Ordering::Relaxed) as f64));
            sk[1]
                .metrics
                .push(counter(&l, st.written.load(Ordering::Relaxed) as f64));
            let (retry, perm) = agent
                .as_ref()
                .map(|a| {
                    (
                        a.errors_retryable.load(Ordering::Relaxed),
                        a.errors_permanent.load(Ordering::Relaxed),
                    )
                })
                .unwrap_or((0, 0));
            sk[2].metrics.push(counter(
                &[("sink", h.name()), ("kind", "retryable")],
                retry as f64,
            ));
            sk[2].metrics.push(counter(
                &[("sink", h.name()), ("kind", "permanent")],
                perm as f64,
            ));
            for (reason, v) in [
                ("full", &st.rejected_full),
                ("circuit_open", &st.rejected_open),
                ("closed", &st.rejected_closed),
            ] {
                sk[3].metrics.push(counter(
                    &[("sink", h.name()), ("reason", reason)],
                    v.load(Ordering::Relaxed) as f64,
                ));
            }
            sk[4]
                .metrics
                .push(counter(&l, st.evicted.load(Ordering::Relaxed) as f64));
            sk[5].metrics.push(gauge(&l, h.depth() as f64));
            let state = h.circuit().map(|s| s.as_str()).unwrap_or("closed");
            for name in ["closed", "open", "half_open"] {
                sk[6].metrics.push(gauge(
                    &[("sink", h.name()), ("state", name)],
                    f64::from(u8::from(name == state)),
                ));
            }
            for (i, to) in crate::sink_agent::TRANSITION_TARGETS.iter().enumerate() {
                let n = agent
                    .as_ref()
                    .map_or(0, |a| a.transitions[i].load(Ordering::Relaxed));
                sk[7]
                    .metrics
                    .push(counter(&[("sink", h.name()), ("to", to)], n as f64));
            }
        }
        fams.extend(sk);
        let health = self.src.health.report();
        let mut p = vec![
            f("mongoose_ready", g),
            f("mongoose_process_resident_memory_bytes", g),
        ];
        p[0].metrics
            .push(gauge(&[], f64::from(u8::from(health.ready))));
        p[1].metrics.push(gauge(&[], rss_bytes()));
        fams.extend(p);
        // `service` is a base label (always "mongoose"), so the service's own name goes in
        // `service_name` (a spec conflict; see the crate docs).
        #[cfg(feature = "alloc-count")]
        {
            // Groups count dispatch; a feed's publishes count under `publish:<feed>`.
            let mut hot = f("mongoose_hot_path_allocations_total", c);
            for grp in &self.src.groups {
                hot.metrics.push(counter(
                    &[("agent", grp.name)],
                    grp.agent.hot_allocs.load(Ordering::Relaxed) as f64,
                ));
            }
            for feed in &self.src.feeds {
                hot.metrics.push(counter(
                    &[("agent", &format!("publish:{}", feed.name))],
                    feed.hot_allocs.load(Ordering::Relaxed) as f64,
                ));
            }
            fams.push(hot);
            let mut proc_allocs = f("mongoose_process_allocations_total", c);
            proc_allocs
                .metrics
                .push(counter(&[], crate::alloc::process_allocations() as f64));
            fams.push(proc_allocs);
        }
        let mut su = f("mongoose_service_up", g);
        for sv in &self.src.services {
            let up = sv.state.load(Ordering::Acquire) == crate::service::SERVICE_STARTED;
            su.metrics.push(gauge(
                &[("service_name", &sv.name)],
                f64::from(u8::from(up)),
            ));
        }
        fams.push(su);
        let mut rl = f("mongoose_config_reloads_total", c);
        if let Some(admin) = &self.src.admin {
            for (outcome, n) in admin.reloads() {
                rl.metrics.push(counter(&[("outcome", outcome)], n as f64));
            }
        }
        fams.push(rl);
        let mut ad = f("mongoose_admin_commands_total", c);
        if let Some(admin) = &self.src.admin {
            for ((command, outcome), n) in admin.counts() {
                ad.metrics.push(counter(
                    &[("command", &command), ("outcome", outcome)],
                    n as f64,
                ));
            }
        }
        fams.push(ad);
        fams
    }
}

impl<E: Event> Collector for MongooseCollector<E> {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.gather()
            .into_iter()
            .filter(|f| !f.metrics.is_empty())
            .map(|f| {
                let mut mf = MetricFamily::default();
                mf.set_name(f.name.to_owned());
                mf.set_help(f.help.to_owned());
                mf.set_field_type(f.kind);
                mf.set_metric(f.metrics);
                mf
            })
            .collect()
    }
}
