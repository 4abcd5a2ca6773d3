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
//! This increment (issue 6, part 1) is the library core for embedders: memory feeds,
//! groups, processors with timers, retries and quarantine, memory sinks, the five
//! backpressure policies with the MNG-R24 invariants, batching counters, per-processor
//! latency histograms, and fail-fast startup and bounded drain. The YAML server, admin
//! listener, metrics exposition, I/O feeds and sinks and the benchmark come next.

#![warn(missing_docs)]

pub mod builtins;
pub mod config;
pub mod event;
pub mod group;
pub mod health;
pub mod idle;
pub mod metrics;
pub mod processor;
pub mod publish;
pub mod quarantine;
pub mod queue;
pub mod server;
pub mod sink;
pub mod sink_agent;
pub mod timer;

pub use event::{Envelope, Event, JsonEvent, Record};
pub use group::{GroupSpec, ProcSpec, RetryPolicy};
pub use idle::IdleStrategy;
pub use processor::{ConfigMap, Context, Processor, ProcessorError, SubscriptionEvent};
pub use publish::{PublishError, PublishReport, Publisher};
pub use queue::{Backpressure, Policy};
pub use server::{FeedSpec, RunningServer, ServerSpec, StartError};
pub use sink::{SinkHandle, SinkSendError};
