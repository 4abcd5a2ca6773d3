//! Environment spellings of the configuration keys (spec §2.2, decision 7).
//!
//! Key `a.b` is `RUSTCHAT_A__B`; every sectioned key also has the single-underscore
//! spelling `RUSTCHAT_<SECTION>_<KEY>`, resolved here against the fixed section list;
//! `RUSTCHAT_HOST`/`RUSTCHAT_PORT` are aliases of `server.host`/`server.port`. Every
//! other `RUSTCHAT_*` variable is an unknown key, except `RUSTCHAT_TEST_*`,
//! `RUSTCHAT_CONFIG` (names the file) and the variables Kubernetes injects for a Service
//! named `rustchat`, which are ignored. The key list is derived from the schema's
//! defaults, so a new key gets its spellings without touching this file.

use std::collections::BTreeSet;

use serde_json::Value as Json;

use super::raw::RawConfig;

/// Prefix of every rustchat variable (without the `_`).
pub const ENV_PREFIX: &str = "RUSTCHAT";
/// Names the TOML config file when `--config` is absent.
pub const ENV_CONFIG: &str = "RUSTCHAT_CONFIG";
/// Variables with this prefix belong to tests and are ignored.
pub const ENV_TEST_PREFIX: &str = "RUSTCHAT_TEST_";
/// The sections whose keys also accept `RUSTCHAT_<SECTION>_<KEY>`.
pub const SECTIONS: [&str; 12] = [
    "server", "db_pool", "db", "security", "jwt", "files", "ws", "cluster", "compat", "search",
    "log", "oauth",
];
/// The fields of an `oauth.providers.<name>` table.
pub const PROVIDER_FIELDS: [&str; 7] = [
    "issuer_url",
    "client_id",
    "client_secret",
    "display_name",
    "scopes",
    "allowed_email_domains",
    "link_by_email",
];
/// Extra aliases beyond the single-underscore forms.
const SHORT_ALIASES: [(&str, &str); 2] = [
    ("RUSTCHAT_HOST", "server.host"),
    ("RUSTCHAT_PORT", "server.port"),
];

/// The environment spellings of the schema, computed once per load.
#[derive(Debug, Clone)]
pub(crate) struct EnvSpellings {
    /// Every settable key (dotted), providers excluded.
    keys: BTreeSet<String>,
}

impl EnvSpellings {
    pub(crate) fn new() -> Self {
        let json = serde_json::to_value(RawConfig::default()).unwrap_or(Json::Null);
        let mut keys = BTreeSet::new();
        collect_leaves("", &json, &mut keys);
        Self { keys }
    }

    /// Every settable key (dotted) except the per-provider ones.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(String::as_str)
    }

    /// `(VAR, key)` for every spelling that is not the canonical one.
    pub(crate) fn aliases(&self) -> Vec<(String, String)> {
        let mut aliases: Vec<(String, String)> = self
            .keys
            .iter()
            .filter(|key| key.contains('.'))
            .map(|key| (single_underscore_var(key), key.clone()))
            .collect();
        aliases.extend(
            SHORT_ALIASES
                .iter()
                .map(|(var, key)| ((*var).to_owned(), (*key).to_owned())),
        );
        aliases
    }

    /// Accepts the key a canonical-form variable maps to, or says why not (with the
    /// closest real spelling when there is one).
    pub(crate) fn check(&self, var: &str, key: &str) -> Result<(), String> {
        if self.keys.contains(key) || is_provider_key(key) {
            return Ok(());
        }
        Err(match self.suggest(var, key) {
            Some(near) => format!("unknown key; did you mean {near}?"),
            None => format!(
                "unknown key: no setting is spelled like this (every key is listed in \
                 configs/rustchat.toml; {ENV_TEST_PREFIX}* is free for tests)"
            ),
        })
    }

    /// The known spelling closest to `var`, if it is close enough to be a typo.
    fn suggest(&self, var: &str, key: &str) -> Option<String> {
        let mut candidates: Vec<String> = self.keys.iter().map(|k| canonical_var(k)).collect();
        candidates.extend(self.aliases().into_iter().map(|(alias, _)| alias));
        let parts: Vec<&str> = key.split('.').collect();
        if let ["oauth", "providers", name, ..] = parts.as_slice() {
            candidates.extend(
                PROVIDER_FIELDS
                    .iter()
                    .map(|f| canonical_var(&format!("oauth.providers.{name}.{f}"))),
            );
        }
        candidates
            .into_iter()
            .map(|c| (edit_distance(var, &c), c))
            .filter(|(d, _)| *d <= 3)
            .min()
            .map(|(_, c)| c)
    }
}

/// Whether `(name, value)` is ignored rather than read: test variables, the config file
/// variable, and Kubernetes service links (`RUSTCHAT_SERVICE_HOST`,
/// `RUSTCHAT_SERVICE_PORT*`, `RUSTCHAT_PORT_<n>_<TCP|UDP>*`, and `RUSTCHAT_PORT` holding
/// `tcp://…` or `udp://…`).
pub fn is_ignored_env(name: &str, value: &str) -> bool {
    name.starts_with(ENV_TEST_PREFIX) || name == ENV_CONFIG || is_service_link(name, value)
}

/// Whether `(name, value)` is a variable Kubernetes injects for a Service named
/// `rustchat`.
pub fn is_service_link(name: &str, value: &str) -> bool {
    if name == "RUSTCHAT_SERVICE_HOST" || name.starts_with("RUSTCHAT_SERVICE_PORT") {
        return true;
    }
    if name == "RUSTCHAT_PORT" {
        return value.starts_with("tcp://") || value.starts_with("udp://");
    }
    let Some(rest) = name.strip_prefix("RUSTCHAT_PORT_") else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let proto = &rest[digits..];
    ["_TCP", "_UDP"].iter().any(|p| {
        proto
            .strip_prefix(p)
            .is_some_and(|tail| tail.is_empty() || tail.starts_with('_'))
    })
}

/// The canonical variable of `key` (`db_pool.max_connections` →
/// `RUSTCHAT_DB_POOL__MAX_CONNECTIONS`).
pub fn canonical_var(key: &str) -> String {
    format!(
        "{ENV_PREFIX}_{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

/// The single-underscore variable of a sectioned key (`db_pool.max_connections` →
/// `RUSTCHAT_DB_POOL_MAX_CONNECTIONS`).
pub fn single_underscore_var(key: &str) -> String {
    format!(
        "{ENV_PREFIX}_{}",
        key.replace('.', "_").to_ascii_uppercase()
    )
}

/// Whether `key` is `oauth.providers.<name>.<field>` with a known field. The name is
/// checked by validation, which can say what is wrong with it.
fn is_provider_key(key: &str) -> bool {
    let parts: Vec<&str> = key.split('.').collect();
    matches!(parts.as_slice(), ["oauth", "providers", _, field] if PROVIDER_FIELDS.contains(field))
}

fn collect_leaves(prefix: &str, json: &Json, out: &mut BTreeSet<String>) {
    match json {
        Json::Object(map) => {
            for (key, value) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                collect_leaves(&path, value, out);
            }
        }
        _ => {
            out.insert(prefix.to_owned());
        }
    }
}

/// Levenshtein distance, for typo suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sectioned_key_has_a_single_underscore_alias() {
        let spellings = EnvSpellings::new();
        let aliases = spellings.aliases();
        let find = |var: &str| {
            aliases
                .iter()
                .find(|(a, _)| a == var)
                .map(|(_, k)| k.as_str())
        };
        assert_eq!(
            find("RUSTCHAT_SECURITY_RATE_LIMIT_AUTH_PER_MINUTE"),
            Some("security.rate_limit_auth_per_minute")
        );
        assert_eq!(
            find("RUSTCHAT_DB_POOL_MAX_CONNECTIONS"),
            Some("db_pool.max_connections")
        );
        assert_eq!(find("RUSTCHAT_SERVER_PORT"), Some("server.port"));
        assert_eq!(find("RUSTCHAT_PORT"), Some("server.port"));
        assert_eq!(find("RUSTCHAT_HOST"), Some("server.host"));
        for section in SECTIONS {
            assert!(
                spellings
                    .keys()
                    .any(|k| k.starts_with(&format!("{section}."))),
                "section {section} has keys"
            );
        }
    }

    #[test]
    fn aliases_never_shadow_another_key_or_each_other() {
        let spellings = EnvSpellings::new();
        let canonical: BTreeSet<String> = spellings.keys().map(canonical_var).collect();
        let mut seen = BTreeSet::new();
        for (alias, key) in spellings.aliases() {
            assert!(
                !canonical.contains(&alias) || canonical_var(&key) == alias,
                "{alias}"
            );
            assert!(seen.insert(alias.clone()), "{alias} appears twice");
        }
    }

    #[test]
    fn kubernetes_service_links_are_recognised() {
        assert!(is_service_link("RUSTCHAT_SERVICE_HOST", "10.0.0.1"));
        assert!(is_service_link("RUSTCHAT_SERVICE_PORT", "3000"));
        assert!(is_service_link("RUSTCHAT_SERVICE_PORT_HTTP", "3000"));
        assert!(is_service_link("RUSTCHAT_PORT", "tcp://10.0.0.1:3000"));
        assert!(is_service_link(
            "RUSTCHAT_PORT_3000_TCP",
            "tcp://10.0.0.1:3000"
        ));
        assert!(is_service_link("RUSTCHAT_PORT_3000_TCP_ADDR", "10.0.0.1"));
        assert!(is_service_link("RUSTCHAT_PORT_53_UDP_PROTO", "udp"));
        assert!(!is_service_link("RUSTCHAT_PORT", "3000"));
        assert!(!is_service_link("RUSTCHAT_PORT_X_TCP", "1"));
        assert!(!is_service_link("RUSTCHAT_PORT_3000_TCPX", "1"));
        assert!(is_ignored_env("RUSTCHAT_TEST_ANYTHING", "1"));
        assert!(is_ignored_env("RUSTCHAT_CONFIG", "/etc/rustchat.toml"));
    }

    #[test]
    fn misspelt_keys_get_the_closest_spelling_suggested() {
        let spellings = EnvSpellings::new();
        let why = spellings
            .check("RUSTCHAT_DB_POOL__MAX_CONECTIONS", "db_pool.max_conections")
            .unwrap_err();
        assert_eq!(
            why,
            "unknown key; did you mean RUSTCHAT_DB_POOL__MAX_CONNECTIONS?"
        );
        let why = spellings
            .check("RUSTCHAT_NONSENSE", "nonsense")
            .unwrap_err();
        assert!(why.starts_with("unknown key: "), "{why}");
        assert!(
            spellings
                .check(
                    "RUSTCHAT_OAUTH__PROVIDERS__G__SCOPES",
                    "oauth.providers.g.scopes"
                )
                .is_ok()
        );
        let why = spellings
            .check(
                "RUSTCHAT_OAUTH__PROVIDERS__G__CLIENT_SECRT",
                "oauth.providers.g.client_secrt",
            )
            .unwrap_err();
        assert!(
            why.contains("RUSTCHAT_OAUTH__PROVIDERS__G__CLIENT_SECRET"),
            "{why}"
        );
    }

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
