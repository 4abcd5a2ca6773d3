//! `ConfigError`: the one error type of the config boundary, rendered as one line.
//!
//! The binary prints `to_string()` on stderr and exits 2 (spec §6), so every variant names
//! where the problem is (file and line when the parser knows it, else the key path and the
//! offending value) and what was expected.

use std::fmt;

/// A config that cannot be read, parsed, substituted, layered or validated.
///
/// `Display` is a single line: `<source>:<line>: <key path>: <reason>` when the parser knows
/// the line, otherwise `<key path> = <value>: <reason>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read, or is larger than [`super::MAX_CONFIG_BYTES`].
    #[error("{file}: {reason}")]
    Read {
        /// The path as given.
        file: String,
        /// What went wrong and what to do.
        reason: String,
    },
    /// The YAML did not parse or did not match the schema (unknown key, wrong type, bad
    /// enum value, missing required key, unset `${env:}` variable, …).
    #[error("{}", render_parse(file, *line, path, reason))]
    Parse {
        /// The `source` given to [`super::from_yaml_str`], usually the file name.
        file: String,
        /// 1-based line, when the parser reported one.
        line: Option<u64>,
        /// Key path such as `eventFeeds[0].queueCapacity`; empty for the document itself.
        path: String,
        /// What was wrong and what was expected.
        reason: String,
    },
    /// A value parsed but breaks a rule (range, reference, uniqueness, …).
    #[error("{path} = {value}: {reason}")]
    Invalid {
        /// Key path such as `eventFeeds[0].queueCapacity`, or an environment variable name.
        path: String,
        /// The offending value as text (secrets as `***`).
        value: String,
        /// What was expected and what to do.
        reason: String,
    },
}

impl ConfigError {
    /// An [`ConfigError::Invalid`] for `path = value`.
    pub fn invalid(
        path: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            path: path.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// The key path the error is about (empty when it concerns the whole document or file).
    pub fn path(&self) -> &str {
        match self {
            ConfigError::Read { .. } => "",
            ConfigError::Parse { path, .. } | ConfigError::Invalid { path, .. } => path,
        }
    }
}

fn render_parse(file: &str, line: Option<u64>, path: &str, reason: &str) -> String {
    let mut out = String::from(file);
    if let Some(line) = line {
        out.push(':');
        out.push_str(&line.to_string());
    }
    out.push_str(": ");
    if !path.is_empty() {
        out.push_str(path);
        out.push_str(": ");
    }
    out.push_str(reason);
    out
}

/// Converts a serde-saphyr error and the key path serde_path_to_error recorded into a
/// [`ConfigError::Parse`], rewording unknown and missing keys the way operators expect.
pub(crate) fn from_saphyr(file: &str, path: &str, err: &serde_saphyr::Error) -> ConfigError {
    use serde_saphyr::{DefaultMessageFormatter, Error as E, MessageFormatter};

    let inner = err.without_snippet();
    // serde_path_to_error writes `?` for a key it could not capture (e.g. a duplicate key).
    let mut path = match path.strip_suffix(".?").unwrap_or(path) {
        "." | "?" => String::new(),
        p => p.to_owned(),
    };
    let reason = match inner {
        E::SerdeUnknownField { expected, .. } => {
            format!("unknown key (expected one of {})", expected.join(", "))
        }
        E::DuplicateMappingKey { key, .. } => match key {
            Some(k) => format!("duplicate key `{k}` (each key may appear once per mapping)"),
            None => "duplicate key (each key may appear once per mapping)".to_owned(),
        },
        E::SerdeMissingField { field, .. } => {
            if path.is_empty() {
                path = (*field).to_owned();
            } else {
                path = format!("{path}.{field}");
            }
            "missing required key".to_owned()
        }
        other => DefaultMessageFormatter.format_message(other).into_owned(),
    };
    ConfigError::Parse {
        file: file.to_owned(),
        line: inner.location().map(|l| l.line()).filter(|l| *l > 0),
        path,
        reason: one_line(&reason),
    }
}

/// Collapses control characters so the binary's error stays on one line.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_error_with_line_renders_file_line_path_reason() {
        let e = ConfigError::Parse {
            file: "server.yaml".into(),
            line: Some(14),
            path: "eventFeeds[0].queueCapcity".into(),
            reason: "unknown key (expected one of name, type)".into(),
        };
        assert_eq!(
            e.to_string(),
            "server.yaml:14: eventFeeds[0].queueCapcity: unknown key (expected one of name, type)"
        );
    }

    #[test]
    fn invalid_error_renders_path_value_reason() {
        let e = ConfigError::invalid(
            "eventFeeds[0].queueCapacity",
            1000,
            "must be a power of two",
        );
        assert_eq!(
            e.to_string(),
            "eventFeeds[0].queueCapacity = 1000: must be a power of two"
        );
        assert_eq!(e.path(), "eventFeeds[0].queueCapacity");
    }

    #[test]
    fn one_line_replaces_newlines() {
        assert_eq!(one_line("a\nb\tc"), "a b c");
    }
}
