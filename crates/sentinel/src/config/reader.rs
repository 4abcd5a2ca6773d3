//! Strict typed access to KDL nodes (spec SEN-R06): a node name is a key, its single
//! argument the value. Every accessor reports what is wrong (extra arguments, properties,
//! type annotations, children on a value key, wrong type, out of range) as a
//! [`ConfigError`] at the offending span and returns `None`, so one pass collects every
//! error of a file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kdl::{KdlEntry, KdlNode, KdlValue};

use super::error::{ConfigError, Pos, SourceMap};

/// Collects errors while the schema walks the document.
pub(crate) struct Reader<'a> {
    file: &'a Path,
    map: SourceMap<'a>,
    /// Everything found so far (sorted by the caller).
    pub(crate) errors: Vec<ConfigError>,
    /// The config file's directory, against which relative paths resolve (SEN-R11).
    pub(crate) base_dir: PathBuf,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(text: &'a str, file: &'a Path) -> Self {
        let dir = file.parent().unwrap_or(Path::new(""));
        // Absolute, so a printed config re-parses to the same paths from anywhere.
        let base_dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        Reader {
            file,
            map: SourceMap::new(text),
            errors: Vec::new(),
            base_dir,
        }
    }

    /// Position of a node (its name).
    pub(crate) fn node_pos(&self, node: &KdlNode) -> Pos {
        self.map.pos(node.name().span().offset())
    }

    /// Position of an entry (argument or property).
    pub(crate) fn entry_pos(&self, entry: &KdlEntry) -> Pos {
        self.map.pos(entry.span().offset())
    }

    /// Records an error at `pos`.
    pub(crate) fn error_at(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        self.errors
            .push(ConfigError::at(self.file, pos, path, message));
    }

    /// Records an error at a node's name.
    pub(crate) fn error_node(&mut self, node: &KdlNode, path: &str, message: impl Into<String>) {
        let pos = self.node_pos(node);
        self.error_at(pos, path, message);
    }

    /// Records an error at an entry.
    pub(crate) fn error_entry(&mut self, entry: &KdlEntry, path: &str, message: impl Into<String>) {
        let pos = self.entry_pos(entry);
        self.error_at(pos, path, message);
    }

    /// Resolves a path from the file against the config directory.
    pub(crate) fn resolve(&self, p: &str) -> PathBuf {
        self.base_dir.join(p)
    }

    /// Checks what no node may carry: a type annotation on the node or on an entry, and
    /// properties other than `allowed_props`. Returns whether the node is clean.
    pub(crate) fn plain(&mut self, node: &KdlNode, path: &str, allowed_props: &[&str]) -> bool {
        let mut ok = true;
        if let Some(ty) = node.ty() {
            let pos = self.map.pos(ty.span().offset());
            self.error_at(
                pos,
                path,
                format!("type annotations are not allowed, got ({})", ty.value()),
            );
            ok = false;
        }
        for e in node.entries() {
            if let Some(ty) = e.ty() {
                self.error_entry(
                    e,
                    path,
                    format!("type annotations are not allowed, got ({})", ty.value()),
                );
                ok = false;
            }
            if let Some(name) = e.name()
                && !allowed_props.contains(&name.value())
            {
                self.error_entry(
                    e,
                    path,
                    format!(
                        "properties are not allowed, got {}={}",
                        name.value(),
                        literal(e.value())
                    ),
                );
                ok = false;
            }
        }
        ok
    }

    /// The positional arguments of a node.
    pub(crate) fn args<'n>(&self, node: &'n KdlNode) -> Vec<&'n KdlEntry> {
        node.entries()
            .iter()
            .filter(|e| e.name().is_none())
            .collect()
    }

    /// The single value of a key node: exactly one argument, no properties, no children.
    pub(crate) fn value<'n>(&mut self, node: &'n KdlNode, path: &str) -> Option<&'n KdlEntry> {
        if !self.plain(node, path, &[]) || !self.no_children(node, path) {
            return None;
        }
        let args = self.args(node);
        match args.as_slice() {
            [one] => Some(*one),
            [] => {
                self.error_node(node, path, "expected a value, got none");
                None
            }
            [_, extra, ..] => {
                self.error_entry(
                    extra,
                    path,
                    format!(
                        "expected one value, got extra argument {}",
                        literal(extra.value())
                    ),
                );
                None
            }
        }
    }

    /// The arguments of a list key (`path-prefix "/a" "/b"`): between `min` and `max` of
    /// them, no properties, no children.
    pub(crate) fn list<'n>(
        &mut self,
        node: &'n KdlNode,
        path: &str,
        min: usize,
        max: usize,
    ) -> Option<Vec<&'n KdlEntry>> {
        if !self.plain(node, path, &[]) || !self.no_children(node, path) {
            return None;
        }
        let args = self.args(node);
        if args.len() < min {
            self.error_node(
                node,
                path,
                format!("expected at least {min} value(s), got {}", args.len()),
            );
            return None;
        }
        if let Some(extra) = args.get(max) {
            self.error_entry(
                extra,
                path,
                format!(
                    "expected at most {max} value(s), got extra argument {}",
                    literal(extra.value())
                ),
            );
            return None;
        }
        Some(args)
    }

    /// Reports children on a node that takes none.
    pub(crate) fn no_children(&mut self, node: &KdlNode, path: &str) -> bool {
        if node.children().is_some() {
            self.error_node(node, path, "a value key takes no children block");
            return false;
        }
        true
    }

    /// The child nodes of a block node, which takes no arguments or properties.
    pub(crate) fn block<'n>(&mut self, node: &'n KdlNode, path: &str) -> &'n [KdlNode] {
        self.plain(node, path, &[]);
        if let Some(first) = self.args(node).first() {
            self.error_entry(
                first,
                path,
                format!("a block takes no arguments, got {}", literal(first.value())),
            );
        }
        node.children().map_or(&[], |d| d.nodes())
    }

    /// The children of `nodes` with known names (`allowed`), reporting unknown keys and
    /// keys repeated in this block (unless listed in `repeatable`).
    pub(crate) fn keys<'n>(
        &mut self,
        nodes: &'n [KdlNode],
        path: &str,
        allowed: &[&str],
        repeatable: &[&str],
    ) -> Vec<&'n KdlNode> {
        let mut seen: HashMap<&str, Pos> = HashMap::new();
        let mut out = Vec::new();
        for n in nodes {
            let name = n.name().value();
            let key_path = join(path, name);
            if !allowed.contains(&name) {
                self.error_node(
                    n,
                    &key_path,
                    format!(
                        "unknown key {name:?}; expected one of: {}",
                        allowed.join(", ")
                    ),
                );
                continue;
            }
            if !repeatable.contains(&name) {
                if let Some(first) = seen.get(name) {
                    let msg = format!(
                        "key {name:?} repeated in one block (first at line {}:{})",
                        first.line, first.col
                    );
                    self.error_node(n, &key_path, msg);
                    continue;
                }
                seen.insert(name, self.node_pos(n));
            }
            out.push(n);
        }
        out
    }

    /// An integer in `lo..=hi`.
    pub(crate) fn int(&mut self, node: &KdlNode, path: &str, lo: i128, hi: i128) -> Option<i128> {
        let e = self.value(node, path)?;
        self.int_entry(e, path, lo, hi)
    }

    /// An integer argument in `lo..=hi`.
    pub(crate) fn int_entry(
        &mut self,
        e: &KdlEntry,
        path: &str,
        lo: i128,
        hi: i128,
    ) -> Option<i128> {
        match e.value() {
            KdlValue::Integer(i) if (lo..=hi).contains(i) => Some(*i),
            v => {
                self.error_entry(
                    e,
                    path,
                    format!("expected integer {lo}..={hi}, got {}", describe(v)),
                );
                None
            }
        }
    }

    /// A `u32` in `lo..=hi`.
    pub(crate) fn u32(&mut self, node: &KdlNode, path: &str, lo: u32, hi: u32) -> Option<u32> {
        self.int(node, path, lo.into(), hi.into())
            .and_then(|v| u32::try_from(v).ok())
    }

    /// A `u64` in `lo..=hi`.
    pub(crate) fn u64(&mut self, node: &KdlNode, path: &str, lo: u64, hi: u64) -> Option<u64> {
        self.int(node, path, lo.into(), hi.into())
            .and_then(|v| u64::try_from(v).ok())
    }

    /// A boolean (`#true`/`#false`, v1 `true`/`false`).
    pub(crate) fn bool(&mut self, node: &KdlNode, path: &str) -> Option<bool> {
        let e = self.value(node, path)?;
        match e.value() {
            KdlValue::Bool(b) => Some(*b),
            v => {
                self.error_entry(
                    e,
                    path,
                    format!("expected #true or #false, got {}", describe(v)),
                );
                None
            }
        }
    }

    /// A number (float or integer) in the half-open range `(lo, hi]`.
    pub(crate) fn ratio(&mut self, node: &KdlNode, path: &str) -> Option<f64> {
        let e = self.value(node, path)?;
        let v = match e.value() {
            KdlValue::Float(f) => Some(*f),
            // Integers are exact in f64 in the only range that can pass (0 < v <= 1).
            KdlValue::Integer(i) => i16::try_from(*i).ok().map(f64::from),
            _ => None,
        };
        match v {
            Some(f) if f > 0.0 && f <= 1.0 => Some(f),
            _ => {
                self.error_entry(
                    e,
                    path,
                    format!(
                        "expected a number > 0 and <= 1, got {}",
                        describe(e.value())
                    ),
                );
                None
            }
        }
    }

    /// A string value.
    pub(crate) fn string(&mut self, node: &KdlNode, path: &str) -> Option<String> {
        let e = self.value(node, path)?;
        self.string_entry(e, path)
    }

    /// A string argument.
    pub(crate) fn string_entry(&mut self, e: &KdlEntry, path: &str) -> Option<String> {
        match e.value() {
            KdlValue::String(s) => Some(s.clone()),
            v => {
                self.error_entry(e, path, format!("expected a string, got {}", describe(v)));
                None
            }
        }
    }

    /// A string that must be one of `choices`.
    pub(crate) fn choice(
        &mut self,
        node: &KdlNode,
        path: &str,
        choices: &[&str],
    ) -> Option<String> {
        let e = self.value(node, path)?;
        let s = self.string_entry(e, path)?;
        if choices.contains(&s.as_str()) {
            Some(s)
        } else {
            self.error_entry(
                e,
                path,
                format!("expected one of {}, got {s:?}", quoted_list(choices)),
            );
            None
        }
    }

    /// A string checked by `rule`, which returns the reason on failure.
    pub(crate) fn checked(
        &mut self,
        node: &KdlNode,
        path: &str,
        rule: impl FnOnce(&str) -> Result<(), String>,
    ) -> Option<String> {
        let e = self.value(node, path)?;
        let s = self.string_entry(e, path)?;
        match rule(&s) {
            Ok(()) => Some(s),
            Err(why) => {
                self.error_entry(e, path, format!("{why}, got {s:?}"));
                None
            }
        }
    }
}

/// `parent > key`.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent} > {key}")
    }
}

/// `"a", "b" or "c"`.
pub(crate) fn quoted_list(items: &[&str]) -> String {
    let q: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    match q.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => q.join(""),
    }
}

/// A value as the error messages name it: its type and the value.
pub(crate) fn describe(v: &KdlValue) -> String {
    match v {
        KdlValue::String(s) => format!("string {s:?}"),
        KdlValue::Integer(i) => format!("integer {i}"),
        KdlValue::Float(f) => format!("float {f}"),
        KdlValue::Bool(b) => format!("boolean #{b}"),
        KdlValue::Null => "#null".to_owned(),
    }
}

/// A value as written in KDL v2 (for messages).
pub(crate) fn literal(v: &KdlValue) -> String {
    match v {
        KdlValue::String(s) => format!("{s:?}"),
        KdlValue::Integer(i) => i.to_string(),
        KdlValue::Float(f) => f.to_string(),
        KdlValue::Bool(b) => format!("#{b}"),
        KdlValue::Null => "#null".to_owned(),
    }
}
