//! The three steps of an OIDC login (CHAT-R22), free of HTTP framing (the handlers in
//! `api::v1::oauth` turn results into redirects, cookies and JSON).
//!
//! 1. [`start`]: new `state` (256 random bits), `nonce` and PKCE verifier; the verifier is
//!    sealed at rest and the record stored for 300 s; the authorization URL is returned.
//! 2. [`callback`]: the `state` in the query must equal the one in the browser's cookie and
//!    be consumed (once); the code is exchanged with the verifier; the ID token is verified;
//!    the account is found, linked or created; a one-time exchange code (60 s) is stored.
//! 3. [`exchange`]: the exchange code (from its HttpOnly cookie) is consumed and the user
//!    returned for a session.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::idtoken::{self, Expect, Identity, TokenError};
use super::pending::{CODE_TTL, STATE_TTL, code_key, state_key};
use super::provider::{ProviderDef, ProviderError};
use crate::crypto::AtRest;
use crate::state::AppState;
use crate::store::{NewUser, StoreError, User, now_ms};
use crate::{ids, store_read, store_write};

/// Why a login step failed; each maps to one status and one UI error code.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// No provider of that name (404).
    #[error("unknown OAuth provider")]
    UnknownProvider,
    /// Breaker open or provider down (503, `provider_unavailable`).
    #[error("the identity provider is unavailable")]
    Unavailable,
    /// State absent from the query or the cookie (400, `state_invalid`).
    #[error("OAuth state missing")]
    StateMissing,
    /// Query and cookie differ, or the state belongs to another provider (400).
    #[error("OAuth state mismatch")]
    StateMismatch,
    /// Unknown, expired or already used state (400).
    #[error("OAuth state expired or already used")]
    StateUnknown,
    /// The provider's answer or the identity was refused (401, `login_failed`).
    #[error("login refused: {0}")]
    Refused(String),
    /// The exchange code is missing, expired or used (400).
    #[error("exchange code missing, expired or already used")]
    CodeInvalid,
    /// Storage failed (503/500).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl FlowError {
    /// The `error` query value for `/login?error=…`.
    pub fn ui_code(&self) -> &'static str {
        match self {
            FlowError::Unavailable => "provider_unavailable",
            FlowError::StateMissing | FlowError::StateMismatch | FlowError::StateUnknown => {
                "state_invalid"
            }
            FlowError::Store(_) => "provider_unavailable",
            _ => "login_failed",
        }
    }
}

/// What [`start`] stores under the state key.
#[derive(Serialize, Deserialize)]
struct StateRecord {
    /// Provider name.
    p: String,
    /// PKCE verifier, sealed (`oauth_pending.verifier:<sha256(state)>`).
    v: String,
    /// Nonce.
    n: String,
    /// Where the UI goes after the login.
    r: String,
}

/// What [`callback`] stores under the exchange-code key.
#[derive(Serialize, Deserialize)]
struct CodeRecord {
    /// User id.
    u: String,
    /// Where the UI goes after the login.
    r: String,
}

/// A started login: where to send the browser and the state for its cookie.
pub struct Started {
    /// The authorization URL.
    pub location: String,
    /// The state (also the cookie value).
    pub state: String,
}

/// A finished callback: the exchange code for its cookie and the UI path to land on.
pub struct Finished {
    /// One-time exchange code.
    pub code: String,
    /// Relative UI path.
    pub redirect: String,
}

fn verifier_aad(state: &str) -> String {
    AtRest::aad("oauth_pending", "verifier", &ids::sha256_hex(state))
}

fn timeout(st: &AppState) -> Duration {
    Duration::from_millis(u64::from(st.cfg().oauth.http_timeout_ms))
}

/// A safe post-login path: relative, same origin (`/x`, not `//host` or `/\host`), no
/// control characters, bounded; anything else becomes `/`.
pub fn safe_redirect(r: Option<&str>) -> String {
    match r {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.starts_with("/\\")
                && p.len() <= 512
                && !p.chars().any(|c| c.is_control() || c == '\\') =>
        {
            p.to_string()
        }
        _ => "/".to_string(),
    }
}

async fn provider(st: &AppState, name: &str) -> Result<ProviderDef, FlowError> {
    super::definition(&st.cfg(), &st.store, &st.at_rest, name)
        .await?
        .ok_or(FlowError::UnknownProvider)
}

fn unavailable(name: &str, e: &ProviderError) -> FlowError {
    tracing::warn!(provider = %name, error = %e, "auth: OAuth provider unavailable");
    FlowError::Unavailable
}

/// Step 1: the authorization URL for provider `name`.
pub async fn start(
    st: &AppState,
    name: &str,
    redirect: Option<&str>,
) -> Result<Started, FlowError> {
    let def = provider(st, name).await?;
    let cfg = st.cfg();
    let rt = st.oidc.runtime(&cfg, name);
    let (meta, _) = rt
        .discover(&def, st.oidc.http(), timeout(st))
        .await
        .map_err(|e| match e {
            ProviderError::Bad(msg) => {
                tracing::error!(provider = %name, error = %msg, "auth: OAuth provider discovery unusable");
                FlowError::Unavailable
            }
            e => unavailable(name, &e),
        })?;
    let state = ids::random_token("");
    let nonce = ids::random_token("");
    let verifier = ids::random_token("");
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let record = StateRecord {
        p: name.to_string(),
        v: st
            .at_rest
            .encrypt(verifier.as_bytes(), &verifier_aad(&state)),
        n: nonce.clone(),
        r: safe_redirect(redirect),
    };
    let value = serde_json::to_string(&record).map_err(|e| StoreError::Other(e.to_string()))?;
    st.oidc
        .pending
        .put(&state_key(&state), &value, STATE_TTL)
        .await?;
    let mut url = url::Url::parse(&meta.authorization_endpoint)
        .map_err(|e| FlowError::Refused(format!("authorization endpoint: {e}")))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &def.client_id)
        .append_pair("redirect_uri", &super::redirect_uri(&cfg, name))
        .append_pair("scope", &def.scopes.join(" "))
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    Ok(Started {
        location: url.into(),
        state,
    })
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
}

/// Step 2: the provider sent the browser back with `code` and `state`.
pub async fn callback(
    st: &AppState,
    name: &str,
    code: Option<&str>,
    provider_error: Option<&str>,
    query_state: Option<&str>,
    cookie_state: Option<&str>,
) -> Result<Finished, FlowError> {
    let (Some(qs), Some(cs)) = (query_state, cookie_state) else {
        tracing::error!(provider = %name, "auth: OAuth state missing");
        return Err(FlowError::StateMissing);
    };
    if !idtoken::constant_time_eq(qs.as_bytes(), cs.as_bytes()) {
        tracing::error!(provider = %name, "auth: OAuth state mismatch");
        return Err(FlowError::StateMismatch);
    }
    // Only well-formed states reach the store (they are our own 43-char tokens).
    let well_formed = qs.len() == 43
        && qs
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let taken = if well_formed {
        st.oidc.pending.take(&state_key(qs)).await?
    } else {
        None
    };
    let Some(raw) = taken else {
        tracing::error!(provider = %name, "auth: OAuth state mismatch: unknown, expired or already used");
        return Err(FlowError::StateUnknown);
    };
    let record: StateRecord = serde_json::from_str(&raw).map_err(|_| FlowError::StateUnknown)?;
    if record.p != name {
        tracing::error!(provider = %name, state_provider = %record.p, "auth: OAuth state mismatch: issued for another provider");
        return Err(FlowError::StateMismatch);
    }
    let verifier = st
        .at_rest
        .decrypt(&record.v, &verifier_aad(qs))
        .ok()
        .and_then(|v| String::from_utf8(v).ok())
        .ok_or_else(|| {
            tracing::error!(provider = %name, "auth: OAuth state mismatch: verifier does not decrypt");
            FlowError::StateUnknown
        })?;
    // The provider refused (user cancelled, consent denied): the state is consumed above,
    // so the attempt cannot be replayed.
    if let Some(e) = provider_error {
        let e: String = e.chars().take(64).collect();
        return Err(refused(
            st,
            name,
            &format!("the provider answered error={e}"),
        ));
    }
    let Some(code) = code.filter(|c| !c.is_empty() && c.len() <= 4096) else {
        return Err(refused(
            st,
            name,
            "the provider returned no authorization code",
        ));
    };
    let def = provider(st, name).await?;
    let cfg = st.cfg();
    let rt = st.oidc.runtime(&cfg, name);
    let (meta, keys) = rt
        .discover(&def, st.oidc.http(), timeout(st))
        .await
        .map_err(|e| unavailable(name, &e))?;
    let redirect_uri = super::redirect_uri(&cfg, name);
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let post_auth = meta.wants_post_auth();
    if post_auth {
        form.push(("client_id", def.client_id.as_str()));
        form.push(("client_secret", def.client_secret.expose()));
    }
    let basic = (!post_auth).then(|| (def.client_id.as_str(), def.client_secret.expose()));
    let body = match rt
        .call(
            st.oidc
                .http()
                .post_form(&meta.token_endpoint, &form, basic, timeout(st)),
        )
        .await
    {
        Ok(b) => b,
        Err(ProviderError::Bad(msg)) => {
            return Err(refused(
                st,
                name,
                &format!("token endpoint refused the code: {msg}"),
            ));
        }
        Err(e) => return Err(unavailable(name, &e)),
    };
    let token: TokenResponse = serde_json::from_slice(&body)
        .map_err(|_| refused(st, name, "token response is not JSON"))?;
    let id_token = token
        .id_token
        .ok_or_else(|| refused(st, name, "token response has no id_token"))?;
    let expect = Expect {
        issuer: &meta.issuer,
        client_id: &def.client_id,
        nonce: &record.n,
        now_secs: now_ms() / 1000,
    };
    let identity = match idtoken::verify(&id_token, &keys, &expect) {
        Err(TokenError::UnknownKey) => {
            let fresh = rt
                .refresh_keys(st.oidc.http(), timeout(st))
                .await
                .map_err(|e| unavailable(name, &e))?;
            match fresh {
                Some(keys) => idtoken::verify(&id_token, &keys, &expect),
                None => Err(TokenError::UnknownKey),
            }
        }
        other => other,
    }
    .map_err(|e| refused(st, name, &e.to_string()))?;
    let user = resolve_user(st, &def, &identity).await?;
    let exchange = ids::random_token("");
    let value = serde_json::to_string(&CodeRecord {
        u: user.id.clone(),
        r: record.r.clone(),
    })
    .map_err(|e| StoreError::Other(e.to_string()))?;
    st.oidc
        .pending
        .put(&code_key(&exchange), &value, CODE_TTL)
        .await?;
    tracing::info!(provider = %name, user_id = %user.id, "auth: OAuth callback accepted");
    Ok(Finished {
        code: exchange,
        redirect: record.r,
    })
}

fn refused(st: &AppState, name: &str, why: &str) -> FlowError {
    st.metrics.auth_attempt("oidc", false);
    tracing::warn!(provider = %name, reason = %why, "auth: OAuth login refused");
    FlowError::Refused(why.to_string())
}

/// Finds the account for a verified identity: by `(provider, sub)`; else by email when the
/// provider links by email; else a new account (if registration is open).
async fn resolve_user(st: &AppState, def: &ProviderDef, id: &Identity) -> Result<User, FlowError> {
    if !id.email_verified || id.email.is_empty() {
        return Err(refused(st, &def.name, "email missing or not verified"));
    }
    let domain = id.email.rsplit_once('@').map_or("", |(_, d)| d);
    if !def.allowed_email_domains.is_empty()
        && !def.allowed_email_domains.iter().any(|d| d == domain)
    {
        return Err(refused(st, &def.name, "email domain not allowed"));
    }
    let (p, sub) = (def.name.clone(), id.subject.clone());
    if let Some(u) = store_read!(st.store, |c| ops::user_by_identity(c, &p, &sub).await)? {
        return active(st, def, u);
    }
    let email = id.email.clone();
    if let Some(existing) = store_read!(st.store, |c| ops::user_by_email(c, &email).await)? {
        if !def.link_by_email {
            return Err(refused(
                st,
                &def.name,
                "an account with this email exists and the provider does not link by email",
            ));
        }
        let (p, sub, uid, em) = (
            def.name.clone(),
            id.subject.clone(),
            existing.id.clone(),
            id.email.clone(),
        );
        store_write!(st.store, |c| ops::link_identity(c, &p, &sub, &uid, &em)
            .await)?;
        tracing::info!(provider = %def.name, user_id = %existing.id, "auth: OAuth identity linked by email");
        return active(st, def, existing);
    }
    if !st.settings.load().enable_open_registration {
        return Err(refused(
            st,
            &def.name,
            "no account for this identity and open registration is disabled",
        ));
    }
    let base = super::names::base(id.preferred_username.as_deref(), &id.email);
    let names = super::names::candidates(&base);
    let display_name: String = id
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| base.clone())
        .chars()
        .take(crate::api::validate::MAX_DISPLAY_NAME)
        .collect();
    let new = NewUser {
        id: ids::new_id(),
        username: base.clone(),
        email: id.email.clone(),
        password_hash: None,
        display_name,
        is_bot: false,
    };
    let (p, sub) = (def.name.clone(), id.subject.clone());
    let user = store_write!(st.store, |c| ops::create_oidc_user(
        c, &p, &sub, &names, new
    )
    .await)?;
    tracing::info!(provider = %def.name, user_id = %user.id, username = %user.username, "auth: account registered through OAuth");
    Ok(user)
}

fn active(st: &AppState, def: &ProviderDef, u: User) -> Result<User, FlowError> {
    if u.active && !u.is_bot {
        Ok(u)
    } else {
        Err(refused(st, &def.name, "account deactivated"))
    }
}

/// Step 3: consumes the exchange code; returns the user and the UI path.
pub async fn exchange(st: &AppState, code: Option<&str>) -> Result<(User, String), FlowError> {
    let Some(code) = code.filter(|c| c.len() == 43) else {
        return Err(FlowError::CodeInvalid);
    };
    let raw = st
        .oidc
        .pending
        .take(&code_key(code))
        .await?
        .ok_or(FlowError::CodeInvalid)?;
    let rec: CodeRecord = serde_json::from_str(&raw).map_err(|_| FlowError::CodeInvalid)?;
    let uid = rec.u.clone();
    let user = store_read!(st.store, |c| ops::user_by_id(c, &uid).await)?;
    if !user.active {
        return Err(FlowError::CodeInvalid);
    }
    st.metrics.auth_attempt("oidc", true);
    Ok((user, rec.r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_origin_paths_are_kept_as_redirects() {
        assert_eq!(safe_redirect(Some("/channels/x?y=1")), "/channels/x?y=1");
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "/a\nb",
            "",
        ] {
            assert_eq!(safe_redirect(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_redirect(None), "/");
    }
}
