//! Realtime delivery (CHAT-R9, R18, R20): the hub, the WebSocket endpoints, the events
//! handlers publish, node-local presence, and the Redis bus of cluster mode (CHAT-R19).

pub mod cluster;
pub mod events;
pub mod hub;
pub mod presence;
pub mod ws;

pub use hub::{Api, CloseReason, Hub};
