//! CORS (spec §3.4): deny by default. With origins configured, listed origins (or `*`)
//! get `Access-Control-Allow-Origin` and the exposed headers, content responses vary on
//! `Origin`, and preflights from listed origins get 204.

use http::header::{self, HeaderMap, HeaderValue};

use crate::errors::EdgeError;

const EXPOSE: &str = "ETag, Content-Range, Content-Length, Accept-Ranges, Last-Modified, X-Corr-ID";
const ALLOW_HEADERS: &str =
    "Range, If-Match, If-None-Match, If-Modified-Since, If-Range, X-Corr-ID";
/// Seconds a browser may cache a preflight.
pub const PREFLIGHT_MAX_AGE_SECS: u32 = 600;

/// The `Access-Control-Allow-Origin` value for `origin`, if CORS allows it.
fn allowed(origins: &[String], origin: Option<&str>) -> Option<HeaderValue> {
    if origins.iter().any(|o| o == "*") {
        return Some(HeaderValue::from_static("*"));
    }
    let origin = origin?;
    origins
        .iter()
        .any(|o| o.eq_ignore_ascii_case(origin))
        .then(|| HeaderValue::from_str(origin).ok())
        .flatten()
}

/// Adds CORS headers to a content response (no-op when no origins are configured).
pub fn decorate(origins: &[String], req: &HeaderMap, resp: &mut HeaderMap) {
    if origins.is_empty() {
        return;
    }
    resp.append(header::VARY, HeaderValue::from_static("Origin"));
    let origin = req.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if let Some(v) = allowed(origins, origin) {
        resp.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        resp.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE),
        );
    }
}

/// Answers an OPTIONS request: `Ok(headers)` for a 204 preflight, else the error
/// (405 when CORS is off, 403 `cors` for an unlisted origin or method).
pub fn preflight(origins: &[String], req: &HeaderMap) -> Result<HeaderMap, EdgeError> {
    if origins.is_empty() {
        return Err(EdgeError::Method);
    }
    let origin = req.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let method_ok = req
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| m == "GET" || m == "HEAD");
    let Some(allow_origin) = allowed(origins, origin).filter(|_| method_ok) else {
        return Err(EdgeError::Cors);
    };
    let mut h = HeaderMap::new();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(PREFLIGHT_MAX_AGE_SECS),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(origin: &str, method: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        if let Some(m) = method {
            h.insert(
                header::ACCESS_CONTROL_REQUEST_METHOD,
                HeaderValue::from_str(m).unwrap(),
            );
        }
        h
    }

    #[test]
    fn cors_is_denied_by_default() {
        let mut resp = HeaderMap::new();
        decorate(&[], &req("https://a.example", None), &mut resp);
        assert!(resp.is_empty());
        assert_eq!(
            preflight(&[], &req("https://a.example", Some("GET"))).err(),
            Some(EdgeError::Method)
        );
    }

    #[test]
    fn listed_origins_are_echoed_and_preflights_answered() {
        let origins = vec!["https://a.example".to_owned()];
        let mut resp = HeaderMap::new();
        decorate(&origins, &req("https://a.example", None), &mut resp);
        assert_eq!(
            resp[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://a.example"
        );
        assert_eq!(resp[header::VARY], "Origin");
        assert!(
            resp[header::ACCESS_CONTROL_EXPOSE_HEADERS]
                .to_str()
                .unwrap()
                .contains("ETag")
        );
        let ok = preflight(&origins, &req("https://a.example", Some("GET"))).unwrap();
        assert_eq!(ok[header::ACCESS_CONTROL_MAX_AGE], "600");
        assert_eq!(
            preflight(&origins, &req("https://b.example", Some("GET"))).err(),
            Some(EdgeError::Cors)
        );
        assert_eq!(
            preflight(&origins, &req("https://a.example", Some("DELETE"))).err(),
            Some(EdgeError::Cors)
        );
        let mut other = HeaderMap::new();
        decorate(&origins, &req("https://b.example", None), &mut other);
        assert!(other.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    }
}
