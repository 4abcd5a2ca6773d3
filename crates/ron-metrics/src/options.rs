//! Exposer options: where to bind ([`BindTarget`]), how a standalone listener behaves
//! ([`ServeOptions`]) and where a host mounts the handlers ([`MountOptions`]).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use ron_kernel::config::ConfigError;
use ron_kernel::{ShutdownCoordinator, ShutdownToken};

use crate::env::{self, EnvSource};

/// Default header-read deadline.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Default per-response write deadline.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default idle keep-alive limit.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// Default connection cap.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 256;
/// Default (and minimum) request header block size.
pub const DEFAULT_MAX_HEADER_BYTES: u32 = 8192;
/// Default `Retry-After` of a degraded `/readyz`.
pub const DEFAULT_RETRY_AFTER_SECS: u32 = 5;
/// Default correlation header.
pub const DEFAULT_CORR_HEADER: &str = "x-corr-id";
/// Default smallest body worth gzipping.
pub const DEFAULT_GZIP_MIN_BYTES: u32 = 1024;
/// Default readiness flag raised near the connection cap.
pub const DEFAULT_SATURATION_FLAG: &str = "exposer_capacity";
/// Longest Unix socket path.
pub const MAX_UDS_PATH_BYTES: usize = 107;

/// Where a standalone exposer listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindTarget {
    /// A TCP address (port 0 picks a free port).
    Tcp(SocketAddr),
    /// A Unix socket path.
    Uds(PathBuf),
}

/// Where a standalone exposer actually listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundAddr {
    /// The bound TCP address.
    Tcp(SocketAddr),
    /// The socket path.
    Uds(PathBuf),
}

/// Which handler a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// The exposition.
    Metrics,
    /// Liveness.
    Healthz,
    /// Readiness.
    Readyz,
}

/// Settings of a standalone exposer. Invalid values make `serve_with` fail before binding.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServeOptions {
    /// TLS configuration (TCP only).
    #[cfg(feature = "tls")]
    pub tls: Option<std::sync::Arc<tokio_rustls::rustls::ServerConfig>>,
    /// Deadline for a request's header block (100 ms–60 s).
    pub header_read_timeout: Duration,
    /// Deadline for writing one response (100 ms–60 s).
    pub write_timeout: Duration,
    /// Idle keep-alive limit (1–600 s).
    pub idle_timeout: Duration,
    /// Connection cap (1–65535).
    pub max_connections: u32,
    /// Header block cap (8192–65536).
    pub max_header_bytes: u32,
    /// `Retry-After` of a degraded `/readyz` (1–3600).
    pub retry_after_secs: u32,
    /// Correlation header.
    pub corr_header: HeaderName,
    /// Smallest body worth gzipping.
    pub gzip_min_bytes: u32,
    /// Readiness flag raised at 90% of the connection cap; `None` disables it.
    pub saturation_flag: Option<String>,
    /// When to drain and stop.
    pub shutdown: ShutdownToken,
    pub(crate) env_bind: Option<BindTarget>,
}

/// Paths and headers of handlers mounted in a host's router.
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// Path of the exposition, if mounted.
    pub metrics: Option<String>,
    /// Path of liveness, if mounted.
    pub healthz: Option<String>,
    /// Path of readiness, if mounted.
    pub readyz: Option<String>,
    /// `Retry-After` of a degraded `/readyz`.
    pub retry_after_secs: u32,
    /// Correlation header.
    pub corr_header: HeaderName,
    /// Smallest body worth gzipping.
    pub gzip_min_bytes: u32,
}

impl From<SocketAddr> for BindTarget {
    fn from(a: SocketAddr) -> Self {
        BindTarget::Tcp(a)
    }
}

impl From<PathBuf> for BindTarget {
    fn from(p: PathBuf) -> Self {
        BindTarget::Uds(p)
    }
}

impl From<&Path> for BindTarget {
    fn from(p: &Path) -> Self {
        BindTarget::Uds(p.to_path_buf())
    }
}

impl fmt::Display for BindTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindTarget::Tcp(a) => write!(f, "{a}"),
            BindTarget::Uds(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl fmt::Display for BoundAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoundAddr::Tcp(a) => write!(f, "{a}"),
            BoundAddr::Uds(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl Endpoint {
    /// The default standalone path.
    pub fn default_path(self) -> &'static str {
        match self {
            Endpoint::Metrics => "/metrics",
            Endpoint::Healthz => "/healthz",
            Endpoint::Readyz => "/readyz",
        }
    }
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            metrics: Some("/metrics".to_owned()),
            healthz: Some("/healthz".to_owned()),
            readyz: Some("/readyz".to_owned()),
            retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
            corr_header: HeaderName::from_static(DEFAULT_CORR_HEADER),
            gzip_min_bytes: DEFAULT_GZIP_MIN_BYTES,
        }
    }
}

impl MountOptions {
    /// The mounted path of `ep`, if any.
    pub fn path(&self, ep: Endpoint) -> Option<&str> {
        match ep {
            Endpoint::Metrics => self.metrics.as_deref(),
            Endpoint::Healthz => self.healthz.as_deref(),
            Endpoint::Readyz => self.readyz.as_deref(),
        }
    }

    /// Which endpoint `path` is, if mounted.
    pub fn endpoint_for(&self, path: &str) -> Option<Endpoint> {
        [Endpoint::Metrics, Endpoint::Healthz, Endpoint::Readyz]
            .into_iter()
            .find(|ep| self.path(*ep) == Some(path))
    }

    /// Checks the same ranges as [`ServeOptions`].
    pub fn validate(&self) -> Result<(), String> {
        check_range("retry_after_secs", self.retry_after_secs.into(), 1, 3600)?;
        for ep in [Endpoint::Metrics, Endpoint::Healthz, Endpoint::Readyz] {
            if let Some(p) = self.path(ep)
                && !p.starts_with('/')
            {
                return Err(format!("mount path {p:?} must start with /"));
            }
        }
        Ok(())
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            #[cfg(feature = "tls")]
            tls: None,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
            corr_header: HeaderName::from_static(DEFAULT_CORR_HEADER),
            gzip_min_bytes: DEFAULT_GZIP_MIN_BYTES,
            saturation_flag: Some(DEFAULT_SATURATION_FLAG.to_owned()),
            shutdown: ShutdownCoordinator::global().token(),
            env_bind: None,
        }
    }
}

impl ServeOptions {
    /// Defaults plus the bind and TLS variables (`RON_METRICS_ADDR`, `RON_METRICS_UDS`,
    /// `RON_METRICS_TLS_CERT`, `RON_METRICS_TLS_KEY`) of the process environment.
    pub fn from_env() -> Result<ServeOptions, ConfigError> {
        ServeOptions::from_env_source(&EnvSource::process())
    }

    /// As [`ServeOptions::from_env`], reading `env`.
    pub fn from_env_source(env: &EnvSource) -> Result<ServeOptions, ConfigError> {
        env.check_unknown_metrics_vars()?;
        let mut opts = ServeOptions::default();
        let addr = env.get(env::ENV_METRICS_ADDR);
        let uds = env.get(env::ENV_METRICS_UDS);
        if let (Some(_), Some(u)) = (&addr, &uds) {
            return Err(env::error(
                env::ENV_METRICS_UDS,
                u,
                "RON_METRICS_ADDR is also set; set only one of them",
            ));
        }
        if let Some(a) = addr {
            let parsed: SocketAddr = a.parse().map_err(|_| {
                env::error(
                    env::ENV_METRICS_ADDR,
                    &a,
                    "expected a socket address like 127.0.0.1:9100",
                )
            })?;
            opts.env_bind = Some(BindTarget::Tcp(parsed));
        }
        if let Some(u) = uds {
            let p = PathBuf::from(&u);
            if !p.is_absolute() || u.len() > MAX_UDS_PATH_BYTES {
                return Err(env::error(
                    env::ENV_METRICS_UDS,
                    &u,
                    "expected an absolute path of at most 107 bytes",
                ));
            }
            opts.env_bind = Some(BindTarget::Uds(p));
        }
        let cert = env.get(env::ENV_METRICS_TLS_CERT);
        let key = env.get(env::ENV_METRICS_TLS_KEY);
        match (cert, key) {
            (None, None) => {}
            (Some(c), None) => {
                return Err(env::error(
                    env::ENV_METRICS_TLS_CERT,
                    &c,
                    "RON_METRICS_TLS_KEY is not set; TLS needs both",
                ));
            }
            (None, Some(k)) => {
                return Err(env::error(
                    env::ENV_METRICS_TLS_KEY,
                    &k,
                    "RON_METRICS_TLS_CERT is not set; TLS needs both",
                ));
            }
            (Some(c), Some(k)) => {
                if matches!(opts.env_bind, Some(BindTarget::Uds(_))) {
                    return Err(env::error(
                        env::ENV_METRICS_TLS_CERT,
                        &c,
                        "TLS is served over TCP only; unset RON_METRICS_UDS or the TLS variables",
                    ));
                }
                opts = with_env_tls(opts, &c, &k)?;
            }
        }
        Ok(opts)
    }

    /// The bind target the environment asked for, if any.
    pub fn env_bind(&self) -> Option<&BindTarget> {
        self.env_bind.as_ref()
    }

    /// Whether TLS is configured.
    pub fn tls_enabled(&self) -> bool {
        #[cfg(feature = "tls")]
        {
            self.tls.is_some()
        }
        #[cfg(not(feature = "tls"))]
        {
            false
        }
    }

    /// Sets the TLS configuration.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, cfg: std::sync::Arc<tokio_rustls::rustls::ServerConfig>) -> Self {
        self.tls = Some(cfg);
        self
    }
    /// Sets the header-read deadline.
    pub fn header_read_timeout(mut self, d: Duration) -> Self {
        self.header_read_timeout = d;
        self
    }
    /// Sets the write deadline.
    pub fn write_timeout(mut self, d: Duration) -> Self {
        self.write_timeout = d;
        self
    }
    /// Sets the idle keep-alive limit.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }
    /// Sets the connection cap.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }
    /// Sets the header block cap.
    pub fn max_header_bytes(mut self, n: u32) -> Self {
        self.max_header_bytes = n;
        self
    }
    /// Sets `Retry-After` of a degraded `/readyz`.
    pub fn retry_after_secs(mut self, n: u32) -> Self {
        self.retry_after_secs = n;
        self
    }
    /// Sets the correlation header.
    pub fn corr_header(mut self, h: HeaderName) -> Self {
        self.corr_header = h;
        self
    }
    /// Sets the smallest body worth gzipping.
    pub fn gzip_min_bytes(mut self, n: u32) -> Self {
        self.gzip_min_bytes = n;
        self
    }
    /// Sets (or disables) the saturation readiness flag.
    pub fn saturation_flag(mut self, f: Option<String>) -> Self {
        self.saturation_flag = f;
        self
    }
    /// Sets the shutdown token.
    pub fn shutdown(mut self, t: ShutdownToken) -> Self {
        self.shutdown = t;
        self
    }

    /// Checks every range; the message names the field, value and allowed range.
    pub fn validate(&self) -> Result<(), String> {
        check_range(
            "header_read_timeout (ms)",
            self.header_read_timeout.as_millis() as u64,
            100,
            60_000,
        )?;
        check_range(
            "write_timeout (ms)",
            self.write_timeout.as_millis() as u64,
            100,
            60_000,
        )?;
        check_range("idle_timeout (s)", self.idle_timeout.as_secs(), 1, 600)?;
        check_range("max_connections", self.max_connections.into(), 1, 65_535)?;
        check_range(
            "max_header_bytes",
            self.max_header_bytes.into(),
            8192,
            65_536,
        )?;
        check_range("retry_after_secs", self.retry_after_secs.into(), 1, 3600)?;
        if let Some(f) = &self.saturation_flag {
            ron_kernel::health::validate_name(f).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    pub(crate) fn mount(&self) -> MountOptions {
        MountOptions {
            retry_after_secs: self.retry_after_secs,
            corr_header: self.corr_header.clone(),
            gzip_min_bytes: self.gzip_min_bytes,
            ..MountOptions::default()
        }
    }
}

#[cfg(feature = "tls")]
fn with_env_tls(opts: ServeOptions, cert: &str, key: &str) -> Result<ServeOptions, ConfigError> {
    let cfg = crate::tls::server_config_from_pem(Path::new(cert), Path::new(key)).map_err(
        |(var_is_key, why)| {
            let (var, val) = if var_is_key {
                (env::ENV_METRICS_TLS_KEY, key)
            } else {
                (env::ENV_METRICS_TLS_CERT, cert)
            };
            env::error(var, val, &why)
        },
    )?;
    Ok(opts.tls(cfg))
}

#[cfg(not(feature = "tls"))]
fn with_env_tls(_: ServeOptions, cert: &str, _: &str) -> Result<ServeOptions, ConfigError> {
    Err(env::error(
        env::ENV_METRICS_TLS_CERT,
        cert,
        "TLS needs ron-metrics built with the `tls` feature",
    ))
}

fn check_range(name: &str, v: u64, lo: u64, hi: u64) -> Result<(), String> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(format!("{name} = {v} is out of range {lo}..={hi}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<ServeOptions, ConfigError> {
        ServeOptions::from_env_source(&EnvSource::fixed(vars.iter().copied()))
    }

    #[test]
    fn addr_and_uds_together_or_half_tls_are_errors() {
        let e = env(&[
            ("RON_METRICS_ADDR", "127.0.0.1:1"),
            ("RON_METRICS_UDS", "/tmp/x.sock"),
        ]);
        assert!(e.err().unwrap().to_string().contains("RON_METRICS_UDS"));
        let e = env(&[("RON_METRICS_TLS_CERT", "/x.pem")]);
        assert!(
            e.err()
                .unwrap()
                .to_string()
                .starts_with("RON_METRICS_TLS_CERT = \"/x.pem\"")
        );
        assert!(env(&[("RON_METRICS_ADDR", "nope")]).is_err());
        assert!(env(&[("RON_METRICS_UDS", "relative.sock")]).is_err());
        assert!(env(&[("RON_METRICS_FOO", "1")]).is_err());
    }

    #[test]
    fn env_bind_is_recorded() {
        let o = env(&[("RON_METRICS_ADDR", "127.0.0.1:9100")]).unwrap();
        assert_eq!(
            o.env_bind(),
            Some(&BindTarget::Tcp("127.0.0.1:9100".parse().unwrap()))
        );
    }

    #[test]
    fn ranges_are_validated() {
        assert!(ServeOptions::default().validate().is_ok());
        assert!(
            ServeOptions::default()
                .max_connections(0)
                .validate()
                .is_err()
        );
        assert!(
            ServeOptions::default()
                .max_header_bytes(100)
                .validate()
                .is_err()
        );
        assert!(
            ServeOptions::default()
                .write_timeout(Duration::from_millis(50))
                .validate()
                .is_err()
        );
        assert!(
            ServeOptions::default()
                .saturation_flag(Some("Bad Name".into()))
                .validate()
                .is_err()
        );
    }

    #[test]
    fn bound_addr_displays_like_the_runbook() {
        assert_eq!(
            BoundAddr::Tcp("127.0.0.1:9100".parse().unwrap()).to_string(),
            "127.0.0.1:9100"
        );
        assert_eq!(
            BoundAddr::Uds("/run/ron/metrics.sock".into()).to_string(),
            "unix:/run/ron/metrics.sock"
        );
    }
}
