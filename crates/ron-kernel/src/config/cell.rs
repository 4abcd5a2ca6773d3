//! [`ConfigCell`]: the live configuration, swapped atomically on a validated reload.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use super::Validate;
use super::error::{ConfigError, ConfigErrorKind, ConfigProblem, REDACTED};
use super::loader::{ConfigLoader, Loaded};

/// How a changed key takes effect on reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReloadClass {
    /// Applied by swapping the config (readers call [`ConfigCell::get`] each time).
    Live,
    /// Needs a restart (a listen address, a pool size); see [`ReloadPolicy`].
    Restart,
}

/// What to do when a reload changes a [`ReloadClass::Restart`] key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReloadPolicy {
    /// Keep the old value of each restart key and apply everything else.
    #[default]
    KeepOld,
    /// Apply nothing.
    RejectAll,
}

/// One key whose value differs between the running and the reloaded config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedKey {
    /// Dotted key path.
    pub key: String,
    /// The key's reload class.
    pub class: ReloadClass,
    /// Running value (JSON text, or `<redacted>`); `<unset>` if absent.
    pub old: String,
    /// Reloaded value (JSON text, or `<redacted>`); `<unset>` if absent.
    pub new: String,
}

/// The result of [`ConfigCell::reload`]; callers log it and count [`ReloadOutcome::as_str`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The new config is live.
    Applied {
        /// Keys now in effect with new values.
        changed: Vec<ChangedKey>,
        /// Restart keys that changed but kept their old value ([`ReloadPolicy::KeepOld`]).
        pending_restart: Vec<ChangedKey>,
    },
    /// The sources produce the same config as the running one.
    Unchanged,
    /// The new config does not load or validate; the old one stays.
    Invalid(ConfigError),
    /// A restart key changed under [`ReloadPolicy::RejectAll`]; the old config stays.
    Rejected {
        /// The restart keys that changed.
        restart_keys: Vec<ChangedKey>,
    },
}

/// The current configuration, readable without locks from any thread.
pub struct ConfigCell<T> {
    current: ArcSwap<T>,
    // Serialises reloads so two SIGHUP handlers can never interleave diff and swap.
    reloading: Mutex<()>,
}

const UNSET: &str = "<unset>";

impl ReloadOutcome {
    /// `applied`, `unchanged`, `invalid` or `rejected` (for metric labels and logs).
    pub fn as_str(&self) -> &'static str {
        match self {
            ReloadOutcome::Applied { .. } => "applied",
            ReloadOutcome::Unchanged => "unchanged",
            ReloadOutcome::Invalid(_) => "invalid",
            ReloadOutcome::Rejected { .. } => "rejected",
        }
    }

    /// Keys this outcome is about: applied, pending or rejected ones.
    pub fn changed_keys(&self) -> Vec<&str> {
        match self {
            ReloadOutcome::Applied {
                changed,
                pending_restart,
            } => changed
                .iter()
                .chain(pending_restart)
                .map(|c| c.key.as_str())
                .collect(),
            ReloadOutcome::Rejected { restart_keys } => {
                restart_keys.iter().map(|c| c.key.as_str()).collect()
            }
            ReloadOutcome::Unchanged | ReloadOutcome::Invalid(_) => Vec::new(),
        }
    }
}

impl fmt::Display for ReloadOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReloadOutcome::Invalid(err) => write!(f, "invalid: {err}"),
            other => write!(f, "{} [{}]", other.as_str(), other.changed_keys().join(",")),
        }
    }
}

impl<T> ConfigCell<T> {
    /// A cell holding `value`.
    pub fn new(value: T) -> Self {
        Self {
            current: ArcSwap::from_pointee(value),
            reloading: Mutex::new(()),
        }
    }

    /// The current configuration; hold the `Arc` for one unit of work, then ask again.
    pub fn get(&self) -> Arc<T> {
        self.current.load_full()
    }
}

impl<T> From<Loaded<T>> for ConfigCell<T> {
    fn from(loaded: Loaded<T>) -> Self {
        Self::new(loaded.value)
    }
}

impl<T: Serialize + DeserializeOwned + Validate> ConfigCell<T> {
    /// Re-runs `loader`, diffs against the current config and applies per `policy`.
    pub fn reload(&self, loader: &ConfigLoader<T>, policy: ReloadPolicy) -> ReloadOutcome {
        let _serial = self.reloading.lock();
        let loaded = match loader.load() {
            Ok(loaded) => loaded,
            Err(err) => return ReloadOutcome::Invalid(err),
        };
        let old = self.get();
        let (old_json, new_json) = match (to_json(&*old), to_json(&loaded.value)) {
            (Ok(o), Ok(n)) => (o, n),
            (Err(e), _) | (_, Err(e)) => return ReloadOutcome::Invalid(e),
        };
        let old_flat = flatten(&old_json);
        let new_flat = flatten(&new_json);
        let (restart, live): (Vec<ChangedKey>, Vec<ChangedKey>) =
            diff(&old_flat, &new_flat, loader)
                .into_iter()
                .partition(|c| c.class == ReloadClass::Restart);
        if restart.is_empty() && live.is_empty() {
            return ReloadOutcome::Unchanged;
        }
        if restart.is_empty() {
            self.current.store(Arc::new(loaded.value));
            return ReloadOutcome::Applied {
                changed: live,
                pending_restart: Vec::new(),
            };
        }
        if policy == ReloadPolicy::RejectAll {
            return ReloadOutcome::Rejected {
                restart_keys: restart,
            };
        }
        let mut merged = new_json;
        for change in &restart {
            set_path(&mut merged, &change.key, old_flat.get(&change.key).cloned());
        }
        let value: T = match serde_json::from_value(merged) {
            Ok(value) => value,
            Err(e) => return ReloadOutcome::Invalid(internal(e)),
        };
        if let Some(err) = loader.validation_error(&loaded.tree, value.validate()) {
            return ReloadOutcome::Invalid(err);
        }
        if live.is_empty() {
            return ReloadOutcome::Applied {
                changed: Vec::new(),
                pending_restart: restart,
            };
        }
        self.current.store(Arc::new(value));
        ReloadOutcome::Applied {
            changed: live,
            pending_restart: restart,
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for ConfigCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigCell")
            .field("current", &self.get())
            .finish()
    }
}

fn internal(e: serde_json::Error) -> ConfigError {
    ConfigError::from(ConfigProblem::new(
        ConfigErrorKind::WrongType,
        "(config)",
        None,
        "reload",
        format!("config does not round-trip through serde: {e}"),
    ))
}

fn to_json<T: Serialize>(value: &T) -> Result<Json, ConfigError> {
    serde_json::to_value(value).map_err(internal)
}

/// Leaf paths to values; lists and empty maps are leaves.
fn flatten(json: &Json) -> BTreeMap<String, Json> {
    fn walk(prefix: &str, json: &Json, out: &mut BTreeMap<String, Json>) {
        match json {
            Json::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&path, child, out);
                }
            }
            _ => {
                out.insert(prefix.to_owned(), json.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", json, &mut out);
    out
}

fn diff<T>(
    old: &BTreeMap<String, Json>,
    new: &BTreeMap<String, Json>,
    loader: &ConfigLoader<T>,
) -> Vec<ChangedKey> {
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|key| {
            let show = |v: Option<&Json>| match v {
                _ if loader.is_secret(key) => REDACTED.to_owned(),
                Some(v) => v.to_string(),
                None => UNSET.to_owned(),
            };
            ChangedKey {
                key: key.clone(),
                class: loader.class_of(key),
                old: show(old.get(key)),
                new: show(new.get(key)),
            }
        })
        .collect()
}

/// Sets (or with `None` removes) the leaf at a dotted path.
fn set_path(json: &mut Json, path: &str, value: Option<Json>) {
    let mut node = json;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let Json::Object(map) = node else { return };
        if parts.peek().is_none() {
            match value {
                Some(v) => {
                    map.insert(part.to_owned(), v);
                }
                None => {
                    map.remove(part);
                }
            }
            return;
        }
        node = map
            .entry(part.to_owned())
            .or_insert_with(|| Json::Object(serde_json::Map::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Cfg {
        bind: String,
        level: String,
        token: String,
    }

    impl Validate for Cfg {
        fn validate(&self) -> Vec<(String, String)> {
            Vec::new()
        }
    }

    fn loader(bind: &str, level: &str) -> ConfigLoader<Cfg> {
        ConfigLoader::new("t")
            .defaults(Cfg::default())
            .env_from([("T_BIND", bind), ("T_LEVEL", level), ("T_TOKEN", level)])
            .reload_class("bind", ReloadClass::Restart)
            .secret("token")
    }

    #[test]
    fn keep_old_applies_live_keys_and_keeps_restart_keys() {
        let cell = ConfigCell::from(loader("a:1", "info").load().unwrap());
        let out = cell.reload(&loader("b:2", "debug"), ReloadPolicy::KeepOld);
        let ReloadOutcome::Applied {
            changed,
            pending_restart,
        } = out
        else {
            panic!("expected applied, got {out:?}");
        };
        assert_eq!(pending_restart.len(), 1);
        assert_eq!(pending_restart[0].key, "bind");
        let keys: Vec<_> = changed.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["level", "token"]);
        assert_eq!(changed[1].old, REDACTED);
        let now = cell.get();
        assert_eq!((now.bind.as_str(), now.level.as_str()), ("a:1", "debug"));
    }

    #[test]
    fn same_sources_are_unchanged() {
        let cell = ConfigCell::from(loader("a", "info").load().unwrap());
        let before = cell.get();
        assert_eq!(
            cell.reload(&loader("a", "info"), ReloadPolicy::KeepOld),
            ReloadOutcome::Unchanged
        );
        assert!(Arc::ptr_eq(&before, &cell.get()));
    }

    #[test]
    fn outcome_labels_are_stable() {
        assert_eq!(ReloadOutcome::Unchanged.as_str(), "unchanged");
        let invalid = ReloadOutcome::Invalid(ConfigError::new("k", "v", "s", "w"));
        assert_eq!(invalid.as_str(), "invalid");
    }
}
