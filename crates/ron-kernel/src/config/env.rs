//! Environment variables and dotenv files as configuration layers.
//!
//! Key `a.b.c` is spelled `PREFIX_A__B__C` (double underscore between levels, so single
//! underscores stay inside key names). Dotenv files are parsed here rather than with a
//! dotenv crate because the loader must not mutate the process environment (the popular
//! crates' main API does) and needs the line of every variable for error sources.

use std::sync::Arc;

use super::error::{ConfigError, ConfigErrorKind};
use super::tree::Source;

/// How the loader spells keys in the environment.
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvRules {
    /// Upper-case prefix including the trailing `_`, e.g. `SENTINEL_`.
    pub(crate) prefix: String,
    /// `(VAR, key.path)` extra spellings.
    pub(crate) aliases: Vec<(String, String)>,
    /// Prefixes of variables owned by something else (`RON_METRICS_`).
    pub(crate) reserved: Vec<String>,
}

/// What one variable means to the loader.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EnvKey {
    /// Sets this dotted key.
    Key(String),
    /// Not ours (other prefix, reserved prefix).
    Ignore,
    /// Has our prefix but cannot name a key (`P_`, `P_A____B`).
    Malformed,
}

/// One `KEY=VALUE` line of a dotenv file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DotenvVar {
    pub(crate) name: String,
    pub(crate) value: String,
    pub(crate) line: u32,
}

impl EnvRules {
    pub(crate) fn new(prefix: &str) -> Self {
        let mut prefix = prefix.trim_end_matches('_').to_ascii_uppercase();
        prefix.push('_');
        Self {
            prefix,
            ..Self::default()
        }
    }

    pub(crate) fn classify(&self, var: &str) -> EnvKey {
        if let Some((_, key)) = self.aliases.iter().find(|(alias, _)| alias == var) {
            return EnvKey::Key(key.clone());
        }
        if self.reserved.iter().any(|r| var.starts_with(r.as_str())) {
            return EnvKey::Ignore;
        }
        let Some(rest) = var.strip_prefix(self.prefix.as_str()) else {
            return EnvKey::Ignore;
        };
        let parts: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if parts
            .iter()
            .any(|p| p.is_empty() || p.starts_with('_') || p.ends_with('_'))
        {
            return EnvKey::Malformed;
        }
        EnvKey::Key(parts.join("."))
    }

    /// The canonical variable for `key` (`a.b` → `PREFIX_A__B`).
    pub(crate) fn var_for(&self, key: &str) -> String {
        format!(
            "{}{}",
            self.prefix,
            key.replace('.', "__").to_ascii_uppercase()
        )
    }
}

/// Parses dotenv text: `KEY=VALUE`, optional `export `, `#` comments, blank lines,
/// `"double"` (with `\n`, `\"`, `\\` escapes) or `'single'` (literal) quotes.
pub(crate) fn parse_dotenv(text: &str, path: &Arc<str>) -> Result<Vec<DotenvVar>, ConfigError> {
    let mut vars = Vec::new();
    for (index, raw_line) in text.lines().enumerate() {
        let line = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let trimmed = raw_line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let body = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        let bad = |why: &str| {
            ConfigError::with_kind(
                ConfigErrorKind::Syntax,
                "syntax",
                trimmed,
                Source::File {
                    path: path.clone(),
                    line: Some(line),
                }
                .to_string(),
                why,
            )
        };
        let Some((name, value)) = body.split_once('=') else {
            return Err(bad("expected KEY=VALUE"));
        };
        let name = name.trim();
        let valid_name = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(bad(
                "variable names use A-Z, a-z, 0-9 and _, not starting with a digit",
            ));
        }
        let value = unquote(value.trim()).ok_or_else(|| bad("unterminated quote"))?;
        vars.push(DotenvVar {
            name: name.to_owned(),
            value,
            line,
        });
    }
    Ok(vars)
}

fn unquote(value: &str) -> Option<String> {
    if let Some(rest) = value.strip_prefix('\'') {
        return rest.strip_suffix('\'').map(str::to_owned);
    }
    if let Some(rest) = value.strip_prefix('"') {
        let inner = rest.strip_suffix('"')?;
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        }
        return Some(out);
    }
    // Unquoted values may carry a trailing ` # comment`.
    let value = value.split_once(" #").map_or(value, |(v, _)| v).trim_end();
    Some(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_map_to_dotted_keys() {
        let mut rules = EnvRules::new("p");
        rules.aliases.push(("PORT".into(), "server.port".into()));
        rules.reserved.push("P_METRICS_".into());
        assert_eq!(rules.classify("P_A__B"), EnvKey::Key("a.b".into()));
        assert_eq!(rules.classify("P_MAX_CONN"), EnvKey::Key("max_conn".into()));
        assert_eq!(rules.classify("PORT"), EnvKey::Key("server.port".into()));
        assert_eq!(rules.classify("P_METRICS_ADDR"), EnvKey::Ignore);
        assert_eq!(rules.classify("HOME"), EnvKey::Ignore);
        assert_eq!(rules.classify("P_"), EnvKey::Malformed);
        assert_eq!(rules.classify("P_A___B"), EnvKey::Malformed);
        assert_eq!(rules.var_for("a.max_conn"), "P_A__MAX_CONN");
    }

    #[test]
    fn dotenv_lines_parse_with_quotes_and_comments() {
        let text = "# c\nexport A=1\nB = \"x\\ny\"\nC='lit\\n'\nD=plain # note\n\nE=\n";
        let vars = parse_dotenv(text, &"f.env".into()).unwrap();
        let got: Vec<_> = vars
            .iter()
            .map(|v| (v.name.as_str(), v.value.as_str(), v.line))
            .collect();
        assert_eq!(
            got,
            [
                ("A", "1", 2),
                ("B", "x\ny", 3),
                ("C", "lit\\n", 4),
                ("D", "plain", 5),
                ("E", "", 7)
            ]
        );
    }

    #[test]
    fn dotenv_errors_cite_the_line() {
        let err = parse_dotenv("A=1\nnot a pair\n", &"f.env".into()).unwrap_err();
        assert_eq!(err.first().source, "f.env:2");
        assert!(parse_dotenv("A=\"open\n", &"f.env".into()).is_err());
    }
}
