//! Mention extraction from a post's message (spec §4.4, CHAT-R15).
//!
//! The message is tokenised, never substring-matched: code (fenced blocks and inline
//! spans) and URL tokens are dropped first, then an `@` opens a candidate only at a word
//! boundary, and the candidate is resolved against the channel's members by the caller's
//! predicate. This module is pure text handling; excluding the author, ignoring
//! non-members, DM/GM "every post mentions everyone" and online checks for `@here` are
//! the caller's job.
//!
//! Every pass is linear in the message length, and any UTF-8 input is accepted.

use std::collections::{HashMap, HashSet};

/// Longest candidate handed to the member predicate, in bytes (all ASCII). Usernames are
/// at most 22 characters, so a longer run is cut here to bound the work per `@`.
pub const MAX_CANDIDATE_LEN: usize = 64;

/// Schemes that start a URL token; the token runs to the next whitespace.
const URL_SCHEMES: [&[u8]; 3] = [b"http://", b"https://", b"mailto:"];

/// What one message mentions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mentions {
    /// Mentioned member usernames: lower-case, deduplicated, in first-occurrence order.
    pub usernames: Vec<String>,
    /// `@channel` or `@all` appeared: every member is mentioned.
    pub channel: bool,
    /// `@here` appeared: every member online now is mentioned.
    pub here: bool,
}

/// A fenced code block's opening fence: its character and length.
#[derive(Debug, Clone, Copy)]
struct Fence {
    ch: u8,
    len: usize,
}

/// Extracts the mentions in `text`.
///
/// `is_member` receives a lower-cased candidate (ASCII `[a-z0-9._-]`, at most
/// [`MAX_CANDIDATE_LEN`] bytes) and says whether it is the username of a channel member.
/// `channel`, `all` and `here` are recognised before it is asked.
pub fn extract(text: &str, is_member: impl Fn(&str) -> bool) -> Mentions {
    let without_code = strip_code(text);
    let visible = strip_urls(&without_code);
    scan(&visible, is_member)
}

impl Fence {
    /// Parses an opening fence line: at most 3 spaces of indent, then 3 or more
    /// backticks or tildes. As in CommonMark, a backtick fence's info string may not
    /// contain a backtick (such a line is inline code instead).
    fn open(line: &str) -> Option<Fence> {
        let rest = strip_indent(line)?;
        let bytes = rest.as_bytes();
        let ch = *bytes.first()?;
        if ch != b'`' && ch != b'~' {
            return None;
        }
        let len = bytes.iter().take_while(|&&b| b == ch).count();
        if len < 3 || (ch == b'`' && bytes[len..].contains(&b'`')) {
            return None;
        }
        Some(Fence { ch, len })
    }

    /// True when `line` closes this fence: at most 3 spaces of indent, at least as many
    /// of the same fence character, then only whitespace.
    fn is_closed_by(self, line: &str) -> bool {
        let Some(rest) = strip_indent(line) else {
            return false;
        };
        let bytes = rest.as_bytes();
        let len = bytes.iter().take_while(|&&b| b == self.ch).count();
        len >= self.len && rest[len..].trim().is_empty()
    }
}

/// Removes up to 3 leading spaces; `None` when the line is indented further (CommonMark
/// treats 4 spaces as an indented code line, which is not a fence).
fn strip_indent(line: &str) -> Option<&str> {
    let spaces = line.bytes().take_while(|&b| b == b' ').count();
    (spaces <= 3).then(|| &line[spaces..])
}

/// Drops fenced code blocks and inline code spans, leaving a line break or a space in
/// their place so the text around them stays separated.
///
/// An unterminated fence runs to the end of the message, as Markdown renders it. Inline
/// spans are matched within one paragraph (blank lines and fences end paragraphs), so a
/// stray backtick cannot hide mentions further down the message.
fn strip_code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut paragraph_start: Option<usize> = None;
    let mut fence: Option<Fence> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        if let Some(open) = fence {
            if open.is_closed_by(line) {
                fence = None;
            }
            continue;
        }
        let is_fence = Fence::open(line);
        if is_fence.is_none() && !line.trim().is_empty() {
            paragraph_start.get_or_insert(line_start);
            continue;
        }
        if let Some(start) = paragraph_start.take() {
            strip_code_spans(&text[start..line_start], &mut out);
        }
        out.push('\n');
        fence = is_fence;
    }
    if let Some(start) = paragraph_start {
        strip_code_spans(&text[start..], &mut out);
    }
    out
}

/// Copies `paragraph` to `out` with each inline code span replaced by a space.
///
/// CommonMark rule: a run of N backticks opens a span that the next run of exactly N
/// backticks closes; a run with no such partner is literal text. Runs are indexed by
/// length with a forward-only cursor per length, so matching stays linear even for
/// adversarial mixes of run lengths.
fn strip_code_spans(paragraph: &str, out: &mut String) {
    let bytes = paragraph.as_bytes();
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'`' {
            let len = bytes[i..].iter().take_while(|&&b| b == b'`').count();
            runs.push((i, len));
            i += len;
        } else {
            i += 1;
        }
    }
    if runs.len() < 2 {
        out.push_str(paragraph);
        return;
    }
    // For each run length: the indices of runs with that length, and a cursor.
    let mut by_len: HashMap<usize, (Vec<usize>, usize)> = HashMap::new();
    for (index, &(_, len)) in runs.iter().enumerate() {
        by_len.entry(len).or_default().0.push(index);
    }
    let mut copied_to = 0;
    let mut r = 0;
    while r < runs.len() {
        let (start, len) = runs[r];
        let (indices, cursor) = by_len.get_mut(&len).expect("every run length is indexed");
        while *cursor < indices.len() && indices[*cursor] <= r {
            *cursor += 1;
        }
        match indices.get(*cursor) {
            Some(&closer) => {
                let (close_start, close_len) = runs[closer];
                out.push_str(&paragraph[copied_to..start]);
                out.push(' ');
                copied_to = close_start + close_len;
                r = closer + 1;
            }
            None => r += 1,
        }
    }
    out.push_str(&paragraph[copied_to..]);
}

/// Replaces every URL token (a scheme from [`URL_SCHEMES`], any case, up to the next
/// whitespace) with a space, so `https://x.io/@alice` mentions nobody.
fn strip_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = find_url(rest) {
        out.push_str(&rest[..start]);
        out.push(' ');
        let token = &rest[start..];
        let end = token.find(char::is_whitespace).unwrap_or(token.len());
        rest = &token[end..];
    }
    out.push_str(rest);
    out
}

/// Byte offset of the first URL scheme in `text`. Schemes are ASCII, so a match always
/// starts on a character boundary.
fn find_url(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (0..bytes.len()).find(|&i| {
        URL_SCHEMES.iter().any(|scheme| {
            bytes[i..].len() >= scheme.len()
                && bytes[i..i + scheme.len()].eq_ignore_ascii_case(scheme)
        })
    })
}

/// True when a character before `@` lets it open a mention: `bob@alice.com`,
/// `x.io/@alice` and `a+@b` are not mentions, `(@alice` and `—@alice` are.
fn opens_mention_after(c: char) -> bool {
    !(c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '@' | '/' | ':' | '+' | '='))
}

/// Characters a mention candidate is made of.
fn is_candidate_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// Finds the `@` candidates in code-free, URL-free text and resolves them.
fn scan(text: &str, is_member: impl Fn(&str) -> bool) -> Mentions {
    let mut mentions = Mentions::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut prev: Option<char> = None;
    let mut pos = 0;
    while let Some(c) = text[pos..].chars().next() {
        if c == '@' && prev.is_none_or(opens_mention_after) {
            let start = pos + 1;
            let run = text.as_bytes()[start..]
                .iter()
                .take_while(|&&b| is_candidate_byte(b))
                .count();
            if run > 0 {
                // The run is ASCII, so these byte offsets are character boundaries.
                let end = start + run;
                let candidate =
                    text[start..start + run.min(MAX_CANDIDATE_LEN)].to_ascii_lowercase();
                resolve(candidate, &is_member, &mut mentions, &mut seen);
                prev = text[..end].chars().next_back();
                pos = end;
                continue;
            }
        }
        prev = Some(c);
        pos += c.len_utf8();
    }
    mentions
}

/// Resolves one candidate: special names first, then members, then the same with one
/// trailing `.`, `-` or `_` stripped at a time (`@alice.` at the end of a sentence).
fn resolve(
    mut candidate: String,
    is_member: &impl Fn(&str) -> bool,
    mentions: &mut Mentions,
    seen: &mut HashSet<String>,
) {
    loop {
        match candidate.as_str() {
            "channel" | "all" => {
                mentions.channel = true;
                return;
            }
            "here" => {
                mentions.here = true;
                return;
            }
            _ => {}
        }
        if is_member(&candidate) {
            if seen.insert(candidate.clone()) {
                mentions.usernames.push(candidate);
            }
            return;
        }
        match candidate.pop() {
            Some('.' | '-' | '_') if !candidate.is_empty() => {}
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Members of the test channel.
    const MEMBERS: [&str; 4] = ["alice", "bob", "alice.b", "carol_"];

    fn members(candidate: &str) -> bool {
        MEMBERS.contains(&candidate)
    }

    fn names(text: &str) -> Vec<String> {
        extract(text, members).usernames
    }

    fn mentions_alice(text: &str) -> bool {
        names(text) == ["alice"]
    }

    #[test]
    fn spec_test_28_positive_cases_mention_alice() {
        for text in [
            "@alice",
            "(@alice)",
            "@alice.",
            "@ALICE",
            "@aliceさん",
            "hi @alice!",
        ] {
            assert!(mentions_alice(text), "{text:?} should mention alice");
        }
    }

    #[test]
    fn spec_test_28_negative_cases_mention_nobody() {
        for text in [
            "bob@alice.com",
            "@alicex",
            "`@alice`",
            "```\n@alice\n```",
            "https://x.io/@alice",
        ] {
            assert_eq!(extract(text, members), Mentions::default(), "{text:?}");
        }
    }

    #[test]
    fn a_non_member_candidate_is_not_a_substring_match() {
        let only_alice = |c: &str| c == "alice";
        assert!(extract("@alicex", only_alice).usernames.is_empty());
        assert!(extract("@xalice", only_alice).usernames.is_empty());
    }

    #[test]
    fn channel_and_all_set_the_channel_flag() {
        for text in ["@channel", "@all", "hey @ALL.", "(@Channel)"] {
            let m = extract(text, members);
            assert!(m.channel && !m.here && m.usernames.is_empty(), "{text:?}");
        }
    }

    #[test]
    fn here_sets_the_here_flag() {
        let m = extract("@here: deploy is done", members);
        assert!(m.here && !m.channel && m.usernames.is_empty());
    }

    #[test]
    fn special_names_are_recognised_before_asking_membership() {
        let asked = std::cell::RefCell::new(Vec::new());
        let m = extract("@channel @all @here", |c: &str| {
            asked.borrow_mut().push(c.to_owned());
            true
        });
        assert!(m.channel && m.here);
        assert!(asked.borrow().is_empty());
    }

    #[test]
    fn usernames_are_deduplicated_in_first_occurrence_order() {
        assert_eq!(names("@bob @alice @BOB @alice. @bob"), ["bob", "alice"]);
    }

    #[test]
    fn is_member_receives_the_lower_cased_candidate() {
        let asked = std::cell::RefCell::new(Vec::new());
        extract("@AlIcE", |c: &str| {
            asked.borrow_mut().push(c.to_owned());
            false
        });
        assert_eq!(*asked.borrow(), ["alice"]);
    }

    #[test]
    fn the_longest_member_name_wins() {
        assert_eq!(names("@alice.b"), ["alice.b"]);
        assert_eq!(names("@alice.b."), ["alice.b"]);
        assert_eq!(names("@alice.c"), Vec::<String>::new());
    }

    #[test]
    fn trailing_punctuation_is_stripped_one_char_at_a_time() {
        assert_eq!(names("@alice.-_."), ["alice"]);
        assert_eq!(names("@alice..."), ["alice"]);
        // A member name that itself ends in `_` is found before stripping it.
        assert_eq!(names("@carol_"), ["carol_"]);
        assert_eq!(names("@carol__"), ["carol_"]);
        assert!(names("@carol").is_empty());
    }

    #[test]
    fn punctuation_only_candidates_mention_nobody() {
        assert!(names("@... @-_- @.").is_empty());
    }

    #[test]
    fn at_opens_a_candidate_after_boundary_characters() {
        for before in [
            "", " ", "\n", "\t", "(", "[", "!", ",", ";", "'", "\"", "<", "*", "—", "「", "#",
        ] {
            let text = format!("{before}@alice");
            assert!(mentions_alice(&text), "{text:?}");
        }
    }

    #[test]
    fn at_does_not_open_a_candidate_after_word_characters() {
        for before in [
            "x", "7", "_", ".", "-", "@", "/", ":", "+", "=", "é", "さ", "Ж", "٣",
        ] {
            let text = format!("{before}@alice");
            assert!(names(&text).is_empty(), "{text:?}");
        }
    }

    #[test]
    fn a_candidate_ends_at_the_first_non_name_character() {
        assert!(mentions_alice("@alice's"));
        assert!(mentions_alice("@alice/bob"));
        assert!(mentions_alice("@alice@bob"));
        assert_eq!(names("@alice,@bob"), ["alice", "bob"]);
    }

    #[test]
    fn candidates_longer_than_the_cap_are_cut_before_the_member_check() {
        let longest = std::cell::Cell::new(0);
        let text = format!("@{}", "a".repeat(500));
        extract(&text, |c: &str| {
            longest.set(longest.get().max(c.len()));
            false
        });
        assert_eq!(longest.get(), MAX_CANDIDATE_LEN);
        // Trailing dots past the cap still strip back to the member.
        assert!(mentions_alice(&format!("@alice{}", ".".repeat(200))));
    }

    #[test]
    fn inline_code_spans_hide_mentions() {
        assert!(names("see `@alice` and ``x ` @bob``").is_empty());
        assert!(names("```@alice```").is_empty());
        assert_eq!(names("`code` @bob `more`"), ["bob"]);
    }

    #[test]
    fn a_code_span_closes_only_on_an_equal_backtick_run() {
        // The single backtick opens, `` is not its closer, the last ` is.
        assert!(names("`a `` @alice `").is_empty());
        // Unequal runs leave the text literal.
        assert!(mentions_alice("``a @alice `"));
    }

    #[test]
    fn a_lone_backtick_does_not_hide_later_mentions() {
        assert!(mentions_alice("it's a ` char, @alice"));
        assert!(mentions_alice("@alice `"));
    }

    #[test]
    fn code_spans_do_not_cross_a_blank_line() {
        assert!(mentions_alice("a `stray\n\n@alice and ` here"));
        // Within one paragraph they may span lines.
        assert!(names("a `multi\n@alice line` b").is_empty());
    }

    #[test]
    fn fenced_blocks_hide_mentions_until_the_matching_fence() {
        assert!(names("~~~\n@alice\n~~~").is_empty());
        assert!(names("```rust\nlet x = \"@alice\";\n```").is_empty());
        assert!(names("  ```\n@alice\n  ```").is_empty());
        // A shorter fence or the other fence character does not close the block.
        assert!(names("````\n@alice\n```\n@bob\n````").is_empty());
        assert!(names("~~~\n@alice\n```\n@bob\n~~~").is_empty());
        assert_eq!(names("```\n@alice\n```\n@bob"), ["bob"]);
        assert_eq!(
            names("@bob\n```\n@alice\n```\r\n@carol_"),
            ["bob", "carol_"]
        );
    }

    #[test]
    fn an_unterminated_fence_hides_the_rest_of_the_message() {
        assert_eq!(names("@bob\n```\n@alice\nmore"), ["bob"]);
        assert!(names("```").is_empty());
    }

    #[test]
    fn fence_like_text_that_is_not_a_fence_keeps_mentions() {
        // Four spaces of indent, two backticks, or a fence mid-line are not fences.
        assert!(mentions_alice("    ```\n@alice"));
        assert!(mentions_alice("``\n@alice"));
        assert!(mentions_alice("so ~~~ @alice"));
        // A backtick in the info string makes it inline text, not a fence.
        assert!(mentions_alice("``` a`b\n@alice"));
    }

    #[test]
    fn url_tokens_hide_mentions() {
        for text in [
            "http://x.io/@alice",
            "see HTTPS://x.io/a?b=(@alice)",
            "mailto:@alice",
            "(https://x.io/ @bob)",
            "link:https://x.io/x(@alice)",
        ] {
            let got = names(text);
            assert!(got.is_empty() || got == ["bob"], "{text:?} gave {got:?}");
        }
        assert_eq!(names("https://x.io/@alice @bob"), ["bob"]);
    }

    #[test]
    fn a_url_scheme_after_an_at_is_still_a_url() {
        assert!(names("@https://x.io").is_empty());
    }

    #[test]
    fn multibyte_characters_next_to_at_do_not_panic() {
        for text in [
            "@",
            "@@",
            "é@",
            "@é",
            "@さ",
            "さ@",
            "@\u{0301}alice",
            "🙂@alice",
            "@alice🙂",
            "\u{FEFF}@alice",
        ] {
            let _ = extract(text, members);
        }
        assert!(mentions_alice("🙂@alice"));
        assert!(mentions_alice("@alice🙂"));
    }

    #[test]
    fn lone_backticks_tildes_and_unterminated_fences_do_not_panic() {
        for text in [
            "`",
            "``",
            "```",
            "~~~",
            "`\n`",
            "```\n",
            "~~~ `",
            "`é`",
            "```é\n@a",
            " ``` ",
            "\n\n`",
        ] {
            let _ = extract(text, members);
        }
    }

    #[test]
    fn large_inputs_complete() {
        let mentions = "@alice ".repeat(15_000);
        assert_eq!(names(&mentions), ["alice"]);
        // Backtick runs of growing length: quadratic matching would be slow here.
        let mut ticks = String::new();
        let mut n = 1;
        while ticks.len() < 100_000 {
            ticks.push_str(&"`".repeat(n));
            ticks.push_str(" @alice ");
            n = n % 400 + 1;
        }
        let _ = extract(&ticks, members);
        let _ = extract(&"h".repeat(100_000), members);
        let _ = extract(&"https://".repeat(12_500), members);
        let _ = extract(&format!("@{}", "a".repeat(100_000)), members);
        let _ = extract(&"```\n".repeat(25_000), members);
        let _ = extract(&"さ@".repeat(30_000), members);
    }

    #[test]
    fn random_utf8_never_panics() {
        const ALPHABET: [&str; 16] = [
            "@", "`", "~", "\n", " ", "alice", ".", "_", "-", "é", "さ", "🙂", "https://",
            "mailto:", "(", "\r",
        ];
        for _ in 0..2_000 {
            let len = rand::random_range(0..40);
            let text: String = (0..len)
                .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())])
                .collect();
            let m = extract(&text, members);
            assert!(
                m.usernames.iter().all(|u| MEMBERS.contains(&u.as_str())),
                "{text:?}"
            );
        }
    }
}
