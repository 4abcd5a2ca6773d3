//! Client frames on the WebSocket (CHAT-R9): `{"action","seq","data"}` parsed and checked
//! once, before anything touches the database, so the handler only sees well-formed
//! actions and the parser can be fuzzed on its own (`fuzz/fuzz_targets/chat_ws_frame.rs`).

use serde_json::Value;

use crate::ids::is_valid_id;

/// Most ids one `get_statuses_by_ids` may ask about (more are ignored).
pub const MAX_STATUS_IDS: usize = 200;

/// A client action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAction {
    /// `user_typing {channel_id, parent_id}`; `None` when the channel id is malformed (the
    /// action is still acknowledged, nothing is sent).
    UserTyping {
        /// The channel.
        channel_id: Option<String>,
        /// The thread root, or empty.
        parent_id: String,
    },
    /// `ping`.
    Ping,
    /// `get_statuses_by_ids {user_ids}`: the well-formed ids, at most [`MAX_STATUS_IDS`].
    GetStatuses(Vec<String>),
    /// `presence` or `user_update_active_status` (activity only).
    Activity,
    /// Any other action name.
    Unknown,
}

/// One parsed frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFrame {
    /// `seq` (0 when absent or not an integer), echoed as `seq_reply`.
    pub seq: i64,
    /// The action.
    pub action: ClientAction,
}

/// Parses a text frame; `None` for anything that is not a JSON object (a bad frame, which
/// the caller counts towards the 1007 close).
pub fn parse(text: &str) -> Option<ClientFrame> {
    let v: Value = serde_json::from_str(text).ok()?;
    if !v.is_object() {
        return None;
    }
    let seq = v["seq"].as_i64().unwrap_or(0);
    let data = &v["data"];
    let action = match v["action"].as_str().unwrap_or("") {
        "user_typing" => {
            let ch = data["channel_id"].as_str().unwrap_or("");
            let parent = data["parent_id"].as_str().unwrap_or("");
            ClientAction::UserTyping {
                channel_id: is_valid_id(ch).then(|| ch.to_string()),
                parent_id: if is_valid_id(parent) {
                    parent.to_string()
                } else {
                    String::new()
                },
            }
        }
        "ping" => ClientAction::Ping,
        "get_statuses_by_ids" => ClientAction::GetStatuses(
            data["user_ids"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .filter(|s| is_valid_id(s))
                        .take(MAX_STATUS_IDS)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        ),
        "presence" | "user_update_active_status" => ClientAction::Activity,
        _ => ClientAction::Unknown,
    };
    Some(ClientFrame { seq, action })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_and_bad_ids_are_dropped() {
        let id = crate::ids::new_id();
        let f = parse(&format!(
            r#"{{"seq":3,"action":"user_typing","data":{{"channel_id":"{id}","parent_id":"../x"}}}}"#
        ))
        .unwrap();
        assert_eq!(f.seq, 3);
        assert_eq!(
            f.action,
            ClientAction::UserTyping {
                channel_id: Some(id.clone()),
                parent_id: String::new()
            }
        );
        let f = parse(&format!(
            r#"{{"seq":4,"action":"get_statuses_by_ids","data":{{"user_ids":["{id}","nope",1]}}}}"#
        ))
        .unwrap();
        assert_eq!(f.action, ClientAction::GetStatuses(vec![id]));
        assert_eq!(
            parse(r#"{"action":"ping"}"#).unwrap(),
            ClientFrame {
                seq: 0,
                action: ClientAction::Ping
            }
        );
        assert_eq!(
            parse(r#"{"action":"dance","seq":1}"#).unwrap().action,
            ClientAction::Unknown
        );
    }

    #[test]
    fn non_objects_are_bad_frames() {
        for t in ["", "[]", "1", "\"x\"", "{", "null", "{\"a\":}"] {
            assert!(parse(t).is_none(), "{t:?}");
        }
    }
}
