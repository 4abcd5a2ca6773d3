//! Tile media types and URL extensions by tile type (§3.2 table).
//!
//! Our own table rather than `pmtiles::TileType::content_type`, because the spec names
//! MLT `application/vnd.maplibre-tile` where the crate says `...-vector-tile`.

use pmtiles::TileType;

/// The tile `Content-Type` for a tile type.
pub fn content_type(tile_type: TileType) -> &'static str {
    match tile_type {
        TileType::Mvt => "application/vnd.mapbox-vector-tile",
        TileType::Png => "image/png",
        TileType::Jpeg => "image/jpeg",
        TileType::Webp => "image/webp",
        TileType::Avif => "image/avif",
        TileType::Mlt => "application/vnd.maplibre-tile",
        TileType::Unknown => "application/octet-stream",
    }
}

/// Whether a tile URL may end in `.{ext}` for this tile type; no extension is always
/// allowed, and unknown tile types accept any. Matching is exact and case-sensitive.
pub fn ext_allowed(tile_type: TileType, ext: Option<&str>) -> bool {
    let Some(ext) = ext else { return true };
    match tile_type {
        TileType::Mvt => matches!(ext, "mvt" | "pbf"),
        TileType::Png => ext == "png",
        TileType::Jpeg => matches!(ext, "jpg" | "jpeg"),
        TileType::Webp => ext == "webp",
        TileType::Avif => ext == "avif",
        TileType::Mlt => ext == "mlt",
        TileType::Unknown => true,
    }
}

/// The extension TileJSON `tiles` URLs use, `None` for unknown tile types.
pub fn tilejson_ext(tile_type: TileType) -> Option<&'static str> {
    match tile_type {
        TileType::Mvt => Some("mvt"),
        TileType::Png => Some("png"),
        TileType::Jpeg => Some("jpg"),
        TileType::Webp => Some("webp"),
        TileType::Avif => Some("avif"),
        TileType::Mlt => Some("mlt"),
        TileType::Unknown => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [TileType; 7] = [
        TileType::Unknown,
        TileType::Mvt,
        TileType::Png,
        TileType::Jpeg,
        TileType::Webp,
        TileType::Avif,
        TileType::Mlt,
    ];

    #[test]
    fn table_matches_the_spec() {
        assert_eq!(
            content_type(TileType::Mvt),
            "application/vnd.mapbox-vector-tile"
        );
        assert_eq!(content_type(TileType::Mlt), "application/vnd.maplibre-tile");
        assert_eq!(content_type(TileType::Unknown), "application/octet-stream");
        assert!(ext_allowed(TileType::Mvt, Some("pbf")));
        assert!(!ext_allowed(TileType::Mvt, Some("png")));
        assert!(!ext_allowed(TileType::Mvt, Some("MVT")));
        assert!(ext_allowed(TileType::Jpeg, Some("jpeg")));
        assert!(ext_allowed(TileType::Unknown, Some("anything")));
        assert_eq!(tilejson_ext(TileType::Jpeg), Some("jpg"));
        assert_eq!(tilejson_ext(TileType::Unknown), None);
    }

    #[test]
    fn no_extension_and_the_tilejson_extension_are_always_accepted() {
        for t in ALL {
            assert!(ext_allowed(t, None));
            assert!(ext_allowed(t, tilejson_ext(t)), "{t:?}");
        }
    }
}
