//! `tools pmtiles-info FILE`: verify an archive as a mount would and describe it as JSON.

use std::path::Path;

use serde_json::{Value, json};

use crate::pmtiles::header::Section;
use crate::pmtiles::{Archive, Compression, DecodeCaps, PackError, TileType};

/// Opens `path` with the default decode caps and returns its header, directory
/// statistics, metadata and digest.
pub fn pmtiles_info(path: &Path) -> Result<Value, PackError> {
    let archive = Archive::open(path, DecodeCaps::default())?;
    Ok(describe(&archive))
}

/// The JSON description of a verified archive.
pub fn describe(archive: &Archive) -> Value {
    let h = archive.header();
    let section = |s: Section| json!({ "offset": s.offset, "length": s.length });
    json!({
        "valid": true,
        "bytes": archive.bytes().len(),
        "b3": archive.digest_hex(),
        "header": {
            "spec_version": crate::pmtiles::header::VERSION,
            "tile_type": tile_type_name(h.tile_type),
            "tile_compression": compression_name(h.tile_compression),
            "internal_compression": compression_name(h.internal_compression),
            "clustered": h.clustered,
            "min_zoom": h.min_zoom,
            "max_zoom": h.max_zoom,
            "bounds": h.bounds,
            "center": h.center,
            "center_zoom": h.center_zoom,
            "addressed_tiles": h.addressed_tiles,
            "tile_entries": h.tile_entries,
            "tile_contents": h.tile_contents,
            "sections": {
                "root": section(h.root),
                "metadata": section(h.metadata),
                "leaves": section(h.leaves),
                "data": section(h.data),
            },
        },
        "directories": archive.stats(),
        "metadata": archive.metadata(),
        "warnings": archive.warnings(),
    })
}

/// Lower-case name of a tile type, as in the PMTiles spec.
pub fn tile_type_name(t: TileType) -> &'static str {
    match t {
        TileType::Unknown => "unknown",
        TileType::Mvt => "mvt",
        TileType::Png => "png",
        TileType::Jpeg => "jpeg",
        TileType::Webp => "webp",
        TileType::Avif => "avif",
        TileType::Mlt => "mlt",
    }
}

/// Lower-case name of a compression, as in the PMTiles spec.
pub fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::Unknown => "unknown",
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Brotli => "br",
        Compression::Zstd => "zstd",
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::pmtiles::writer::ArchiveBuilder;

    #[test]
    fn description_names_types_and_counts_tiles() {
        let bytes = ArchiveBuilder::new(TileType::Png)
            .tile(1, 0, 0, b"a")
            .tile(1, 0, 1, b"a")
            .tile(1, 1, 1, b"c")
            .to_bytes()
            .unwrap();
        let a = Archive::from_bytes(Bytes::from(bytes), DecodeCaps::default()).unwrap();
        let v = describe(&a);
        assert_eq!(v["header"]["tile_type"], "png");
        assert_eq!(v["header"]["tile_compression"], "none");
        assert_eq!(v["directories"]["addressed_tiles"], 3);
        assert_eq!(
            v["directories"]["tile_entries"], 2,
            "run-length dedup merged two ids"
        );
        assert_eq!(v["b3"].as_str().unwrap().len(), 64);
    }
}
