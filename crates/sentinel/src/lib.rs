//! `sentinel-proxy`: the stack's HTTP reverse proxy (spec shared/specs/sentinel.md).
//!
//! What it is for: accepting HTTP/1.x and HTTP/2 from clients, matching each request
//! against prioritised routes from a strict KDL file, and forwarding it to a pool of
//! upstream targets chosen by a load-balancing policy, with health checks, circuit
//! breakers and rate limits protecting the upstreams; reloading on SIGHUP and draining on
//! SIGTERM. What it is not for: caching, compression, ACME, forward proxying.
//!
//! Built so far (issue 4 stays open): the typed configuration ([`config`]) with the strict
//! KDL loader and the offline CLI commands ([`cli`]); the route table ([`routing`]); the
//! load-balancing policies ([`lb`]); per-target keep-alive pools ([`pool`]); the request
//! path with the request checks, header rewriting and correlation ids, static upstreams,
//! retries and response re-framing ([`proxy`], [`forward`], [`errors`]); active probes,
//! passive ejection and circuit breakers ([`health`]); the snapshot swapped by SIGHUP
//! reloads ([`snapshot`]); listeners with SO_REUSEPORT, the pid file and the SIGTERM drain
//! ([`listen`], [`runtime`]); https listeners with certificates swapped on reload
//! ([`tls`]); Upgrade tunnels ([`upgrade`]); per-route rate limits ([`ratelimit`]); the
//! access log and end-of-response accounting ([`access_log`], [`finish`]); SIGUSR1 and
//! SIGUSR2 ([`signals_ext`]); every metric family ([`metrics`]); the metrics/admin listener
//! with the admin API and its access control ([`admin`]).
//! Not yet: connection caps (SEN-R23), client body/send timeouts (R24), the smuggling and
//! limits test tables (T10, T11), reload-under-load and rolling-restart tests (T24, T26),
//! the reliability drills (T31), the systemd unit and smoke script, and the benchmark.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod cli;
pub mod config;
pub mod errors;
pub mod finish;
pub mod forward;
pub mod health;
pub mod lb;
pub mod listen;
pub mod metrics;
pub mod pool;
pub mod proxy;
pub mod ratelimit;
pub mod routing;
pub mod runtime;
pub mod signals_ext;
pub mod snapshot;
pub mod tls;
pub mod upgrade;
