//! The one place that maps svc-edge outcomes to HTTP statuses (spec §3.3): status, JSON
//! `code`, the `reason` used for `X-Reason`, logs and `rejected_total`, a fixed message
//! (never a path, OS error or upstream body) and `Retry-After`.

/// Every error answer svc-edge gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeError {
    /// 400 `bad_path`.
    BadPath,
    /// 400 `bad_request` (bad z/x/y, ext, hex, query or missing Host).
    BadRequest,
    /// 403 `not_allowed`.
    NotAllowed,
    /// 403 `not_allowed`, detail `private_address`: the live host resolves only to
    /// non-public addresses.
    PrivateAddress,
    /// 403 `cors`.
    Cors,
    /// 404.
    NotFound,
    /// 405 `method`.
    Method,
    /// 406 `decompress_cap`.
    DecompressCap,
    /// 412.
    PreconditionFailed,
    /// 413 `body_cap`.
    BodyTooLarge,
    /// 414 (reason `bad_path`).
    UriTooLong,
    /// 416 `invalid_range`.
    RangeNotSatisfiable,
    /// 429 `rate_limit` with the seconds to the next token.
    RateLimit(u64),
    /// 429 `busy`.
    Busy,
    /// 500 `integrity`.
    Integrity,
    /// 500 `internal`.
    Internal,
    /// 503 `timeout`.
    Timeout,
    /// 503 `io`.
    Io,
    /// 503 `amnesia`.
    Amnesia,
    /// 503 `draining`.
    Draining,
    /// 503 `not_ready`.
    NotReady,
    /// 502 `upstream`, reason `upstream_4xx`: the origin answered a 4xx other than 404/410.
    Upstream4xx,
    /// 502 `upstream`, reason `upstream_5xx`: the origin answered 5xx, after retries.
    Upstream5xx,
    /// 502 `upstream`: TLS, DNS, connect, redirect or content-encoding failure.
    Upstream,
    /// 502 `digest_mismatch`: the fetched bytes differ from `?b3=`.
    DigestMismatch,
    /// 502 `too_large`: the origin object is over `max_object_bytes`.
    TooLarge,
}

impl EdgeError {
    /// HTTP status.
    pub fn status(self) -> u16 {
        use EdgeError::*;
        match self {
            BadPath | BadRequest => 400,
            NotAllowed | PrivateAddress | Cors => 403,
            NotFound => 404,
            Method => 405,
            DecompressCap => 406,
            PreconditionFailed => 412,
            BodyTooLarge => 413,
            UriTooLong => 414,
            RangeNotSatisfiable => 416,
            RateLimit(_) | Busy => 429,
            Integrity | Internal => 500,
            Upstream4xx | Upstream5xx | Upstream | DigestMismatch | TooLarge => 502,
            Timeout | Io | Amnesia | Draining | NotReady => 503,
        }
    }

    /// The JSON `code`.
    pub fn code(self) -> &'static str {
        use EdgeError::*;
        match self {
            BadPath | BadRequest => "bad_request",
            NotAllowed | PrivateAddress | Cors => "not_allowed",
            NotFound => "not_found",
            Method => "method_not_allowed",
            DecompressCap => "not_acceptable",
            PreconditionFailed => "precondition_failed",
            BodyTooLarge => "body_too_large",
            UriTooLong => "uri_too_long",
            RangeNotSatisfiable => "range_not_satisfiable",
            RateLimit(_) => "rate_limit",
            Busy => "busy",
            Integrity => "integrity",
            Internal => "internal",
            Timeout => "timeout",
            Io => "io",
            Amnesia => "amnesia",
            Draining => "draining",
            NotReady => "not_ready",
            Upstream4xx | Upstream5xx | Upstream => "upstream",
            DigestMismatch => "digest_mismatch",
            TooLarge => "too_large",
        }
    }

    /// The `reason` (`X-Reason`, logs, `rejected_total`); `None` for 404 and 412.
    pub fn reason(self) -> Option<&'static str> {
        use EdgeError::*;
        Some(match self {
            NotFound | PreconditionFailed => return None,
            BadPath | UriTooLong => "bad_path",
            BadRequest => "bad_request",
            NotAllowed | PrivateAddress => "not_allowed",
            Cors => "cors",
            Method => "method",
            DecompressCap => "decompress_cap",
            BodyTooLarge => "body_cap",
            RangeNotSatisfiable => "invalid_range",
            RateLimit(_) => "rate_limit",
            Busy => "busy",
            Integrity => "integrity",
            Internal => "internal",
            Timeout => "timeout",
            Io => "io",
            Amnesia => "amnesia",
            Draining => "draining",
            NotReady => "not_ready",
            Upstream4xx => "upstream_4xx",
            Upstream5xx => "upstream_5xx",
            Upstream => "upstream",
            DigestMismatch => "digest_mismatch",
            TooLarge => "too_large",
        })
    }

    /// A fixed sentence; never request data.
    pub fn message(self) -> &'static str {
        use EdgeError::*;
        match self {
            BadPath => "The request path is malformed.",
            BadRequest => "The request is malformed.",
            NotAllowed | PrivateAddress => "The origin is not allowed.",
            Cors => "The requesting origin is not allowed.",
            NotFound => "No such object.",
            Method => "Only GET and HEAD are allowed.",
            DecompressCap => "The stored object cannot be decoded within the limits.",
            PreconditionFailed => "A precondition failed.",
            BodyTooLarge => "The request body is too large.",
            UriTooLong => "The request path is too long.",
            RangeNotSatisfiable => "No requested range is satisfiable.",
            RateLimit(_) => "Too many requests; retry later.",
            Busy => "The server is busy; retry shortly.",
            Integrity => "The stored object failed its integrity check.",
            Internal => "An internal error occurred.",
            Timeout => "The request timed out.",
            Io => "A storage error occurred.",
            Amnesia => "The object would need persistence, which amnesia mode forbids.",
            Draining => "The server is shutting down.",
            NotReady => "The server is starting.",
            Upstream4xx | Upstream5xx | Upstream => "The origin could not supply the object.",
            DigestMismatch => "The fetched object does not match the requested digest.",
            TooLarge => "The origin object is too large.",
        }
    }

    /// The log `detail` that refines a reason, where the spec names one.
    pub fn detail(self) -> Option<&'static str> {
        match self {
            EdgeError::PrivateAddress => Some("private_address"),
            EdgeError::Amnesia => Some("persistence_required"),
            _ => None,
        }
    }

    /// `Retry-After` seconds, when the spec sets one.
    pub fn retry_after(self) -> Option<u64> {
        use EdgeError::*;
        match self {
            RateLimit(s) => Some(s.max(1)),
            Busy | NotReady => Some(1),
            Timeout => Some(2),
            Io | Draining => Some(5),
            Amnesia => Some(60),
            _ => None,
        }
    }

    /// Whether this answer counts in `rejected_total` (every status ≥ 400 but 404, 412).
    pub fn counts_as_reject(self) -> bool {
        self.reason().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_and_precondition_failed_are_not_rejects() {
        assert!(!EdgeError::NotFound.counts_as_reject());
        assert!(!EdgeError::PreconditionFailed.counts_as_reject());
        assert!(EdgeError::Busy.counts_as_reject());
        assert_eq!(EdgeError::RateLimit(0).retry_after(), Some(1));
        assert_eq!(EdgeError::UriTooLong.reason(), Some("bad_path"));
        assert_eq!(EdgeError::Amnesia.retry_after(), Some(60));
    }

    #[test]
    fn fill_failures_answer_502_with_their_own_reasons() {
        assert_eq!(EdgeError::Upstream4xx.status(), 502);
        assert_eq!(EdgeError::Upstream4xx.code(), "upstream");
        assert_eq!(EdgeError::Upstream4xx.reason(), Some("upstream_4xx"));
        assert_eq!(EdgeError::Upstream5xx.reason(), Some("upstream_5xx"));
        assert_eq!(EdgeError::DigestMismatch.code(), "digest_mismatch");
        assert_eq!(EdgeError::TooLarge.reason(), Some("too_large"));
        assert_eq!(EdgeError::PrivateAddress.status(), 403);
        assert_eq!(EdgeError::PrivateAddress.reason(), Some("not_allowed"));
        assert_eq!(EdgeError::PrivateAddress.detail(), Some("private_address"));
        assert_eq!(EdgeError::Amnesia.detail(), Some("persistence_required"));
    }
}
