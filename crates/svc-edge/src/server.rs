//! Listeners and lifecycle (spec §4.1, §4.13, §4.14): metrics listener first, then the API
//! listener, each logging `listening`; packs mounted on the blocking pool; readiness and
//! `ready_changed`; SIGHUP reload; SIGTERM drain, then exit 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use ron_kernel::HealthState;
use ron_kernel::config::{ConfigError, ReloadOutcome, ReloadPolicy};
use ron_kernel::logging::LogHandle;
use ron_kernel::shutdown::{DrainConfig, ShutdownCoordinator};
use ron_kernel::signals::{self, Hooks};
use ron_metrics::{Metrics, ServeOptions};
use tokio::net::TcpListener;

use crate::app::{App, ready};
use crate::cas::Cas;
use crate::config::{self, EdgeConfig, Mode};
use crate::conn_io::DeadlineIo;
use crate::fill::Filler;
use crate::fill::store::Store;
use crate::http::{self, Probes};
use crate::metrics::{EdgeMetrics, LATENCY_BUCKETS};
use crate::ramcache::RamCache;

/// Largest request head accepted; bigger heads get hyper's bare 431.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Where the config came from, so SIGHUP can load it again.
#[derive(Clone)]
pub struct ConfigSource {
    /// `--config FILE`.
    pub file: Option<PathBuf>,
    /// Flags as (key path, raw value, flag name).
    pub flags: Vec<(String, String, String)>,
}

/// Runs the server until drained; returns the process exit code.
pub async fn run(cfg: EdgeConfig, source: ConfigSource, log: LogHandle) -> i32 {
    let health = HealthState::new();
    for key in [
        ready::CONFIG_LOADED,
        ready::PACKS_VERIFIED,
        ready::ALLOW_LIST_PARSED,
        ready::AMNESIA_OK,
    ] {
        let _ = health.register(key);
    }
    let coord = ShutdownCoordinator::global();
    coord.configure(DrainConfig {
        deadline: Duration::from_secs(u64::from(cfg.drain_secs)),
        grace: Duration::ZERO,
    });
    coord.attach(health.clone());

    let mut builder = Metrics::builder()
        .service("svc-edge")
        .amnesia(cfg.security.amnesia)
        .request_buckets(LATENCY_BUCKETS.to_vec());
    if let Some(i) = &cfg.instance {
        builder = builder.instance(i.clone());
    }
    let metrics = match builder.build() {
        Ok(m) => m,
        Err(e) => ron_kernel::config::exit_on_error("svc-edge", &e),
    };
    let hosts: Vec<String> = cfg
        .edge
        .allow
        .iter()
        .filter_map(|a| config::parse_allow(a).ok().map(|(h, _)| h))
        .collect();
    let edge_metrics = match EdgeMetrics::register(metrics.clone(), &hosts) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(event = "startup", error = %e, "metric registration failed");
            return 1;
        }
    };
    let store = open_store(&cfg, &edge_metrics);
    let filler = match Filler::new(&cfg, &edge_metrics, store) {
        Ok(f) => f,
        Err(e) => {
            // Validation already loaded ca_file; it changed on disk since.
            tracing::error!(event = "startup", error = %e, "live fill client failed");
            return 1;
        }
    };
    if cfg.edge.cas_dir.is_some() {
        let _ = health.register(ready::CAS_REACHABLE);
    }
    let app = App::new(cfg.clone(), edge_metrics, health.clone(), filler);
    let reload_app = app.clone();
    let reload_source = source.clone();
    let hooks = Hooks::new(log).with_reload(signals::reload_hook(move || {
        let app = reload_app.clone();
        let source = reload_source.clone();
        async move { reload(app, source).await }
    }));
    if let Err(e) = signals::install(coord, hooks) {
        tracing::error!(event = "startup", error = %e, "cannot install signal handlers");
        return 1;
    }
    tracing::info!(
        event = "startup",
        mode = cfg.edge.mode.as_str(),
        bind_addr = %cfg.bind_addr,
        metrics_addr = %cfg.metrics_addr,
        amnesia = cfg.security.amnesia,
        packs = ?cfg.edge.packs,
        version = env!("CARGO_PKG_VERSION"),
        "startup"
    );

    let metrics_opts = ServeOptions::default().shutdown(coord.token());
    let (metrics_task, metrics_bound) = match metrics
        .clone()
        .serve_with(cfg.metrics_addr, health.clone(), metrics_opts)
        .await
    {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(event = "startup", addr = %cfg.metrics_addr, error = %e, "metrics listener bind failed");
            return 1;
        }
    };
    tracing::info!(event = "listening", listener = "metrics", addr = %metrics_bound, "listening");
    let api = match TcpListener::bind(cfg.bind_addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(event = "startup", addr = %cfg.bind_addr, error = %e, "API listener bind failed");
            return 1;
        }
    };
    let api_addr = api.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(event = "listening", listener = "api", addr = %api_addr, "listening");
    health.set(ready::CONFIG_LOADED, true);
    // Validation already refused an unparseable or (in live mode) empty allow-list, and
    // amnesia together with a persistence path.
    health.set(ready::ALLOW_LIST_PARSED, true);
    health.set(ready::AMNESIA_OK, true);
    spawn_readiness_watch(app.clone());
    spawn_pressure_sampler(app.clone());
    spawn_cas_check(app.clone());
    sync_maintenance(&app, &cfg);

    let mount_app = app.clone();
    let mount_cfg = cfg.clone();
    tokio::task::spawn_blocking(move || mount_app.mount_packs(&mount_cfg));

    let probes = Arc::new(Probes::new(&app));
    accept_loop(app.clone(), probes, api).await;
    let outcome = coord.wait().await;
    let _ = metrics_task.await;
    tracing::info!(
        event = "shutdown",
        aborted = outcome.inflight_left,
        clean = outcome.clean,
        elapsed_ms = outcome.elapsed.as_millis() as u64,
        "shutdown"
    );
    0
}

/// Accepts API connections until draining begins, then lets open connections finish.
async fn accept_loop(app: Arc<App>, probes: Arc<Probes>, listener: TcpListener) {
    let coord = ShutdownCoordinator::global();
    let mut token = coord.token();
    loop {
        let (stream, peer) = tokio::select! {
            _ = token.draining() => break,
            a = listener.accept() => match a {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(event = "accept", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        spawn_connection(app.clone(), probes.clone(), stream, peer);
    }
    app.draining.store(true, Ordering::Release);
    drop(listener);
}

fn spawn_connection(
    app: Arc<App>,
    probes: Arc<Probes>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    let timeout = Duration::from_secs(u64::from(app.config.load().ingress.timeout_secs));
    tokio::spawn(async move {
        let coord = ShutdownCoordinator::global();
        let mut token = coord.token();
        let svc_app = app.clone();
        let svc = service_fn(move |req| {
            // The guard lives inside the future, so the drain waits for the response.
            let guard = coord.inflight();
            let fut = http::handle(svc_app.clone(), probes.clone(), req, peer);
            async move {
                let _guard = guard;
                fut.await
            }
        });
        // Head and idle deadlines are DeadlineIo's: hyper's header timer would also run
        // over idle keep-alive time.
        let client_header = app
            .metrics
            .io_timeouts
            .with_label_values(&["client_header"]);
        let io = DeadlineIo::new(stream, timeout, client_header);
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_buf_size(MAX_HEAD_BYTES)
            .keep_alive(true)
            .serve_connection(TokioIo::new(io), svc);
        tokio::pin!(conn);
        let _ = tokio::select! {
            r = conn.as_mut() => r,
            _ = token.draining() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
    });
}

/// Logs `ready_changed` on every readiness flip and keeps `edge_ready` current.
fn spawn_readiness_watch(app: Arc<App>) {
    let mut rx = app.health.subscribe();
    tokio::spawn(async move {
        loop {
            let state = *rx.borrow_and_update();
            app.metrics.ready.set(i64::from(state.ready));
            let missing = app.health.snapshot().missing;
            tracing::info!(event = "ready_changed", ready = u8::from(state.ready), missing = ?missing, "ready_changed");
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
}

/// How often inflight pressure is sampled.
pub const PRESSURE_SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// How long pressure must stay clear before `under_pressure` clears.
pub const PRESSURE_CLEAR_AFTER: Duration = Duration::from_secs(1);

/// Raises `under_pressure` while inflight ≥ 90% of `max_inflight` or the fill queue is
/// full; clears it only after
/// one second continuously below, so readiness does not flap with each request.
fn spawn_pressure_sampler(app: Arc<App>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRESSURE_SAMPLE_EVERY);
        let mut last_pressure: Option<tokio::time::Instant> = None;
        loop {
            tick.tick().await;
            let held = app.inflight.held();
            let max = app.inflight.max().max(1);
            let now = tokio::time::Instant::now();
            if held * 10 >= max * 9 || app.filler.queue_full() {
                last_pressure = Some(now);
                app.health.degrade(ready::UNDER_PRESSURE);
            } else if last_pressure.is_some_and(|t| now.duration_since(t) >= PRESSURE_CLEAR_AFTER) {
                last_pressure = None;
                app.health.restore(ready::UNDER_PRESSURE);
            }
        }
    });
}

/// The store fills land in and `/cas/b3` reads: the RAM cache under amnesia, the CAS when
/// `cas_dir` is set, and otherwise an empty RAM cache (offline without a CAS has nothing
/// stored; `cas_dir` needs a restart, so a reload into live mode fills RAM until then).
/// Live mode opens the CAS writable (creating its subdirectories); offline mode opens it
/// writable when it can, so quarantine and a later reload into live mode work, and
/// read-only otherwise. A CAS that cannot be opened shows up as `cas_reachable` failing.
fn open_store(cfg: &EdgeConfig, metrics: &EdgeMetrics) -> Store {
    let ram = || Store::Ram(Arc::new(RamCache::new(cfg.edge.ram_cache_bytes)));
    let Some(dir) = cfg
        .edge
        .cas_dir
        .as_deref()
        .filter(|_| !cfg.security.amnesia)
    else {
        return ram();
    };
    let cas = match Cas::open(dir, true) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(event = "startup", cas_dir = %dir.display(), error = %e, "CAS not writable; opened read-only");
            // Opening read-only touches nothing, so it cannot fail.
            match Cas::open(dir, false) {
                Ok(c) => c,
                Err(_) => return ram(),
            }
        }
    };
    Store::Cas(cas.with_metrics(metrics))
}

/// How often `cas_reachable` is checked, and how long one check may take.
pub const CAS_CHECK_EVERY: Duration = Duration::from_secs(10);
/// Budget of one `cas_reachable` check; a slower disk counts as unreachable.
pub const CAS_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Keeps `cas_reachable` current: a readable directory, and in live mode writable with
/// room for two objects of `max_object_bytes`.
fn spawn_cas_check(app: Arc<App>) {
    let Store::Cas(cas) = app.filler.store().clone() else {
        return;
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CAS_CHECK_EVERY);
        loop {
            tick.tick().await;
            let cfg = app.config.load_full();
            let live = cfg.edge.mode == Mode::Live;
            let min_free = cfg.edge.max_object_bytes.saturating_mul(2);
            let ok = tokio::time::timeout(CAS_CHECK_TIMEOUT, cas.reachable(live, min_free))
                .await
                .unwrap_or(false);
            app.health.set(ready::CAS_REACHABLE, ok);
        }
    });
}

fn sync_maintenance(app: &App, cfg: &EdgeConfig) {
    if cfg.maintenance {
        app.health.degrade(ready::MAINTENANCE);
    } else {
        app.health.restore(ready::MAINTENANCE);
    }
}

/// SIGHUP: re-load and validate, re-mount packs, swap atomically, resize caps in place.
/// The kernel's signal task writes the one `config_reload` line from the outcome.
async fn reload(app: Arc<App>, source: ConfigSource) -> ReloadOutcome {
    let loader = config::loader(source.file.clone(), source.flags.clone());
    let cell = ron_kernel::config::ConfigCell::new((*app.config.load_full()).clone());
    let outcome = cell.reload(&loader, ReloadPolicy::KeepOld);
    match &outcome {
        ReloadOutcome::Applied { .. } | ReloadOutcome::Unchanged => {
            let new = cell.get();
            if let Err(e) = app.filler.reconfigure(&new) {
                // The CA file changed between validation and now: keep everything old.
                app.metrics.reloads.with_label_values(&["error"]).inc();
                let shown = new.edge.ca_file.as_ref().map(|p| p.display().to_string());
                return ReloadOutcome::Invalid(ConfigError::new(
                    "edge.ca_file",
                    shown.unwrap_or_default(),
                    "reload",
                    e.to_string(),
                ));
            }
            let mount_app = app.clone();
            let mount_cfg = (*new).clone();
            let _ = tokio::task::spawn_blocking(move || mount_app.mount_packs(&mount_cfg)).await;
            app.rate.set_limit(new.ingress.rps_limit);
            app.inflight.resize(new.ingress.max_inflight);
            app.metrics
                .inflight_limit
                .set(i64::from(new.ingress.max_inflight));
            sync_maintenance(&app, &new);
            app.pack_cache_control
                .store(Arc::new(crate::app::pack_cache_control(&new)));
            app.live_cache_control
                .store(Arc::new(crate::app::live_cache_control(&new)));
            app.config.store(new);
            app.metrics.reloads.with_label_values(&["ok"]).inc();
        }
        ReloadOutcome::Invalid(_) | ReloadOutcome::Rejected { .. } => {
            app.metrics.reloads.with_label_values(&["error"]).inc();
        }
    }
    outcome
}
