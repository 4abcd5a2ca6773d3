//! rustchat: a self-hosted team chat server (spec `shared/specs/rustchat.md`).
//!
//! What it is for: teams, channels, direct and group messages, threads, reactions,
//! mentions and unread state over a native JSON API (`/api/v1`), on embedded SQLite by
//! default or PostgreSQL. `cargo run -p rustchat` starts a working server with
//! `./data/rustchat.db` and no other setup.
//!
//! What it is not for (yet, see the crate README section): the WebSocket hub, the
//! Mattermost v4 subset, files, search, webhooks, PATs, rate limits, clustering, OIDC and
//! the web UI land in later increments.
//!
//! Layout: `config` (CHAT-R1-R3, R25), `store` (CHAT-R13: one SQL source compiled per
//! backend), `auth` (CHAT-R21), `api` (routes, JSON rules, error rendering in `error`),
//! `health` (CHAT-R8), `metrics` (CHAT-R26), `server` (lifecycle), `cli` (modes).

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
pub mod search_query;
pub mod server;
pub mod state;
pub mod store;
