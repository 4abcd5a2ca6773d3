//! JSON request bodies (CHAT-R6): size-capped, strictly typed, errors as our JSON.
//!
//! [`Body`] reads at most the route's limit (64 KiB, 128 KiB on post and webhook routes),
//! parses with serde (native request types deny unknown fields) and reports the failing
//! path: a syntax error is 400 `invalid_json`, a wrong type or unknown field is 400
//! `validation_failed` naming the field, an oversize body is 413.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Default JSON body cap.
pub const JSON_LIMIT: usize = 64 * 1024;
/// Cap on post and webhook bodies.
pub const POST_LIMIT: usize = 128 * 1024;

/// A parsed JSON body with the default cap.
pub struct Body<T>(pub T);
/// A parsed JSON body with the post cap.
pub struct PostBody<T>(pub T);

/// Reads up to `limit` bytes of the request body.
pub async fn read_limited(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::too_large(
            format!("request body over {limit} bytes"),
        )),
        Err(_) => Err(ApiError::invalid_json("could not read the request body")),
    }
}

/// True when a JSON text holds a NUL character, raw or escaped.
fn has_nul(bytes: &[u8]) -> bool {
    bytes.contains(&0)
        || bytes
            .windows(6)
            .any(|w| w[0] == b'\\' && w[1] == b'u' && &w[2..5] == b"000" && w[5] == b'0')
}

/// Parses `bytes` as `T`, mapping serde errors to our codes. NUL characters are refused
/// up front: PostgreSQL cannot store them in text, and no field of ours has a use for one.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if has_nul(bytes) {
        return Err(ApiError::validation(
            "body",
            "strings must not contain NUL (\\u0000)",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                Err(ApiError::invalid_json(format!("malformed JSON: {inner}")))
            } else {
                let field = if path == "." { String::new() } else { path };
                let msg = inner.to_string();
                let field = if field.is_empty() {
                    msg.split('`').nth(1).unwrap_or("body").to_string()
                } else {
                    field
                };
                Err(ApiError::validation(field, msg))
            }
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let bytes = read_limited(req, JSON_LIMIT).await?;
        parse(&bytes).map(Body)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for PostBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let bytes = read_limited(req, POST_LIMIT).await?;
        parse(&bytes).map(PostBody)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        name: String,
        n: u32,
    }

    #[test]
    fn syntax_errors_are_invalid_json_and_type_errors_name_the_field() {
        assert_eq!(parse::<T>(b"{").unwrap_err().code, "invalid_json");
        let e = parse::<T>(br#"{"name":"a","n":"x"}"#).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("validation_failed", Some("n"))
        );
        let e = parse::<T>(br#"{"name":"a\u0000","n":1}"#).unwrap_err();
        assert_eq!(e.code, "validation_failed");
        let e = parse::<T>(br#"{"name":"a","n":1,"zzz":1}"#).unwrap_err();
        assert_eq!(e.code, "validation_failed");
        assert!(e.message.contains("zzz"), "{}", e.message);
    }
}
