//! Why an archive failed to mount, and why a tile lookup failed.
//!
//! Every `PackError` has a short machine `reason()` for the `pack_mount` log and
//! `pmtiles-info`; its `Display` names the values involved and what to do about them.

use std::io;
use std::path::PathBuf;

use super::codings::DecodeError;
use super::directory::DirectoryError;

/// An archive that cannot be mounted (§4.7).
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The file could not be opened, mapped or read.
    #[error("cannot read archive {path}: {source}; check the path and its permissions")]
    Io {
        /// The archive path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file is shorter than the fixed header.
    #[error(
        "archive is {len} bytes, shorter than the 127-byte PMTiles header; the file is truncated"
    )]
    TooShort {
        /// File length in bytes.
        len: u64,
    },
    /// The first seven bytes are not `PMTiles`.
    #[error("magic is {found:?}, expected \"PMTiles\"; this is not a PMTiles v3 archive")]
    BadMagic {
        /// The bytes found, lossily decoded.
        found: String,
    },
    /// The spec version is not 3.
    #[error("PMTiles version {version}, expected 3; convert the archive with `pmtiles convert`")]
    BadVersion {
        /// The version byte found.
        version: u8,
    },
    /// The header's root directory has length 0.
    #[error("root directory is empty; the archive has no tiles or a broken header")]
    EmptyRoot,
    /// The root directory does not start after the header or ends past byte 16,384.
    #[error(
        "root directory at {offset}+{length} must lie within bytes 127..16384 so one 16 KiB read covers header and root; rewrite the archive"
    )]
    RootTooFar {
        /// Root offset from the header.
        offset: u64,
        /// Root length from the header.
        length: u64,
    },
    /// A header section starts past the end of the file or overflows u64.
    #[error(
        "{section} section {offset}+{length} lies outside the {file_len}-byte file; the header is corrupt"
    )]
    SectionOutOfRange {
        /// Which section: root, metadata, leaves or data.
        section: &'static str,
        /// Section offset from the header.
        offset: u64,
        /// Section length from the header.
        length: u64,
        /// File length in bytes.
        file_len: u64,
    },
    /// A header section starts inside the file but ends past its end.
    #[error(
        "{section} section {offset}+{length} ends past the end of the {file_len}-byte file; the file is truncated"
    )]
    SectionTruncated {
        /// Which section: root, metadata, leaves or data.
        section: &'static str,
        /// Section offset from the header.
        offset: u64,
        /// Section length from the header.
        length: u64,
        /// File length in bytes.
        file_len: u64,
    },
    /// A compression byte outside its range (internal: 1..4, tiles: 0..4).
    #[error("{field} compression {value} is not one of the PMTiles v3 values ({allowed})")]
    BadCompression {
        /// `internal` or `tile`.
        field: &'static str,
        /// The byte found.
        value: u8,
        /// The allowed range, for the message.
        allowed: &'static str,
    },
    /// A tile type byte past 6.
    #[error("tile type {value} is not one of the PMTiles v3 values (0..6)")]
    BadTileType {
        /// The byte found.
        value: u8,
    },
    /// min_zoom > max_zoom or max_zoom > 31.
    #[error("zoom range {min}..{max} is invalid; need min_zoom <= max_zoom <= 31")]
    BadZoom {
        /// min_zoom from the header.
        min: u8,
        /// max_zoom from the header.
        max: u8,
    },
    /// A directory failed its §4.7 checks.
    #[error("directory at byte {offset} (depth {depth}): {source}")]
    Directory {
        /// Absolute file offset of the (stored) directory.
        offset: u64,
        /// 1 for the root, 2 and 3 for leaves.
        depth: u8,
        /// What was wrong with it.
        source: DirectoryError,
    },
    /// A leaf pointer in a depth-3 directory: nesting is limited to 3 levels.
    #[error("directory at byte {offset} nests leaves deeper than 3 levels; rewrite the archive")]
    TooDeep {
        /// Absolute file offset of the offending directory.
        offset: u64,
    },
    /// A directory or the metadata did not decode.
    #[error("{what} at byte {offset}: {source}")]
    Decode {
        /// `directory` or `metadata`.
        what: &'static str,
        /// Absolute file offset of the stored block.
        offset: u64,
        /// The decoder's error.
        source: DecodeError,
    },
    /// The metadata is not a JSON object.
    #[error("metadata is not a JSON object ({why}); fix the archive's metadata")]
    BadMetadata {
        /// Why it was rejected.
        why: String,
    },
    /// The `.b3` sidecar exists but cannot be read or has no 64-hex first token.
    #[error(
        "sidecar {path} is unusable ({why}); it must start with the 64-hex BLAKE3 of the archive"
    )]
    BadSidecar {
        /// The sidecar path.
        path: PathBuf,
        /// Why it was rejected.
        why: String,
    },
    /// The `.b3` sidecar names a different digest than the file has.
    #[error(
        "sidecar {path} says b3 {expected} but the archive hashes to {actual}; the archive or its sidecar is stale or damaged"
    )]
    SidecarMismatch {
        /// The sidecar path.
        path: PathBuf,
        /// The digest in the sidecar.
        expected: String,
        /// The digest of the file.
        actual: String,
    },
}

/// Why a tile could not be looked up (the HTTP layer maps these to statuses).
#[derive(Debug, thiserror::Error)]
pub enum TileError {
    /// z > 31, or x or y ≥ 2^z (400).
    #[error("tile coordinate outside the zoom level's grid")]
    BadCoord,
    /// z outside the archive's [min_zoom, max_zoom] (404).
    #[error("zoom {z} outside the archive's range {min}..{max}")]
    ZoomOutOfRange {
        /// Requested zoom.
        z: u8,
        /// Archive min_zoom.
        min: u8,
        /// Archive max_zoom.
        max: u8,
    },
    /// A leaf that verified at mount no longer parses: the mapped file changed in place,
    /// which the mount contract forbids (500 `integrity`).
    #[error("archive changed after it was verified: {0}")]
    Integrity(Box<PackError>),
}

impl PackError {
    /// Short machine reason for logs and metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::TooShort { .. } | Self::SectionTruncated { .. } => "truncated",
            Self::BadMagic { .. } => "bad_magic",
            Self::BadVersion { .. } => "bad_version",
            Self::EmptyRoot => "empty_root",
            Self::RootTooFar { .. } => "root_too_far",
            Self::SectionOutOfRange { .. } => "offset_out_of_range",
            Self::BadCompression { .. } => "bad_compression",
            Self::BadTileType { .. } => "bad_tile_type",
            Self::BadZoom { .. } => "bad_zoom",
            Self::Directory { source, .. } => source.reason(),
            Self::TooDeep { .. } => "too_deep",
            Self::Decode {
                source: DecodeError::CapExceeded { .. },
                ..
            } => "decompress_cap",
            Self::Decode {
                source: DecodeError::Corrupt { .. },
                ..
            } => "decompress_failed",
            Self::BadMetadata { .. } => "bad_metadata",
            Self::BadSidecar { .. } => "bad_sidecar",
            Self::SidecarMismatch { .. } => "sidecar_mismatch",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_errors_report_their_own_reason() {
        let err = PackError::Directory {
            offset: 127,
            depth: 1,
            source: DirectoryError::Empty,
        };
        assert_eq!(err.reason(), "empty_directory");
        assert!(err.to_string().contains("byte 127"));
    }

    #[test]
    fn decode_errors_split_into_cap_and_corruption() {
        let cap = PackError::Decode {
            what: "directory",
            offset: 0,
            source: DecodeError::CapExceeded { limit: 1 },
        };
        assert_eq!(cap.reason(), "decompress_cap");
        let bad = PackError::Decode {
            what: "metadata",
            offset: 0,
            source: DecodeError::Corrupt {
                coding: super::super::codings::Coding::Gzip,
                why: "x".into(),
            },
        };
        assert_eq!(bad.reason(), "decompress_failed");
    }
}
