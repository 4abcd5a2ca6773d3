//! A mounted PMTiles v3 archive: verified once at open, then served from the mapping.
//!
//! `open` runs every §4.7 check (header, all directories to depth 3, metadata, whole-file
//! BLAKE3 and the optional `.b3` sidecar) so that a mounted archive never fails later for
//! a reason the mount could have seen. `lookup` is synchronous and allocation-free on a
//! root-directory hit: the root is parsed once and read without locks, and tile bodies
//! are `Bytes` views of the mapping.

use std::collections::HashSet;
use std::fs::Metadata;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use pmtiles::{Compression, TileType};

use super::codings::{Coding, DecodeCaps, decode};
use super::directory::{Directory, Entry};
use super::error::{PackError, TileError};
use super::header::Header;
use super::leaves::{LEAF_CACHE_BYTES, LeafCache, LeafKey};
use super::metadata::read_metadata;
use super::sidecar::{check_sidecar, sidecar_path};
use super::tileid::tile_id;

/// Directories nest at most this deep: the root is depth 1.
pub const MAX_DIRECTORY_DEPTH: u8 = 3;

/// A verified archive.
pub struct Archive {
    bytes: Bytes,
    header: Header,
    internal: Coding,
    root: Directory,
    metadata: serde_json::Value,
    digest: [u8; 32],
    stats: ArchiveStats,
    warnings: Vec<String>,
    leaves: LeafCache,
    caps: DecodeCaps,
    file: Option<Metadata>,
}

/// What the mount found while walking the directories.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ArchiveStats {
    /// Entries in the root directory.
    pub root_entries: u64,
    /// Distinct leaf directories decoded.
    pub leaf_directories: u64,
    /// Deepest directory level reached (1 = root only).
    pub depth: u8,
    /// Tile entries over all directories.
    pub tile_entries: u64,
    /// Tile ids addressed (sum of run lengths).
    pub addressed_tiles: u64,
    /// Decoded bytes of all directories.
    pub directory_bytes: u64,
}

/// The result of a tile lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TileLookup {
    /// The stored tile bytes, a zero-copy view of the mapping.
    Found(Bytes),
    /// No tile at that id (204).
    Absent,
}

impl Archive {
    /// Maps `path` and verifies it under `caps`, including the `<path>.b3` sidecar when
    /// one exists.
    pub fn open(path: &Path, caps: DecodeCaps) -> Result<Self, PackError> {
        let io_err = |source| PackError::Io {
            path: path.to_path_buf(),
            source,
        };
        let (bytes, meta) = crate::mapping::map_file(path).map_err(io_err)?;
        let mut archive = Self::from_bytes(bytes, caps)?;
        archive.file = Some(meta);
        check_sidecar(&sidecar_path(path), &archive.digest_hex())?;
        Ok(archive)
    }

    /// Verifies an archive already in memory (no sidecar check).
    pub fn from_bytes(bytes: Bytes, caps: DecodeCaps) -> Result<Self, PackError> {
        let header = Header::parse(&bytes)?;
        let internal = Coding::from(header.internal_compression);
        let leaves = LeafCache::new(LEAF_CACHE_BYTES);
        let mut walk = Walk {
            bytes: &bytes,
            header: &header,
            internal,
            caps,
            stats: ArchiveStats::default(),
        };
        let root = walk.root(&leaves)?;
        let stats = walk.stats;
        let metadata = read_metadata(&bytes, &header, internal, caps)?;
        let digest = *blake3::hash(&bytes).as_bytes();
        let warnings = header.warnings();
        Ok(Self {
            bytes,
            header,
            internal,
            root,
            metadata,
            digest,
            stats,
            warnings,
            leaves,
            caps,
            file: None,
        })
    }

    /// The stored bytes of tile `z/x/y`.
    pub fn lookup(&self, z: u8, x: u64, y: u64) -> Result<TileLookup, TileError> {
        let id = tile_id(z, x, y).ok_or(TileError::BadCoord)?;
        if z < self.header.min_zoom || z > self.header.max_zoom {
            return Err(TileError::ZoomOutOfRange {
                z,
                min: self.header.min_zoom,
                max: self.header.max_zoom,
            });
        }
        self.lookup_id(id)
    }

    /// The stored bytes of tile `id`, ignoring the zoom range.
    pub fn lookup_id(&self, id: u64) -> Result<TileLookup, TileError> {
        let Some(mut entry) = self.root.find(id).copied() else {
            return Ok(TileLookup::Absent);
        };
        let mut depth = 1;
        while entry.is_leaf() {
            depth += 1;
            if depth > MAX_DIRECTORY_DEPTH {
                // The mount rejected deeper nesting, so the mapping changed underneath us.
                let offset = self.header.leaves.offset + entry.offset;
                return Err(TileError::Integrity(Box::new(PackError::TooDeep {
                    offset,
                })));
            }
            let leaf = self.leaf(entry, depth)?;
            match leaf.find(id) {
                Some(e) => entry = *e,
                None => return Ok(TileLookup::Absent),
            }
        }
        if !entry.covers(id) {
            return Ok(TileLookup::Absent);
        }
        // Mount checked offset + length against the data section, and the section
        // against the file, so this range is inside the mapping.
        let start = (self.header.data.offset + entry.offset) as usize;
        Ok(TileLookup::Found(
            self.bytes.slice(start..start + entry.length as usize),
        ))
    }

    /// The whole archive, for `/edge/assets/<name>.pmtiles`.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// BLAKE3 of the whole file.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// BLAKE3 of the whole file as 64 lowercase hex digits.
    pub fn digest_hex(&self) -> String {
        blake3::Hash::from(self.digest).to_hex().to_string()
    }

    /// The parsed header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// What the tiles are.
    pub fn tile_type(&self) -> TileType {
        self.header.tile_type
    }

    /// The tiles' stored compression as the header states it.
    pub fn tile_compression(&self) -> Compression {
        self.header.tile_compression
    }

    /// The tiles' stored coding, with "unknown" folded into none (§4.9).
    pub fn tile_coding(&self) -> Coding {
        Coding::from(self.header.tile_compression)
    }

    /// Lowest zoom served.
    pub fn min_zoom(&self) -> u8 {
        self.header.min_zoom
    }

    /// Highest zoom served.
    pub fn max_zoom(&self) -> u8 {
        self.header.max_zoom
    }

    /// `[min_lon, min_lat, max_lon, max_lat]`.
    pub fn bounds(&self) -> [f64; 4] {
        self.header.bounds
    }

    /// `[lon, lat, zoom]` of the default view.
    pub fn center(&self) -> [f64; 3] {
        [
            self.header.center[0],
            self.header.center[1],
            f64::from(self.header.center_zoom),
        ]
    }

    /// The metadata object (empty when the archive has none).
    pub fn metadata(&self) -> &serde_json::Value {
        &self.metadata
    }

    /// Directory statistics from the mount walk.
    pub fn stats(&self) -> &ArchiveStats {
        &self.stats
    }

    /// Non-fatal findings (bounds or center out of range) for the mount log.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The file's metadata when opened from a path (size, mtime, inode for reload checks).
    pub fn file_metadata(&self) -> Option<&Metadata> {
        self.file.as_ref()
    }

    /// Bytes of parsed leaves currently cached.
    pub fn cached_leaf_bytes(&self) -> usize {
        self.leaves.bytes()
    }

    /// The leaf `entry` points at, from the cache or parsed afresh.
    fn leaf(&self, entry: Entry, depth: u8) -> Result<Arc<Directory>, TileError> {
        let key: LeafKey = (entry.offset, entry.length);
        if let Some(dir) = self.leaves.get(key) {
            return Ok(dir);
        }
        let walk = Walk {
            bytes: &self.bytes,
            header: &self.header,
            internal: self.internal,
            caps: self.caps,
            stats: ArchiveStats::default(),
        };
        let (dir, _) = walk
            .load_leaf(entry, depth)
            .map_err(|e| TileError::Integrity(Box::new(e)))?;
        let dir = Arc::new(dir);
        self.leaves.insert(key, Arc::clone(&dir));
        Ok(dir)
    }
}

impl std::fmt::Debug for Archive {
    /// Summarises instead of dumping the mapped bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("bytes", &self.bytes.len())
            .field("b3", &self.digest_hex())
            .field("header", &self.header)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The mount-time directory walk.
struct Walk<'a> {
    bytes: &'a [u8],
    header: &'a Header,
    internal: Coding,
    caps: DecodeCaps,
    stats: ArchiveStats,
}

impl Walk<'_> {
    /// Decodes and checks the root, then every leaf below it, warming `cache` with leaves
    /// while they fit. Each distinct (leaf, depth) is decoded once, so pointers repeated
    /// across directories cannot multiply the work.
    fn root(&mut self, cache: &LeafCache) -> Result<Directory, PackError> {
        let root_at = self.header.root.offset;
        let stored = section_slice(self.bytes, root_at, self.header.root.length);
        let (root, raw_len) = self.parse(stored, root_at, 1)?;
        self.stats.root_entries = root.entries().len() as u64;
        self.stats.depth = 1;
        self.count(&root, raw_len);

        let mut seen: HashSet<(LeafKey, u8)> = HashSet::new();
        let mut pending: Vec<(Entry, u8)> = leaf_pointers(&root, 2);
        while let Some((entry, depth)) = pending.pop() {
            if !seen.insert(((entry.offset, entry.length), depth)) {
                continue;
            }
            if depth > MAX_DIRECTORY_DEPTH {
                return Err(PackError::TooDeep {
                    offset: self.header.leaves.offset + entry.offset,
                });
            }
            let (leaf, raw_len) = self.load_leaf(entry, depth)?;
            self.stats.leaf_directories += 1;
            self.stats.depth = self.stats.depth.max(depth);
            self.count(&leaf, raw_len);
            pending.extend(leaf_pointers(&leaf, depth + 1));
            cache.insert_if_room((entry.offset, entry.length), Arc::new(leaf));
        }
        Ok(root)
    }

    /// Decodes the leaf `entry` points at; also returns its decoded size.
    fn load_leaf(&self, entry: Entry, depth: u8) -> Result<(Directory, usize), PackError> {
        let at = self.header.leaves.offset + entry.offset;
        let stored = section_slice(self.bytes, at, u64::from(entry.length));
        self.parse(stored, at, depth)
    }

    fn parse(&self, stored: &[u8], at: u64, depth: u8) -> Result<(Directory, usize), PackError> {
        let raw = decode(self.internal, stored, self.caps.internal_limit()).map_err(|source| {
            PackError::Decode {
                what: "directory",
                offset: at,
                source,
            }
        })?;
        let dir_err = |source| PackError::Directory {
            offset: at,
            depth,
            source,
        };
        let dir = Directory::decode(&raw).map_err(dir_err)?;
        dir.validate(self.header.data.length, self.header.leaves.length)
            .map_err(dir_err)?;
        Ok((dir, raw.len()))
    }

    fn count(&mut self, dir: &Directory, raw_len: usize) {
        for e in dir.entries().iter().filter(|e| !e.is_leaf()) {
            self.stats.tile_entries += 1;
            self.stats.addressed_tiles += u64::from(e.run_length);
        }
        self.stats.directory_bytes += raw_len as u64;
    }
}

fn leaf_pointers(dir: &Directory, depth: u8) -> Vec<(Entry, u8)> {
    dir.entries()
        .iter()
        .filter(|e| e.is_leaf())
        .map(|e| (*e, depth))
        .collect()
}

/// A slice already proven to lie inside the file by the header and directory checks.
fn section_slice(bytes: &[u8], offset: u64, length: u64) -> &[u8] {
    &bytes[offset as usize..(offset + length) as usize]
}

#[cfg(test)]
mod tests {
    use super::super::header::{HEADER_LEN, MAGIC};
    use super::*;

    /// A hand-laid archive whose tiles sit `levels` directories deep (1 = root only):
    /// tile 0 is "x" and tile 1 is "y"; leaves are placed innermost first so each pointer
    /// refers to bytes already written.
    fn nested(levels: u8) -> Bytes {
        let tile = |tile_id, offset| Entry {
            tile_id,
            offset,
            length: 1,
            run_length: 1,
        };
        let mut dir = Directory::encode(&[tile(0, 0), tile(1, 1)]);
        let mut leaves = Vec::new();
        for _ in 1..levels {
            let at = leaves.len() as u64;
            leaves.extend_from_slice(&dir);
            let ptr = Entry {
                tile_id: 0,
                offset: at,
                length: dir.len() as u32,
                run_length: 0,
            };
            dir = Directory::encode(&[ptr]);
        }
        let root_len = dir.len() as u64;
        let leaves_at = HEADER_LEN as u64 + root_len;
        let data_at = leaves_at + leaves.len() as u64;
        let mut b = vec![0u8; HEADER_LEN];
        b[..7].copy_from_slice(MAGIC);
        b[7] = 3;
        for (i, v) in [
            HEADER_LEN as u64,
            root_len,
            0,
            0,
            leaves_at,
            leaves.len() as u64,
            data_at,
            2,
        ]
        .into_iter()
        .enumerate()
        {
            b[8 + i * 8..16 + i * 8].copy_from_slice(&v.to_le_bytes());
        }
        b[97] = 1; // internal: none
        b[98] = 1; // tiles: none
        b[99] = 2; // png
        b[101] = 1; // max zoom
        b.extend_from_slice(&dir);
        b.extend_from_slice(&leaves);
        b.extend_from_slice(b"xy");
        Bytes::from(b)
    }

    #[test]
    fn tiles_three_directories_deep_are_found_and_a_fourth_level_is_refused() {
        for levels in 1..=3 {
            let a = Archive::from_bytes(nested(levels), DecodeCaps::default()).unwrap();
            assert_eq!(a.stats().depth, levels);
            assert_eq!(
                a.lookup(0, 0, 0).unwrap(),
                TileLookup::Found(Bytes::from_static(b"x"))
            );
            assert_eq!(
                a.lookup(1, 0, 0).unwrap(),
                TileLookup::Found(Bytes::from_static(b"y"))
            );
            assert_eq!(a.lookup(1, 0, 1).unwrap(), TileLookup::Absent);
        }
        let err = Archive::from_bytes(nested(4), DecodeCaps::default()).unwrap_err();
        assert_eq!(err.reason(), "too_deep");
    }

    #[test]
    fn leaves_evicted_from_the_cache_are_parsed_again_on_demand() {
        let a = Archive::from_bytes(nested(3), DecodeCaps::default()).unwrap();
        assert!(a.cached_leaf_bytes() > 0, "mount warmed the cache");
        let empty = Archive {
            leaves: LeafCache::new(LEAF_CACHE_BYTES),
            ..a
        };
        assert_eq!(empty.cached_leaf_bytes(), 0);
        assert_eq!(
            empty.lookup(1, 0, 0).unwrap(),
            TileLookup::Found(Bytes::from_static(b"y"))
        );
        assert!(empty.cached_leaf_bytes() > 0);
    }

    #[test]
    fn archives_can_be_shared_across_worker_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Archive>();
    }

    #[test]
    fn debug_output_summarises_instead_of_dumping_bytes() {
        let a = Archive::from_bytes(nested(1), DecodeCaps::default()).unwrap();
        let text = format!("{a:?}");
        assert!(text.contains("b3") && !text.contains("\\x"), "{text}");
    }
}
