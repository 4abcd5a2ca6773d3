//! `ping`, `getClientConfigOld`, `getClientLicenseOld`.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::state::AppState;

/// Site name until the runtime settings table is read (`site.site_name` default).
pub const DEFAULT_SITE_NAME: &str = "RustChat";

/// `GET /system/ping`.
pub async fn ping(State(st): State<AppState>) -> Json<Value> {
    Json(
        json!({"status": "OK", "ActiveSearchBackend": "database", "version": st.cfg().compat.mattermost_version}),
    )
}

/// `GET /config/client?format=old`: a string map, as the old format is.
pub async fn client_config(State(st): State<AppState>) -> Json<Value> {
    let cfg = st.cfg();
    let t = |b: bool| if b { "true" } else { "false" };
    Json(json!({
        "Version": cfg.compat.mattermost_version,
        "BuildNumber": format!("rustchat-{}", env!("CARGO_PKG_VERSION")),
        "BuildHash": "rustchat",
        "BuildDate": "",
        "SiteName": DEFAULT_SITE_NAME,
        "SiteURL": cfg.site_url.clone().unwrap_or_default(),
        "EnableSignInWithEmail": t(true),
        "EnableSignInWithUsername": t(true),
        "EnableSignUpWithEmail": t(true),
        "EnableOpenServer": t(true),
        "EnableUserCreation": t(true),
        "EnableCustomEmoji": t(false),
        "EnablePostIconOverride": t(true),
        "DiagnosticsEnabled": t(false),
        "IsLicensed": t(false),
        "WebsocketURL": "",
        "WebsocketPort": "",
        "WebsocketSecurePort": "",
    }))
}

/// `GET /license/client?format=old`.
pub async fn client_license() -> Json<Value> {
    Json(json!({"IsLicensed": "false"}))
}
