//! `HealthState`: the process's readiness, shared by every listener that answers `/readyz`.
//!
//! Readiness is a set of named checks (each true or false) plus transient flags
//! (`degrade`/`restore`) and a one-way draining bit. The hot read, [`HealthState::is_ready`],
//! is a single atomic load; every mutation recomputes the verdict under one small mutex and
//! publishes it, so readers never see a half-applied change.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::sync::watch;

/// Most checks plus flags one `HealthState` holds; bounds memory and the `/readyz` body.
pub const MAX_HEALTH_NAMES: usize = 256;
/// Longest check or flag name, in bytes.
pub const MAX_HEALTH_NAME_LEN: usize = 64;
/// The name reported when nothing has been registered yet.
pub const STARTUP: &str = "startup";
/// The name reported (first) once draining has begun.
pub const DRAINING: &str = "draining";

/// Why a check could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthError {
    /// The name is not `[a-z0-9_.:-]{1,64}`.
    #[error("health check name {0:?} is invalid: expected [a-z0-9_.:-]{{1,64}}")]
    InvalidName(String),
    /// Registering would exceed [`MAX_HEALTH_NAMES`].
    #[error("health check {0:?} not registered: already {MAX_HEALTH_NAMES} checks and flags")]
    TooMany(String),
}

/// A readiness flip, as seen by [`HealthState::subscribe`] watchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyState {
    /// Whether the process is ready.
    pub ready: bool,
    /// When `ready` last changed.
    pub since: SystemTime,
}

/// A consistent copy of the readiness state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSnapshot {
    /// Whether the process is ready.
    pub ready: bool,
    /// Whether draining has begun.
    pub draining: bool,
    /// What keeps the process from being ready, in `/readyz` order.
    pub missing: Vec<String>,
    /// Every registered check and its value, sorted by name.
    pub checks: Vec<(String, bool)>,
    /// When `ready` last changed.
    pub since: SystemTime,
}

#[derive(Default)]
struct Inner {
    checks: BTreeMap<String, bool>,
    flags: BTreeMap<String, ()>,
}

/// Process readiness: named checks, transient flags and a one-way draining bit.
pub struct HealthState {
    inner: Mutex<Inner>,
    ready: AtomicBool,
    draining: AtomicBool,
    since_ms: AtomicI64,
    tx: watch::Sender<ReadyState>,
}

impl HealthState {
    /// A new state: nothing registered, so not ready (`missing == ["startup"]`).
    pub fn new() -> Arc<HealthState> {
        let now = SystemTime::now();
        let (tx, _) = watch::channel(ReadyState {
            ready: false,
            since: now,
        });
        Arc::new(HealthState {
            inner: Mutex::new(Inner::default()),
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            since_ms: AtomicI64::new(to_millis(now)),
            tx,
        })
    }

    /// Registers a check that starts false; re-registering keeps its current value.
    pub fn register(&self, check: &str) -> Result<(), HealthError> {
        validate_name(check)?;
        let mut inner = self.inner.lock();
        if !inner.checks.contains_key(check) {
            if inner.checks.len() + inner.flags.len() >= MAX_HEALTH_NAMES {
                return Err(HealthError::TooMany(check.to_owned()));
            }
            inner.checks.insert(check.to_owned(), false);
        }
        self.publish(&inner);
        Ok(())
    }

    /// Sets a check, registering it if absent. A bad name only logs a warning.
    pub fn set(&self, check: &str, ok: bool) {
        if !self.name_ok(check) {
            return;
        }
        let mut inner = self.inner.lock();
        if !inner.checks.contains_key(check)
            && inner.checks.len() + inner.flags.len() >= MAX_HEALTH_NAMES
        {
            tracing::warn!(name = check, "health_too_many");
            return;
        }
        inner.checks.insert(check.to_owned(), ok);
        self.publish(&inner);
    }

    /// Removes a check.
    pub fn unregister(&self, check: &str) {
        let mut inner = self.inner.lock();
        if inner.checks.remove(check).is_some() {
            self.publish(&inner);
        }
    }

    /// Raises a transient flag (not a check): the process is not ready while it is up.
    pub fn degrade(&self, flag: &str) {
        if !self.name_ok(flag) {
            return;
        }
        let mut inner = self.inner.lock();
        if inner.flags.contains_key(flag) {
            return;
        }
        if inner.checks.len() + inner.flags.len() >= MAX_HEALTH_NAMES {
            tracing::warn!(name = flag, "health_too_many");
            return;
        }
        inner.flags.insert(flag.to_owned(), ());
        self.publish(&inner);
    }

    /// Lowers a transient flag.
    pub fn restore(&self, flag: &str) {
        if !self.name_ok(flag) {
            return;
        }
        let mut inner = self.inner.lock();
        if inner.flags.remove(flag).is_some() {
            self.publish(&inner);
        }
    }

    /// Whether `flag` is currently raised.
    pub fn is_degraded_by(&self, flag: &str) -> bool {
        self.inner.lock().flags.contains_key(flag)
    }

    /// Begins draining. One-way: nothing makes the process ready again.
    pub fn set_draining(&self) {
        let inner = self.inner.lock();
        self.draining.store(true, Ordering::SeqCst);
        self.publish(&inner);
    }

    /// Whether draining has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Whether the process is ready: one atomic load.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// When readiness last flipped.
    pub fn since(&self) -> SystemTime {
        from_millis(self.since_ms.load(Ordering::Acquire))
    }

    /// A consistent copy of the state.
    pub fn snapshot(&self) -> HealthSnapshot {
        let inner = self.inner.lock();
        let draining = self.is_draining();
        HealthSnapshot {
            ready: self.is_ready(),
            draining,
            missing: missing(&inner, draining),
            checks: inner.checks.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            since: self.since(),
        }
    }

    /// Watches readiness flips (changes of the missing set alone are not sent).
    pub fn subscribe(&self) -> watch::Receiver<ReadyState> {
        self.tx.subscribe()
    }

    fn name_ok(&self, name: &str) -> bool {
        if validate_name(name).is_ok() {
            return true;
        }
        tracing::warn!(name = %name.escape_debug(), "health_invalid_name");
        false
    }

    /// Recomputes readiness under the caller's lock and publishes a flip.
    fn publish(&self, inner: &Inner) {
        let ready = !self.is_draining()
            && !inner.checks.is_empty()
            && inner.flags.is_empty()
            && inner.checks.values().all(|ok| *ok);
        if self.ready.load(Ordering::Acquire) == ready {
            return;
        }
        let now = SystemTime::now();
        self.since_ms.store(to_millis(now), Ordering::Release);
        self.ready.store(ready, Ordering::Release);
        self.tx.send_replace(ReadyState { ready, since: now });
    }
}

/// `"draining"` first, then false checks and raised flags merged alphabetically, else
/// `"startup"` when nothing is registered.
fn missing(inner: &Inner, draining: bool) -> Vec<String> {
    let mut out = Vec::new();
    if draining {
        out.push(DRAINING.to_owned());
    }
    let mut rest: Vec<&String> = inner
        .checks
        .iter()
        .filter(|(_, ok)| !**ok)
        .map(|(k, _)| k)
        .chain(inner.flags.keys())
        .collect();
    rest.sort();
    rest.dedup();
    out.extend(rest.into_iter().cloned());
    if inner.checks.is_empty() && out.is_empty() {
        out.push(STARTUP.to_owned());
    }
    out
}

/// Checks a health name against `[a-z0-9_.:-]{1,64}`.
pub fn validate_name(name: &str) -> Result<(), HealthError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_HEALTH_NAME_LEN
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(HealthError::InvalidName(name.to_owned()))
    }
}

fn to_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_state_is_not_ready_with_startup_missing() {
        let h = HealthState::new();
        assert!(!h.is_ready());
        assert_eq!(h.snapshot().missing, vec!["startup"]);
    }

    #[test]
    fn since_moves_only_when_ready_flips() {
        let h = HealthState::new();
        let mut rx = h.subscribe();
        h.register("a").unwrap();
        h.register("b").unwrap();
        let s0 = h.since();
        h.set("a", true);
        assert_eq!(h.snapshot().missing, vec!["b"]);
        assert_eq!(h.since(), s0);
        assert!(!rx.has_changed().unwrap());
        std::thread::sleep(Duration::from_millis(3));
        h.set("b", true);
        assert!(h.is_ready());
        assert!(h.since() > s0);
        assert!(rx.has_changed().unwrap());
        assert!(rx.borrow_and_update().ready);
        assert!(!rx.has_changed().unwrap());
    }

    #[test]
    fn flags_degrade_and_restore_without_being_checks() {
        let h = HealthState::new();
        h.set("db", true);
        h.degrade("x");
        assert!(!h.is_ready());
        assert_eq!(h.snapshot().missing, vec!["x"]);
        assert_eq!(h.snapshot().checks, vec![("db".to_owned(), true)]);
        h.restore("x");
        assert!(h.is_ready());
    }

    #[test]
    fn draining_is_listed_first_and_never_clears() {
        let h = HealthState::new();
        h.set("b", false);
        h.set("a", true);
        h.set_draining();
        h.set("b", true);
        assert!(!h.is_ready());
        assert_eq!(h.snapshot().missing, vec!["draining"]);
        h.set("a", false);
        assert_eq!(h.snapshot().missing, vec!["draining", "a"]);
    }

    #[test]
    fn missing_merges_checks_and_flags_alphabetically() {
        let h = HealthState::new();
        h.set("zeta", false);
        h.degrade("alpha");
        h.set("mid", false);
        assert_eq!(h.snapshot().missing, vec!["alpha", "mid", "zeta"]);
    }

    #[test]
    fn bad_names_are_rejected_or_ignored() {
        let h = HealthState::new();
        assert!(matches!(
            h.register("Bad"),
            Err(HealthError::InvalidName(_))
        ));
        assert!(h.register(&"a".repeat(65)).is_err());
        h.set("has space", true);
        h.degrade("UPPER");
        assert_eq!(h.snapshot().missing, vec!["startup"]);
    }

    #[test]
    fn register_keeps_existing_value_and_caps_total() {
        let h = HealthState::new();
        h.set("a", true);
        h.register("a").unwrap();
        assert!(h.is_ready());
        for i in 1..MAX_HEALTH_NAMES {
            h.register(&format!("c{i}")).unwrap();
        }
        assert!(matches!(
            h.register("one_more"),
            Err(HealthError::TooMany(_))
        ));
    }
}
