//! ID token verification (CHAT-R22): the rules an ID token must pass before rustchat trusts
//! the identity in it.
//!
//! Signature: the header's `alg` must be RS256 or ES256 (so `none` and every HS* are
//! refused before any key is looked at: an HMAC "signature" keyed with a public value would
//! prove nothing), and the key is the provider JWKS entry with the header's `kid` whose key
//! type fits the algorithm. Claims: `iss` equals the provider's issuer, `aud` contains our
//! client id, `azp` (required when there are several audiences) is our client id, `exp` has
//! not passed (30 s leeway for clock skew), `iat` is within 60 s of now (an old token
//! replayed into a fresh flow is refused), and `nonce` equals the one bound to this login's
//! state. Email rules (`email_verified`, allowed domains) are the caller's, on the returned
//! [`Identity`].

use std::collections::HashSet;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

/// Leeway on `exp` for clock skew between us and the provider.
pub const EXP_LEEWAY_SECS: u64 = 30;
/// `iat` must be within this many seconds of now, either way.
pub const IAT_WINDOW_SECS: i64 = 60;

/// What the caller expects of the token.
pub struct Expect<'a> {
    /// The provider's issuer identifier (from discovery, equal to the configured one).
    pub issuer: &'a str,
    /// Our client id.
    pub client_id: &'a str,
    /// The nonce sent in this login's authorization request.
    pub nonce: &'a str,
    /// Now, in epoch seconds.
    pub now_secs: i64,
}

/// The verified identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `sub`: the provider's stable id for the user.
    pub subject: String,
    /// `email`, lower-cased; empty when absent.
    pub email: String,
    /// `email_verified` (booleans and the strings "true"/"false" are accepted).
    pub email_verified: bool,
    /// `preferred_username`, if any.
    pub preferred_username: Option<String>,
    /// `name`, if any.
    pub name: Option<String>,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWS compact token, or its header cannot be read.
    #[error("ID token is malformed")]
    Malformed,
    /// `alg` is not RS256/ES256.
    #[error("ID token algorithm {0} is not accepted (RS256 and ES256 only)")]
    Algorithm(String),
    /// No JWKS key has this `kid` (the caller may refetch the JWKS once).
    #[error("ID token key id is not in the provider's JWKS")]
    UnknownKey,
    /// Bad signature, or the standard claims failed (iss, aud, exp).
    #[error("ID token rejected: {0}")]
    Invalid(String),
    /// A claim rule beyond the standard ones failed.
    #[error("ID token claim {0} is wrong")]
    Claim(&'static str),
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    aud: Audience,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<Value>,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Audience {
    // Only the count matters here (jsonwebtoken checks membership); arrays first, since
    // an untagged `IgnoredAny` accepts anything.
    Many(Vec<serde::de::IgnoredAny>),
    One(serde::de::IgnoredAny),
    #[default]
    None,
}

impl Audience {
    fn len(&self) -> usize {
        match self {
            Audience::One(_) => 1,
            Audience::Many(v) => v.len(),
            Audience::None => 0,
        }
    }
}

/// Parses a JWKS document leniently: keys jsonwebtoken cannot represent are skipped
/// rather than making the whole set unusable.
pub fn parse_jwks(body: &[u8]) -> Result<Vec<Jwk>, String> {
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<Value>,
    }
    let set: Set = serde_json::from_slice(body).map_err(|e| format!("JWKS is not valid: {e}"))?;
    Ok(set
        .keys
        .into_iter()
        .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
        .collect())
}

/// The header's `kid`, if the token has a readable header.
pub fn key_id(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok()?.kid
}

/// Verifies `token` against `keys` and `expect`.
pub fn verify(token: &str, keys: &[Jwk], expect: &Expect<'_>) -> Result<Identity, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    let alg = header.alg;
    if !matches!(alg, Algorithm::RS256 | Algorithm::ES256) {
        return Err(TokenError::Algorithm(format!("{alg:?}")));
    }
    let fits = |k: &&Jwk| match (&k.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        _ => false,
    };
    let key = match &header.kid {
        Some(kid) => keys
            .iter()
            .filter(fits)
            .find(|k| k.common.key_id.as_deref() == Some(kid.as_str())),
        // Without a kid the key must be unambiguous.
        None => {
            let mut candidates = keys.iter().filter(fits);
            match (candidates.next(), candidates.next()) {
                (Some(k), None) => Some(k),
                _ => None,
            }
        }
    }
    .ok_or(TokenError::UnknownKey)?;
    let decoding = DecodingKey::from_jwk(key).map_err(|e| TokenError::Invalid(e.to_string()))?;
    let mut v = Validation::new(alg);
    v.leeway = EXP_LEEWAY_SECS;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.set_issuer(&[expect.issuer]);
    v.set_audience(&[expect.client_id]);
    v.required_spec_claims = ["exp", "iss", "aud", "sub"]
        .into_iter()
        .map(String::from)
        .collect::<HashSet<_>>();
    let data = jsonwebtoken::decode::<Claims>(token, &decoding, &v)
        .map_err(|e| TokenError::Invalid(e.to_string()))?;
    let c = data.claims;
    match (&c.azp, c.aud.len()) {
        (Some(azp), _) if azp != expect.client_id => return Err(TokenError::Claim("azp")),
        (None, n) if n > 1 => return Err(TokenError::Claim("azp")),
        _ => {}
    }
    let iat = c.iat.ok_or(TokenError::Claim("iat"))?;
    if (expect.now_secs - iat).abs() > IAT_WINDOW_SECS {
        return Err(TokenError::Claim("iat"));
    }
    let nonce_ok = c
        .nonce
        .as_deref()
        .is_some_and(|n| constant_time_eq(n.as_bytes(), expect.nonce.as_bytes()));
    if !nonce_ok {
        return Err(TokenError::Claim("nonce"));
    }
    if c.sub.is_empty() || c.sub.len() > 255 {
        return Err(TokenError::Claim("sub"));
    }
    let email_verified = match &c.email_verified {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    Ok(Identity {
        subject: c.sub,
        email: c.email.unwrap_or_default().trim().to_lowercase(),
        email_verified,
        preferred_username: c.preferred_username,
        name: c.name,
    })
}

/// Equality that takes the same time wherever the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn unsigned(alg: &str, claims: &Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"k1"}}"#));
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        format!("{h}.{p}.")
    }

    fn expect() -> Expect<'static> {
        Expect {
            issuer: "https://id.example",
            client_id: "rustchat",
            nonce: "n-1",
            now_secs: 1_700_000_000,
        }
    }

    fn hmac_jwk() -> Jwk {
        serde_json::from_value(serde_json::json!({
            "kty": "oct", "kid": "k1", "k": URL_SAFE_NO_PAD.encode(b"0123456789abcdef0123456789abcdef")
        }))
        .unwrap()
    }

    #[test]
    fn alg_none_and_hmac_are_refused_before_any_key_is_used() {
        let claims = serde_json::json!({"sub": "u", "iss": "https://id.example", "aud": "rustchat",
            "exp": 1_800_000_000, "iat": 1_700_000_000, "nonce": "n-1"});
        for alg in ["none", "HS256", "HS512"] {
            let err = verify(&unsigned(alg, &claims), &[hmac_jwk()], &expect()).unwrap_err();
            assert!(
                matches!(err, TokenError::Algorithm(_) | TokenError::Malformed),
                "{alg}: {err:?}"
            );
        }
        // An HS256 token really signed with a key the JWKS publishes is still refused.
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert!(matches!(
            verify(&token, &[hmac_jwk()], &expect()),
            Err(TokenError::Algorithm(_))
        ));
    }

    #[test]
    fn an_rs256_token_without_a_matching_key_is_unknown_key() {
        let claims = serde_json::json!({"sub": "u"});
        let err = verify(&unsigned("RS256", &claims), &[hmac_jwk()], &expect()).unwrap_err();
        assert_eq!(err, TokenError::UnknownKey);
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for t in ["", ".", "a.b.c", "e30.e30.", "\u{0}", "x.y"] {
            assert!(verify(t, &[], &expect()).is_err(), "{t:?}");
        }
    }

    #[test]
    fn jwks_parsing_skips_unknown_keys() {
        let body = br#"{"keys":[{"kty":"weird"},{"kty":"RSA","kid":"a","n":"sXch","e":"AQAB"}]}"#;
        let keys = parse_jwks(body).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].common.key_id.as_deref(), Some("a"));
        assert!(parse_jwks(b"not json").is_err());
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
