//! Child processes: start one with its log file, wait until it is ready, stop it with
//! SIGTERM and a grace period (SIGKILL after).

use std::fs::OpenOptions;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::stack::ServiceSpec;

/// How long a service may take to become ready (rustchat migrates first).
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a stopping service may drain before SIGKILL (rustchat's default grace is 30 s).
pub const STOP_GRACE: Duration = Duration::from_secs(45);
/// Readiness poll interval.
const POLL: Duration = Duration::from_millis(100);

/// Why a service could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The process could not be spawned.
    #[error("{name}: cannot start {bin}: {error}")]
    Spawn {
        /// Service.
        name: &'static str,
        /// Binary.
        bin: String,
        /// OS error.
        error: String,
    },
    /// It exited before it was ready.
    #[error("{name} exited during start-up ({status}); last log lines:\n{tail}")]
    Exited {
        /// Service.
        name: &'static str,
        /// Exit status.
        status: String,
        /// The end of its log.
        tail: String,
    },
    /// It did not become ready in time.
    #[error("{name} not ready within {secs} s ({url}: {last}); see {log}")]
    NotReady {
        /// Service.
        name: &'static str,
        /// Seconds waited.
        secs: u64,
        /// Probe URL.
        url: String,
        /// Last probe outcome.
        last: String,
        /// Its log file.
        log: String,
    },
}

/// A started service.
pub struct Running {
    /// What was started.
    pub spec: ServiceSpec,
    /// The process.
    pub child: Child,
}

impl Running {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}

/// Spawns `spec` with stdout and stderr appended to its log file.
pub fn start(spec: &ServiceSpec) -> Result<Running, StartError> {
    let fail = |error: String| StartError::Spawn {
        name: spec.name,
        bin: spec.bin.display().to_string(),
        error,
    };
    std::fs::create_dir_all(&spec.dir).map_err(|e| fail(e.to_string()))?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .map_err(|e| fail(format!("{}: {e}", spec.log.display())))?;
    let err_log = log.try_clone().map_err(|e| fail(e.to_string()))?;
    let mut cmd = Command::new(&spec.bin);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .kill_on_drop(true);
    // SAFETY: prctl in the forked child before exec, async-signal-safe, no allocation.
    // If ronctl dies without draining (SIGKILL), its services get SIGTERM and drain
    // themselves instead of running on unsupervised.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    Ok(Running {
        spec: spec.clone(),
        child,
    })
}

/// Polls the readiness URL until it answers 200; fails early if the process exits.
pub async fn wait_ready(r: &mut Running) -> Result<Duration, StartError> {
    let started = Instant::now();
    let mut last = String::from("no answer yet");
    while started.elapsed() < READY_TIMEOUT {
        if let Ok(Some(status)) = r.child.try_wait() {
            return Err(StartError::Exited {
                name: r.spec.name,
                status: status.to_string(),
                tail: log_tail(&r.spec.log, 20),
            });
        }
        match crate::probe::status(&r.spec.ready_url).await {
            Ok(200) => return Ok(started.elapsed()),
            Ok(code) => last = format!("HTTP {code}"),
            Err(e) => last = e,
        }
        tokio::time::sleep(POLL).await;
    }
    Err(StartError::NotReady {
        name: r.spec.name,
        secs: READY_TIMEOUT.as_secs(),
        url: r.spec.ready_url.clone(),
        last,
        log: r.spec.log.display().to_string(),
    })
}

/// SIGTERM, then up to [`STOP_GRACE`] for the drain, then SIGKILL.
pub async fn stop(r: &mut Running) -> Option<ExitStatus> {
    if let Ok(Some(done)) = r.child.try_wait() {
        return Some(done);
    }
    if let Some(pid) = r.child.id() {
        // SAFETY: kill with our own child's pid and a valid signal number.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
    match tokio::time::timeout(STOP_GRACE, r.child.wait()).await {
        Ok(status) => status.ok(),
        Err(_) => {
            let _ = r.child.start_kill();
            r.child.wait().await.ok()
        }
    }
}

/// The last `n` lines of a log file (for start-up failures).
pub fn log_tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
