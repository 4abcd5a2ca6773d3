//! Session JWTs (CHAT-R21): HS256 only, `{iss, aud, sub, sid, iat, exp}`.
//!
//! A token is accepted only when its header says exactly HS256, the signature verifies with
//! the current secret, iss and aud match, and exp has not passed (30 s leeway). The session
//! row and the user's state are checked by the caller. Tokens over 4 KiB are rejected
//! before any parsing.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Longest accepted token.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Clock leeway on `exp`.
pub const LEEWAY_SECS: u64 = 30;

/// The claims we issue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
}

/// Why a token was refused; logged as `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    BadSignature,
    Expired,
    Malformed,
    Issuer,
    Audience,
    Algorithm,
}

impl Invalid {
    /// The log field value.
    pub fn as_str(self) -> &'static str {
        match self {
            Invalid::BadSignature => "bad_signature",
            Invalid::Expired => "expired",
            Invalid::Malformed => "malformed",
            Invalid::Issuer => "issuer",
            Invalid::Audience => "audience",
            Invalid::Algorithm => "algorithm",
        }
    }
}

/// Signs and checks tokens with one secret.
#[derive(Clone)]
pub struct JwtKeys {
    enc: EncodingKey,
    dec: DecodingKey,
    issuer: String,
    audience: String,
}

impl JwtKeys {
    /// Keys from the secret's material and the configured iss/aud.
    pub fn new(secret: &[u8], issuer: &str, audience: &str) -> Self {
        JwtKeys {
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
            issuer: issuer.into(),
            audience: audience.into(),
        }
    }

    /// A token for session `sid` of user `sub`, valid until `exp` (seconds).
    pub fn issue(&self, sub: &str, sid: &str, iat: i64, exp: i64) -> String {
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: sub.into(),
            sid: sid.into(),
            iat,
            exp,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.enc).unwrap_or_default()
    }

    /// The claims of a valid token.
    pub fn verify(&self, token: &str) -> Result<Claims, Invalid> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Invalid::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| Invalid::Malformed)?;
        if header.alg != Algorithm::HS256 {
            return Err(Invalid::Algorithm);
        }
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = LEEWAY_SECS;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        match jsonwebtoken::decode::<Claims>(token, &self.dec, &v) {
            Ok(d) => Ok(d.claims),
            Err(e) => Err(match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => Invalid::BadSignature,
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Invalid::Expired,
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => Invalid::Issuer,
                jsonwebtoken::errors::ErrorKind::InvalidAudience => Invalid::Audience,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => Invalid::Algorithm,
                _ => Invalid::Malformed,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn now() -> i64 {
        crate::store::now_ms() / 1000
    }

    fn keys() -> JwtKeys {
        JwtKeys::new(&[7u8; 48], "rustchat", "rustchat")
    }

    #[test]
    fn issued_token_verifies_with_its_claims() {
        let t = keys().issue("u1", "s1", now(), now() + 60);
        let c = keys().verify(&t).unwrap();
        assert_eq!((c.sub.as_str(), c.sid.as_str()), ("u1", "s1"));
    }

    #[test]
    fn wrong_secret_issuer_audience_and_expiry_are_refused() {
        let t = keys().issue("u", "s", now(), now() + 60);
        let other = JwtKeys::new(&[8u8; 48], "rustchat", "rustchat");
        assert_eq!(other.verify(&t).unwrap_err(), Invalid::BadSignature);
        let iss = JwtKeys::new(&[7u8; 48], "evil", "rustchat").issue("u", "s", now(), now() + 60);
        assert_eq!(keys().verify(&iss).unwrap_err(), Invalid::Issuer);
        let aud = JwtKeys::new(&[7u8; 48], "rustchat", "evil").issue("u", "s", now(), now() + 60);
        assert_eq!(keys().verify(&aud).unwrap_err(), Invalid::Audience);
        let old = keys().issue("u", "s", now() - 7200, now() - 3600);
        assert_eq!(keys().verify(&old).unwrap_err(), Invalid::Expired);
    }

    #[test]
    fn alg_none_and_hs512_are_refused_as_algorithm() {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims = format!(
            r#"{{"iss":"rustchat","aud":"rustchat","sub":"u","sid":"s","iat":{},"exp":{}}}"#,
            now(),
            now() + 60
        );
        let none = format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(&claims)
        );
        assert!(keys().verify(&none).is_err());
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &serde_json::from_str::<Claims>(&claims).unwrap(),
            &EncodingKey::from_secret(&[7u8; 48]),
        )
        .unwrap();
        assert_eq!(keys().verify(&hs512).unwrap_err(), Invalid::Algorithm);
    }

    #[test]
    fn garbage_and_oversized_tokens_are_malformed() {
        assert_eq!(keys().verify("abc").unwrap_err(), Invalid::Malformed);
        assert_eq!(
            keys().verify(&"a".repeat(5000)).unwrap_err(),
            Invalid::Malformed
        );
    }
}
