//! The one place errors become HTTP responses (CHAT-R6, CHAT-R10).
//!
//! Native API: `{"code","message","corr_id"}` plus `"field"` on validation errors.
//! Mattermost v4: `{"id","message","detailed_error","request_id","status_code","is_oauth"}`.
//! Both read the request's correlation id from the task-local scope that ron-kernel's
//! `CorrIdLayer` sets, so handlers never thread it through. 429 and 503 carry
//! `Retry-After`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use ron_kernel::CorrId;
use serde_json::json;

use crate::store::StoreError;

/// `Retry-After` on 503s caused by the database.
pub const DB_RETRY_AFTER_SECS: u32 = 5;

/// An error answer, rendered in the dialect of the API that produced it.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Native error code (`validation_failed`, `not_found`, ...).
    pub code: &'static str,
    /// Human-readable text; never contains secrets or message bodies.
    pub message: String,
    /// The request field at fault, for validation errors.
    pub field: Option<String>,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u32>,
    /// v4 `detailed_error` when it is not derived from `field`.
    pub detail: Option<String>,
}

/// Result of a native handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            detail: None,
        }
    }
    /// 400 `validation_failed` naming `field`.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "validation_failed", message);
        e.field = Some(field.into());
        e
    }
    /// 400 `invalid_json`.
    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    }
    /// 401 `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
    }
    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    /// 404 `not_found`.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    /// 413 `payload_too_large`.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }
    /// 429 `rate_limited`.
    pub fn rate_limited(retry_after: u32) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Rate limit exceeded",
        );
        e.retry_after = Some(retry_after.max(1));
        e
    }
    /// 503 `unavailable`.
    pub fn unavailable(message: impl Into<String>, retry_after: u32) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
        e.retry_after = Some(retry_after);
        e
    }
    /// 500 `internal`; the detail goes to the log, not the client.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    fn headers(&self, resp: &mut Response) {
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
    }

    /// The Mattermost error id for this error.
    pub fn v4_id(&self) -> &'static str {
        match self.status {
            StatusCode::UNAUTHORIZED if self.code == "bad_login" => {
                "api.user.login.invalid_credentials_email_username"
            }
            StatusCode::UNAUTHORIZED => "api.context.session_expired.app_error",
            StatusCode::FORBIDDEN => "api.context.permissions.app_error",
            StatusCode::NOT_FOUND => "api.rustchat.not_found.app_error",
            StatusCode::TOO_MANY_REQUESTS => "api.context.rate_limited.app_error",
            StatusCode::SERVICE_UNAVAILABLE => "api.rustchat.unavailable.app_error",
            StatusCode::NOT_IMPLEMENTED => "api.rustchat.not_implemented.app_error",
            StatusCode::METHOD_NOT_ALLOWED => "api.rustchat.method_not_allowed.app_error",
            s if s.is_server_error() => "api.rustchat.internal.app_error",
            _ => "api.context.invalid_param.app_error",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found("resource"),
            StoreError::Conflict(what) => ApiError::conflict(what),
            StoreError::Forbidden => ApiError::forbidden("not allowed"),
            StoreError::Invalid { field, message } => ApiError::validation(field, message),
            StoreError::Unavailable(detail) => {
                tracing::error!(detail = %detail, "database error: pool timed out while waiting for an open connection");
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "db_unavailable",
                    "database unavailable",
                );
                e.retry_after = Some(DB_RETRY_AFTER_SECS);
                e
            }
            StoreError::Other(detail) => {
                tracing::error!(detail = %detail, "database error");
                ApiError::internal()
            }
        }
    }
}

fn corr() -> String {
    CorrId::current()
        .map(|c| c.as_str().to_string())
        .unwrap_or_default()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"code": self.code, "message": self.message, "corr_id": corr()});
        if let Some(f) = &self.field {
            body["field"] = json!(f);
        }
        let mut resp = (self.status, Json(body)).into_response();
        self.headers(&mut resp);
        resp
    }
}

/// An [`ApiError`] rendered the Mattermost way (for `/api/v4`), with an optional
/// `detailed_error`.
#[derive(Debug, Clone)]
pub struct V4Error(pub ApiError);

impl V4Error {
    /// Sets `detailed_error`.
    pub fn with_detail(mut self, detail: String) -> Self {
        self.0.detail = Some(detail);
        self
    }
}

/// Result of a v4 handler.
pub type V4Result<T> = Result<T, V4Error>;

impl From<ApiError> for V4Error {
    fn from(e: ApiError) -> Self {
        V4Error(e)
    }
}

impl From<StoreError> for V4Error {
    fn from(e: StoreError) -> Self {
        V4Error(e.into())
    }
}

impl IntoResponse for V4Error {
    fn into_response(self) -> Response {
        let e = self.0;
        let detailed = match (&e.detail, &e.field) {
            (Some(d), _) => d.clone(),
            (None, Some(f)) => format!("{f}: {}", e.message),
            (None, None) => String::new(),
        };
        let body = json!({
            "id": e.v4_id(),
            "message": e.message,
            "detailed_error": detailed,
            "request_id": corr(),
            "status_code": e.status.as_u16(),
            "is_oauth": false,
        });
        let mut resp = (e.status, Json(body)).into_response();
        e.headers(&mut resp);
        resp
    }
}
