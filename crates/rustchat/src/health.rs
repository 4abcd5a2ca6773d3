//! Health routes (CHAT-R8, R28): `/api/v1/health/live|ready|metrics|stats`, also served as
//! `/healthz` and `/readyz`. Unauthenticated and not rate-limited.
//!
//! Readiness is computed from cached checks (database 1 s, disk 10 s) so a probe storm
//! cannot load the database. Fatal keys (503 + `Retry-After`): `database`, `migrations`,
//! `disk`, `shutting_down`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::store::{Backend, Store};

/// How long a database check result is reused.
pub const DB_CHECK_TTL: Duration = Duration::from_secs(1);
/// How long a disk check result is reused.
pub const DISK_CHECK_TTL: Duration = Duration::from_secs(10);
/// Budget of the database ping.
pub const DB_PING_BUDGET: Duration = Duration::from_millis(1000);
/// `Retry-After` on a not-ready answer.
pub const READY_RETRY_AFTER: u32 = 5;

/// Readiness inputs shared by the boot phase and the serving phase.
pub struct Readiness {
    /// Backend in use (for `checks.database.backend`).
    pub backend: Backend,
    /// The database once connected.
    pub store: Mutex<Option<Store>>,
    /// Migrations applied and pending, once known.
    pub migrations: Mutex<Option<(usize, usize)>>,
    /// Set on SIGTERM.
    pub shutting_down: AtomicBool,
    /// The Redis bus, once started (cluster mode): `checks.redis` and the `redis` warning.
    pub cluster: Mutex<Option<Arc<crate::realtime::cluster::Cluster>>>,
    /// Set once the full API router replaced the boot router; until then every API route
    /// answers 503 `starting`, so readiness must not say ready even with the database up.
    pub serving: AtomicBool,
    /// Where disk space is checked.
    pub data_dir: PathBuf,
    /// Below this many free bytes the disk is `low` (fatal).
    pub min_free_bytes: u64,
    /// Process start.
    pub started: Instant,
    /// The `database` breaker, once the store exists.
    pub db_breaker: Mutex<Option<Arc<ron_kernel::CircuitBreaker>>>,
    /// The OIDC providers' breakers (`oidc:<name>` in `/stats`), once the state exists.
    pub oidc: Mutex<Option<Arc<crate::oidc::Oidc>>>,
    since: Mutex<(bool, time::OffsetDateTime)>,
    db_cache: Mutex<Option<(Instant, Value, bool)>>,
    disk_cache: Mutex<Option<(Instant, Value, bool)>>,
}

impl Readiness {
    /// A not-yet-ready state.
    pub fn new(backend: Backend, data_dir: PathBuf, min_free_mb: u32) -> Arc<Self> {
        Arc::new(Readiness {
            backend,
            store: Mutex::new(None),
            migrations: Mutex::new(None),
            shutting_down: AtomicBool::new(false),
            serving: AtomicBool::new(false),
            cluster: Mutex::new(None),
            data_dir,
            min_free_bytes: u64::from(min_free_mb) * 1024 * 1024,
            started: Instant::now(),
            db_breaker: Mutex::new(None),
            oidc: Mutex::new(None),
            since: Mutex::new((false, time::OffsetDateTime::now_utc())),
            db_cache: Mutex::new(None),
            disk_cache: Mutex::new(None),
        })
    }

    async fn db_check(&self) -> (Value, bool) {
        if let Some((at, v, ok)) = self.db_cache.lock().as_ref()
            && at.elapsed() < DB_CHECK_TTL
        {
            return (v.clone(), *ok);
        }
        let store = self.store.lock().clone();
        let (v, ok) = match store {
            None => (
                json!({"status": "down", "backend": self.backend.as_str(), "error": "not connected"}),
                false,
            ),
            Some(s) => {
                let t = Instant::now();
                match s.ping(DB_PING_BUDGET).await {
                    Ok(()) => (
                        json!({"status": "ok", "backend": self.backend.as_str(),
                               "latency_ms": t.elapsed().as_millis() as u64}),
                        true,
                    ),
                    Err(e) => (
                        json!({"status": "down", "backend": self.backend.as_str(),
                               "latency_ms": t.elapsed().as_millis() as u64, "error": e.to_string()}),
                        false,
                    ),
                }
            }
        };
        *self.db_cache.lock() = Some((Instant::now(), v.clone(), ok));
        (v, ok)
    }

    fn disk_check(&self) -> (Value, bool) {
        if let Some((at, v, ok)) = self.disk_cache.lock().as_ref()
            && at.elapsed() < DISK_CHECK_TTL
        {
            return (v.clone(), *ok);
        }
        let (v, ok) = match rustix::fs::statvfs(&self.data_dir) {
            Ok(s) => {
                let free = s.f_bavail.saturating_mul(s.f_frsize);
                let writable = probe_writable(&self.data_dir);
                if !writable {
                    (json!({"status": "unwritable", "free_bytes": free}), false)
                } else if free < self.min_free_bytes {
                    (json!({"status": "low", "free_bytes": free}), false)
                } else {
                    (json!({"status": "ok", "free_bytes": free}), true)
                }
            }
            Err(_) => (json!({"status": "unwritable", "free_bytes": 0}), false),
        };
        *self.disk_cache.lock() = Some((Instant::now(), v.clone(), ok));
        (v, ok)
    }

    /// The readiness body and whether it is ready.
    pub async fn report(&self) -> (Value, bool) {
        let mut missing: Vec<&str> = Vec::new();
        let (db, db_ok) = self.db_check().await;
        if !db_ok {
            missing.push("database");
        }
        let migrations = *self.migrations.lock();
        let mig = match migrations {
            Some((applied, pending)) => {
                if pending > 0 {
                    missing.push("migrations");
                }
                json!({"status": if pending == 0 {"ok"} else {"pending"}, "applied": applied, "pending": pending})
            }
            None => {
                missing.push("migrations");
                json!({"status": "pending", "applied": 0, "pending": crate::store::migrate::shipped(self.backend)})
            }
        };
        let (disk, disk_ok) = self.disk_check();
        if !disk_ok {
            missing.push("disk");
        }
        // The short window after migrations and before the API swap (key checks, settings
        // load) reports `starting`; during migrations `migrations` alone says it.
        if !missing.contains(&"migrations") && !self.serving.load(Ordering::Acquire) {
            missing.push("starting");
        }
        if self.shutting_down.load(Ordering::Acquire) {
            missing.push("shutting_down");
        }
        // Redis never makes /ready fail (spec decision 5): it degrades to a warning.
        let mut warnings: Vec<&str> = Vec::new();
        let redis = match self.cluster.lock().as_ref() {
            None => json!({"status": "disabled"}),
            Some(c) if c.healthy() => json!({"status": "ok"}),
            Some(c) => {
                warnings.push("redis");
                json!({"status": "degraded", "error": c.last_error().unwrap_or_default()})
            }
        };
        let ready = missing.is_empty();
        let since = {
            let mut s = self.since.lock();
            if s.0 != ready {
                *s = (ready, time::OffsetDateTime::now_utc());
            }
            s.1.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        let body = json!({
            "status": if ready {"ok"} else {"unavailable"},
            "degraded": !ready,
            "missing": missing,
            "retry_after": if ready {0} else {READY_RETRY_AFTER},
            "since": since,
            "warnings": warnings,
            "checks": {
                "database": db,
                "migrations": mig,
                "redis": redis,
                "disk": disk,
            },
        });
        (body, ready)
    }
}

fn probe_writable(dir: &std::path::Path) -> bool {
    let p = dir.join(".rustchat-write-probe");
    let ok = std::fs::write(&p, b"ok").is_ok();
    let _ = std::fs::remove_file(&p);
    ok
}

/// `GET /api/v1/health/live`.
pub async fn live(State(r): State<Arc<Readiness>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": r.started.elapsed().as_secs(),
    }))
}

/// `GET /api/v1/health/ready`: 200, or 503 + `Retry-After` with the same body shape.
pub async fn ready(State(r): State<Arc<Readiness>>) -> Response {
    let (body, ok) = r.report().await;
    if ok {
        Json(body).into_response()
    } else {
        let mut resp = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(READY_RETRY_AFTER));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing(body: &Value) -> Vec<String> {
        body["missing"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_string())
            .collect()
    }

    // Regression: readiness said 200 between the migrations and the API router swap, while
    // every API route still answered 503 `starting` (seen as a flaky restart test).
    #[tokio::test]
    async fn not_ready_until_the_api_router_serves() {
        let dir = std::env::temp_dir();
        let r = Readiness::new(Backend::Sqlite, dir, 0);
        let (body, ok) = r.report().await;
        assert!(!ok);
        assert_eq!(
            missing(&body),
            ["database", "migrations"],
            "while migrating"
        );
        *r.migrations.lock() = Some((3, 0));
        let (body, _) = r.report().await;
        assert_eq!(missing(&body), ["database", "starting"]);
        r.serving.store(true, Ordering::Release);
        let (body, _) = r.report().await;
        assert_eq!(missing(&body), ["database"]);
    }
}
