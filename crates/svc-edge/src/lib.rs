//! `svc-edge`: the stack's edge asset server.
//!
//! What it is for: serving immutable bytes (files from directory packs, PMTiles v3
//! archives and their tiles, objects from a BLAKE3 content-addressed store) with strong
//! `b3:` ETags and RFC 9110 conditionals and ranges, shedding load early, and filling
//! objects from allow-listed HTTPS origins.
//!
//! What it is not for: uploads or write APIs, invalidation, directory listings, on-the-fly
//! compression, authentication (done upstream).
//!
//! Built so far: config layering and validation, `--check-config`, both listeners,
//! directory packs and PMTiles archives verified at mount, `/edge/assets`, tiles and
//! TileJSON with content-coding negotiation, RFC 9110 preconditions, single and
//! multipart ranges, admission (body cap, method, RPS bucket, inflight permits, request
//! deadline), JSON errors, the §5.1 families, JSON logs with `event` on every line,
//! SIGHUP reload and SIGTERM drain, deploy files and the `tools` subcommands, CORS, and
//! the sharded BLAKE3 CAS with atomic writes and verify-on-first-read ([`cas`]) behind
//! `/cas/b3/{hex}`, the amnesia RAM cache ([`ramcache`]), and allow-listed live fill
//! ([`fill`]) behind `/edge/live/{host}/{path}[?b3=]` with address vetting, pinned
//! connections, redirects, retries and single-flight over a bounded queue, plus the
//! `cas_reachable` readiness key and the fill queue in `under_pressure`.
//!
//! Decisions where the spec is silent or conflicts with ron-metrics:
//! - `tls_handshake_failures_total` is ron-metrics' unlabelled golden family; the `side`
//!   breakdown of spec decision 15 is `edge_tls_handshake_failures_total{side}`.
//! - `request_latency_seconds`, `rejected_total` and `io_timeouts_total` are the
//!   ron-metrics golden families, built with svc-edge's buckets and extended with its
//!   routes, reasons and ops, so each runbook grep finds one family.
//! - An unparseable `If-Range` is ignored (treated as absent), as §4.5's parsing rules say.
//! - Without `cas_dir` (and without amnesia) fills and `/cas/b3` use an empty RAM cache:
//!   offline mode then has nothing stored, and since `cas_dir` needs a restart, a SIGHUP
//!   into live mode fills RAM until the restart. Offline mode opens an existing CAS
//!   writable when it can (quarantine, a later switch to live), read-only otherwise.
//! - A live request that times out at its own deadline counts
//!   `io_timeouts_total{op="fill"}`; the fill itself goes on and counts separately only
//!   if it too runs out of time.
//! - Besides §5.1's `edge_inflight`, the configured cap is exported as the unlabelled gauge
//!   `edge_inflight_limit` (following SIGHUP), so the runbook's §10 signal "inflight ≥ 80 %
//!   of the cap for 3m" is a PromQL ratio (alert `EdgeInflightNearCap` in deploy/).
//! - Tile digests live in a lock-free direct-mapped cache of 65,536 slots per archive
//!   ([`digests`]); a collision just re-hashes the tile.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod admission;
pub mod app;
pub mod cas;
pub mod check;
pub mod cli;
pub mod conditional;
pub mod config;
pub mod conn_io;
pub mod cors;
pub mod digests;
pub mod dirpack;
pub mod errors;
pub mod fill;
pub mod http;
pub mod mapping;
pub mod metrics;
pub mod mime;
pub mod multipart;
pub mod paths;
pub mod pmtiles;
pub mod ramcache;
pub mod range;
pub mod respond;
pub mod server;
pub mod stored;
pub mod tiles;
pub mod tools;
