//! Incoming webhooks (CHAT-R24, R25; spec §4.13, §4.14): `/api/v1/hooks/incoming` to
//! manage them, `POST /api/v1/hooks/{token}` (also `/hooks/{token}`) to post through one.
//!
//! The token is a random 26-character id that appears only in the hook's URL. The
//! database keeps its SHA-256 (the lookup key) and an `AtRest` ciphertext bound to the
//! row (AAD `incoming_webhooks.token:<id>`), so the URL can be shown again to the hook's
//! managers but a database dump reveals no usable token. A post made through a hook is
//! authored by the hook's creator and marked `props.from_webhook = "true"`.
//!
//! Not for: outgoing webhooks, slash commands, Slack attachments (unknown payload fields
//! are refused, as everywhere on the native API).

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::channels::{member_channel, visible_channel};
use super::posts::{CreatePostArgs, create_post};
use super::teams::{is_team_admin, require_team};
use crate::api::json::{Body, POST_LIMIT, parse as parse_json, read_limited};
use crate::api::validate;
use crate::auth::{AuthUser, Credential};
use crate::crypto::AtRest;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{IncomingHook, StoreError, now_ms};
use crate::{ids, store_read, store_write};

/// Path prefix of a hook's URL (the token follows).
pub const HOOK_PATH_PREFIX: &str = "/hooks/";
/// Longest hook description.
pub const MAX_DESCRIPTION: usize = 500;
/// Longest `username` override.
pub const MAX_OVERRIDE_USERNAME: usize = 64;
/// Longest `icon_url`.
pub const MAX_ICON_URL: usize = 1024;
/// The `messages_sent_total` source of hook posts.
pub const SOURCE_WEBHOOK: &str = "webhook";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateHook {
    channel_id: String,
    display_name: String,
    description: Option<String>,
}

#[derive(Deserialize)]
pub struct ListParams {
    team_id: Option<String>,
}

/// What a sender posts: `{text, username?, icon_url?, props?}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookPayload {
    text: String,
    username: Option<String>,
    icon_url: Option<String>,
    props: Option<Map<String, Value>>,
}

fn aad(hook_id: &str) -> String {
    AtRest::aad("incoming_webhooks", "token", hook_id)
}

/// Where links point: `site_url`, else `http://<Host>`, else a relative path.
fn base_url(st: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = st.cfg().site_url.clone() {
        return u;
    }
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(|h| format!("http://{h}"))
        .unwrap_or_default()
}

/// The native JSON of a hook; `url` is null when the stored token cannot be decrypted
/// (a different `encryption_key`).
fn render(st: &AppState, h: &IncomingHook, base: &str) -> Value {
    let url = match st.at_rest.decrypt(&h.token_enc, &aad(&h.id)) {
        Ok(t) => Some(format!(
            "{base}{HOOK_PATH_PREFIX}{}",
            String::from_utf8_lossy(&t)
        )),
        Err(e) => {
            tracing::warn!(hook_id = %h.id, error = %e, "webhook token cannot be decrypted");
            None
        }
    };
    json!({
        "id": h.id, "url": url, "channel_id": h.channel_id, "team_id": h.team_id,
        "creator_id": h.creator_id, "display_name": h.display_name,
        "description": h.description, "disabled": h.disabled, "created_at": h.created_at,
    })
}

/// `POST /hooks/incoming` `{channel_id, display_name, description?}`: team_admin of the
/// channel's team (or system_admin), who must be in the channel since posts are theirs.
pub async fn create(
    State(st): State<AppState>,
    me: AuthUser,
    headers: HeaderMap,
    Body(b): Body<CreateHook>,
) -> ApiResult<Response> {
    validate::id("channel_id", &b.channel_id)?;
    validate::chars(
        "display_name",
        &b.display_name,
        1,
        validate::MAX_DISPLAY_NAME,
    )?;
    let description = b.description.unwrap_or_default();
    validate::chars("description", &description, 0, MAX_DESCRIPTION)?;
    let (ch, _) = visible_channel(&st, &me, &b.channel_id).await?;
    if ch.team_id.is_empty() {
        return Err(ApiError::validation(
            "channel_id",
            "webhooks post to team channels, not to direct or group messages",
        ));
    }
    let m = require_team(&st, &me, &ch.team_id).await?;
    if !is_team_admin(&me, &m) {
        return Err(ApiError::forbidden(
            "only a team_admin of the channel's team or a system_admin creates webhooks",
        ));
    }
    member_channel(&st, &me, &ch.id).await?;
    if ch.is_archived() {
        return Err(ApiError::forbidden("channel is archived"));
    }
    let id = ids::new_id();
    let token = ids::new_id();
    let hook = IncomingHook {
        token_hash: ids::sha256_hex(&token),
        token_enc: st.at_rest.encrypt(token.as_bytes(), &aad(&id)),
        id,
        team_id: ch.team_id.clone(),
        channel_id: ch.id.clone(),
        creator_id: me.user.id.clone(),
        display_name: b.display_name,
        description,
        disabled: false,
        created_at: now_ms(),
    };
    let hook = store_write!(st.store, |c| ops::insert_hook(c, hook).await)?;
    let base = base_url(&st, &headers);
    Ok((StatusCode::CREATED, Json(render(&st, &hook, &base))).into_response())
}

/// `GET /hooks/incoming?team_id=`: the hooks the caller manages.
pub async fn list(
    State(st): State<AppState>,
    me: AuthUser,
    headers: HeaderMap,
    Query(q): Query<ListParams>,
) -> ApiResult<Json<Value>> {
    let team_id = q.team_id.filter(|t| !t.is_empty()).unwrap_or_default();
    if !team_id.is_empty() {
        require_team(&st, &me, &team_id).await?;
    }
    let uid = me.user.id.clone();
    let all = me.user.is_system_admin();
    let hooks = store_read!(st.store, |c| ops::managed_hooks(c, &uid, all, &team_id)
        .await)?;
    let base = base_url(&st, &headers);
    Ok(Json(json!(
        hooks
            .iter()
            .map(|h| render(&st, h, &base))
            .collect::<Vec<_>>()
    )))
}

/// `DELETE /hooks/incoming/{id}`: team_admin of the hook's team or system_admin.
pub async fn delete(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    validate::id("hook_id", &id)?;
    let hid = id.clone();
    let hook = store_read!(st.store, |c| ops::hook_by_id(c, &hid).await).map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found("webhook"),
        e => e.into(),
    })?;
    let m = require_team(&st, &me, &hook.team_id)
        .await
        .map_err(|_| ApiError::not_found("webhook"))?;
    if !is_team_admin(&me, &m) {
        return Err(ApiError::forbidden(
            "only a team_admin of the hook's team or a system_admin deletes webhooks",
        ));
    }
    store_write!(st.store, |c| ops::delete_hook(c, &id).await)?;
    Ok(Json(json!({"status": "ok"})))
}

/// `POST /hooks/{token}`: JSON `{text, username?, icon_url?, props?}` or a form with
/// `payload=<json>` → 200 `ok`. An unknown or disabled token (or a deactivated creator)
/// is 404.
pub async fn execute(
    State(st): State<AppState>,
    Path(token): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let hook = if ids::is_valid_id(&token) {
        let hash = ids::sha256_hex(&token);
        store_read!(st.store, |c| {
            match ops::enabled_hook_by_token_hash(c, &hash).await? {
                Some(h) => {
                    let u = ops::user_by_id(c, &h.creator_id).await?;
                    Ok(u.active.then_some((h, u)))
                }
                None => Ok(None),
            }
        })?
    } else {
        None
    };
    let Some((hook, creator)) = hook else {
        return Err(ApiError::not_found("webhook"));
    };
    // The webhook class is keyed by hook (CHAT-R23), checked once the hook is known.
    let ip = req
        .extensions()
        .get::<crate::ratelimit::ClientIp>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let decision = st
        .limits
        .check(crate::ratelimit::Class::Webhook, &hook.id, None);
    if let Some(d) = &decision
        && !d.allowed
    {
        st.limits
            .refused(&st, crate::ratelimit::Class::Webhook, &hook.id, &ip);
        return Ok(crate::ratelimit::too_many(d, "/hooks"));
    }
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let body = read_limited(req, POST_LIMIT).await?;
    let p: HookPayload = if form {
        let payload = form_value(&body, "payload").ok_or_else(|| {
            ApiError::validation("payload", "form bodies carry the JSON in a payload field")
        })?;
        parse_json(&payload)?
    } else {
        parse_json(&body)?
    };
    validate::message(&p.text, false).map_err(|e| ApiError::validation("text", e.message))?;
    let mut props = p.props.unwrap_or_default();
    if let Some(name) = p.username {
        validate::chars("username", &name, 1, MAX_OVERRIDE_USERNAME)?;
        if name.chars().any(char::is_control) {
            return Err(ApiError::validation(
                "username",
                "must not contain control characters",
            ));
        }
        props.insert("override_username".into(), json!(name));
    }
    if let Some(url) = p.icon_url {
        if !is_https_url(&url) {
            return Err(ApiError::validation(
                "icon_url",
                "must be an https:// URL of at most 1024 characters without spaces",
            ));
        }
        props.insert("override_icon_url".into(), json!(url));
    }
    props.insert("from_webhook".into(), json!("true"));
    let author = AuthUser {
        user: creator,
        credential: Credential::Token { id: hook.id },
    };
    let args = CreatePostArgs {
        message: p.text,
        root_id: None,
        file_ids: Vec::new(),
        client_msg_id: None,
        props: Some(props),
    };
    create_post(&st, &author, hook.channel_id, args).await?;
    st.metrics
        .messages_sent
        .with_label_values(&[SOURCE_WEBHOOK])
        .inc();
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "ok",
    )
        .into_response();
    if let Some(d) = &decision {
        crate::ratelimit::headers(d, &mut resp);
    }
    Ok(resp)
}

/// `https://` followed by at least a host, no whitespace or control characters.
fn is_https_url(url: &str) -> bool {
    url.len() <= MAX_ICON_URL
        && url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        && url.len() > 8
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The decoded value of `key` in an `application/x-www-form-urlencoded` body.
fn form_value(body: &[u8], key: &str) -> Option<Vec<u8>> {
    body.split(|&b| b == b'&').find_map(|pair| {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        (percent_decode(k) == key.as_bytes()).then(|| percent_decode(v))
    })
}

/// Form decoding: `+` is a space, `%XX` a byte; a malformed escape stays as written.
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h << 4) | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_payload_is_percent_decoded() {
        let body = b"a=1&payload=%7B%22text%22%3A+%22hi+there%22%7D&z";
        assert_eq!(
            form_value(body, "payload").unwrap(),
            br#"{"text": "hi there"}"#
        );
        assert_eq!(form_value(b"payload=100%", "payload").unwrap(), b"100%");
        assert_eq!(form_value(b"payload=%4", "payload").unwrap(), b"%4");
        assert!(form_value(b"text=x", "payload").is_none());
    }

    #[test]
    fn icon_urls_must_be_https() {
        assert!(is_https_url("https://example.com/a.png"));
        assert!(is_https_url("HTTPS://example.com/a.png"));
        for bad in [
            "http://example.com/a.png",
            "javascript:alert(1)",
            "https://",
            "https://a b",
            "",
        ] {
            assert!(!is_https_url(bad), "{bad}");
        }
    }
}
