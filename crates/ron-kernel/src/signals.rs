//! Process signals (spec KRN-R5): drain, force, reload, log-level toggles.
//!
//! | Signal | Action |
//! |---|---|
//! | SIGTERM, SIGINT | first: [`ShutdownCoordinator::trigger`] + INFO `shutdown_started`; second: [`ShutdownCoordinator::force`] + WARN `shutdown_forced` |
//! | SIGHUP | runs the reload hook, one run at a time; SIGHUPs during a run coalesce into one more run; logs `config_reload` |
//! | SIGUSR1 / SIGUSR2 | toggles the log filter to `debug` / `trace` and back; WARN `log_filter_changed` |
//!
//! [`install`] registers every handler before it returns, so call it before binding any
//! listener: a SIGTERM that arrives during start-up then drains instead of killing.

use std::future::Future;
use std::io;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;

use crate::config::ReloadOutcome;
use crate::logging::LogHandle;
use crate::shutdown::ShutdownCoordinator;

/// Log message of the first SIGTERM/SIGINT.
pub const LOG_SHUTDOWN_STARTED: &str = "shutdown_started";
/// Log message of the second SIGTERM/SIGINT.
pub const LOG_SHUTDOWN_FORCED: &str = "shutdown_forced";
/// Log message of each finished reload.
pub const LOG_CONFIG_RELOAD: &str = "config_reload";
/// Log message of each SIGUSR1/SIGUSR2 filter change.
pub const LOG_FILTER_CHANGED: &str = "log_filter_changed";
/// Filter SIGUSR1 toggles to.
pub const USR1_FILTER: &str = "debug";
/// Filter SIGUSR2 toggles to.
pub const USR2_FILTER: &str = "trace";

/// Re-reads configuration and reports what happened; see [`reload_hook`].
pub type ReloadHook = Arc<dyn Fn() -> BoxFuture<'static, ReloadOutcome> + Send + Sync>;

/// A service's own action for SIGUSR1 or SIGUSR2, replacing the default filter toggle.
pub type SignalHook = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// What the signal task drives besides the coordinator.
#[derive(Clone)]
pub struct Hooks {
    /// Run on SIGHUP; `None` logs `config_reload` with outcome `unsupported`.
    pub reload: Option<ReloadHook>,
    /// The filter SIGUSR1/SIGUSR2 toggle.
    pub log: LogHandle,
    /// Replaces the SIGUSR1 toggle when set.
    pub usr1: Option<SignalHook>,
    /// Replaces the SIGUSR2 toggle when set.
    pub usr2: Option<SignalHook>,
    /// Whether the signal task writes its `config_reload` line (services that log their
    /// own reload lines turn it off).
    pub log_reloads: bool,
}

impl Hooks {
    /// The defaults: no reload hook, filter toggles on SIGUSR1/SIGUSR2, reloads logged.
    pub fn new(log: LogHandle) -> Hooks {
        Hooks {
            reload: None,
            log,
            usr1: None,
            usr2: None,
            log_reloads: true,
        }
    }

    /// Runs `hook` on SIGHUP.
    pub fn with_reload(mut self, hook: ReloadHook) -> Hooks {
        self.reload = Some(hook);
        self
    }
}

/// Wraps an async closure as a [`SignalHook`].
pub fn signal_hook<F, Fut>(f: F) -> SignalHook
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move || Box::pin(f()))
}

#[derive(Debug, Clone, Copy)]
enum Caught {
    Stop(&'static str),
    Reload,
    Toggle(&'static str, &'static str),
}

/// Wraps an async closure as a [`ReloadHook`].
pub fn reload_hook<F, Fut>(f: F) -> ReloadHook
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ReloadOutcome> + Send + 'static,
{
    Arc::new(move || Box::pin(f()))
}

/// Registers the handlers and spawns the one task that serves them. Needs a tokio runtime.
/// Fails only if the OS refuses a signal registration.
pub fn install(coord: &ShutdownCoordinator, hooks: Hooks) -> io::Result<JoinHandle<()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    let coord = coord.clone();
    Ok(tokio::spawn(async move {
        let mut stops = 0u32;
        let mut running: Option<BoxFuture<'static, ReloadOutcome>> = None;
        let mut again = false;
        loop {
            // Biased: a finished reload is recorded before new signals, and signals are
            // served in a fixed order (stop first) rather than at random.
            let caught = tokio::select! {
                biased;
                outcome = async { running.as_mut().expect("guarded by is_some").await },
                    if running.is_some() =>
                {
                    if hooks.log_reloads {
                        log_reload(&outcome);
                    }
                    running = None;
                    if std::mem::take(&mut again) {
                        running = hooks.reload.as_ref().map(|hook| hook());
                    }
                    continue;
                }
                Some(()) = term.recv() => Caught::Stop("SIGTERM"),
                Some(()) = int.recv() => Caught::Stop("SIGINT"),
                Some(()) = hup.recv() => Caught::Reload,
                Some(()) = usr1.recv() => Caught::Toggle(USR1_FILTER, "SIGUSR1"),
                Some(()) = usr2.recv() => Caught::Toggle(USR2_FILTER, "SIGUSR2"),
                else => break,
            };
            match caught {
                Caught::Stop(name) => {
                    stops += 1;
                    if stops == 1 {
                        coord.trigger();
                        tracing::info!(signal = name, "{}", LOG_SHUTDOWN_STARTED);
                    } else {
                        coord.force();
                        tracing::warn!(signal = name, "{}", LOG_SHUTDOWN_FORCED);
                    }
                }
                Caught::Reload => match &hooks.reload {
                    None => tracing::info!(
                        outcome = "unsupported",
                        changed = "",
                        "{}",
                        LOG_CONFIG_RELOAD
                    ),
                    // Serialise reloads: a SIGHUP during a run asks for exactly one more.
                    Some(_) if running.is_some() => again = true,
                    Some(hook) => running = Some(hook()),
                },
                Caught::Toggle(level, name) => {
                    let custom = if name == "SIGUSR1" {
                        &hooks.usr1
                    } else {
                        &hooks.usr2
                    };
                    match custom {
                        // Run off the signal task so a slow action never delays a stop.
                        Some(hook) => {
                            tokio::spawn(hook());
                        }
                        None => toggle_filter(&hooks.log, level, name),
                    }
                }
            }
        }
    }))
}

/// Resolves on the first Ctrl-C (SIGINT); for tests and examples that do not install the
/// full handler set.
pub async fn wait_for_ctrl_c() -> io::Result<()> {
    tokio::signal::ctrl_c().await
}

/// The one `config_reload` line per reload: `result` (ok|error), `outcome`, `changed`
/// keys, a redacted `diff` (`key: old -> new`, secrets already `<redacted>`), the
/// `restart_required` keys that changed but keep their old value, and any `error`.
fn log_reload(outcome: &ReloadOutcome) {
    let changed = outcome.changed_keys().join(",");
    let (diff, restart) = match outcome {
        ReloadOutcome::Applied {
            changed,
            pending_restart,
        } => (
            changed
                .iter()
                .map(|c| format!("{}: {} -> {}", c.key, c.old, c.new))
                .collect::<Vec<_>>()
                .join("; "),
            pending_restart
                .iter()
                .map(|c| c.key.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
        ReloadOutcome::Rejected { restart_keys } => (
            String::new(),
            restart_keys
                .iter()
                .map(|c| c.key.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => (String::new(), String::new()),
    };
    match outcome {
        ReloadOutcome::Invalid(err) => tracing::warn!(
            result = "error",
            outcome = outcome.as_str(),
            changed = %changed,
            error = %err,
            "{}",
            LOG_CONFIG_RELOAD
        ),
        ReloadOutcome::Rejected { .. } => tracing::warn!(
            result = "error",
            outcome = outcome.as_str(),
            changed = %changed,
            restart_required = %restart,
            "{}",
            LOG_CONFIG_RELOAD
        ),
        ReloadOutcome::Applied { .. } | ReloadOutcome::Unchanged => tracing::info!(
            result = "ok",
            outcome = outcome.as_str(),
            changed = %changed,
            diff = %diff,
            restart_required = %restart,
            "{}",
            LOG_CONFIG_RELOAD
        ),
    }
}

/// Switches to `level`, or back to the configured filter when already at `level`.
fn toggle_filter(log: &LogHandle, level: &str, signal: &str) {
    let from = log.current();
    let back = from.trim() == level;
    let to = if back {
        log.configured().to_owned()
    } else {
        level.to_owned()
    };
    // Log while the more verbose filter is active so the line is not filtered out.
    if back {
        tracing::warn!(from = %from, to = %to, signal, "{}", LOG_FILTER_CHANGED);
    }
    if let Err(err) = log.set_filter(&to) {
        tracing::warn!(signal, error = %err, "log filter change failed");
        return;
    }
    if !back {
        tracing::warn!(from = %from, to = %to, signal, "{}", LOG_FILTER_CHANGED);
    }
}
