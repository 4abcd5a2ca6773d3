//! `ron-kernel`: the shared service runtime every workspace service stands on.
//!
//! What it is for: readiness ([`HealthState`]), layered configuration ([`config`]),
//! the shutdown/drain coordinator ([`shutdown`]), process signals ([`signals`]), JSON
//! logging with a reloadable filter ([`logging`]), the correlation-id tower layer
//! ([`corr_id`]), a circuit breaker ([`breaker`]) and a keyed token-bucket rate limiter
//! ([`limiter`]).
//!
//! What it is not for: metrics (that is `ron-metrics`, which depends on this crate, never
//! the reverse), an event bus or a supervisor. Services count outcomes of these mechanisms
//! in their own metric families through the hooks each module offers.
#![warn(missing_docs)]

pub mod breaker;
pub mod clock;
pub mod config;
pub mod corr_id;
pub mod health;
pub mod limiter;
pub mod logging;
pub mod shutdown;
pub mod signals;

pub use corr_id::{CorrId, CorrIdConfig, CorrIdLayer};
pub use health::{HealthError, HealthSnapshot, HealthState, ReadyState};
pub use shutdown::{DrainConfig, DrainOutcome, Phase, ShutdownCoordinator, ShutdownToken};

pub use breaker::{BreakerConfig, BreakerError, BreakerState, CircuitBreaker};
pub use clock::{Clock, MockClock, SharedClock, SystemClock};
pub use config::{
    ConfigCell, ConfigError, ConfigLoader, Loaded, ReloadClass, ReloadOutcome, ReloadPolicy,
    Validate,
};
pub use limiter::{Decision, KeyedLimiter, LimiterConfig};
pub use logging::{FieldLayout, LogConfig, LogHandle, LogWriter};
pub use signals::{Hooks, ReloadHook};
