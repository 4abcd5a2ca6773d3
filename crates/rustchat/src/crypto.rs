//! Encryption at rest (spec §4.14) for OAuth client secrets, PKCE verifiers and webhook
//! tokens stored in the database.
//!
//! The key is HKDF-SHA256 of the configured key material (salt `rustchat`, info
//! `rustchat/at-rest/v1`); values are sealed with XChaCha20-Poly1305 under a random
//! 24-byte nonce (large enough that random nonces never collide in practice) and stored as
//! `enc:v1:<base64url-nopad(nonce ‖ ciphertext ‖ tag)>`. The associated data
//! `<table>.<column>:<row id>` binds each value to its cell, so a ciphertext copied into
//! another row or column does not decrypt. A fixed [`AtRest::key_check`] value stored in
//! `server_config` tells a wrong key apart from corrupted data at start.
//!
//! Not for: passwords (argon2 hashes) or key rotation (a later feature).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;

/// Prefix of every stored value (format version 1).
pub const ENCRYPTED_PREFIX: &str = "enc:v1:";
/// HKDF salt.
pub const HKDF_SALT: &[u8] = b"rustchat";
/// HKDF info, naming the purpose and version of the derived key.
pub const HKDF_INFO: &[u8] = b"rustchat/at-rest/v1";
/// Associated data of the key-check value (`server_config.key_check`, row `default`).
pub const KEY_CHECK_AAD: &str = "server_config.key_check:default";
/// XChaCha20 nonce length in bytes.
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag length in bytes.
pub const TAG_LEN: usize = 16;
/// The plaintext sealed by [`AtRest::key_check`].
const KEY_CHECK_PLAINTEXT: &[u8] = b"rustchat at-rest key check v1";

/// Seals and opens values stored in the database under one derived key.
#[derive(Clone)]
pub struct AtRest {
    cipher: XChaCha20Poly1305,
}

/// Why a stored value could not be decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The value does not start with `enc:v1:`.
    #[error("not an encrypted value: expected the prefix {ENCRYPTED_PREFIX}")]
    NotEncrypted,
    /// The part after the prefix is not base64url.
    #[error("encrypted value is not valid base64url")]
    Encoding,
    /// Too short to hold a nonce and a tag.
    #[error("encrypted value is truncated")]
    Truncated,
    /// Authentication failed: wrong key, wrong row/column, or altered data.
    #[error(
        "decryption failed: wrong RUSTCHAT_ENCRYPTION_KEY, value moved to another row, or data altered"
    )]
    Decrypt,
}

impl AtRest {
    /// A cipher keyed from `material` (see `config::key_material`).
    pub fn new(material: &[u8]) -> Self {
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(HKDF_SALT), material)
            .expand(HKDF_INFO, &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self {
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }

    /// The associated data for a cell: `<table>.<column>:<row id>`.
    pub fn aad(table: &str, column: &str, row_id: &str) -> String {
        format!("{table}.{column}:{row_id}")
    }

    /// Seals `plaintext` for the cell named by `aad`; the result is `enc:v1:…`.
    ///
    /// # Panics
    ///
    /// Only for plaintexts beyond XChaCha20-Poly1305's limit (256 GiB).
    pub fn encrypt(&self, plaintext: &[u8], aad: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .expect("plaintext within the XChaCha20-Poly1305 length limit");
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        format!("{ENCRYPTED_PREFIX}{}", URL_SAFE_NO_PAD.encode(blob))
    }

    /// Opens a value produced by [`AtRest::encrypt`] for the same `aad`.
    pub fn decrypt(&self, stored: &str, aad: &str) -> Result<Vec<u8>, CryptoError> {
        let encoded = stored
            .strip_prefix(ENCRYPTED_PREFIX)
            .ok_or(CryptoError::NotEncrypted)?;
        let blob = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| CryptoError::Encoding)?;
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Truncated);
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Decrypt)
    }

    /// A fresh key-check value to store in `server_config` when none exists yet.
    pub fn key_check(&self) -> String {
        self.encrypt(KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD)
    }

    /// Whether `stored` (a [`AtRest::key_check`] value) was made with this key.
    pub fn verify_key_check(&self, stored: &str) -> bool {
        self.decrypt(stored, KEY_CHECK_AAD)
            .is_ok_and(|plain| plain == KEY_CHECK_PLAINTEXT)
    }
}

/// Whether `stored` is in the encrypted format (as opposed to a legacy plain value).
pub fn is_encrypted(stored: &str) -> bool {
    stored.starts_with(ENCRYPTED_PREFIX)
}

impl fmt::Debug for AtRest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AtRest { key: *** }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> AtRest {
        AtRest::new(&[byte; 32])
    }

    #[test]
    fn round_trip_returns_the_plaintext() {
        let k = key(1);
        let aad = AtRest::aad("incoming_webhooks", "token", "01J0");
        assert_eq!(aad, "incoming_webhooks.token:01J0");
        let stored = k.encrypt(b"hook-token", &aad);
        assert_eq!(k.decrypt(&stored, &aad).unwrap(), b"hook-token");
        assert_eq!(k.decrypt(&k.encrypt(b"", &aad), &aad).unwrap(), b"");
    }

    #[test]
    fn stored_form_is_prefixed_base64url_of_nonce_and_ciphertext() {
        let stored = key(1).encrypt(b"abc", "t.c:1");
        let encoded = stored.strip_prefix("enc:v1:").expect("prefix");
        assert!(is_encrypted(&stored));
        assert!(
            encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{encoded}"
        );
        let blob = URL_SAFE_NO_PAD.decode(encoded).unwrap();
        assert_eq!(blob.len(), NONCE_LEN + 3 + TAG_LEN);
    }

    #[test]
    fn same_plaintext_encrypts_differently_each_time() {
        let k = key(1);
        assert_ne!(k.encrypt(b"x", "t.c:1"), k.encrypt(b"x", "t.c:1"));
    }

    #[test]
    fn wrong_aad_fails() {
        let k = key(1);
        let stored = k.encrypt(b"secret", "oauth_providers.client_secret:google");
        assert_eq!(
            k.decrypt(&stored, "oauth_providers.client_secret:github"),
            Err(CryptoError::Decrypt)
        );
    }

    #[test]
    fn wrong_key_fails() {
        let stored = key(1).encrypt(b"secret", "t.c:1");
        assert_eq!(key(2).decrypt(&stored, "t.c:1"), Err(CryptoError::Decrypt));
    }

    #[test]
    fn tampered_ciphertext_fails() {
        let k = key(1);
        let stored = k.encrypt(b"secret value", "t.c:1");
        let mut blob = URL_SAFE_NO_PAD
            .decode(stored.strip_prefix(ENCRYPTED_PREFIX).unwrap())
            .unwrap();
        for index in [0, NONCE_LEN, blob.len() - 1] {
            blob[index] ^= 0x01;
            let tampered = format!("{ENCRYPTED_PREFIX}{}", URL_SAFE_NO_PAD.encode(&blob));
            assert_eq!(k.decrypt(&tampered, "t.c:1"), Err(CryptoError::Decrypt));
            blob[index] ^= 0x01;
        }
    }

    #[test]
    fn malformed_values_are_told_apart() {
        let k = key(1);
        assert_eq!(k.decrypt("plain", "a"), Err(CryptoError::NotEncrypted));
        assert_eq!(k.decrypt("enc:v1:***", "a"), Err(CryptoError::Encoding));
        assert_eq!(k.decrypt("enc:v1:AAAA", "a"), Err(CryptoError::Truncated));
    }

    #[test]
    fn key_check_verifies_only_with_the_same_key() {
        let check = key(1).key_check();
        assert!(key(1).verify_key_check(&check));
        assert!(!key(2).verify_key_check(&check));
        assert!(!key(1).verify_key_check("garbage"));
        let other_cell = key(1).encrypt(KEY_CHECK_PLAINTEXT, "t.c:1");
        assert!(!key(1).verify_key_check(&other_cell));
    }

    #[test]
    fn key_derivation_is_hkdf_sha256_with_the_spec_salt_and_info() {
        // Independent derivation: a value sealed with a cipher keyed by the HKDF output
        // directly opens with AtRest built from the material.
        let material = b"0123456789abcdef0123456789abcdef";
        let mut okm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(b"rustchat"), material)
            .expand(b"rustchat/at-rest/v1", &mut okm)
            .unwrap();
        let direct = XChaCha20Poly1305::new(&okm.into());
        let nonce = [7u8; NONCE_LEN];
        let sealed = direct
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: b"hi",
                    aad: b"t.c:1",
                },
            )
            .unwrap();
        let stored = format!(
            "{ENCRYPTED_PREFIX}{}",
            URL_SAFE_NO_PAD.encode([nonce.as_slice(), &sealed].concat())
        );
        assert_eq!(
            AtRest::new(material).decrypt(&stored, "t.c:1").unwrap(),
            b"hi"
        );
    }

    #[test]
    fn debug_never_shows_key_material() {
        assert_eq!(format!("{:?}", key(9)), "AtRest { key: *** }");
    }
}
