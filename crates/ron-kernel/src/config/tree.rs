//! The layered value tree: every leaf remembers which layer and line it came from.
//!
//! Each layer (defaults, files, dotenv, env, flags) is turned into a [`Node`] tree; trees
//! merge leaf by leaf, and the merged tree is deserialised by [`super::de`]. Keeping the
//! source on every node is what lets an error deep inside serde name `FILE:LINE` or
//! `env VAR`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The compiled-in defaults.
    Default,
    /// A config file, with the line when the parser knows it.
    File {
        /// Path as given to the loader.
        path: Arc<str>,
        /// 1-based line.
        line: Option<u32>,
    },
    /// An environment variable, possibly read from a dotenv file.
    Env {
        /// Variable name.
        var: String,
        /// Dotenv file and line, when the variable came from one.
        dotenv: Option<(Arc<str>, u32)>,
    },
    /// A command-line flag.
    Flag(String),
}

/// A scalar or container in the tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    /// A string typed as such by its file format.
    Str(String),
    /// Untyped text from env or a flag: coerced to whatever the schema expects.
    Raw(String),
    List(Vec<Node>),
    Map(BTreeMap<String, Node>),
}

/// A value plus its origin.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) value: Value,
    pub(crate) source: Source,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File {
                path,
                line: Some(line),
            } => write!(f, "{path}:{line}"),
            Source::File { path, line: None } => f.write_str(path),
            Source::Env { var, dotenv: None } => write!(f, "env {var}"),
            Source::Env {
                var,
                dotenv: Some((path, line)),
            } => write!(f, "env {var} from {path}:{line}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

impl Node {
    pub(crate) fn new(value: Value, source: Source) -> Self {
        Self { value, source }
    }

    pub(crate) fn empty_map(source: Source) -> Self {
        Self::new(Value::Map(BTreeMap::new()), source)
    }

    /// Converts serialised defaults; every node gets `source`.
    pub(crate) fn from_json(json: &serde_json::Value, source: &Source) -> Self {
        use serde_json::Value as J;
        let value = match json {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => Value::Int(i128::from(i)),
                (_, Some(u), _) => Value::Int(i128::from(u)),
                (_, _, Some(x)) => Value::Float(x),
                _ => Value::Null,
            },
            J::String(s) => Value::Str(s.clone()),
            J::Array(items) => {
                Value::List(items.iter().map(|i| Node::from_json(i, source)).collect())
            }
            J::Object(map) => Value::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), Node::from_json(v, source)))
                    .collect(),
            ),
        };
        Node::new(value, source.clone())
    }

    /// Lays `top` over `self`: maps merge key by key, anything else is replaced whole
    /// (lists included, so a layer never appends to a lower layer's list).
    pub(crate) fn merge(&mut self, top: Node) {
        match (&mut self.value, top.value) {
            (Value::Map(base), Value::Map(over)) => {
                for (key, node) in over {
                    match base.get_mut(&key) {
                        Some(existing) => existing.merge(node),
                        None => {
                            base.insert(key, node);
                        }
                    }
                }
            }
            (_, value) => {
                self.value = value;
                self.source = top.source;
            }
        }
    }

    /// Sets `path` (dotted) to `leaf`, creating intermediate maps attributed to the leaf's
    /// source and replacing any non-map on the way.
    pub(crate) fn insert(&mut self, path: &str, leaf: Node) {
        let mut node = self;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            if !matches!(node.value, Value::Map(_)) {
                *node = Node::empty_map(leaf.source.clone());
            }
            let Value::Map(map) = &mut node.value else {
                unreachable!("replaced by a map just above")
            };
            if parts.peek().is_none() {
                map.insert(part.to_owned(), leaf);
                return;
            }
            node = map
                .entry(part.to_owned())
                .or_insert_with(|| Node::empty_map(leaf.source.clone()));
        }
    }

    /// The node at a dotted path; `[i]` segments index lists.
    pub(crate) fn get(&self, path: &str) -> Option<&Node> {
        let mut node = self;
        for part in path_segments(path) {
            node = match (&node.value, part) {
                (Value::Map(map), Segment::Key(key)) => map.get(key)?,
                (Value::List(items), Segment::Index(i)) => items.get(i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The deepest existing node along `path` (for sources of validation errors about
    /// keys that only exist after defaults were applied).
    pub(crate) fn nearest(&self, path: &str) -> &Node {
        let mut node = self;
        for part in path_segments(path) {
            let next = match (&node.value, part) {
                (Value::Map(map), Segment::Key(key)) => map.get(key),
                (Value::List(items), Segment::Index(i)) => items.get(i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node
    }

    /// The value as a user would have written it.
    pub(crate) fn render(&self) -> String {
        match &self.value {
            Value::Null => "null".to_owned(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(x) => x.to_string(),
            Value::Str(s) | Value::Raw(s) => s.clone(),
            Value::List(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(Node::render)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Value::Map(_) => "{…}".to_owned(),
        }
    }
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// Splits `a.b[2].c` into keys and list indexes.
fn path_segments(path: &str) -> impl Iterator<Item = Segment<'_>> {
    path.split('.').filter(|p| !p.is_empty()).flat_map(|part| {
        let (key, rest) = part.split_once('[').unwrap_or((part, ""));
        let indexes = rest
            .split('[')
            .filter_map(|i| i.trim_end_matches(']').parse().ok())
            .map(Segment::Index);
        (!key.is_empty())
            .then_some(Segment::Key(key))
            .into_iter()
            .chain(indexes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(v: i128, src: Source) -> Node {
        Node::new(Value::Int(v), src)
    }

    #[test]
    fn merge_keeps_lower_leaves_and_takes_upper_ones() {
        let mut base = Node::empty_map(Source::Default);
        base.insert("a.b", leaf(1, Source::Default));
        base.insert("a.c", leaf(2, Source::Default));
        let mut top = Node::empty_map(Source::Flag("--x".into()));
        top.insert("a.b", leaf(9, Source::Flag("--x".into())));
        base.merge(top);
        assert_eq!(base.get("a.b").unwrap().render(), "9");
        assert_eq!(base.get("a.b").unwrap().source, Source::Flag("--x".into()));
        assert_eq!(base.get("a.c").unwrap().source, Source::Default);
    }

    #[test]
    fn paths_with_indexes_resolve() {
        let json = serde_json::json!({"routes": [{"name": "a"}, {"name": "b"}]});
        let tree = Node::from_json(&json, &Source::Default);
        assert_eq!(tree.get("routes[1].name").unwrap().render(), "b");
        assert_eq!(tree.nearest("routes[1].missing").render(), "{…}");
    }

    #[test]
    fn sources_display_as_the_spec_says() {
        let file = Source::File {
            path: "cfg.toml".into(),
            line: Some(3),
        };
        assert_eq!(file.to_string(), "cfg.toml:3");
        let env = Source::Env {
            var: "P_A".into(),
            dotenv: None,
        };
        assert_eq!(env.to_string(), "env P_A");
        assert_eq!(Source::Flag("--port".into()).to_string(), "flag --port");
    }
}
