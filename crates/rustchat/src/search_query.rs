//! Search query parsing and its two backend renderings (spec §4.6 CHAT-R17, §7).
//!
//! [`parse`] turns what a user typed into a [`SearchQuery`]: text terms (words,
//! `"phrases"`, `prefix*`, `-exclusions`) plus filters (`from:`, `in:`, `before:`,
//! `after:`, `on:`). [`SearchQuery::fts5_match`] and [`SearchQuery::pg_tsquery`] render
//! the text terms for SQLite FTS5 `MATCH` and PostgreSQL `to_tsquery(lang, $1)`; both are
//! bound as parameters, never spliced into SQL.
//!
//! Safety comes from the parser, not from escaping: a term keeps only Unicode letters and
//! digits, so no quote, operator, colon, parenthesis, `*`, NUL or keyword syntax from the
//! user can reach either query language. FTS5 output quotes every term (so `AND`, `OR`,
//! `NOT`, `NEAR` typed by a user are plain words); PostgreSQL output uses only
//! `[[:alnum:]]+` lexemes joined by `&`, `<->`, `!` and `:*` that this module writes.
//!
//! Stemming (`deploy` finding "deployments") is the backends' job (FTS5 tokenizer
//! `porter unicode61 remove_diacritics 2`, PostgreSQL's language config); plain words
//! are therefore never turned into prefix queries here. One gap needs help: SQLite's
//! porter is the original 1980 algorithm, whose step 1c turns a final `y` into `i`
//! before suffixes are removed, so `deploy` is indexed as `deploi` but `deployments`,
//! `employer`, `enjoyable` keep the `y` (`deploy`, `employ`, `enjoy`). FTS5 stems query
//! strings too, so the literal stem cannot be asked for directly; instead a word ending
//! in vowel + `y` also searches `<word>ful`, which porter's step 3 strips back to
//! exactly `<word>` (see [`SearchQuery::fts5_match`]). PostgreSQL's Snowball English
//! stemmer keeps such a `y` and needs nothing.
//!
//! Not handled here: resolving `from:`/`in:` names, channel membership, deleted posts and
//! ordering; the caller binds the filter values as parameters.

use thiserror::Error;
use time::Date;
use time::macros::format_description;

/// Longest accepted query, in bytes.
pub const MAX_QUERY_BYTES: usize = 512;

/// Most terms a query may have. Every word, phrase and filter counts once, so
/// `deploy-2024` is two terms.
pub const MAX_TERMS: usize = 16;

/// Shortest prefix, in characters, for `prefix*`; a shorter one is searched as a word.
pub const MIN_PREFIX_CHARS: usize = 2;

/// One UTC day in milliseconds (Unix time has no leap seconds).
const DAY_MS: i64 = 86_400_000;

/// A parsed search query. All present conditions are combined with AND.
///
/// Dates are UTC days and bounds are epoch milliseconds compared with `created_at`:
/// - `before:D` → `created_at < start(D)` (strictly before that day),
/// - `after:D` → `created_at >= start(D + 1 day)` (strictly after that day),
/// - `on:D` → `start(D) <= created_at < start(D + 1 day)`.
///
/// Repeating a date filter narrows it (earliest `before`, latest `after`, intersection of
/// `on` days), so two different `on:` days match nothing. [`SearchQuery::created_range`]
/// folds all three into one half-open range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Text terms in query order. Either empty (a filters-only query) or holding at
    /// least one positive term: exclusions never stand alone.
    pub terms: Vec<Term>,
    /// `from:` usernames, lower-case, a leading `@` removed; a post matches any of them.
    /// Bind as parameters: a value may hold any character except NUL.
    pub from: Vec<String>,
    /// `in:` channel names, lower-case, a leading `~` removed; a post matches any of them.
    pub in_channels: Vec<String>,
    /// `before:` → `created_at < before_ms`.
    pub before_ms: Option<i64>,
    /// `after:` → `created_at >= after_ms` (the start of the day after the given day).
    pub after_ms: Option<i64>,
    /// `on:` → `on.0 <= created_at < on.1`; empty when `on.0 >= on.1`.
    pub on: Option<(i64, i64)>,
}

/// One text term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Lower-case words made only of Unicode letters and digits; more than one is a
    /// phrase (the words adjacent, in order).
    pub words: Vec<String>,
    /// Prefix match on the single word (`deplo*`). Only ever set on one-word terms.
    pub prefix: bool,
    /// The term must not occur (`-word`, `-"a phrase"`).
    pub excluded: bool,
}

/// Why a query was refused. Every variant is a client error (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SearchQueryError {
    /// The query is over [`MAX_QUERY_BYTES`].
    #[error("search query too long: at most 512 bytes are allowed; shorten it")]
    TooLong,
    /// The query has more than [`MAX_TERMS`] words, phrases and filters.
    #[error(
        "search query has too many terms: at most 16 words, phrases and filters are \
         allowed; remove some"
    )]
    TooManyTerms,
    /// A `before:`, `after:` or `on:` value is not a real `YYYY-MM-DD` date.
    #[error("search date {0:?} is not a valid YYYY-MM-DD date (UTC), e.g. 2024-05-31")]
    BadDate(String),
    /// Nothing to search for, or only exclusions, which need a term to exclude from.
    #[error(
        "search query has nothing to search for: give a word, a \"phrase\" or a \
         from:/in:/before:/after:/on: filter (-exclusions need at least one word to \
         exclude from)"
    )]
    Empty,
}

/// The filter keys.
#[derive(Debug, Clone, Copy)]
enum FilterKey {
    From,
    In,
    Before,
    After,
    On,
}

/// A parsed filter; dates are the epoch milliseconds of the day's start.
enum Filter {
    From(String),
    In(String),
    Before(i64),
    After(i64),
    On(i64),
}

/// Parses a user's search query.
///
/// Syntax, split on whitespace:
/// - `word` — anything but letters and digits separates, so `deploy-2024` is two words;
/// - `"a phrase"` — its words adjacent and in order; an unclosed quote runs to the end;
/// - `prefix*` — prefix match when the last word has at least [`MIN_PREFIX_CHARS`]
///   characters, else a plain word; a lone `*` is nothing;
/// - `-word`, `-"a phrase"` — exclusion; `-a-b` excludes the phrase `a b` (what the
///   tokenizer indexed for that text), and `-from:x` is excluded text, not a filter;
/// - `from:`, `in:`, `before:`, `after:`, `on:` (key in any case) — filters, see
///   [`SearchQuery`]; an empty value is ignored.
///
/// A query with filters but no text is valid (answered by the filters alone);
/// one with exclusions but no positive term, or with nothing at all, is
/// [`SearchQueryError::Empty`].
pub fn parse(q: &str) -> Result<SearchQuery, SearchQueryError> {
    if q.len() > MAX_QUERY_BYTES {
        return Err(SearchQueryError::TooLong);
    }
    let mut query = SearchQuery::default();
    let mut count = 0;
    let mut rest = q.trim_start();
    while !rest.is_empty() {
        let (excluded, body) = match rest.strip_prefix('-') {
            Some(body) => (true, body),
            None => (false, rest),
        };
        let mut new_terms = Vec::new();
        if let Some(inner) = body.strip_prefix('"') {
            let (phrase, after) = match inner.find('"') {
                Some(end) => (&inner[..end], &inner[end + 1..]),
                None => (inner, ""),
            };
            rest = after;
            let words = words_of(phrase);
            if !words.is_empty() {
                new_terms.push(Term {
                    words,
                    prefix: false,
                    excluded,
                });
            }
        } else {
            let end = body.find(char::is_whitespace).unwrap_or(body.len());
            let token = &body[..end];
            rest = &body[end..];
            match filter_parts(token).filter(|_| !excluded) {
                Some((key, value)) => {
                    if let Some(filter) = parse_filter(key, value)? {
                        count += 1;
                        query.apply(filter);
                    }
                }
                None => new_terms = text_terms(token, excluded),
            }
        }
        count += new_terms.len();
        if count > MAX_TERMS {
            return Err(SearchQueryError::TooManyTerms);
        }
        query.terms.extend(new_terms);
        rest = rest.trim_start();
    }
    let has_positive = query.terms.iter().any(|t| !t.excluded);
    let has_filter = !query.from.is_empty()
        || !query.in_channels.is_empty()
        || query.before_ms.is_some()
        || query.after_ms.is_some()
        || query.on.is_some();
    if !has_positive && (!query.terms.is_empty() || !has_filter) {
        return Err(SearchQueryError::Empty);
    }
    Ok(query)
}

impl SearchQuery {
    /// The FTS5 `MATCH` expression, or `None` when there is no text term (the caller then
    /// searches by filters alone).
    ///
    /// Each term is a double-quoted string (`"word"`, `"w1 w2"`, `"pre"*`); a one-word
    /// term ending in vowel + `y` is the group `("deploy" OR "deployful")` (see the
    /// module docs). Positive terms come first joined by ` AND `, then ` NOT t` per
    /// exclusion: FTS5's `NOT` is binary and binds tighter than `AND`, so
    /// `a AND b NOT x NOT y` means a ∧ b ∧ ¬x ∧ ¬y. The `AND` is explicit because FTS5
    /// refuses implicit AND next to a parenthesised group.
    pub fn fts5_match(&self) -> Option<String> {
        let mut out = String::new();
        for term in self.terms.iter().filter(|t| !t.excluded) {
            if !out.is_empty() {
                out.push_str(" AND ");
            }
            push_fts5_term(&mut out, term);
        }
        if out.is_empty() {
            return None;
        }
        for term in self.terms.iter().filter(|t| t.excluded) {
            out.push_str(" NOT ");
            push_fts5_term(&mut out, term);
        }
        Some(out)
    }

    /// The text for PostgreSQL `to_tsquery(lang, $1)`, or `None` when there is no text
    /// term.
    ///
    /// `word`, `pre:*`, `(w1 <-> w2)`, with `!` in front of exclusions, all joined by
    /// ` & `, positive terms first.
    pub fn pg_tsquery(&self) -> Option<String> {
        if self.terms.iter().all(|t| t.excluded) {
            return None;
        }
        let positives = self.terms.iter().filter(|t| !t.excluded);
        let exclusions = self.terms.iter().filter(|t| t.excluded);
        let mut out = String::new();
        for term in positives.chain(exclusions) {
            if !out.is_empty() {
                out.push_str(" & ");
            }
            if term.excluded {
                out.push('!');
            }
            match term.words.as_slice() {
                [word] => {
                    out.push_str(word);
                    if term.prefix {
                        out.push_str(":*");
                    }
                }
                words => {
                    out.push('(');
                    out.push_str(&words.join(" <-> "));
                    out.push(')');
                }
            }
        }
        Some(out)
    }

    /// All date filters folded into one half-open range `lo <= created_at < hi`, or
    /// `None` when there is no date filter. `lo >= hi` means nothing can match.
    pub fn created_range(&self) -> Option<(i64, i64)> {
        let mut lo = self.after_ms;
        let mut hi = self.before_ms;
        if let Some((start, end)) = self.on {
            lo = Some(lo.map_or(start, |l| l.max(start)));
            hi = Some(hi.map_or(end, |h| h.min(end)));
        }
        (lo.is_some() || hi.is_some()).then(|| (lo.unwrap_or(i64::MIN), hi.unwrap_or(i64::MAX)))
    }

    /// Adds one filter, narrowing any earlier one of the same kind.
    fn apply(&mut self, filter: Filter) {
        match filter {
            Filter::From(name) => push_unique(&mut self.from, name),
            Filter::In(name) => push_unique(&mut self.in_channels, name),
            Filter::Before(start) => {
                self.before_ms = Some(self.before_ms.map_or(start, |b| b.min(start)));
            }
            Filter::After(start) => {
                let next_day = start + DAY_MS;
                self.after_ms = Some(self.after_ms.map_or(next_day, |a| a.max(next_day)));
            }
            Filter::On(start) => {
                let (lo, hi) = (start, start + DAY_MS);
                self.on = Some(self.on.map_or((lo, hi), |(a, b)| (a.max(lo), b.min(hi))));
            }
        }
    }
}

/// Splits a `key:value` token whose key (any case) names a filter; `None` means text.
fn filter_parts(token: &str) -> Option<(FilterKey, &str)> {
    let (key, value) = token.split_once(':')?;
    let key = match key.to_ascii_lowercase().as_str() {
        "from" => FilterKey::From,
        "in" => FilterKey::In,
        "before" => FilterKey::Before,
        "after" => FilterKey::After,
        "on" => FilterKey::On,
        _ => return None,
    };
    Some((key, value))
}

/// Parses a filter's value; `Ok(None)` for an empty value, which is ignored.
fn parse_filter(key: FilterKey, value: &str) -> Result<Option<Filter>, SearchQueryError> {
    let name = |sigil: char| {
        let name = value.strip_prefix(sigil).unwrap_or(value);
        (!name.is_empty()).then(|| filter_name(name))
    };
    Ok(match key {
        FilterKey::From => name('@').map(Filter::From),
        FilterKey::In => name('~').map(Filter::In),
        _ if value.is_empty() => None,
        FilterKey::Before => Some(Filter::Before(day_start_ms(value)?)),
        FilterKey::After => Some(Filter::After(day_start_ms(value)?)),
        FilterKey::On => Some(Filter::On(day_start_ms(value)?)),
    })
}

/// Lower-cases a `from:`/`in:` name. NUL becomes U+FFFD: PostgreSQL refuses NUL in text
/// parameters, and the replacement still matches no user or channel, as the original
/// would not have.
fn filter_name(name: &str) -> String {
    name.to_lowercase().replace('\0', "\u{FFFD}")
}

/// Epoch milliseconds of 00:00 UTC on `YYYY-MM-DD`.
fn day_start_ms(value: &str) -> Result<i64, SearchQueryError> {
    let bad = || SearchQueryError::BadDate(value.to_owned());
    let shape_ok = value.len() == 10
        && value.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(bad());
    }
    let date =
        Date::parse(value, format_description!("[year]-[month]-[day]")).map_err(|_| bad())?;
    Ok(date.midnight().assume_utc().unix_timestamp() * 1000)
}

/// Text terms from one unquoted token: one term per word (the last one a prefix when the
/// token ends in `*`), or, for an exclusion, one phrase so `-a-b` excludes "a b" only.
fn text_terms(token: &str, excluded: bool) -> Vec<Term> {
    let mut words = words_of(token);
    let wants_prefix = token.ends_with('*');
    let prefix_ok = |words: &[String]| {
        wants_prefix
            && words
                .last()
                .is_some_and(|w| w.chars().count() >= MIN_PREFIX_CHARS)
    };
    if excluded {
        if words.is_empty() {
            return Vec::new();
        }
        let prefix = words.len() == 1 && prefix_ok(&words);
        return vec![Term {
            words,
            prefix,
            excluded,
        }];
    }
    let last_prefix = prefix_ok(&words);
    let last = words.pop();
    let mut terms: Vec<Term> = words
        .into_iter()
        .map(|w| Term {
            words: vec![w],
            prefix: false,
            excluded,
        })
        .collect();
    terms.extend(last.map(|w| Term {
        words: vec![w],
        prefix: last_prefix,
        excluded,
    }));
    terms
}

/// Splits on everything but Unicode letters and digits and lower-cases each word.
/// Lower-casing can add combining marks (`İ` → `i̇`); those are dropped so a word stays
/// purely alphanumeric.
fn words_of(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .map(|w| {
            w.chars()
                .flat_map(char::to_lowercase)
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Appends one term in FTS5 syntax, with the porter `y` workaround for single words.
fn push_fts5_term(out: &mut String, term: &Term) {
    match term.words.as_slice() {
        [word] if ends_in_vowel_y(word) => {
            out.push('(');
            push_fts5_string(out, word, "", term.prefix);
            out.push_str(" OR ");
            push_fts5_string(out, word, "ful", term.prefix);
            out.push(')');
        }
        words => push_fts5_string(out, &words.join(" "), "", term.prefix),
    }
}

/// Appends `"<text><suffix>"`, then `*` for a prefix. Words never contain `"`, so no
/// escaping is needed.
fn push_fts5_string(out: &mut String, text: &str, suffix: &str, prefix: bool) {
    out.push('"');
    out.push_str(text);
    out.push_str(suffix);
    out.push('"');
    if prefix {
        out.push('*');
    }
}

/// True for words like `deploy`, `employ`, `survey`, whose derived forms the original
/// porter stemmer indexes under a different stem than the word itself.
fn ends_in_vowel_y(word: &str) -> bool {
    let b = word.as_bytes();
    b.len() >= 2
        && b[b.len() - 1] == b'y'
        && matches!(b[b.len() - 2], b'a' | b'e' | b'i' | b'o' | b'u')
}

/// Pushes `value` unless it is already present (filters are few; a scan is enough).
fn push_unique(values: &mut Vec<String>, value: String) {
    if !values.contains(&value) {
        values.push(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Start of 2024-01-02 UTC in epoch milliseconds.
    const JAN_2_2024: i64 = 1_704_153_600_000;

    /// The spec test 36 corpus plus other hostile inputs.
    const HOSTILE: [&str; 22] = [
        "' OR 1=1 --",
        "\"; DROP TABLE posts; --",
        "%_\\",
        "NEAR(",
        "\"",
        "*",
        "-",
        "AND OR NOT",
        "\0",
        "a\0b",
        "\"unbalanced",
        "un\"balanced \"x",
        "\"\"\"",
        "NEAR(a b, 2)",
        "a:b col:x ^start",
        "{a b}: c",
        "a -- b",
        "x* -y* \"p q\"* -\"r s\"",
        "deploy AND -NOT \"OR\"",
        "foo & bar | !baz <-> (qux):* 'quoted'",
        "ﬁ İstanbul Straße ½ ²",
        "from:\0 in:~\0 x",
    ];

    fn word(w: &str) -> Term {
        Term {
            words: vec![w.to_owned()],
            prefix: false,
            excluded: false,
        }
    }

    fn terms(q: &str) -> Vec<Term> {
        parse(q).unwrap().terms
    }

    /// True when `s` is built only from the FTS5 grammar this module writes:
    /// `operand (" AND " operand)* (" NOT " operand)*`, where an operand is a quoted
    /// string of lexemes with an optional `*`, or `(string OR string)`.
    fn is_safe_fts5(s: &str) -> bool {
        let mut rest = s;
        let mut seen_not = false;
        let mut first = true;
        loop {
            if !first {
                if let Some(r) = rest.strip_prefix(" NOT ") {
                    seen_not = true;
                    rest = r;
                } else if let Some(r) = rest.strip_prefix(" AND ").filter(|_| !seen_not) {
                    rest = r;
                } else {
                    return false;
                }
            }
            first = false;
            rest = if let Some(group) = rest.strip_prefix('(') {
                let Some(r) = fts5_string(group).and_then(|r| r.strip_prefix(" OR ")) else {
                    return false;
                };
                match fts5_string(r).and_then(|r| r.strip_prefix(')')) {
                    Some(r) => r,
                    None => return false,
                }
            } else {
                match fts5_string(rest) {
                    Some(r) => r,
                    None => return false,
                }
            };
            if rest.is_empty() {
                return true;
            }
        }
    }

    /// Consumes `"lexeme lexeme"` with an optional `*` from the front of `s`.
    fn fts5_string(s: &str) -> Option<&str> {
        let inner = s.strip_prefix('"')?;
        let end = inner.find('"')?;
        let body = &inner[..end];
        if body.is_empty() || !body.split(' ').all(is_lexeme) {
            return None;
        }
        let rest = &inner[end + 1..];
        Some(rest.strip_prefix('*').unwrap_or(rest))
    }

    /// True when `s` is built only from the tsquery grammar this module writes.
    fn is_safe_tsquery(s: &str) -> bool {
        s.split(" & ").all(|operand| {
            let operand = operand.strip_prefix('!').unwrap_or(operand);
            if let Some(phrase) = operand.strip_prefix('(').and_then(|o| o.strip_suffix(')')) {
                let words: Vec<&str> = phrase.split(" <-> ").collect();
                words.len() > 1 && words.iter().all(|w| is_lexeme(w))
            } else {
                is_lexeme(operand.strip_suffix(":*").unwrap_or(operand))
            }
        })
    }

    fn is_lexeme(w: &str) -> bool {
        !w.is_empty()
            && w.chars().all(char::is_alphanumeric)
            && w.chars().all(|c| !c.is_uppercase())
    }

    #[test]
    fn plain_words_are_lower_cased_terms() {
        assert_eq!(terms("Deploy  FAILED"), [word("deploy"), word("failed")]);
    }

    #[test]
    fn plain_words_are_not_turned_into_prefix_queries() {
        let q = parse("release").unwrap();
        assert_eq!(q.fts5_match().unwrap(), "\"release\"");
        assert_eq!(q.pg_tsquery().unwrap(), "release");
        let q = parse("deploy").unwrap();
        assert_eq!(q.fts5_match().unwrap(), "(\"deploy\" OR \"deployful\")");
        assert_eq!(q.pg_tsquery().unwrap(), "deploy");
    }

    #[test]
    fn fts5_words_ending_in_vowel_y_also_search_the_porter_workaround_form() {
        let q = parse("employ -survey enjoy* happy y").unwrap();
        assert_eq!(
            q.fts5_match().unwrap(),
            "(\"employ\" OR \"employful\") AND (\"enjoy\"* OR \"enjoyful\"*) \
             AND \"happy\" AND \"y\" NOT (\"survey\" OR \"surveyful\")"
        );
        // Phrases are left alone.
        assert_eq!(
            parse("\"deploy now\"").unwrap().fts5_match().unwrap(),
            "\"deploy now\""
        );
    }

    #[test]
    fn non_alphanumerics_inside_a_word_separate_it() {
        assert_eq!(terms("deploy-2024"), [word("deploy"), word("2024")]);
        assert_eq!(
            terms("a_b.c/d"),
            [word("a"), word("b"), word("c"), word("d")]
        );
    }

    #[test]
    fn unicode_letters_and_digits_stay_in_words() {
        assert_eq!(
            terms("Café ДЕПЛОЙ 東京 ٣"),
            [word("café"), word("деплой"), word("東京"), word("٣")]
        );
    }

    #[test]
    fn lower_casing_drops_combining_marks_it_introduces() {
        assert_eq!(terms("İstanbul"), [word("istanbul")]);
    }

    #[test]
    fn quoted_text_is_one_phrase_term() {
        let t = terms("\"Deploy-2024 now\"");
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].words, ["deploy", "2024", "now"]);
        assert!(!t[0].prefix && !t[0].excluded);
    }

    #[test]
    fn a_one_word_phrase_is_a_word() {
        assert_eq!(terms("\"deploy\""), [word("deploy")]);
    }

    #[test]
    fn an_unclosed_quote_runs_to_the_end() {
        let t = terms("x \"a b");
        assert_eq!(t[1].words, ["a", "b"]);
    }

    #[test]
    fn a_quote_closes_mid_token_and_parsing_continues() {
        let t = terms("\"a b\"c d");
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].words, ["a", "b"]);
        assert_eq!(t[1..], [word("c"), word("d")]);
    }

    #[test]
    fn a_trailing_star_makes_a_prefix_of_two_or_more_chars() {
        let t = terms("dep*");
        assert_eq!(t.len(), 1);
        assert!(t[0].prefix);
        assert_eq!(t[0].words, ["dep"]);
        assert_eq!(terms("é*")[0], word("é"));
        assert!(terms("ép*")[0].prefix);
    }

    #[test]
    fn a_star_applies_to_the_last_word_of_a_split_token() {
        let t = terms("foo-bar*");
        assert_eq!(t[0], word("foo"));
        assert!(t[1].prefix && t[1].words == ["bar"]);
        // A star inside a token separates.
        assert_eq!(terms("de*ploy"), [word("de"), word("ploy")]);
    }

    #[test]
    fn a_star_after_a_phrase_is_ignored() {
        assert!(!terms("\"a b\"*")[0].prefix);
    }

    #[test]
    fn a_dash_excludes_a_word_or_phrase() {
        let t = terms("deploy -staging -\"dry run\"");
        assert!(!t[0].excluded);
        assert!(t[1].excluded && t[1].words == ["staging"]);
        assert!(t[2].excluded && t[2].words == ["dry", "run"]);
    }

    #[test]
    fn an_excluded_split_token_is_one_phrase() {
        let t = terms("x -deploy-2024");
        assert_eq!(t.len(), 2);
        assert!(t[1].excluded && t[1].words == ["deploy", "2024"] && !t[1].prefix);
    }

    #[test]
    fn an_excluded_prefix_is_kept() {
        let t = terms("x -dep*");
        assert!(t[1].excluded && t[1].prefix);
    }

    #[test]
    fn a_dash_inside_a_word_is_not_an_exclusion() {
        assert_eq!(terms("a-b"), [word("a"), word("b")]);
    }

    #[test]
    fn exclusions_alone_are_empty() {
        assert_eq!(parse("-foo"), Err(SearchQueryError::Empty));
        assert_eq!(parse("-foo -\"a b\""), Err(SearchQueryError::Empty));
        assert_eq!(parse("from:alice -foo"), Err(SearchQueryError::Empty));
    }

    #[test]
    fn queries_without_terms_or_filters_are_empty() {
        for q in [
            "", "   ", "*", "-", "\"", "\"\"", "--", "!!! ???", "\0", "from:", "on:",
        ] {
            assert_eq!(parse(q), Err(SearchQueryError::Empty), "{q:?}");
        }
    }

    #[test]
    fn from_and_in_filters_collect_lower_case_names() {
        let q = parse("from:@Alice from:bob FROM:alice in:~Town-Square in:dev").unwrap();
        assert_eq!(q.from, ["alice", "bob"]);
        assert_eq!(q.in_channels, ["town-square", "dev"]);
        assert!(q.terms.is_empty());
        assert_eq!(q.fts5_match(), None);
        assert_eq!(q.pg_tsquery(), None);
    }

    #[test]
    fn filter_values_never_hold_nul() {
        let q = parse("from:a\0b in:\0").unwrap();
        assert_eq!(q.from, ["a\u{FFFD}b"]);
        assert_eq!(q.in_channels, ["\u{FFFD}"]);
    }

    #[test]
    fn an_excluded_filter_is_excluded_text() {
        let t = terms("x -from:alice");
        assert!(t[1].excluded && t[1].words == ["from", "alice"]);
    }

    #[test]
    fn unknown_keys_are_text() {
        assert_eq!(terms("foo:bar"), [word("foo"), word("bar")]);
    }

    #[test]
    fn before_is_strictly_before_the_day() {
        let q = parse("before:2024-01-02").unwrap();
        assert_eq!(q.before_ms, Some(JAN_2_2024));
        assert_eq!(q.created_range(), Some((i64::MIN, JAN_2_2024)));
    }

    #[test]
    fn after_is_from_the_start_of_the_next_day() {
        let q = parse("after:2024-01-01").unwrap();
        assert_eq!(q.after_ms, Some(JAN_2_2024));
        assert_eq!(q.created_range(), Some((JAN_2_2024, i64::MAX)));
    }

    #[test]
    fn on_is_the_whole_utc_day() {
        let q = parse("on:2024-01-02").unwrap();
        assert_eq!(q.on, Some((JAN_2_2024, JAN_2_2024 + DAY_MS)));
    }

    #[test]
    fn repeated_date_filters_narrow() {
        let q =
            parse("before:2024-03-01 before:2024-01-02 after:2023-01-01 after:2023-12-31").unwrap();
        assert_eq!(q.before_ms, Some(JAN_2_2024));
        assert_eq!(q.after_ms, Some(JAN_2_2024 - DAY_MS));
        let q = parse("on:2024-01-02 on:2024-01-03").unwrap();
        let (lo, hi) = q.on.unwrap();
        assert!(lo >= hi, "two different days match nothing");
    }

    #[test]
    fn created_range_combines_all_date_filters() {
        let q = parse("after:2023-12-31 on:2024-01-02 before:2024-01-05").unwrap();
        assert_eq!(q.created_range(), Some((JAN_2_2024, JAN_2_2024 + DAY_MS)));
        assert_eq!(parse("x").unwrap().created_range(), None);
    }

    #[test]
    fn leap_days_are_dates_only_in_leap_years() {
        assert!(parse("on:2024-02-29").is_ok());
        assert_eq!(
            parse("on:2023-02-29"),
            Err(SearchQueryError::BadDate("2023-02-29".into()))
        );
    }

    #[test]
    fn malformed_dates_are_errors_naming_the_value() {
        for value in [
            "2024-13-01",
            "2024-00-10",
            "2024-01-32",
            "2024-1-1",
            "24-01-01",
            "+2024-01-01",
            "yesterday",
            "2024-01-01T00",
            "２０２４-01-01",
        ] {
            for key in ["before", "after", "on", "ON"] {
                let q = format!("x {key}:{value}");
                assert_eq!(
                    parse(&q),
                    Err(SearchQueryError::BadDate(value.into())),
                    "{q}"
                );
            }
        }
    }

    #[test]
    fn dates_far_from_now_do_not_overflow() {
        assert!(parse("on:0000-01-01 after:9999-12-31").is_ok());
    }

    #[test]
    fn queries_over_512_bytes_are_too_long() {
        assert!(parse(&"a".repeat(512)).is_ok());
        assert_eq!(parse(&"a".repeat(513)), Err(SearchQueryError::TooLong));
        // Bytes, not characters.
        assert_eq!(parse(&"é".repeat(257)), Err(SearchQueryError::TooLong));
        assert!(SearchQueryError::TooLong.to_string().contains("too long"));
    }

    #[test]
    fn more_than_16_terms_is_an_error() {
        let sixteen = vec!["w"; 16].join(" ");
        assert_eq!(parse(&sixteen).unwrap().terms.len(), 16);
        assert_eq!(
            parse(&format!("{sixteen} w")),
            Err(SearchQueryError::TooManyTerms)
        );
        // Split words and filters count too.
        assert_eq!(parse(&"a-".repeat(17)), Err(SearchQueryError::TooManyTerms));
        assert_eq!(
            parse(&format!("{sixteen} from:x")),
            Err(SearchQueryError::TooManyTerms)
        );
    }

    #[test]
    fn fts5_match_quotes_every_term_and_appends_exclusions() {
        let q = parse("-old release \"dry run\" dep* -\"a b\" -x*").unwrap();
        assert_eq!(
            q.fts5_match().unwrap(),
            "\"release\" AND \"dry run\" AND \"dep\"* NOT \"old\" NOT \"a b\" NOT \"x\""
        );
    }

    #[test]
    fn fts5_match_keeps_operator_words_as_quoted_words() {
        let q = parse("AND OR NOT NEAR").unwrap();
        assert_eq!(
            q.fts5_match().unwrap(),
            "\"and\" AND \"or\" AND \"not\" AND \"near\""
        );
    }

    #[test]
    fn pg_tsquery_renders_words_prefixes_phrases_and_exclusions() {
        let q = parse("-old deploy \"dry run\" dep* -\"a b\" -xy*").unwrap();
        assert_eq!(
            q.pg_tsquery().unwrap(),
            "deploy & (dry <-> run) & dep:* & !old & !(a <-> b) & !xy:*"
        );
    }

    #[test]
    fn hostile_inputs_parse_to_errors_or_safe_strings() {
        for q in HOSTILE {
            match parse(q) {
                Err(e) => assert!(!e.to_string().is_empty()),
                Ok(query) => {
                    if let Some(m) = query.fts5_match() {
                        assert!(is_safe_fts5(&m), "{q:?} -> {m:?}");
                    }
                    if let Some(t) = query.pg_tsquery() {
                        assert!(is_safe_tsquery(&t), "{q:?} -> {t:?}");
                    }
                    assert_eq!(query.fts5_match().is_some(), query.pg_tsquery().is_some());
                }
            }
        }
    }

    #[test]
    fn the_injection_corpus_keeps_only_words() {
        let q = parse("' OR 1=1 --").unwrap();
        assert_eq!(q.fts5_match().unwrap(), "\"or\" AND \"1\" AND \"1\"");
        let q = parse("\"; DROP TABLE posts; --").unwrap();
        assert_eq!(q.pg_tsquery().unwrap(), "(drop <-> table <-> posts)");
        let q = parse("NEAR(").unwrap();
        assert_eq!(q.fts5_match().unwrap(), "\"near\"");
        assert_eq!(parse("%_\\"), Err(SearchQueryError::Empty));
    }

    #[test]
    fn random_queries_never_panic_and_render_safely() {
        const PIECES: [&str; 24] = [
            "a",
            "Bc",
            "-",
            "\"",
            "*",
            ":",
            "from:",
            "on:",
            "2024-01-01",
            " ",
            "\t",
            "(",
            ")",
            "'",
            "\0",
            "é",
            "İ",
            "東",
            "&",
            "|",
            "!",
            "<->",
            "NOT",
            "\u{301}",
        ];
        for _ in 0..5_000 {
            let len = rand::random_range(0..30);
            let q: String = (0..len)
                .map(|_| PIECES[rand::random_range(0..PIECES.len())])
                .collect();
            if let Ok(query) = parse(&q) {
                assert!(
                    query
                        .terms
                        .iter()
                        .all(|t| !t.words.is_empty() && (!t.prefix || t.words.len() == 1))
                );
                if let Some(m) = query.fts5_match() {
                    assert!(is_safe_fts5(&m), "{q:?} -> {m:?}");
                }
                if let Some(t) = query.pg_tsquery() {
                    assert!(is_safe_tsquery(&t), "{q:?} -> {t:?}");
                }
            }
        }
    }

    #[test]
    fn errors_say_what_to_do() {
        assert!(SearchQueryError::TooManyTerms.to_string().contains("16"));
        assert!(
            SearchQueryError::BadDate("2024-02-30".into())
                .to_string()
                .contains("2024-02-30")
        );
        assert!(SearchQueryError::Empty.to_string().contains("word"));
    }
}
