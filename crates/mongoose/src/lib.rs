//! mongoose: an embeddable, low-latency, in-process event-processing runtime (spec
//! `shared/specs/mongoose.md`).
//!
//! Events flow from feeds through bounded queues (one per feed and consuming group) into
//! handler groups, each a thread running a duty cycle with a configurable idle strategy;
//! inside a group, processors run single-threaded and write to sinks. Backpressure
//! policies decide what a full queue does, and every drop is counted and reported to the
//! publisher. Failing events are retried without sleeping the thread, then quarantined
//! with their metadata.
//!
//! What this build has (spec §1 "in scope now"): the library core for embedders (memory
//! feeds, groups, processors with timers, retries and quarantine, the five backpressure
//! policies with the MNG-R24 invariants, batching, per-processor latency histograms with
//! interval windows), services, pipes, the built-in feeds (`memory`, `file`, `stdin`,
//! `timer`, `tcp`, `http`, `redis-stream`), sinks (`memory`, `stdout`, `file`, `tcp`,
//! `http`, `redis-stream`) and processors, agent-hosted sinks with circuit breakers, the
//! quarantine (memory ring, optionally fronted by a sink), the health monitor, the §5.1
//! metric families, the admin listener with every §3.1 command and the
//! `mongoose-server admin` client, the YAML config with layering and validation, SIGHUP
//! reload of the reloadable subset, and `mongoose-server` itself.
//!
//! Decisions where the spec is silent or conflicts:
//! - `mongoose_batches_total{le}` is the cumulative counter family of spec decision 5;
//!   `promtool check metrics` lints any `le` outside a histogram, so that one lint is
//!   expected (MNG-T21 otherwise passes).
//! - `mongoose_service_up` labels the service as `service_name`: `service` is a base label
//!   of every family (always `mongoose`), and a sample cannot carry a label twice.
//! - `/healthz` and `/readyz` are answered by mongoose itself from its health model (same
//!   JSON shapes as the ron-metrics exposer); ron-kernel check names cannot carry
//!   `backlog:F/G` or case-preserving feed names. `/metrics` is the ron-metrics exposer.
//! - Feed, sink and group names are leaked to `&'static str` once at start: envelopes carry
//!   the feed name without a reference count, and names live as long as the process.
//! - A pipe's sink side publishes under a mutex that is uncontended unless several groups
//!   send to the same pipe at once; the publish itself is the lock-free path.
//! - Reload asks processors one by one and stops at the first refusal; processors asked
//!   earlier keep their new config (`on_config_change` has no prepare/commit split).
//! - Logs go to stdout by default (`--log-to stderr` or a `stdout` sink moves them).
//! - I/O feeds publish with `block_in_place` on the I/O runtime, so a `block` wait of up to
//!   `maxWaitMs` parks one I/O worker, not the runtime.

#![warn(missing_docs)]

pub mod admin;
#[cfg(feature = "alloc-count")]
pub mod alloc;
pub mod builtins;
pub mod cli;
pub mod config;
pub mod embed;
pub mod event;
pub mod feed;
pub mod feeds;
pub mod group;
pub mod health;
pub mod idle;
pub mod metrics;
pub mod plan;
pub mod processor;
pub mod publish;
pub mod quarantine;
pub mod queue;
pub mod registry;
pub mod reload;
pub mod server;
pub mod service;
pub mod sink;
pub mod sink_agent;
pub mod sinks;
pub mod timer;

pub use embed::Server;
pub use event::{Envelope, Event, JsonEvent, Record};
pub use group::{GroupSpec, ProcSpec, RetryPolicy};
pub use idle::IdleStrategy;
pub use processor::{ConfigMap, Context, Processor, ProcessorError, SubscriptionEvent};
pub use publish::{PublishError, PublishReport, Publisher};
pub use queue::{Backpressure, Policy};
pub use server::{FeedSpec, RunningServer, ServerSpec, StartError};
pub use sink::{SinkHandle, SinkSendError};
