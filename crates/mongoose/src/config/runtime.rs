//! Conversions from the config types to the runtime types they configure.

use super::{BackpressureConfig, IdleStrategyConfig, PolicyConfig, RetryConfig};
use crate::group::RetryPolicy;
use crate::idle::IdleStrategy;
use crate::queue::{Backpressure, Policy};

impl From<PolicyConfig> for Policy {
    fn from(p: PolicyConfig) -> Self {
        match p {
            PolicyConfig::Block => Policy::Block,
            PolicyConfig::DropNewest => Policy::DropNewest,
            PolicyConfig::DropOldest => Policy::DropOldest,
            PolicyConfig::Disconnect => Policy::Disconnect,
            PolicyConfig::FailFast => Policy::FailFast,
        }
    }
}

impl From<BackpressureConfig> for Backpressure {
    fn from(b: BackpressureConfig) -> Self {
        Backpressure {
            policy: b.policy.into(),
            max_wait_ms: b.max_wait_ms,
            fallback: b.fallback.into(),
        }
    }
}

impl From<IdleStrategyConfig> for IdleStrategy {
    fn from(s: IdleStrategyConfig) -> Self {
        match s {
            IdleStrategyConfig::BusySpin => IdleStrategy::BusySpin,
            IdleStrategyConfig::Yielding => IdleStrategy::Yielding,
            IdleStrategyConfig::Sleeping { nanos } => IdleStrategy::Sleeping { nanos },
            IdleStrategyConfig::SleepingMillis { millis } => {
                IdleStrategy::SleepingMillis { millis }
            }
            IdleStrategyConfig::Backoff {
                max_spins,
                max_yields,
                min_park_ns,
                max_park_ns,
            } => IdleStrategy::Backoff {
                max_spins,
                max_yields,
                min_park_ns,
                max_park_ns,
            },
            IdleStrategyConfig::NoOp => IdleStrategy::NoOp,
        }
    }
}

impl From<RetryConfig> for RetryPolicy {
    fn from(r: RetryConfig) -> Self {
        RetryPolicy {
            max_retries: r.max_retries,
            initial_backoff_ms: r.initial_backoff_ms,
            multiplier: r.multiplier,
            max_backoff_ms: r.max_backoff_ms,
            max_pending: r.max_pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_convert_to_the_runtime_defaults() {
        assert_eq!(
            Backpressure::from(BackpressureConfig::default()),
            Backpressure::default()
        );
        assert_eq!(
            RetryPolicy::from(RetryConfig::default()),
            RetryPolicy::default()
        );
        assert_eq!(
            IdleStrategy::from(IdleStrategyConfig::default()),
            IdleStrategy::default()
        );
    }
}
