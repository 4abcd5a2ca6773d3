//! The three modes of the binary (CHAT-R1): serve, `--check-config`, `--migrate-only`.
//!
//! Exit statuses: 0 success; 1 a failed check, bind or migration; 2 a bad configuration.

use std::process::ExitCode;
use std::time::Duration;

use ron_kernel::logging::{FieldLayout, LogConfig};

use crate::config::{self, Config, DatabaseUrl, LoadOptions};

/// Budget of each `--check-config` probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Budget of the `--migrate-only` connection.
pub const MIGRATE_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Entry point used by `main`.
pub fn main(opts: LoadOptions, check_config: bool, migrate_only: bool) -> ExitCode {
    let loaded = match config::load(&opts) {
        Ok(l) => l,
        Err(e) => {
            if check_config {
                // One line per problem, each naming its key or variable (values redacted).
                for p in e.problems() {
                    println!("error  {}: {p}", p.key);
                }
                println!("result: INVALID ({} errors)", e.problems().len());
                return ExitCode::from(1);
            }
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if check_config {
        return runtime().block_on(check(loaded));
    }
    let reload_opts = opts.clone();
    // CHAT-R27: event fields under `fields`, `ip` hoisted to the top level, the span scope
    // as `span`/`spans` (the runbook selects `.span.name=="ws_handler"`).
    let log = LogConfig {
        fields: FieldLayout::Nested,
        hoisted: vec!["ip".into()],
        spans: true,
        // sqlx's own INFO lines (PostgreSQL notices) carry variable text; keep them out
        // unless RUST_LOG asks (CHAT-R27: messages are constant strings).
        default_filter: "info,sqlx=warn".into(),
        ..LogConfig::new("rustchat")
    }
    .static_field("node_id", loaded.config.cluster.node_id.clone());
    if loaded.config.log.format == config::LogFormat::Pretty {
        // log.format=pretty: human-readable lines for a developer's terminal; production
        // keeps JSON (the runbook's jq queries need it).
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| log.default_filter.clone());
        match tracing_subscriber::EnvFilter::try_new(&filter) {
            Ok(f) => tracing_subscriber::fmt().with_env_filter(f).init(),
            Err(e) => {
                eprintln!("config error: RUST_LOG = {filter:?}: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        if let Err(e) = ron_kernel::logging::init(log) {
            eprintln!("config error: RUST_LOG: {e}");
            return ExitCode::from(2);
        }
        ron_kernel::logging::install_panic_hook();
    }
    if migrate_only {
        return runtime().block_on(migrate(loaded.config));
    }
    match runtime().block_on(crate::server::run(loaded, reload_opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "startup failed");
            ExitCode::from(1)
        }
    }
}

async fn migrate(cfg: Config) -> ExitCode {
    match tokio::time::timeout(
        MIGRATE_CONNECT_TIMEOUT * 6,
        crate::server::open_store(&cfg, crate::server::db_breaker(None)),
    )
    .await
    {
        Ok(Ok((store, report))) => {
            store.close().await;
            println!("migrations applied: {}", report.applied_now);
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("migration failed: {e}");
            ExitCode::from(1)
        }
        Err(_) => {
            eprintln!("migration failed: timed out");
            ExitCode::from(1)
        }
    }
}

async fn check(loaded: config::Loaded) -> ExitCode {
    let cfg = &loaded.config;
    let mut errors = 0usize;
    let mut warnings = 0usize;
    println!(
        "ok     config: loaded ({} environment)",
        if cfg.is_production() {
            "production"
        } else {
            "development"
        }
    );
    for w in &loaded.warnings {
        warnings += 1;
        println!("warn   {}: {}", w.key, w.message);
    }
    match probe_database(cfg).await {
        Ok(detail) => println!("ok     database_url: {detail}"),
        Err(detail) => {
            errors += 1;
            println!(
                "error  database_url: {} : {detail}",
                cfg.redacted_database_url()
            );
        }
    }
    if let Some(url) = &cfg.redis_url {
        match probe_redis(url).await {
            Ok(()) => println!("ok     redis_url: {} answers PING", config::redact_url(url)),
            Err(detail) => {
                errors += 1;
                println!("error  redis_url: {} : {detail}", config::redact_url(url));
            }
        }
    }
    // CHAT-R1, R22: each provider's discovery document within the probe budget, and the
    // redirect URI the operator must register with it.
    let http = crate::oidc::http::ProviderHttp::new();
    for p in cfg.oauth.providers.values() {
        let def = crate::oidc::from_config(p);
        let uri = crate::oidc::redirect_uri(cfg, &p.name);
        match crate::oidc::provider::probe(&def, &http, PROBE_TIMEOUT).await {
            Ok(meta) => println!(
                "ok     oauth.providers.{}: discovery ok (issuer {}); redirect_uri {uri}",
                p.name, meta.issuer
            ),
            Err(detail) => {
                errors += 1;
                println!(
                    "error  oauth.providers.{}: {} : {detail}; redirect_uri {uri}",
                    p.name,
                    crate::oidc::provider::discovery_url(&p.issuer_url)
                );
            }
        }
    }
    match std::fs::metadata(&cfg.data_dir) {
        Ok(m) if m.is_dir() => println!("ok     data_dir: {}", cfg.data_dir.display()),
        Ok(_) => {
            errors += 1;
            println!(
                "error  data_dir: {} is not a directory",
                cfg.data_dir.display()
            );
        }
        Err(_) => println!(
            "ok     data_dir: {} (created at start)",
            cfg.data_dir.display()
        ),
    }
    println!(
        "ok     db_pool: max_connections={} min_connections={} acquire_timeout_ms={}",
        cfg.effective_pool_max(),
        cfg.db_pool.min_connections,
        cfg.db_pool.acquire_timeout_ms
    );
    let s = &cfg.security;
    println!(
        "ok     rate_limits: enabled={} auth_per_minute={} ws_per_minute={} webhook_per_minute={}",
        s.rate_limit_enabled,
        s.rate_limit_auth_per_minute,
        s.rate_limit_ws_per_minute,
        s.rate_limit_webhook_per_minute
    );
    if errors == 0 {
        println!("result: OK ({warnings} warnings)");
        ExitCode::SUCCESS
    } else {
        println!("result: INVALID ({errors} errors)");
        ExitCode::from(1)
    }
}

/// `PING` over RESP (with `AUTH` when the URL has credentials), within [`PROBE_TIMEOUT`].
/// A bare socket is enough to prove the operator's Redis answers, without starting the
/// cluster bus's connection manager.
async fn probe_redis(url: &str) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("redis://")
        .ok_or("only redis:// URLs can be probed by this build")?;
    let (auth, hostport) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    let hostport = hostport.split('/').next().unwrap_or(hostport);
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:6379")
    };
    let io = async {
        let mut s = tokio::net::TcpStream::connect(&hostport)
            .await
            .map_err(|e| e.to_string())?;
        let mut cmd = String::new();
        if let Some(a) = auth {
            let (user, pass) = a.split_once(':').unwrap_or(("", a));
            if user.is_empty() {
                cmd.push_str(&format!(
                    "*2\r\n$4\r\nAUTH\r\n${}\r\n{pass}\r\n",
                    pass.len()
                ));
            } else {
                cmd.push_str(&format!(
                    "*3\r\n$4\r\nAUTH\r\n${}\r\n{user}\r\n${}\r\n{pass}\r\n",
                    user.len(),
                    pass.len()
                ));
            }
        }
        cmd.push_str("*1\r\n$4\r\nPING\r\n");
        s.write_all(cmd.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 512];
        let mut got = String::new();
        while !got.contains("PONG") {
            let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("connection closed: {}", got.trim()));
            }
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
            if got.starts_with('-') {
                return Err(got.lines().next().unwrap_or("").to_string());
            }
        }
        Ok(())
    };
    match tokio::time::timeout(PROBE_TIMEOUT, io).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {}s", PROBE_TIMEOUT.as_secs())),
    }
}

/// Connects without creating anything; reports pending migrations.
async fn probe_database(cfg: &Config) -> Result<String, String> {
    match &cfg.database_url {
        DatabaseUrl::Sqlite { memory: true, .. } => Ok("sqlite in memory".into()),
        DatabaseUrl::Sqlite { path, .. } => {
            if path.exists() {
                Ok(format!("sqlite {}", path.display()))
            } else {
                Ok(format!("sqlite {} (created at start)", path.display()))
            }
        }
        #[cfg(feature = "postgres")]
        DatabaseUrl::Postgres { url } => {
            use sqlx::Connection;
            let opts: sqlx::postgres::PgConnectOptions = url.parse().map_err(|e| format!("{e}"))?;
            let conn =
                tokio::time::timeout(PROBE_TIMEOUT, sqlx::PgConnection::connect_with(&opts)).await;
            let mut conn = match conn {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return Err(config::redact_urls_in(&e.to_string())),
                Err(_) => return Err(format!("no answer within {}s", PROBE_TIMEOUT.as_secs())),
            };
            let applied = crate::store::migrate::pg_applied(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            let shipped = crate::store::migrate::shipped(crate::store::Backend::Postgres);
            let pending = shipped.saturating_sub(applied.len());
            let _ = conn.close().await;
            Ok(format!(
                "postgres reachable; {pending} pending; run --migrate-only"
            ))
        }
        #[allow(unreachable_patterns)]
        _ => Err("backend not compiled in".into()),
    }
}
