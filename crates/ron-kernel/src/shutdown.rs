//! The shutdown/drain coordinator: Running → Draining → Stopped.
//!
//! On [`ShutdownCoordinator::trigger`] every attached [`HealthState`] is marked draining
//! first, so `/readyz` answers 503 before any listener stops. Ingress listeners watch
//! [`ShutdownToken::draining`] to stop accepting; observability listeners (the metrics
//! exposer) keep serving until [`ShutdownToken::stopped`], so scrapers see the drain.
//! [`ShutdownCoordinator::wait`] runs the grace period and waits for in-flight work (counted
//! by [`InflightGuard`]s) up to the deadline, then moves to Stopped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

use crate::HealthState;

/// Default time allowed for in-flight work after draining begins.
pub const DEFAULT_DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// Default pause between entering Draining and waiting on in-flight work, so load balancers
/// notice the readiness flip.
pub const DEFAULT_DRAIN_GRACE: Duration = Duration::ZERO;

/// Where the process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Serving normally.
    Running,
    /// Readiness is 503; ingress stops accepting; in-flight work finishes.
    Draining,
    /// Everything closes.
    Stopped,
}

/// Drain timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainConfig {
    /// Longest wait for in-flight work after the grace period.
    pub deadline: Duration,
    /// Pause after readiness flips before waiting on in-flight work.
    pub grace: Duration,
}

impl Default for DrainConfig {
    fn default() -> Self {
        DrainConfig {
            deadline: DEFAULT_DRAIN_DEADLINE,
            grace: DEFAULT_DRAIN_GRACE,
        }
    }
}

/// What a drain achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainOutcome {
    /// False when the deadline (or a force) cut in-flight work short.
    pub clean: bool,
    /// In-flight guards still alive when the drain ended.
    pub inflight_left: usize,
    /// Time from trigger to Stopped.
    pub elapsed: Duration,
}

struct Shared {
    phase: watch::Sender<Phase>,
    config: Mutex<DrainConfig>,
    health: Mutex<Vec<Arc<HealthState>>>,
    inflight: AtomicUsize,
    idle: Notify,
    triggered_at: Mutex<Option<Instant>>,
    /// A second signal (or a caller) stopped the drain early.
    forced: std::sync::atomic::AtomicBool,
}

/// Coordinates a graceful drain across every listener of the process. Cheap to clone.
#[derive(Clone)]
pub struct ShutdownCoordinator {
    shared: Arc<Shared>,
}

/// A listener's view of the coordinator.
#[derive(Clone)]
pub struct ShutdownToken {
    rx: watch::Receiver<Phase>,
}

/// Counts one unit of in-flight work until dropped.
pub struct InflightGuard {
    shared: Arc<Shared>,
}

impl ShutdownCoordinator {
    /// A fresh coordinator in the Running phase.
    pub fn new() -> ShutdownCoordinator {
        let (phase, _) = watch::channel(Phase::Running);
        ShutdownCoordinator {
            shared: Arc::new(Shared {
                phase,
                config: Mutex::new(DrainConfig::default()),
                health: Mutex::new(Vec::new()),
                inflight: AtomicUsize::new(0),
                forced: std::sync::atomic::AtomicBool::new(false),
                idle: Notify::new(),
                triggered_at: Mutex::new(None),
            }),
        }
    }

    /// The process-wide coordinator that signal handling drives.
    pub fn global() -> &'static ShutdownCoordinator {
        static GLOBAL: OnceLock<ShutdownCoordinator> = OnceLock::new();
        GLOBAL.get_or_init(ShutdownCoordinator::new)
    }

    /// Sets the drain timings.
    pub fn configure(&self, config: DrainConfig) {
        *self.shared.config.lock() = config;
    }

    /// Marks `health` draining when the drain begins (immediately if it already has).
    pub fn attach(&self, health: Arc<HealthState>) {
        if self.phase() != Phase::Running {
            health.set_draining();
        }
        self.shared.health.lock().push(health);
    }

    /// A token for a listener.
    pub fn token(&self) -> ShutdownToken {
        ShutdownToken {
            rx: self.shared.phase.subscribe(),
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        *self.shared.phase.borrow()
    }

    /// Counts one unit of in-flight work until the guard drops.
    pub fn inflight(&self) -> InflightGuard {
        self.shared.inflight.fetch_add(1, Ordering::AcqRel);
        InflightGuard {
            shared: self.shared.clone(),
        }
    }

    /// In-flight work right now.
    pub fn inflight_count(&self) -> usize {
        self.shared.inflight.load(Ordering::Acquire)
    }

    /// Begins draining. Idempotent.
    pub fn trigger(&self) {
        {
            let mut at = self.shared.triggered_at.lock();
            if at.is_some() {
                return;
            }
            *at = Some(Instant::now());
        }
        // Readiness flips before any listener learns of the drain.
        for h in self.shared.health.lock().iter() {
            h.set_draining();
        }
        self.shared.phase.send_if_modified(|p| {
            if *p == Phase::Running {
                *p = Phase::Draining;
                true
            } else {
                false
            }
        });
    }

    /// Stops at once, without waiting for in-flight work.
    pub fn force(&self) {
        self.shared
            .forced
            .store(true, std::sync::atomic::Ordering::Release);
        self.trigger();
        self.shared.phase.send_replace(Phase::Stopped);
        self.shared.idle.notify_waiters();
    }

    /// Whether [`ShutdownCoordinator::force`] ended the drain (services exit non-zero then).
    pub fn was_forced(&self) -> bool {
        self.shared
            .forced
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits for a trigger, then for the grace period and in-flight work (up to the
    /// deadline), then moves to Stopped.
    pub async fn wait(&self) -> DrainOutcome {
        let mut token = self.token();
        token.draining().await;
        let config = *self.shared.config.lock();
        let started = self.shared.triggered_at.lock().unwrap_or_else(Instant::now);
        let stopped_early = async {
            let mut t = self.token();
            t.stopped().await;
        };
        let drained = async {
            tokio::time::sleep(config.grace).await;
            let deadline = tokio::time::sleep(config.deadline);
            tokio::pin!(deadline);
            loop {
                let notified = self.shared.idle.notified();
                if self.inflight_count() == 0 {
                    return true;
                }
                tokio::select! {
                    _ = notified => {}
                    _ = &mut deadline => return self.inflight_count() == 0,
                }
            }
        };
        let clean = tokio::select! {
            clean = drained => clean,
            _ = stopped_early => self.inflight_count() == 0,
        };
        self.shared.phase.send_replace(Phase::Stopped);
        DrainOutcome {
            clean,
            inflight_left: self.inflight_count(),
            elapsed: started.elapsed(),
        }
    }
}

impl Default for ShutdownCoordinator {
    fn default() -> Self {
        ShutdownCoordinator::new()
    }
}

impl ShutdownToken {
    /// A token that never drains; for listeners run without a coordinator.
    pub fn never() -> ShutdownToken {
        let (tx, rx) = watch::channel(Phase::Running);
        // Keeping the sender alive forever makes `changed()` pend forever.
        std::mem::forget(tx);
        ShutdownToken { rx }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        *self.rx.borrow()
    }

    /// Whether draining (or stopping) has begun.
    pub fn is_draining(&self) -> bool {
        self.phase() >= Phase::Draining
    }

    /// Whether the process is stopping.
    pub fn is_stopped(&self) -> bool {
        self.phase() == Phase::Stopped
    }

    /// Resolves once draining (or stopping) has begun.
    pub async fn draining(&mut self) {
        self.until(Phase::Draining).await
    }

    /// Resolves once the process is stopping.
    pub async fn stopped(&mut self) {
        self.until(Phase::Stopped).await
    }

    async fn until(&mut self, phase: Phase) {
        // A dropped coordinator can never advance; treat it as stopped so tasks end.
        let _ = self.rx.wait_for(|p| *p >= phase).await;
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if self.shared.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn trigger_marks_health_draining_before_listeners_hear() {
        let coord = ShutdownCoordinator::new();
        let health = HealthState::new();
        health.set("a", true);
        coord.attach(health.clone());
        let mut token = coord.token();
        let h2 = health.clone();
        let listener = tokio::spawn(async move {
            token.draining().await;
            h2.is_draining()
        });
        coord.trigger();
        assert!(listener.await.unwrap());
        assert_eq!(health.snapshot().missing, vec!["draining"]);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_lets_inflight_work_finish_before_stopping() {
        let coord = ShutdownCoordinator::new();
        coord.configure(DrainConfig {
            deadline: Duration::from_secs(10),
            grace: Duration::from_secs(1),
        });
        let guard = coord.inflight();
        let c2 = coord.clone();
        let waiter = tokio::spawn(async move { c2.wait().await });
        coord.trigger();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(coord.phase(), Phase::Draining);
        drop(guard);
        let out = waiter.await.unwrap();
        assert!(out.clean);
        assert_eq!(out.inflight_left, 0);
        assert_eq!(coord.phase(), Phase::Stopped);
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_cuts_stuck_work_and_reports_unclean() {
        let coord = ShutdownCoordinator::new();
        coord.configure(DrainConfig {
            deadline: Duration::from_secs(2),
            grace: Duration::ZERO,
        });
        let _stuck = coord.inflight();
        coord.trigger();
        let out = coord.wait().await;
        assert!(!out.clean);
        assert_eq!(out.inflight_left, 1);
        assert_eq!(coord.phase(), Phase::Stopped);
    }

    #[tokio::test(start_paused = true)]
    async fn force_stops_immediately_during_grace() {
        let coord = ShutdownCoordinator::new();
        coord.configure(DrainConfig {
            deadline: Duration::from_secs(60),
            grace: Duration::from_secs(60),
        });
        let c2 = coord.clone();
        let waiter = tokio::spawn(async move { c2.wait().await });
        coord.trigger();
        tokio::task::yield_now().await;
        coord.force();
        let out = waiter.await.unwrap();
        assert!(out.elapsed < Duration::from_secs(60));
        let mut t = coord.token();
        t.stopped().await;
    }

    #[tokio::test]
    async fn attach_after_trigger_marks_draining_at_once() {
        let coord = ShutdownCoordinator::new();
        coord.trigger();
        let h = HealthState::new();
        coord.attach(h.clone());
        assert!(h.is_draining());
    }
}
