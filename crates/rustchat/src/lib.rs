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
//! Cluster presence (spec §4.9), `config_changed` and the `redis` breaker: see
//! `docs/cluster.md` (keys, scores, sweeper, failure behaviour).
//!
//! OIDC login (CHAT-R22, `oidc`): authorization code + PKCE S256 + state + nonce, ID
//! tokens verified against the provider JWKS, cookie-only delivery, per-provider breakers,
//! providers from config or the admin API (client secrets sealed at rest).
//!
//! Web UI (CHAT-R11, feature `web-ui`): `web` serves the browser client embedded from
//! `crates/rustchat/web/` (index.html, ES modules, CSS); see `docs/web-ui.md`.
//!
//! Not yet (issue 7): the load generator.
//!
//! Layout: `config` (CHAT-R1-R3, R25), `store` (CHAT-R13: one SQL source compiled per
//! backend), `auth` (CHAT-R21), `api` (routes, JSON rules; `error` renders both dialects),
//! `realtime` (hub, WebSocket, presence, events: CHAT-R9, R18, R20), `ratelimit` (R23),
//! `settings` (R4), `health` (R8), `metrics` (R26), `oidc` (R22), `server` (lifecycle),
//! `cli` (modes).
//!
//! Decisions where the spec is silent (besides its §11):
//! - One SQL source for both backends: `store/ops.rs` is `include!`d into a SQLite and a
//!   PostgreSQL module; statements use `$N` placeholders, which SQLite also accepts.
//! - Request bodies with a NUL character are refused (400): PostgreSQL cannot store them.
//! - The `database` breaker opens after 5 consecutive connection failures and probes again
//!   after 2 s; `/ready` pings bypass it so readiness sees recovery at once.
//! - `GET /api/v1/__test/panic` exists only when `RUSTCHAT_TEST_PANIC_ROUTE` is set (the
//!   spec reserves `RUSTCHAT_TEST_*`); it proves panic containment against the binary.
//! - The `redis` breaker opens after 3 consecutive Redis failures, probes after 5 s and
//!   closes on one success; publishes and presence calls share it. `rustchat:presence:online`
//!   holds the users announced online (score: latest connection expiry, or the clean-close
//!   time during the 5 s grace); `RUSTCHAT_TEST_PRESENCE_TIMING` shortens the presence
//!   periods for tests only. Details: `docs/cluster.md`.
//! - The binary allocates with mimalloc, not glibc malloc (`src/main.rs`): at 5,000 users
//!   glibc's allocator cost ~14 % of the server's CPU and its fragmentation about half of
//!   the RSS (bench/rustchat/RESULTS.md, runs P and H).
//! - A `status` put that leaves the stored manual status as it is writes nothing (only
//!   manual statuses are read back); the change is still announced to teammates.
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
pub mod oidc;
pub mod ratelimit;
pub mod realtime;
pub mod search_query;
pub mod server;
pub mod settings;
pub mod state;
pub mod store;
#[cfg(feature = "web-ui")]
pub mod web;
