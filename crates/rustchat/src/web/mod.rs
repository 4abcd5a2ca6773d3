//! The embedded browser UI (CHAT-R11, feature `web-ui`).
//!
//! `crates/rustchat/web/` is compiled into the binary with `rust-embed`: `index.html` plus
//! plain ES modules and CSS under `static/` (no build step, no framework, nothing from a
//! CDN). This module only serves those files; the UI itself talks to the native API
//! (`/api/v1`) and WebSocket (`/api/v1/ws`) with the session cookie. See
//! `docs/web-ui.md` for the modules, the OIDC contract and the Markdown subset.
//!
//! Routing (decisions where §3.6 is silent):
//! - `GET /` always answers `index.html`; any other `GET`/`HEAD` that is not an API path
//!   (`/api`, `/hooks`, `/healthz`, `/readyz`, `/static`) answers `index.html` only when its
//!   `Accept` names `text/html`, so API clients and probes keep their JSON 404s. This is what
//!   makes UI routes such as `/login/complete` (the OIDC landing page) work.
//! - `GET /static/<file>` answers the embedded file with its content type, a strong ETag
//!   (the file's SHA-256, computed at build time), `If-None-Match` → 304, and
//!   `Cache-Control: no-cache` (the browser revalidates, so a new binary is picked up at once
//!   without versioned file names). `index.html` gets the same treatment.
//! - Every UI response, 304s included, carries exactly [`CSP`].

mod assets;
mod page;

pub use assets::{content_type, etag_matches};
pub use page::{is_api_path, page_for};

use axum::Router;
use axum::routing::get;

/// The Content-Security-Policy on every UI response (CHAT-R11, verbatim from the spec).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// `GET /` and `GET /static/{*path}`; other UI pages come through [`page_for`] in the
/// router's fallback.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(page::index))
        .route("/static/{*path}", get(page::asset))
}
