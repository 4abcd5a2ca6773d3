//! Input rules shared by both APIs (CHAT-R6 limits).

use crate::error::ApiError;

/// Longest message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 16_383;
/// Longest display name.
pub const MAX_DISPLAY_NAME: usize = 64;
/// Longest channel purpose.
pub const MAX_PURPOSE: usize = 250;
/// Longest channel header.
pub const MAX_HEADER: usize = 1024;
/// Password length bounds.
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=128;
/// Usernames nobody may take (they are mention keywords).
pub const RESERVED_USERNAMES: [&str; 4] = ["all", "channel", "here", "system"];

/// `^[a-z][a-z0-9._-]{1,20}[a-z0-9]$`, not reserved.
pub fn username(s: &str) -> Result<(), ApiError> {
    let b = s.as_bytes();
    let ok = (3..=22).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[1..b.len() - 1]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
        && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit());
    if !ok {
        return Err(ApiError::validation(
            "username",
            "3-22 characters: a lower-case letter, then a-z 0-9 . _ -, ending in a letter or digit",
        ));
    }
    if RESERVED_USERNAMES.contains(&s) {
        return Err(ApiError::validation("username", "this name is reserved"));
    }
    Ok(())
}

/// Team and channel names: `^[a-z0-9][a-z0-9_-]{1,63}$`.
pub fn slug(field: &'static str, s: &str) -> Result<(), ApiError> {
    let b = s.as_bytes();
    let ok = (2..=64).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            field,
            "2-64 characters from a-z 0-9 _ -, starting with a letter or digit",
        ))
    }
}

/// A length rule in characters.
pub fn chars(field: &'static str, s: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let n = s.chars().count();
    if n < min || n > max {
        return Err(ApiError::validation(
            field,
            format!("must be {min}-{max} characters (got {n})"),
        ));
    }
    Ok(())
}

/// A plausible email: one `@`, something on both sides, a dot in the domain, no spaces.
pub fn email(s: &str) -> Result<(), ApiError> {
    let ok = s.len() <= 254
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(s.split_once('@'), Some((l, d)) if !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.') && !d.contains('@'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation("email", "not an email address"))
    }
}

/// A path id (26-char Mattermost-style id) or 400.
pub fn id(field: &'static str, s: &str) -> Result<(), ApiError> {
    if crate::ids::is_valid_id(s) {
        Ok(())
    } else {
        Err(ApiError::validation(field, "not a valid id"))
    }
}

/// Emoji names: `^[a-z0-9_+-]{1,64}$`.
pub fn emoji(s: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_+-".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            "emoji_name",
            "1-64 characters from a-z 0-9 _ + -",
        ))
    }
}

/// A message: at most 16,383 characters, not blank unless files are attached.
pub fn message(s: &str, has_files: bool) -> Result<(), ApiError> {
    if s.chars().count() > MAX_MESSAGE_CHARS {
        return Err(ApiError::validation(
            "message",
            format!("at most {MAX_MESSAGE_CHARS} characters"),
        ));
    }
    if s.trim().is_empty() && !has_files {
        return Err(ApiError::validation("message", "must not be empty"));
    }
    if s.contains('\0') {
        return Err(ApiError::validation("message", "must not contain NUL"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_pattern_and_reserved_words_are_refused() {
        for ok in ["alice", "bob.smith", "a_b-c9", "abc"] {
            assert!(username(ok).is_ok(), "{ok}");
        }
        for bad in [
            "al",
            "Alice",
            "9lives",
            "alice-",
            "a b",
            "here",
            "all",
            &"a".repeat(23),
        ] {
            assert!(username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slugs_and_emoji_follow_their_patterns() {
        assert!(slug("name", "town-square").is_ok());
        assert!(slug("name", "-x").is_err());
        assert!(slug("name", "a").is_err());
        assert!(emoji("+1").is_ok());
        assert!(emoji("Thumbs").is_err());
        assert!(emoji("").is_err());
    }

    #[test]
    fn messages_are_bounded_and_not_blank() {
        assert!(message("hi", false).is_ok());
        assert!(message("   ", false).is_err());
        assert!(message("", true).is_ok());
        assert!(message(&"x".repeat(16_384), false).is_err());
        assert!(message("a\0b", false).is_err());
    }
}
