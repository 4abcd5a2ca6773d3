//! Real PostgreSQL 15 servers for tests, from Debian's `postgresql-15` binaries.
//!
//! [`PgServer::shared`] starts one server per test process, on first use; tests isolate
//! themselves with [`PgServer::fresh_database`]. [`PgServer::start_private`] starts a server
//! of the test's own, for tests that stop and restart it.
//!
//! Each server gets a fresh cluster (`initdb -A trust --no-sync`, UTF8, locale C) in a scratch
//! directory, listens on 127.0.0.1 on a free port and on a Unix socket in that directory, and
//! runs with `fsync=off`, `max_connections=200`, `shared_buffers=32MB`. The Debian-packaged
//! cluster and service are never used. PostgreSQL refuses to run as root, so a root test
//! process runs `initdb` and `postgres` as the `postgres` account the package creates and
//! hands it the scratch directory; any other user runs them as itself. Lifetime and cleanup
//! are those of every server here (see the `daemon` module): dead with the test process,
//! directory removed at exit.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::daemon::{self, Daemon, Scratch};

/// Where Debian's `postgresql-15` and `postgresql-client-15` put the server and client tools.
pub const PG_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// The superuser `initdb` creates, and the system account a root test process runs the
/// server as.
pub const PG_USER: &str = "postgres";
/// The programs used from [`PG_BIN_DIR`].
const PG_TOOLS: [&str; 4] = ["initdb", "postgres", "pg_isready", "psql"];

/// A running PostgreSQL server on 127.0.0.1, stopped and deleted when dropped.
pub struct PgServer {
    // Fields drop in order: the server stops before its directory is removed.
    daemon: Daemon,
    scratch: Scratch,
    account: Option<(u32, u32)>,
    port: u16,
    next_db: AtomicU32,
}

impl PgServer {
    /// The test process's shared server, started on first use; `None` after a
    /// "skipping: postgres not installed" notice when the binaries are missing (a panic
    /// instead when `RON_REQUIRE_EXTERNAL_TOOLS` is set). Never stop it: other tests use it;
    /// take a [`PgServer::fresh_database`] each.
    pub fn shared() -> Option<&'static PgServer> {
        static SHARED: OnceLock<PgServer> = OnceLock::new();
        installed()?;
        Some(SHARED.get_or_init(PgServer::launch))
    }

    /// A server for this test alone, which it may [`stop`](PgServer::stop) and
    /// [`restart`](PgServer::restart); `None` as for [`PgServer::shared`].
    pub fn start_private() -> Option<PgServer> {
        installed()?;
        Some(PgServer::launch())
    }

    /// Creates a database with a name unique on this server and returns its URL.
    pub fn fresh_database(&self) -> String {
        let name = format!("test_{}", self.next_db.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// `postgres://postgres@127.0.0.1:<port>/<db>`, for sqlx and for `psql "$URL"`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `sql` in database `db` with `psql -X -q -A -t -v ON_ERROR_STOP=1` over the Unix
    /// socket and returns its output without the final newline: one line per row, columns
    /// separated by `|`, no command tags. Panics with psql's stderr when it fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(Path::new(PG_BIN_DIR).join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.socket_dir())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                PG_USER,
                "-d",
                db,
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run psql: {e}"));
        assert!(
            out.status.success(),
            "psql -d {db} -c {sql:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
        String::from_utf8_lossy(&out.stdout)
            .trim_end_matches('\n')
            .to_owned()
    }

    /// Fast shutdown (SIGINT, what `pg_ctl stop -m fast` sends): sessions are ended, then the
    /// server exits and its port refuses connections. Data stays for [`PgServer::restart`].
    pub fn stop(&self) {
        self.daemon.stop();
    }

    /// Starts the stopped server again on the same port with the same data; panics when the
    /// port was taken meanwhile or the server is already running.
    pub fn restart(&self) {
        self.daemon
            .start(self.server_command(self.port), || self.ready(self.port))
            .unwrap_or_else(|msg| panic!("restart on port {}: {msg}", self.port));
    }

    fn launch() -> PgServer {
        let account = server_account();
        let scratch = Scratch::new("pg");
        let socket_dir = scratch.path().join("sock");
        std::fs::create_dir(&socket_dir)
            .unwrap_or_else(|e| panic!("create {}: {e}", socket_dir.display()));
        if let Some((uid, gid)) = account {
            for dir in [scratch.path(), &socket_dir] {
                std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("chown {} to {PG_USER}: {e}", dir.display()));
            }
        }
        let log = scratch.path().join("postgres.log");
        let mut server = PgServer {
            daemon: Daemon::new("postgres", log, libc::SIGINT),
            scratch,
            account,
            port: 0,
            next_db: AtomicU32::new(0),
        };
        server.initdb();
        server.port = server.daemon.start_on_free_port(
            |port| server.server_command(port),
            |port| server.ready(port),
        );
        server
    }

    fn initdb(&self) {
        let mut cmd = self.as_server_user("initdb");
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-A", "trust", "-U", PG_USER, "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = daemon::spawn(cmd)
            .and_then(|c| c.wait_with_output())
            .unwrap_or_else(|e| panic!("run initdb: {e}"));
        assert!(
            out.status.success(),
            "initdb -D {} failed ({}):\n{}{}",
            self.data_dir().display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn server_command(&self, port: u16) -> Command {
        let mut cmd = self.as_server_user("postgres");
        cmd.arg("-D").arg(self.data_dir());
        let mut set = |key: &str, value: &str| {
            cmd.arg("-c").arg(format!("{key}={value}"));
        };
        set("port", &port.to_string());
        set("listen_addresses", "127.0.0.1");
        set(
            "unix_socket_directories",
            &self.socket_dir().to_string_lossy(),
        );
        set("fsync", "off");
        set("max_connections", "200");
        set("shared_buffers", "32MB");
        cmd
    }

    /// Probes the private Unix socket rather than the TCP port: a server of someone else's
    /// that grabbed the port cannot answer there, and PostgreSQL opens the socket only after
    /// binding TCP (failing to bind it is fatal).
    fn ready(&self, port: u16) -> bool {
        Command::new(Path::new(PG_BIN_DIR).join("pg_isready"))
            .args(["-q", "-t", "1", "-U", PG_USER, "-d", "postgres", "-h"])
            .arg(self.socket_dir())
            .args(["-p", &port.to_string()])
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn as_server_user(&self, program: &str) -> Command {
        let mut cmd = Command::new(Path::new(PG_BIN_DIR).join(program));
        // The account may not be able to enter the test's working directory.
        cmd.current_dir(self.scratch.path());
        if let Some((uid, gid)) = self.account {
            // std also drops supplementary groups when root changes uid.
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn data_dir(&self) -> PathBuf {
        self.scratch.path().join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.scratch.path().join("sock")
    }
}

/// Removes the System V shared-memory segment that a killed server with its scratch directory
/// in `scratch` left behind: PostgreSQL's small interlock segment, which only its own shutdown
/// or a restart in the same data directory would remove. `postmaster.pid` names it (line 7:
/// key and id); it is removed only if no process is attached and the key still matches.
pub(crate) fn release_stale_shmem(scratch: &Path) {
    let Ok(pid_file) = std::fs::read_to_string(scratch.join("data/postmaster.pid")) else {
        return;
    };
    let mut ids = pid_file.lines().nth(6).unwrap_or("").split_whitespace();
    let (Some(Ok(key)), Some(Ok(id))) = (
        ids.next().map(str::parse::<libc::key_t>),
        ids.next().map(str::parse::<libc::c_int>),
    ) else {
        return;
    };
    // SAFETY: an all-zero shmid_ds is a valid out-parameter.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT writes into ds, IPC_RMID takes no buffer; a stale id only fails.
    unsafe {
        if libc::shmctl(id, libc::IPC_STAT, &mut ds) == 0
            && ds.shm_nattch == 0
            && ds.shm_perm.__key == key
        {
            libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
        }
    }
}

/// `Some(())` when every program of [`PG_TOOLS`] is installed; otherwise the missing-tool
/// convention of [`crate::not_installed`].
fn installed() -> Option<()> {
    let dir = Path::new(PG_BIN_DIR);
    if PG_TOOLS.iter().all(|t| dir.join(t).is_file()) {
        Some(())
    } else {
        crate::not_installed("postgres", "postgresql-15 postgresql-client-15")
    }
}

/// The uid and gid to run the server as: [`PG_USER`]'s when this process is root, `None`
/// (this process's own) otherwise.
fn server_account() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let account = user_ids(PG_USER);
    assert!(
        account.is_some(),
        "running as root, and PostgreSQL refuses to; the `{PG_USER}` account it should run as \
         does not exist. Install postgresql-15 (it creates the account) or run the tests as a \
         non-root user"
    );
    account
}

/// The uid and gid of account `name`, from the system's user database.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let name = CString::new(name).ok()?;
    // SAFETY: an all-zero passwd (null pointers, zero ids) is a valid out-parameter.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and buf's length is passed with it.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    (rc == 0 && !found.is_null()).then_some((pwd.pw_uid, pwd.pw_gid))
}
