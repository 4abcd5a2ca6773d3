//! SIGUSR1 and SIGUSR2 (spec §4.10 SEN-R42): debug logging on and off, and releasing
//! memory (idle upstream connections, then free heap pages back to the OS).
//!
//! The base filter is `RUST_LOG` when it was set at startup, else `logging.level`; the
//! SIGUSR1 override survives reloads until SIGUSR2.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use ron_kernel::logging::LogHandle;

use crate::proxy::Shared;

/// The filter SIGUSR1 switches to.
pub const DEBUG_FILTER: &str = "debug,hyper=info,h2=info,rustls=info";

/// The log filter state shared by the signal hooks and reloads.
pub struct Levels {
    log: LogHandle,
    base: Mutex<String>,
    debug: AtomicBool,
}

impl Levels {
    /// Starts at `base`.
    pub fn new(log: LogHandle, base: String) -> Levels {
        Levels {
            log,
            base: Mutex::new(base),
            debug: AtomicBool::new(false),
        }
    }

    /// SIGUSR1's filter change.
    pub fn debug_on(&self) {
        self.debug.store(true, Ordering::Release);
        match self.log.set_filter(DEBUG_FILTER) {
            Ok(()) => tracing::info!("debug logging enabled (SIGUSR1)"),
            Err(e) => tracing::warn!(error = %e, "cannot enable debug logging"),
        }
    }

    /// SIGUSR2: back to the base filter.
    pub fn restore(&self) {
        self.debug.store(false, Ordering::Release);
        let base = self.base.lock().clone();
        match self.log.set_filter(&base) {
            Ok(()) => tracing::info!("debug logging disabled (SIGUSR2)"),
            Err(e) => tracing::warn!(error = %e, "cannot restore the log filter"),
        }
    }

    /// A reload's new `logging.level`; applied now unless the SIGUSR1 override is on.
    pub fn set_base(&self, base: &str) {
        *self.base.lock() = base.to_owned();
        if !self.debug.load(Ordering::Acquire)
            && self.log.current() != base
            && let Err(e) = self.log.set_filter(base)
        {
            tracing::warn!(error = %e, "cannot apply the reloaded log level");
        }
    }
}

/// SIGUSR1: debug logging on, every idle upstream connection closed (pools recreate
/// connections on demand), free heap returned to the OS, then `memory released`.
pub fn release_memory(levels: &Levels, shared: &Shared) {
    levels.debug_on();
    let before = crate::metrics::rss_bytes().unwrap_or(0);
    let snapshot = shared.snapshot.load_full();
    let closed: usize = snapshot
        .proxies()
        .flat_map(|(_, p)| p.targets.iter())
        .map(|t| t.pool.close_idle(false))
        .sum();
    drop(snapshot);
    crate::memory::trim_heap();
    let after = crate::metrics::rss_bytes().unwrap_or(0);
    tracing::info!(
        rss_before_bytes = before,
        rss_after_bytes = after,
        idle_connections_closed = closed,
        "memory released"
    );
}
