//! Events and envelopes (MNG-R02).
//!
//! A server is generic over its event type `E`. [`Record`] is the binary's event type: an
//! immutable JSON value behind an `Arc`, so cloning it for several subscribers costs an
//! atomic increment, never an allocation. [`Envelope`] wraps an event with its feed and
//! per-feed sequence number; it is built on the publisher's stack and moved through the
//! queue, so carrying feed and seq costs nothing extra.

use std::fmt::Debug;
use std::sync::Arc;

use serde_json::Value;

/// What a server can carry.
pub trait Event: Send + Clone + Debug + 'static {
    /// JSON rendering for quarantine records and sinks; by default the `Debug` text as a
    /// JSON string.
    fn to_json(&self) -> Value {
        Value::String(format!("{self:?}"))
    }
}

/// Events that are JSON documents (needed by the JSON built-in feeds and processors).
pub trait JsonEvent: Event {
    /// Builds an event from a parsed JSON value.
    fn from_json(v: Value) -> Result<Self, String>;
    /// The value at a dot-separated path (a numeric segment indexes an array).
    fn field(&self, path: &str) -> Option<&Value>;
}

/// An immutable JSON value shared by reference count.
#[derive(Clone, Debug, PartialEq)]
pub struct Record(Arc<Value>);

impl Record {
    /// Wraps a value.
    pub fn new(v: Value) -> Self {
        Record(Arc::new(v))
    }
    /// The value.
    pub fn value(&self) -> &Value {
        &self.0
    }
}

impl From<Value> for Record {
    fn from(v: Value) -> Self {
        Record::new(v)
    }
}

impl Event for Record {
    fn to_json(&self) -> Value {
        (*self.0).clone()
    }
}

/// Walks a dot path through objects and arrays.
pub fn lookup<'a>(mut v: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(v);
    }
    for seg in path.split('.') {
        v = match v {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

impl JsonEvent for Record {
    fn from_json(v: Value) -> Result<Self, String> {
        Ok(Record::new(v))
    }
    fn field(&self, path: &str) -> Option<&Value> {
        lookup(&self.0, path)
    }
}

macro_rules! plain_events {
    ($($t:ty),*) => { $(impl Event for $t {})* };
}
plain_events!(
    u8, u16, u32, u64, i8, i16, i32, i64, usize, f32, f64, bool, String
);

/// An event with its origin, as processors receive it.
#[derive(Debug, Clone)]
pub struct Envelope<E> {
    pub(crate) feed: &'static str,
    pub(crate) feed_id: u32,
    pub(crate) seq: u64,
    pub(crate) event: E,
}

impl<E> Envelope<E> {
    /// Feed name.
    pub fn feed(&self) -> &str {
        self.feed
    }
    /// Feed index in this server.
    pub fn feed_id(&self) -> u32 {
        self.feed_id
    }
    /// Per-feed sequence number, from 1.
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// The event.
    pub fn event(&self) -> &E {
        &self.event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_paths_walk_objects_and_arrays() {
        let r = Record::new(json!({"a": {"b": [10, {"c": "x"}]}}));
        assert_eq!(r.field("a.b.0"), Some(&json!(10)));
        assert_eq!(r.field("a.b.1.c"), Some(&json!("x")));
        assert_eq!(r.field("a.z"), None);
        assert_eq!(r.field("a.b.x"), None);
    }

    #[test]
    fn default_json_is_the_debug_text() {
        assert_eq!(7u64.to_json(), json!("7"));
        let r = Record::new(json!({"k": 1}));
        assert_eq!(r.to_json(), json!({"k": 1}));
    }
}
