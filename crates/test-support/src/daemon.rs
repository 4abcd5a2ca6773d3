//! Server processes (PostgreSQL, Redis) that live no longer than the test process, and the
//! scratch directories that hold their data.
//!
//! Every server is forked from one long-lived spawner thread with `PR_SET_PDEATHSIG` set to
//! SIGKILL. The spawner thread matters: Linux sends the parent-death signal when the *thread*
//! that forked the child exits, not the process, and the test harness ends a thread after each
//! test, so a shared server forked from a test thread would die under the tests still using it.
//!
//! How a test process ending is handled:
//! - normal exit (all tests done, failed or not): an `atexit` hook sends each server still
//!   running its stop signal, waits up to [`EXIT_GRACE`] (then SIGKILL), and removes every
//!   scratch directory;
//! - killed by a signal (SIGKILL, a crash): none of our code runs; the kernel kills each server
//!   through the parent-death signal and its scratch directory stays behind in the temp dir.
//!   The next test process that starts a server removes the `ron-srv-<pid>-…` directories whose
//!   process is gone, with the 56-byte shared-memory segment a killed PostgreSQL leaves.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError, TryLockError, mpsc};
use std::time::{Duration, Instant};

/// How long a server may take to accept connections after it is spawned.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to exit after its stop signal before it gets SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(20);
/// The same, at test-process exit, where a slow server only delays the harness.
pub const EXIT_GRACE: Duration = Duration::from_secs(5);
/// Pause between readiness probes and exit checks.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Lines of a server's log quoted when it fails to start.
const LOG_TAIL_LINES: usize = 40;
/// Start of every scratch directory name; the owner's pid follows.
const SCRATCH_PREFIX: &str = "ron-srv-";

/// Ports tried before giving up when each was taken between picking and binding it.
const PORT_ATTEMPTS: u32 = 3;
/// The text a server logs when its port was taken between picking and binding it.
const PORT_IN_USE: &str = "Address already in use";

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// A server process: spawned, probed until ready, stopped with its own signal.
pub struct Daemon {
    name: &'static str,
    log: PathBuf,
    stop_signal: libc::c_int,
    child: Mutex<Option<Child>>,
}

/// A directory under the temp dir, removed on drop or at test-process exit.
pub struct Scratch {
    path: PathBuf,
}

/// Server processes still running, for the exit hook: (pid, stop signal).
static LIVE: Mutex<Vec<(libc::pid_t, libc::c_int)>> = Mutex::new(Vec::new());
/// Scratch directories not yet removed, for the exit hook.
static SCRATCH: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

impl Daemon {
    /// A daemon named `name` in messages, appending its output to `log`, stopped by
    /// `stop_signal`. Nothing runs until [`Daemon::start`].
    pub fn new(name: &'static str, log: PathBuf, stop_signal: libc::c_int) -> Daemon {
        Daemon {
            name,
            log,
            stop_signal,
            child: Mutex::new(None),
        }
    }

    /// Spawns `cmd` (stdin closed, stdout and stderr appended to the log) and polls `ready`
    /// until it returns true. `Err` carries a message with the log written by this attempt
    /// when the process exits first; a server still not ready after [`READY_TIMEOUT`] is
    /// killed and the call panics with that log.
    pub fn start(&self, mut cmd: Command, mut ready: impl FnMut() -> bool) -> Result<(), String> {
        let mut slot = lock(&self.child);
        assert!(slot.is_none(), "{} is already running", self.name);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log.display()));
        let offset = log.metadata().map_or(0, |m| m.len());
        let out = log
            .try_clone()
            .unwrap_or_else(|e| panic!("dup {}: {e}", self.log.display()));
        cmd.stdin(Stdio::null()).stdout(out).stderr(log);
        let mut child = spawn(cmd).unwrap_or_else(|e| panic!("spawn {}: {e}", self.name));
        let pid = child.id() as libc::pid_t;
        lock(&LIVE).push((pid, self.stop_signal));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                forget_pid(pid);
                return Err(self.failure(&format!("exited during start-up ({status})"), offset));
            }
            if ready() {
                *slot = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                end(&mut child, libc::SIGKILL, Duration::ZERO);
                forget_pid(pid);
                panic!(
                    "{}",
                    self.failure(&format!("not ready within {READY_TIMEOUT:?}"), offset)
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Starts the server on a free 127.0.0.1 port: `cmd(port)` builds the command and
    /// `ready(port)` probes it. Picks another port when the server reports that the one picked
    /// was taken in the meantime; panics on any other failure. Returns the port.
    pub fn start_on_free_port(
        &self,
        mut cmd: impl FnMut(u16) -> Command,
        mut ready: impl FnMut(u16) -> bool,
    ) -> u16 {
        let mut attempt = 1;
        loop {
            let port = free_port();
            match self.start(cmd(port), || ready(port)) {
                Ok(()) => return port,
                Err(msg) if msg.contains(PORT_IN_USE) && attempt < PORT_ATTEMPTS => attempt += 1,
                Err(msg) => panic!("{msg}"),
            }
        }
    }

    /// Sends the stop signal and waits for the process to exit (SIGKILL after
    /// [`STOP_GRACE`]); returns its exit status, `None` when it was not running.
    pub fn stop(&self) -> Option<ExitStatus> {
        let mut child = lock(&self.child).take()?;
        let status = end(&mut child, self.stop_signal, STOP_GRACE);
        forget_pid(child.id() as libc::pid_t);
        status
    }

    fn failure(&self, what: &str, offset: u64) -> String {
        format!(
            "{} {what}; log {} from this start:\n{}",
            self.name,
            self.log.display(),
            log_tail(&self.log, offset)
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Scratch {
    /// A new empty directory `ron-srv-<pid>-<n>-<tag>` under the temp dir. The first call in
    /// a process also removes directories left by test processes that were killed.
    pub fn new(tag: &str) -> Scratch {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        static SWEPT: OnceLock<()> = OnceLock::new();
        SWEPT.get_or_init(sweep_stale);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("{SCRATCH_PREFIX}{}-{n}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        lock(&SCRATCH).push(path.clone());
        Scratch { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
        lock(&SCRATCH).retain(|p| *p != self.path);
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago. The listener is closed before the
/// server binds, so the port can be taken in between (see [`Daemon::start_on_free_port`]).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("bind 127.0.0.1:0: {e}"))
}

/// Spawns `cmd` from the spawner thread with the parent-death signal set, so the child dies
/// with the test process and not with the calling thread.
pub fn spawn(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the hook runs in the forked child before exec and calls only async-signal-safe
    // functions (prctl, getppid) without allocating. std runs it after changing uid/gid,
    // which matters: a credential change clears the parent-death signal.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The test process may have died between fork and prctl; then nobody would.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("test-support-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the spawner thread");
        // SAFETY: registers a plain function; it captures nothing and never unwinds.
        unsafe {
            libc::atexit(at_exit);
        }
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    lock(spawner)
        .send((cmd, reply_tx))
        .expect("spawner thread is running");
    reply_rx.recv().expect("spawner thread replies")
}

/// Signals `child`, waits up to `grace` for it to exit, then SIGKILLs and reaps it.
fn end(child: &mut Child, signal: libc::c_int, grace: Duration) -> Option<ExitStatus> {
    // SAFETY: kill with our own unreaped child's pid and a valid signal number.
    unsafe {
        libc::kill(child.id() as libc::pid_t, signal);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    let _ = child.kill();
    child.wait().ok()
}

fn forget_pid(pid: libc::pid_t) {
    lock(&LIVE).retain(|(p, _)| *p != pid);
}

/// The last [`LOG_TAIL_LINES`] lines of `path` from byte `offset` on.
pub fn log_tail(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path)
        && f.seek(SeekFrom::Start(offset)).is_ok()
    {
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// Removes scratch directories whose owning process no longer exists.
fn sweep_stale() {
    sweep_dead(
        SCRATCH_PREFIX,
        |rest| rest.split('-').next(),
        crate::pg::release_stale_shmem,
    );
}

/// Removes the temp-dir entries named `<prefix><rest>` whose pid (found in `rest` by
/// `pid_in`) is no longer a live process, after `before` has had a look at each.
pub(crate) fn sweep_dead(
    prefix: &str,
    pid_in: impl Fn(&str) -> Option<&str>,
    before: impl Fn(&Path),
) {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(&pid_in)
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            before(&entry.path());
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The exit hook: stops the servers still running, then removes the scratch directories.
/// Never blocks on a lock another thread holds and never panics (it runs inside `exit`).
extern "C" fn at_exit() {
    let mut live = match LIVE.try_lock() {
        Ok(mut g) => std::mem::take(&mut *g),
        Err(TryLockError::Poisoned(p)) => std::mem::take(&mut *p.into_inner()),
        Err(TryLockError::WouldBlock) => Vec::new(),
    };
    for &(pid, signal) in &live {
        // SAFETY: pids of our own unreaped children, valid signal numbers.
        unsafe {
            libc::kill(pid, signal);
        }
    }
    let deadline = Instant::now() + EXIT_GRACE;
    while !live.is_empty() && Instant::now() < deadline {
        // SAFETY: waitpid on our own children with a null status pointer.
        live.retain(|&(pid, _)| unsafe {
            libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) == 0
        });
        std::thread::sleep(POLL_INTERVAL);
    }
    for (pid, _) in live {
        // SAFETY: as above; the blocking waitpid follows a SIGKILL.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    let dirs = match SCRATCH.try_lock() {
        Ok(mut g) => std::mem::take(&mut *g),
        Err(TryLockError::Poisoned(p)) => std::mem::take(&mut *p.into_inner()),
        Err(TryLockError::WouldBlock) => Vec::new(),
    };
    for dir in dirs {
        let _ = fs::remove_dir_all(dir);
    }
}

/// Locks `m`, ignoring poison: a test that panicked while holding it left consistent data.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
