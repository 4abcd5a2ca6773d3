//! Realtime delivery (CHAT-R9, R18, R20): the hub, the WebSocket endpoints, the events
//! handlers publish, presence (node-local, or cluster-wide in Redis), and the Redis bus of
//! cluster mode (CHAT-R19).

pub mod client_frame;
pub mod cluster;
pub mod cluster_presence;
pub mod events;
pub mod hub;
pub mod presence;
pub mod ws;

pub use hub::{Api, CloseReason, Hub};
