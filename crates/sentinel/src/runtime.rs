//! The running proxy (spec §4.1 startup, §4.8 reload, §4.9 drain): logging, the tokio
//! runtime, the metrics/admin listener, the proxy listeners, the pid file, SIGHUP reloads
//! that swap the snapshot atomically, and the SIGTERM drain. Entered from [`crate::cli`]
//! once the configuration has loaded.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ron_kernel::HealthState;
use ron_kernel::config::ReloadOutcome;
use ron_kernel::logging::{self, LogConfig, LogHandle};
use ron_kernel::shutdown::{DrainConfig, ShutdownCoordinator};
use ron_kernel::signals::{self, Hooks};
use ron_metrics::Metrics;

use crate::admin;
use crate::app_log::{AppLog, AppLogWriter};
use crate::config::{self, Config, ConfigSource, EnvOverrides, Startup};
use crate::health::Checkers;
use crate::listen;
use crate::metrics::SentinelMetrics;
use crate::proxy::Shared;
use crate::signals_ext;
use crate::snapshot::Snapshot;
use crate::tls;

/// Readiness keys (SEN-R47).
pub mod ready {
    /// The configuration loaded and validated.
    pub const CONFIG_LOADED: &str = "config_loaded";
    /// Every listener is bound.
    pub const LISTENERS_BOUND: &str = "listeners_bound";
}

/// Runs the proxy on `startup` until it is drained; returns the process exit code.
pub fn run(startup: Startup) -> ExitCode {
    let level = startup
        .env
        .rust_log
        .clone()
        .unwrap_or_else(|| startup.config.logging.level.clone());
    // SEN-R45: stdout and/or `logging.file`, the file opened before anything binds.
    let (app_log, open_error) = AppLog::new(
        startup.config.logging.stdout,
        startup.config.logging.file.as_deref(),
    );
    let log = match install_logging(level, &app_log) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sentinel-proxy: cannot start logging: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(e) = open_error {
        tracing::error!(path = %e.path.display(), error = %e.error, "cannot open the log file; logging to stdout only");
    }
    raise_nofile(&startup.config);
    for note in &startup.notes {
        log_note(note);
    }
    let workers = match startup.config.server.worker_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n as usize,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("sentinel-worker")
        .enable_all()
        .build();
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::from(1);
        }
    };
    let base_filter = level_for(&startup);
    ExitCode::from(rt.block_on(serve(startup, log, app_log, workers, base_filter)))
}

/// A config note (SEN-R09 `duplicate block merged`, the built-in defaults notice) as a log
/// line whose fields are top-level keys: `"block":"limits","overridden":"max-total-connections"`.
fn log_note(note: &config::Note) {
    let field = |k: &str| {
        note.fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let warn = note.level == tracing::Level::WARN;
    let message = note.message.as_str();
    match (field("block"), field("overridden"), note.fields.len()) {
        (_, _, 0) if warn => tracing::warn!("{message}"),
        (_, _, 0) => tracing::info!("{message}"),
        (Some(block), Some(overridden), 2) if warn => {
            tracing::warn!(block, overridden, "{message}");
        }
        (Some(block), Some(overridden), 2) => tracing::info!(block, overridden, "{message}"),
        _ => {
            let fields = note
                .fields
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            if warn {
                tracing::warn!(fields = %fields, "{message}");
            } else {
                tracing::info!(fields = %fields, "{message}");
            }
        }
    }
}

/// SEN-R22 step 5: the open-files soft limit raised to the hard limit, with WARN `nofile
/// limit low` when it cannot cover every proxy connection, every pooled upstream connection
/// and some slack.
fn raise_nofile(config: &Config) {
    let Some((soft, hard)) = nofile_soft_to_hard() else {
        tracing::warn!("cannot read the open-files limit (RLIMIT_NOFILE)");
        return;
    };
    let pools: u64 = config
        .upstreams
        .iter()
        .filter_map(|u| match &u.kind {
            crate::config::UpstreamKind::Proxy(p) => {
                Some(u64::from(p.pool.max_connections) * p.targets.len() as u64)
            }
            crate::config::UpstreamKind::Static(_) => None,
        })
        .sum();
    let needed = u64::from(config.limits.max_total_connections) + pools + 64;
    if soft < needed {
        tracing::warn!(soft, hard, needed, "nofile limit low");
    }
}

/// Sets RLIMIT_NOFILE's soft limit to its hard limit; the (soft, hard) pair in effect
/// afterwards (the soft limit stays as it was when the kernel refuses, e.g. an infinite
/// hard limit above `fs.nr_open`).
#[allow(unsafe_code)]
fn nofile_soft_to_hard() -> Option<(u64, u64)> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write a stack struct; no pointer is retained.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return None;
        }
        if r.rlim_cur < r.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                r = raised;
            }
        }
    }
    Some((r.rlim_cur, r.rlim_max))
}

/// Installs the global JSON subscriber writing through `app_log`, and the panic hook.
/// `level` already is `RUST_LOG` when that is set (validated by the env overrides).
fn install_logging(level: String, app_log: &Arc<AppLog>) -> Result<LogHandle, String> {
    let config = LogConfig {
        service: "sentinel".into(),
        default_filter: level,
        ..LogConfig::default()
    };
    // ron-kernel's init (RUST_LOG, panic hook, tokio-console under tokio_unstable) with the
    // app log as the writer.
    logging::init_with(config, AppLogWriter(app_log.clone())).map_err(|e| e.to_string())
}

/// Replaces the default (fatal) action of SIGHUP, SIGUSR1 and SIGUSR2 before anything
/// else runs: the handlers tokio installs stay for the life of the process, and the signal
/// task installed later serves these signals from then on.
pub fn guard_early_signals() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    else {
        return;
    };
    rt.block_on(async {
        for kind in [
            SignalKind::hangup(),
            SignalKind::user_defined1(),
            SignalKind::user_defined2(),
        ] {
            let _ = signal(kind);
        }
    });
}

/// The base log filter (SEN-R42): `RUST_LOG` when set at startup, else `logging.level`.
fn level_for(startup: &Startup) -> String {
    startup
        .env
        .rust_log
        .clone()
        .unwrap_or_else(|| startup.config.logging.level.clone())
}

async fn serve(
    startup: Startup,
    log: LogHandle,
    app_log: Arc<AppLog>,
    workers: usize,
    base_filter: String,
) -> u8 {
    let health = HealthState::new();
    for key in [ready::CONFIG_LOADED, ready::LISTENERS_BOUND] {
        let _ = health.register(key);
    }
    let coord = ShutdownCoordinator::global();
    coord.configure(DrainConfig {
        deadline: Duration::from_secs(startup.config.server.graceful_shutdown_timeout_secs),
        grace: Duration::ZERO,
    });
    coord.attach(health.clone());

    let metrics = match Metrics::builder()
        .service("sentinel")
        .amnesia(startup.env.amnesia)
        .build()
    {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "metrics setup failed");
            return 2;
        }
    };
    let sentinel_metrics = match SentinelMetrics::register(metrics.clone()) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            tracing::error!(error = %e, "metric registration failed");
            return 1;
        }
    };
    let Startup {
        config,
        resolved,
        source,
        env,
        ..
    } = startup;
    let config = Arc::new(config);
    let snapshot = Snapshot::build(
        config.clone(),
        |a| resolved.get(a),
        1,
        None,
        &sentinel_metrics,
    );
    let checkers = Checkers::start(&snapshot, &sentinel_metrics);
    log_shadowed(&snapshot);
    tracing::info!(
        path = %source_path(&source).display(),
        generation = 1u64,
        routes = config.routes.len(),
        upstreams = config.upstreams.len(),
        listeners = config.listeners.len() + 1,
        "Configuration loaded"
    );
    app_log.count_errors_in(sentinel_metrics.log_write_errors.clone());
    let shared = Shared::new(snapshot, health.clone(), sentinel_metrics);
    shared.metrics.generation.set(1);
    shared.metrics.last_reload.set(unix_now());
    health.set(ready::CONFIG_LOADED, true);

    let reload_state = Arc::new(ReloadState {
        shared: shared.clone(),
        source,
        env,
        started_with: config.clone(),
        generation: AtomicU64::new(1),
        lock: tokio::sync::Mutex::new(()),
        checkers: parking_lot::Mutex::new(Some(checkers)),
        tls: parking_lot::Mutex::new(Vec::new()),
        levels: parking_lot::Mutex::new(None),
        app_log,
    });
    let mut hooks = Hooks::new(log.clone()).with_reload(signals::reload_hook({
        let st = reload_state.clone();
        move || {
            let st = st.clone();
            async move { st.reload().await }
        }
    }));
    // Sentinel writes its own reload lines; USR1/USR2 have their own meaning (SEN-R42).
    hooks.log_reloads = false;
    let levels = Arc::new(signals_ext::Levels::new(log, base_filter));
    hooks.usr1 = Some(signals::signal_hook({
        let (levels, shared) = (levels.clone(), shared.clone());
        move || {
            let (levels, shared) = (levels.clone(), shared.clone());
            async move { signals_ext::release_memory(&levels, &shared) }
        }
    }));
    hooks.usr2 = Some(signals::signal_hook({
        let levels = levels.clone();
        move || {
            let levels = levels.clone();
            async move { levels.restore() }
        }
    }));
    *reload_state.levels.lock() = Some(levels);
    if let Err(e) = signals::install(coord, hooks) {
        tracing::error!(error = %e, "cannot install signal handlers");
        return 1;
    }

    let mut tasks = Vec::new();
    if config.metrics.enabled {
        let addr = match parse_addr(&config.metrics.address) {
            Some(a) => a,
            None => return bind_failed("admin", &config.metrics.address, "invalid address"),
        };
        // SO_REUSEPORT like the proxy listeners, so a rolling restart can bind beside us.
        match listen::bind_reuseport(addr) {
            Ok(l) => {
                let bound = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
                tracing::info!(listener = "admin", address = %bound, protocol = "http", "listening");
                tasks.push(tokio::spawn(admin::serve(
                    shared.clone(),
                    metrics.clone(),
                    l,
                )));
            }
            Err(e) => return bind_failed("admin", &config.metrics.address, &e.to_string()),
        }
    }
    let mut proxies = Vec::new();
    let mut all = vec![("main".to_owned(), config.server.listen.clone(), false)];
    for l in &config.listeners {
        all.push((
            l.name.clone(),
            l.address.clone(),
            l.protocol == crate::config::ListenerProtocol::Https,
        ));
    }
    let mut tls_certs = Vec::new();
    for (name, address, https) in all {
        let tls = match config
            .listeners
            .iter()
            .find(|l| l.name == name)
            .and_then(|l| l.tls.as_ref())
        {
            Some(cfg) if https => match tls::acceptor(cfg) {
                Ok((acceptor, certs)) => {
                    tls_certs.push((name.clone(), certs));
                    Some(acceptor)
                }
                Err(e) => return bind_failed(&name, &address, &e),
            },
            _ => None,
        };
        let Some(addr) = parse_addr(&address) else {
            return bind_failed(&name, &address, "invalid address");
        };
        match listen::bind_reuseport(addr) {
            Ok(l) => {
                let bound = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
                let protocol = if https { "https" } else { "http" };
                tracing::info!(listener = %name, address = %bound, protocol, "listening");
                proxies.push((l, name, tls));
            }
            Err(e) => return bind_failed(&name, &address, &e.to_string()),
        }
    }
    *reload_state.tls.lock() = tls_certs;
    health.set(ready::LISTENERS_BOUND, true);
    let pid_file = config.server.pid_file.clone();
    if let Some(p) = &pid_file
        && let Err(e) = write_pid_file(p)
    {
        tracing::error!(path = %p.display(), error = %e, "cannot write the pid file");
        return 1;
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        pid = std::process::id(),
        workers,
        "sentinel-proxy started"
    );
    tokio::spawn(crate::ratelimit::prune_loop(shared.clone()));
    let mut accept = Vec::new();
    for (l, name, tls) in proxies {
        accept.push(tokio::spawn(listen::serve(
            shared.clone(),
            l,
            Arc::from(name.as_str()),
            tls,
        )));
    }
    let mut token = coord.token();
    token.draining().await;
    shared.draining.store(true, Ordering::Release);
    if let Some(c) = reload_state.checkers.lock().take() {
        c.stop();
    }
    let started = Instant::now();
    tracing::info!(
        in_flight = shared.in_flight.load(Ordering::Relaxed),
        deadline_secs = config.server.graceful_shutdown_timeout_secs,
        "shutdown started"
    );
    for a in accept {
        let _ = a.await;
    }
    let outcome = coord.wait().await;
    for t in tasks {
        let _ = t.await;
    }
    if let Some(p) = &pid_file {
        remove_own_pid_file(p);
    }
    tracing::info!(
        drained = outcome.clean,
        aborted = outcome.inflight_left,
        duration_ms = started.elapsed().as_millis() as u64,
        "shutdown complete"
    );
    if coord.was_forced() { 1 } else { 0 }
}

fn bind_failed(listener: &str, addr: &str, error: &str) -> u8 {
    tracing::error!("failed to bind {listener} listener on {addr}: {error}");
    1
}

fn parse_addr(s: &str) -> Option<SocketAddr> {
    s.parse().ok()
}

fn source_path(source: &ConfigSource) -> &Path {
    match source {
        ConfigSource::File(p) => p,
        ConfigSource::BuiltInDefaults { default_path } => default_path,
    }
}

fn log_shadowed(snapshot: &Snapshot) {
    for s in &snapshot.shadowed {
        tracing::warn!(route = %s.route, by = %s.by, "route shadowed");
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Writes `<pid>\n` atomically (temp file + rename), overwriting a stale file (SEN-R41).
fn write_pid_file(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    if let Ok(old) = std::fs::read_to_string(path)
        && let Ok(pid) = old.trim().parse::<i32>()
        && pid_alive(pid)
    {
        tracing::info!(path = %path.display(), pid, "pid file names a running process; overwriting");
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, format!("{}\n", std::process::id()))?;
    std::fs::rename(&tmp, path)
}

fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes the pid file only if it still holds our pid (a newer instance may own it).
fn remove_own_pid_file(path: &Path) {
    let ours = std::process::id().to_string();
    if std::fs::read_to_string(path).is_ok_and(|c| c.trim() == ours) {
        let _ = std::fs::remove_file(path);
    }
}

/// What a SIGHUP reload needs.
struct ReloadState {
    shared: Arc<Shared>,
    source: ConfigSource,
    env: EnvOverrides,
    /// The config the process started with: restart-only keys keep these values.
    started_with: Arc<Config>,
    generation: AtomicU64,
    lock: tokio::sync::Mutex<()>,
    /// The active checkers of the running snapshot.
    checkers: parking_lot::Mutex<Option<Checkers>>,
    /// Certificate handles of the https listeners, by listener name.
    tls: parking_lot::Mutex<Vec<(String, Arc<tls::TlsCerts>)>>,
    /// The log filter state (reloads apply `logging.level` through it).
    levels: parking_lot::Mutex<Option<Arc<signals_ext::Levels>>>,
    /// The app log destinations (reloads reopen `logging.file`).
    app_log: Arc<AppLog>,
}

impl ReloadState {
    /// SEN-R36: load, validate and resolve off the runtime, build the next snapshot
    /// carrying state over, swap it in, then log and count the outcome.
    async fn reload(&self) -> ReloadOutcome {
        let _serial = self.lock.lock().await;
        let started = Instant::now();
        let (source, env) = (self.source.clone(), self.env.clone());
        let loaded = tokio::task::spawn_blocking(move || config::load(&source, &env)).await;
        let m = &self.shared.metrics;
        let startup = match loaded {
            Ok(Ok(s)) => s,
            Ok(Err(errors)) => {
                m.reloads.with_label_values(&["failure"]).inc();
                tracing::error!(errors = %errors, "Configuration reload failed: {}", errors.first_line());
                return ReloadOutcome::Unchanged;
            }
            Err(e) => {
                m.reloads.with_label_values(&["failure"]).inc();
                tracing::error!("Configuration reload failed: {e}");
                return ReloadOutcome::Unchanged;
            }
        };
        for note in &startup.notes {
            log_note(note);
        }
        let restart = restart_required(&self.started_with, &startup.config);
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let prev = self.shared.snapshot.load_full();
        let config = Arc::new(startup.config);
        let next = Snapshot::build(
            config.clone(),
            |a| startup.resolved.get(a),
            generation,
            Some(&prev),
            &self.shared.metrics,
        );
        log_shadowed(&next);
        // New handshakes on https listeners see the re-read certificates (SEN-R38); the
        // load step already checked that every pair loads and matches.
        for (name, certs) in self.tls.lock().iter() {
            if let Some(cfg) = config
                .listeners
                .iter()
                .find(|l| &l.name == name)
                .and_then(|l| l.tls.as_ref())
                && let Err(e) = certs.reload(cfg)
            {
                tracing::warn!(listener = %name, error = %e, "certificate reload failed; keeping the old one");
            }
        }
        self.shared
            .access_log
            .reconfigure(&config.logging.access_log);
        if let Err(e) = self.app_log.reopen(config.logging.file.as_deref()) {
            tracing::error!(path = %e.path.display(), error = %e.error, "cannot open the log file; logging to stdout only");
        }
        if self.env.rust_log.is_none()
            && let Some(levels) = self.levels.lock().as_ref()
        {
            levels.set_base(&config.logging.level);
        }
        // Checkers follow the snapshot; target state (thresholds, rings) carries over.
        let checkers = Checkers::start(&next, &self.shared.metrics);
        if let Some(old) = self.checkers.lock().replace(checkers) {
            old.stop();
        }
        self.shared.snapshot.store(Arc::new(next));
        m.reloads.with_label_values(&["success"]).inc();
        m.generation.set(generation as i64);
        m.last_reload.set(unix_now());
        if !restart.is_empty() {
            tracing::warn!(restart_required = %restart.join(","), "configuration changes need a restart");
        }
        tracing::info!(
            generation,
            routes = config.routes.len(),
            upstreams = config.upstreams.len(),
            duration_ms = started.elapsed().as_millis() as u64,
            restart_required = %restart.join(","),
            "Configuration reload completed"
        );
        ReloadOutcome::Unchanged
    }
}

/// Restart-only keys (SEN-R38) whose value differs between the running and the new config.
fn restart_required(running: &Config, next: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let (a, b) = (&running.server, &next.server);
    if a.listen != b.listen {
        keys.push("server.listen");
    }
    if a.worker_threads != b.worker_threads {
        keys.push("server.worker-threads");
    }
    if a.pid_file != b.pid_file {
        keys.push("server.pid-file");
    }
    let listeners = |c: &Config| -> Vec<(String, String, crate::config::ListenerProtocol)> {
        c.listeners
            .iter()
            .map(|l| (l.name.clone(), l.address.clone(), l.protocol))
            .collect()
    };
    if listeners(running) != listeners(next) {
        keys.push("listeners");
    }
    if running.metrics != next.metrics {
        keys.push("metrics");
    }
    if running.logging.format != next.logging.format {
        keys.push("logging.format");
    }
    if running.logging.stdout != next.logging.stdout {
        keys.push("logging.stdout");
    }
    keys
}
