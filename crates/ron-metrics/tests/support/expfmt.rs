//! A strict exposition checker, stricter than promtool 2.42 (which misses duplicate series
//! and a missing `+Inf`): final newline, no CR or blank lines, HELP/TYPE before samples,
//! contiguous families, no duplicate (name, labelset), `+Inf` present and equal to
//! `_count`, ascending cumulative buckets, valid escapes, base labels first and in order
//! on every sample, suffix rules, `# EOF` last for OpenMetrics.

use std::collections::{HashMap, HashSet};

const BASE: [&str; 4] = ["service", "instance", "build_version", "amnesia"];

/// What a valid exposition held.
#[derive(Debug, Default)]
pub struct Stats {
    pub families: usize,
    pub samples: usize,
    pub types: HashMap<String, String>,
}

#[derive(Default)]
struct Hist {
    last_le: Option<f64>,
    last_count: f64,
    inf: Option<f64>,
    count: Option<f64>,
}

pub fn check(text: &str, openmetrics: bool) -> Result<Stats, String> {
    // An empty registry is a valid (empty) text exposition.
    if text.is_empty() && !openmetrics {
        return Ok(Stats::default());
    }
    if !text.ends_with('\n') {
        return Err("no final newline".into());
    }
    if text.contains('\r') {
        return Err("carriage return found".into());
    }
    let mut stats = Stats::default();
    let mut closed: HashSet<String> = HashSet::new();
    let mut current: Option<(String, Option<String>, bool)> = None; // name, type, had samples
    let mut seen_series: HashSet<(String, Vec<(String, String)>)> = HashSet::new();
    let mut hists: HashMap<(String, Vec<(String, String)>), Hist> = HashMap::new();
    let mut eof = false;
    for (i, line) in text.split_terminator('\n').enumerate() {
        let at = |m: &str| format!("line {}: {m}: {line:?}", i + 1);
        if eof {
            return Err(at("content after # EOF"));
        }
        if line.is_empty() {
            return Err(at("blank line"));
        }
        if line.ends_with(' ') {
            return Err(at("trailing space"));
        }
        if let Some(rest) = line.strip_prefix("# ") {
            if rest == "EOF" {
                if !openmetrics {
                    return Err(at("# EOF in text format"));
                }
                eof = true;
                continue;
            }
            let (kw, rest) = rest.split_once(' ').ok_or_else(|| at("bad comment"))?;
            let (name, arg) = rest
                .split_once(' ')
                .ok_or_else(|| at("comment without text"))?;
            match kw {
                "HELP" => {
                    if let Some((n, _, _)) = &current {
                        if n == name {
                            return Err(at("second HELP"));
                        }
                        closed.insert(n.clone());
                    }
                    if closed.contains(name) {
                        return Err(at("family not contiguous"));
                    }
                    check_help(arg, openmetrics).map_err(|e| at(&e))?;
                    current = Some((name.to_owned(), None, false));
                    stats.families += 1;
                }
                "TYPE" => {
                    let Some((n, t, had)) = &mut current else {
                        return Err(at("TYPE without HELP"));
                    };
                    if n != name || t.is_some() || *had {
                        return Err(at("TYPE out of place"));
                    }
                    let ok = if openmetrics {
                        ["counter", "gauge", "histogram", "summary", "unknown"].contains(&arg)
                    } else {
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg)
                    };
                    if !ok {
                        return Err(at("bad type"));
                    }
                    *t = Some(arg.to_owned());
                    stats.types.insert(name.to_owned(), arg.to_owned());
                }
                _ => return Err(at("unknown comment")),
            }
            continue;
        }
        let Some((fam, ty, had)) = &mut current else {
            return Err(at("sample before HELP/TYPE"));
        };
        let ty = ty.clone().ok_or_else(|| at("sample before TYPE"))?;
        *had = true;
        let (name, labels, value) = parse_sample(line).map_err(|e| at(&e))?;
        let suffix = name
            .strip_prefix(fam.as_str())
            .ok_or_else(|| at("sample outside its family"))?;
        let allowed: &[&str] = match ty.as_str() {
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["", "_sum", "_count"],
            "counter" if openmetrics => &["_total", "_created"],
            _ => &[""],
        };
        if !allowed.contains(&suffix) {
            return Err(at("sample name does not belong to the family type"));
        }
        match ty.as_str() {
            "counter" if !name.ends_with("_total") => return Err(at("counter without _total")),
            "histogram" if !(fam.ends_with("_seconds") || fam.ends_with("_bytes")) => {
                return Err(at("histogram without _seconds/_bytes"));
            }
            _ => {}
        }
        let names: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
        if names.len() < 4 || names[..4] != BASE {
            return Err(at("base labels not first and in order"));
        }
        let mut uniq = HashSet::new();
        if !names.iter().all(|n| uniq.insert(*n)) {
            return Err(at("repeated label"));
        }
        if !seen_series.insert((name.clone(), labels.clone())) {
            return Err(at("duplicate series"));
        }
        stats.samples += 1;
        if ty == "histogram" {
            let mut key_labels = labels.clone();
            let le = if suffix == "_bucket" {
                let (k, v) = key_labels
                    .pop()
                    .ok_or_else(|| at("bucket without labels"))?;
                if k != "le" {
                    return Err(at("le is not the last label"));
                }
                Some(parse_value(&v).map_err(|e| at(&e))?)
            } else {
                None
            };
            let h = hists.entry((fam.clone(), key_labels)).or_default();
            match (suffix, le) {
                ("_bucket", Some(le)) => {
                    if h.last_le.is_some_and(|p| le <= p) {
                        return Err(at("buckets not ascending"));
                    }
                    if value < h.last_count {
                        return Err(at("buckets not cumulative"));
                    }
                    h.last_le = Some(le);
                    h.last_count = value;
                    if le == f64::INFINITY {
                        h.inf = Some(value);
                    }
                }
                ("_count", _) => h.count = Some(value),
                _ => {}
            }
        }
    }
    if openmetrics && !eof {
        return Err("OpenMetrics body without # EOF".into());
    }
    for ((fam, labels), h) in &hists {
        match (h.inf, h.count) {
            (Some(inf), Some(count)) if inf == count => {}
            (None, _) => return Err(format!("{fam}{labels:?}: no +Inf bucket")),
            _ => return Err(format!("{fam}{labels:?}: +Inf != _count")),
        }
    }
    Ok(stats)
}

fn check_help(text: &str, openmetrics: bool) -> Result<(), String> {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\\') | Some('n') => {}
                Some('"') if openmetrics => {}
                other => return Err(format!("bad escape in HELP: \\{other:?}")),
            }
        } else if c == '"' && openmetrics {
            return Err("unescaped quote in OpenMetrics HELP".into());
        }
    }
    Ok(())
}

type Labels = Vec<(String, String)>;

fn parse_sample(line: &str) -> Result<(String, Labels, f64), String> {
    let name_end = line.find(['{', ' ']).ok_or("sample without value")?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err("bad metric name".into());
    }
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        let consumed;
        loop {
            let start = chars.peek().map(|(i, _)| *i).ok_or("unterminated labels")?;
            if r[start..].starts_with('}') {
                consumed = start + 1;
                break;
            }
            let eq = r[start..].find("=\"").ok_or("label without =\"")? + start;
            let lname = &r[start..eq];
            if lname.is_empty() || !lname.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("bad label name {lname:?}"));
            }
            while chars.peek().is_some_and(|(i, _)| *i < eq + 2) {
                chars.next();
            }
            let mut value = String::new();
            loop {
                let (_, c) = chars.next().ok_or("unterminated label value")?;
                match c {
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => return Err(format!("bad escape \\{other:?}")),
                    },
                    '"' => break,
                    '\n' => return Err("raw newline in label value".into()),
                    c => value.push(c),
                }
            }
            labels.push((lname.to_owned(), value));
            match chars.next() {
                Some((_, ',')) => {}
                Some((i, '}')) => {
                    consumed = i + 1;
                    break;
                }
                _ => return Err("expected , or } after label".into()),
            }
        }
        rest = &r[consumed..];
    }
    let value = rest.strip_prefix(' ').ok_or("no space before value")?;
    if value.contains(' ') {
        return Err("timestamp or extra token after value".into());
    }
    Ok((name.to_owned(), labels, parse_value(value)?))
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse::<f64>().map_err(|_| format!("bad value {v:?}")),
    }
}
