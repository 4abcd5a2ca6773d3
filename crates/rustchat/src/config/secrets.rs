//! Secrets (spec §4.14, decisions 3 and 4): the [`SecretString`] wrapper, how a secret
//! string becomes key material, the strength rules, the development fallbacks and URL
//! password redaction.
//!
//! True entropy cannot be measured, so "strong" means: at least 32 bytes of decoded key
//! material, an estimated entropy (Shannon entropy per character × length) of at least
//! 128 bits, and none of the words people put in placeholder secrets. `openssl rand
//! -base64 48` passes comfortably (64 characters, about 350 estimated bits).
//!
//! Not for: storing secrets (the database columns are encrypted by [`crate::crypto`]).

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use rand::RngCore;

/// What a redacted secret or URL password prints as.
pub const REDACTED: &str = "***";
/// Minimum decoded key material of a production secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// Minimum estimated entropy of a production secret, in bits.
pub const MIN_SECRET_ENTROPY_BITS: f64 = 128.0;
/// Words that mark a placeholder secret (matched case-insensitively).
pub const WEAK_SECRET_WORDS: [&str; 6] = [
    "secret", "changeme", "password", "example", "rustchat", "default",
];
/// File in `data_dir` holding the persisted development encryption key.
pub const DEV_ENCRYPTION_KEY_FILE: &str = "dev-encryption.key";
/// Length of generated development keys, in bytes.
pub const DEV_KEY_BYTES: usize = 32;
/// How to generate a good secret, quoted in error messages.
pub const SECRET_HINT: &str = "generate one with `openssl rand -base64 48`";

/// A configuration secret: `Debug` and `Display` print `***`, so it can sit in structs
/// that get logged.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

/// Decodes base64 in the standard alphabet with or without padding.
const STANDARD_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
/// Decodes base64 in the URL-safe alphabet with or without padding.
const URL_SAFE_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl SecretString {
    /// Wraps `secret`.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret text; call only where the value is really needed.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The key material this secret stands for, see [`key_material`].
    pub fn material(&self) -> Vec<u8> {
        key_material(&self.0)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Key material of a secret string: its hex or base64 (standard or URL alphabet, padding
/// optional) decoding when the string parses as one and yields at least 32 bytes, else
/// the string's own bytes.
///
/// Hex is tried first: a hex string is also valid base64, and `openssl rand -hex 32`
/// means 32 bytes, not the 48 a base64 reading would give.
pub fn key_material(secret: &str) -> Vec<u8> {
    let decoded = decode_hex(secret)
        .filter(|b| b.len() >= MIN_SECRET_BYTES)
        .or_else(|| {
            [&STANDARD_ANY_PAD, &URL_SAFE_ANY_PAD]
                .into_iter()
                .find_map(|engine| engine.decode(secret).ok())
                .filter(|b| b.len() >= MIN_SECRET_BYTES)
        });
    decoded.unwrap_or_else(|| secret.as_bytes().to_vec())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

/// Estimated entropy of `text` in bits: Shannon entropy per character × length.
pub fn entropy_bits(text: &str) -> f64 {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return 0.0;
    }
    let mut counts = std::collections::HashMap::<char, u32>::new();
    for c in &chars {
        *counts.entry(*c).or_default() += 1;
    }
    let len = chars.len() as f64;
    let per_char: f64 = counts
        .values()
        .map(|n| {
            let p = f64::from(*n) / len;
            -p * p.log2()
        })
        .sum();
    per_char * len
}

/// Everything wrong with `secret` by the §4.14 rules, as short phrases; empty when it
/// is strong. Production turns these into errors, development into warnings.
pub fn secret_weaknesses(secret: &str) -> Vec<String> {
    let mut weak = Vec::new();
    let material = key_material(secret).len();
    if material < MIN_SECRET_BYTES {
        weak.push(format!(
            "only {material} bytes of key material (need at least {MIN_SECRET_BYTES})"
        ));
    }
    let bits = entropy_bits(secret);
    if bits < MIN_SECRET_ENTROPY_BITS {
        weak.push(format!(
            "estimated entropy {bits:.0} bits (need at least {MIN_SECRET_ENTROPY_BITS:.0})"
        ));
    }
    let lower = secret.to_ascii_lowercase();
    if let Some(word) = WEAK_SECRET_WORDS.iter().find(|w| lower.contains(*w)) {
        weak.push(format!("contains the placeholder word \"{word}\""));
    }
    weak
}

/// An ephemeral JWT signing key for development (48 random bytes); sessions signed with
/// it end at restart. The caller logs the WARN the spec asks for.
pub fn dev_jwt_secret() -> Vec<u8> {
    let mut key = vec![0u8; 48];
    rand::rng().fill_bytes(&mut key);
    key
}

/// The development encryption key: 32 random bytes in `<data_dir>/dev-encryption.key`
/// (mode 0600), created on first use and reused afterwards so stored secrets survive
/// restarts (decision 4). Returns the key and whether it was created now. Creates
/// `data_dir` if needed; never call it from `--check-config`.
///
/// The key is written to a temporary file and hard-linked into place, so two processes
/// starting at once on one data dir agree on a single key and never read a half-written
/// file.
pub fn load_or_create_dev_encryption_key(data_dir: &Path) -> io::Result<(Vec<u8>, bool)> {
    let path = data_dir.join(DEV_ENCRYPTION_KEY_FILE);
    match read_dev_key(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => return other.map(|key| (key, false)),
    }
    fs::create_dir_all(data_dir)?;
    let mut key = vec![0u8; DEV_KEY_BYTES];
    rand::rng().fill_bytes(&mut key);
    let mut suffix = [0u8; 8];
    rand::rng().fill_bytes(&mut suffix);
    let tmp = data_dir.join(format!(
        ".{DEV_ENCRYPTION_KEY_FILE}.{}.tmp",
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ));
    let written = write_private(&tmp, &key).and_then(|()| fs::hard_link(&tmp, &path));
    // The temporary name is removed whether or not the link won; a leftover would only
    // be clutter, so a failure to remove it is not an error.
    let _ = fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok((key, true)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            read_dev_key(&path).map(|key| (key, false))
        }
        Err(e) => Err(e),
    }
}

fn read_dev_key(path: &Path) -> io::Result<Vec<u8>> {
    let key = fs::read(path)?;
    if key.len() != DEV_KEY_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} holds {} bytes, expected {DEV_KEY_BYTES}; set RUSTCHAT_ENCRYPTION_KEY, or \
                 delete the file if no stored secret depends on it",
                path.display(),
                key.len()
            ),
        ));
    }
    Ok(key)
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// `url` with the password of its user-info replaced by `***`
/// (`postgres://u:***@db/x`); URLs without a password come back unchanged.
pub fn redact_url(url: &str) -> String {
    redact_urls_in(url)
}

/// Replaces the password of every `scheme://user:password@host` URL inside `text` (error
/// reasons quote values) by `***`.
pub fn redact_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let authority_start = at + 3;
        out.push_str(&rest[..authority_start]);
        let after = &rest[authority_start..];
        // The authority ends at the path, query or fragment, or where the quoted value
        // or word ends.
        let end = after
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'') || c.is_whitespace())
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(at_sign) => {
                let userinfo = &authority[..at_sign];
                match userinfo.split_once(':') {
                    Some((user, _password)) => {
                        out.push_str(user);
                        out.push(':');
                        out.push_str(REDACTED);
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at_sign..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `openssl rand -base64 48` prints: 48 random bytes in standard base64.
    fn openssl_base64_48() -> String {
        let mut bytes = [0u8; 48];
        rand::rng().fill_bytes(&mut bytes);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn secret_string_never_prints_its_value() {
        let s = SecretString::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn base64_and_hex_secrets_decode_to_their_bytes() {
        let bytes: Vec<u8> = (0u8..48).collect();
        let std = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let url_nopad = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
        assert_eq!(key_material(&std), bytes);
        assert_eq!(key_material(&url_nopad), bytes);
        let hex: String = bytes[..32].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(key_material(&hex), &bytes[..32]);
    }

    #[test]
    fn short_decodings_fall_back_to_the_raw_bytes() {
        // Valid base64, but only 18 bytes: the string itself is the material.
        assert_eq!(
            key_material("c2hvcnQga2V5IG1hdGVyaWFs"),
            b"c2hvcnQga2V5IG1hdGVyaWFs"
        );
        assert_eq!(key_material("not base64 !"), b"not base64 !");
    }

    #[test]
    fn openssl_rand_base64_48_is_strong() {
        for _ in 0..20 {
            let secret = openssl_base64_48();
            assert_eq!(secret.len(), 64);
            assert!(
                secret_weaknesses(&secret).is_empty(),
                "{secret}: {:?}",
                secret_weaknesses(&secret)
            );
        }
    }

    #[test]
    fn weak_secrets_are_named_for_each_weakness() {
        let short = secret_weaknesses("Zq8#kP2!");
        assert!(
            short.iter().any(|w| w.contains("bytes of key material")),
            "{short:?}"
        );
        let flat = secret_weaknesses(&"ab".repeat(40));
        assert_eq!(flat.len(), 1, "{flat:?}");
        assert!(flat[0].contains("entropy"), "{flat:?}");
        let word = format!("{}ChangeMe", openssl_base64_48());
        let words = secret_weaknesses(&word);
        assert_eq!(words, ["contains the placeholder word \"changeme\""]);
    }

    #[test]
    fn entropy_is_per_character_entropy_times_length() {
        assert_eq!(entropy_bits(""), 0.0);
        assert_eq!(entropy_bits("aaaa"), 0.0);
        assert!((entropy_bits("abcd") - 8.0).abs() < 1e-9);
    }

    #[test]
    fn dev_jwt_secrets_are_random_and_long() {
        let (a, b) = (dev_jwt_secret(), dev_jwt_secret());
        assert!(a.len() >= MIN_SECRET_BYTES);
        assert_ne!(a, b);
    }

    #[test]
    fn dev_encryption_key_is_created_once_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("rustchat-devkey-{}", std::process::id()));
        let data_dir = dir.join("nested");
        let (key, created) = load_or_create_dev_encryption_key(&data_dir).unwrap();
        assert!(created);
        assert_eq!(key.len(), DEV_KEY_BYTES);
        let (again, created_again) = load_or_create_dev_encryption_key(&data_dir).unwrap();
        assert!(!created_again);
        assert_eq!(again, key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(data_dir.join(DEV_ENCRYPTION_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers = fs::read_dir(&data_dir).unwrap().count();
        assert_eq!(leftovers, 1, "only the key file remains");
        fs::write(data_dir.join(DEV_ENCRYPTION_KEY_FILE), b"short").unwrap();
        let err = load_or_create_dev_encryption_key(&data_dir).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://user:pass@db:5432/rustchat"),
            "postgres://user:***@db:5432/rustchat"
        );
        assert_eq!(
            redact_url("redis://:pw@redis:6379"),
            "redis://:***@redis:6379"
        );
        assert_eq!(redact_url("redis://redis:6379"), "redis://redis:6379");
        assert_eq!(redact_url("sqlite://./data/x.db"), "sqlite://./data/x.db");
        assert_eq!(
            redact_urls_in(r#"conflicts with env B = "postgres://a:s3cr3t@h/d"; and http://x:y@z"#),
            r#"conflicts with env B = "postgres://a:***@h/d"; and http://x:***@z"#
        );
    }
}
