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
//! SIGHUP reload and SIGTERM drain, deploy files and the `tools` subcommands. Not built
//! yet (issue 3 stays open): the CAS (`/cas/b3/…`), live fill (`/edge/live/…`), the
//! amnesia RAM cache, CORS, `under_pressure`/`cas_reachable` readiness keys, REDbot and
//! the nginx benchmark. Those paths answer 404 until they exist.
//!
//! Decisions where the spec is silent or conflicts with ron-metrics:
//! - `tls_handshake_failures_total` is ron-metrics' unlabelled golden family; the `side`
//!   breakdown of spec decision 15 is `edge_tls_handshake_failures_total{side}`.
//! - `request_latency_seconds`, `rejected_total` and `io_timeouts_total` are the
//!   ron-metrics golden families, built with svc-edge's buckets and extended with its
//!   routes, reasons and ops, so each runbook grep finds one family.
//! - An unparseable `If-Range` is ignored (treated as absent), as §4.5's parsing rules say.
//! - Tile digests are computed per response for now (no digest cache yet).
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod admission;
pub mod app;
pub mod check;
pub mod cli;
pub mod conditional;
pub mod config;
pub mod cors;
pub mod digests;
pub mod dirpack;
pub mod errors;
pub mod http;
pub mod mapping;
pub mod metrics;
pub mod mime;
pub mod multipart;
pub mod paths;
pub mod pmtiles;
pub mod range;
pub mod respond;
pub mod server;
pub mod tiles;
pub mod tools;
