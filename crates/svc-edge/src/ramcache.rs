//! The amnesia RAM cache (spec §4.12): an LRU of objects keyed by BLAKE3 digest, with the
//! live-fill refs attached to the object they point at, capped at `ram_cache_bytes`.
//!
//! What it is for: holding live fills when nothing may be written to disk, and serving
//! `/cas/b3/{hex}` from them. What it is not for: anything persistent, or objects over a
//! quarter of the cap, which are refused so one fill cannot flush the whole cache (the
//! caller answers 503 `amnesia`).
//!
//! Hand-written rather than a crate: the LRU is a map plus an ordered index, and byte
//! accounting (not entry counts) plus ref eviction tied to objects is what the spec needs.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::cas::Ref;

/// Bytes charged per ref on top of its key, for the map entry and the ref's fields.
pub const REF_OVERHEAD_BYTES: u64 = 128;

/// Why an object was not cached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RamCacheError {
    /// The object is over `ram_cache_bytes / 4`.
    #[error(
        "object of {len} bytes is over the RAM cache's per-object limit of {limit} bytes \
         (ram_cache_bytes/4); raise edge.ram_cache_bytes or turn amnesia off"
    )]
    TooLarge {
        /// Object length.
        len: u64,
        /// The per-object limit.
        limit: u64,
    },
}

/// A byte-capped LRU of objects and their refs.
pub struct RamCache {
    cap: u64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    objects: HashMap<[u8; 32], Entry>,
    /// Use tick → digest, oldest first.
    order: BTreeMap<u64, [u8; 32]>,
    /// Cache key → (digest, ref).
    refs: HashMap<String, ([u8; 32], Ref)>,
    tick: u64,
    used: u64,
}

struct Entry {
    body: Bytes,
    tick: u64,
    /// Refs pointing here, dropped with the object.
    keys: Vec<String>,
}

impl RamCache {
    /// An empty cache holding at most `cap_bytes`.
    pub fn new(cap_bytes: u64) -> RamCache {
        RamCache {
            cap: cap_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The largest object accepted: a quarter of the cap.
    pub fn object_limit(&self) -> u64 {
        self.cap / 4
    }

    /// Bytes held (objects plus refs), for `edge_ram_cache_bytes`; never above the cap.
    pub fn bytes_used(&self) -> u64 {
        self.inner.lock().used
    }

    /// The object with `digest`, marked most recently used.
    pub fn get(&self, digest: &[u8; 32]) -> Option<Bytes> {
        let mut inner = self.inner.lock();
        inner.touch(digest)?;
        inner.objects.get(digest).map(|e| e.body.clone())
    }

    /// Caches `body` under `digest`, evicting least recently used objects (and their refs)
    /// to make room. Objects over [`RamCache::object_limit`] are refused.
    pub fn insert(&self, digest: [u8; 32], body: Bytes) -> Result<(), RamCacheError> {
        let len = body.len() as u64;
        if len > self.object_limit() {
            return Err(RamCacheError::TooLarge {
                len,
                limit: self.object_limit(),
            });
        }
        let mut inner = self.inner.lock();
        if inner.touch(&digest).is_some() {
            return Ok(());
        }
        inner.make_room(self.cap, len, None);
        let tick = inner.next_tick();
        inner.order.insert(tick, digest);
        inner.objects.insert(
            digest,
            Entry {
                body,
                tick,
                keys: Vec::new(),
            },
        );
        inner.used += len;
        Ok(())
    }

    /// Points cache key `key` at its object. Returns false (and stores nothing) when the
    /// object is not cached or `r.b3` is not a digest: a ref never outlives its bytes.
    pub fn put_ref(&self, key: &str, r: Ref) -> bool {
        let Ok(digest) = blake3::Hash::from_hex(&r.b3).map(|h| *h.as_bytes()) else {
            return false;
        };
        let mut inner = self.inner.lock();
        if !inner.objects.contains_key(&digest) {
            return false;
        }
        inner.drop_ref(key);
        let charge = key.len() as u64 + REF_OVERHEAD_BYTES;
        inner.make_room(self.cap, charge, Some(&digest));
        inner.touch(&digest);
        if let Some(e) = inner.objects.get_mut(&digest) {
            e.keys.push(key.to_owned());
        }
        inner.refs.insert(key.to_owned(), (digest, r));
        inner.used += charge;
        true
    }

    /// The ref for `key`; its object is marked most recently used.
    pub fn get_ref(&self, key: &str) -> Option<Ref> {
        let mut inner = self.inner.lock();
        let (digest, r) = inner.refs.get(key).cloned()?;
        inner.touch(&digest)?;
        Some(r)
    }
}

impl Inner {
    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// Marks `digest` most recently used; `None` when absent.
    fn touch(&mut self, digest: &[u8; 32]) -> Option<()> {
        let tick = self.next_tick();
        let e = self.objects.get_mut(digest)?;
        self.order.remove(&e.tick);
        e.tick = tick;
        self.order.insert(tick, *digest);
        Some(())
    }

    /// Evicts oldest objects until `need` more bytes fit under `cap`, never `keep`.
    fn make_room(&mut self, cap: u64, need: u64, keep: Option<&[u8; 32]>) {
        while self.used + need > cap {
            let victim = self.order.values().find(|d| Some(*d) != keep).copied();
            let Some(victim) = victim else { return };
            self.evict(&victim);
        }
    }

    fn evict(&mut self, digest: &[u8; 32]) {
        let Some(e) = self.objects.remove(digest) else {
            return;
        };
        self.order.remove(&e.tick);
        self.used -= e.body.len() as u64;
        for key in e.keys {
            if self.refs.remove(&key).is_some() {
                self.used -= key.len() as u64 + REF_OVERHEAD_BYTES;
            }
        }
    }

    fn drop_ref(&mut self, key: &str) {
        let Some((digest, _)) = self.refs.remove(key) else {
            return;
        };
        self.used -= key.len() as u64 + REF_OVERHEAD_BYTES;
        if let Some(e) = self.objects.get_mut(&digest) {
            e.keys.retain(|k| k != key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(byte: u8, len: usize) -> ([u8; 32], Bytes) {
        let body = Bytes::from(vec![byte; len]);
        (*blake3::hash(&body).as_bytes(), body)
    }

    fn ref_to(digest: &[u8; 32], len: u64) -> Ref {
        Ref {
            b3: blake3::Hash::from(*digest).to_hex().to_string(),
            len,
            content_type: "text/plain".into(),
            fetched_at: 0,
        }
    }

    #[test]
    fn objects_over_a_quarter_of_the_cap_are_refused() {
        let cache = RamCache::new(4000);
        let (d, b) = object(1, 1001);
        assert_eq!(
            cache.insert(d, b),
            Err(RamCacheError::TooLarge {
                len: 1001,
                limit: 1000
            })
        );
        assert_eq!(cache.bytes_used(), 0);
        let (d, b) = object(1, 1000);
        cache.insert(d, b.clone()).unwrap();
        assert_eq!(cache.get(&d), Some(b));
        assert_eq!(cache.bytes_used(), 1000);
    }

    #[test]
    fn the_least_recently_used_object_and_its_refs_go_first() {
        let cache = RamCache::new(4000);
        let (a, ab) = object(1, 1000);
        let (b, bb) = object(2, 1000);
        let (c, cb) = object(3, 1000);
        let (d, db) = object(4, 1000);
        cache.insert(a, ab).unwrap();
        cache.insert(b, bb).unwrap();
        assert!(cache.put_ref("k-a", ref_to(&a, 1000)));
        cache.insert(c, cb).unwrap();
        assert!(cache.get(&b).is_some());
        cache.insert(d, db).unwrap();
        assert!(cache.get(&a).is_none());
        assert_eq!(cache.get_ref("k-a"), None);
        assert!(cache.get(&b).is_some() && cache.get(&c).is_some() && cache.get(&d).is_some());
        assert!(cache.bytes_used() <= 4000);
    }

    #[test]
    fn a_ref_needs_its_object_and_replacing_it_keeps_the_accounting_exact() {
        let cache = RamCache::new(100_000);
        let (a, ab) = object(1, 10);
        let (b, bb) = object(2, 20);
        assert!(!cache.put_ref("k", ref_to(&a, 10)));
        cache.insert(a, ab).unwrap();
        cache.insert(b, bb).unwrap();
        assert!(cache.put_ref("k", ref_to(&a, 10)));
        assert!(cache.put_ref("k", ref_to(&b, 20)));
        assert_eq!(cache.get_ref("k").unwrap().len, 20);
        assert_eq!(cache.bytes_used(), 30 + 1 + REF_OVERHEAD_BYTES);
        let mut bad = ref_to(&a, 10);
        bad.b3 = "zz".into();
        assert!(!cache.put_ref("k2", bad));
    }

    #[test]
    fn a_zero_cap_cache_holds_nothing_but_empty_objects() {
        let cache = RamCache::new(0);
        let (d, b) = object(1, 1);
        assert!(cache.insert(d, b).is_err());
        assert_eq!(cache.bytes_used(), 0);
    }
}
