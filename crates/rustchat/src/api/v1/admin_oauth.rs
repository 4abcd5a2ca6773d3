//! `GET/POST/DELETE /api/v1/admin/oauth/providers` (CHAT-R7, R22, R25): OIDC providers
//! managed at run time by a system_admin, stored in `oauth_providers` with the client
//! secret sealed at rest. Configured providers are listed too (`source: "config"`) but
//! can only be changed in the configuration.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

use super::tokens::require_system_admin;
use crate::api::json::Body;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::oidc::provider::ProviderDef;
use crate::state::AppState;
use crate::store::{StoredProvider, now_ms};
use crate::store_write;

/// Provider names are route segments and metric labels: `[a-z0-9-]{1,32}`.
fn provider_name(name: &str) -> ApiResult<()> {
    let ok = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation("name", "1-32 characters of a-z 0-9 -"))
    }
}

fn view(st: &AppState, d: &ProviderDef) -> Value {
    json!({
        "name": d.name,
        "issuer_url": d.issuer_url,
        "client_id": d.client_id,
        "display_name": d.display_name,
        "scopes": d.scopes.join(" "),
        "allowed_email_domains": d.allowed_email_domains,
        "link_by_email": d.link_by_email,
        "source": d.source,
        "redirect_uri": crate::oidc::redirect_uri(&st.cfg(), &d.name),
    })
}

/// `GET /admin/oauth/providers`: every provider, secrets never shown.
pub async fn list(State(st): State<AppState>, me: AuthUser) -> ApiResult<Json<Value>> {
    require_system_admin(&me)?;
    let defs = crate::oidc::definitions(&st.cfg(), &st.store, &st.at_rest).await?;
    Ok(Json(json!(
        defs.iter().map(|d| view(&st, d)).collect::<Vec<_>>()
    )))
}

/// `POST /admin/oauth/providers` `{name, issuer_url, client_id, client_secret,
/// display_name?, scopes?, allowed_email_domains?, link_by_email?}` → 201.
pub async fn create(
    State(st): State<AppState>,
    me: AuthUser,
    Body(mut body): Body<Value>,
) -> ApiResult<Response> {
    require_system_admin(&me)?;
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::invalid_json("expected a JSON object"));
    };
    let name = match obj.remove("name") {
        Some(Value::String(n)) => n,
        _ => {
            return Err(ApiError::validation(
                "name",
                "required: a-z 0-9 -, 1-32 characters",
            ));
        }
    };
    provider_name(&name)?;
    let cfg = st.cfg();
    if cfg.oauth.providers.contains_key(&name) {
        return Err(ApiError::conflict(
            "a provider of this name is configured in the server configuration",
        ));
    }
    let p = crate::config::provider_from_json(&name, body, cfg.is_production())
        .map_err(|(key, why)| ApiError::validation(key, why))?;
    if cfg.site_url.is_none() && cfg.is_production() {
        return Err(ApiError::validation(
            "site_url",
            "set RUSTCHAT_SITE_URL before adding OAuth providers: redirect URIs are built from it",
        ));
    }
    let row = StoredProvider {
        name: p.name.clone(),
        issuer_url: p.issuer_url.clone(),
        client_id: p.client_id.clone(),
        client_secret_enc: st.at_rest.encrypt(
            p.client_secret.expose().as_bytes(),
            &crate::oidc::secret_aad(&p.name),
        ),
        display_name: p.display_name.clone(),
        scopes: p.scopes.join(" "),
        allowed_email_domains: p.allowed_email_domains.join(" "),
        link_by_email: p.link_by_email,
        created_at: now_ms(),
    };
    store_write!(st.store, |c| ops::insert_provider(c, row).await)?;
    st.oidc.runtime(&cfg, &p.name);
    tracing::info!(provider = %p.name, by = %me.user.id, redirect_uri = %crate::oidc::redirect_uri(&cfg, &p.name), "auth: OAuth provider added");
    let d = crate::oidc::from_config(&p);
    let mut v = view(&st, &d);
    v["source"] = json!("admin");
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// `DELETE /admin/oauth/providers/{name}`.
pub async fn delete(
    State(st): State<AppState>,
    me: AuthUser,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    require_system_admin(&me)?;
    provider_name(&name)?;
    if st.cfg().oauth.providers.contains_key(&name) {
        return Err(ApiError::conflict(
            "configured providers are removed in the server configuration",
        ));
    }
    let n = name.clone();
    if !store_write!(st.store, |c| ops::delete_provider(c, &n).await)? {
        return Err(ApiError::not_found("OAuth provider"));
    }
    st.oidc.forget(&name);
    tracing::info!(provider = %name, by = %me.user.id, "auth: OAuth provider removed");
    Ok(Json(json!({"status": "ok"})))
}
