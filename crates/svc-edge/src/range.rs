//! `Range` request evaluation, spec §4.5 steps 5-7 (EDGE-R19) and decisions 1-2.
//!
//! The caller decides whether Range applies at all (GET only, If-Range holds); this
//! module turns the Range header lines and the representation length into the response
//! shape. Parsing is strict and overflow-safe: at most 19 digits per number, so every
//! number fits a `u64` and `last + 1` never overflows once resolved against a length.
//!
//! The common single-range request allocates nothing: specs are resolved on the stack
//! (at most [`MAX_RANGE_SPECS`]) and only a multi-range answer needs a `Vec`.
//!
//! Not for: If-Range (see `conditional`), or writing multipart bodies (see `multipart`).

use bytes::Bytes;

/// Most range specs honoured in one request; more get a full 200 (decision 1), since a
/// 200 never amplifies beyond the representation length.
pub const MAX_RANGE_SPECS: usize = 16;

/// Longest decimal number accepted; 19 digits always fit a `u64`.
pub const MAX_RANGE_DIGITS: usize = 19;

/// An inclusive byte range `first..=last` inside a representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// Offset of the first byte.
    pub first: u64,
    /// Offset of the last byte (inclusive).
    pub last: u64,
}

/// What a request's Range header asks for, resolved against the representation length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeOutcome {
    /// No Range header: a plain 200, not counted.
    None,
    /// A Range that is well formed but not honoured (other unit, too many specs, empty
    /// representation): 200 with the full body.
    Ignored,
    /// A Range with a syntax error, or several Range lines: 200 with the full body.
    Malformed,
    /// Well formed, but no spec overlaps the representation: 416.
    Unsatisfiable,
    /// Exactly one range after coalescing: 206 with `Content-Range`.
    Single(ByteRange),
    /// Two or more disjoint ranges: a multipart/byteranges 206. Ascending if any ranges
    /// were merged, otherwise in request order.
    Multi(Vec<ByteRange>),
}

/// One syntactically valid byte-range spec, before resolution.
#[derive(Debug, Clone, Copy)]
enum Spec {
    /// `first-last`
    FromTo(u64, u64),
    /// `first-`
    From(u64),
    /// `-suffix`
    Suffix(u64),
}

impl ByteRange {
    /// Number of bytes in the range. A well-formed range is never empty.
    #[allow(
        clippy::len_without_is_empty,
        reason = "an inclusive range always holds at least one byte"
    )]
    pub fn len(&self) -> u64 {
        self.last.saturating_sub(self.first).saturating_add(1)
    }

    /// The range as a zero-copy slice of `body`; `None` if it does not lie inside it.
    pub fn slice(&self, body: &Bytes) -> Option<Bytes> {
        let first = usize::try_from(self.first).ok()?;
        let last = usize::try_from(self.last).ok()?;
        (first <= last && last < body.len()).then(|| body.slice(first..=last))
    }
}

impl RangeOutcome {
    /// The `edge_range_requests_total{result}` label, or `None` when no Range was sent.
    pub fn metric_result(&self) -> Option<&'static str> {
        match self {
            RangeOutcome::None => None,
            RangeOutcome::Ignored => Some("ignored"),
            RangeOutcome::Malformed => Some("malformed"),
            RangeOutcome::Unsatisfiable => Some("416"),
            RangeOutcome::Single(_) => Some("206"),
            RangeOutcome::Multi(_) => Some("multipart"),
        }
    }
}

/// Evaluates the request's Range header lines (in arrival order) against a
/// representation of `len` bytes.
pub fn evaluate(range_lines: &[&str], len: u64) -> RangeOutcome {
    let value = match range_lines {
        [] => return RangeOutcome::None,
        [one] => trim_ows(one),
        // Several lines cannot be told apart from a deliberately confusing request.
        _ => return RangeOutcome::Malformed,
    };
    let Some((unit, set)) = value.split_once('=') else {
        return RangeOutcome::Malformed;
    };
    if unit.is_empty() || !unit.bytes().all(is_tchar) {
        return RangeOutcome::Malformed;
    }
    if !unit.eq_ignore_ascii_case("bytes") {
        // Another unit has its own spec grammar, which we neither know nor need.
        return RangeOutcome::Ignored;
    }

    let mut specs = [Spec::Suffix(0); MAX_RANGE_SPECS];
    let mut count = 0usize;
    for element in set.split(',') {
        let element = trim_ows(element);
        if element.is_empty() {
            continue;
        }
        // Keep validating past the cap: a syntax error anywhere makes it malformed.
        let Some(spec) = parse_spec(element) else {
            return RangeOutcome::Malformed;
        };
        if let Some(slot) = specs.get_mut(count) {
            *slot = spec;
        }
        count += 1;
    }
    if count == 0 {
        return RangeOutcome::Malformed;
    }
    if count > MAX_RANGE_SPECS || len == 0 {
        return RangeOutcome::Ignored;
    }

    let mut resolved = [ByteRange { first: 0, last: 0 }; MAX_RANGE_SPECS];
    let mut n = 0usize;
    for spec in &specs[..count] {
        if let Some(r) = resolve(*spec, len) {
            resolved[n] = r;
            n += 1;
        }
    }
    coalesce(&mut resolved[..n])
}

/// `Content-Range` value for a 206 part: `bytes first-last/len`.
pub fn content_range(r: &ByteRange, len: u64) -> String {
    let mut buf = itoa::Buffer::new();
    let mut out = String::with_capacity(6 + 3 * 20 + 2);
    out.push_str("bytes ");
    out.push_str(buf.format(r.first));
    out.push('-');
    out.push_str(buf.format(r.last));
    out.push('/');
    out.push_str(buf.format(len));
    out
}

/// `Content-Range` value for a 416: `bytes */len`.
pub fn unsatisfied_content_range(len: u64) -> String {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(len);
    let mut out = String::with_capacity(8 + digits.len());
    out.push_str("bytes */");
    out.push_str(digits);
    out
}

/// Step 6: a spec against the length; `None` if unsatisfiable. `len` is non-zero.
fn resolve(spec: Spec, len: u64) -> Option<ByteRange> {
    let end = len - 1;
    match spec {
        Spec::FromTo(first, last) if first < len => Some(ByteRange {
            first,
            last: last.min(end),
        }),
        Spec::From(first) if first < len => Some(ByteRange { first, last: end }),
        Spec::Suffix(n) if n > 0 => Some(ByteRange {
            first: len.saturating_sub(n),
            last: end,
        }),
        _ => None,
    }
}

/// Step 7 on the satisfiable ranges, in request order.
fn coalesce(ranges: &mut [ByteRange]) -> RangeOutcome {
    match ranges {
        [] => return RangeOutcome::Unsatisfiable,
        [one] => return RangeOutcome::Single(*one),
        _ => {}
    }
    let mut sorted = [ByteRange { first: 0, last: 0 }; MAX_RANGE_SPECS];
    let sorted = &mut sorted[..ranges.len()];
    sorted.copy_from_slice(ranges);
    sorted.sort_unstable_by_key(|r| (r.first, r.last));
    // Sorted by start, some pair overlaps or touches exactly when an adjacent pair does.
    // `last < len <= u64::MAX`, so `last + 1` cannot overflow.
    let touching = sorted.windows(2).any(|w| w[1].first <= w[0].last + 1);
    if !touching {
        return RangeOutcome::Multi(ranges.to_vec());
    }
    let mut merged: Vec<ByteRange> = Vec::with_capacity(sorted.len());
    for r in sorted.iter() {
        match merged.last_mut() {
            Some(prev) if r.first <= prev.last + 1 => prev.last = prev.last.max(r.last),
            _ => merged.push(*r),
        }
    }
    if let [one] = merged.as_slice() {
        RangeOutcome::Single(*one)
    } else {
        RangeOutcome::Multi(merged)
    }
}

/// Parses `first-last`, `first-` or `-suffix`; `None` is a syntax error.
fn parse_spec(s: &str) -> Option<Spec> {
    let (a, b) = s.split_once('-')?;
    if a.is_empty() {
        return parse_number(b).map(Spec::Suffix);
    }
    let first = parse_number(a)?;
    if b.is_empty() {
        return Some(Spec::From(first));
    }
    let last = parse_number(b)?;
    (first <= last).then_some(Spec::FromTo(first, last))
}

fn parse_number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > MAX_RANGE_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // At most 19 digits, so this cannot overflow.
    Some(
        s.bytes()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0')),
    )
}

/// RFC 9110 `tchar`, the characters of a token such as a range unit.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: u64 = 1000;

    fn br(first: u64, last: u64) -> ByteRange {
        ByteRange { first, last }
    }

    fn one(value: &str) -> RangeOutcome {
        evaluate(&[value], L)
    }

    #[test]
    fn no_range_header_is_not_counted() {
        assert_eq!(evaluate(&[], L), RangeOutcome::None);
        assert_eq!(RangeOutcome::None.metric_result(), None);
    }

    #[test]
    fn edge_t6_satisfiable_single_ranges() {
        let cases = [
            ("bytes=0-99", br(0, 99), "bytes 0-99/1000"),
            ("bytes=100-", br(100, 999), "bytes 100-999/1000"),
            ("bytes=-10", br(990, 999), "bytes 990-999/1000"),
            ("bytes=990-2000", br(990, 999), "bytes 990-999/1000"),
        ];
        for (value, want, header) in cases {
            let got = one(value);
            assert_eq!(got, RangeOutcome::Single(want), "{value}");
            assert_eq!(got.metric_result(), Some("206"));
            assert_eq!(content_range(&want, L), header);
        }
        assert_eq!(br(990, 999).len(), 10);
    }

    #[test]
    fn edge_t6_unsatisfiable_ranges_are_416() {
        for value in ["bytes=1000-", "bytes=-0", "bytes=1000-1001,2000-"] {
            let got = one(value);
            assert_eq!(got, RangeOutcome::Unsatisfiable, "{value}");
            assert_eq!(got.metric_result(), Some("416"));
        }
        assert_eq!(unsatisfied_content_range(L), "bytes */1000");
    }

    #[test]
    fn edge_t6_syntax_errors_are_malformed() {
        for value in [
            "bytes=5-2",
            "abc",
            "bytes=",
            "bytes=,",
            "bytes=-",
            "bytes=0-1-2",
            "bytes=a-b",
            "bytes=0x1-2",
            "bytes=+1-2",
            "bytes=0 - 9",
            "bytes =0-9",
            "=0-9",
            "by tes=0-9",
            "bytes=0-9=",
            "bytes=0-9;1-2",
            "bytes=--5",
        ] {
            let got = one(value);
            assert_eq!(got, RangeOutcome::Malformed, "{value:?}");
            assert_eq!(got.metric_result(), Some("malformed"));
        }
    }

    #[test]
    fn several_range_lines_are_malformed() {
        assert_eq!(
            evaluate(&["bytes=0-1", "bytes=2-3"], L),
            RangeOutcome::Malformed
        );
    }

    #[test]
    fn edge_t6_other_units_and_too_many_specs_are_ignored() {
        assert_eq!(one("items=0-1"), RangeOutcome::Ignored);
        assert_eq!(one("items=0-1").metric_result(), Some("ignored"));
        let seventeen: Vec<String> = (0..17).map(|i| format!("{}-{}", i * 10, i * 10)).collect();
        let value = format!("bytes={}", seventeen.join(","));
        assert_eq!(one(&value), RangeOutcome::Ignored);
        let sixteen = format!("bytes={}", seventeen[..16].join(","));
        assert!(matches!(one(&sixteen), RangeOutcome::Multi(v) if v.len() == 16));
    }

    #[test]
    fn a_syntax_error_after_the_sixteenth_spec_is_still_malformed() {
        let mut specs: Vec<String> = (0..17).map(|i| format!("{i}-{i}")).collect();
        specs.push("9-1".into());
        assert_eq!(
            one(&format!("bytes={}", specs.join(","))),
            RangeOutcome::Malformed
        );
    }

    #[test]
    fn unit_is_case_insensitive() {
        assert_eq!(one("BYTES=0-9"), RangeOutcome::Single(br(0, 9)));
        assert_eq!(one("Bytes=0-9"), RangeOutcome::Single(br(0, 9)));
    }

    #[test]
    fn edge_t6_zero_length_representation_ignores_ranges() {
        assert_eq!(evaluate(&["bytes=0-"], 0), RangeOutcome::Ignored);
        assert_eq!(evaluate(&["bytes=-5"], 0), RangeOutcome::Ignored);
        assert_eq!(evaluate(&["bytes=5-2"], 0), RangeOutcome::Malformed);
    }

    #[test]
    fn edge_t6_unsatisfiable_specs_are_dropped_before_coalescing() {
        assert_eq!(one("bytes=0-1,1000-1001"), RangeOutcome::Single(br(0, 1)));
        assert_eq!(one("bytes=-0,5-9"), RangeOutcome::Single(br(5, 9)));
    }

    #[test]
    fn edge_t6_overlapping_or_touching_ranges_merge_into_one() {
        assert_eq!(one("bytes=0-9,5-20"), RangeOutcome::Single(br(0, 20)));
        assert_eq!(one("bytes=0-0,1-1"), RangeOutcome::Single(br(0, 1)));
        assert_eq!(one("bytes=500-,-600"), RangeOutcome::Single(br(400, 999)));
        assert_eq!(one("bytes=0-9,0-9"), RangeOutcome::Single(br(0, 9)));
    }

    #[test]
    fn empty_list_elements_and_spaces_are_skipped() {
        assert_eq!(one(" bytes=, 0-9 ,,\t"), RangeOutcome::Single(br(0, 9)));
    }

    #[test]
    fn edge_t7_disjoint_ranges_keep_request_order() {
        let got = one("bytes=0-1,10-19");
        assert_eq!(got, RangeOutcome::Multi(vec![br(0, 1), br(10, 19)]));
        assert_eq!(got.metric_result(), Some("multipart"));
        assert_eq!(
            one("bytes=10-19,0-1"),
            RangeOutcome::Multi(vec![br(10, 19), br(0, 1)])
        );
    }

    #[test]
    fn edge_t7_any_overlap_merges_everything_in_ascending_order() {
        assert_eq!(
            one("bytes=50-60,0-9,5-20"),
            RangeOutcome::Multi(vec![br(0, 20), br(50, 60)])
        );
        assert_eq!(
            one("bytes=900-,30-39,0-9,10-12"),
            RangeOutcome::Multi(vec![br(0, 12), br(30, 39), br(900, 999)])
        );
        assert_eq!(
            one("bytes=0-100,10-20,50-60"),
            RangeOutcome::Single(br(0, 100))
        );
    }

    #[test]
    fn numbers_over_19_digits_are_malformed_without_overflow() {
        let max = u64::MAX.to_string();
        assert_eq!(max.len(), 20);
        assert_eq!(one(&format!("bytes=0-{max}")), RangeOutcome::Malformed);
        assert_eq!(one(&format!("bytes={max}-")), RangeOutcome::Malformed);
        assert_eq!(one(&format!("bytes=-{max}")), RangeOutcome::Malformed);
        assert_eq!(one("bytes=0-00000000000000000009"), RangeOutcome::Malformed);
        assert_eq!(one("bytes=99999999999999999999-"), RangeOutcome::Malformed);
    }

    #[test]
    fn nineteen_digit_numbers_resolve_against_the_length() {
        let big = "9".repeat(19);
        assert_eq!(
            one(&format!("bytes=0-{big}")),
            RangeOutcome::Single(br(0, 999))
        );
        assert_eq!(
            one(&format!("bytes=-{big}")),
            RangeOutcome::Single(br(0, 999))
        );
        assert_eq!(one(&format!("bytes={big}-")), RangeOutcome::Unsatisfiable);
        assert_eq!(
            one("bytes=0000000000000000009-"),
            RangeOutcome::Single(br(9, 999))
        );
    }

    #[test]
    fn ranges_near_u64_max_lengths_do_not_overflow() {
        let len = u64::MAX;
        let end = u64::MAX - 1;
        assert_eq!(
            evaluate(&["bytes=-1"], len),
            RangeOutcome::Single(br(end, end))
        );
        assert_eq!(
            evaluate(&["bytes=9999999999999999999-,-1"], len),
            RangeOutcome::Single(br(9_999_999_999_999_999_999, end))
        );
        assert_eq!(
            evaluate(&["bytes=0-0,-1"], len),
            RangeOutcome::Multi(vec![br(0, 0), br(end, end)])
        );
        assert_eq!(
            content_range(&br(end, end), len),
            format!("bytes {end}-{end}/{len}")
        );
        assert_eq!(unsatisfied_content_range(len), format!("bytes */{len}"));
        assert_eq!(br(0, u64::MAX).len(), u64::MAX);
    }

    #[test]
    fn slices_are_checked_and_zero_copy() {
        let body = Bytes::from_static(b"0123456789");
        let s = br(2, 4).slice(&body).unwrap();
        assert_eq!(&s[..], b"234");
        assert_eq!(s.as_ptr(), body[2..].as_ptr());
        assert_eq!(br(9, 9).slice(&body).unwrap(), Bytes::from_static(b"9"));
        assert_eq!(br(9, 10).slice(&body), None);
        assert_eq!(br(5, 4).slice(&body), None);
    }
}
