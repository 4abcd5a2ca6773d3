//! Realtime delivery (CHAT-R9, R18, R20): the hub, the WebSocket endpoints, the events
//! handlers publish, and node-local presence.

pub mod events;
pub mod hub;
pub mod presence;
pub mod ws;

pub use hub::{Api, CloseReason, Hub};
