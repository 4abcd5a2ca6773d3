//! `tools sample-pmtiles`: the committed `data/world.pmtiles` (§2.4).
//!
//! z0–3 (85 tiles), each an MVT with layer `grid` holding a polygon over the whole tile and
//! a point at its centre with `zxy="z/x/y"`; gzip tiles and gzip directories. Every input
//! is fixed and every codec deterministic, so regenerating gives identical bytes (EDGE-T31).

use std::io;
use std::path::Path;

use pmtiles::TileType;
use serde_json::json;

use super::mvt::{self, Layer};
use crate::pmtiles::Coding;
use crate::pmtiles::writer::ArchiveBuilder;

/// Highest zoom in the sample.
pub const SAMPLE_MAX_ZOOM: u8 = 3;
/// Name of the one layer in every sample tile.
pub const SAMPLE_LAYER: &str = "grid";
/// Web Mercator's latitude limit, the sample's bounds.
const MERCATOR_MAX_LAT: f64 = 85.051_128_7;

/// The uncompressed MVT of sample tile `z/x/y`.
pub fn sample_tile(z: u8, x: u64, y: u64) -> Vec<u8> {
    mvt::encode(&[Layer {
        name: SAMPLE_LAYER.into(),
        features: mvt::outline_and_label(z, x, y),
    }])
}

/// The sample archive's bytes.
pub fn sample_pmtiles_bytes() -> io::Result<Vec<u8>> {
    let metadata = json!({
        "name": "svc-edge sample world",
        "description": "Generated z0-3 grid: one polygon per tile and a point labelled z/x/y.",
        "attribution": "svc-edge sample data (generated, public domain)",
        "version": "1.0.0",
        "vector_layers": [{
            "id": SAMPLE_LAYER,
            "description": "Tile outline and its z/x/y label",
            "minzoom": 0,
            "maxzoom": SAMPLE_MAX_ZOOM,
            "fields": { "zxy": "String" }
        }]
    });
    let mut builder = ArchiveBuilder::new(TileType::Mvt)
        .tile_coding(Coding::Gzip)
        .internal_coding(Coding::Gzip)
        .metadata(metadata.to_string())
        .zoom_range(0, SAMPLE_MAX_ZOOM)
        .bounds([-180.0, -MERCATOR_MAX_LAT, 180.0, MERCATOR_MAX_LAT])
        .center(0.0, 0.0, 0);
    for z in 0..=SAMPLE_MAX_ZOOM {
        for x in 0..1u64 << z {
            for y in 0..1u64 << z {
                builder.add_tile(z, x, y, &sample_tile(z, x, y));
            }
        }
    }
    builder.to_bytes().map_err(io::Error::other)
}

/// Writes the sample archive to `out`.
pub fn sample_pmtiles(out: &Path) -> io::Result<()> {
    std::fs::write(out, sample_pmtiles_bytes()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_tiles_carry_their_own_label() {
        let t = sample_tile(2, 1, 3);
        let has = |needle: &[u8]| t.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"grid"));
        assert!(has(b"zxy"));
        assert!(has(b"2/1/3"));
    }

    #[test]
    fn sample_is_small_and_identical_every_time() {
        let a = sample_pmtiles_bytes().unwrap();
        assert!(a.len() < 64 * 1024, "{} bytes", a.len());
        assert_eq!(a, sample_pmtiles_bytes().unwrap());
    }
}
