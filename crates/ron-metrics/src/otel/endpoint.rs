//! `RON_OTEL_ENDPOINT`: which OTLP transport to use and where, parsed once at `build()` so a
//! bad value is a config error instead of a stream of failed exports.

use base64::Engine as _;
use http::{HeaderValue, Uri};
use percent_encoding::percent_decode_str;

/// Path HTTP/protobuf exports go to when the URL names none.
pub const OTLP_HTTP_PATH: &str = "/v1/metrics";

const EXPECTED: &str =
    "expected grpc://host:port, grpcs://host:port, http(s)://host[:port][/path] or host:port";

/// How exports reach the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// OTLP/gRPC (`grpc://`, `grpcs://`).
    Grpc,
    /// OTLP HTTP/protobuf (`http://`, `https://`).
    Http,
    /// Bare `host:port`: gRPC until the first answer shows the peer does not speak it.
    GrpcThenHttp,
}

/// A parsed collector endpoint.
#[derive(Debug, Clone)]
pub(crate) struct OtelEndpoint {
    pub(crate) transport: Transport,
    /// `scheme://host:port` without credentials: the gRPC origin.
    pub(crate) origin: Uri,
    /// Where HTTP/protobuf POSTs go (also set for gRPC endpoints, for the fallback).
    pub(crate) http_url: Uri,
    /// Whether the connection uses TLS.
    pub(crate) tls: bool,
    /// `Basic …` from the URL's `user:password@`, sent instead of left in the URL.
    pub(crate) authorization: Option<HeaderValue>,
    /// The endpoint as logged: no user info, no query.
    pub(crate) redacted: String,
}

impl OtelEndpoint {
    /// Parses one of the forms in [`EXPECTED`]; the error says why, never echoing secrets
    /// beyond what the caller already holds.
    pub(crate) fn parse(raw: &str) -> Result<OtelEndpoint, String> {
        let raw = raw.trim();
        let (scheme, rest) = match raw.split_once("://") {
            Some((s, rest)) => (Some(s.to_ascii_lowercase()), rest),
            None => (None, raw),
        };
        let (transport, tls) = match scheme.as_deref() {
            Some("grpc") => (Transport::Grpc, false),
            Some("grpcs") => (Transport::Grpc, true),
            Some("http") => (Transport::Http, false),
            Some("https") => (Transport::Http, true),
            Some(other) => return Err(format!("unknown scheme `{other}`; {EXPECTED}")),
            None => (Transport::GrpcThenHttp, false),
        };
        let http_scheme = if tls { "https" } else { "http" };
        let uri: Uri = format!("{http_scheme}://{rest}")
            .parse()
            .map_err(|e| format!("not a URL ({e}); {EXPECTED}"))?;
        let authority = uri
            .authority()
            .ok_or_else(|| format!("no host; {EXPECTED}"))?;
        let host = authority.host();
        if host.is_empty() {
            return Err(format!("no host; {EXPECTED}"));
        }
        let port = match (authority.port_u16(), transport) {
            (Some(p), _) => p,
            (None, Transport::Http) => {
                if tls {
                    443
                } else {
                    80
                }
            }
            (None, _) => return Err(format!("no port; {EXPECTED}")),
        };
        // `http::Uri` reports "/" for an absent path, so look at the raw text instead.
        let has_path = rest.contains('/') || rest.contains('?');
        if has_path && transport != Transport::Http {
            return Err(format!("a gRPC endpoint has no path or query; {EXPECTED}"));
        }
        let origin: Uri = format!("{http_scheme}://{host}:{port}")
            .parse()
            .map_err(|e| format!("not a URL ({e}); {EXPECTED}"))?;
        let path_and_query = match uri.path_and_query().map(|p| p.as_str()) {
            Some(p) if has_path && p != "/" => p.to_owned(),
            _ => OTLP_HTTP_PATH.to_owned(),
        };
        let http_url: Uri = format!("{origin}{}", path_and_query.trim_start_matches('/'))
            .parse()
            .map_err(|e| format!("not a URL ({e}); {EXPECTED}"))?;
        let authorization = basic_auth(authority.as_str())?;
        let shown_scheme = scheme
            .as_deref()
            .map(|s| format!("{s}://"))
            .unwrap_or_default();
        let shown_path = if has_path { uri.path() } else { "" };
        Ok(OtelEndpoint {
            transport,
            origin,
            http_url,
            tls,
            authorization,
            redacted: format!("{shown_scheme}{host}:{port}{shown_path}"),
        })
    }
}

/// `raw` with any `user:password@` replaced by `***@`, for config error lines, which echo
/// the value even when it does not parse.
pub(crate) fn redact_raw(raw: &str) -> String {
    let (scheme, rest) = match raw.split_once("://") {
        Some((s, rest)) => (&raw[..s.len() + 3], rest),
        None => ("", raw),
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}***{}", &rest[at..]),
        None => raw.to_owned(),
    }
}

/// `Basic base64(user:password)` from the authority's user info, percent-decoded.
fn basic_auth(authority: &str) -> Result<Option<HeaderValue>, String> {
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return Ok(None);
    };
    let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let decode = |s: &str| {
        percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| "user info is not UTF-8 after percent-decoding".to_owned())
    };
    let plain = format!("{}:{}", decode(user)?, decode(pass)?);
    let encoded = base64::engine::general_purpose::STANDARD.encode(plain);
    let mut value = HeaderValue::try_from(format!("Basic {encoded}"))
        .map_err(|_| "user info makes an invalid Authorization header".to_owned())?;
    value.set_sensitive(true);
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> OtelEndpoint {
        OtelEndpoint::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn grpc_schemes_pick_grpc_with_and_without_tls() {
        let e = ok("grpc://collector:4317");
        assert_eq!(e.transport, Transport::Grpc);
        assert!(!e.tls);
        assert_eq!(e.origin.to_string(), "http://collector:4317/");
        let e = ok("GRPCS://collector:4317");
        assert_eq!(e.transport, Transport::Grpc);
        assert!(e.tls);
        assert_eq!(e.origin.to_string(), "https://collector:4317/");
    }

    #[test]
    fn http_schemes_post_to_v1_metrics_unless_a_path_is_given() {
        let e = ok("http://c:4318");
        assert_eq!(e.transport, Transport::Http);
        assert_eq!(e.http_url.to_string(), "http://c:4318/v1/metrics");
        assert_eq!(
            ok("http://c:4318/").http_url.to_string(),
            "http://c:4318/v1/metrics"
        );
        let e = ok("https://c:4318/otlp/v1/metrics?tenant=a");
        assert!(e.tls);
        assert_eq!(
            e.http_url.to_string(),
            "https://c:4318/otlp/v1/metrics?tenant=a"
        );
        assert_eq!(
            ok("https://c").http_url.to_string(),
            "https://c:443/v1/metrics"
        );
    }

    #[test]
    fn bare_host_port_tries_grpc_then_http_on_the_same_address() {
        let e = ok("127.0.0.1:4317");
        assert_eq!(e.transport, Transport::GrpcThenHttp);
        assert_eq!(e.origin.to_string(), "http://127.0.0.1:4317/");
        assert_eq!(e.http_url.to_string(), "http://127.0.0.1:4317/v1/metrics");
        assert_eq!(ok("[::1]:4317").origin.to_string(), "http://[::1]:4317/");
    }

    #[test]
    fn garbage_is_rejected_with_the_expected_forms() {
        for raw in [
            "",
            "not a url",
            "collector",
            "ftp://c:21",
            "grpc://c",
            "grpc://c:4317/path",
            "c:4317/path",
            "c:notaport",
            "http://",
            "grpc://:4317",
        ] {
            let err = OtelEndpoint::parse(raw).expect_err(raw);
            assert!(err.contains("expected grpc://"), "{raw}: {err}");
        }
    }

    #[test]
    fn credentials_become_basic_auth_and_never_reach_the_logged_form() {
        let e = ok("https://user:p%40ss@c:4318/v1/metrics?token=s3cret");
        assert_eq!(e.redacted, "https://c:4318/v1/metrics");
        assert!(!e.http_url.to_string().contains("user"));
        assert!(!e.origin.to_string().contains("user"));
        let auth = e.authorization.expect("basic auth");
        assert!(auth.is_sensitive());
        let encoded = auth.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let plain = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        assert_eq!(plain, b"user:p@ss");
        assert_eq!(ok("grpc://u:pw@c:4317").redacted, "grpc://c:4317");
        assert_eq!(ok("u:pw@c:4317").redacted, "c:4317");
    }

    #[test]
    fn config_errors_echo_the_value_without_credentials() {
        assert_eq!(redact_raw("grpc://u:pw@c"), "grpc://***@c");
        assert_eq!(redact_raw("u:pw@c:x/p@q"), "***@c:x/p@q");
        assert_eq!(redact_raw("http://c:1/a@b"), "http://c:1/a@b");
    }
}
