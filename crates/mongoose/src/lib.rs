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
//! Built so far (issue 6, in progress): the library core for embedders (memory feeds,
//! groups, processors with timers, retries and quarantine, the five backpressure policies
//! with the MNG-R24 invariants, batching counters, per-processor latency histograms), the
//! built-in processors, agent-hosted sinks with circuit breakers, the health monitor, the
//! metric families on a ron-metrics registry, the YAML config module, the registry of the
//! implemented types, and `mongoose-server` (offline modes, and running a config of memory
//! feeds and sinks until SIGTERM). The admin listener and CLI, SIGHUP, services and the I/O
//! feeds and sinks come next; until they are registered, a config naming them fails
//! `--check` with exit 2 rather than starting without them.
//!
//! Decisions where the spec is silent or conflicts:
//! - `mongoose_batches_total{le}` is the cumulative counter family of spec decision 5;
//!   `promtool check metrics` lints any `le` outside a histogram, so that one lint is
//!   expected (MNG-T21 otherwise passes).
//! - Feed, sink and group names are leaked to `&'static str` once at start: envelopes carry
//!   the feed name without a reference count, and names live as long as the process.

#![warn(missing_docs)]

pub mod admin;
pub mod builtins;
pub mod cli;
pub mod config;
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

pub use event::{Envelope, Event, JsonEvent, Record};
pub use group::{GroupSpec, ProcSpec, RetryPolicy};
pub use idle::IdleStrategy;
pub use processor::{ConfigMap, Context, Processor, ProcessorError, SubscriptionEvent};
pub use publish::{PublishError, PublishReport, Publisher};
pub use queue::{Backpressure, Policy};
pub use server::{FeedSpec, RunningServer, ServerSpec, StartError};
pub use sink::{SinkHandle, SinkSendError};
