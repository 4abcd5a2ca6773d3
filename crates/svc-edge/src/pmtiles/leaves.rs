//! A byte-bounded LRU of parsed leaf directories (§4.8: at most 16 MiB).
//!
//! Keyed by the leaf's (offset, length) in the leaf section. The lock is held only to
//! clone an `Arc` and bump recency; parsing happens outside it, so two readers missing
//! the same leaf may both parse it, which is cheaper than making one wait.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;

use super::directory::Directory;

/// Budget for parsed leaves per archive.
pub const LEAF_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Where a leaf lies in the leaf section: (offset, stored length).
pub type LeafKey = (u64, u32);

/// The cache; cheap to share behind the archive.
#[derive(Debug)]
pub struct LeafCache {
    budget: usize,
    inner: Mutex<Lru>,
}

#[derive(Debug, Default)]
struct Lru {
    map: HashMap<LeafKey, Slot>,
    /// Recency order: tick → key, oldest first.
    order: BTreeMap<u64, LeafKey>,
    bytes: usize,
    tick: u64,
}

#[derive(Debug)]
struct Slot {
    dir: Arc<Directory>,
    tick: u64,
    bytes: usize,
}

impl LeafCache {
    /// An empty cache holding at most `budget` bytes of parsed leaves.
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            inner: Mutex::new(Lru::default()),
        }
    }

    /// The cached leaf, marked most recently used.
    pub fn get(&self, key: LeafKey) -> Option<Arc<Directory>> {
        let mut lru = self.inner.lock();
        let lru = &mut *lru;
        lru.tick += 1;
        let tick = lru.tick;
        let slot = lru.map.get_mut(&key)?;
        lru.order.remove(&slot.tick);
        slot.tick = tick;
        lru.order.insert(tick, key);
        Some(Arc::clone(&slot.dir))
    }

    /// Caches `dir`, evicting the least recently used leaves to make room. A leaf larger
    /// than the whole budget is not cached.
    pub fn insert(&self, key: LeafKey, dir: Arc<Directory>) {
        self.put(key, dir, true);
    }

    /// Caches `dir` only if it fits without evicting anything (used to warm the cache at
    /// mount without churning it).
    pub fn insert_if_room(&self, key: LeafKey, dir: Arc<Directory>) {
        self.put(key, dir, false);
    }

    /// Bytes currently accounted to cached leaves.
    pub fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }

    /// Number of cached leaves.
    pub fn len(&self) -> usize {
        self.inner.lock().map.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn put(&self, key: LeafKey, dir: Arc<Directory>, evict: bool) {
        let bytes = dir.approx_bytes();
        if bytes > self.budget {
            return;
        }
        let mut lru = self.inner.lock();
        if let Some(old) = lru.map.remove(&key) {
            lru.order.remove(&old.tick);
            lru.bytes -= old.bytes;
        }
        while lru.bytes + bytes > self.budget {
            if !evict {
                return;
            }
            let Some((_, oldest)) = lru.order.pop_first() else {
                break;
            };
            if let Some(gone) = lru.map.remove(&oldest) {
                lru.bytes -= gone.bytes;
            }
        }
        lru.tick += 1;
        let tick = lru.tick;
        lru.order.insert(tick, key);
        lru.bytes += bytes;
        lru.map.insert(key, Slot { dir, tick, bytes });
    }
}

#[cfg(test)]
mod tests {
    use super::super::directory::Entry;
    use super::*;

    fn dir(n: u64) -> Arc<Directory> {
        let entries: Vec<Entry> = (0..n)
            .map(|i| Entry {
                tile_id: i,
                offset: i,
                length: 1,
                run_length: 1,
            })
            .collect();
        Arc::new(Directory::decode(&Directory::encode(&entries)).unwrap())
    }

    #[test]
    fn least_recently_used_leaf_is_evicted_first() {
        let one = dir(10).approx_bytes();
        let cache = LeafCache::new(one * 2);
        cache.insert((0, 1), dir(10));
        cache.insert((1, 1), dir(10));
        assert!(cache.get((0, 1)).is_some());
        cache.insert((2, 1), dir(10));
        assert!(cache.get((1, 1)).is_none(), "oldest was evicted");
        assert!(cache.get((0, 1)).is_some());
        assert!(cache.get((2, 1)).is_some());
        assert!(cache.bytes() <= one * 2);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn leaves_larger_than_the_budget_are_never_cached() {
        let cache = LeafCache::new(10);
        cache.insert((0, 1), dir(10));
        assert!(cache.is_empty());
    }

    #[test]
    fn warming_never_evicts() {
        let one = dir(10).approx_bytes();
        let cache = LeafCache::new(one);
        cache.insert_if_room((0, 1), dir(10));
        cache.insert_if_room((1, 1), dir(10));
        assert!(cache.get((0, 1)).is_some());
        assert!(cache.get((1, 1)).is_none());
    }

    #[test]
    fn reinserting_a_key_does_not_double_count() {
        let cache = LeafCache::new(LEAF_CACHE_BYTES);
        cache.insert((0, 1), dir(3));
        cache.insert((0, 1), dir(3));
        assert_eq!(cache.bytes(), dir(3).approx_bytes());
    }
}
