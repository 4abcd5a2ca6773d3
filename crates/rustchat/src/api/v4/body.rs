//! v4 request bodies: parsed whatever the `Content-Type` (the client is inconsistent about
//! it), unknown fields ignored (Mattermost's behaviour), errors the Mattermost way.

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::api::json::{JSON_LIMIT, POST_LIMIT, parse, read_limited};
use crate::error::V4Error;

/// A JSON body with the default cap.
pub struct V4Body<T>(pub T);
/// A JSON body with the post cap.
pub struct V4PostBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for V4Body<T> {
    type Rejection = V4Error;
    async fn from_request(req: Request, _: &S) -> Result<Self, V4Error> {
        let bytes = read_limited(req, JSON_LIMIT).await?;
        Ok(V4Body(parse(&bytes)?))
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for V4PostBody<T> {
    type Rejection = V4Error;
    async fn from_request(req: Request, _: &S) -> Result<Self, V4Error> {
        let bytes = read_limited(req, POST_LIMIT).await?;
        Ok(V4PostBody(parse(&bytes)?))
    }
}
