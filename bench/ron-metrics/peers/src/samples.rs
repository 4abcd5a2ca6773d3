//! A small text-format parser used to prove that every library printed the same data:
//! each sample line becomes `(name, sorted labels) -> value`, with `le` and values compared
//! as numbers, so label order and float spelling (`1` vs `1.0`, `+Inf`) do not matter.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail, ensure};

/// Samples keyed by name plus sorted, normalised labels.
pub type SampleSet = BTreeMap<String, f64>;

/// Relative tolerance for sums accumulated in a different order.
const VALUE_TOLERANCE: f64 = 1e-9;
/// How many differences to print before giving up.
const MAX_REPORTED_DIFFS: usize = 5;

/// Parses every non-comment line of a text exposition.
pub fn parse(text: &[u8]) -> Result<SampleSet> {
    let text = std::str::from_utf8(text).context("exposition is not UTF-8")?;
    let mut out = SampleSet::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = parse_line(line).with_context(|| format!("line {}: {line}", n + 1))?;
        ensure!(
            out.insert(key.clone(), value).is_none(),
            "duplicate sample {key}"
        );
    }
    Ok(out)
}

/// Lists the first differences between two sample sets, or nothing when they agree.
pub fn diff(want: &SampleSet, got: &SampleSet) -> Vec<String> {
    let mut out = Vec::new();
    for (k, w) in want {
        match got.get(k) {
            None => out.push(format!("missing {k}")),
            Some(g) if !same_value(*w, *g) => out.push(format!("{k}: want {w}, got {g}")),
            Some(_) => {}
        }
        if out.len() >= MAX_REPORTED_DIFFS {
            return out;
        }
    }
    for k in got.keys().filter(|k| !want.contains_key(*k)) {
        out.push(format!("unexpected {k}"));
        if out.len() >= MAX_REPORTED_DIFFS {
            break;
        }
    }
    out
}

fn same_value(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= VALUE_TOLERANCE * a.abs().max(b.abs())
}

fn parse_line(line: &str) -> Result<(String, f64)> {
    let name_end = line
        .find(['{', ' '])
        .context("expected a name followed by labels or a value")?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            rest = rest.trim_start_matches(',');
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find("=\"").context("expected label=\"value\"")?;
            let label = &rest[..eq];
            let (value, r) = unescape_value(&rest[eq + 2..])?;
            rest = r;
            let value = if label == "le" {
                number(&value)?.to_string()
            } else {
                value
            };
            labels.push((label.to_owned(), value));
        }
    }
    let value = rest
        .split_whitespace()
        .next()
        .context("expected a value after the labels")?;
    labels.sort();
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    Ok((format!("{name}{{{}}}", labels.join(",")), number(value)?))
}

/// Reads a label value up to its closing quote; returns it and the rest of the line.
fn unescape_value(s: &str) -> Result<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, e)) => out.push(e),
                None => bail!("dangling escape"),
            },
            c => out.push(c),
        }
    }
    bail!("unterminated label value")
}

fn number(s: &str) -> Result<f64> {
    match s {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s.parse().with_context(|| format!("bad number {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_order_and_float_spelling_do_not_matter() {
        let a = parse(
            b"# HELP x h\nx_bucket{b=\"2\",a=\"q\\\"\",le=\"0.5\"} 3\nx_bucket{le=\"+Inf\"} 1.0\n",
        )
        .unwrap();
        let b = parse(
            b"x_bucket{le=\"5e-1\",a=\"q\\\"\",b=\"2\"} 3.0\nx_bucket{le=\"+Inf\"} 1\n# EOF\n",
        )
        .unwrap();
        assert!(diff(&a, &b).is_empty());
    }

    #[test]
    fn a_changed_value_is_reported() {
        let a = parse(b"x{a=\"1\"} 3\n").unwrap();
        let b = parse(b"x{a=\"1\"} 4\n").unwrap();
        assert_eq!(diff(&a, &b).len(), 1);
    }
}
