//! Which requests get the UI, and the handlers that answer them.

use axum::extract::{Path, Request};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, header};

use super::assets;
use crate::error::ApiError;

/// Paths that belong to the API and probes: never answered with `index.html`, so their
/// clients keep JSON errors (CHAT-R6).
pub fn is_api_path(path: &str) -> bool {
    ["/api", "/hooks", "/static"]
        .iter()
        .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
        || path == "/healthz"
        || path == "/readyz"
}

/// Whether an `Accept` header asks for HTML (a media range `text/html`, any parameters,
/// any q other than 0).
fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case("text/html") && !refused
        })
}

/// `index.html` for a UI navigation (a non-API `GET`/`HEAD` accepting HTML), else None
/// (the caller answers its usual 404).
pub fn page_for(req: &Request) -> Option<Response> {
    let navigable = matches!(*req.method(), Method::GET | Method::HEAD)
        && !is_api_path(req.uri().path())
        && accepts_html(req.headers());
    if !navigable {
        return None;
    }
    assets::serve("index.html", req.headers())
}

/// `GET /`.
pub async fn index(headers: HeaderMap) -> Response {
    assets::serve("index.html", &headers)
        .unwrap_or_else(|| ApiError::not_found("page").into_response())
}

/// `GET /static/{*path}`.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    assets::serve(&format!("static/{path}"), &headers)
        .unwrap_or_else(|| ApiError::not_found("asset").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn api_paths() {
        for p in [
            "/api",
            "/api/v1/x",
            "/api/v4/plugins",
            "/hooks/abc",
            "/healthz",
            "/readyz",
            "/static/app.js",
        ] {
            assert!(is_api_path(p), "{p}");
        }
        for p in [
            "/",
            "/login",
            "/login/complete",
            "/apix",
            "/hooksy",
            "/healthz/x",
        ] {
            assert!(!is_api_path(p), "{p}");
        }
    }

    #[test]
    fn accept_parsing() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
            accepts_html(&h)
        };
        assert!(with(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(with("TEXT/HTML; charset=utf-8"));
        assert!(!with("application/json"));
        assert!(!with("*/*"));
        assert!(!with("text/html;q=0"));
        assert!(!accepts_html(&HeaderMap::new()));
    }
}
