//! Header rewriting between client and upstream (spec §3.1 SEN-R15, R16; §7): the
//! hop-by-hop set, `X-Forwarded-*`, and the correlation id.
//!
//! What it is for: making the forwarded request and the returned response carry exactly
//! the end-to-end headers, so client framing never reaches the upstream (smuggling) and
//! upstream framing never reaches the client. What it is not for: rejecting requests (the
//! checks run before) or bodies.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `X-Correlation-Id`, the runbook's primary correlation header.
pub const X_CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
/// `X-Corr-ID`, the other services' correlation header, accepted and forwarded too.
pub const X_CORR_ID: HeaderName = HeaderName::from_static("x-corr-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The hop-by-hop headers of RFC 9110 §7.6.1 plus the legacy ones proxies strip.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::EXPECT,
];

/// Removes the hop-by-hop headers and every header named in `Connection`. With
/// `keep_upgrade`, `Connection: upgrade` and `Upgrade` survive (an upgrade request or a
/// 101 answer). With `keep_te_trailers`, `TE: trailers` survives (h2c upstreams).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool, keep_te_trailers: bool) {
    // One pass over the names present first: most messages carry none of these (or only
    // `Connection`), and a removal of an absent name still costs a hashed lookup.
    let present = headers.keys().any(|k| HOP_BY_HOP.contains(k));
    if !present {
        return;
    }
    // Headers named in `Connection`; the hop-by-hop ones among them go below anyway, so
    // only other names are looked up (the usual `keep-alive` costs no allocation).
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| {
            !t.is_empty()
                && !HOP_BY_HOP
                    .iter()
                    .any(|h| h.as_str().eq_ignore_ascii_case(t))
        })
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    let upgrade = if keep_upgrade {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    let te_trailers = keep_te_trailers
        && headers.get_all(header::TE).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
            })
        });
    for name in named {
        headers.remove(&name);
    }
    let hop: Vec<HeaderName> = headers
        .keys()
        .filter(|k| HOP_BY_HOP.contains(k))
        .cloned()
        .collect();
    for name in &hop {
        headers.remove(name);
    }
    if let Some(u) = upgrade {
        headers.insert(header::UPGRADE, u);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Appends the client to `X-Forwarded-For` and sets `X-Forwarded-Proto` and
/// `X-Forwarded-Host` (client values for the last two are replaced, never trusted).
pub fn set_forwarded(
    headers: &mut HeaderMap,
    client: &HeaderValue,
    https: bool,
    authority: Option<&str>,
) {
    let prior: Vec<String> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    if prior.is_empty() {
        headers.insert(X_FORWARDED_FOR, client.clone());
    } else {
        let xff = format!(
            "{}, {}",
            prior.join(", "),
            client.to_str().unwrap_or_default()
        );
        headers.remove(&X_FORWARDED_FOR);
        if let Ok(v) = HeaderValue::from_str(&xff) {
            headers.insert(X_FORWARDED_FOR, v);
        }
    }
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if https { "https" } else { "http" }),
    );
    match authority.and_then(|a| HeaderValue::from_str(a).ok()) {
        Some(v) => {
            headers.insert(X_FORWARDED_HOST, v);
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
}

/// The `X-Forwarded-For` entry of a client, computed once per connection: IPv4-mapped
/// addresses are written as IPv4.
pub fn client_entry(client: IpAddr) -> HeaderValue {
    let client = match client {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    HeaderValue::from_str(&client.to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}

/// The request's correlation id: a valid `X-Correlation-Id` (1–128 of
/// `[A-Za-z0-9._:-]`), else a valid `X-Corr-ID` (1–64 of the same set), else a new ULID.
pub fn correlation_id(headers: &HeaderMap) -> HeaderValue {
    let valid = |v: &HeaderValue, max: usize| {
        let b = v.as_bytes();
        !b.is_empty()
            && b.len() <= max
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
    };
    if let Some(v) = headers.get(&X_CORRELATION_ID).filter(|v| valid(v, 128)) {
        return v.clone();
    }
    if let Some(v) = headers.get(&X_CORR_ID).filter(|v| valid(v, 64)) {
        return v.clone();
    }
    let id = ron_kernel::CorrId::generate();
    HeaderValue::from_str(id.as_str()).unwrap_or(HeaderValue::from_static("-"))
}

/// Sets both correlation headers on a request going upstream.
pub fn set_correlation(headers: &mut HeaderMap, id: &HeaderValue) {
    headers.insert(X_CORRELATION_ID, id.clone());
    headers.insert(X_CORR_ID, id.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers, gzip"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("expect", "100-continue"),
            ("proxy-authorization", "Basic x"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut h, false, false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-kept"]);
        let mut h = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
        ]);
        strip_hop_by_hop(&mut h, true, true);
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert_eq!(h.get("connection").unwrap(), "upgrade");
        assert_eq!(h.get("te").unwrap(), "trailers");
    }

    #[test]
    fn forwarded_headers_append_for_and_replace_proto_and_host() {
        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil"),
        ]);
        let mapped: IpAddr = "::ffff:10.0.0.9".parse().unwrap();
        set_forwarded(&mut h, &client_entry(mapped), false, Some("api.test:8080"));
        assert_eq!(h.get("x-forwarded-for").unwrap(), "1.2.3.4, 10.0.0.9");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
        assert_eq!(h.get("x-forwarded-host").unwrap(), "api.test:8080");
    }

    #[test]
    fn correlation_ids_are_kept_when_valid_and_minted_otherwise() {
        assert_eq!(
            correlation_id(&map(&[("x-correlation-id", "abc.1")])),
            "abc.1"
        );
        assert_eq!(
            correlation_id(&map(&[("x-correlation-id", "a b"), ("x-corr-id", "k-2")])),
            "k-2"
        );
        let minted = correlation_id(&map(&[("x-correlation-id", "a b")]));
        assert_eq!(minted.len(), 26);
        let long = "a".repeat(129);
        assert_eq!(
            correlation_id(&map(&[("x-correlation-id", &long)])).len(),
            26
        );
    }
}
