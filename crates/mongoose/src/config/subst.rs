//! `${env:NAME}` and `${file:PATH}` substitution in YAML string values (spec §2.2).
//!
//! Substitution happens while deserializing, inside the string fields' own deserializers, so
//! an unset variable or unreadable file is a parse error carrying the file line and key path.
//! Only string values are substituted: numbers and booleans are typed by the YAML itself.
//! A `${file:}` path is used as given (relative to the working directory); its contents are
//! trimmed. Other `${...}` text is left alone.

use serde::de::{Deserialize, Deserializer, Error as _};
use serde_json::{Map, Value};

const ENV_PREFIX: &str = "${env:";
const FILE_PREFIX: &str = "${file:";

/// Replaces every `${env:NAME}` and `${file:PATH}` in `text`.
///
/// # Errors
/// The reason, naming the variable or file, when a variable is unset or not Unicode, a file
/// cannot be read, or a reference is not closed with `}`.
pub fn substitute(text: &str) -> Result<String, String> {
    if !text.contains("${") {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let (prefix, is_env) = if tail.starts_with(ENV_PREFIX) {
            (ENV_PREFIX, true)
        } else if tail.starts_with(FILE_PREFIX) {
            (FILE_PREFIX, false)
        } else {
            out.push_str("${");
            rest = &tail[2..];
            continue;
        };
        let body = &tail[prefix.len()..];
        let Some(end) = body.find('}') else {
            return Err(format!(
                "unterminated `{prefix}` reference (close it with `}}`)"
            ));
        };
        let arg = &body[..end];
        if arg.is_empty() {
            return Err(format!("empty `{prefix}}}` reference"));
        }
        if is_env {
            match std::env::var(arg) {
                Ok(v) => out.push_str(&v),
                Err(std::env::VarError::NotPresent) => {
                    return Err(format!(
                        "environment variable `{arg}` is not set (export it or remove `${{env:{arg}}}`)"
                    ));
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(format!("environment variable `{arg}` is not valid UTF-8"));
                }
            }
        } else {
            match std::fs::read_to_string(arg) {
                Ok(v) => out.push_str(v.trim()),
                Err(e) => return Err(format!("cannot read file `{arg}` for `${{file:}}`: {e}")),
            }
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Deserializes a string with substitution.
pub(crate) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let raw = String::deserialize(d)?;
    substitute(&raw).map_err(D::Error::custom)
}

/// Deserializes an optional string with substitution.
pub(crate) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(raw) => substitute(&raw).map(Some).map_err(D::Error::custom),
        None => Ok(None),
    }
}

/// Deserializes a list of strings with substitution.
pub(crate) fn string_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| substitute(s))
        .collect::<Result<_, _>>()
        .map_err(D::Error::custom)
}

/// Deserializes a type-specific `config` map, substituting every string inside it.
pub(crate) fn json_map<'de, D: Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    let mut map = Map::<String, Value>::deserialize(d)?;
    for (key, value) in map.iter_mut() {
        substitute_value(value).map_err(|e| D::Error::custom(format!("{key}: {e}")))?;
    }
    Ok(map)
}

fn substitute_value(value: &mut Value) -> Result<(), String> {
    match value {
        Value::String(s) => *s = substitute(s)?,
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_value(item).map_err(|e| format!("[{i}]: {e}"))?;
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                substitute_value(item).map_err(|e| format!("{key}: {e}"))?;
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_without_references_is_unchanged() {
        assert_eq!(substitute("plain ${x} $y").unwrap(), "plain ${x} $y");
    }

    #[test]
    fn env_reference_is_replaced_by_the_variable() {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
        assert_eq!(
            substitute("at ${env:CARGO_MANIFEST_DIR}/x").unwrap(),
            format!("at {dir}/x")
        );
    }

    #[test]
    fn unset_env_reference_names_the_variable() {
        let err = substitute("${env:MONGOOSE_TEST_SURELY_UNSET_VAR}").unwrap_err();
        assert!(err.contains("MONGOOSE_TEST_SURELY_UNSET_VAR"), "{err}");
    }

    #[test]
    fn file_reference_is_replaced_by_trimmed_contents() {
        let dir = std::env::temp_dir().join(format!("mongoose-subst-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, "  s3cret-value\n").unwrap();
        let text = format!("token ${{file:{}}}!", path.display());
        assert_eq!(substitute(&text).unwrap(), "token s3cret-value!");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unreadable_file_reference_names_the_file() {
        let err = substitute("${file:/nonexistent/mongoose/secret}").unwrap_err();
        assert!(err.contains("/nonexistent/mongoose/secret"), "{err}");
    }

    #[test]
    fn unterminated_reference_is_an_error() {
        assert!(substitute("${env:HOME").is_err());
        assert!(substitute("${env:}").is_err());
    }

    #[test]
    fn nested_config_values_are_substituted() {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
        let mut v = serde_json::json!({"a": ["${env:CARGO_MANIFEST_DIR}"], "b": {"c": 1}});
        substitute_value(&mut v).unwrap();
        assert_eq!(v["a"][0], Value::String(dir));
    }
}
