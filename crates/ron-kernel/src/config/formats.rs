//! Config files to [`Node`] trees, keeping line numbers.
//!
//! TOML goes through `toml_edit` (spans on every key), YAML through `serde-saphyr`'s
//! `Spanned`. JSON is checked by `serde_json` (precise syntax errors) and then read
//! through the YAML parser, whose flow syntax covers JSON, only to learn line numbers; if
//! that second read fails the tree is built from `serde_json` without lines.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::error::{ConfigError, ConfigErrorKind};
use super::tree::{Node, Source, Value};

/// A file format the loader understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Toml,
    Yaml,
    Json,
}

/// YAML node with positions, before the file path is known.
enum Yaml {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    List(Vec<Spanned<Yaml>>),
    Map(Vec<(Spanned<String>, Spanned<Yaml>)>),
}

struct YamlVisitor;

impl Format {
    pub(crate) fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// Reads and parses one config file into a tree whose nodes cite `path:line`.
pub(crate) fn read_file(path: &Path) -> Result<Node, ConfigError> {
    let shown: Arc<str> = path.display().to_string().into();
    let Some(format) = Format::from_path(path) else {
        return Err(ConfigError::with_kind(
            ConfigErrorKind::Io,
            "config file",
            shown.to_string(),
            "loader",
            "unknown extension: use .toml, .yaml, .yml or .json",
        ));
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::with_kind(
            ConfigErrorKind::Io,
            "config file",
            shown.to_string(),
            "loader",
            format!("cannot read: {e}; check the path and permissions"),
        )
    })?;
    parse(format, &text, &shown)
}

/// Parses `text` in `format`; `path` is used for sources only.
pub(crate) fn parse(format: Format, text: &str, path: &Arc<str>) -> Result<Node, ConfigError> {
    let root = match format {
        Format::Toml => parse_toml(text, path)?,
        Format::Yaml => parse_yaml(text, path)?,
        Format::Json => parse_json(text, path)?,
    };
    match root.value {
        Value::Map(_) => Ok(root),
        Value::Null => Ok(Node::empty_map(file_source(path, Some(1)))),
        _ => Err(syntax_error(
            path,
            text,
            1,
            "the top level must be a table/mapping of keys",
        )),
    }
}

fn file_source(path: &Arc<str>, line: Option<u32>) -> Source {
    Source::File {
        path: path.clone(),
        line,
    }
}

fn line_of(text: &str, offset: usize) -> u32 {
    let end = offset.min(text.len());
    let newlines = text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    u32::try_from(newlines + 1).unwrap_or(u32::MAX)
}

fn syntax_error(path: &Arc<str>, text: &str, line: u32, why: impl Into<String>) -> ConfigError {
    let snippet = text
        .lines()
        .nth(line.saturating_sub(1) as usize)
        .unwrap_or("")
        .trim();
    ConfigError::with_kind(
        ConfigErrorKind::Syntax,
        "syntax",
        snippet,
        file_source(path, Some(line)).to_string(),
        why,
    )
}

fn parse_toml(text: &str, path: &Arc<str>) -> Result<Node, ConfigError> {
    let doc = toml_edit::Document::parse(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(text, s.start));
        syntax_error(
            path,
            text,
            line,
            format!("invalid TOML: {}", e.message().trim()),
        )
    })?;
    let cx = TomlCx { text, path };
    Ok(cx.table(doc.as_table(), Some(1)))
}

struct TomlCx<'a> {
    text: &'a str,
    path: &'a Arc<str>,
}

impl TomlCx<'_> {
    fn line(&self, span: Option<std::ops::Range<usize>>) -> Option<u32> {
        span.map(|s| line_of(self.text, s.start))
    }

    fn table(&self, table: &toml_edit::Table, line: Option<u32>) -> Node {
        let mut map = BTreeMap::new();
        for (key, item) in table.iter() {
            let key_line = table
                .get_key_value(key)
                .and_then(|(k, _)| self.line(k.span()))
                .or(line);
            if let Some(node) = self.item(item, key_line) {
                map.insert(key.to_owned(), node);
            }
        }
        Node::new(Value::Map(map), file_source(self.path, line))
    }

    fn item(&self, item: &toml_edit::Item, line: Option<u32>) -> Option<Node> {
        match item {
            toml_edit::Item::None => None,
            toml_edit::Item::Value(v) => Some(self.value(v, line)),
            toml_edit::Item::Table(t) => Some(self.table(t, line)),
            toml_edit::Item::ArrayOfTables(a) => Some(Node::new(
                Value::List(
                    a.iter()
                        .map(|t| self.table(t, self.line(t.span()).or(line)))
                        .collect(),
                ),
                file_source(self.path, line),
            )),
        }
    }

    fn value(&self, value: &toml_edit::Value, line: Option<u32>) -> Node {
        use toml_edit::Value as T;
        let v = match value {
            T::String(s) => Value::Str(s.value().clone()),
            T::Integer(i) => Value::Int(i128::from(*i.value())),
            T::Float(x) => Value::Float(*x.value()),
            T::Boolean(b) => Value::Bool(*b.value()),
            T::Datetime(d) => Value::Str(d.value().to_string()),
            T::Array(items) => Value::List(
                items
                    .iter()
                    .map(|v| self.value(v, self.line(v.span()).or(line)))
                    .collect(),
            ),
            T::InlineTable(t) => {
                let mut map = BTreeMap::new();
                for (key, v) in t.iter() {
                    let key_line = t
                        .get_key_value(key)
                        .and_then(|(k, _)| self.line(k.span()))
                        .or(line);
                    map.insert(key.to_owned(), self.value(v, key_line));
                }
                Value::Map(map)
            }
        };
        Node::new(v, file_source(self.path, line))
    }
}

fn parse_yaml(text: &str, path: &Arc<str>) -> Result<Node, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Node::empty_map(file_source(path, Some(1))));
    }
    let root: Spanned<Yaml> = serde_saphyr::from_str(text).map_err(|e| {
        let line = e
            .location()
            .map_or(1, |l| u32::try_from(l.line()).unwrap_or(1));
        let message = e.to_string();
        let first = message.lines().next().unwrap_or("").trim().to_owned();
        syntax_error(path, text, line.max(1), format!("invalid YAML: {first}"))
    })?;
    Ok(yaml_node(root, path))
}

fn spanned_line<T>(s: &Spanned<T>) -> Option<u32> {
    u32::try_from(s.referenced.line()).ok().filter(|l| *l > 0)
}

fn yaml_node(spanned: Spanned<Yaml>, path: &Arc<str>) -> Node {
    let line = spanned_line(&spanned);
    yaml_value(spanned.value, line, path)
}

fn yaml_value(yaml: Yaml, line: Option<u32>, path: &Arc<str>) -> Node {
    let value = match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Int(i) => Value::Int(i),
        Yaml::Float(x) => Value::Float(x),
        Yaml::Str(s) => Value::Str(s),
        Yaml::List(items) => Value::List(items.into_iter().map(|i| yaml_node(i, path)).collect()),
        Yaml::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let key_line = spanned_line(&k).or_else(|| spanned_line(&v));
                    (k.value, yaml_value(v.value, key_line, path))
                })
                .collect(),
        ),
    };
    Node::new(value, file_source(path, line))
}

fn parse_json(text: &str, path: &Arc<str>) -> Result<Node, ConfigError> {
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        let line = u32::try_from(e.line()).unwrap_or(1).max(1);
        syntax_error(path, text, line, format!("invalid JSON: {e}"))
    })?;
    match serde_saphyr::from_str::<Spanned<Yaml>>(text) {
        Ok(root) => Ok(yaml_node(root, path)),
        Err(_) => Ok(Node::from_json(&json, &file_source(path, None))),
    }
}

impl<'de> Deserialize<'de> for Yaml {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(YamlVisitor)
    }
}

impl<'de> Visitor<'de> for YamlVisitor {
    type Value = Yaml;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Yaml, D::Error> {
        d.deserialize_any(YamlVisitor)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Yaml, E> {
        Ok(Yaml::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Yaml, E> {
        Ok(Yaml::Int(i128::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Yaml, E> {
        Ok(Yaml::Int(i128::from(v)))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Yaml, E> {
        Ok(Yaml::Int(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Yaml, E> {
        Ok(Yaml::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Yaml, E> {
        Ok(Yaml::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Yaml, E> {
        Ok(Yaml::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Yaml, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Yaml>>()? {
            items.push(item);
        }
        Ok(Yaml::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Yaml, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Spanned<Yaml>>()?;
            entries.push((key, value));
        }
        Ok(Yaml::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> Arc<str> {
        "cfg".into()
    }

    fn line(node: &Node, key: &str) -> Option<u32> {
        match &node.get(key)?.source {
            Source::File { line, .. } => *line,
            _ => None,
        }
    }

    #[test]
    fn toml_keys_remember_their_lines() {
        let text = "a = 1\n\n[server]\nport = 80\nhosts = [\"x\"]\n";
        let node = parse(Format::Toml, text, &path()).unwrap();
        assert_eq!(line(&node, "a"), Some(1));
        assert_eq!(line(&node, "server.port"), Some(4));
        assert_eq!(node.get("server.hosts").unwrap().render(), "[x]");
    }

    #[test]
    fn yaml_keys_remember_their_lines() {
        let text = "a: 1\nserver:\n  port: 80\n  name: edge\n";
        let node = parse(Format::Yaml, text, &path()).unwrap();
        assert_eq!(line(&node, "server.port"), Some(3));
        assert_eq!(
            node.get("server.name").unwrap().value,
            Value::Str("edge".into())
        );
        assert_eq!(node.get("server.port").unwrap().value, Value::Int(80));
    }

    #[test]
    fn json_keys_remember_their_lines() {
        let text = "{\n  \"a\": 1,\n  \"b\": {\"c\": true}\n}\n";
        let node = parse(Format::Json, text, &path()).unwrap();
        assert_eq!(line(&node, "a"), Some(2));
        assert_eq!(node.get("b.c").unwrap().value, Value::Bool(true));
    }

    #[test]
    fn syntax_errors_cite_the_line() {
        let err = parse(Format::Toml, "a = 1\nb = = 2\n", &path()).unwrap_err();
        assert_eq!(err.kind(), ConfigErrorKind::Syntax);
        assert_eq!(err.first().source, "cfg:2", "{err}");
        let err = parse(Format::Json, "{\n\"a\": }\n", &path()).unwrap_err();
        assert_eq!(err.first().source, "cfg:2", "{err}");
        let err = parse(Format::Yaml, "a: 1\n b: [\n", &path()).unwrap_err();
        assert_eq!(err.kind(), ConfigErrorKind::Syntax);
    }

    #[test]
    fn top_level_must_be_a_mapping() {
        assert!(parse(Format::Json, "[1, 2]", &path()).is_err());
        assert!(parse(Format::Yaml, "", &path()).is_ok());
    }
}
