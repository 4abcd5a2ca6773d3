//! rustchat's WebSocket client frames: any text is a bad frame or a well-formed action whose
//! ids are all valid and whose status lookups are capped, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustchat::ids::is_valid_id;
use rustchat::realtime::client_frame::{ClientAction, MAX_STATUS_IDS, parse};

fuzz_target!(|text: &str| {
    let Some(frame) = parse(text) else { return };
    match frame.action {
        ClientAction::UserTyping { channel_id, parent_id } => {
            assert!(channel_id.as_deref().is_none_or(is_valid_id));
            assert!(parent_id.is_empty() || is_valid_id(&parent_id));
        }
        ClientAction::GetStatuses(ids) => {
            assert!(ids.len() <= MAX_STATUS_IDS);
            assert!(ids.iter().all(|i| is_valid_id(i)));
        }
        _ => {}
    }
});
