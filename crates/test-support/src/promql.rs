//! The metric names a PromQL expression reads, for checking the shipped alert rules,
//! recording rules and dashboards under deploy/ against what a service exports (every
//! service's monitoring test uses it, through [`crate::monitoring`] or directly).
//!
//! Not a PromQL parser: it blanks out everything that cannot name a series (string
//! literals, label matchers, range and subquery brackets, the label lists of `by`,
//! `without`, `on`, `ignoring`, `group_left`, `group_right`), then keeps the identifiers that
//! are neither keywords, aggregation operators, functions (an identifier before `(`),
//! numbers, durations nor Grafana variables (`$x`). A `{__name__="x"}` matcher names `x`.

use std::collections::BTreeSet;

/// Words that look like identifiers but name no series: binary and set operators,
/// modifiers, aggregation operators (they may precede `by (…)` instead of `(`), and the
/// special float literals.
const NOT_METRICS: &[&str] = &[
    "and",
    "or",
    "unless",
    "atan2",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "inf",
    "nan",
];

/// Keywords whose following parenthesised list holds label names, not expressions.
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names `expr` selects.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let blanked = blank_strings_and_selectors(&chars, &mut names);
    let blanked = blank_label_lists(&blanked);
    let mut i = 0;
    while i < blanked.len() {
        let c = blanked[i];
        if c.is_ascii_digit() || c == '.' {
            // A number or duration (`0.99`, `1e-9`, `5m`): its letters are no identifier.
            while i < blanked.len() && (blanked[i].is_ascii_alphanumeric() || blanked[i] == '.') {
                i += 1;
            }
            continue;
        }
        if c == '$' {
            // A Grafana variable outside brackets (`$__interval` in an offset, say).
            i += 1;
            while i < blanked.len() && is_ident_char(blanked[i]) {
                i += 1;
            }
            continue;
        }
        if !is_ident_start(c) {
            i += 1;
            continue;
        }
        let start = i;
        while i < blanked.len() && is_ident_char(blanked[i]) {
            i += 1;
        }
        let word: String = blanked[start..i].iter().collect();
        let next = blanked[i..].iter().find(|c| !c.is_whitespace());
        if next == Some(&'(') || NOT_METRICS.contains(&word.to_ascii_lowercase().as_str()) {
            continue;
        }
        names.insert(word);
    }
    names
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Replaces string literals, `{…}` matcher sets and `[…]` ranges with spaces, collecting
/// the metric a `__name__` equality matcher names.
fn blank_strings_and_selectors(chars: &[char], names: &mut BTreeSet<String>) -> Vec<char> {
    let mut out = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => {
                let end = string_end(chars, i);
                out.extend(std::iter::repeat_n(' ', end - i));
                i = end;
            }
            open @ ('{' | '[') => {
                let close = if open == '{' { '}' } else { ']' };
                let start = i;
                let mut depth = 0usize;
                while i < chars.len() {
                    match chars[i] {
                        '"' | '\'' | '`' => {
                            i = string_end(chars, i);
                            continue;
                        }
                        c if c == open => depth += 1,
                        c if c == close => {
                            depth -= 1;
                            if depth == 0 {
                                i += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                if open == '{' {
                    let inner: String = chars[start..i].iter().collect();
                    names.extend(name_matcher(&inner));
                }
                out.extend(std::iter::repeat_n(' ', i - start));
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The index just past the string literal opening at `start` (or the end of input).
fn string_end(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == '\\' && quote != '`' {
            i += 2;
            continue;
        }
        if chars[i] == quote {
            return i + 1;
        }
        i += 1;
    }
    chars.len()
}

/// `x` from a `__name__="x"` matcher inside a `{…}` block.
fn name_matcher(block: &str) -> Option<String> {
    let rest = block.split("__name__").nth(1)?.trim_start();
    let rest = rest.strip_prefix('=')?;
    if rest.starts_with('~') || rest.starts_with('=') {
        return None;
    }
    let rest = rest.trim_start().strip_prefix('"')?;
    Some(rest.split('"').next()?.to_string())
}

/// Replaces the parenthesised label list after each [`LABEL_LIST_KEYWORDS`] word.
fn blank_label_lists(chars: &[char]) -> Vec<char> {
    let mut out = chars.to_vec();
    let mut i = 0;
    while i < out.len() {
        if !is_ident_start(out[i]) || (i > 0 && is_ident_char(out[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < out.len() && is_ident_char(out[i]) {
            i += 1;
        }
        let word: String = out[start..i]
            .iter()
            .collect::<String>()
            .to_ascii_lowercase();
        if !LABEL_LIST_KEYWORDS.contains(&word.as_str()) {
            continue;
        }
        let mut j = i;
        while j < out.len() && out[j].is_whitespace() {
            j += 1;
        }
        if out.get(j) == Some(&'(') {
            while j < out.len() && out[j] != ')' {
                out[j] = ' ';
                j += 1;
            }
            if j < out.len() {
                out[j] = ' ';
            }
            i = j;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::metric_names;

    fn names(expr: &str) -> Vec<String> {
        metric_names(expr).into_iter().collect()
    }

    #[test]
    fn keeps_metrics_and_drops_functions_keywords_labels_and_strings() {
        assert_eq!(
            names(
                r#"histogram_quantile(0.99, sum by (job, le) (rate(rustchat_http_request_duration_seconds_bucket{route=~"/api|x{y}"}[5m]))) > 0.5"#
            ),
            ["rustchat_http_request_duration_seconds_bucket"]
        );
        assert_eq!(
            names("increase(a_total[5m]) > 0 or (a_total unless a_total offset 5m)"),
            ["a_total"]
        );
        assert_eq!(
            names(
                r#"sum(rate(a{instance=~"$instance"}[$__rate_interval])) / on(instance) group_left(version) b > 1e-9"#
            ),
            ["a", "b"]
        );
        assert_eq!(
            names(r#"label_replace(up{job="x"}, "dst", "$1 and c", "src", "(.*)") == 0"#),
            ["up"]
        );
        assert_eq!(
            names(r#"sum without (pool) (x) + count({__name__="y:z", a="b"})"#),
            ["x", "y:z"]
        );
        assert_eq!(names("job:rustchat_x:rate5m"), ["job:rustchat_x:rate5m"]);
        assert!(names("vector(1) + time()").is_empty());
    }
}
