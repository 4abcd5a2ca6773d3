//! The fixed 127-byte PMTiles v3 header and its §4.7 checks 1–2.
//!
//! Hand-written because `pmtiles::Header` keeps the section offsets and lengths private,
//! and those are exactly what the mount has to bounds-check; its `Compression` and
//! `TileType` enums are reused for the fields it does expose.

use pmtiles::{Compression, TileType};

use super::error::PackError;

/// Size of the fixed header.
pub const HEADER_LEN: usize = 127;
/// The root directory must end at or before this byte, so one 16 KiB read covers both.
pub const ROOT_LIMIT: u64 = 16_384;
/// The first seven bytes of every v3 archive.
pub const MAGIC: &[u8; 7] = b"PMTiles";
/// The only spec version served.
pub const VERSION: u8 = 3;

/// Coordinates in the header are degrees × 10^7.
const COORD_SCALE: f64 = 10_000_000.0;

/// Where one part of the archive lies in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Section {
    /// Byte offset from the start of the file.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
}

/// A parsed and range-checked header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The root directory.
    pub root: Section,
    /// The JSON metadata.
    pub metadata: Section,
    /// All leaf directories.
    pub leaves: Section,
    /// All tile data.
    pub data: Section,
    /// Header's count of addressed tiles (0 = unknown).
    pub addressed_tiles: u64,
    /// Header's count of tile entries (0 = unknown).
    pub tile_entries: u64,
    /// Header's count of distinct tile contents (0 = unknown).
    pub tile_contents: u64,
    /// Whether tile data is ordered by tile id.
    pub clustered: bool,
    /// Compression of directories and metadata (never `Unknown`).
    pub internal_compression: Compression,
    /// Compression of the stored tiles.
    pub tile_compression: Compression,
    /// What the tiles are.
    pub tile_type: TileType,
    /// Lowest zoom present.
    pub min_zoom: u8,
    /// Highest zoom present.
    pub max_zoom: u8,
    /// `[min_lon, min_lat, max_lon, max_lat]` in degrees.
    pub bounds: [f64; 4],
    /// `[lon, lat]` of the default view, in degrees.
    pub center: [f64; 2],
    /// Zoom of the default view.
    pub center_zoom: u8,
}

impl Section {
    /// The first byte past the section, `None` on u64 overflow.
    pub fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.length)
    }

    fn read(buf: &[u8], at: usize) -> Self {
        Self {
            offset: le_u64(buf, at),
            length: le_u64(buf, at + 8),
        }
    }
}

impl Header {
    /// Parses the header of a `file_len`-byte archive whose first bytes are `buf`, applying
    /// §4.7 checks 1 and 2 (every section inside the file, root within 16 KiB, enum ranges,
    /// zoom order).
    pub fn parse(buf: &[u8]) -> Result<Self, PackError> {
        let file_len = buf.len() as u64;
        if buf.len() < HEADER_LEN {
            return Err(PackError::TooShort { len: file_len });
        }
        if &buf[..7] != MAGIC {
            return Err(PackError::BadMagic {
                found: String::from_utf8_lossy(&buf[..7]).into_owned(),
            });
        }
        if buf[7] != VERSION {
            return Err(PackError::BadVersion { version: buf[7] });
        }
        let root = Section::read(buf, 8);
        let metadata = Section::read(buf, 24);
        let leaves = Section::read(buf, 40);
        let data = Section::read(buf, 56);

        if root.length == 0 {
            return Err(PackError::EmptyRoot);
        }
        if root.offset < HEADER_LEN as u64 || root.end().is_none_or(|end| end > ROOT_LIMIT) {
            return Err(PackError::RootTooFar {
                offset: root.offset,
                length: root.length,
            });
        }
        for (name, section) in [
            ("root", root),
            ("metadata", metadata),
            ("leaves", leaves),
            ("data", data),
        ] {
            check_section(name, section, file_len)?;
        }

        let internal_compression = match buf[97].try_into() {
            Ok(Compression::Unknown) | Err(_) => {
                return Err(PackError::BadCompression {
                    field: "internal",
                    value: buf[97],
                    allowed: "1 none, 2 gzip, 3 br, 4 zstd",
                });
            }
            Ok(c) => c,
        };
        let tile_compression = buf[98].try_into().map_err(|_| PackError::BadCompression {
            field: "tile",
            value: buf[98],
            allowed: "0..4",
        })?;
        let tile_type = buf[99]
            .try_into()
            .map_err(|_| PackError::BadTileType { value: buf[99] })?;
        let (min_zoom, max_zoom) = (buf[100], buf[101]);
        if min_zoom > max_zoom || max_zoom > super::tileid::MAX_ZOOM {
            return Err(PackError::BadZoom {
                min: min_zoom,
                max: max_zoom,
            });
        }

        Ok(Self {
            root,
            metadata,
            leaves,
            data,
            addressed_tiles: le_u64(buf, 72),
            tile_entries: le_u64(buf, 80),
            tile_contents: le_u64(buf, 88),
            clustered: buf[96] == 1,
            internal_compression,
            tile_compression,
            tile_type,
            min_zoom,
            max_zoom,
            bounds: [
                coord(buf, 102),
                coord(buf, 106),
                coord(buf, 110),
                coord(buf, 114),
            ],
            center: [coord(buf, 119), coord(buf, 123)],
            center_zoom: buf[118],
        })
    }

    /// Warnings for bounds and center outside the globe or out of order; §4.7 says these
    /// never fail a mount.
    pub fn warnings(&self) -> Vec<String> {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounds;
        let [lon, lat] = self.center;
        let lon_ok = |v: f64| (-180.0..=180.0).contains(&v);
        let lat_ok = |v: f64| (-90.0..=90.0).contains(&v);
        let mut out = Vec::new();
        if !(lon_ok(min_lon) && lon_ok(max_lon) && lat_ok(min_lat) && lat_ok(max_lat))
            || min_lon > max_lon
            || min_lat > max_lat
        {
            out.push(format!(
                "bounds {:?} are outside the globe or out of order",
                self.bounds
            ));
        }
        if !(lon_ok(lon) && lat_ok(lat)) {
            out.push(format!("center {:?} is outside the globe", self.center));
        }
        out
    }
}

fn check_section(name: &'static str, s: Section, file_len: u64) -> Result<(), PackError> {
    let out_of_range = || PackError::SectionOutOfRange {
        section: name,
        offset: s.offset,
        length: s.length,
        file_len,
    };
    let end = s.end().ok_or_else(out_of_range)?;
    if s.length == 0 {
        // Writers leave unused sections at offset 0 (or anywhere); nothing is read there.
        return Ok(());
    }
    if s.offset >= file_len {
        return Err(out_of_range());
    }
    if end > file_len {
        return Err(PackError::SectionTruncated {
            section: name,
            offset: s.offset,
            length: s.length,
            file_len,
        });
    }
    Ok(())
}

fn le_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

fn coord(buf: &[u8], at: usize) -> f64 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    f64::from(i32::from_le_bytes(b)) / COORD_SCALE
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid header followed by `tail` zero bytes, with root at 127+10.
    fn header(tail: usize) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN + tail];
        b[..7].copy_from_slice(MAGIC);
        b[7] = 3;
        b[8..16].copy_from_slice(&127u64.to_le_bytes());
        b[16..24].copy_from_slice(&10u64.to_le_bytes());
        b[97] = 2;
        b[98] = 2;
        b[99] = 1;
        b[101] = 3;
        b
    }

    fn set(b: &mut [u8], at: usize, v: u64) {
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn a_minimal_header_parses_with_its_fields() {
        let mut b = header(10);
        b[102..106].copy_from_slice(&(-1_800_000_000i32).to_le_bytes());
        let h = Header::parse(&b).unwrap();
        assert_eq!(
            h.root,
            Section {
                offset: 127,
                length: 10
            }
        );
        assert_eq!(h.tile_type, TileType::Mvt);
        assert_eq!(h.internal_compression, Compression::Gzip);
        assert_eq!((h.min_zoom, h.max_zoom), (0, 3));
        assert!((h.bounds[0] + 180.0).abs() < 1e-9);
    }

    #[test]
    fn header_errors_carry_their_reasons() {
        let reason = |b: &[u8]| Header::parse(b).unwrap_err().reason();
        assert_eq!(reason(&header(10)[..100]), "truncated");

        let mut b = header(10);
        b[0] = b'X';
        assert_eq!(reason(&b), "bad_magic");

        let mut b = header(10);
        b[7] = 2;
        assert_eq!(reason(&b), "bad_version");

        let mut b = header(10);
        set(&mut b, 16, 0);
        assert_eq!(reason(&b), "empty_root");

        let mut b = header(20_000);
        set(&mut b, 8, 16_380);
        assert_eq!(reason(&b), "root_too_far");

        let mut b = header(10);
        set(&mut b, 8, u64::MAX);
        assert_eq!(reason(&b), "root_too_far");

        let mut b = header(10);
        set(&mut b, 16, 11);
        assert_eq!(reason(&b), "truncated");

        let mut b = header(10);
        set(&mut b, 56, 1_000);
        set(&mut b, 64, 1);
        assert_eq!(reason(&b), "offset_out_of_range");

        let mut b = header(10);
        set(&mut b, 40, u64::MAX);
        set(&mut b, 48, 2);
        assert_eq!(reason(&b), "offset_out_of_range");

        let mut b = header(10);
        b[97] = 0;
        assert_eq!(reason(&b), "bad_compression");

        let mut b = header(10);
        b[98] = 5;
        assert_eq!(reason(&b), "bad_compression");

        let mut b = header(10);
        b[99] = 7;
        assert_eq!(reason(&b), "bad_tile_type");

        let mut b = header(10);
        b[100] = 4;
        assert_eq!(reason(&b), "bad_zoom");

        let mut b = header(10);
        b[101] = 32;
        assert_eq!(reason(&b), "bad_zoom");
    }

    #[test]
    fn empty_sections_may_point_anywhere() {
        let mut b = header(10);
        set(&mut b, 40, 1 << 40);
        assert!(Header::parse(&b).is_ok());
    }

    #[test]
    fn odd_bounds_only_warn() {
        let mut b = header(10);
        b[106..110].copy_from_slice(&(950_000_000i32).to_le_bytes());
        let h = Header::parse(&b).unwrap();
        assert_eq!(h.warnings().len(), 1);
    }
}
