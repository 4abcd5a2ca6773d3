//! Where fills land (spec §4.11 steps 3 and 10): the CAS, or the RAM cache under amnesia.
//! Bytes are hashed while they stream in; a commit stores the object and then its ref
//! `{b3,len,content_type,fetched_at}`, so a ref never names a missing object.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};

use crate::cas::{Cas, CasError, CasTemp, Ref};
use crate::dirpack::etag_for;
use crate::errors::EdgeError;
use crate::mime::OCTET_STREAM;
use crate::ramcache::RamCache;

/// The backing store of live fills.
#[derive(Clone)]
pub enum Store {
    /// The on-disk CAS (opened writable in live mode).
    Cas(Cas),
    /// The amnesia RAM cache.
    Ram(Arc<RamCache>),
}

/// An object found or stored.
#[derive(Clone)]
pub struct Stored {
    /// The bytes.
    pub body: Bytes,
    /// Digest, lower-case hex.
    pub hash: Arc<str>,
    /// `"b3:<hex>"`.
    pub etag: Arc<str>,
    /// The origin's `Content-Type` (octet-stream when unknown).
    pub content_type: Arc<str>,
}

/// Bytes of one fill in progress.
pub enum Sink {
    /// Streaming into a CAS temp file.
    Cas(CasTemp),
    /// Buffering in RAM (amnesia).
    Ram {
        /// The bytes so far.
        buf: BytesMut,
        /// Their running digest.
        hasher: blake3::Hasher,
    },
}

impl Store {
    /// The object `hex`, from whichever store holds fills.
    pub async fn by_digest(
        &self,
        hex: &str,
        content_type: &str,
    ) -> Result<Option<Stored>, EdgeError> {
        let body = match self {
            Store::Cas(cas) => cas
                .get(hex)
                .await
                .map_err(|e| e.edge_error())?
                .map(|o| o.body),
            Store::Ram(ram) => match blake3::Hash::from_hex(hex) {
                Ok(h) => ram.get(h.as_bytes()),
                Err(_) => return Err(EdgeError::BadRequest),
            },
        };
        Ok(body.map(|body| stored(body, hex, content_type)))
    }

    /// The object ref `key` points at, while `fetched_at + ttl` is in the future.
    pub async fn by_ref(&self, key: &str, ttl: Duration) -> Result<Option<Stored>, EdgeError> {
        let r = match self {
            Store::Cas(cas) => cas.read_ref(key).await.map_err(|e| e.edge_error())?,
            Store::Ram(ram) => ram.get_ref(key),
        };
        let Some(r) = r else { return Ok(None) };
        if r.fetched_at.saturating_add(ttl.as_secs()) <= unix_now() {
            return Ok(None);
        }
        match self.by_digest(&r.b3, &r.content_type).await {
            Err(EdgeError::BadRequest) => Ok(None),
            other => other,
        }
    }

    /// The content type ref `key` recorded for object `hex`, octet-stream otherwise: a
    /// `?b3=` request keeps the type its fill saw.
    pub async fn content_type_for(&self, key: &str, hex: &str) -> String {
        let r = match self {
            Store::Cas(cas) => cas.read_ref(key).await.ok().flatten(),
            Store::Ram(ram) => ram.get_ref(key),
        };
        match r {
            Some(r) if r.b3 == hex => r.content_type,
            _ => OCTET_STREAM.to_owned(),
        }
    }

    /// The most bytes a fill may stream here before it is refused, and the refusal: the
    /// RAM cache takes at most a quarter of its cap (503 `amnesia`), the CAS
    /// `max_object_bytes` (502 `too_large`).
    pub fn limit(&self, max_object_bytes: u64) -> (u64, EdgeError) {
        match self {
            Store::Ram(ram) if ram.object_limit() < max_object_bytes => {
                (ram.object_limit(), EdgeError::Amnesia)
            }
            _ => (max_object_bytes, EdgeError::TooLarge),
        }
    }

    /// A sink for one fill attempt.
    pub async fn begin(&self) -> Result<Sink, EdgeError> {
        match self {
            Store::Cas(cas) => cas
                .create_temp()
                .await
                .map(Sink::Cas)
                .map_err(|e| e.edge_error()),
            Store::Ram(_) => Ok(Sink::Ram {
                buf: BytesMut::new(),
                hasher: blake3::Hasher::new(),
            }),
        }
    }

    /// Stores the sink's bytes (refusing them when `expected` differs) and writes ref
    /// `key`. Under amnesia an object the cache refuses is 503 `amnesia`.
    pub async fn commit(
        &self,
        sink: Sink,
        expected: Option<&str>,
        key: &str,
        content_type: &str,
    ) -> Result<Stored, EdgeError> {
        let (hex, len, body) = match (self, sink) {
            (Store::Cas(cas), Sink::Cas(temp)) => {
                let c = cas.commit(temp, expected).await.map_err(|e| {
                    tracing::warn!(event = "cas_write", detail = %e, "fill not stored");
                    e.edge_error()
                })?;
                let body = match cas.get(&c.hex).await {
                    Ok(Some(o)) => o.body,
                    Ok(None) => return Err(EdgeError::Io),
                    Err(e) => return Err(e.edge_error()),
                };
                (c.hex, c.len, body)
            }
            (Store::Ram(ram), Sink::Ram { buf, hasher }) => {
                let digest = hasher.finalize();
                let hex = digest.to_hex().to_string();
                if expected.is_some_and(|want| want != hex) {
                    return Err(EdgeError::DigestMismatch);
                }
                let body = buf.freeze();
                ram.insert(*digest.as_bytes(), body.clone())
                    .map_err(|_| EdgeError::Amnesia)?;
                (hex, body.len() as u64, body)
            }
            _ => return Err(EdgeError::Internal),
        };
        let r = Ref {
            b3: hex.clone(),
            len,
            content_type: content_type.to_owned(),
            fetched_at: unix_now(),
        };
        match self {
            Store::Cas(cas) => cas.write_ref(key, &r).await.map_err(|e: CasError| {
                tracing::warn!(event = "cas_write", detail = %e, "ref not stored");
                e.edge_error()
            })?,
            Store::Ram(ram) => {
                ram.put_ref(key, r);
            }
        }
        Ok(stored(body, &hex, content_type))
    }
}

impl Sink {
    /// Appends a chunk of the body.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), EdgeError> {
        match self {
            Sink::Cas(temp) => temp.write(chunk).await.map_err(|e| e.edge_error()),
            Sink::Ram { buf, hasher } => {
                hasher.update(chunk);
                buf.extend_from_slice(chunk);
                Ok(())
            }
        }
    }

    /// Bytes so far.
    pub fn len(&self) -> u64 {
        match self {
            Sink::Cas(temp) => temp.len(),
            Sink::Ram { buf, .. } => buf.len() as u64,
        }
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn stored(body: Bytes, hex: &str, content_type: &str) -> Stored {
    let digest = blake3::Hash::from_hex(hex)
        .map(|h| *h.as_bytes())
        .unwrap_or([0; 32]);
    Stored {
        body,
        hash: hex.into(),
        etag: etag_for(&digest),
        content_type: content_type.into(),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_ram_commit_is_found_by_digest_and_by_ref_until_the_ttl_passes() {
        let store = Store::Ram(Arc::new(RamCache::new(1 << 20)));
        let mut sink = store.begin().await.unwrap();
        sink.write(b"abc").await.unwrap();
        let s = store
            .commit(sink, None, "https://h/x", "text/plain")
            .await
            .unwrap();
        assert_eq!(&*s.hash, blake3::hash(b"abc").to_hex().as_str());
        let hit = store.by_digest(&s.hash, "x/y").await.unwrap().unwrap();
        assert_eq!(&hit.body[..], b"abc");
        let by_ref = store
            .by_ref("https://h/x", Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&*by_ref.content_type, "text/plain");
        assert!(
            store
                .by_ref("https://h/x", Duration::ZERO)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_ram_commit_with_the_wrong_digest_stores_nothing() {
        let ram = Arc::new(RamCache::new(1 << 20));
        let store = Store::Ram(ram.clone());
        let mut sink = store.begin().await.unwrap();
        sink.write(b"abc").await.unwrap();
        let wrong = "1".repeat(64);
        let err = store.commit(sink, Some(&wrong), "k", "text/plain").await;
        assert_eq!(err.err(), Some(EdgeError::DigestMismatch));
        assert_eq!(ram.bytes_used(), 0);
    }

    #[test]
    fn the_ram_store_limits_objects_to_a_quarter_of_its_cap() {
        let store = Store::Ram(Arc::new(RamCache::new(4096)));
        assert_eq!(store.limit(1 << 20), (1024, EdgeError::Amnesia));
        assert_eq!(store.limit(100), (100, EdgeError::TooLarge));
    }
}
