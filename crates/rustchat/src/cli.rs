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
                for line in e.to_string().lines() {
                    println!("error  {line}");
                }
                println!("result: INVALID (1 errors)");
                return ExitCode::from(1);
            }
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if check_config {
        return runtime().block_on(check(loaded));
    }
    let log = LogConfig {
        fields: FieldLayout::Nested,
        ..LogConfig::new("rustchat")
    }
    .static_field("node_id", loaded.config.cluster.node_id.clone());
    if let Err(e) = ron_kernel::logging::init(log) {
        eprintln!("config error: RUST_LOG: {e}");
        return ExitCode::from(2);
    }
    ron_kernel::logging::install_panic_hook();
    if migrate_only {
        return runtime().block_on(migrate(loaded.config));
    }
    match runtime().block_on(crate::server::run(loaded)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "startup failed");
            ExitCode::from(1)
        }
    }
}

async fn migrate(cfg: Config) -> ExitCode {
    match tokio::time::timeout(MIGRATE_CONNECT_TIMEOUT * 6, crate::server::open_store(&cfg)).await {
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
