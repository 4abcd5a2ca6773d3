//! Services (MNG-R06): shared, thread-safe components that processors look up by name or by
//! type during `init`/`start` and hold as `Arc<T>`.
//!
//! Lifecycle (MNG-R19 steps 5 and 8, R30 step 7): `init` then `start` in declaration order
//! before any group starts (an `Err` from a critical service fails startup; from a
//! non-critical one it is logged and the service is `failed`), `start_complete` once the
//! server is ready, and at shutdown `stop` then `tear_down` in reverse order. A service with
//! an `agentName` is also driven by that agent: its `do_work` runs every duty cycle. The
//! monitor asks `healthy()` every check; a critical service that is not started or not
//! healthy shows as `service:NAME` in readiness.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// A service. Every method takes `&self`: services are shared across threads.
pub trait Service: Send + Sync + 'static {
    /// First call; an `Err` fails startup when the service is critical.
    fn init(&self) -> Result<(), String> {
        Ok(())
    }
    /// After `init`; an `Err` fails startup when the service is critical.
    fn start(&self) -> Result<(), String> {
        Ok(())
    }
    /// The whole server has started.
    fn start_complete(&self) {}
    /// Shutdown, before `tear_down`.
    fn stop(&self) {}
    /// Last call.
    fn tear_down(&self) {}
    /// Readiness of a started service.
    fn healthy(&self) -> bool {
        true
    }
    /// One duty cycle's work when hosted on an agent; returns how much was done.
    fn do_work(&self) -> usize {
        0
    }
}

/// A built service: the same allocation as a [`Service`] and as `Any`, so processors get
/// their concrete `Arc<T>` back.
#[derive(Clone)]
pub struct ServiceHandle {
    service: Arc<dyn Service>,
    any: Arc<dyn Any + Send + Sync>,
}

impl ServiceHandle {
    /// Wraps a service.
    pub fn new<T: Service>(s: T) -> Self {
        let a = Arc::new(s);
        ServiceHandle {
            service: a.clone(),
            any: a,
        }
    }

    /// The lifecycle side.
    pub fn service(&self) -> &Arc<dyn Service> {
        &self.service
    }

    /// The concrete service, when it is a `T`.
    pub fn downcast<T: Service>(&self) -> Option<Arc<T>> {
        self.any.clone().downcast::<T>().ok()
    }

    /// Whether it is a `T`.
    pub fn is<T: Service>(&self) -> bool {
        self.any.is::<T>()
    }
}

/// `services.list` states.
pub const SERVICE_STATES: [&str; 4] = ["registered", "started", "stopped", "failed"];
/// Built, not started.
pub const SERVICE_REGISTERED: u8 = 0;
/// Started.
pub const SERVICE_STARTED: u8 = 1;
/// Stopped.
pub const SERVICE_STOPPED: u8 = 2;
/// `init` or `start` failed, or `do_work` panicked.
pub const SERVICE_FAILED: u8 = 3;

/// One service as the server tracks it.
pub struct ServiceEntry {
    /// Name.
    pub name: String,
    /// Registered type.
    pub type_name: String,
    /// A failure to start fails startup; readiness watches it.
    pub critical: bool,
    /// The hosting agent, if any.
    pub agent: Option<String>,
    /// The service.
    pub handle: ServiceHandle,
    /// One of the `SERVICE_*` states.
    pub state: AtomicU8,
}

impl ServiceEntry {
    /// The state's name.
    pub fn state_name(&self) -> &'static str {
        SERVICE_STATES
            .get(self.state.load(Ordering::Acquire) as usize)
            .copied()
            .unwrap_or("failed")
    }

    /// Started and healthy (a panicking `healthy` counts as unhealthy).
    pub fn up(&self) -> bool {
        self.state.load(Ordering::Acquire) == SERVICE_STARTED
            && std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.handle.service().healthy()
            }))
            .unwrap_or(false)
    }
}

/// Builds a service from its `config`.
pub type ServiceFactory = Box<dyn FnOnce() -> Result<ServiceHandle, String> + Send>;

/// One service before start.
pub struct ServiceSpec {
    /// Name (unique across feeds, sinks, services and pipes).
    pub name: String,
    /// Registered type.
    pub type_name: String,
    /// A failing `init`/`start` aborts startup.
    pub critical: bool,
    /// The agent that runs its `do_work`, with that agent's idle strategy and core.
    pub agent: Option<crate::server::AgentPlacement>,
    /// Builds it.
    pub factory: ServiceFactory,
}
