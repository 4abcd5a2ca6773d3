//! rustchat: a self-hosted team chat server (spec `shared/specs/rustchat.md`).
//!
//! What it is for: teams, channels, direct and group messages, threads, reactions,
//! mentions and unread state over a native JSON API (`/api/v1`), on embedded SQLite by
//! default or PostgreSQL. `cargo run -p rustchat` starts a working server with
//! `./data/rustchat.db` and no other setup.
//!
//! What it is for, concretely (issue 5 so far): the native API and WebSocket
//! (`/api/v1/ws`), the Mattermost v4 subset and `/api/v4/websocket` that the official
//! `@mattermost/client` drives (covered routes: `tests/compat/COVERAGE.md`), files, search,
//! incoming webhooks, personal access tokens and bots, per-IP rate limits and WebSocket caps,
//! runtime settings in `server_config`, SIGHUP reload, JSON logs, metrics, health.
//!
//! Cluster mode (issue 7, first increment): with `redis_url`, WebSocket events fan out
//! across nodes over Redis pub/sub with heartbeats, `cluster_nodes`, the bus counters and a
//! `redis` readiness warning while Redis is away (`realtime::cluster`).
//!
//! Not yet (issue 7): cluster-wide presence, `session_revoked`/`config_changed` bus
//! messages and the 1012 resync after a Redis gap, OIDC login (providers are validated, not
//! offered), at-rest encryption beyond webhook tokens and the load generator.
//!
//! Web UI (CHAT-R11, feature `web-ui`): `web` serves the browser client embedded from
//! `crates/rustchat/web/` (index.html, ES modules, CSS); see `docs/web-ui.md`.
//!
//! Layout: `config` (CHAT-R1-R3, R25), `store` (CHAT-R13: one SQL source compiled per
//! backend), `auth` (CHAT-R21), `api` (routes, JSON rules; `error` renders both dialects),
//! `realtime` (hub, WebSocket, presence, events: CHAT-R9, R18, R20), `ratelimit` (R23),
//! `settings` (R4), `health` (R8), `metrics` (R26), `server` (lifecycle), `cli` (modes).
//!
//! Decisions where the spec is silent (besides its §11):
//! - One SQL source for both backends: `store/ops.rs` is `include!`d into a SQLite and a
//!   PostgreSQL module; statements use `$N` placeholders, which SQLite also accepts.
//! - Request bodies with a NUL character are refused (400): PostgreSQL cannot store them.
//! - The `database` breaker opens after 5 consecutive connection failures and probes again
//!   after 2 s; `/ready` pings bypass it so readiness sees recovery at once.
//! - `GET /api/v1/__test/panic` exists only when `RUSTCHAT_TEST_PANIC_ROUTE` is set (the
//!   spec reserves `RUSTCHAT_TEST_*`); it proves panic containment against the binary.
//! - The systemd unit and env example live in `deploy/rustchat/` (the workspace layout)
//!   rather than the spec's `deploy/systemd/` and `deploy/env.example`.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod error;
pub mod health;
pub mod ids;
pub mod mentions;
pub mod metrics;
pub mod ratelimit;
pub mod realtime;
pub mod search_query;
pub mod server;
pub mod settings;
pub mod state;
pub mod store;
#[cfg(feature = "web-ui")]
pub mod web;
