//! The routes over stored objects (spec §3.1): `/cas/b3/{hex}` serves a CAS object (from
//! the RAM cache under amnesia), `/edge/live/{host}/{path}[?b3=<hex>]` reads through the
//! [`Filler`](crate::fill::Filler). Both turn what they find into a [`Representation`], so
//! conditionals and ranges behave exactly as on pack routes.

use std::time::Instant;

use http::HeaderValue;
use http::request::Parts;
use tracing::Instrument;

use crate::app::{App, immutable_cache_control};
use crate::cas::is_digest;
use crate::errors::EdgeError;
use crate::fill::FillHit;
use crate::metrics::CacheKind;
use crate::mime::OCTET_STREAM;
use crate::respond::Representation;

/// Prefix of the CAS route.
pub(crate) const CAS_PREFIX: &str = "/cas/b3/";
/// Prefix of the live route.
pub(crate) const LIVE_PREFIX: &str = "/edge/live/";

/// `/cas/b3/{hex}`: 64 lower-case hex digits or 400; absent → 404; a digest mismatch on
/// first read → 500 `integrity` (the store quarantines the file).
pub(crate) async fn cas(app: &App, parts: &Parts) -> Result<Representation, EdgeError> {
    let hex = &parts.uri.path()[CAS_PREFIX.len()..];
    if !is_digest(hex) {
        return Err(EdgeError::BadRequest);
    }
    let found = app
        .filler
        .store()
        .by_digest(hex, OCTET_STREAM)
        .instrument(cache_span("cas"))
        .await?;
    let Some(stored) = found else {
        app.metrics.miss(CacheKind::Cas);
        return Err(EdgeError::NotFound);
    };
    app.metrics.hit(CacheKind::Cas);
    Ok(Representation {
        etag: header_value(&stored.etag)?,
        body: stored.body,
        last_modified: None,
        // CAS objects are always octet-stream (spec §3.2): the store has no type.
        content_type: HeaderValue::from_static(OCTET_STREAM),
        cache_control: immutable_cache_control(),
        vary_accept_encoding: false,
        content_encoding: None,
    })
}

/// `/edge/live/{host}/{path}[?b3=<hex>]`, waiting for a fill at most until `deadline`.
pub(crate) async fn live(
    app: &App,
    parts: &Parts,
    deadline: Instant,
) -> Result<Representation, EdgeError> {
    let expected = live_query(parts.uri.query())?;
    let rest = &parts.uri.path()[LIVE_PREFIX.len()..];
    let mut segments = rest.split('/');
    let host = segments.next().unwrap_or_default();
    let path: Vec<&str> = segments.collect();
    let hit = app
        .filler
        .get(host, &path, expected, deadline)
        .instrument(cache_span(host))
        .await?;
    let cache_control = if expected.is_some() {
        immutable_cache_control()
    } else {
        (**app.live_cache_control.load()).clone()
    };
    represent_hit(hit, cache_control)
}

/// The `svc.edge.cache` span of a store lookup, only when debug logging is on.
fn cache_span(host: &str) -> tracing::Span {
    if tracing::enabled!(tracing::Level::DEBUG) {
        tracing::debug_span!("svc.edge.cache", host = %host)
    } else {
        tracing::Span::none()
    }
}

fn represent_hit(hit: FillHit, cache_control: HeaderValue) -> Result<Representation, EdgeError> {
    Ok(Representation {
        etag: header_value(&hit.etag)?,
        body: hit.body,
        last_modified: None,
        // The filler keeps only short printable ASCII types, so this always parses.
        content_type: HeaderValue::from_str(&hit.content_type)
            .unwrap_or(HeaderValue::from_static(OCTET_STREAM)),
        cache_control,
        vary_accept_encoding: false,
        content_encoding: None,
    })
}

fn header_value(s: &str) -> Result<HeaderValue, EdgeError> {
    HeaderValue::from_str(s).map_err(|_| EdgeError::Internal)
}

/// The live route's query (spec §3.1 EDGE-R9): none, or exactly `b3=<64 lower-case hex>`;
/// anything else is 400. An empty query (`?` alone) carries no parameter.
fn live_query(query: Option<&str>) -> Result<Option<&str>, EdgeError> {
    match query {
        None | Some("") => Ok(None),
        Some(q) => match q.strip_prefix("b3=") {
            Some(hex) if is_digest(hex) => Ok(Some(hex)),
            _ => Err(EdgeError::BadRequest),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_query_accepts_only_one_lowercase_b3() {
        let hex = "ab".repeat(32);
        assert_eq!(live_query(None), Ok(None));
        assert_eq!(live_query(Some("")), Ok(None));
        assert_eq!(
            live_query(Some(&format!("b3={hex}"))),
            Ok(Some(hex.as_str()))
        );
        for bad in [
            format!("b3={}", hex.to_uppercase()),
            format!("b3={}", &hex[1..]),
            format!("b3={hex}&b3={hex}"),
            format!("b3={hex}&x=1"),
            format!("x=1&b3={hex}"),
            "b3=".to_owned(),
            "x=1".to_owned(),
            "b3".to_owned(),
        ] {
            assert_eq!(live_query(Some(&bad)), Err(EdgeError::BadRequest), "{bad}");
        }
    }
}
