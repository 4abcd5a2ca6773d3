//! Usernames for accounts created by a first OIDC login (CHAT-R22): from
//! `preferred_username`, else the email's local part, squeezed into the username rule
//! `^[a-z][a-z0-9._-]{1,20}[a-z0-9]$`, then deduplicated with numeric suffixes.

use crate::api::validate;

/// Longest username.
const MAX_LEN: usize = 22;

/// The base name for an identity: the first usable of `preferred`, the email local part,
/// then `user`.
pub fn base(preferred: Option<&str>, email: &str) -> String {
    let local = email.split('@').next().unwrap_or("");
    [preferred.unwrap_or(""), local]
        .into_iter()
        .map(normalise)
        .find(|n| validate::username(n).is_ok())
        .unwrap_or_else(|| "user".into())
}

/// Candidates in the order to try: the base, then base2 … base99 (trimmed to fit), then
/// two random ones (practically never reached, but a login must not fail on a busy name).
pub fn candidates(base: &str) -> Vec<String> {
    let mut out = vec![base.to_string()];
    for n in 2..100u32 {
        let suffix = n.to_string();
        let keep = MAX_LEN - suffix.len();
        let stem: String = base.chars().take(keep).collect();
        out.push(format!("{stem}{suffix}"));
    }
    for _ in 0..2 {
        let stem: String = base.chars().take(MAX_LEN - 7).collect();
        out.push(format!("{stem}-{:06}", rand::random::<u32>() % 1_000_000));
    }
    out.retain(|c| validate::username(c).is_ok());
    out
}

/// Lower-cases, maps every other character to `.`, collapses runs of separators, makes the
/// first character a letter and the last a letter or digit, and fits the length.
fn normalise(raw: &str) -> String {
    let mut s = String::new();
    for ch in raw.trim().chars().flat_map(char::to_lowercase) {
        let c = if ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch) {
            ch
        } else {
            '.'
        };
        let sep = ".-_".contains(c);
        if sep && (s.is_empty() || s.ends_with(['.', '-', '_'])) {
            continue;
        }
        s.push(c);
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, 'u');
    }
    s.truncate(MAX_LEN);
    while s.ends_with(['.', '-', '_']) {
        s.pop();
    }
    if validate::RESERVED_USERNAMES.contains(&s.as_str()) {
        s.push('1');
    }
    while !s.is_empty() && s.len() < 3 {
        s.push('0');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferred_username_wins_and_is_normalised() {
        assert_eq!(base(Some("Alice.Smith"), "x@y.z"), "alice.smith");
        assert_eq!(base(Some("José García"), "x@y.z"), "jos.garc.a");
        assert_eq!(base(Some("42bob"), "x@y.z"), "u42bob");
        assert_eq!(base(Some("here"), "x@y.z"), "here1");
    }

    #[test]
    fn the_email_local_part_is_the_fallback() {
        assert_eq!(base(None, "bob+chat@example.com"), "bob.chat");
        assert_eq!(base(Some("!!!"), "carol@example.com"), "carol");
        assert_eq!(base(None, "@example.com"), "user");
        assert_eq!(base(Some("a"), "b@x"), "a00");
    }

    #[test]
    fn every_candidate_is_a_valid_distinct_username() {
        let long = base(Some("a-very-long-preferred-username-indeed"), "");
        assert!(long.len() <= MAX_LEN);
        let c = candidates(&long);
        assert!(c.len() > 90);
        let mut seen = std::collections::HashSet::new();
        for n in &c {
            assert!(validate::username(n).is_ok(), "{n}");
            assert!(seen.insert(n.clone()), "duplicate {n}");
        }
    }
}
