//! Authentication (CHAT-R21): passwords, session JWTs, personal access tokens, and the
//! extractor that turns a request's credentials into an [`AuthUser`].

pub mod extract;
pub mod jwt;
pub mod password;

pub use extract::{AuthUser, Credential};

/// Prefix of personal access and bot tokens.
pub const PAT_PREFIX: &str = "rct_";
/// Session cookie name (browser UI).
pub const SESSION_COOKIE: &str = "rustchat_session";
/// CSRF cookie name; its value must come back in `X-CSRF-Token` on unsafe methods.
pub const CSRF_COOKIE: &str = "rustchat_csrf";
/// CSRF header name.
pub const CSRF_HEADER: &str = "x-csrf-token";
