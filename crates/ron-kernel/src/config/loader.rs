//! [`ConfigLoader`]: defaults < files < dotenv < env < flags, merged leaf by leaf.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Validate;
use super::cell::ReloadClass;
use super::de::{DeError, NodeDe};
use super::env::{EnvKey, EnvRules, parse_dotenv};
use super::error::{ConfigError, ConfigErrorKind, ConfigProblem};
use super::formats::read_file;
use super::tree::{Node, Source, Value};

/// Decides whether an environment variable `(name, value)` is skipped before it is read.
type IgnoreEnv = Box<dyn Fn(&str, &str) -> bool + Send + Sync>;
/// Accepts or rejects (with a reason) the key a prefixed variable `(name, key)` maps to.
type CheckEnvKey = Box<dyn Fn(&str, &str) -> Result<(), String> + Send + Sync>;

/// Builds a `T` from layered sources; cheap to keep around and re-run on reload.
pub struct ConfigLoader<T> {
    rules: EnvRules,
    ignore_env: Vec<IgnoreEnv>,
    check_env_key: Option<CheckEnvKey>,
    defaults: Option<Result<Node, String>>,
    files: Vec<PathBuf>,
    dotenv: Vec<PathBuf>,
    env: Option<EnvInput>,
    given_env: Option<Vec<(String, String)>>,
    cli: Vec<Leaf>,
    secrets: Vec<String>,
    classes: Vec<(String, ReloadClass)>,
    schema: PhantomData<fn() -> T>,
}

/// A loaded configuration and where each of its values came from.
pub struct Loaded<T> {
    /// The validated configuration.
    pub value: T,
    pub(crate) tree: Node,
    pub(crate) ignored_env: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
enum EnvInput {
    Process,
    Given,
}

/// One untyped value from env or a flag.
#[derive(Debug, Clone)]
struct Leaf {
    key: String,
    raw: String,
    source: Source,
}

impl<T> ConfigLoader<T> {
    /// A loader whose environment variables start with `PREFIX_` (`prefix` in any case,
    /// with or without the trailing underscore). No layer is active until added.
    pub fn new(prefix: &str) -> Self {
        Self {
            rules: EnvRules::new(prefix),
            ignore_env: Vec::new(),
            check_env_key: None,
            defaults: None,
            files: Vec::new(),
            dotenv: Vec::new(),
            env: None,
            given_env: None,
            cli: Vec::new(),
            secrets: Vec::new(),
            classes: Vec::new(),
            schema: PhantomData,
        }
    }

    /// The lowest layer: a complete value, usually `T::default()`.
    pub fn defaults(mut self, value: T) -> Self
    where
        T: Serialize,
    {
        self.defaults = Some(
            serde_json::to_value(&value)
                .map(|json| Node::from_json(&json, &Source::Default))
                .map_err(|e| e.to_string()),
        );
        self
    }

    /// A config file; the format follows the extension (`.toml`, `.yaml`/`.yml`, `.json`).
    /// Several files layer in the order given. A missing file is an error.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.push(path.into());
        self
    }

    /// An optional `KEY=VALUE` file, read as environment variables that never override a
    /// variable already present in the environment. A missing file is skipped.
    pub fn dotenv(mut self, path: impl Into<PathBuf>) -> Self {
        self.dotenv.push(path.into());
        self
    }

    /// Reads `PREFIX_*` variables and aliases from the process environment at each load.
    pub fn env(mut self) -> Self {
        self.env = Some(EnvInput::Process);
        self
    }

    /// Like [`ConfigLoader::env`] but from the given variables instead of the process
    /// environment (tests, embedding). Dotenv files are also checked against these.
    pub fn env_from<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env = Some(EnvInput::Given);
        self.given_env = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// The highest layer: `(key_path, raw value, "--flag")` triples from the command line.
    pub fn cli<I, K, V, F>(mut self, flags: I) -> Self
    where
        I: IntoIterator<Item = (K, V, F)>,
        K: Into<String>,
        V: Into<String>,
        F: Into<String>,
    {
        self.cli
            .extend(flags.into_iter().map(|(key, raw, flag)| Leaf {
                key: key.into(),
                raw: raw.into(),
                source: Source::Flag(flag.into()),
            }));
        self
    }

    /// An extra variable name for `key_path` (e.g. `PORT` for `server.port`).
    pub fn env_alias(mut self, var: impl Into<String>, key_path: impl Into<String>) -> Self {
        self.rules.aliases.push((var.into(), key_path.into()));
        self
    }

    /// Variables starting with `prefix` belong to someone else and are never unknown keys.
    pub fn reserved_env_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.rules.reserved.push(prefix.into());
        self
    }

    /// Variables (from the environment or a dotenv file) for which `ignore(name, value)`
    /// is true are skipped before anything else looks at them, aliases included; their
    /// names are listed by [`Loaded::ignored_env`]. For variables that share the prefix
    /// but belong to someone else and cannot be told apart by a prefix alone (Kubernetes
    /// service links such as `APP_PORT=tcp://10.0.0.1:80`).
    pub fn ignore_env(
        mut self,
        ignore: impl Fn(&str, &str) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.ignore_env.push(Box::new(ignore));
        self
    }

    /// Checks the key every prefixed variable maps to (aliases are always accepted):
    /// `check(name, key)` returning `Err(why)` makes the variable an unknown-key problem
    /// reported together with every other layer problem, instead of the first serde error
    /// about an unknown field. `why` can suggest the intended spelling.
    pub fn check_env_key(
        mut self,
        check: impl Fn(&str, &str) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.check_env_key = Some(Box::new(check));
        self
    }

    /// Values at `key_path` (and below) print as `<redacted>` in errors and diffs. A `*`
    /// segment matches any one key (`providers.*.secret`).
    pub fn secret(mut self, key_path: impl Into<String>) -> Self {
        self.secrets.push(key_path.into());
        self
    }

    /// How a change at `key_path` (and below) is applied on reload; keys default to Live.
    pub fn reload_class(mut self, key_path: impl Into<String>, class: ReloadClass) -> Self {
        self.classes.push((key_path.into(), class));
        self
    }

    /// The canonical environment variable for `key_path` (`a.b` → `PREFIX_A__B`).
    pub fn env_var_for(&self, key_path: &str) -> String {
        self.rules.var_for(key_path)
    }

    /// Whether `key` is, or is inside, a key declared secret.
    pub(crate) fn is_secret(&self, key: &str) -> bool {
        self.secrets.iter().any(|s| within_pattern(key, s))
    }

    /// The class of the most specific declaration covering `key`.
    pub(crate) fn class_of(&self, key: &str) -> ReloadClass {
        self.classes
            .iter()
            .filter(|(path, _)| within(key, path))
            .max_by_key(|(path, _)| path.len())
            .map_or(ReloadClass::Live, |(_, class)| *class)
    }

    /// Runs every layer, deserialises and validates. Reports every problem it can: all
    /// layer problems at once, otherwise the first type error, otherwise every
    /// validation error.
    pub fn load(&self) -> Result<Loaded<T>, ConfigError>
    where
        T: DeserializeOwned + Validate,
    {
        let (tree, ignored_env) = self.merged_tree()?;
        let value: T = serde_path_to_error::deserialize(NodeDe(&tree))
            .map_err(|e| ConfigError::from(self.type_problem(e)))?;
        let loaded = Loaded {
            value,
            tree,
            ignored_env,
        };
        match self.validation_error(&loaded.tree, loaded.value.validate()) {
            Some(err) => Err(err),
            None => Ok(loaded),
        }
    }

    /// Maps `validate()` output to problems sourced from `tree`.
    pub(crate) fn validation_error(
        &self,
        tree: &Node,
        violations: Vec<(String, String)>,
    ) -> Option<ConfigError> {
        let problems = violations
            .into_iter()
            .map(|(key, why)| {
                let (value, source) = match tree.get(&key) {
                    Some(node) => (Some(node.render()), node.source.to_string()),
                    None => (None, tree.nearest(&key).source.to_string()),
                };
                self.problem(ConfigErrorKind::Invalid, key, value, source, why)
            })
            .collect();
        ConfigError::from_problems(problems)
    }

    fn merged_tree(&self) -> Result<(Node, Vec<String>), ConfigError> {
        let mut problems = Vec::new();
        let mut ignored = Vec::new();
        let mut tree = match &self.defaults {
            Some(Ok(node)) => node.clone(),
            Some(Err(why)) => {
                problems.push(ConfigProblem::new(
                    ConfigErrorKind::WrongType,
                    "defaults",
                    None,
                    "default",
                    format!("defaults cannot be serialised: {why}"),
                ));
                Node::empty_map(Source::Default)
            }
            None => Node::empty_map(Source::Default),
        };
        for path in &self.files {
            match read_file(path) {
                Ok(node) => tree.merge(node),
                Err(e) => problems.extend(e.problems().iter().cloned()),
            }
        }
        let env = self.environment();
        let dotenv = self.dotenv_leaves(&env, &mut problems, &mut ignored);
        tree.merge(self.leaves_to_tree(dotenv, &mut problems));
        if self.env.is_some() {
            let leaves = self.env_leaves(
                env.into_iter()
                    .map(|(var, value)| (var.clone(), value, Source::Env { var, dotenv: None })),
                &mut problems,
                &mut ignored,
            );
            tree.merge(self.leaves_to_tree(leaves, &mut problems));
        }
        tree.merge(self.leaves_to_tree(self.cli.clone(), &mut problems));
        match ConfigError::from_problems(problems) {
            Some(err) => Err(err),
            None => Ok((tree, ignored)),
        }
    }

    /// The environment this load sees, sorted so problems come out in a stable order.
    fn environment(&self) -> Vec<(String, String)> {
        if self.env.is_none() && self.dotenv.is_empty() {
            return Vec::new();
        }
        let mut vars: Vec<(String, String)> = match (self.env, &self.given_env) {
            (Some(EnvInput::Given), Some(given)) => given.clone(),
            _ => std::env::vars_os()
                .filter_map(|(k, v)| {
                    Some((k.into_string().ok()?, v.to_string_lossy().into_owned()))
                })
                .collect(),
        };
        vars.sort();
        vars
    }

    fn dotenv_leaves(
        &self,
        env: &[(String, String)],
        problems: &mut Vec<ConfigProblem>,
        ignored: &mut Vec<String>,
    ) -> Vec<Leaf> {
        let mut vars = Vec::new();
        for path in &self.dotenv {
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    problems.push(ConfigProblem::new(
                        ConfigErrorKind::Io,
                        "dotenv file",
                        Some(path.display().to_string()),
                        "loader",
                        format!("cannot read: {e}; check the path and permissions"),
                    ));
                    continue;
                }
            };
            let shown: Arc<str> = path.display().to_string().into();
            match parse_dotenv(&text, &shown) {
                Ok(parsed) => vars.extend(
                    parsed
                        .into_iter()
                        .filter(|v| !env.iter().any(|(name, _)| *name == v.name))
                        .map(|v| {
                            let source = Source::Env {
                                var: v.name.clone(),
                                dotenv: Some((shown.clone(), v.line)),
                            };
                            (v.name, v.value, source)
                        }),
                ),
                Err(e) => problems.extend(e.problems().iter().cloned()),
            }
        }
        self.env_leaves(vars.into_iter(), problems, ignored)
    }

    fn env_leaves(
        &self,
        vars: impl Iterator<Item = (String, String, Source)>,
        problems: &mut Vec<ConfigProblem>,
        ignored: &mut Vec<String>,
    ) -> Vec<Leaf> {
        let mut leaves = Vec::new();
        for (var, raw, source) in vars {
            // An empty value counts as unset, so `VAR=` can blank out a dotenv entry.
            if raw.is_empty() {
                continue;
            }
            if self.ignore_env.iter().any(|ignore| ignore(&var, &raw)) {
                ignored.push(var);
                continue;
            }
            let is_alias = self.rules.aliases.iter().any(|(alias, _)| *alias == var);
            match self.rules.classify(&var) {
                EnvKey::Ignore => {}
                EnvKey::Malformed => problems.push(self.problem(
                    ConfigErrorKind::UnknownKey,
                    var.clone(),
                    Some(raw),
                    source.to_string(),
                    format!(
                        "{var} does not name a key: use {}KEY or {}SECTION__KEY",
                        self.rules.prefix, self.rules.prefix
                    ),
                )),
                EnvKey::Key(key) => match &self.check_env_key {
                    Some(check) if !is_alias => match check(&var, &key) {
                        Ok(()) => leaves.push(Leaf { key, raw, source }),
                        Err(why) => {
                            // Redacted by the key it maps to: a misspelt secret stays secret
                            // as long as its key still lies under a secret path.
                            let problem = ConfigProblem::new(
                                ConfigErrorKind::UnknownKey,
                                var,
                                Some(raw),
                                source.to_string(),
                                why,
                            );
                            problems.push(if self.is_secret(&key) {
                                problem.redacted()
                            } else {
                                problem
                            });
                        }
                    },
                    _ => leaves.push(Leaf { key, raw, source }),
                },
            }
        }
        leaves
    }

    /// Builds one layer's tree, reporting two spellings of a key with different values.
    fn leaves_to_tree(&self, leaves: Vec<Leaf>, problems: &mut Vec<ConfigProblem>) -> Node {
        let mut by_key: BTreeMap<String, Leaf> = BTreeMap::new();
        for leaf in leaves {
            if let Some(first) = by_key.get(&leaf.key)
                && first.raw != leaf.raw
            {
                let other = if self.is_secret(&leaf.key) {
                    super::error::REDACTED.to_owned()
                } else {
                    format!("{:?}", leaf.raw)
                };
                problems.push(self.problem(
                    ConfigErrorKind::Conflict,
                    leaf.key.clone(),
                    Some(first.raw.clone()),
                    first.source.to_string(),
                    format!(
                        "conflicts with {} = {other}; set only one of them",
                        leaf.source
                    ),
                ));
                continue;
            }
            by_key.insert(leaf.key.clone(), leaf);
        }
        let mut tree = Node::empty_map(Source::Default);
        for (key, leaf) in by_key {
            tree.insert(&key, Node::new(Value::Raw(leaf.raw), leaf.source));
        }
        tree
    }

    fn type_problem(&self, err: serde_path_to_error::Error<DeError>) -> ConfigProblem {
        let mut key = render_path(err.path());
        let inner = err.into_inner();
        let (value, source, unknown) = match inner.at {
            Some(at) => (Some(at.value), at.source.to_string(), at.key),
            None => (None, Source::Default.to_string(), None),
        };
        let (kind, why) = if let Some(field) = unknown {
            // serde_path_to_error records the key on some paths and not on others.
            if key != field && !key.ends_with(&format!(".{field}")) {
                key = if key.is_empty() {
                    field
                } else {
                    format!("{key}.{field}")
                };
            }
            (
                ConfigErrorKind::UnknownKey,
                format!("{}; remove it or fix its spelling", inner.msg),
            )
        } else if inner.msg.starts_with("missing field") {
            (
                ConfigErrorKind::Missing,
                format!("{}; set it in a file, env or flag", inner.msg),
            )
        } else {
            (ConfigErrorKind::WrongType, inner.msg)
        };
        if key.is_empty() {
            key = "(root)".to_owned();
        }
        self.problem(kind, key, value, source, why)
    }

    fn problem(
        &self,
        kind: ConfigErrorKind,
        key: String,
        value: Option<String>,
        source: String,
        why: String,
    ) -> ConfigProblem {
        let secret = self.is_secret(&key);
        let problem = ConfigProblem::new(kind, key, value, source, why);
        if secret { problem.redacted() } else { problem }
    }
}

impl<T> Loaded<T> {
    /// Where the value at `key_path` came from (`cfg.toml:3`, `env P_A`, `flag --a`,
    /// `default`), if the key exists.
    pub fn source_of(&self, key_path: &str) -> Option<String> {
        self.tree.get(key_path).map(|n| n.source.to_string())
    }

    /// Variables skipped by [`ConfigLoader::ignore_env`], in the order seen (dotenv first).
    pub fn ignored_env(&self) -> &[String] {
        &self.ignored_env
    }

    /// The configuration value.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for Loaded<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loaded")
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for ConfigLoader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigLoader")
            .field("prefix", &self.rules.prefix)
            .field("files", &self.files)
            .field("dotenv", &self.dotenv)
            .field("env", &self.env.is_some())
            .field("flags", &self.cli.len())
            .finish_non_exhaustive()
    }
}

/// `key` equals `path` or lies below it.
pub(crate) fn within(key: &str, path: &str) -> bool {
    key == path
        || key
            .strip_prefix(path)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// Like [`within`], where a `*` segment of `pattern` matches any one key.
fn within_pattern(key: &str, pattern: &str) -> bool {
    if !pattern.split('.').any(|p| p == "*") {
        return within(key, pattern);
    }
    let mut keys = key.split('.');
    pattern
        .split('.')
        .all(|p| keys.next().is_some_and(|k| p == "*" || p == k))
}

fn render_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Cfg {
        port: u16,
        tags: Vec<String>,
        debug: bool,
        db: Db,
    }

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Db {
        password: String,
        pool: u32,
    }

    impl Validate for Cfg {
        fn validate(&self) -> Vec<(String, String)> {
            let mut v = Vec::new();
            if self.db.pool > 100 {
                v.push(("db.pool".into(), "must be at most 100".into()));
            }
            if self.port == 1 {
                v.push(("port".into(), "port 1 is reserved".into()));
            }
            v
        }
    }

    fn loader() -> ConfigLoader<Cfg> {
        ConfigLoader::new("app")
            .defaults(Cfg::default())
            .secret("db.password")
    }

    #[test]
    fn env_values_are_coerced_to_field_types() {
        let loaded = loader()
            .env_from([
                ("APP_PORT", "8080"),
                ("APP_TAGS", "a, b"),
                ("APP_DEBUG", "YES"),
            ])
            .load()
            .unwrap();
        assert_eq!(loaded.value.port, 8080);
        assert_eq!(loaded.value.tags, ["a", "b"]);
        assert!(loaded.value.debug);
        assert_eq!(loaded.source_of("port").as_deref(), Some("env APP_PORT"));
        assert_eq!(loaded.source_of("db.pool").as_deref(), Some("default"));
    }

    #[test]
    fn alias_and_canonical_variable_with_different_values_conflict() {
        let err = loader()
            .env_alias("PORT", "port")
            .env_from([("APP_PORT", "1"), ("PORT", "2")])
            .load()
            .unwrap_err();
        assert_eq!(err.kind(), ConfigErrorKind::Conflict);
        let text = err.to_string();
        assert!(
            text.contains("env APP_PORT") && text.contains("env PORT"),
            "{text}"
        );
    }

    #[test]
    fn same_value_under_two_spellings_is_fine() {
        let loaded = loader()
            .env_alias("PORT", "port")
            .env_from([("APP_PORT", "7"), ("PORT", "7")])
            .load()
            .unwrap();
        assert_eq!(loaded.value.port, 7);
    }

    #[test]
    fn every_validation_error_is_reported() {
        let err = loader()
            .cli([("port", "1", "--port"), ("db.pool", "500", "--pool")])
            .load()
            .unwrap_err();
        assert_eq!(err.problems().len(), 2);
        assert_eq!(err.problems()[1].source, "flag --port");
        assert_eq!(
            err.problems()[0].to_string(),
            r#"db.pool = "500" (flag --pool): must be at most 100"#
        );
    }

    #[test]
    fn wrong_type_on_a_secret_never_shows_the_value() {
        let err = loader()
            .env_from([("APP_DB", "hunter2")])
            .secret("db")
            .load()
            .unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn reserved_prefixes_are_not_unknown_keys() {
        let loaded = loader()
            .reserved_env_prefix("APP_METRICS_")
            .env_from([("APP_METRICS_ADDR", "x"), ("OTHER", "y")])
            .load();
        assert!(loaded.is_ok());
    }

    #[test]
    fn malformed_prefixed_variable_is_an_unknown_key() {
        let err = loader().env_from([("APP_", "1")]).load().unwrap_err();
        assert_eq!(err.kind(), ConfigErrorKind::UnknownKey);
    }

    #[test]
    fn ignored_variables_are_skipped_before_aliases_and_listed() {
        let loaded = loader()
            .env_alias("APP_LINK", "port")
            .ignore_env(|name, value| name == "APP_LINK" && value.starts_with("tcp://"))
            .env_from([("APP_LINK", "tcp://10.0.0.1:80"), ("APP_PORT", "8")])
            .load()
            .unwrap();
        assert_eq!(loaded.value.port, 8);
        assert_eq!(loaded.ignored_env(), ["APP_LINK"]);
    }

    #[test]
    fn rejected_env_keys_are_reported_all_at_once_naming_the_variable() {
        let err = loader()
            .env_alias("APP_DB_POOL", "db.pool")
            .check_env_key(|_, key| match key {
                "port" | "db.pool" => Ok(()),
                _ => Err(format!("no key {key}")),
            })
            .env_from([
                ("APP_PROT", "1"),
                ("APP_DB__POLL", "2"),
                ("APP_DB_POOL", "3"),
            ])
            .load()
            .unwrap_err();
        let problems = err.problems();
        assert_eq!(problems.len(), 2, "{err}");
        assert!(
            problems
                .iter()
                .all(|p| p.kind == ConfigErrorKind::UnknownKey)
        );
        assert_eq!(problems[0].key, "APP_DB__POLL");
        assert_eq!(problems[0].why, "no key db.poll");
        assert_eq!(problems[1].key, "APP_PROT");
    }

    #[test]
    fn secret_patterns_match_any_one_segment() {
        let l = loader().secret("db.*.token");
        assert!(l.is_secret("db.a.token"));
        assert!(l.is_secret("db.b.token.x"));
        assert!(!l.is_secret("db.a.name"));
        assert!(!l.is_secret("db.a"));
        assert!(l.is_secret("db.password"));
    }

    #[test]
    fn reload_classes_use_the_most_specific_declaration() {
        let l = loader()
            .reload_class("db", ReloadClass::Restart)
            .reload_class("db.pool", ReloadClass::Live);
        assert_eq!(l.class_of("db.password"), ReloadClass::Restart);
        assert_eq!(l.class_of("db.pool"), ReloadClass::Live);
        assert_eq!(l.class_of("dbx"), ReloadClass::Live);
        assert_eq!(l.env_var_for("db.pool"), "APP_DB__POOL");
    }
}
