//! Responses sentinel generates itself (spec §3.1 SEN-R19): status, JSON `code`, a fixed
//! message that names the route or upstream but never a target address, and the headers
//! every such response carries (`Content-Type: application/json`, `X-Correlation-Id`,
//! `Retry-After` on 429 and 503).

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::proxy::ProxyBody;

/// Every error answer sentinel generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// 400 `bad_request`.
    BadRequest,
    /// 400 `invalid_path`.
    InvalidPath,
    /// 404 `no_route`.
    NoRoute,
    /// 405 `method_not_allowed`.
    MethodNotAllowed,
    /// 408 `request_timeout`.
    RequestTimeout,
    /// 413 `body_too_large`.
    BodyTooLarge,
    /// 414 `uri_too_long`.
    UriTooLong,
    /// 429 `rate_limited`, with the seconds until a token is available.
    RateLimited(u64),
    /// 501 `upgrade_not_supported`.
    UpgradeNotSupported,
    /// 502 `upstream_connect_failed`.
    UpstreamConnectFailed,
    /// 502 `upstream_closed`.
    UpstreamClosed,
    /// 502 `upstream_protocol_error`.
    UpstreamProtocolError,
    /// 503 `no_healthy_upstream`.
    NoHealthyUpstream,
    /// 503 `pool_exhausted`.
    PoolExhausted,
    /// 503 `overloaded`.
    Overloaded,
    /// 504 `upstream_connect_timeout`.
    UpstreamConnectTimeout,
    /// 504 `upstream_timeout`.
    UpstreamTimeout,
}

impl ProxyError {
    /// HTTP status.
    pub fn status(self) -> StatusCode {
        use ProxyError::*;
        let code = match self {
            BadRequest | InvalidPath => 400,
            NoRoute => 404,
            MethodNotAllowed => 405,
            RequestTimeout => 408,
            BodyTooLarge => 413,
            UriTooLong => 414,
            RateLimited(_) => 429,
            UpgradeNotSupported => 501,
            UpstreamConnectFailed | UpstreamClosed | UpstreamProtocolError => 502,
            NoHealthyUpstream | PoolExhausted | Overloaded => 503,
            UpstreamConnectTimeout | UpstreamTimeout => 504,
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// JSON `code`, also the access log's `error`.
    pub fn code(self) -> &'static str {
        use ProxyError::*;
        match self {
            BadRequest => "bad_request",
            InvalidPath => "invalid_path",
            NoRoute => "no_route",
            MethodNotAllowed => "method_not_allowed",
            RequestTimeout => "request_timeout",
            BodyTooLarge => "body_too_large",
            UriTooLong => "uri_too_long",
            RateLimited(_) => "rate_limited",
            UpgradeNotSupported => "upgrade_not_supported",
            UpstreamConnectFailed => "upstream_connect_failed",
            UpstreamClosed => "upstream_closed",
            UpstreamProtocolError => "upstream_protocol_error",
            NoHealthyUpstream => "no_healthy_upstream",
            PoolExhausted => "pool_exhausted",
            Overloaded => "overloaded",
            UpstreamConnectTimeout => "upstream_connect_timeout",
            UpstreamTimeout => "upstream_timeout",
        }
    }

    /// The fixed message; `subject` is the route or upstream name it concerns, if any.
    pub fn message(self, subject: &str) -> String {
        use ProxyError::*;
        match self {
            BadRequest => "the request is malformed".into(),
            InvalidPath => "the request path contains a dot segment or NUL".into(),
            NoRoute => "no route matches this request".into(),
            MethodNotAllowed => "this method is not allowed here".into(),
            RequestTimeout => "the request body stalled".into(),
            BodyTooLarge => "the request body is larger than allowed".into(),
            UriTooLong => "the request URI is longer than allowed".into(),
            RateLimited(_) => format!("rate limit of route {subject} exceeded"),
            UpgradeNotSupported => format!("upstream {subject} cannot carry protocol upgrades"),
            UpstreamConnectFailed => format!("could not connect to upstream {subject}"),
            UpstreamClosed => format!("upstream {subject} closed the connection"),
            UpstreamProtocolError => format!("upstream {subject} sent an invalid response"),
            NoHealthyUpstream => format!("upstream {subject} has no healthy target"),
            PoolExhausted => format!("upstream {subject} has no free connection"),
            Overloaded => "the proxy is at its in-flight request limit".into(),
            UpstreamConnectTimeout => format!("connecting to upstream {subject} timed out"),
            UpstreamTimeout => format!("upstream {subject} did not answer in time"),
        }
    }

    /// `Retry-After` seconds (429 and 503 only).
    pub fn retry_after(self) -> Option<u64> {
        match self {
            ProxyError::RateLimited(s) => Some(s.max(1)),
            ProxyError::NoHealthyUpstream | ProxyError::PoolExhausted | ProxyError::Overloaded => {
                Some(1)
            }
            _ => None,
        }
    }

    /// Whether the connection must close after this answer (framing can no longer be
    /// trusted).
    pub fn closes(self) -> bool {
        matches!(self, ProxyError::BadRequest)
    }

    /// The JSON answer with its headers.
    pub fn response(self, subject: &str, corr: &HeaderValue) -> Response<ProxyBody> {
        let body = serde_json::json!({
            "code": self.code(),
            "message": self.message(subject),
            "corr_id": corr.to_str().unwrap_or_default(),
        })
        .to_string();
        let mut resp = Response::new(
            Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed(),
        );
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(crate::forward::X_CORRELATION_ID, corr.clone());
        if let Some(s) = self.retry_after() {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self == ProxyError::MethodNotAllowed {
            h.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        if self.closes() {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}
