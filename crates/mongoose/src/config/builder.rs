//! `ServerConfig::builder()` (MNG-R08): a config assembled in Rust that goes through the very
//! deserializer YAML goes through, so defaults, `deny_unknown_fields`, `${env:}`/`${file:}`
//! substitution and type checks are identical. Range and reference checks then happen where
//! they happen for YAML: [`crate::embed::Server::from_config`] (or [`super::validate`]).

use serde_json::{Map, Value};

use super::{ConfigError, ServerConfig};

/// Builds a [`ServerConfig`] from the same keys a YAML file has (camelCase).
#[derive(Debug, Clone, Default)]
pub struct ServerConfigBuilder {
    doc: Map<String, Value>,
}

impl ServerConfig {
    /// A builder over an empty document (every key at its default).
    pub fn builder() -> ServerConfigBuilder {
        ServerConfigBuilder::default()
    }
}

impl ServerConfigBuilder {
    /// Sets a top-level key (`name`, `admin`, `health`, `retry`, ...) to `value`.
    pub fn set(mut self, key: &str, value: Value) -> Self {
        self.doc.insert(key.to_string(), value);
        self
    }

    /// `name`.
    pub fn name(self, name: &str) -> Self {
        self.set("name", Value::String(name.to_string()))
    }

    fn push(mut self, list: &str, entry: Value) -> Self {
        let slot = self
            .doc
            .entry(list.to_string())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = slot {
            items.push(entry);
        }
        self
    }

    /// Appends an `eventFeeds` entry.
    pub fn feed(self, entry: Value) -> Self {
        self.push("eventFeeds", entry)
    }

    /// Appends an `eventSinks` entry.
    pub fn sink(self, entry: Value) -> Self {
        self.push("eventSinks", entry)
    }

    /// Appends an `eventHandlers` entry (a group).
    pub fn group(self, entry: Value) -> Self {
        self.push("eventHandlers", entry)
    }

    /// Appends a `services` entry.
    pub fn service(self, entry: Value) -> Self {
        self.push("services", entry)
    }

    /// Appends a `pipes` entry.
    pub fn pipe(self, entry: Value) -> Self {
        self.push("pipes", entry)
    }

    /// The config, or the first error naming its key path (as a YAML parse error would).
    pub fn build(self) -> Result<ServerConfig, ConfigError> {
        serde_path_to_error::deserialize(Value::Object(self.doc)).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::invalid(path, "…", e.into_inner().to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn builds_the_struct_yaml_builds_and_names_bad_keys() {
        let built = ServerConfig::builder()
            .name("b")
            .feed(json!({"name": "in", "type": "memory"}))
            .group(json!({"agentName": "g", "processors": {"p": {"type": "log", "feeds": ["in"]}}}))
            .build()
            .unwrap();
        let yaml = super::super::from_yaml_str(
            "name: b\neventFeeds:\n  - {name: in, type: memory}\neventHandlers:\n  - agentName: g\n    processors:\n      p: {type: log, feeds: [in]}\n",
            "t.yaml",
        )
        .unwrap();
        assert_eq!(built, yaml);
        let e = ServerConfig::builder()
            .feed(json!({"name": "in", "type": "memory", "queueCapcity": 8}))
            .build()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("eventFeeds[0]") && e.contains("queueCapcity"),
            "{e}"
        );
    }
}
