//! Base labels: `service`, `instance`, `build_version`, `amnesia` (in that order), plus up
//! to four builder-only extra labels, rendered once into the prefix every sample starts with.

use crate::text::push_label_value;

/// The base label names, in the order every sample carries them.
pub const BASE_LABEL_NAMES: [&str; 4] = ["service", "instance", "build_version", "amnesia"];
/// Most extra labels a `Metrics` may carry.
pub const MAX_EXTRA_LABELS: usize = 4;
/// Longest base or extra label value.
pub const MAX_BASE_VALUE_LEN: usize = 64;

/// The labels fixed for the life of a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseLabels {
    /// Label `service`.
    pub service: String,
    /// Label `instance`.
    pub instance: String,
    /// Label `build_version`.
    pub build_version: String,
    /// Label `amnesia` (`on`/`off`).
    pub amnesia: bool,
    /// Extra labels, kept sorted by name.
    pub extra: Vec<(String, String)>,
}

impl BaseLabels {
    /// Base labels with no extras.
    pub fn new(
        service: impl Into<String>,
        instance: impl Into<String>,
        build_version: impl Into<String>,
        amnesia: bool,
    ) -> BaseLabels {
        BaseLabels {
            service: service.into(),
            instance: instance.into(),
            build_version: build_version.into(),
            amnesia,
            extra: Vec::new(),
        }
    }

    /// `on` or `off`.
    pub fn amnesia_str(&self) -> &'static str {
        if self.amnesia { "on" } else { "off" }
    }

    /// Whether `name` is a base or extra label name.
    pub fn is_reserved(&self, name: &str) -> bool {
        BASE_LABEL_NAMES.contains(&name) || self.extra.iter().any(|(k, _)| k == name)
    }

    /// Base labels then extras, as name/value pairs.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("service".to_owned(), self.service.clone()),
            ("instance".to_owned(), self.instance.clone()),
            ("build_version".to_owned(), self.build_version.clone()),
            ("amnesia".to_owned(), self.amnesia_str().to_owned()),
        ];
        v.extend(self.extra.iter().cloned());
        v
    }

    /// `service="…",instance="…",build_version="…",amnesia="…"` then the extras.
    pub(crate) fn render(&self) -> String {
        let mut s = String::with_capacity(96);
        let pairs = [
            ("service", self.service.as_str()),
            ("instance", self.instance.as_str()),
            ("build_version", self.build_version.as_str()),
            ("amnesia", self.amnesia_str()),
        ];
        for (i, (k, v)) in pairs
            .into_iter()
            .chain(self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .enumerate()
        {
            if i > 0 {
                s.push(',');
            }
            s.push_str(k);
            s.push_str("=\"");
            push_label_value(&mut s, v);
            s.push('"');
        }
        s
    }
}

/// The workspace version plus `+<sha>` when the build found one.
pub fn default_build_version() -> String {
    match option_env!("RON_BUILD_SHA") {
        Some(sha) => format!("{}+{sha}", env!("CARGO_PKG_VERSION")),
        None => env!("CARGO_PKG_VERSION").to_owned(),
    }
}

/// `[A-Za-z0-9._-]{1,64}`: the charset of `service` and `instance`.
pub(crate) fn is_ident_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_BASE_VALUE_LEN
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `[0-9A-Za-z.+-]`: the charset of `build_version`.
pub(crate) fn is_version_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_BASE_VALUE_LEN
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'))
}

/// The executable's file stem, else `unknown`.
pub(crate) fn default_service() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| sanitize(&s))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The hostname with invalid characters replaced by `_` and cut to 64, else `localhost`.
pub(crate) fn default_instance() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length; gethostname NUL-terminates within it
    // or truncates, and we stop at the first NUL either way.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_owned();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let host = sanitize(&String::from_utf8_lossy(&buf[..end]));
    if host.is_empty() {
        "localhost".to_owned()
    } else {
        host
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_BASE_VALUE_LEN)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_puts_base_labels_first_then_sorted_extras() {
        let mut b = BaseLabels::new("svc", "n1", "0.1.0", true);
        b.extra = vec![
            ("region".into(), "eu".into()),
            ("zone".into(), "a\"b".into()),
        ];
        assert_eq!(
            b.render(),
            r#"service="svc",instance="n1",build_version="0.1.0",amnesia="on",region="eu",zone="a\"b""#
        );
    }

    #[test]
    fn value_charsets_are_enforced() {
        assert!(is_ident_value("svc-x.1_a"));
        assert!(!is_ident_value("a b"));
        assert!(!is_ident_value(&"a".repeat(65)));
        assert!(is_version_value("0.1.0+abcdef12"));
        assert!(!is_version_value("0.1.0_x"));
    }

    #[test]
    fn defaults_are_valid_values() {
        assert!(is_ident_value(&default_service()));
        assert!(is_ident_value(&default_instance()));
        assert!(is_version_value(&default_build_version()));
    }
}
