//! Damaged variants of valid archives, for the EDGE-T12 mount tests.
//!
//! Each `Corruption` rewrites a writer-made archive so that exactly one §4.7 check fails,
//! and names the `PackError::reason` the mount must report for it.

use std::io;
use std::path::Path;

use super::codings::{Coding, decode};
use super::directory::Directory;
use super::header::{HEADER_LEN, Header, ROOT_LIMIT};
use super::writer::{encode, gzip};

/// One way to break an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    /// Magic is not `PMTiles`.
    BadMagic,
    /// Version byte 2.
    Version2,
    /// Root directory moved to the end of the file, past byte 16,384.
    RootPast16k,
    /// Tile data section starts past the end of the file.
    OffsetPastEof,
    /// Last byte cut off.
    Truncated,
    /// Root directory with a repeated tile id.
    IdsNotIncreasing,
    /// Root directory padded so it decodes to `decoded_bytes` (gzip only, ≤ ~16 MB).
    DirectoryOverCap {
        /// Decoded size to reach; pick one above the cap under test.
        decoded_bytes: u64,
    },
}

impl Corruption {
    /// Every variant, with the directory padded past the default 10 MiB cap.
    pub const ALL: [Self; 7] = [
        Self::BadMagic,
        Self::Version2,
        Self::RootPast16k,
        Self::OffsetPastEof,
        Self::Truncated,
        Self::IdsNotIncreasing,
        Self::DirectoryOverCap {
            decoded_bytes: 11 * 1024 * 1024,
        },
    ];

    /// The reason the mount reports for this damage.
    pub fn reason(self) -> &'static str {
        match self {
            Self::BadMagic => "bad_magic",
            Self::Version2 => "bad_version",
            Self::RootPast16k => "root_too_far",
            Self::OffsetPastEof => "offset_out_of_range",
            Self::Truncated => "truncated",
            Self::IdsNotIncreasing => "ids_not_increasing",
            Self::DirectoryOverCap { .. } => "decompress_cap",
        }
    }

    /// A short name for file names and test output.
    pub fn name(self) -> &'static str {
        match self {
            Self::BadMagic => "bad-magic",
            Self::Version2 => "version-2",
            Self::RootPast16k => "root-past-16k",
            Self::OffsetPastEof => "offset-past-eof",
            Self::Truncated => "truncated",
            Self::IdsNotIncreasing => "ids-not-increasing",
            Self::DirectoryOverCap { .. } => "directory-over-cap",
        }
    }

    /// Applies the damage to a valid archive made by `ArchiveBuilder`.
    pub fn apply(self, valid: &[u8]) -> io::Result<Vec<u8>> {
        let header = Header::parse(valid)
            .map_err(|e| invalid(format!("input archive is not valid: {e}")))?;
        let mut out = valid.to_vec();
        match self {
            Self::BadMagic => out[..7].copy_from_slice(b"NOTPMTL"),
            Self::Version2 => out[7] = 2,
            Self::RootPast16k => {
                let root = slice(valid, header.root.offset, header.root.length).to_vec();
                let at = out.len() as u64;
                out.extend_from_slice(&root);
                put_u64(&mut out, 8, at.max(ROOT_LIMIT));
            }
            Self::OffsetPastEof => {
                if header.data.length == 0 {
                    return Err(invalid("input archive has no tile data".into()));
                }
                let past_eof = out.len() as u64 + 1;
                put_u64(&mut out, 56, past_eof);
            }
            Self::Truncated => {
                out.pop();
            }
            Self::IdsNotIncreasing => {
                let coding = Coding::from(header.internal_compression);
                let mut entries = root_entries(valid, &header, coding)?;
                let first = entries[0];
                match entries.get_mut(1) {
                    Some(second) => second.tile_id = first.tile_id,
                    None => entries.push(first),
                }
                replace_root(&mut out, &encode(coding, &Directory::encode(&entries)))?;
            }
            Self::DirectoryOverCap { decoded_bytes } => {
                let coding = Coding::from(header.internal_compression);
                if coding != Coding::Gzip {
                    return Err(invalid(
                        "directory padding needs a gzip-internal archive".into(),
                    ));
                }
                let mut raw = decode(
                    coding,
                    slice(valid, header.root.offset, header.root.length),
                    u64::MAX,
                )
                .map_err(|e| invalid(e.to_string()))?;
                // Readers ignore bytes after the last column, so only the cap rejects this.
                raw.resize(raw.len().max(decoded_bytes as usize), 0);
                replace_root(&mut out, &gzip(&raw))?;
            }
        }
        Ok(out)
    }
}

/// Writes `<archive>.b3` holding `hex` in b3sum format.
pub fn write_sidecar(archive: &Path, hex: &str) -> io::Result<()> {
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::write(
        super::sidecar::sidecar_path(archive),
        format!("{hex}  {name}\n"),
    )
}

fn root_entries(
    valid: &[u8],
    header: &Header,
    coding: Coding,
) -> io::Result<Vec<super::directory::Entry>> {
    let raw = decode(
        coding,
        slice(valid, header.root.offset, header.root.length),
        u64::MAX,
    )
    .map_err(|e| invalid(e.to_string()))?;
    let dir = Directory::decode(&raw).map_err(|e| invalid(e.to_string()))?;
    if dir.entries().is_empty() {
        return Err(invalid("input archive has an empty root".into()));
    }
    Ok(dir.entries().to_vec())
}

/// Writes `root` right after the header and points the header at it.
fn replace_root(out: &mut [u8], root: &[u8]) -> io::Result<()> {
    let end = HEADER_LEN + root.len();
    if end as u64 > ROOT_LIMIT || end > out.len() {
        return Err(invalid(format!(
            "rewritten root of {} bytes does not fit before byte 16384",
            root.len()
        )));
    }
    out[HEADER_LEN..end].copy_from_slice(root);
    put_u64(out, 8, HEADER_LEN as u64);
    put_u64(out, 16, root.len() as u64);
    Ok(())
}

fn slice(bytes: &[u8], offset: u64, length: u64) -> &[u8] {
    &bytes[offset as usize..(offset + length) as usize]
}

fn put_u64(out: &mut [u8], at: usize, v: u64) {
    out[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why)
}
