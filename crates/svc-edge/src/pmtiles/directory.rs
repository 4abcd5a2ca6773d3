//! PMTiles v3 directories: varint decoding, the §4.7 entry checks, and lookup.
//!
//! A decoded directory is four varint columns after an entry count: tile-id deltas, run
//! lengths, lengths, and offsets where 0 means "right after the previous entry" and any
//! other value is offset + 1. Run length 0 marks a pointer to a leaf directory.
//!
//! Hand-written because `pmtiles::Directory` keeps its entries private: the mount must see
//! every entry to check it against the sections, and the hot path needs a synchronous
//! search over entries that stay parsed for the life of the mount.

use pmtiles::MAX_TILE_ID;

/// One directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// First tile id covered.
    pub tile_id: u64,
    /// Offset inside the tile data section, or inside the leaf section for leaf pointers.
    pub offset: u64,
    /// Stored length in bytes.
    pub length: u32,
    /// Number of consecutive ids sharing these bytes; 0 for a leaf pointer.
    pub run_length: u32,
}

/// A decoded, validated directory, entries in strictly increasing tile-id order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Directory {
    entries: Vec<Entry>,
}

/// A directory that breaks the format or the §4.7 checks.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DirectoryError {
    /// Truncated or overlong varints, or counts that cannot fit the bytes.
    #[error("malformed directory encoding: {why}")]
    Malformed {
        /// What was wrong.
        why: &'static str,
    },
    /// No entries at all.
    #[error("directory has no entries")]
    Empty,
    /// Tile ids repeat or go backwards.
    #[error("entry {index} has tile id {id} after {prev}; ids must strictly increase")]
    IdsNotIncreasing {
        /// Index of the offending entry.
        index: usize,
        /// Previous id.
        prev: u64,
        /// Offending id.
        id: u64,
    },
    /// A tile or leaf entry with length 0.
    #[error("entry for tile id {tile_id} has length 0")]
    ZeroLength {
        /// Offending id.
        tile_id: u64,
    },
    /// A run extends past the last valid tile id.
    #[error("run of {run_length} from tile id {tile_id} passes the last valid tile id")]
    RunOverflow {
        /// First id of the run.
        tile_id: u64,
        /// Its run length.
        run_length: u32,
    },
    /// A run reaches the next entry's id.
    #[error("run of {run_length} from tile id {tile_id} reaches the next entry's id {next}")]
    RunOverlap {
        /// First id of the run.
        tile_id: u64,
        /// Its run length.
        run_length: u32,
        /// The next entry's id.
        next: u64,
    },
    /// An entry's bytes lie outside its section.
    #[error(
        "entry for tile id {tile_id} at {offset}+{length} lies outside its {section_len}-byte {section} section"
    )]
    OutOfSection {
        /// Offending id.
        tile_id: u64,
        /// Entry offset.
        offset: u64,
        /// Entry length.
        length: u32,
        /// `data` or `leaves`.
        section: &'static str,
        /// That section's length.
        section_len: u64,
    },
}

impl Entry {
    /// Whether this entry points at a leaf directory rather than tile data.
    pub fn is_leaf(&self) -> bool {
        self.run_length == 0
    }

    /// Whether `id` falls inside this tile entry's run.
    pub fn covers(&self, id: u64) -> bool {
        !self.is_leaf() && id >= self.tile_id && id - self.tile_id < u64::from(self.run_length)
    }
}

impl Directory {
    /// Decodes an uncompressed directory. Trailing bytes after the last column are
    /// ignored, as other readers do.
    pub fn decode(bytes: &[u8]) -> Result<Self, DirectoryError> {
        let mut r = Reader { buf: bytes };
        let count = r.varint()?;
        // Every entry needs at least one byte in each of the four columns.
        if count > (r.buf.len() / 4) as u64 {
            return Err(DirectoryError::Malformed {
                why: "entry count exceeds the directory size",
            });
        }
        let mut entries = vec![
            Entry {
                tile_id: 0,
                offset: 0,
                length: 0,
                run_length: 0
            };
            count as usize
        ];
        let mut id = 0u64;
        for e in &mut entries {
            id = id
                .checked_add(r.varint()?)
                .ok_or(DirectoryError::Malformed {
                    why: "tile id overflows u64",
                })?;
            e.tile_id = id;
        }
        for e in &mut entries {
            e.run_length = r.varint_u32("run length exceeds u32")?;
        }
        for e in &mut entries {
            e.length = r.varint_u32("length exceeds u32")?;
        }
        let mut next_contiguous: Option<u64> = None;
        for e in &mut entries {
            let raw = r.varint()?;
            e.offset = match (raw, next_contiguous) {
                (0, Some(next)) => next,
                (0, None) => {
                    return Err(DirectoryError::Malformed {
                        why: "first offset is 0 (contiguous with nothing)",
                    });
                }
                (v, _) => v - 1,
            };
            next_contiguous = e.offset.checked_add(u64::from(e.length));
            if next_contiguous.is_none() {
                return Err(DirectoryError::Malformed {
                    why: "offset + length overflows u64",
                });
            }
        }
        Ok(Self { entries })
    }

    /// Applies the §4.7 directory checks against the sizes of the tile data and leaf
    /// sections.
    pub fn validate(&self, data_len: u64, leaves_len: u64) -> Result<(), DirectoryError> {
        if self.entries.is_empty() {
            return Err(DirectoryError::Empty);
        }
        for (index, e) in self.entries.iter().enumerate() {
            let next = self.entries.get(index + 1).map(|n| n.tile_id);
            if let Some(next) = next
                && next <= e.tile_id
            {
                return Err(DirectoryError::IdsNotIncreasing {
                    index: index + 1,
                    prev: e.tile_id,
                    id: next,
                });
            }
            if e.length == 0 {
                return Err(DirectoryError::ZeroLength { tile_id: e.tile_id });
            }
            let (section, section_len) = if e.is_leaf() {
                ("leaves", leaves_len)
            } else {
                ("data", data_len)
            };
            if e.offset
                .checked_add(u64::from(e.length))
                .is_none_or(|end| end > section_len)
            {
                return Err(DirectoryError::OutOfSection {
                    tile_id: e.tile_id,
                    offset: e.offset,
                    length: e.length,
                    section,
                    section_len,
                });
            }
            if e.is_leaf() {
                continue;
            }
            // Last id of the run: tile_id + run_length - 1.
            let last = e.tile_id.checked_add(u64::from(e.run_length) - 1);
            let Some(last) = last.filter(|&l| l <= MAX_TILE_ID) else {
                return Err(DirectoryError::RunOverflow {
                    tile_id: e.tile_id,
                    run_length: e.run_length,
                });
            };
            if let Some(next) = next
                && last >= next
            {
                return Err(DirectoryError::RunOverlap {
                    tile_id: e.tile_id,
                    run_length: e.run_length,
                    next,
                });
            }
        }
        Ok(())
    }

    /// The last entry whose tile id is ≤ `id` (§4.8 step 3), if any.
    pub fn find(&self, id: u64) -> Option<&Entry> {
        let idx = self.entries.partition_point(|e| e.tile_id <= id);
        idx.checked_sub(1).and_then(|i| self.entries.get(i))
    }

    /// The entries in tile-id order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Approximate heap footprint, for the leaf cache budget.
    pub fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.entries.len() * std::mem::size_of::<Entry>()
    }

    /// Encodes entries as given, valid or not. The `pmtiles` crate's encoder is private and
    /// only sees entries its writer built, so tests use this one to craft directories the
    /// mount must reject.
    pub fn encode(entries: &[Entry]) -> Vec<u8> {
        let mut out = Vec::with_capacity(entries.len() * 4 + 10);
        put_varint(&mut out, entries.len() as u64);
        let mut prev = 0u64;
        for e in entries {
            put_varint(&mut out, e.tile_id.wrapping_sub(prev));
            prev = e.tile_id;
        }
        for e in entries {
            put_varint(&mut out, u64::from(e.run_length));
        }
        for e in entries {
            put_varint(&mut out, u64::from(e.length));
        }
        let mut next: Option<u64> = None;
        for e in entries {
            let raw = if next == Some(e.offset) {
                0
            } else {
                e.offset + 1
            };
            put_varint(&mut out, raw);
            next = e.offset.checked_add(u64::from(e.length));
        }
        out
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Cursor over the directory bytes.
struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    /// Reads one LEB128 varint of at most 10 bytes whose value fits u64.
    fn varint(&mut self) -> Result<u64, DirectoryError> {
        let mut value = 0u64;
        for (i, &byte) in self.buf.iter().enumerate().take(10) {
            let bits = u64::from(byte & 0x7f);
            if i == 9 && byte > 1 {
                return Err(DirectoryError::Malformed {
                    why: "varint overflows u64",
                });
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(DirectoryError::Malformed {
            why: if self.buf.len() < 10 {
                "truncated varint"
            } else {
                "varint longer than 10 bytes"
            },
        })
    }

    fn varint_u32(&mut self, why: &'static str) -> Result<u32, DirectoryError> {
        u32::try_from(self.varint()?).map_err(|_| DirectoryError::Malformed { why })
    }
}

impl DirectoryError {
    /// Short machine reason for logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed { .. } => "bad_directory",
            Self::Empty => "empty_directory",
            Self::IdsNotIncreasing { .. } => "ids_not_increasing",
            Self::ZeroLength { .. } => "zero_length",
            Self::RunOverflow { .. } => "run_overflow",
            Self::RunOverlap { .. } => "run_overlap",
            Self::OutOfSection { .. } => "offset_out_of_range",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile(tile_id: u64, offset: u64, length: u32, run_length: u32) -> Entry {
        Entry {
            tile_id,
            offset,
            length,
            run_length,
        }
    }

    #[test]
    fn encoded_entries_decode_back_with_contiguous_offsets() {
        let entries = vec![
            tile(0, 0, 10, 1),
            tile(1, 10, 5, 3),
            tile(4, 0, 10, 1),
            tile(90, 100, 7, 0),
        ];
        let bytes = Directory::encode(&entries);
        // Second offset is contiguous, so it is written as 0.
        assert_eq!(bytes[1 + 4 + 4 + 4 + 1], 0);
        let dir = Directory::decode(&bytes).unwrap();
        assert_eq!(dir.entries(), &entries[..]);
        dir.validate(110, 107).unwrap();
    }

    #[test]
    fn find_returns_the_last_entry_at_or_before_the_id() {
        let dir = Directory {
            entries: vec![tile(5, 0, 1, 2), tile(10, 1, 1, 1)],
        };
        assert_eq!(dir.find(4), None);
        assert_eq!(dir.find(6).unwrap().tile_id, 5);
        assert!(dir.find(6).unwrap().covers(6));
        assert!(!dir.find(7).unwrap().covers(7));
        assert_eq!(dir.find(u64::MAX).unwrap().tile_id, 10);
    }

    #[test]
    fn truncated_and_overlong_varints_are_malformed() {
        assert_eq!(
            Directory::decode(&[]).unwrap_err().reason(),
            "bad_directory"
        );
        assert_eq!(
            Directory::decode(&[0x80]).unwrap_err().reason(),
            "bad_directory"
        );
        let overlong = [0xff; 11];
        assert_eq!(
            Directory::decode(&overlong).unwrap_err().reason(),
            "bad_directory"
        );
        // 10th byte above 1 would overflow u64.
        let mut too_big = vec![0xffu8; 9];
        too_big.push(0x02);
        assert_eq!(
            Directory::decode(&too_big).unwrap_err().reason(),
            "bad_directory"
        );
    }

    #[test]
    fn counts_larger_than_the_bytes_are_malformed_before_allocating() {
        let mut bytes = Vec::new();
        put_varint(&mut bytes, u64::MAX / 2);
        bytes.extend_from_slice(&[1, 1, 1, 1]);
        assert_eq!(
            Directory::decode(&bytes),
            Err(DirectoryError::Malformed {
                why: "entry count exceeds the directory size"
            })
        );
    }

    #[test]
    fn a_first_offset_of_zero_is_malformed() {
        let mut bytes = Directory::encode(&[tile(0, 0, 1, 1)]);
        *bytes.last_mut().unwrap() = 0;
        assert_eq!(
            Directory::decode(&bytes).unwrap_err().reason(),
            "bad_directory"
        );
    }

    #[test]
    fn oversized_run_lengths_and_lengths_are_malformed() {
        let mut bytes = vec![1, 0];
        put_varint(&mut bytes, u64::from(u32::MAX) + 1);
        bytes.extend_from_slice(&[1, 1]);
        assert_eq!(
            Directory::decode(&bytes).unwrap_err().reason(),
            "bad_directory"
        );
    }

    #[test]
    fn validation_rejects_each_broken_entry_kind() {
        let check = |entries: Vec<Entry>| {
            let dir = Directory::decode(&Directory::encode(&entries)).unwrap();
            dir.validate(100, 100).unwrap_err().reason()
        };
        assert_eq!(check(vec![]), "empty_directory");
        assert_eq!(
            check(vec![tile(3, 0, 1, 1), tile(3, 1, 1, 1)]),
            "ids_not_increasing"
        );
        assert_eq!(check(vec![tile(3, 0, 0, 1)]), "zero_length");
        assert_eq!(
            check(vec![tile(3, 0, 1, 1), tile(4, 99, 2, 1)]),
            "offset_out_of_range"
        );
        assert_eq!(
            check(vec![tile(3, 0, 1, 0), tile(4, 0, 101, 0)]),
            "offset_out_of_range"
        );
        assert_eq!(check(vec![tile(MAX_TILE_ID, 0, 1, 2)]), "run_overflow");
        assert_eq!(
            check(vec![tile(3, 0, 1, 2), tile(4, 1, 1, 1)]),
            "run_overlap"
        );
    }

    #[test]
    fn decreasing_ids_cannot_even_be_encoded_as_valid_deltas() {
        // A "backwards" delta wraps to a huge value, so the decoded ids overflow.
        let bytes = Directory::encode(&[tile(5, 0, 1, 1), tile(4, 1, 1, 1)]);
        assert_eq!(
            Directory::decode(&bytes).unwrap_err().reason(),
            "bad_directory"
        );
    }
}
