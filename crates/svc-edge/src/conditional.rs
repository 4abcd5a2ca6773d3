//! RFC 9110 preconditions: entity-tag lists, HTTP dates, and the evaluation order of
//! spec §4.5 steps 1, 2 and 4 (EDGE-R19).
//!
//! Step 0 (a missing resource is 404 before any precondition) and step 3 (no Range, or
//! not GET) belong to the caller, which also joins repeated header lines with `", "`
//! before handing them over (RFC 9110 §5.3), so a single line is used without copying.
//!
//! Every header here is parsed without allocating. Dates use `httpdate`, which accepts
//! IMF-fixdate, RFC 850 and asctime. Last-Modified values are compared in whole seconds,
//! because that is the precision clients echo back from the header.
//!
//! Not for: producing header values, or method handling (only GET and HEAD are served,
//! so a matching If-None-Match always means 304).

use std::time::{SystemTime, UNIX_EPOCH};

/// The validators of the selected representation.
#[derive(Debug, Clone, Copy)]
pub struct Validators<'a> {
    /// The ETag header value exactly as sent, quotes included: `"b3:<64 hex>"`. Always a
    /// strong tag this server produced.
    pub etag: &'a str,
    /// Last-Modified, when the representation has one (pack-backed responses).
    pub last_modified: Option<SystemTime>,
}

/// The request's conditional header values, each already joined across repeated lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditionals<'a> {
    /// `If-Match`.
    pub if_match: Option<&'a str>,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a str>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<&'a str>,
    /// `If-Range`.
    pub if_range: Option<&'a str>,
}

/// Result of steps 1-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// No precondition stops the request; continue with Range handling.
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// One parsed entity-tag, borrowing the header text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityTag<'a> {
    weak: bool,
    /// The opaque tag including its surrounding double quotes.
    opaque: &'a str,
}

/// How two entity-tags are compared (RFC 9110 §8.8.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// Both tags strong and byte-equal (If-Match, If-Range).
    Strong,
    /// Byte-equal once any `W/` is dropped (If-None-Match).
    Weak,
}

impl<'a> EntityTag<'a> {
    /// Parses exactly one entity-tag (`"…"` or `W/"…"`), ignoring surrounding spaces and
    /// tabs. Returns `None` for anything else.
    pub fn parse(value: &'a str) -> Option<Self> {
        let trimmed = trim_ows(value);
        match parse_tag_at(trimmed.as_bytes(), 0) {
            Some((tag, end)) if end == trimmed.len() => Some(Self::from_span(trimmed, tag)),
            _ => None,
        }
    }

    /// Whether the tag carries the `W/` prefix.
    pub fn is_weak(&self) -> bool {
        self.weak
    }

    /// The opaque tag, including its double quotes.
    pub fn opaque(&self) -> &'a str {
        self.opaque
    }

    /// Compares two tags; comparison is always case-sensitive.
    pub fn matches(&self, other: &EntityTag<'_>, cmp: Comparison) -> bool {
        let kinds_ok = match cmp {
            Comparison::Strong => !self.weak && !other.weak,
            Comparison::Weak => true,
        };
        kinds_ok && self.opaque == other.opaque
    }

    fn from_span(text: &'a str, span: TagSpan) -> Self {
        EntityTag {
            weak: span.weak,
            opaque: &text[span.opaque_start..span.opaque_end],
        }
    }
}

/// Where one entity-tag sits inside a header value.
struct TagSpan {
    weak: bool,
    opaque_start: usize,
    opaque_end: usize,
}

/// Evaluates an entity-tag list header (`*`, or a comma list of tags) against `current`.
///
/// Returns `None` when the value is not a valid list, so each caller can apply its own
/// rule (If-Match fails closed; If-None-Match is ignored). The whole value is validated
/// before a match is reported, so a good tag cannot smuggle trailing garbage through.
pub fn list_matches(value: &str, current: &EntityTag<'_>, cmp: Comparison) -> Option<bool> {
    let trimmed = trim_ows(value);
    if trimmed == "*" {
        return Some(true);
    }
    // The revalidation hot path: a client echoing exactly the strong tag it was given. That
    // text is one valid strong tag equal to `current`, so it matches under either rule.
    if !current.weak && trimmed == current.opaque {
        return Some(true);
    }
    let bytes = trimmed.as_bytes();
    let mut i = 0;
    let mut seen = 0usize;
    let mut matched = false;
    loop {
        // Empty list elements (`a, ,b`) are allowed by RFC 9110 §5.6.1.
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        if i == bytes.len() {
            break;
        }
        let (span, end) = parse_tag_at(bytes, i)?;
        let tag = EntityTag::from_span(trimmed, span);
        matched |= tag.matches(current, cmp);
        seen += 1;
        i = end;
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        if i < bytes.len() && bytes[i] != b',' {
            return None;
        }
    }
    (seen > 0).then_some(matched)
}

/// Parses an HTTP date in any of the three RFC 9110 formats; `None` if invalid.
pub fn parse_http_date(value: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(trim_ows(value)).ok()
}

/// Steps 1 and 2 of spec §4.5 for a representation that exists.
pub fn evaluate(c: &Conditionals<'_>, v: &Validators<'_>, now: SystemTime) -> Precondition {
    let current = current_tag(v);
    let lm = v.last_modified.map(unix_secs);

    if let Some(value) = c.if_match {
        // Fail closed: a condition we cannot read must never let the request through.
        let holds = current
            .and_then(|cur| list_matches(value, &cur, Comparison::Strong))
            .unwrap_or(false);
        if !holds {
            return Precondition::Failed;
        }
    } else if let (Some(value), Some(lm)) = (c.if_unmodified_since, lm)
        && let Some(date) = parse_http_date(value)
        && lm > unix_secs(date)
    {
        return Precondition::Failed;
    }

    // An unparseable If-None-Match is ignored, which makes If-Modified-Since eligible.
    let inm = match (c.if_none_match, current) {
        (Some(value), Some(cur)) => list_matches(value, &cur, Comparison::Weak),
        _ => None,
    };
    match inm {
        Some(true) => return Precondition::NotModified,
        Some(false) => return Precondition::Proceed,
        None => {}
    }
    // A date in the future cannot have come from us and proves nothing.
    if let (Some(value), Some(lm)) = (c.if_modified_since, lm)
        && let Some(date) = parse_http_date(value).map(unix_secs)
        && date <= unix_secs(now)
        && lm <= date
    {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// Step 4 of spec §4.5: whether a Range may be honoured under `If-Range`.
///
/// An absent header holds. A strong tag equal to the current ETag holds. A date holds
/// only if it equals Last-Modified and Last-Modified is at least one second before
/// `now` (a date is a weak validator until then). A weak tag, a different tag, an
/// invalid value, or a date with no Last-Modified never holds, so the full
/// representation is sent, which is always safe.
pub fn if_range_holds(if_range: Option<&str>, v: &Validators<'_>, now: SystemTime) -> bool {
    let Some(value) = if_range else {
        return true;
    };
    let value = trim_ows(value);
    // Spec §4.5: an unparseable If-Range is ignored, i.e. treated as absent.
    if value.starts_with('"') || value.starts_with("W/") {
        return match (EntityTag::parse(value), current_tag(v)) {
            (None, _) => true,
            (Some(tag), Some(cur)) => tag.matches(&cur, Comparison::Strong),
            (Some(_), None) => false,
        };
    }
    match (parse_http_date(value), v.last_modified) {
        (None, _) => true,
        (Some(date), Some(lm)) => {
            let lm = unix_secs(lm);
            lm == unix_secs(date) && lm <= unix_secs(now).saturating_sub(1)
        }
        (Some(_), None) => false,
    }
}

/// The representation's own tag. Callers pass only tags they produced (`"b3:<hex>"`,
/// strong, no inner quote), so the check is of the outer shape only and costs nothing
/// per request; anything else is `None`, which nothing can match.
fn current_tag<'a>(v: &Validators<'a>) -> Option<EntityTag<'a>> {
    let e = v.etag;
    (e.len() >= 2 && e.starts_with('"') && e.ends_with('"')).then_some(EntityTag {
        weak: false,
        opaque: e,
    })
}

/// Parses one entity-tag starting at `start`; returns its span and the index after it.
fn parse_tag_at(bytes: &[u8], start: usize) -> Option<(TagSpan, usize)> {
    let mut i = start;
    let weak = bytes[i..].starts_with(b"W/");
    if weak {
        i += 2;
    }
    if bytes.get(i) != Some(&b'"') {
        return None;
    }
    let opaque_start = i;
    // The closing quote, then one pass over what it encloses:
    // etagc = %x21 / %x23-7E / obs-text (the search already excluded %x22).
    let close = i + 1 + bytes.get(i + 1..)?.iter().position(|&b| b == b'"')?;
    if !bytes[i + 1..close].iter().all(|&b| b >= 0x21 && b != 0x7f) {
        return None;
    }
    let opaque_end = close + 1;
    Some((
        TagSpan {
            weak,
            opaque_start,
            opaque_end,
        },
        opaque_end,
    ))
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Whole seconds since the epoch, rounded down; works for times before 1970 too.
fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() > 0 {
                -(secs.saturating_add(1))
            } else {
                -secs
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const ETAG: &str = "\"b3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262\"";
    const ETAG_UPPER: &str =
        "\"b3:AF1349B9F5F9A1A6A0404DEA36DCC9499BCB25C9ADC112B7CC9A93CAE41F3262\"";
    const WEAK: &str = "W/\"b3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262\"";
    // Sun, 06 Nov 1994 08:49:37 GMT
    const LM_SECS: u64 = 784_111_777;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn lm() -> SystemTime {
        at(LM_SECS)
    }

    fn now() -> SystemTime {
        at(LM_SECS + 3600)
    }

    fn validators() -> Validators<'static> {
        Validators {
            etag: ETAG,
            last_modified: Some(lm()),
        }
    }

    fn date(t: SystemTime) -> String {
        httpdate::fmt_http_date(t)
    }

    fn eval(c: Conditionals<'_>) -> Precondition {
        evaluate(&c, &validators(), now())
    }

    #[test]
    fn no_conditionals_proceed() {
        assert_eq!(eval(Conditionals::default()), Precondition::Proceed);
    }

    #[test]
    fn if_none_match_exact_weak_listed_or_star_is_not_modified() {
        let listed = format!("\"other\", {ETAG}");
        let odd_list = format!(" , \"x,y\" ,, {WEAK} ,");
        for value in [ETAG, WEAK, listed.as_str(), odd_list.as_str(), "*", " * "] {
            let c = Conditionals {
                if_none_match: Some(value),
                ..Default::default()
            };
            assert_eq!(eval(c), Precondition::NotModified, "{value}");
        }
    }

    #[test]
    fn if_none_match_with_upper_case_hex_proceeds() {
        let c = Conditionals {
            if_none_match: Some(ETAG_UPPER),
            ..Default::default()
        };
        assert_eq!(eval(c), Precondition::Proceed);
    }

    #[test]
    fn if_match_needs_a_strong_match_or_star() {
        let cases = [
            (ETAG, Precondition::Proceed),
            ("*", Precondition::Proceed),
            (WEAK, Precondition::Failed),
            ("\"b3:nope\"", Precondition::Failed),
            (ETAG_UPPER, Precondition::Failed),
        ];
        for (value, want) in cases {
            let c = Conditionals {
                if_match: Some(value),
                ..Default::default()
            };
            assert_eq!(eval(c), want, "{value}");
        }
    }

    #[test]
    fn unparseable_if_match_fails_closed() {
        let trailing = format!("{ETAG} junk");
        for value in ["", "b3:abc", "\"open", "*, \"a\"", "W/", trailing.as_str()] {
            let c = Conditionals {
                if_match: Some(value),
                ..Default::default()
            };
            assert_eq!(eval(c), Precondition::Failed, "{value:?}");
        }
    }

    #[test]
    fn unparseable_if_none_match_is_ignored_and_lets_ims_decide() {
        let ims = date(lm());
        let c = Conditionals {
            if_none_match: Some("garbage"),
            ..Default::default()
        };
        assert_eq!(eval(c), Precondition::Proceed);
        let c = Conditionals {
            if_none_match: Some("garbage"),
            if_modified_since: Some(&ims),
            ..Default::default()
        };
        assert_eq!(eval(c), Precondition::NotModified);
    }

    #[test]
    fn failing_if_match_wins_over_matching_if_none_match() {
        let c = Conditionals {
            if_match: Some("\"b3:other\""),
            if_none_match: Some(ETAG),
            ..Default::default()
        };
        assert_eq!(eval(c), Precondition::Failed);
    }

    #[test]
    fn if_unmodified_since_older_than_last_modified_fails() {
        let older = date(at(LM_SECS - 1));
        let same = date(lm());
        let c = Conditionals {
            if_unmodified_since: Some(&older),
            ..Default::default()
        };
        assert_eq!(eval(c), Precondition::Failed);
        let c = Conditionals {
            if_unmodified_since: Some(&same),
            ..Default::default()
        };
        assert_eq!(eval(c), Precondition::Proceed);
    }

    #[test]
    fn if_unmodified_since_is_skipped_when_if_match_is_present_or_date_invalid() {
        let older = date(at(LM_SECS - 1));
        let c = Conditionals {
            if_match: Some(ETAG),
            if_unmodified_since: Some(&older),
            ..Default::default()
        };
        assert_eq!(eval(c), Precondition::Proceed);
        let c = Conditionals {
            if_unmodified_since: Some("yesterday"),
            ..Default::default()
        };
        assert_eq!(eval(c), Precondition::Proceed);
    }

    #[test]
    fn if_modified_since_at_or_after_last_modified_is_not_modified() {
        for secs in [LM_SECS, LM_SECS + 10] {
            let d = date(at(secs));
            let c = Conditionals {
                if_modified_since: Some(&d),
                ..Default::default()
            };
            assert_eq!(eval(c), Precondition::NotModified);
        }
        let before = date(at(LM_SECS - 1));
        let c = Conditionals {
            if_modified_since: Some(&before),
            ..Default::default()
        };
        assert_eq!(eval(c), Precondition::Proceed);
    }

    #[test]
    fn if_modified_since_is_ignored_next_to_a_non_matching_if_none_match() {
        let d = date(lm());
        let c = Conditionals {
            if_none_match: Some("\"b3:other\""),
            if_modified_since: Some(&d),
            ..Default::default()
        };
        assert_eq!(eval(c), Precondition::Proceed);
    }

    #[test]
    fn invalid_or_future_if_modified_since_is_ignored() {
        let future = date(now() + Duration::from_secs(60));
        for value in ["not a date", "2024-01-01", future.as_str()] {
            let c = Conditionals {
                if_modified_since: Some(value),
                ..Default::default()
            };
            assert_eq!(eval(c), Precondition::Proceed, "{value}");
        }
    }

    #[test]
    fn date_conditionals_need_a_last_modified() {
        let v = Validators {
            etag: ETAG,
            last_modified: None,
        };
        let d = date(lm());
        let old = date(at(1));
        let c = Conditionals {
            if_modified_since: Some(&d),
            if_unmodified_since: Some(&old),
            ..Default::default()
        };
        assert_eq!(evaluate(&c, &v, now()), Precondition::Proceed);
    }

    #[test]
    fn sub_second_last_modified_compares_in_whole_seconds() {
        let v = Validators {
            etag: ETAG,
            last_modified: Some(lm() + Duration::from_millis(700)),
        };
        let d = date(lm());
        let c = Conditionals {
            if_modified_since: Some(&d),
            if_unmodified_since: Some(&d),
            ..Default::default()
        };
        assert_eq!(evaluate(&c, &v, now()), Precondition::NotModified);
    }

    #[test]
    fn all_three_date_formats_parse() {
        let want = Some(lm());
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), want);
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), want);
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), want);
        assert_eq!(parse_http_date(" Sun, 06 Nov 1994 08:49:37 GMT\t"), want);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC"), None);
        assert_eq!(parse_http_date("Sun, 32 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date(""), None);
    }

    #[test]
    fn entity_tags_parse_strictly() {
        let t = EntityTag::parse(" W/\"a\" ").unwrap();
        assert!(t.is_weak());
        assert_eq!(t.opaque(), "\"a\"");
        assert_eq!(EntityTag::parse("\"\"").unwrap().opaque(), "\"\"");
        for bad in [
            "a", "\"a", "w/\"a\"", "\"a\"b", "\"a b\"", "\"a\"\"", "W/ \"a\"",
        ] {
            assert_eq!(EntityTag::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn tags_may_contain_commas_and_non_ascii_bytes() {
        let cur = EntityTag::parse("\"x,y\"").unwrap();
        assert_eq!(
            list_matches("\"a\", \"x,y\"", &cur, Comparison::Strong),
            Some(true)
        );
        let cur = EntityTag::parse("\"caf\u{e9}\"").unwrap();
        assert_eq!(
            list_matches("\"caf\u{e9}\"", &cur, Comparison::Strong),
            Some(true)
        );
    }

    #[test]
    fn strong_comparison_rejects_weak_on_either_side_but_weak_accepts_both() {
        let strong = EntityTag::parse("\"1\"").unwrap();
        let weak = EntityTag::parse("W/\"1\"").unwrap();
        assert!(strong.matches(&strong, Comparison::Strong));
        assert!(!strong.matches(&weak, Comparison::Strong));
        assert!(!weak.matches(&weak, Comparison::Strong));
        assert!(weak.matches(&strong, Comparison::Weak));
        assert!(weak.matches(&weak, Comparison::Weak));
        assert!(!strong.matches(&EntityTag::parse("\"2\"").unwrap(), Comparison::Weak));
    }

    #[test]
    fn lists_reject_missing_commas_stars_among_tags_and_emptiness() {
        let cur = EntityTag::parse("\"a\"").unwrap();
        for bad in ["\"a\" \"b\"", "\"a\",*", "*,*", "", " , ", "\"a\";"] {
            assert_eq!(list_matches(bad, &cur, Comparison::Weak), None, "{bad:?}");
        }
        assert_eq!(
            list_matches("\"b\",\"c\"", &cur, Comparison::Weak),
            Some(false)
        );
    }

    #[test]
    fn absent_if_range_holds() {
        assert!(if_range_holds(None, &validators(), now()));
    }

    #[test]
    fn if_range_holds_for_the_strong_etag_only() {
        assert!(if_range_holds(Some(ETAG), &validators(), now()));
        assert!(!if_range_holds(Some(WEAK), &validators(), now()));
        assert!(!if_range_holds(Some("\"b3:other\""), &validators(), now()));
        assert!(!if_range_holds(Some(ETAG_UPPER), &validators(), now()));
    }

    #[test]
    fn unparseable_if_range_is_ignored_as_if_absent() {
        // Spec §4.5: "an unparseable If-None-Match or If-Range is ignored".
        let list = format!("{ETAG}, {ETAG}");
        assert!(if_range_holds(Some(&list), &validators(), now()));
        assert!(if_range_holds(Some("garbage"), &validators(), now()));
    }

    #[test]
    fn if_range_date_must_equal_a_last_modified_at_least_a_second_old() {
        let d = date(lm());
        assert!(if_range_holds(Some(&d), &validators(), now()));
        let later = date(at(LM_SECS + 1));
        assert!(!if_range_holds(Some(&later), &validators(), now()));
        // Last-Modified in the same second as now is only a weak validator.
        assert!(!if_range_holds(Some(&d), &validators(), lm()));
        assert!(if_range_holds(
            Some(&d),
            &validators(),
            lm() + Duration::from_secs(1)
        ));
        let no_lm = Validators {
            etag: ETAG,
            last_modified: None,
        };
        assert!(!if_range_holds(Some(&d), &no_lm, now()));
    }

    #[test]
    fn whole_second_rounding_goes_down_even_before_the_epoch() {
        assert_eq!(unix_secs(at(5) + Duration::from_millis(999)), 5);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_millis(1)), -1);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(2)), -2);
    }
}
