//! Identifiers and secrets: 26-character entity ids, opaque bearer tokens and the
//! SHA-256 digests under which tokens are stored (spec §3.1, §4.10, §7).
//!
//! Ids use Mattermost's base32 alphabet so v4 clients accept them unchanged: 16 random
//! bytes (128 bits) encode to 26 characters without padding. This module only makes
//! and checks strings; it does not know which table an id belongs to.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Mattermost's id alphabet: base32 with these 32 symbols, most significant bits first.
pub const ID_ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";

/// Length of every id: ceil(128 / 5) = 26 base32 characters.
pub const ID_LEN: usize = 26;

/// Random bytes behind one id.
const ID_BYTES: usize = 16;

/// Random bytes behind one bearer token (256 bits → 43 base64url characters).
const TOKEN_BYTES: usize = 32;

/// Returns a fresh random id: 16 bytes from the thread-local CSPRNG, base32-encoded.
pub fn new_id() -> String {
    let bytes: [u8; ID_BYTES] = rand::random();
    encode_id(&bytes)
}

/// True when `s` is an id this server could have produced.
///
/// That means exactly 26 characters of [`ID_ALPHABET`] and a last character whose two
/// low bits are zero: 26 × 5 = 130 bits carry only 128 bits of data, and a non-zero
/// tail would decode to a 17th byte, so such strings are rejected rather than aliased.
pub fn is_valid_id(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.len() != ID_LEN {
        return false;
    }
    let mut last = 0;
    for &b in bytes {
        match symbol_value(b) {
            Some(v) => last = v,
            None => return false,
        }
    }
    last & 0b11 == 0
}

/// Returns `prefix` followed by 32 random bytes in unpadded base64url (43 characters),
/// e.g. `rct_…` for personal access tokens. Only the [`sha256_hex`] digest is stored.
pub fn random_token(prefix: &str) -> String {
    let bytes: [u8; TOKEN_BYTES] = rand::random();
    let mut out = String::with_capacity(prefix.len() + 43);
    out.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(bytes, &mut out);
    out
}

/// Lower-case hex SHA-256 of `s` (64 characters): the stored form of tokens, so a
/// database leak does not reveal usable credentials. Tokens carry 256 random bits,
/// which is why a plain hash (no salt, no slow KDF) is enough here.
pub fn sha256_hex(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(s.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// Base32-encodes 16 bytes, most significant bit first, dropping the padding.
fn encode_id(bytes: &[u8; ID_BYTES]) -> String {
    let value = u128::from_be_bytes(*bytes);
    let mut out = String::with_capacity(ID_LEN);
    for i in 0..ID_LEN - 1 {
        let symbol = (value >> (128 - 5 * (i + 1))) & 0x1f;
        out.push(char::from(ID_ALPHABET[symbol as usize]));
    }
    // The last symbol holds the low 3 bits followed by 2 bits of zero padding.
    let symbol = (value & 0b111) << 2;
    out.push(char::from(ID_ALPHABET[symbol as usize]));
    out
}

/// Value of one alphabet symbol, or `None` for any other byte.
fn symbol_value(b: u8) -> Option<u8> {
    ID_ALPHABET.iter().position(|&a| a == b).map(|p| p as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes an id back to its 16 bytes (test-only inverse of `encode_id`).
    fn decode(s: &str) -> [u8; 16] {
        let mut value: u128 = 0;
        for (i, b) in s.bytes().enumerate() {
            let v = u128::from(symbol_value(b).unwrap());
            if i < ID_LEN - 1 {
                value = (value << 5) | v;
            } else {
                value = (value << 3) | (v >> 2);
            }
        }
        value.to_be_bytes()
    }

    #[test]
    fn new_id_is_26_alphabet_chars_and_valid() {
        for _ in 0..1000 {
            let id = new_id();
            assert_eq!(id.len(), ID_LEN);
            assert!(id.bytes().all(|b| ID_ALPHABET.contains(&b)), "{id}");
            assert!(is_valid_id(&id), "{id}");
        }
    }

    #[test]
    fn new_ids_do_not_repeat() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn encoding_matches_mattermost_base32_for_known_bytes() {
        // All-zero bytes are the first symbol repeated; all-ones end in the symbol for
        // 0b11100 (index 28, 'h') because the last two bits are padding.
        assert_eq!(encode_id(&[0; 16]), "y".repeat(26));
        assert_eq!(encode_id(&[0xff; 16]), format!("{}h", "9".repeat(25)));
        // 0x80 followed by zeros: first symbol 0b10000 = index 16 ('o').
        let mut b = [0u8; 16];
        b[0] = 0x80;
        assert_eq!(encode_id(&b), format!("o{}", "y".repeat(25)));
    }

    #[test]
    fn encoding_round_trips_through_decode() {
        for _ in 0..200 {
            let bytes: [u8; 16] = rand::random();
            assert_eq!(decode(&encode_id(&bytes)), bytes);
        }
    }

    #[test]
    fn is_valid_id_rejects_wrong_length() {
        let id = new_id();
        assert!(!is_valid_id(&id[..25]));
        assert!(!is_valid_id(&format!("{id}y")));
        assert!(!is_valid_id(""));
    }

    #[test]
    fn is_valid_id_rejects_chars_outside_the_alphabet() {
        // 'l', 'v', '0', '2' and upper case are not in the alphabet.
        for bad in ['l', 'v', '0', '2', 'Y', '-', 'é'] {
            let s: String = std::iter::repeat_n('y', 25).chain([bad]).collect();
            assert!(!is_valid_id(&s), "{s}");
            let s: String = std::iter::once(bad)
                .chain(std::iter::repeat_n('y', 25))
                .collect();
            assert!(!is_valid_id(&s), "{s}");
        }
    }

    #[test]
    fn is_valid_id_rejects_a_last_char_carrying_more_than_128_bits() {
        let base = "y".repeat(25);
        for (i, &c) in ID_ALPHABET.iter().enumerate() {
            let s = format!("{base}{}", char::from(c));
            assert_eq!(is_valid_id(&s), i % 4 == 0, "{s}");
        }
    }

    #[test]
    fn is_valid_id_does_not_panic_on_multibyte_input() {
        assert!(!is_valid_id("ééééééééééééé"));
        assert!(!is_valid_id(&"さ".repeat(26)));
    }

    #[test]
    fn random_token_is_prefix_plus_43_base64url_chars() {
        let t = random_token("rct_");
        assert!(t.starts_with("rct_"));
        let body = &t[4..];
        assert_eq!(body.len(), 43);
        assert!(
            body.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(body).unwrap().len(), 32);
        assert_ne!(random_token("rct_"), t);
    }

    #[test]
    fn random_token_accepts_an_empty_prefix() {
        assert_eq!(random_token("").len(), 43);
    }

    #[test]
    fn sha256_hex_matches_known_vectors() {
        assert_eq!(
            sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
