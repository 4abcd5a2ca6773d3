//! Text rules shared by the registry and the encoder: name and label checks, escaping and
//! number formatting.

/// Longest label value kept; longer values are cut at a character boundary.
pub const MAX_LABEL_VALUE_BYTES: usize = 256;

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`.
pub(crate) fn is_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    !name.starts_with("__") && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Same character rules as metric names (colons excluded).
pub(crate) fn is_label_name(name: &str) -> bool {
    is_metric_name(name)
}

/// Appends `value` escaped for a label value (`\\`, `\"`, `\n`), cut to
/// [`MAX_LABEL_VALUE_BYTES`] of input first.
pub(crate) fn push_label_value(out: &mut String, value: &str) {
    let value = truncate_at_char(value, MAX_LABEL_VALUE_BYTES);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// HELP text escaped for the chosen format: text 0.0.4 escapes `\` and newline;
/// OpenMetrics also escapes `"`.
pub(crate) fn escape_help(help: &str, openmetrics: bool) -> String {
    let mut out = String::with_capacity(help.len());
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if openmetrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// The longest prefix of `s` no longer than `max` bytes that ends on a char boundary.
pub(crate) fn truncate_at_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Writes an f64 in the shortest round-trip form (`0.002`, `1.0`, `1e-7`), or `NaN`,
/// `+Inf`, `-Inf`.
pub(crate) fn push_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else {
        let mut buf = ryu::Buffer::new();
        out.extend_from_slice(buf.format_finite(v).as_bytes());
    }
}

/// Writes an unsigned integer.
pub(crate) fn push_u64(out: &mut Vec<u8>, v: u64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(v).as_bytes());
}

/// Writes a signed integer.
pub(crate) fn push_i64(out: &mut Vec<u8>, v: i64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(v).as_bytes());
}

/// An f64 rendered as text, for pre-rendered bucket bounds.
pub(crate) fn f64_string(v: f64) -> String {
    let mut out = Vec::new();
    push_f64(&mut out, v);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_rules() {
        assert!(is_metric_name("a_b1"));
        assert!(is_metric_name("_x"));
        assert!(!is_metric_name("__x"));
        assert!(!is_metric_name("1a"));
        assert!(!is_metric_name("a-b"));
        assert!(!is_metric_name("a:b"));
        assert!(!is_metric_name(""));
    }

    #[test]
    fn label_values_are_escaped_and_cut_at_char_boundaries() {
        let mut s = String::new();
        push_label_value(&mut s, "a\"b\\c\nd é");
        assert_eq!(s, "a\\\"b\\\\c\\nd é");
        let long = "é".repeat(200);
        let mut s = String::new();
        push_label_value(&mut s, &long);
        assert_eq!(s.len(), 256);
        assert!(s.chars().all(|c| c == 'é'));
    }

    #[test]
    fn floats_use_shortest_round_trip_form() {
        for (v, want) in [
            (0.002, "0.002"),
            (1.0, "1.0"),
            (1e-7, "1e-7"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(f64_string(v), want);
        }
    }

    #[test]
    fn help_escaping_differs_by_format() {
        assert_eq!(escape_help("a \"q\" \\ \n", false), "a \"q\" \\\\ \\n");
        assert_eq!(escape_help("a \"q\"", true), "a \\\"q\\\"");
    }
}
