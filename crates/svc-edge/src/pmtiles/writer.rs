//! Writes PMTiles v3 archives for the tools and the tests, through the `pmtiles` crate.
//!
//! `ArchiveBuilder` collects tiles by coordinate and hands them to `pmtiles::PmTilesWriter`
//! in tile-id order, so the crate decides layout, run-length dedup and leaf directories
//! (leaves appear once the root would exceed 16,384 entries or 16,257 stored bytes).
//! Output is byte-stable: tiles are sorted, and every codec here is deterministic (gzip
//! with mtime 0 and a fixed level and OS byte).
//!
//! Brotli is written as stored (uncompressed) meta-blocks: the workspace carries only a
//! brotli decoder, and tests need br-coded bytes that real decoders accept, not small ones.

use std::collections::BTreeMap;
use std::io::{self, Cursor, Write};
use std::path::Path;

use pmtiles::{Compression, Compressor, PmTilesWriter, PmtError, PmtResult, TileId, TileType};

use super::codings::Coding;
use super::tileid::tile_id;

/// gzip level used for every gzip stream written here.
pub const GZIP_LEVEL: u32 = 9;
/// OS byte in gzip headers: 255 "unknown", so output does not depend on the host.
const GZIP_OS_UNKNOWN: u8 = 255;
/// Payload per stored brotli meta-block; below the 64 KiB window of WBITS = 16.
const BROTLI_STORED_BLOCK: usize = 32 * 1024;

/// Builds an archive in memory.
#[derive(Debug, Clone)]
pub struct ArchiveBuilder {
    tile_type: TileType,
    tile_coding: Coding,
    precompressed: bool,
    internal_coding: Coding,
    metadata: String,
    zooms: Option<(u8, u8)>,
    bounds: Option<[f64; 4]>,
    center: Option<(f64, f64, u8)>,
    tiles: BTreeMap<u64, Vec<u8>>,
    bad_coord: Option<(u8, u64, u64)>,
}

/// Why an archive could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A tile coordinate outside its zoom's grid.
    #[error("tile {z}/{x}/{y} is outside the zoom's grid (x, y < 2^z, z <= 31)")]
    BadCoord {
        /// Zoom.
        z: u8,
        /// Column.
        x: u64,
        /// Row.
        y: u64,
    },
    /// The `pmtiles` writer failed.
    #[error("pmtiles writer: {0}")]
    Pmtiles(#[from] PmtError),
    /// Writing the output file failed.
    #[error("writing archive: {0}")]
    Io(#[from] io::Error),
}

/// A `pmtiles::Compressor` for our codings.
struct Codec(Coding);

impl ArchiveBuilder {
    /// An empty builder; tiles stored uncompressed, directories and metadata gzip.
    pub fn new(tile_type: TileType) -> Self {
        Self {
            tile_type,
            tile_coding: Coding::None,
            precompressed: false,
            internal_coding: Coding::Gzip,
            metadata: "{}".to_owned(),
            zooms: None,
            bounds: None,
            center: None,
            tiles: BTreeMap::new(),
            bad_coord: None,
        }
    }

    /// Encode tiles in `coding` as they are written.
    pub fn tile_coding(mut self, coding: Coding) -> Self {
        self.tile_coding = coding;
        self.precompressed = false;
        self
    }

    /// Tiles are given already encoded in `coding`; store them as they are.
    pub fn precompressed(mut self, coding: Coding) -> Self {
        self.tile_coding = coding;
        self.precompressed = true;
        self
    }

    /// Coding of directories and metadata.
    pub fn internal_coding(mut self, coding: Coding) -> Self {
        self.internal_coding = coding;
        self
    }

    /// Metadata text, written as given (valid JSON or not).
    pub fn metadata(mut self, json: impl Into<String>) -> Self {
        self.metadata = json.into();
        self
    }

    /// Header zoom range; defaults to the range of the tiles added.
    pub fn zoom_range(mut self, min: u8, max: u8) -> Self {
        self.zooms = Some((min, max));
        self
    }

    /// Header bounds `[min_lon, min_lat, max_lon, max_lat]`.
    pub fn bounds(mut self, bounds: [f64; 4]) -> Self {
        self.bounds = Some(bounds);
        self
    }

    /// Header center.
    pub fn center(mut self, lon: f64, lat: f64, zoom: u8) -> Self {
        self.center = Some((lon, lat, zoom));
        self
    }

    /// Adds (or replaces) tile `z/x/y`.
    pub fn tile(mut self, z: u8, x: u64, y: u64, data: &[u8]) -> Self {
        self.add_tile(z, x, y, data);
        self
    }

    /// Adds (or replaces) tile `z/x/y`; a bad coordinate fails `to_bytes`.
    pub fn add_tile(&mut self, z: u8, x: u64, y: u64, data: &[u8]) {
        match tile_id(z, x, y) {
            Some(id) => {
                self.tiles.insert(id, data.to_vec());
            }
            None => self.bad_coord = Some((z, x, y)),
        }
    }

    /// Number of tiles added.
    pub fn len(&self) -> usize {
        self.tiles.len()
    }

    /// Whether no tiles were added.
    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty()
    }

    /// The archive bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, WriteError> {
        if let Some((z, x, y)) = self.bad_coord {
            return Err(WriteError::BadCoord { z, x, y });
        }
        let mut w = PmTilesWriter::new(self.tile_type)
            .internal_codec(Codec(self.internal_coding))
            .metadata(self.metadata.clone());
        w = if self.precompressed {
            w.precompressed(compression(self.tile_coding))
        } else {
            w.tile_codec(Codec(self.tile_coding))
        };
        let (min, max) = self.zooms.unwrap_or_else(|| self.tile_zooms());
        w = w.min_zoom(min).max_zoom(max);
        if let Some([min_lon, min_lat, max_lon, max_lat]) = self.bounds {
            w = w.bounds(min_lon, min_lat, max_lon, max_lat);
        }
        if let Some((lon, lat, zoom)) = self.center {
            w = w.center(lon, lat).center_zoom(zoom);
        }
        let mut out = Cursor::new(Vec::new());
        let mut stream = w.create(&mut out)?;
        for (&id, data) in &self.tiles {
            stream.add_tile(TileId::new(id)?.into(), data)?;
        }
        stream.finalize()?;
        Ok(out.into_inner())
    }

    /// Writes the archive to `path` (replacing it).
    pub fn write_file(&self, path: &Path) -> Result<(), WriteError> {
        std::fs::write(path, self.to_bytes()?)?;
        Ok(())
    }

    fn tile_zooms(&self) -> (u8, u8) {
        let zoom = |id: Option<&u64>| {
            id.and_then(|&id| super::tileid::tile_coords(id))
                .map_or(0, |c| c.0)
        };
        (
            zoom(self.tiles.keys().next()),
            zoom(self.tiles.keys().next_back()),
        )
    }
}

impl Compressor for Codec {
    fn compression(&self) -> Compression {
        compression(self.0)
    }

    fn compress(
        &self,
        f: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
        writer: &mut dyn Write,
    ) -> PmtResult<()> {
        let mut raw = Vec::new();
        f(&mut raw)?;
        writer.write_all(&encode(self.0, &raw))?;
        Ok(())
    }
}

/// Encodes `data` in `coding`, deterministically.
pub fn encode(coding: Coding, data: &[u8]) -> Vec<u8> {
    match coding {
        Coding::None => data.to_vec(),
        Coding::Gzip => gzip(data),
        Coding::Brotli => brotli_stored(data),
        Coding::Zstd => {
            ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
        }
    }
}

/// gzip with fixed level, no name, mtime 0 and OS "unknown": the same bytes on every host.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(GZIP_OS_UNKNOWN)
        .write(
            Vec::with_capacity(data.len() / 2 + 32),
            flate2::Compression::new(GZIP_LEVEL),
        );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// A valid brotli stream (RFC 7932) made of stored meta-blocks.
///
/// Layout: WBITS = 16 (a single 0 bit), then per block ISLAST=0, MNIBBLES=4, MLEN-1 in 16
/// bits, ISUNCOMPRESSED=1, padding to a byte, and the raw bytes; then ISLAST=1,
/// ISLASTEMPTY=1. Only the first header shares its byte with the WBITS bit.
pub fn brotli_stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / BROTLI_STORED_BLOCK * 3 + 4);
    let mut shift = 1; // after the WBITS bit
    for chunk in data.chunks(BROTLI_STORED_BLOCK) {
        let mlen_minus_1 = (chunk.len() - 1) as u32;
        let bits = (mlen_minus_1 << 3 | 1 << 19) << shift;
        out.extend_from_slice(&bits.to_le_bytes()[..3]);
        out.extend_from_slice(chunk);
        shift = 0;
    }
    out.push(0b11 << shift);
    out
}

fn compression(coding: Coding) -> Compression {
    match coding {
        Coding::None => Compression::None,
        Coding::Gzip => Compression::Gzip,
        Coding::Brotli => Compression::Brotli,
        Coding::Zstd => Compression::Zstd,
    }
}

#[cfg(test)]
mod tests {
    use super::super::codings::decode;
    use super::*;

    #[test]
    fn stored_brotli_round_trips_through_the_decoder() {
        assert_eq!(brotli_stored(b""), vec![0x06]);
        for len in [
            0usize,
            1,
            100,
            BROTLI_STORED_BLOCK,
            BROTLI_STORED_BLOCK + 1,
            100_000,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let stored = brotli_stored(&data);
            assert_eq!(
                decode(Coding::Brotli, &stored, 1 << 20).unwrap(),
                data,
                "len {len}"
            );
        }
    }

    #[test]
    fn every_coding_round_trips() {
        let data = b"round trip round trip round trip".repeat(50);
        for coding in [Coding::None, Coding::Gzip, Coding::Brotli, Coding::Zstd] {
            assert_eq!(
                decode(coding, &encode(coding, &data), 1 << 20).unwrap(),
                data,
                "{coding:?}"
            );
        }
    }

    #[test]
    fn gzip_output_has_no_timestamp_and_is_stable() {
        let a = gzip(b"same input");
        assert_eq!(a, gzip(b"same input"));
        assert_eq!(&a[4..8], &[0, 0, 0, 0], "mtime is zero");
        assert_eq!(a[9], GZIP_OS_UNKNOWN);
    }

    #[test]
    fn builder_output_is_deterministic_and_rejects_bad_coordinates() {
        let build = || {
            ArchiveBuilder::new(TileType::Mvt)
                .tile_coding(Coding::Gzip)
                .tile(1, 1, 0, b"b")
                .tile(0, 0, 0, b"a")
                .to_bytes()
                .unwrap()
        };
        assert_eq!(build(), build());
        let err = ArchiveBuilder::new(TileType::Png)
            .tile(1, 2, 0, b"x")
            .to_bytes()
            .unwrap_err();
        assert!(matches!(err, WriteError::BadCoord { z: 1, x: 2, y: 0 }));
    }
}
