//! Presence (CHAT-R20), node-local: a user with a live connection here is `online` unless
//! they set a manual status (API or WebSocket), which sticks until they set `online`. A user
//! whose last connection closed is `offline` after [`OFFLINE_AFTER`] without reconnecting.
//! Changes go to the members of the user's teams as `status_change`.

use std::collections::HashMap;
use std::time::Duration;

use super::events;
use crate::state::AppState;
use crate::store::StoreResult;
use crate::store_read;

/// Grace after the last connection closes before the user turns offline.
pub const OFFLINE_AFTER: Duration = Duration::from_secs(5);
/// Accepted statuses.
pub const STATUSES: [&str; 4] = ["online", "away", "dnd", "offline"];

async fn manual_status(st: &AppState, user_id: &str) -> StoreResult<Option<String>> {
    let ids = vec![user_id.to_string()];
    let rows = store_read!(st.store, |c| ops::statuses(c, &ids).await)?;
    Ok(rows.into_iter().find(|s| s.manual).map(|s| s.status))
}

async fn announce(st: &AppState, user_id: &str, status: &str) {
    let uid = user_id.to_string();
    match store_read!(st.store, |c| ops::teammate_ids(c, &uid).await) {
        Ok(mut to) => {
            if !to.iter().any(|u| u == user_id) {
                to.push(user_id.to_string());
            }
            events::status_change(st, &to, user_id, status);
        }
        Err(e) => tracing::warn!(error = %e, "presence: teammates lookup failed"),
    }
}

/// The user's first connection here opened.
pub async fn connected(st: &AppState, user_id: &str) {
    match manual_status(st, user_id).await {
        Ok(None) => announce(st, user_id, "online").await,
        Ok(Some(_)) => {}
        Err(e) => tracing::warn!(error = %e, "presence: status lookup failed"),
    }
}

/// The user's last connection here closed: offline after the grace unless they came back.
pub fn disconnected(st: &AppState, user_id: &str) {
    let (st, uid) = (st.clone(), user_id.to_string());
    tokio::spawn(async move {
        tokio::time::sleep(OFFLINE_AFTER).await;
        if st.hub.user_connections(&uid) == 0 && matches!(manual_status(&st, &uid).await, Ok(None))
        {
            announce(&st, &uid, "offline").await;
        }
    });
}

/// Sets a status; anything but `online` sticks across reconnects.
pub async fn set(st: &AppState, user_id: &str, status: &str) -> StoreResult<()> {
    let (uid, s) = (user_id.to_string(), status.to_string());
    let manual = status != "online";
    crate::store_write!(st.store, |c| ops::set_status(c, &uid, &s, manual).await)?;
    let shown = if status == "online" && st.hub.user_connections(user_id) == 0 {
        "offline"
    } else {
        status
    };
    announce(st, user_id, shown).await;
    Ok(())
}

/// Effective statuses of `ids`: manual ones as stored, otherwise online when connected here.
pub async fn statuses(st: &AppState, ids: &[String]) -> StoreResult<HashMap<String, String>> {
    let want = ids.to_vec();
    let rows = store_read!(st.store, |c| ops::statuses(c, &want).await)?;
    let manual: HashMap<String, String> = rows
        .into_iter()
        .filter(|s| s.manual)
        .map(|s| (s.user_id, s.status))
        .collect();
    Ok(ids
        .iter()
        .map(|id| {
            let s = manual.get(id).cloned().unwrap_or_else(|| {
                if st.hub.user_connections(id) > 0 {
                    "online".into()
                } else {
                    "offline".into()
                }
            });
            (id.clone(), s)
        })
        .collect())
}
