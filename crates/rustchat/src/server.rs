//! Process lifecycle (CHAT-R12): bind first, then connect and migrate while `/live` answers
//! 200 and `/ready` 503, then serve everything; SIGTERM/SIGINT drain and exit 0.
//!
//! The listener serves through a router slot that is swapped once the database is ready,
//! so probes work during migrations and a database that is down at start (decision 14)
//! only delays readiness: the connect loop retries with backoff 1 -> 30 s, logging ERROR
//! `database unreachable` per attempt.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::Request;
use axum::response::Response;
use futures_util::future::BoxFuture;
use tower::{Service, ServiceExt};

use crate::api::{self, Observe};
use crate::auth::jwt::JwtKeys;
use crate::config::{Config, DatabaseUrl, Loaded, SqliteSynchronous};
use crate::health::Readiness;
use crate::metrics::ChatMetrics;
use crate::state::{AppState, Inner};
use crate::store::migrate::MigrationReport;
use crate::store::{Backend, Store, StoreError};
use ron_kernel::{BreakerConfig, CircuitBreaker};

/// After SIGTERM, how long `/ready` answers 503 while the listener still accepts, so a
/// load balancer polling readiness sees the node leave before connections are refused.
pub const READY_DRAIN_WINDOW: Duration = Duration::from_secs(1);
/// First and longest pause between database connection attempts at start.
pub const CONNECT_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));
/// How often pool use is sampled for the saturation gauge.
pub const POOL_SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Samples averaged by the saturation gauge.
pub const POOL_SAMPLES: usize = 10;

/// Why `run` stopped without a clean drain.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The listen address could not be bound (exit 1).
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Startup failed for another reason (exit 1).
    #[error("{0}")]
    Startup(String),
}

/// Forwards every request to the router currently in the slot.
#[derive(Clone)]
struct Slot(Arc<ArcSwap<Router>>);

impl Service<Request> for Slot {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: Request) -> Self::Future {
        let router = self.0.load_full();
        Box::pin(async move { Router::clone(&router).oneshot(req).await })
    }
}

/// Opens the configured database and applies migrations (used by the server and by
/// `--migrate-only`).
pub async fn open_store(
    cfg: &Config,
    breaker: Arc<CircuitBreaker>,
) -> Result<(Store, MigrationReport), StoreError> {
    match &cfg.database_url {
        #[cfg(feature = "sqlite")]
        DatabaseUrl::Sqlite { path, memory, .. } => {
            let opts = crate::store::sqlite::SqliteOptions {
                path: path.clone(),
                memory: *memory,
                readers: cfg.effective_pool_max(),
                synchronous_full: cfg.db.sqlite_synchronous == SqliteSynchronous::Full,
                acquire_timeout: Duration::from_millis(u64::from(cfg.db_pool.acquire_timeout_ms)),
                breaker,
            };
            let (s, r) = crate::store::sqlite::SqliteStore::open(&opts).await?;
            Ok((Store::Sqlite(s), r))
        }
        #[cfg(feature = "postgres")]
        DatabaseUrl::Postgres { url } => {
            let p = &cfg.db_pool;
            let opts = crate::store::postgres::PgOptions {
                url: url.clone(),
                max_connections: cfg.effective_pool_max(),
                min_connections: p.min_connections,
                acquire_timeout: Duration::from_millis(u64::from(p.acquire_timeout_ms)),
                idle_timeout: Duration::from_secs(u64::from(p.idle_timeout_seconds)),
                max_lifetime: Duration::from_secs(u64::from(p.max_lifetime_seconds)),
                statement_timeout: Duration::from_millis(u64::from(cfg.db.statement_timeout_ms)),
                breaker,
            };
            let (s, r) = crate::store::postgres::PgStore::open(&opts).await?;
            Ok((Store::Postgres(s), r))
        }
        #[allow(unreachable_patterns)]
        _ => Err(StoreError::Other("database backend not compiled in".into())),
    }
}

fn backend_of(cfg: &Config) -> Backend {
    match cfg.database_url {
        DatabaseUrl::Sqlite { .. } => Backend::Sqlite,
        DatabaseUrl::Postgres { .. } => Backend::Postgres,
    }
}

/// Consecutive connection failures that open the `database` breaker (CHAT-R29).
pub const DB_BREAKER_FAILURES: u32 = 5;
/// How long the open `database` breaker fails fast before probing.
pub const DB_BREAKER_OPEN: Duration = Duration::from_secs(2);

/// The `database` breaker; `metrics` (when given) sees every transition.
pub fn db_breaker(metrics: Option<Arc<ChatMetrics>>) -> Arc<CircuitBreaker> {
    let cfg = BreakerConfig {
        failure_threshold: DB_BREAKER_FAILURES,
        open_for: DB_BREAKER_OPEN,
        half_open_max_probes: 1,
        success_threshold: 1,
    };
    counted_breaker("database", cfg, metrics)
}

/// A breaker whose transitions (besides the WARN `circuit breaker state changed` line)
/// feed `rustchat_circuit_breaker_state_changes_total` and `rustchat_circuit_breaker_state`.
pub fn counted_breaker(
    name: &'static str,
    cfg: BreakerConfig,
    metrics: Option<Arc<ChatMetrics>>,
) -> Arc<CircuitBreaker> {
    let mut b = CircuitBreaker::new(name, cfg);
    if let Some(m) = metrics {
        b = b.on_transition(ChatMetrics::breaker_hook(&m, name));
    }
    Arc::new(b)
}

/// Raises the soft open-files limit to the hard limit (each WebSocket is a descriptor).
fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit on a stack struct; no pointers retained.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// Current in-use/max over all pools (the `/stats` value).
pub fn saturation_now(store: &Store) -> f64 {
    store
        .pool_samples()
        .iter()
        .map(|s| f64::from(s.in_use) / f64::from(s.max.max(1)))
        .fold(0.0, f64::max)
}

/// Writes the connection gauges from a fresh sample.
pub fn record_pool(m: &ChatMetrics, store: &Store) {
    for s in store.pool_samples() {
        m.pool_connections
            .with_label_values(&[s.pool, "idle"])
            .set(i64::from(s.idle));
        m.pool_connections
            .with_label_values(&[s.pool, "in_use"])
            .set(i64::from(s.in_use));
    }
}

async fn sample_pools(m: Arc<ChatMetrics>, store: Store) {
    let mut windows: std::collections::HashMap<&'static str, VecDeque<f64>> = Default::default();
    let mut tick = tokio::time::interval(POOL_SAMPLE_EVERY);
    loop {
        tick.tick().await;
        for s in store.pool_samples() {
            let w = windows.entry(s.pool).or_default();
            if w.len() == POOL_SAMPLES {
                w.pop_front();
            }
            w.push_back(f64::from(s.in_use) / f64::from(s.max.max(1)));
            let mean = w.iter().sum::<f64>() / w.len() as f64;
            m.pool_saturation.with_label_values(&[s.pool]).set(mean);
        }
        record_pool(&m, &store);
    }
}

/// Runs the server until SIGTERM/SIGINT, then drains. `Ok` means a clean exit (status 0).
pub async fn run(loaded: Loaded, opts: crate::config::LoadOptions) -> Result<(), RunError> {
    let cfg = Arc::new(loaded.config);
    for w in &loaded.warnings {
        tracing::warn!(key = %w.key, detail = %w.message, "config warning");
    }
    for v in &loaded.ignored_env {
        tracing::debug!(var = %v, "ignored Kubernetes service-link variable");
    }
    raise_nofile();
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
        RunError::Startup(format!(
            "cannot create data_dir {}: {e}",
            cfg.data_dir.display()
        ))
    })?;
    let memory = matches!(cfg.database_url, DatabaseUrl::Sqlite { memory: true, .. });
    let metrics = ron_metrics::Metrics::builder()
        .service("rustchat")
        .instance(cfg.cluster.node_id.clone())
        .amnesia(memory)
        .build()
        .map_err(|e| RunError::Startup(format!("metrics: {e}")))?;
    let backend = backend_of(&cfg);
    let pools: &[&str] = match backend {
        Backend::Sqlite => &["read", "write"],
        Backend::Postgres => &["main"],
    };
    let chat_metrics = Arc::new(
        ChatMetrics::register(metrics, pools, &cfg.compat.mattermost_version)
            .map_err(|e| RunError::Startup(format!("metrics: {e}")))?,
    );
    chat_metrics
        .ws_limit
        .set(i64::from(cfg.ws.max_connections_per_node));
    let readiness = Readiness::new(backend, cfg.data_dir.clone(), cfg.files.min_free_mb);
    let obs = Observe {
        metrics: chat_metrics.clone(),
        slow_ms: u64::from(cfg.log.slow_request_ms),
        log_all: cfg.log.access == crate::config::AccessLog::All,
    };

    let addr = cfg.server.bind_addr();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    let slot = Arc::new(ArcSwap::from_pointee(api::boot_router(
        readiness.clone(),
        obs.clone(),
    )));
    let app = Router::new()
        .fallback_service(Slot(slot.clone()))
        .into_make_service_with_connect_info::<SocketAddr>();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = {
        let token = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { token.cancelled().await })
                .await
        })
    };
    tracing::info!(
        bound_addr = %bound,
        node_id = %cfg.cluster.node_id,
        database = %cfg.redacted_database_url(),
        "rustchat listening"
    );

    let signals = tokio::spawn(wait_for_stop());
    let breaker = db_breaker(Some(chat_metrics.clone()));
    *readiness.db_breaker.lock() = Some(breaker.clone());
    let store = tokio::select! {
        s = connect_loop(&cfg, &readiness, breaker.clone()) => s,
        _ = wait_for_stop() => {
            readiness.shutting_down.store(true, Ordering::Release);
            shutdown.cancel();
            let _ = server.await;
            return Ok(());
        }
    };
    tokio::spawn(sample_pools(chat_metrics.clone(), store.clone()));

    crate::store::SLOW_QUERY_MS.store(u64::from(cfg.log.slow_query_ms), Ordering::Relaxed);
    let jwt_secret = match cfg.jwt_key_material() {
        Some(k) => k,
        None => {
            tracing::warn!(
                "JWT secret not set: using an ephemeral secret; sessions end at restart"
            );
            crate::config::dev_jwt_secret()
        }
    };
    let key = match cfg.encryption_key_material() {
        Some(k) => k,
        None => {
            let (k, created) = crate::config::load_or_create_dev_encryption_key(&cfg.data_dir)
                .map_err(|e| RunError::Startup(format!("development encryption key: {e}")))?;
            tracing::warn!(
                created,
                file = %cfg.data_dir.join(crate::config::DEV_ENCRYPTION_KEY_FILE).display(),
                "encryption key not set: using the development key file"
            );
            k
        }
    };
    let at_rest = crate::crypto::AtRest::new(&key);
    // CHAT-R25: a key_check stored at first start detects a changed encryption key, which
    // would make every stored secret unreadable.
    let stored = crate::store_read!(store, |c| ops::key_check(c).await).unwrap_or_default();
    if stored.is_empty() {
        let v = at_rest.key_check();
        if let Err(e) = crate::store_write!(store, |c| ops::set_key_check(c, &v).await) {
            tracing::warn!(error = %e, "could not record the encryption key check");
        }
    } else if !at_rest.verify_key_check(&stored) {
        if cfg.is_production() {
            tracing::error!("encryption key does not match the one this database was set up with");
            return Err(RunError::Startup(
                "encryption_key: does not match the key_check stored in server_config".into(),
            ));
        }
        tracing::warn!(
            "encryption key does not match the one this database was set up with; stored secrets are unreadable"
        );
    }
    let state = AppState(Arc::new(Inner {
        at_rest,
        jwt: JwtKeys::new(&jwt_secret, &cfg.jwt.issuer, &cfg.jwt.audience),
        config: ArcSwap::new(cfg.clone()),
        store: store.clone(),
        sessions: Default::default(),
        db_breaker: breaker.clone(),
        metrics: chat_metrics.clone(),
        node_id: cfg.cluster.node_id.clone(),
        started: Instant::now(),
        shutting_down: Default::default(),
        hub: Default::default(),
        limits: crate::ratelimit::RateLimits::new(&cfg.security),
        oidc: Arc::new(crate::oidc::Oidc::new(
            &cfg,
            store.clone(),
            chat_metrics.clone(),
        )),
        settings: ArcSwap::from_pointee(crate::settings::Settings::default()),
        version_id: version_id(&cfg.compat.mattermost_version, &cfg.cluster.node_id),
        search_slots: tokio::sync::Semaphore::new(crate::api::v1::search::concurrent_searches(
            cfg.effective_pool_max(),
        )),
    }));
    if let Err(e) = crate::settings::refresh(&state).await {
        tracing::warn!(error = %e, "server_config read failed; using defaults");
    }
    tokio::spawn(crate::settings::refresh_loop(state.clone()));
    *readiness.oidc.lock() = Some(state.oidc.clone());
    crate::oidc::announce(&state).await;
    crate::api::v1::files::spawn_sweeper(state.clone());
    let bus_stop = tokio_util::sync::CancellationToken::new();
    if let Some(url) = &cfg.redis_url {
        // Cluster mode (CHAT-R19): a Redis failure degrades, it never stops the node.
        match crate::realtime::cluster::start(
            url,
            cfg.cluster.node_id.clone(),
            Duration::from_secs(u64::from(cfg.cluster.heartbeat_interval_seconds.max(1))),
            env!("CARGO_PKG_VERSION").to_string(),
            Arc::new(state.clone()),
            counted_breaker(
                "redis",
                crate::realtime::cluster::redis_breaker_config(),
                Some(chat_metrics.clone()),
            ),
            bus_stop.clone(),
        ) {
            Ok(c) => {
                let _ = state.hub.cluster.set(c.clone());
                *readiness.cluster.lock() = Some(c);
                crate::realtime::presence::spawn_cluster_tasks(&state, bus_stop.clone());
            }
            Err(e) => tracing::warn!(error = %e, "cluster mode unavailable; single node"),
        }
    }
    slot.store(Arc::new(api::router(state.clone(), readiness.clone(), obs)));
    readiness.serving.store(true, Ordering::Release);
    tracing::info!("rustchat ready");
    tokio::spawn(reload_on_sighup(state.clone(), opts));

    let _ = signals.await;
    tracing::info!("shutdown: draining");
    // Order (CHAT-R12): /ready 503 at once, so load balancers stop sending, while the
    // listener still accepts for READY_DRAIN_WINDOW; then stop accepting; WebSockets close
    // 1001 spread over the first half of the grace; in-flight HTTP drains to the grace.
    readiness.shutting_down.store(true, Ordering::Release);
    state.shutting_down.store(true, Ordering::Release);
    let grace = cfg.server.shutdown_grace();
    tokio::time::sleep(READY_DRAIN_WINDOW.min(grace / 4)).await;
    shutdown.cancel();
    bus_stop.cancel();
    tokio::spawn(crate::realtime::ws::close_all_spread(
        state.clone(),
        grace / 2,
    ));
    if tokio::time::timeout(grace, server).await.is_err() {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "shutdown: grace expired with requests in flight"
        );
    }
    store.close().await;
    tracing::info!("shutdown complete");
    Ok(())
}

/// `<mm>.<mm>.<hash>.false`: the hash covers what the client config answer depends on, so
/// clients that cache it see a change when it changes.
fn version_id(mm: &str, salt: &str) -> String {
    let h = crate::ids::sha256_hex(&format!("{mm}/{}/{salt}", env!("CARGO_PKG_VERSION")));
    format!("{mm}.{mm}.{}.false", &h[..8])
}

async fn connect_loop(cfg: &Config, readiness: &Readiness, breaker: Arc<CircuitBreaker>) -> Store {
    let mut pause = CONNECT_BACKOFF.0;
    loop {
        match open_store(cfg, breaker.clone()).await {
            Ok((store, report)) => {
                if !report.unknown_versions.is_empty() {
                    tracing::warn!(versions = ?report.unknown_versions, "database schema is newer than this binary");
                }
                tracing::info!(
                    applied_now = report.applied_now,
                    applied_total = report.applied_total,
                    "migrations applied"
                );
                *readiness.migrations.lock() = Some((report.applied_total, 0));
                *readiness.store.lock() = Some(store.clone());
                return store;
            }
            Err(e) => {
                tracing::error!(error = %e, retry_in_secs = pause.as_secs(), "database unreachable");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(CONNECT_BACKOFF.1);
            }
        }
    }
}

/// SIGHUP (CHAT-R3): re-read the file and `.env`, validate, swap the reloadable keys
/// atomically; an invalid result keeps the running config.
async fn reload_on_sighup(st: AppState, opts: crate::config::LoadOptions) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        reload_once(&st, &opts);
        if let Err(e) = crate::settings::refresh(&st).await {
            tracing::warn!(error = %e, "server_config refresh failed");
        }
    }
}

/// One reload; public for the signal handler and tests of the swap itself.
pub fn reload_once(st: &AppState, opts: &crate::config::LoadOptions) {
    let current = st.cfg();
    // The process environment at reload time, as at start.
    let mut opts = opts.clone();
    opts.env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
        .collect();
    match crate::config::reload(&opts, &current) {
        Ok(r) => {
            st.limits.reconfigure(&r.config.security);
            crate::store::SLOW_QUERY_MS
                .store(u64::from(r.config.log.slow_query_ms), Ordering::Relaxed);
            st.config.store(Arc::new(r.config));
            st.metrics.config_reloads.with_label_values(&["ok"]).inc();
            tracing::info!(applied = ?r.applied, "config reload: ok");
            if !r.restart_required.is_empty() {
                tracing::warn!(keys = ?r.restart_required, "config reload: restart required");
            }
        }
        Err(e) => {
            st.metrics
                .config_reloads
                .with_label_values(&["error"])
                .inc();
            tracing::error!(error = %e, "config reload: rejected");
        }
    }
}

async fn wait_for_stop() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
