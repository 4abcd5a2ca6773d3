//! Tile and TileJSON routes (spec §4.8, §4.9): `/edge/tiles/{pack}/{z}/{x}/{y}[.{ext}]`
//! and `/edge/tiles/{pack}.json`, with content-coding negotiation (stored bytes when the
//! client accepts the stored coding, otherwise decoded to identity within the caps).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};

use crate::app::App;
use crate::config::EdgeConfig;
use crate::digests::Variant;
use crate::dirpack::etag_value;
use crate::errors::EdgeError;
use crate::metrics::CacheKind;
use crate::pmtiles::{self, Coding, DecodeCaps, DecodeError, TileError, TileLookup};
use crate::respond::Representation;
use ron_metrics::negotiate::accepts_coding;

/// Route prefix of tiles and TileJSON.
pub const TILES_PREFIX: &str = "/edge/tiles/";
/// Longest decimal accepted for z, x or y (2^31 has 10 digits).
const MAX_COORD_DIGITS: usize = 10;

/// `/edge/tiles/{pack}/{z}/{x}/{y}[.{ext}]`; `Ok(None)` is an absent tile (204).
pub(crate) fn tile(
    app: &Arc<App>,
    parts: &http::request::Parts,
    cfg: &EdgeConfig,
) -> Result<Option<Representation>, EdgeError> {
    let rest = &parts.uri.path()[TILES_PREFIX.len()..];
    let segs: Vec<&str> = rest.split('/').collect();
    let [pack, z, x, last] = segs[..] else {
        return Err(EdgeError::NotFound);
    };
    let (y, ext) = match last.split_once('.') {
        Some((y, ext)) => (y, Some(ext)),
        None => (last, None),
    };
    let (z, x, y) = (coord(z)?, coord(x)?, coord(y)?);
    let packs = app.packs.load_full();
    let Some(a) = packs.archives.get(pack) else {
        app.metrics.miss(CacheKind::Tile);
        return Err(EdgeError::NotFound);
    };
    let archive = &a.archive;
    if z > 31 || !pmtiles::ext_allowed(archive.tile_type(), ext) {
        return Err(EdgeError::BadRequest);
    }
    let stored = match archive.lookup(z as u8, x, y) {
        Ok(TileLookup::Found(b)) => b,
        Ok(TileLookup::Absent) => {
            app.metrics.miss(CacheKind::Tile);
            return Ok(None);
        }
        Err(TileError::BadCoord) => return Err(EdgeError::BadRequest),
        Err(TileError::ZoomOutOfRange { .. }) => {
            app.metrics.miss(CacheKind::Tile);
            return Err(EdgeError::NotFound);
        }
        Err(_) => {
            app.metrics.integrity.with_label_values(&["pack"]).inc();
            return Err(EdgeError::Integrity);
        }
    };
    app.metrics.hit(CacheKind::Tile);
    let coding = archive.tile_coding();
    let accept = parts
        .headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let offset = stored.as_ptr() as usize - archive.bytes().as_ptr() as usize;
    let stored_len = stored.len();
    let (body, content_encoding, variant) = match coding.content_encoding() {
        None => (stored, None, Variant::Stored),
        Some(token) if accepts_coding(accept, token) => (stored, Some(token), Variant::Stored),
        Some(_) => {
            let caps = DecodeCaps {
                max_ratio: cfg.ingress.max_decompress_ratio,
                max_bytes: cfg.ingress.max_decompress_bytes,
            };
            match pmtiles::codings::decode_tile(coding, &stored, &caps) {
                Ok(d) => (Bytes::from(d), None, Variant::Decoded),
                Err(DecodeError::CapExceeded { .. }) => return Err(EdgeError::DecompressCap),
                Err(DecodeError::Corrupt { .. }) => {
                    app.metrics.integrity.with_label_values(&["pack"]).inc();
                    return Err(EdgeError::Integrity);
                }
            }
        }
    };
    Ok(Some(Representation {
        etag: a.digests.etag(offset, stored_len, variant, &body),
        body,
        last_modified: Some((a.last_modified, a.last_modified_header.clone())),
        content_type: HeaderValue::from_static(pmtiles::content_type(archive.tile_type())),
        cache_control: cache_control(app),
        vary_accept_encoding: coding != Coding::None,
        content_encoding,
    }))
}

/// `/edge/tiles/{pack}.json`.
pub(crate) fn tilejson(
    app: &Arc<App>,
    parts: &http::request::Parts,
    cfg: &EdgeConfig,
) -> Result<Representation, EdgeError> {
    let rest = &parts.uri.path()[TILES_PREFIX.len()..];
    let pack = rest.strip_suffix(".json").unwrap_or(rest);
    let packs = app.packs.load_full();
    let Some(a) = packs.archives.get(pack) else {
        return Err(EdgeError::NotFound);
    };
    let base = match &cfg.edge.public_url {
        Some(u) => u.clone(),
        None => parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| valid_host(h))
            .map(|h| format!("http://{h}"))
            .unwrap_or_default(),
    };
    let body = Bytes::from(pmtiles::tilejson::render(&a.archive, pack, &base));
    Ok(Representation {
        etag: etag_value(blake3::hash(&body).as_bytes()),
        body,
        last_modified: Some((a.last_modified, a.last_modified_header.clone())),
        content_type: HeaderValue::from_static("application/json"),
        cache_control: cache_control(app),
        vary_accept_encoding: false,
        content_encoding: None,
    })
}

fn cache_control(app: &App) -> http::HeaderValue {
    (**app.pack_cache_control.load()).clone()
}

/// An unsigned decimal coordinate; anything else is 400.
fn coord(s: &str) -> Result<u64, EdgeError> {
    if s.is_empty() || s.len() > MAX_COORD_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EdgeError::BadRequest);
    }
    s.parse().map_err(|_| EdgeError::BadRequest)
}

/// `host[:port]` made of DNS characters, for the TileJSON base URL.
fn valid_host(h: &str) -> bool {
    let (host, port) = match h.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (h, None),
    };
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && port.is_none_or(|p| p.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coding_negotiation_follows_q_values_and_aliases() {
        assert!(accepts_coding(Some("gzip, br"), "gzip"));
        assert!(accepts_coding(Some("x-gzip"), "gzip"));
        assert!(accepts_coding(Some("*"), "br"));
        assert!(!accepts_coding(Some("gzip;q=0"), "gzip"));
        assert!(!accepts_coding(Some("gzip;q=0, *"), "gzip"));
        assert!(!accepts_coding(None, "gzip"));
        assert!(!accepts_coding(Some("br"), "gzip"));
    }

    #[test]
    fn coordinates_are_plain_decimals() {
        assert_eq!(coord("12").unwrap(), 12);
        for bad in ["", "-1", "1a", "+1", "12345678901"] {
            assert!(coord(bad).is_err(), "{bad}");
        }
    }
}
