//! The embedded files and the HTTP caching rules for them (ETag, 304, no-cache, CSP).

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::CSP;

/// Everything under `crates/rustchat/web/`, inside the binary in every build profile.
#[derive(rust_embed::RustEmbed)]
#[folder = "web/"]
struct Files;

/// The content type for a file name (by extension; the UI ships few kinds of files).
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison, as RFC 9110 §13.1.2
/// prescribes for this header; `*` matches any existing file).
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let ours = etag.trim_start_matches("W/");
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || (!tag.is_empty() && tag.trim_start_matches("W/") == ours))
}

/// The strong ETag of some content: the quoted hex of its SHA-256.
fn etag_of(hash: &[u8; 32]) -> String {
    let mut s = String::with_capacity(66);
    s.push('"');
    for b in hash {
        s.push_str(&format!("{b:02x}"));
    }
    s.push('"');
    s
}

/// Adds the headers every UI response carries.
pub fn ui_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

/// The embedded file at `path` (relative to `web/`), honouring `If-None-Match`; None when
/// there is no such file.
pub fn serve(path: &str, request: &HeaderMap) -> Option<Response> {
    let file = Files::get(path)?;
    let etag = etag_of(&file.metadata.sha256_hash());
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, &etag));
    let mut resp = if fresh {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(Body::from(file.data.into_owned()));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(path)),
        );
        r
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    ui_headers(h);
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_by_extension() {
        assert_eq!(
            content_type("static/app.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("static/app.CSS"), "text/css; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("static/favicon.svg"), "image/svg+xml");
        assert_eq!(content_type("static/noext"), "application/octet-stream");
    }

    #[test]
    fn if_none_match_lists_and_weak_forms() {
        let tag = "\"abc\"";
        assert!(etag_matches("\"abc\"", tag));
        assert!(etag_matches("W/\"abc\"", tag));
        assert!(etag_matches("\"x\", \"abc\"", tag));
        assert!(etag_matches("*", tag));
        assert!(!etag_matches("\"abd\"", tag));
        assert!(!etag_matches("", tag));
        assert!(!etag_matches("abc", tag));
    }

    #[test]
    fn shipped_files_are_embedded_and_have_etags() {
        let r = serve("index.html", &HeaderMap::new()).expect("index.html embedded");
        assert_eq!(r.status(), StatusCode::OK);
        let etag = r.headers()[header::ETAG].to_str().unwrap().to_string();
        assert_eq!(etag.len(), 66, "quoted hex SHA-256: {etag}");
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&etag).unwrap());
        let again = serve("index.html", &h).unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        assert!(serve("static/app.js", &HeaderMap::new()).is_some());
        assert!(serve("static/missing.js", &HeaderMap::new()).is_none());
        assert!(serve("static/../index.html", &HeaderMap::new()).is_none());
    }
}
