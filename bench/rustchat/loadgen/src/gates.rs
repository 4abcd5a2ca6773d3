//! Mattermost's published health gates, computed client-side over a window (§8): mean API
//! time < 100 ms, p99 < 2 s, 5xx < 0.025 % of calls, timeouts (> 10 s) < 0.025 %.
//! Transport failures (connection refused/reset) count with the 5xx: to a user they are the
//! same server failure.

use serde_json::{Value, json};

use crate::metrics::{Window, round3};

pub const MEAN_MS: f64 = 100.0;
pub const P99_MS: f64 = 2000.0;
pub const ERROR_RATIO: f64 = 0.000_25;
pub const TIMEOUT_RATIO: f64 = 0.000_25;

#[derive(Debug, Clone)]
pub struct Verdict {
    pub calls: u64,
    pub mean_ms: f64,
    pub p99_ms: f64,
    pub error_ratio: f64,
    pub timeout_ratio: f64,
}

impl Verdict {
    pub fn of(w: &Window) -> Verdict {
        let g = w.gated();
        let n = g.calls.max(1) as f64;
        Verdict {
            calls: g.calls,
            mean_ms: g.mean_ms(),
            p99_ms: g.hist.value_at_quantile(0.99) as f64 / 1000.0,
            error_ratio: (g.status_5xx + g.transport) as f64 / n,
            timeout_ratio: g.timeouts as f64 / n,
        }
    }

    /// All four gates hold (a window without calls passes nothing).
    pub fn pass(&self) -> bool {
        self.calls > 0
            && self.mean_ms < MEAN_MS
            && self.p99_ms < P99_MS
            && self.error_ratio < ERROR_RATIO
            && self.timeout_ratio < TIMEOUT_RATIO
    }

    /// Names of the failing gates.
    pub fn failing(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        if self.calls == 0 {
            f.push("no_calls");
        }
        if self.mean_ms >= MEAN_MS {
            f.push("mean");
        }
        if self.p99_ms >= P99_MS {
            f.push("p99");
        }
        if self.error_ratio >= ERROR_RATIO {
            f.push("5xx");
        }
        if self.timeout_ratio >= TIMEOUT_RATIO {
            f.push("timeouts");
        }
        f
    }

    pub fn to_json(&self) -> Value {
        json!({
            "pass": self.pass(),
            "failing": self.failing(),
            "calls": self.calls,
            "mean_ms": {"value": round3(self.mean_ms), "limit": MEAN_MS, "pass": self.mean_ms < MEAN_MS},
            "p99_ms": {"value": round3(self.p99_ms), "limit": P99_MS, "pass": self.p99_ms < P99_MS},
            "error_ratio": {"value": self.error_ratio, "limit": ERROR_RATIO, "pass": self.error_ratio < ERROR_RATIO},
            "timeout_ratio": {"value": self.timeout_ratio, "limit": TIMEOUT_RATIO, "pass": self.timeout_ratio < TIMEOUT_RATIO},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Ep, Metrics, Outcome};
    use crate::net::Failure;
    use std::time::Duration;

    #[test]
    fn each_gate_can_fail_on_its_own() {
        let m = Metrics::new();
        for _ in 0..10_000 {
            m.call(Ep::Unreads, Duration::from_millis(3), Outcome::Status(200));
        }
        let v = Verdict::of(&m.rotate());
        assert!(v.pass(), "{v:?}");
        for _ in 0..10_000 {
            m.call(Ep::Unreads, Duration::from_millis(3), Outcome::Status(200));
        }
        m.call(Ep::Unreads, Duration::from_millis(3), Outcome::Status(500));
        m.call(
            Ep::Search,
            Duration::from_millis(3),
            Outcome::Failed(Failure::Transport),
        );
        m.call(
            Ep::Search,
            Duration::from_millis(3),
            Outcome::Failed(Failure::Transport),
        );
        // 3 / 10,003 ≥ 0.025 %; the one-off timeout-free window keeps the other gates.
        let v = Verdict::of(&m.rotate());
        assert_eq!(v.failing(), vec!["5xx"]);
        m.call(Ep::Status, Duration::from_millis(300), Outcome::Status(200));
        assert_eq!(Verdict::of(&m.rotate()).failing(), vec!["mean"]);
        assert_eq!(Verdict::of(&m.rotate()).failing(), vec!["no_calls"]);
        // Logins alone are not gated.
        m.call(Ep::Login, Duration::from_secs(3), Outcome::Status(200));
        assert!(!Verdict::of(&m.rotate()).pass());
    }
}
