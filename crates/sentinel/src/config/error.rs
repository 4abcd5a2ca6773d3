//! Configuration errors (spec SEN-R03): one line per problem, `error: FILE:LINE:COL: PATH:
//! MESSAGE`, sorted into file order and capped at [`MAX_ERROR_LINES`] when displayed.
//!
//! Problems without a position in the file (environment variables, an unreadable file)
//! carry line 0 and print as `error: FILE: PATH: MESSAGE`.

use std::fmt;
use std::path::{Path, PathBuf};

/// At most this many error lines are printed; the rest are dropped (SEN-R03).
pub const MAX_ERROR_LINES: usize = 50;

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file (or `env` for environment variables).
    pub file: PathBuf,
    /// 1-based line; 0 = no position (env, unreadable file).
    pub line: usize,
    /// 1-based column in characters; 0 with `line` 0.
    pub col: usize,
    /// Key path such as `route "api" > policies > timeout-secs`, `syntax`, or an env name.
    pub path: String,
    /// What is wrong: the value and the rule.
    pub message: String,
}

/// Every problem found in one load, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigError {
    /// An error at `pos` (1-based line and column) in `file`.
    pub fn at(file: &Path, pos: Pos, path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line: pos.line,
            col: pos.col,
            path: path.into(),
            message: message.into(),
        }
    }

    /// An error about an environment variable (printed as `error: env: NAME: MESSAGE`).
    pub fn env(var: &str, message: impl Into<String>) -> Self {
        ConfigError {
            file: PathBuf::from("env"),
            line: 0,
            col: 0,
            path: var.to_owned(),
            message: message.into(),
        }
    }

    /// An error about the file as a whole (missing, unreadable).
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line: 0,
            col: 0,
            path: String::new(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigErrors {
    /// Wraps one error.
    pub fn one(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }

    /// Sorts into file order (stable, so equal positions keep discovery order).
    pub fn sort(&mut self) {
        self.0.sort_by_key(|e| (e.line, e.col));
    }

    /// The first line as printed (used for `Configuration reload failed: …`).
    pub fn first_line(&self) -> String {
        self.0.first().map(ToString::to_string).unwrap_or_default()
    }

    /// Whether there is no error.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().take(MAX_ERROR_LINES).enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A 1-based position in the config text; column in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Pos {
    /// Line, 1-based.
    pub line: usize,
    /// Column in characters, 1-based.
    pub col: usize,
}

/// Turns byte offsets into [`Pos`]; built once per text.
pub(crate) struct SourceMap<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> SourceMap<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceMap { text, line_starts }
    }

    /// The position of byte `offset`, after skipping whitespace (spans may start on the
    /// blank before an entry).
    pub(crate) fn pos(&self, offset: usize) -> Pos {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let skipped = self.text[offset..]
            .char_indices()
            .find(|(_, c)| !matches!(c, ' ' | '\t' | '\u{feff}'))
            .map_or(0, |(i, _)| i);
        let offset = offset + skipped;
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line.saturating_sub(1)];
        let col = self.text[start..offset].chars().count() + 1;
        Pos { line, col }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let map = SourceMap::new("ab\n\u{e9}\u{e9}x\n  y");
        assert_eq!(map.pos(0), Pos { line: 1, col: 1 });
        assert_eq!(map.pos(3), Pos { line: 2, col: 1 });
        // "x" follows two two-byte characters: byte 7, character column 3.
        assert_eq!(map.pos(7), Pos { line: 2, col: 3 });
        // Leading blanks are skipped.
        assert_eq!(map.pos(9), Pos { line: 3, col: 3 });
    }

    #[test]
    fn display_has_the_documented_shape() {
        let e = ConfigError::at(
            Path::new("c.kdl"),
            Pos { line: 3, col: 5 },
            "server > listen",
            "bad",
        );
        assert_eq!(e.to_string(), "error: c.kdl:3:5: server > listen: bad");
        let e = ConfigError::env("SENTINEL_WORKERS", "expected integer");
        assert_eq!(
            e.to_string(),
            "error: env: SENTINEL_WORKERS: expected integer"
        );
        let errs = ConfigErrors(vec![e.clone(); MAX_ERROR_LINES + 2]);
        assert_eq!(errs.to_string().lines().count(), MAX_ERROR_LINES);
    }
}
