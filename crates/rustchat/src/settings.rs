//! Runtime settings in the database (CHAT-R4): table `server_config`, row `default`, four
//! JSON sections. Read at start, every `server.config_refresh_seconds`, on SIGHUP and right
//! after an admin change. A value that fails its rule keeps the previous one and logs
//! ERROR `server_config invalid` (key, value); unknown keys are ignored so an older binary
//! tolerates settings a newer one added.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::state::AppState;
use crate::store::StoreResult;
use crate::store_read;

/// Effective runtime settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `site.max_simultaneous_connections`: WebSocket connections per user on one node.
    pub max_simultaneous_connections: u32,
    /// `site.max_file_size_mb`.
    pub max_file_size_mb: u32,
    /// `site.site_name`.
    pub site_name: String,
    /// `authentication.enable_open_registration`.
    pub enable_open_registration: bool,
    /// `authentication.enable_password_login`.
    pub enable_password_login: bool,
    /// `team.enable_team_creation` (system_admin always may).
    pub enable_team_creation: bool,
    /// `integrations.enable_incoming_webhooks`.
    pub enable_incoming_webhooks: bool,
    /// `integrations.enable_personal_access_tokens`.
    pub enable_personal_access_tokens: bool,
    /// `integrations.enable_bots`.
    pub enable_bots: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_simultaneous_connections: 5,
            max_file_size_mb: 50,
            site_name: "RustChat".into(),
            enable_open_registration: true,
            enable_password_login: true,
            enable_team_creation: true,
            enable_incoming_webhooks: true,
            enable_personal_access_tokens: true,
            enable_bots: true,
        }
    }
}

/// One rejected value.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub key: String,
    pub value: String,
    pub reason: &'static str,
}

fn uint(
    sec: &Map<String, Value>,
    name: &str,
    range: std::ops::RangeInclusive<u32>,
    key: &str,
    into: &mut u32,
    bad: &mut Vec<Invalid>,
) {
    if let Some(v) = sec.get(name) {
        match v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| range.contains(n))
        {
            Some(n) => *into = n,
            None => bad.push(Invalid {
                key: key.into(),
                value: v.to_string(),
                reason: "out of range",
            }),
        }
    }
}

fn flag(sec: &Map<String, Value>, name: &str, key: &str, into: &mut bool, bad: &mut Vec<Invalid>) {
    if let Some(v) = sec.get(name) {
        match v.as_bool() {
            Some(b) => *into = b,
            None => bad.push(Invalid {
                key: key.into(),
                value: v.to_string(),
                reason: "expected true or false",
            }),
        }
    }
}

/// Applies the four sections over `prev`; returns the result and what was rejected.
pub fn apply(
    prev: &Settings,
    site: &str,
    auth: &str,
    team: &str,
    integ: &str,
) -> (Settings, Vec<Invalid>) {
    let mut s = prev.clone();
    let mut bad = Vec::new();
    let obj = |text: &str, name: &str, bad: &mut Vec<Invalid>| -> Map<String, Value> {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            _ => {
                bad.push(Invalid {
                    key: name.into(),
                    value: text.chars().take(200).collect(),
                    reason: "not a JSON object",
                });
                Map::new()
            }
        }
    };
    let site = obj(site, "site", &mut bad);
    uint(
        &site,
        "max_simultaneous_connections",
        1..=1000,
        "site.max_simultaneous_connections",
        &mut s.max_simultaneous_connections,
        &mut bad,
    );
    uint(
        &site,
        "max_file_size_mb",
        1..=1024,
        "site.max_file_size_mb",
        &mut s.max_file_size_mb,
        &mut bad,
    );
    if let Some(v) = site.get("site_name") {
        match v.as_str().filter(|n| (1..=64).contains(&n.chars().count())) {
            Some(n) => s.site_name = n.to_string(),
            None => bad.push(Invalid {
                key: "site.site_name".into(),
                value: v.to_string(),
                reason: "1-64 characters",
            }),
        }
    }
    let auth = obj(auth, "authentication", &mut bad);
    flag(
        &auth,
        "enable_open_registration",
        "authentication.enable_open_registration",
        &mut s.enable_open_registration,
        &mut bad,
    );
    flag(
        &auth,
        "enable_password_login",
        "authentication.enable_password_login",
        &mut s.enable_password_login,
        &mut bad,
    );
    let team = obj(team, "team", &mut bad);
    flag(
        &team,
        "enable_team_creation",
        "team.enable_team_creation",
        &mut s.enable_team_creation,
        &mut bad,
    );
    let integ = obj(integ, "integrations", &mut bad);
    flag(
        &integ,
        "enable_incoming_webhooks",
        "integrations.enable_incoming_webhooks",
        &mut s.enable_incoming_webhooks,
        &mut bad,
    );
    flag(
        &integ,
        "enable_personal_access_tokens",
        "integrations.enable_personal_access_tokens",
        &mut s.enable_personal_access_tokens,
        &mut bad,
    );
    flag(
        &integ,
        "enable_bots",
        "integrations.enable_bots",
        &mut s.enable_bots,
        &mut bad,
    );
    (s, bad)
}

/// The settings as the admin API shows them.
pub fn to_json(s: &Settings) -> Value {
    json!({
        "site": {"max_simultaneous_connections": s.max_simultaneous_connections, "max_file_size_mb": s.max_file_size_mb, "site_name": s.site_name},
        "authentication": {"enable_open_registration": s.enable_open_registration, "enable_password_login": s.enable_password_login},
        "team": {"enable_team_creation": s.enable_team_creation},
        "integrations": {"enable_incoming_webhooks": s.enable_incoming_webhooks, "enable_personal_access_tokens": s.enable_personal_access_tokens, "enable_bots": s.enable_bots},
    })
}

/// Re-reads the row and swaps in the result.
pub async fn refresh(st: &AppState) -> StoreResult<()> {
    let (site, auth, team, integ) = store_read!(st.store, |c| ops::server_config(c).await)?;
    let prev = st.settings.load_full();
    let (next, bad) = apply(&prev, &site, &auth, &team, &integ);
    for b in &bad {
        tracing::error!(key = %b.key, value = %b.value, reason = b.reason, "server_config invalid");
    }
    if *prev != next {
        tracing::info!("server_config applied");
        st.settings.store(Arc::new(next));
    }
    Ok(())
}

/// Refreshes every `server.config_refresh_seconds` (re-read each round: it is reloadable).
pub async fn refresh_loop(st: AppState) {
    loop {
        let every = Duration::from_secs(u64::from(st.cfg().server.config_refresh_seconds.max(1)));
        tokio::time::sleep(every).await;
        if let Err(e) = refresh(&st).await {
            tracing::warn!(error = %e, "server_config refresh failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_values_apply_and_invalid_ones_keep_the_previous_value() {
        let prev = Settings::default();
        let (s, bad) = apply(
            &prev,
            r#"{"max_simultaneous_connections": 10, "max_file_size_mb": 0, "new_key": 1}"#,
            "{}",
            "{}",
            "{}",
        );
        assert_eq!(s.max_simultaneous_connections, 10);
        assert_eq!(
            s.max_file_size_mb, 50,
            "0 is out of range: previous value kept"
        );
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].key, "site.max_file_size_mb");
        let (s2, bad) = apply(
            &s,
            "not json",
            r#"{"enable_password_login": "yes"}"#,
            "{}",
            "{}",
        );
        assert_eq!(s2, s);
        assert_eq!(bad.len(), 2);
    }
}
