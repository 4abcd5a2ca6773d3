//! Request-path normalisation (spec §4.3, EDGE-R17).
//!
//! A client path is only ever a key into the in-memory indexes built at mount time; it
//! never becomes a file-system path. This module turns the raw, still percent-encoded
//! path after a route prefix (for `/edge/assets/a/b.txt` that is `a/b.txt`) into that
//! key, or says why it must be refused.
//!
//! Percent-decoding is hand-written rather than taken from `percent-encoding`: that crate
//! passes a malformed escape such as `%zz` through unchanged, while §4.3 requires it to be
//! rejected, and every segment must be decoded exactly once and checked on its own.
//!
//! Not for: route matching, query strings, or deciding whether a key exists.

use std::borrow::Cow;

use thiserror::Error;

/// Longest raw path accepted, in bytes; longer paths get 414.
pub const MAX_PATH_BYTES: usize = 4096;
/// Most `/`-separated segments a path may have.
pub const MAX_SEGMENTS: usize = 64;
/// Longest decoded segment accepted, in bytes (a common file-name limit).
pub const MAX_SEGMENT_BYTES: usize = 255;

/// Why a path cannot be used as a lookup key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PathError {
    /// The raw path is over [`MAX_PATH_BYTES`]: 414 `uri_too_long`.
    #[error("path is longer than {MAX_PATH_BYTES} bytes; shorten it")]
    TooLong,
    /// The path is malformed or tries to escape its namespace: 400 `bad_path`.
    #[error("bad path: {0}")]
    Bad(BadPath),
    /// A segment starts with `.`: hidden files are never served, so 404.
    #[error("path names a hidden (dot) entry, which is never served")]
    Hidden,
}

/// The specific rule a [`PathError::Bad`] path broke, for logs (`detail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPath {
    /// More than [`MAX_SEGMENTS`] segments.
    TooManySegments,
    /// An empty segment: a leading or trailing `/`, or `//`.
    EmptySegment,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// The decoded bytes are not UTF-8 (e.g. the overlong `%c0%ae`).
    InvalidUtf8,
    /// A decoded segment over [`MAX_SEGMENT_BYTES`].
    SegmentTooLong,
    /// A segment that is `.` or `..` once decoded.
    DotSegment,
    /// A decoded `/` or `\`, NUL, another control byte, or DEL.
    ForbiddenByte,
}

impl BadPath {
    /// A stable snake_case name for log fields.
    pub fn as_str(self) -> &'static str {
        match self {
            BadPath::TooManySegments => "too_many_segments",
            BadPath::EmptySegment => "empty_segment",
            BadPath::BadEscape => "bad_escape",
            BadPath::InvalidUtf8 => "invalid_utf8",
            BadPath::SegmentTooLong => "segment_too_long",
            BadPath::DotSegment => "dot_segment",
            BadPath::ForbiddenByte => "forbidden_byte",
        }
    }
}

impl std::fmt::Display for BadPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<BadPath> for PathError {
    fn from(b: BadPath) -> Self {
        PathError::Bad(b)
    }
}

/// Normalises a raw path into its lookup key: every segment percent-decoded exactly once
/// and joined with `/`.
///
/// Borrows `raw` when it holds no escape, so the common warm-hit path does not allocate.
/// A path that is both bad and hidden is reported as bad, whatever the segment order.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if is_plain(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    check_shape(raw)?;
    if !raw.contains('%') {
        let mut hidden = false;
        for seg in raw.split('/') {
            hidden |= check_decoded(seg.as_bytes())?;
        }
        return if hidden {
            Err(PathError::Hidden)
        } else {
            Ok(Cow::Borrowed(raw))
        };
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut hidden = false;
    for (i, seg) in raw.split('/').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        let start = out.len();
        decode_into(seg, &mut out)?;
        hidden |= check_decoded(&out[start..])?;
    }
    // Separators are ASCII, so the joined key is UTF-8 exactly when every segment is.
    let key = String::from_utf8(out).map_err(|_| BadPath::InvalidUtf8)?;
    if hidden {
        return Err(PathError::Hidden);
    }
    Ok(Cow::Owned(key))
}

/// One pass that recognises the common path that needs no decoding and breaks no rule:
/// only unreserved bytes and `/`, within the length and segment limits, no empty segment,
/// no segment starting with `.`. Anything else takes the full checks, whose answer for
/// such a path would be the same borrowed key.
fn is_plain(raw: &str) -> bool {
    if raw.is_empty() || raw.len() > MAX_PATH_BYTES {
        return false;
    }
    let mut segments = 1usize;
    let mut seg_len = 0usize;
    for &b in raw.as_bytes() {
        match b {
            b'/' => {
                if seg_len == 0 {
                    return false;
                }
                segments += 1;
                seg_len = 0;
            }
            b'.' if seg_len == 0 => return false,
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                seg_len += 1;
                if seg_len > MAX_SEGMENT_BYTES {
                    return false;
                }
            }
            _ => return false,
        }
    }
    seg_len > 0 && segments <= MAX_SEGMENTS
}

/// Validates `raw` exactly as [`normalize`] does and returns its segments still encoded,
/// as live fill forwards them to the origin.
pub fn segments_raw(raw: &str) -> Result<Vec<&str>, PathError> {
    check_shape(raw)?;
    let mut scratch = Vec::new();
    let mut hidden = false;
    let mut segments = Vec::new();
    for seg in raw.split('/') {
        scratch.clear();
        decode_into(seg, &mut scratch)?;
        hidden |= check_decoded(&scratch)?;
        if std::str::from_utf8(&scratch).is_err() {
            return Err(BadPath::InvalidUtf8.into());
        }
        segments.push(seg);
    }
    if hidden {
        return Err(PathError::Hidden);
    }
    Ok(segments)
}

/// Step 1 of §4.3: overall length, segment count and empty segments, before decoding.
fn check_shape(raw: &str) -> Result<(), PathError> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    let mut count = 0usize;
    for seg in raw.split('/') {
        count += 1;
        if count > MAX_SEGMENTS {
            return Err(BadPath::TooManySegments.into());
        }
        if seg.is_empty() {
            return Err(BadPath::EmptySegment.into());
        }
    }
    Ok(())
}

/// Appends the percent-decoded bytes of one segment to `out`.
fn decode_into(seg: &str, out: &mut Vec<u8>) -> Result<(), BadPath> {
    let bytes = seg.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_val);
            let lo = bytes.get(i + 2).copied().and_then(hex_val);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(BadPath::BadEscape),
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(())
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Steps 2-3 of §4.3 on one decoded segment. Returns whether the segment is hidden.
fn check_decoded(seg: &[u8]) -> Result<bool, BadPath> {
    if seg.len() > MAX_SEGMENT_BYTES {
        return Err(BadPath::SegmentTooLong);
    }
    if seg == b"." || seg == b".." {
        return Err(BadPath::DotSegment);
    }
    if seg
        .iter()
        .any(|&b| b == b'/' || b == b'\\' || b < 0x20 || b == 0x7f)
    {
        return Err(BadPath::ForbiddenByte);
    }
    Ok(seg.first() == Some(&b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_fast_path_agrees_with_the_full_checks() {
        let long_seg = "a".repeat(MAX_SEGMENT_BYTES + 1);
        let many = vec!["a"; MAX_SEGMENTS + 1].join("/");
        let max = vec!["a"; MAX_SEGMENTS].join("/");
        for raw in [
            "a",
            "1k/f0001.bin",
            "a/b.c/d~e_f-g",
            ".hidden",
            "a/.b",
            "a//b",
            "/a",
            "a/",
            "a/./b",
            "a/../b",
            "%2e",
            "a b",
            "a\\b",
            "",
            &long_seg,
            &many,
            &max,
        ] {
            let full = (|| {
                check_shape(raw)?;
                let mut hidden = false;
                for seg in raw.split('/') {
                    hidden |= check_decoded(seg.as_bytes())?;
                }
                if hidden {
                    Err(PathError::Hidden)
                } else {
                    Ok(())
                }
            })();
            if is_plain(raw) {
                assert_eq!(
                    full,
                    Ok(()),
                    "{raw:?} is plain but the full checks refuse it"
                );
            }
            if !raw.contains('%') {
                assert_eq!(normalize(raw).map(|_| ()), full, "{raw:?}");
            }
        }
        assert!(is_plain("1k/f0001.bin") && is_plain(&max));
        assert!(!is_plain(&many) && !is_plain(&long_seg) && !is_plain(".x"));
    }

    fn bad(raw: &str) -> BadPath {
        match normalize(raw) {
            Err(PathError::Bad(b)) => b,
            other => panic!("{raw:?} should be bad, got {other:?}"),
        }
    }

    #[test]
    fn plain_paths_are_borrowed_unchanged() {
        let key = normalize("a/b.txt").unwrap();
        assert!(matches!(key, Cow::Borrowed("a/b.txt")));
        assert_eq!(normalize("world.pmtiles").unwrap(), "world.pmtiles");
    }

    #[test]
    fn escapes_are_decoded_once_into_the_key() {
        assert_eq!(normalize("a%20b/c%2Bd.txt").unwrap(), "a b/c+d.txt");
        assert_eq!(normalize("caf%C3%A9.txt").unwrap(), "café.txt");
        assert_eq!(normalize("caf%c3%a9.txt").unwrap(), "café.txt");
    }

    #[test]
    fn double_encoded_dots_become_a_literal_name_that_just_misses() {
        assert_eq!(normalize("%252e%252e").unwrap(), "%2e%2e");
        assert_eq!(
            normalize("%252e%252e/etc/passwd").unwrap(),
            "%2e%2e/etc/passwd"
        );
    }

    #[test]
    fn traversal_attempts_from_edge_t5_are_bad() {
        assert_eq!(bad("../etc/passwd"), BadPath::DotSegment);
        assert_eq!(bad("a/../b"), BadPath::DotSegment);
        assert_eq!(bad("%2e%2e/etc"), BadPath::DotSegment);
        assert_eq!(bad("%2E%2e/etc"), BadPath::DotSegment);
        assert_eq!(bad("..%2fetc"), BadPath::ForbiddenByte);
        assert_eq!(bad("a%2Fb"), BadPath::ForbiddenByte);
        assert_eq!(bad("a%5Cb"), BadPath::ForbiddenByte);
        assert_eq!(bad("a%5cb"), BadPath::ForbiddenByte);
        assert_eq!(bad("a%00b"), BadPath::ForbiddenByte);
        assert_eq!(bad("%c0%ae"), BadPath::InvalidUtf8);
        assert_eq!(bad("%c0%ae%c0%ae/etc"), BadPath::InvalidUtf8);
        assert_eq!(bad("a//b"), BadPath::EmptySegment);
    }

    #[test]
    fn single_dot_segments_are_bad() {
        assert_eq!(bad("./a"), BadPath::DotSegment);
        assert_eq!(bad("a/%2e"), BadPath::DotSegment);
    }

    #[test]
    fn empty_segments_anywhere_are_bad() {
        for raw in ["", "/", "/a", "a/", "a//b", "a///"] {
            assert_eq!(bad(raw), BadPath::EmptySegment, "{raw:?}");
        }
    }

    #[test]
    fn control_bytes_and_del_are_bad_whether_raw_or_encoded() {
        assert_eq!(bad("a%1fb"), BadPath::ForbiddenByte);
        assert_eq!(bad("a%7Fb"), BadPath::ForbiddenByte);
        assert_eq!(bad("a\tb"), BadPath::ForbiddenByte);
        assert_eq!(bad("a\\b"), BadPath::ForbiddenByte);
        assert_eq!(bad("a\u{7f}b"), BadPath::ForbiddenByte);
    }

    #[test]
    fn malformed_escapes_are_bad() {
        for raw in ["%", "a%", "a%2", "%zz", "%g0", "a%2/b", "%%41"] {
            assert_eq!(bad(raw), BadPath::BadEscape, "{raw:?}");
        }
    }

    #[test]
    fn dot_files_are_hidden() {
        assert_eq!(normalize(".b3sums"), Err(PathError::Hidden));
        assert_eq!(normalize("a/.git/config"), Err(PathError::Hidden));
        assert_eq!(normalize("%2eenv"), Err(PathError::Hidden));
        assert_eq!(normalize("a/.hidden%20x"), Err(PathError::Hidden));
    }

    #[test]
    fn bad_wins_over_hidden_in_either_order() {
        assert_eq!(bad(".git/../x"), BadPath::DotSegment);
        assert_eq!(bad("a/%00/.env"), BadPath::ForbiddenByte);
        assert_eq!(bad(".env/%c0%ae"), BadPath::InvalidUtf8);
    }

    #[test]
    fn names_with_inner_dots_are_served() {
        assert_eq!(normalize("a.b/c..d/e.").unwrap(), "a.b/c..d/e.");
        assert_eq!(normalize("...x").unwrap_err(), PathError::Hidden);
    }

    #[test]
    fn path_length_limit_is_4096_bytes() {
        let ok = "a".repeat(200) + "/" + &"b".repeat(200);
        assert!(normalize(&ok).is_ok());
        let segs: Vec<String> = (0..17).map(|_| "c".repeat(240)).collect();
        let exact = segs.join("/");
        let exact = &exact[..MAX_PATH_BYTES];
        assert_eq!(exact.len(), MAX_PATH_BYTES);
        assert!(normalize(exact).is_ok());
        let over = format!("{exact}x");
        assert_eq!(normalize(&over), Err(PathError::TooLong));
        assert_eq!(segments_raw(&over), Err(PathError::TooLong));
    }

    #[test]
    fn at_most_64_segments() {
        let sixty_four = vec!["s"; MAX_SEGMENTS].join("/");
        assert!(normalize(&sixty_four).is_ok());
        let sixty_five = vec!["s"; MAX_SEGMENTS + 1].join("/");
        assert_eq!(bad(&sixty_five), BadPath::TooManySegments);
    }

    #[test]
    fn decoded_segments_over_255_bytes_are_bad() {
        assert!(normalize(&"x".repeat(MAX_SEGMENT_BYTES)).is_ok());
        assert_eq!(
            bad(&"x".repeat(MAX_SEGMENT_BYTES + 1)),
            BadPath::SegmentTooLong
        );
        // 100 escapes are 300 raw bytes but only 100 decoded ones.
        assert!(normalize(&"%41".repeat(100)).is_ok());
        assert_eq!(bad(&"%41".repeat(256)), BadPath::SegmentTooLong);
    }

    #[test]
    fn raw_segments_stay_encoded_and_follow_the_same_rules() {
        assert_eq!(segments_raw("a%20b/c.txt").unwrap(), vec!["a%20b", "c.txt"]);
        assert_eq!(segments_raw("%252e%252e").unwrap(), vec!["%252e%252e"]);
        assert_eq!(segments_raw(".b3sums"), Err(PathError::Hidden));
        for raw in [
            "../", "%2e%2e/", "..%2f", "%2F", "%5C", "%00", "%c0%ae", "a//b", "%zz",
        ] {
            assert!(
                matches!(segments_raw(raw), Err(PathError::Bad(_))),
                "{raw:?}"
            );
            assert_eq!(segments_raw(raw).unwrap_err(), normalize(raw).unwrap_err());
        }
    }

    #[test]
    fn errors_display_without_echoing_the_path() {
        let e = normalize("secret/../x").unwrap_err();
        let text = e.to_string();
        assert_eq!(text, "bad path: dot_segment");
        assert!(!PathError::TooLong.to_string().contains("secret"));
    }
}
