//! rustchat load generator (spec `shared/specs/rustchat.md` §8, CHAT-R31; decision 16).
//!
//! Seeds a running rustchat through its API ([`seed`]), then simulates users that log in,
//! hold one WebSocket each and act at the spec's per-hour rates ([`sim`], [`ws`], request
//! shapes in [`api`]), every user from its own address in 127.1.0.0/16 ([`net`]). It measures
//! client-side API time per endpoint ([`metrics`]), checks Mattermost's health gates
//! ([`gates`]), measures post → WebSocket delivery and reconciles it ([`delivery`]), and
//! reports server metric deltas ([`scrape`]) and the CPU split and RSS ([`procstat`]).
//!
//! Drivers: `v4` (default; Mattermost-style) and `v1` (native). The spec's third driver,
//! `matrix` (a Synapse peer), is not part of this crate yet.
//!
//! Decisions where the spec is silent:
//! - Logins and WebSocket upgrades are reported but not gated (ramp-only, Argon2 by design).
//! - A timed-out call (> 10 s) enters the latency figures at 10 s; transport failures count
//!   with the 5xx.
//! - A call is counted in the window in which it completes.
//! - v4 has no search or file routes in rustchat's subset, so the v4 driver searches and
//!   uploads through `/api/v1` with the same token; its "unreads" reads the team's channel
//!   members (what Mattermost's webapp derives badges from).
//! - Status updates always send `online` (see [`api::status`]).
//! - The poster's own `posted` echo is not a delivery; deliveries are required only to
//!   sockets open from before the send until 10 s after it ([`delivery::GRACE`]).

pub mod api;
pub mod delivery;
pub mod gates;
pub mod metrics;
pub mod net;
pub mod opts;
pub mod procstat;
pub mod report;
pub mod run;
pub mod scrape;
pub mod seed;
pub mod sim;
pub mod ws;
