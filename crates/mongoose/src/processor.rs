//! Processors and their context (MNG-R04, R05). Every method runs on the group's thread,
//! so processor state need not be `Send` (processors are built there too).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::event::{Envelope, Event};
use crate::sink::{SinkHandle, SinkSendError};
use crate::timer::{TimerId, Timers, TimersFull};

/// Why `on_event` (or `on_timer`) failed; the event is retried, then quarantined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProcessorError(pub String);

impl ProcessorError {
    /// An error with this text.
    pub fn new(msg: impl Into<String>) -> Self {
        ProcessorError(msg.into())
    }
}

/// A subscription changed state (after `disconnect`, after `queues.reconnect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionEvent {
    /// The `disconnect` policy cut the subscription.
    Disconnected,
    /// `queues.reconnect` restored it.
    Reconnected,
}

/// A processor's configuration map.
pub type ConfigMap = serde_json::Map<String, Value>;

/// What a processor does. Only `on_event` is required.
pub trait Processor<E: Event> {
    /// First call, on the group thread; subscriptions and handles are taken here or in
    /// `start`. An `Err` fails startup.
    fn init(&mut self, _ctx: &mut Context<'_, E>) -> Result<(), String> {
        Ok(())
    }
    /// After `init`. An `Err` fails startup.
    fn start(&mut self, _ctx: &mut Context<'_, E>) -> Result<(), String> {
        Ok(())
    }
    /// Once the whole server has started.
    fn start_complete(&mut self, _ctx: &mut Context<'_, E>) {}
    /// One event.
    fn on_event(
        &mut self,
        env: &Envelope<E>,
        ctx: &mut Context<'_, E>,
    ) -> Result<(), ProcessorError>;
    /// A timer this processor scheduled fired.
    fn on_timer(&mut self, _token: u64, _ctx: &mut Context<'_, E>) -> Result<(), ProcessorError> {
        Ok(())
    }
    /// After each non-empty batch this processor received (for flushing).
    fn on_batch_end(&mut self, _ctx: &mut Context<'_, E>) {}
    /// A subscription was disconnected or reconnected.
    fn on_subscription(&mut self, _feed: &str, _event: SubscriptionEvent) {}
    /// A command this processor registered.
    fn on_admin_command(&mut self, name: &str, _args: &[String]) -> Result<Value, String> {
        Err(format!("no command {name}"))
    }
    /// New `config` on reload; the default refuses.
    fn on_config_change(&mut self, _config: &ConfigMap) -> Result<(), String> {
        Err("not reloadable".into())
    }
    /// Stopping (admin or shutdown).
    fn stop(&mut self, _ctx: &mut Context<'_, E>) {}
    /// Last call.
    fn tear_down(&mut self) {}
}

/// Builds a processor on its group thread.
pub type ProcessorFactory<E> = Box<dyn FnOnce() -> Result<Box<dyn Processor<E>>, String> + Send>;

/// Context methods called at the wrong time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// `subscribe`/`sink` after `start`.
    #[error("subscribe/sink lookups are only allowed in init and start")]
    SubscribeTooLate,
    /// No such feed.
    #[error("no feed named {0}")]
    UnknownFeed(String),
    /// No such sink.
    #[error("no sink named {0}")]
    UnknownSink(String),
    /// No service of that name (and type).
    #[error("no service named {0} of the requested type")]
    UnknownService(String),
    /// `service_of::<T>()` needs exactly one service of type `T`.
    #[error("{0} services of the requested type (service_of needs exactly one)")]
    AmbiguousService(usize),
}

/// The group-wide part of a context.
pub struct GroupCore<E> {
    pub(crate) group: &'static str,
    pub(crate) epoch: Instant,
    pub(crate) timers: Timers,
    pub(crate) sinks: Arc<HashMap<String, SinkHandle<E>>>,
    pub(crate) services: Arc<Vec<Arc<crate::service::ServiceEntry>>>,
    pub(crate) feeds: Arc<Vec<&'static str>>,
    pub(crate) wrap_named: Arc<Vec<bool>>,
    /// Commands registered in init/start: (name, help, processor index).
    pub(crate) admin_commands: Vec<(String, String, u32)>,
    /// Sinks handed out in init/start (a group sending into a pipe it consumes under
    /// `block` would wait on itself).
    pub(crate) sinks_taken: Vec<String>,
    /// The last clock read of latency recording (MNG-R21: one read after each call, the
    /// delta from the previous read is the call's latency).
    pub(crate) lat_mark: Option<Instant>,
    pub(crate) names: Vec<&'static str>,
    pub(crate) configs: Vec<ConfigMap>,
    /// Subscriptions requested during init/start: (processor, feed index).
    pub(crate) subscriptions: Vec<(u32, u32)>,
    /// Per processor: events it could not route.
    pub(crate) unrouted: Vec<Arc<std::sync::atomic::AtomicU64>>,
    pub(crate) now_ns: u64,
}

/// What a processor may use; built on the stack for each call.
pub struct Context<'a, E> {
    pub(crate) core: &'a mut GroupCore<E>,
    pub(crate) proc: u32,
    pub(crate) starting: bool,
    pub(crate) origin: Option<(&'static str, u64)>,
}

impl<E: Event> Context<'_, E> {
    /// Subscribes this processor to `feed` (init/start only).
    pub fn subscribe(&mut self, feed: &str) -> Result<(), ContextError> {
        if !self.starting {
            return Err(ContextError::SubscribeTooLate);
        }
        let idx = self
            .core
            .feeds
            .iter()
            .position(|f| *f == feed)
            .ok_or_else(|| ContextError::UnknownFeed(feed.into()))?;
        if !self.core.subscriptions.contains(&(self.proc, idx as u32)) {
            self.core.subscriptions.push((self.proc, idx as u32));
        }
        Ok(())
    }

    /// A sink handle (init/start only).
    pub fn sink(&mut self, name: &str) -> Result<SinkHandle<E>, ContextError> {
        if !self.starting {
            return Err(ContextError::SubscribeTooLate);
        }
        let h = self
            .core
            .sinks
            .get(name)
            .cloned()
            .ok_or_else(|| ContextError::UnknownSink(name.into()))?;
        self.core.sinks_taken.push(name.to_string());
        Ok(h)
    }

    /// Registers an admin command that runs on this processor's thread through
    /// `on_admin_command` (init/start only; a clash with a built-in command or another
    /// processor's fails startup).
    pub fn register_admin_command(&mut self, name: &str, help: &str) -> Result<(), ContextError> {
        if !self.starting {
            return Err(ContextError::SubscribeTooLate);
        }
        self.core
            .admin_commands
            .push((name.to_string(), help.to_string(), self.proc));
        Ok(())
    }

    /// Whether `env`'s feed has `wrapWithNamedEvent` (decision 11: only how built-ins
    /// render and forward changes; the envelope always carries feed and seq).
    pub fn wraps(&self, env: &Envelope<E>) -> bool {
        self.core
            .wrap_named
            .get(env.feed_id() as usize)
            .copied()
            .unwrap_or(false)
    }

    /// The service `name`, as its concrete type (init/start only).
    pub fn service<T: crate::service::Service>(
        &mut self,
        name: &str,
    ) -> Result<Arc<T>, ContextError> {
        if !self.starting {
            return Err(ContextError::SubscribeTooLate);
        }
        self.core
            .services
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.handle.downcast::<T>())
            .ok_or_else(|| ContextError::UnknownService(name.into()))
    }

    /// The one service of type `T` (init/start only).
    pub fn service_of<T: crate::service::Service>(&mut self) -> Result<Arc<T>, ContextError> {
        if !self.starting {
            return Err(ContextError::SubscribeTooLate);
        }
        let mut of_t = self.core.services.iter().filter(|s| s.handle.is::<T>());
        match (of_t.next(), of_t.count()) {
            (Some(s), 0) => s
                .handle
                .downcast::<T>()
                .ok_or_else(|| ContextError::UnknownService(s.name.clone())),
            (None, _) => Err(ContextError::AmbiguousService(0)),
            (Some(_), more) => Err(ContextError::AmbiguousService(more + 1)),
        }
    }

    /// Schedules `on_timer(token)` after `d`.
    pub fn schedule_after(&mut self, d: Duration, token: u64) -> Result<TimerId, TimersFull> {
        let due = self.now_ns().saturating_add(d.as_nanos() as u64);
        self.core.timers.schedule(due, self.proc, token)
    }

    /// Schedules `on_timer(token)` at `at`.
    pub fn schedule_at(&mut self, at: Instant, token: u64) -> Result<TimerId, TimersFull> {
        let due = at.saturating_duration_since(self.core.epoch).as_nanos() as u64;
        self.core.timers.schedule(due, self.proc, token)
    }

    /// Cancels a timer; false when it already fired or was cancelled.
    pub fn cancel(&mut self, id: TimerId) -> bool {
        self.core.timers.cancel(id)
    }

    /// Monotonic nanoseconds since the group started.
    pub fn now_ns(&self) -> u64 {
        self.core.epoch.elapsed().as_nanos() as u64
    }

    /// Wall-clock time.
    pub fn wall(&self) -> std::time::SystemTime {
        std::time::SystemTime::now()
    }

    /// This processor's `config`.
    pub fn config(&self) -> &ConfigMap {
        &self.core.configs[self.proc as usize]
    }

    /// Sends `v` to `sink`, carrying the current event's origin.
    pub fn forward(&self, sink: &SinkHandle<E>, v: E) -> Result<(), SinkSendError<E>> {
        sink.send_item(v, self.origin)
    }

    /// Counts one event this processor could not route
    /// (`mongoose_processor_unrouted_total`).
    pub fn count_unrouted(&self) {
        self.core.unrouted[self.proc as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// This processor's name.
    pub fn name(&self) -> &'static str {
        self.core.names[self.proc as usize]
    }

    /// The group's name.
    pub fn group(&self) -> &'static str {
        self.core.group
    }
}
