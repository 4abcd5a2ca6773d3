//! [`ConfigError`]: every problem found while loading, each naming key, value and source.

use std::fmt;

/// Shown instead of the value of a key declared secret.
pub const REDACTED: &str = "<redacted>";

/// What kind of mistake a [`ConfigProblem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigErrorKind {
    /// A file could not be read.
    Io,
    /// A file is not valid TOML, YAML, JSON or dotenv syntax.
    Syntax,
    /// A key the schema does not have (file key, `PREFIX_*` variable, flag).
    UnknownKey,
    /// A value of the wrong type or shape for its key.
    WrongType,
    /// A required key has no value in any layer.
    Missing,
    /// A well-typed value that `validate()` rejected (range, cross-field rule).
    Invalid,
    /// Two spellings of one key (variable and alias, two flags) with different values.
    Conflict,
}

/// One configuration mistake, displayed as `<key> = <value> (<source>): <why>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key path (`server.port`) or environment variable name.
    pub key: String,
    /// The offending value as written; `None` when there is none (missing key).
    pub value: Option<String>,
    /// Where the value came from: `FILE:LINE`, `env VAR`, `flag --x`, `default`.
    pub source: String,
    /// What was expected and what to do.
    pub why: String,
    /// The kind of mistake.
    pub kind: ConfigErrorKind,
    /// Whether `value` must be shown as [`REDACTED`].
    pub secret: bool,
}

/// Everything wrong with a configuration (at least one problem).
///
/// Display puts every problem on one line, separated by `; `, so that
/// [`crate::config::exit_on_error`] prints exactly one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.problems))]
pub struct ConfigError {
    problems: Vec<ConfigProblem>,
}

fn render(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ConfigProblem {
    /// A problem of `kind`; the value is shown quoted.
    pub fn new(
        kind: ConfigErrorKind,
        key: impl Into<String>,
        value: Option<String>,
        source: impl Into<String>,
        why: impl Into<String>,
    ) -> Self {
        Self {
            key: key.into(),
            value,
            source: source.into(),
            why: why.into(),
            kind,
            secret: false,
        }
    }

    /// Marks the value secret: it displays as [`REDACTED`] and is scrubbed from `why`.
    pub fn redacted(mut self) -> Self {
        if let Some(value) = &self.value
            && !value.is_empty()
        {
            self.why = self.why.replace(value.as_str(), REDACTED);
        }
        self.secret = true;
        self
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = ", self.key)?;
        match (&self.value, self.secret) {
            (_, true) => f.write_str(REDACTED)?,
            (Some(value), false) => write!(f, "{value:?}")?,
            (None, false) => f.write_str("<unset>")?,
        }
        write!(f, " ({}): {}", self.source, self.why)
    }
}

impl ConfigError {
    /// One invalid value: displays `<key> = "<value>" (<source>): <why>`.
    ///
    /// ```
    /// let err = ron_kernel::config::ConfigError::new(
    ///     "RON_AMNESIA", "maybe", "env RON_AMNESIA", "expected on|off|true|false|1|0");
    /// assert_eq!(err.to_string(),
    ///     r#"RON_AMNESIA = "maybe" (env RON_AMNESIA): expected on|off|true|false|1|0"#);
    /// ```
    pub fn new(
        key: impl Into<String>,
        value: impl Into<String>,
        source: impl Into<String>,
        why: impl Into<String>,
    ) -> Self {
        Self::from(ConfigProblem::new(
            ConfigErrorKind::Invalid,
            key,
            Some(value.into()),
            source,
            why,
        ))
    }

    /// Like [`ConfigError::new`] with an explicit kind.
    pub fn with_kind(
        kind: ConfigErrorKind,
        key: impl Into<String>,
        value: impl Into<String>,
        source: impl Into<String>,
        why: impl Into<String>,
    ) -> Self {
        Self::from(ConfigProblem::new(
            kind,
            key,
            Some(value.into()),
            source,
            why,
        ))
    }

    /// Collects several problems; `None` when the list is empty.
    pub fn from_problems(problems: Vec<ConfigProblem>) -> Option<Self> {
        (!problems.is_empty()).then_some(Self { problems })
    }

    /// Every problem, in the order found.
    pub fn problems(&self) -> &[ConfigProblem] {
        &self.problems
    }

    /// The first problem.
    pub fn first(&self) -> &ConfigProblem {
        &self.problems[0]
    }

    /// The first problem's kind.
    pub fn kind(&self) -> ConfigErrorKind {
        self.first().kind
    }

    /// The first problem's key.
    pub fn key(&self) -> &str {
        &self.first().key
    }

    /// Appends the problems of `other`.
    pub fn extend(&mut self, other: ConfigError) {
        self.problems.extend(other.problems);
    }
}

impl From<ConfigProblem> for ConfigError {
    fn from(problem: ConfigProblem) -> Self {
        Self {
            problems: vec![problem],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_key_quoted_value_source_and_reason() {
        let err = ConfigError::new(
            "RON_AMNESIA",
            "maybe",
            "env RON_AMNESIA",
            "expected on|off|true|false|1|0",
        );
        assert_eq!(
            err.to_string(),
            r#"RON_AMNESIA = "maybe" (env RON_AMNESIA): expected on|off|true|false|1|0"#
        );
        assert_eq!(err.kind(), ConfigErrorKind::Invalid);
    }

    #[test]
    fn secret_values_are_redacted_everywhere() {
        let p = ConfigProblem::new(
            ConfigErrorKind::WrongType,
            "db.password",
            Some("hunter2".into()),
            "env APP_DB__PASSWORD",
            "invalid type: string \"hunter2\", expected u32",
        )
        .redacted();
        let text = p.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.starts_with("db.password = <redacted> (env APP_DB__PASSWORD)"));
    }

    #[test]
    fn several_problems_render_on_one_line() {
        let mut err = ConfigError::new("a", "1", "default", "too small");
        err.extend(ConfigError::new("b", "2", "default", "too big"));
        let text = err.to_string();
        assert!(!text.contains('\n'));
        assert_eq!(
            text,
            r#"a = "1" (default): too small; b = "2" (default): too big"#
        );
    }

    #[test]
    fn empty_problem_list_is_not_an_error() {
        assert!(ConfigError::from_problems(Vec::new()).is_none());
    }
}
