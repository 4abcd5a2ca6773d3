//! `GET/PATCH /api/v1/admin/config` (CHAT-R4, R24): system_admin only. A PATCH merges the
//! given keys into the stored sections, is validated as a whole (400 naming the first bad
//! key, nothing written), then applied at once on this node and, in cluster mode, announced
//! as `config_changed` so every other node re-reads it at once.

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value};

use crate::api::json::Body;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::settings;
use crate::state::AppState;
use crate::{store_read, store_write};

fn admin(me: &AuthUser) -> ApiResult<()> {
    if me.user.is_system_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden("system_admin only"))
    }
}

/// `GET /admin/config`: the effective runtime settings.
pub async fn get(State(st): State<AppState>, me: AuthUser) -> ApiResult<Json<Value>> {
    admin(&me)?;
    Ok(Json(settings::to_json(&st.settings.load())))
}

/// `PATCH /admin/config`.
pub async fn patch(
    State(st): State<AppState>,
    me: AuthUser,
    Body(b): Body<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    admin(&me)?;
    let (site, auth, team, integ) = store_read!(st.store, |c| ops::server_config(c).await)?;
    let mut sections: Vec<(&str, Map<String, Value>)> = Vec::new();
    for (name, text) in [
        ("site", site),
        ("authentication", auth),
        ("team", team),
        ("integrations", integ),
    ] {
        let mut m = match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        if let Some(v) = b.get(name) {
            let Value::Object(patch) = v else {
                return Err(ApiError::validation(name, "must be an object"));
            };
            for (k, v) in patch {
                m.insert(k.clone(), v.clone());
            }
        }
        sections.push((name, m));
    }
    if let Some(k) = b
        .keys()
        .find(|k| !["site", "authentication", "team", "integrations"].contains(&k.as_str()))
    {
        return Err(ApiError::validation(k.clone(), "unknown section"));
    }
    let texts: Vec<String> = sections
        .iter()
        .map(|(_, m)| Value::Object(m.clone()).to_string())
        .collect();
    let (_, bad) = settings::apply(
        &settings::Settings::default(),
        &texts[0],
        &texts[1],
        &texts[2],
        &texts[3],
    );
    if let Some(first) = bad.first() {
        return Err(ApiError::validation(
            first.key.clone(),
            format!("{}: {}", first.reason, first.value),
        ));
    }
    let t = texts.clone();
    store_write!(st.store, |c| ops::put_server_config(
        c, &t[0], &t[1], &t[2], &t[3]
    )
    .await)?;
    settings::refresh(&st).await?;
    // CHAT-R4, R19: every other node re-reads at once, not at its next refresh tick.
    if let Some(c) = st.hub.cluster.get() {
        c.publish_config_changed();
    }
    tracing::info!(user_id = %me.user.id, "server_config changed by admin");
    Ok(Json(settings::to_json(&st.settings.load())))
}
