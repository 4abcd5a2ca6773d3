//! Lazy, bounded, lock-free cache of tile digests (spec §4.4: 65,536 entries keyed by
//! (pack generation, offset, length, variant)). One cache lives in each mounted archive,
//! so the generation is implicit: a re-mount starts a fresh cache.
//!
//! A direct-mapped table of atomic slots: a lookup is one atomic load and a key compare;
//! a miss hashes the tile and overwrites its slot. No lock on any path, and memory is
//! fixed at 65,536 slots.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use http::HeaderValue;

use crate::dirpack::etag_value;

/// Slots per archive.
pub const TILE_DIGEST_SLOTS: usize = 65_536;

/// Which representation of a tile a digest is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The stored bytes.
    Stored,
    /// Decoded to identity.
    Decoded,
}

#[derive(PartialEq, Eq, Hash)]
struct Key {
    offset: usize,
    len: usize,
    variant: Variant,
}

struct Slot {
    key: Key,
    etag: HeaderValue,
}

/// The cache.
pub struct TileDigests {
    slots: Box<[ArcSwapOption<Slot>]>,
    hasher: RandomState,
}

impl Default for TileDigests {
    fn default() -> Self {
        TileDigests {
            slots: (0..TILE_DIGEST_SLOTS)
                .map(|_| ArcSwapOption::const_empty())
                .collect(),
            hasher: RandomState::new(),
        }
    }
}

impl TileDigests {
    /// The ETag of `bytes`, the representation of the tile at (`offset`, `len`) in the
    /// archive in `variant`; computed on a miss.
    pub fn etag(&self, offset: usize, len: usize, variant: Variant, bytes: &[u8]) -> HeaderValue {
        let key = Key {
            offset,
            len,
            variant,
        };
        let slot = &self.slots[(self.hasher.hash_one(&key) as usize) % TILE_DIGEST_SLOTS];
        if let Some(s) = slot.load().as_ref()
            && s.key == key
        {
            return s.etag.clone();
        }
        let etag = etag_value(blake3::hash(bytes).as_bytes());
        slot.store(Some(Arc::new(Slot {
            key,
            etag: etag.clone(),
        })));
        etag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_etags_match_a_fresh_hash_for_each_variant() {
        let c = TileDigests::default();
        let a = c.etag(10, 3, Variant::Stored, b"abc");
        assert_eq!(a, etag_value(blake3::hash(b"abc").as_bytes()));
        // A second call is served from the slot even when handed other bytes.
        assert_eq!(a, c.etag(10, 3, Variant::Stored, b"other"));
        let d = c.etag(10, 3, Variant::Decoded, b"decoded");
        assert_eq!(d, etag_value(blake3::hash(b"decoded").as_bytes()));
    }
}
