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
//! ([`listen`], [`runtime`]); the metric families so far ([`metrics`]).
//! Not yet: rate limits, the admin API, the access log, TLS listeners, upgrades,
//! connection caps, SIGUSR1/SIGUSR2 semantics, the benchmark.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod cli;
pub mod config;
pub mod errors;
pub mod forward;
pub mod health;
pub mod lb;
pub mod listen;
pub mod metrics;
pub mod pool;
pub mod proxy;
pub mod routing;
pub mod runtime;
pub mod snapshot;
pub mod tls;
pub mod upgrade;
