//! KRN-T3 and the SIGTERM/SIGINT rows of KRN-R5, with real signals sent to this process.
//!
//! Signal handlers are process-wide, so this file is its own test process and its tests
//! take a shared lock to run one at a time.

mod capture;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use capture::Capture;
use ron_kernel::config::{ConfigCell, ConfigLoader, ReloadOutcome, ReloadPolicy, Validate};
use ron_kernel::logging::{LogConfig, LogHandle};
use ron_kernel::signals::{self, Hooks, ReloadHook};
use ron_kernel::{Phase, ShutdownCoordinator};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn raise(signal: libc::c_int) {
    // SAFETY: kill(2) with our own pid and a valid signal number has no memory effects.
    let rc = unsafe { libc::kill(libc::getpid(), signal) };
    assert_eq!(rc, 0, "kill failed");
}

/// Polls `cond` until it holds; a 10 s guard turns a hang into a failure (not a timing
/// assertion: the condition is expected to hold within milliseconds).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn hooks(log: &LogHandle, reload: Option<ReloadHook>) -> Hooks {
    Hooks {
        reload,
        ..Hooks::new(log.clone())
    }
}

#[tokio::test]
async fn sighup_runs_the_reload_hook_and_logs_the_outcome() {
    let _serial = SERIAL.lock().await;
    let (out, sub, log) = Capture::subscriber(&LogConfig::new("sig"));
    let _guard = tracing::subscriber::set_default(sub);
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let hook = signals::reload_hook(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            ReloadOutcome::Unchanged
        }
    });
    let coord = ShutdownCoordinator::new();
    let task = signals::install(&coord, hooks(&log, Some(hook))).unwrap();
    raise(libc::SIGHUP);
    eventually("the reload line", || {
        !out.with_message(signals::LOG_CONFIG_RELOAD).is_empty()
    })
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let line = &out.with_message(signals::LOG_CONFIG_RELOAD)[0];
    assert_eq!(line["outcome"], "unchanged");
    assert_eq!(coord.phase(), Phase::Running);
    task.abort();
}

#[tokio::test]
async fn three_sighups_during_a_slow_reload_make_exactly_two_runs() {
    let _serial = SERIAL.lock().await;
    let (out, sub, log) = Capture::subscriber(&LogConfig::new("sig"));
    let _guard = tracing::subscriber::set_default(sub);
    let runs = Arc::new(AtomicU32::new(0));
    let started = Arc::new(Notify::new());
    let release = Arc::new(Semaphore::new(0));
    let hook = {
        let (runs, started, release) = (runs.clone(), started.clone(), release.clone());
        signals::reload_hook(move || {
            let (runs, started, release) = (runs.clone(), started.clone(), release.clone());
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                started.notify_one();
                release.acquire().await.expect("open").forget();
                ReloadOutcome::Unchanged
            }
        })
    };
    let coord = ShutdownCoordinator::new();
    let task = signals::install(&coord, hooks(&log, Some(hook))).unwrap();

    raise(libc::SIGHUP);
    started.notified().await;
    for _ in 0..3 {
        raise(libc::SIGHUP);
    }
    // SIGUSR1 is served after pending SIGHUPs (lower signal numbers are delivered first and
    // the task polls SIGHUP before SIGUSR1), so once the filter moved they were all seen.
    raise(libc::SIGUSR1);
    eventually("the SIGUSR1 toggle", || log.current() == "debug").await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "no second run while the first is busy"
    );

    release.add_permits(1);
    started.notified().await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    release.add_permits(1);
    eventually("two reload lines", || {
        out.with_message(signals::LOG_CONFIG_RELOAD).len() == 2
    })
    .await;

    // Another round trip through the task proves no third run was queued.
    raise(libc::SIGUSR1);
    eventually("the toggle back", || log.current() == log.configured()).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(out.with_message(signals::LOG_CONFIG_RELOAD).len(), 2);
    task.abort();
}

#[tokio::test]
async fn sigusr1_toggles_debug_and_back_and_sigusr2_toggles_trace_and_back() {
    let _serial = SERIAL.lock().await;
    let (out, sub, log) = Capture::subscriber(&LogConfig::new("sig"));
    let _guard = tracing::subscriber::set_default(sub);
    let coord = ShutdownCoordinator::new();
    let task = signals::install(&coord, hooks(&log, None)).unwrap();
    assert_eq!(log.current(), "info");

    raise(libc::SIGUSR1);
    eventually("debug", || log.current() == "debug").await;
    tracing::debug!("visible at debug");
    raise(libc::SIGUSR1);
    eventually("back to info", || log.current() == "info").await;
    tracing::debug!("hidden again");

    raise(libc::SIGUSR2);
    eventually("trace", || log.current() == "trace").await;
    raise(libc::SIGUSR2);
    eventually("back to info", || log.current() == "info").await;

    let changes = out.with_message(signals::LOG_FILTER_CHANGED);
    let seen: Vec<_> = changes
        .iter()
        .map(|c| {
            assert_eq!(c["level"], "WARN");
            (
                c["signal"].as_str().unwrap().to_owned(),
                c["from"].as_str().unwrap().to_owned(),
                c["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = |s: &str, f: &str, t: &str| (s.to_owned(), f.to_owned(), t.to_owned());
    assert_eq!(
        seen,
        [
            expect("SIGUSR1", "info", "debug"),
            expect("SIGUSR1", "debug", "info"),
            expect("SIGUSR2", "info", "trace"),
            expect("SIGUSR2", "trace", "info"),
        ]
    );
    assert_eq!(out.with_message("visible at debug").len(), 1);
    assert!(out.with_message("hidden again").is_empty());
    task.abort();
}

#[tokio::test]
async fn first_sigterm_drains_and_a_second_stop_signal_forces() {
    let _serial = SERIAL.lock().await;
    let (out, sub, log) = Capture::subscriber(&LogConfig::new("sig"));
    let _guard = tracing::subscriber::set_default(sub);
    let coord = ShutdownCoordinator::new();
    let task = signals::install(&coord, hooks(&log, None)).unwrap();

    raise(libc::SIGTERM);
    eventually("draining", || coord.phase() == Phase::Draining).await;
    let started = out.with_message(signals::LOG_SHUTDOWN_STARTED);
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["signal"], "SIGTERM");
    assert_eq!(started[0]["level"], "INFO");

    raise(libc::SIGINT);
    eventually("stopped", || coord.phase() == Phase::Stopped).await;
    let forced = out.with_message(signals::LOG_SHUTDOWN_FORCED);
    assert_eq!(forced.len(), 1);
    assert_eq!(forced[0]["signal"], "SIGINT");
    assert_eq!(forced[0]["level"], "WARN");
    task.abort();
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Cfg {
    limit: u32,
}

impl Validate for Cfg {
    fn validate(&self) -> Vec<(String, String)> {
        if self.limit > 10 {
            vec![("limit".into(), "must be at most 10".into())]
        } else {
            Vec::new()
        }
    }
}

#[tokio::test]
async fn sighup_with_an_invalid_file_logs_invalid_and_keeps_the_old_config() {
    let _serial = SERIAL.lock().await;
    let (out, sub, log) = Capture::subscriber(&LogConfig::new("sig"));
    let _guard = tracing::subscriber::set_default(sub);
    let path = std::env::temp_dir().join(format!("ron-kernel-signals-{}.toml", std::process::id()));
    std::fs::write(&path, "limit = 3\n").unwrap();
    let loader = Arc::new(
        ConfigLoader::<Cfg>::new("SIGTEST")
            .defaults(Cfg::default())
            .file(&path),
    );
    let cell = Arc::new(ConfigCell::from(loader.load().unwrap()));
    let hook = {
        let (loader, cell) = (loader.clone(), cell.clone());
        signals::reload_hook(move || {
            let (loader, cell) = (loader.clone(), cell.clone());
            async move { cell.reload(&loader, ReloadPolicy::KeepOld) }
        })
    };
    let coord = ShutdownCoordinator::new();
    let task = signals::install(&coord, hooks(&log, Some(hook))).unwrap();

    std::fs::write(&path, "limit = 99\n").unwrap();
    raise(libc::SIGHUP);
    eventually("invalid reload", || {
        !out.with_message(signals::LOG_CONFIG_RELOAD).is_empty()
    })
    .await;
    let line = &out.with_message(signals::LOG_CONFIG_RELOAD)[0];
    assert_eq!(line["outcome"], "invalid");
    assert_eq!(line["level"], "WARN");
    assert!(
        line["error"]
            .as_str()
            .unwrap()
            .starts_with("limit = \"99\""),
        "{line}"
    );
    assert_eq!(cell.get().limit, 3);

    std::fs::write(&path, "limit = 4\n").unwrap();
    raise(libc::SIGHUP);
    eventually("applied reload", || {
        out.with_message(signals::LOG_CONFIG_RELOAD).len() == 2
    })
    .await;
    let line = &out.with_message(signals::LOG_CONFIG_RELOAD)[1];
    assert_eq!(line["outcome"], "applied");
    assert_eq!(line["changed"], "limit");
    assert_eq!(cell.get().limit, 4);
    let _ = std::fs::remove_file(&path);
    task.abort();
}
