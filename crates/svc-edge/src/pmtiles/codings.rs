//! Content codings of tiles, directories and metadata, and capped decoding (§4.9).
//!
//! Every decoder is pure Rust (flate2 on miniz_oxide, brotli-decompressor, ruzstd) and
//! streams through a `take(limit + 1)` so a decompression bomb stops after one byte past
//! its cap instead of filling memory.

use std::io::Read;

use pmtiles::Compression;

/// Spec default for `ingress.max_decompress_ratio`.
pub const DEFAULT_MAX_DECOMPRESS_RATIO: u32 = 10;
/// Spec default for `ingress.max_decompress_bytes` (10 MiB).
pub const DEFAULT_MAX_DECOMPRESS_BYTES: u64 = 10 * 1024 * 1024;

/// Buffer brotli-decompressor reads its input through.
const BROTLI_BUFFER_BYTES: usize = 4096;

/// The stored coding of a tile, a directory or the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// Stored as is (header value 0 "unknown" or 1 "none").
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// Brotli (RFC 7932).
    Brotli,
    /// Zstandard (RFC 8878).
    Zstd,
}

/// Limits on decoded output, from `ingress.max_decompress_ratio` and `max_decompress_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeCaps {
    /// Largest allowed decoded/stored size ratio for tiles.
    pub max_ratio: u32,
    /// Absolute cap on any decoded output, tiles, directories and metadata alike.
    pub max_bytes: u64,
}

/// Why a decode failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The output grew past its cap (406 `decompress_cap` for tiles).
    #[error(
        "decoded output exceeds the cap of {limit} bytes; raise ingress.max_decompress_bytes or max_decompress_ratio if the data is trusted"
    )]
    CapExceeded {
        /// The cap that was exceeded, in bytes.
        limit: u64,
    },
    /// The stored bytes are not a valid stream of their coding.
    #[error("stored bytes are not valid {coding:?} data: {why}")]
    Corrupt {
        /// The coding the bytes claimed to be in.
        coding: Coding,
        /// The decoder's complaint.
        why: String,
    },
}

impl Coding {
    /// The coding a header compression byte stands for, `None` for values past 4.
    pub fn from_header(value: u8) -> Option<Self> {
        match value {
            0 | 1 => Some(Self::None),
            2 => Some(Self::Gzip),
            3 => Some(Self::Brotli),
            4 => Some(Self::Zstd),
            _ => None,
        }
    }

    /// The `Content-Encoding` token, `None` for identity.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Gzip => Some("gzip"),
            Self::Brotli => Some("br"),
            Self::Zstd => Some("zstd"),
        }
    }
}

impl From<Compression> for Coding {
    fn from(value: Compression) -> Self {
        match value {
            Compression::Unknown | Compression::None => Self::None,
            Compression::Gzip => Self::Gzip,
            Compression::Brotli => Self::Brotli,
            Compression::Zstd => Self::Zstd,
        }
    }
}

impl DecodeCaps {
    /// The cap on a decoded tile stored in `stored_len` bytes: min(stored × ratio, max).
    pub fn tile_limit(&self, stored_len: usize) -> u64 {
        let by_ratio = (stored_len as u64).saturating_mul(u64::from(self.max_ratio));
        by_ratio.min(self.max_bytes)
    }

    /// The cap on a decoded directory or metadata block: the ratio does not apply.
    pub fn internal_limit(&self) -> u64 {
        self.max_bytes
    }
}

impl Default for DecodeCaps {
    fn default() -> Self {
        Self {
            max_ratio: DEFAULT_MAX_DECOMPRESS_RATIO,
            max_bytes: DEFAULT_MAX_DECOMPRESS_BYTES,
        }
    }
}

/// Decodes `input` stored in `coding`, failing once the output would exceed `limit` bytes.
pub fn decode(coding: Coding, input: &[u8], limit: u64) -> Result<Vec<u8>, DecodeError> {
    match coding {
        Coding::None => {
            if input.len() as u64 > limit {
                return Err(DecodeError::CapExceeded { limit });
            }
            Ok(input.to_vec())
        }
        Coding::Gzip => read_capped(coding, flate2::read::GzDecoder::new(input), limit),
        Coding::Brotli => read_capped(
            coding,
            brotli_decompressor::Decompressor::new(input, BROTLI_BUFFER_BYTES),
            limit,
        ),
        Coding::Zstd => {
            let decoder = ruzstd::decoding::StreamingDecoder::new(input)
                .map_err(|e| corrupt(coding, e.to_string()))?;
            read_capped(coding, decoder, limit)
        }
    }
}

/// Decodes a stored tile under the tile cap, min(stored × ratio, max_bytes).
pub fn decode_tile(
    coding: Coding,
    input: &[u8],
    caps: &DecodeCaps,
) -> Result<Vec<u8>, DecodeError> {
    decode(coding, input, caps.tile_limit(input.len()))
}

fn read_capped(coding: Coding, reader: impl Read, limit: u64) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| corrupt(coding, e.to_string()))?;
    if out.len() as u64 > limit {
        return Err(DecodeError::CapExceeded { limit });
    }
    Ok(out)
}

fn corrupt(coding: Coding, why: String) -> DecodeError {
    DecodeError::Corrupt { coding, why }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn header_values_map_to_codings_and_unknown_counts_as_none() {
        assert_eq!(Coding::from_header(0), Some(Coding::None));
        assert_eq!(Coding::from_header(1), Some(Coding::None));
        assert_eq!(Coding::from_header(4), Some(Coding::Zstd));
        assert_eq!(Coding::from_header(5), None);
        assert_eq!(Coding::Brotli.content_encoding(), Some("br"));
        assert_eq!(Coding::from(Compression::Unknown), Coding::None);
    }

    #[test]
    fn tile_limit_is_the_smaller_of_ratio_and_absolute_cap() {
        let caps = DecodeCaps {
            max_ratio: 10,
            max_bytes: 1000,
        };
        assert_eq!(caps.tile_limit(50), 500);
        assert_eq!(caps.tile_limit(200), 1000);
        assert_eq!(caps.internal_limit(), 1000);
        assert_eq!(DecodeCaps::default().max_bytes, 10 * 1024 * 1024);
    }

    #[test]
    fn gzip_decodes_within_the_cap_and_stops_just_past_it() {
        let data = vec![7u8; 10_000];
        let stored = gzip(&data);
        assert_eq!(decode(Coding::Gzip, &stored, 10_000).unwrap(), data);
        assert_eq!(
            decode(Coding::Gzip, &stored, 9_999),
            Err(DecodeError::CapExceeded { limit: 9_999 })
        );
        let caps = DecodeCaps {
            max_ratio: 2,
            max_bytes: u64::MAX,
        };
        assert!(matches!(
            decode_tile(Coding::Gzip, &stored, &caps),
            Err(DecodeError::CapExceeded { .. })
        ));
    }

    #[test]
    fn identity_is_capped_too() {
        assert_eq!(decode(Coding::None, b"abc", 3).unwrap(), b"abc");
        assert!(matches!(
            decode(Coding::None, b"abcd", 3),
            Err(DecodeError::CapExceeded { .. })
        ));
    }

    #[test]
    fn garbage_is_corrupt_for_every_coding() {
        for coding in [Coding::Gzip, Coding::Brotli, Coding::Zstd] {
            let err = decode(coding, b"\xff\xfe definitely not compressed", 1 << 20).unwrap_err();
            assert!(
                matches!(err, DecodeError::Corrupt { .. }),
                "{coding:?}: {err:?}"
            );
        }
    }

    #[test]
    fn a_truncated_gzip_stream_is_corrupt() {
        let stored = gzip(b"hello hello hello hello");
        let err = decode(Coding::Gzip, &stored[..stored.len() - 4], 1 << 20).unwrap_err();
        assert!(matches!(err, DecodeError::Corrupt { .. }));
    }

    #[test]
    fn zstd_round_trips_through_the_ruzstd_encoder() {
        let data = b"zstd zstd zstd zstd zstd".repeat(20);
        let stored = ruzstd::encoding::compress_to_vec(
            &data[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        assert_eq!(decode(Coding::Zstd, &stored, 1 << 20).unwrap(), data);
        assert!(matches!(
            decode(Coding::Zstd, &stored, 10),
            Err(DecodeError::CapExceeded { .. })
        ));
    }
}
