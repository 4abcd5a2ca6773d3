//! The BLAKE3 content-addressed store (spec §4.10): sharded objects under
//! `b3/{h[0..2]}/{h[2..4]}/{h}`, temps under `tmp/`, live-fill refs under
//! `refs/{k[0..2]}/{k}` and corrupt objects moved to `quarantine/`.
//!
//! What it is for: serving objects by digest with verify-on-first-read, committing fetched
//! objects crash-safely (exclusive temp, fsync, rename, fsync of the directory) and keeping
//! the live-fill refs. What it is not for: eviction or garbage collection (operators prune
//! the directory), or amnesia mode, which uses [`crate::ramcache`] and writes nothing.
//!
//! Every file-system call runs on the blocking pool, so the async methods never stall a
//! runtime worker while a disk is slow.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;
use ron_metrics::Counter;
use serde::{Deserialize, Serialize};

use crate::dirpack::etag_for;
use crate::errors::EdgeError;
use crate::mapping;
use crate::metrics::EdgeMetrics;

/// Temps older than this are removed when the store opens (spec §4.10).
pub const TMP_MAX_AGE: Duration = Duration::from_secs(3600);
/// Verification verdicts remembered; past this an arbitrary entry is forgotten, which costs
/// one re-hash on its next read, so memory stays bounded however many objects are read.
pub const VERIFIED_CAP: usize = 65_536;
/// Mode of temp files: readable by the service group (backup tools), never by others.
pub const TEMP_MODE: u32 = 0o640;

/// Why a CAS operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CasError {
    /// The key is not a digest.
    #[error("CAS key {0:?} is not 64 lower-case hex digits")]
    BadDigest(String),
    /// The stored bytes do not hash to their name.
    #[error("CAS object {hex} does not match its digest; it was quarantined")]
    Integrity {
        /// The object's name.
        hex: String,
    },
    /// A streamed object does not hash to the digest the caller expected.
    #[error("object hashes to {actual}, not the expected {expected}; nothing was stored")]
    DigestMismatch {
        /// The digest asked for.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// A write was attempted on a store opened read-only.
    #[error("the CAS at {0} is read-only; open it writable (live mode) to store objects")]
    ReadOnly(PathBuf),
    /// A file-system call failed.
    #[error("CAS I/O on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl CasError {
    /// The answer the client gets (spec §3.3): integrity 500, mismatch 502, else 503 `io`.
    pub fn edge_error(&self) -> EdgeError {
        match self {
            CasError::BadDigest(_) => EdgeError::BadRequest,
            CasError::Integrity { .. } => EdgeError::Integrity,
            CasError::DigestMismatch { .. } => EdgeError::DigestMismatch,
            CasError::ReadOnly(_) | CasError::Io { .. } => EdgeError::Io,
        }
    }
}

/// A verified object.
#[derive(Clone, Debug)]
pub struct CasObject {
    /// The bytes (a read-only mapping).
    pub body: Bytes,
    /// `"b3:<hex>"`.
    pub etag: Arc<str>,
}

/// How a commit ended (`edge_cas_writes_total{status}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStatus {
    /// The object was renamed into its shard.
    Ok,
    /// The object already existed; the temp was deleted.
    Dedup,
}

impl WriteStatus {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteStatus::Ok => "ok",
            WriteStatus::Dedup => "dedup",
        }
    }
}

/// A committed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Its digest, lower-case hex.
    pub hex: String,
    /// Its length in bytes.
    pub len: u64,
    /// Whether it was new.
    pub status: WriteStatus,
}

/// A live-fill ref: what cache key K last resolved to (spec §4.11 step 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    /// Digest of the object, lower-case hex.
    pub b3: String,
    /// Object length.
    pub len: u64,
    /// The origin's `Content-Type`.
    pub content_type: String,
    /// Unix seconds of the fetch.
    pub fetched_at: u64,
}

/// A temp file being filled; dropping it unfinished deletes it, so an aborted fill or a
/// shutdown leaves no partial object behind.
pub struct CasTemp {
    file: Option<tokio::fs::File>,
    path: PathBuf,
    hasher: blake3::Hasher,
    len: u64,
    done: bool,
}

/// A handle on one store; clones share the verification cache.
#[derive(Clone)]
pub struct Cas {
    inner: Arc<Inner>,
    counters: Option<Arc<CasCounters>>,
}

struct Inner {
    root: PathBuf,
    writable: bool,
    /// Object name → identity of the file last hashed and whether it matched.
    seen: Mutex<HashMap<String, Seen>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct FileId {
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    ino: u64,
}

#[derive(Clone, Copy)]
struct Seen {
    id: FileId,
    good: bool,
}

struct CasCounters {
    ok: Counter,
    dedup: Counter,
    error: Counter,
    integrity: Counter,
}

impl Cas {
    /// Opens the store at `dir`. Writable stores get their `b3/`, `tmp/`, `refs/` and
    /// `quarantine/` created and temps older than [`TMP_MAX_AGE`] removed; a read-only
    /// store is not touched (a missing directory shows up in [`Cas::reachable`]).
    pub fn open(dir: &Path, writable: bool) -> io::Result<Cas> {
        if writable {
            for sub in ["b3", "tmp", "refs", "quarantine"] {
                std::fs::create_dir_all(dir.join(sub))?;
            }
            sweep_temps(&dir.join("tmp"), TMP_MAX_AGE)?;
        }
        Ok(Cas {
            inner: Arc::new(Inner {
                root: dir.to_path_buf(),
                writable,
                seen: Mutex::new(HashMap::new()),
            }),
            counters: None,
        })
    }

    /// Counts commits in `edge_cas_writes_total{status}` and corrupt objects in
    /// `edge_integrity_failures_total{kind="cas"}`.
    pub fn with_metrics(mut self, metrics: &EdgeMetrics) -> Cas {
        let w = |s: &str| metrics.cas_writes.with_label_values(&[s]);
        self.counters = Some(Arc::new(CasCounters {
            ok: w("ok"),
            dedup: w("dedup"),
            error: w("error"),
            integrity: metrics.integrity.with_label_values(&["cas"]),
        }));
        self
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Whether objects may be written.
    pub fn writable(&self) -> bool {
        self.inner.writable
    }

    /// The object named `hex`, hashed in full before it is returned the first time (and
    /// again whenever its size, mtime or inode change). `Ok(None)` when absent or known
    /// corrupt; [`CasError::Integrity`] the one time a mismatch is found.
    pub async fn get(&self, hex: &str) -> Result<Option<CasObject>, CasError> {
        check_hex(hex)?;
        let this = self.clone();
        let hex = hex.to_owned();
        blocking(move || this.get_blocking(&hex)).await
    }

    /// Creates an exclusive temp file (`O_EXCL`, mode 0640) to stream an object into.
    pub async fn create_temp(&self) -> Result<CasTemp, CasError> {
        if !self.inner.writable {
            return Err(CasError::ReadOnly(self.inner.root.clone()));
        }
        let path = self.temp_path("fill");
        let file = blocking({
            let path = path.clone();
            move || create_exclusive(&path).map_err(|e| io_err(&path, e))
        })
        .await
        .inspect_err(|_| self.count(|c| &c.error))?;
        Ok(CasTemp {
            file: Some(tokio::fs::File::from_std(file)),
            path,
            hasher: blake3::Hasher::new(),
            len: 0,
            done: false,
        })
    }

    /// Commits a filled temp (spec §4.10 steps 3-4): refuses it when `expected` is given
    /// and differs (deleting the temp), else fsyncs it and renames it into its shard, or
    /// deletes it when the object already exists. Any error deletes the temp and counts
    /// `error`.
    pub async fn commit(
        &self,
        mut temp: CasTemp,
        expected: Option<&str>,
    ) -> Result<Committed, CasError> {
        let hex = temp.hasher.finalize().to_hex().to_string();
        if let Some(want) = expected
            && want != hex
        {
            return Err(CasError::DigestMismatch {
                expected: want.to_owned(),
                actual: hex,
            });
        }
        let file = match temp.file.take() {
            Some(f) => f.into_std().await,
            None => return Err(io_err(&temp.path, io::ErrorKind::BrokenPipe.into())),
        };
        let this = self.clone();
        let result = blocking(move || {
            let status = this.commit_blocking(&file, &temp.path, &hex)?;
            temp.done = true;
            Ok(Committed {
                hex,
                len: temp.len,
                status,
            })
        })
        .await;
        match &result {
            Ok(c) => {
                self.count(|k| match c.status {
                    WriteStatus::Ok => &k.ok,
                    WriteStatus::Dedup => &k.dedup,
                });
                tracing::info!(event = "cas_write", hash = %c.hex, size = c.len, status = c.status.as_str(), "cas_write");
            }
            Err(e) => {
                self.count(|k| &k.error);
                tracing::warn!(event = "cas_write", status = "error", detail = %e, "cas_write");
            }
        }
        result
    }

    /// Stores `bytes` in one go (temp, hash, fsync, rename), as [`Cas::commit`] does.
    pub async fn put(&self, bytes: &[u8], expected: Option<&str>) -> Result<Committed, CasError> {
        let mut temp = self.create_temp().await?;
        temp.write(bytes).await?;
        self.commit(temp, expected).await
    }

    /// The ref stored for cache key `key`; a missing or unreadable ref is `None` (the next
    /// fill rewrites it).
    pub async fn read_ref(&self, key: &str) -> Result<Option<Ref>, CasError> {
        let path = self.ref_path(key);
        blocking(move || match std::fs::read(&path) {
            Ok(b) => Ok(serde_json::from_slice(&b).ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path, e)),
        })
        .await
    }

    /// Writes the ref for `key` atomically: temp, fsync, rename, fsync of the directory.
    pub async fn write_ref(&self, key: &str, r: &Ref) -> Result<(), CasError> {
        if !self.inner.writable {
            return Err(CasError::ReadOnly(self.inner.root.clone()));
        }
        let target = self.ref_path(key);
        let temp = self.temp_path("ref");
        let json = serde_json::to_vec(r).map_err(|e| io_err(&target, io::Error::other(e)))?;
        blocking(move || {
            let result = write_atomically(&temp, &target, &json);
            if result.is_err() {
                let _ = std::fs::remove_file(&temp);
            }
            result
        })
        .await
    }

    /// The `cas_reachable` readiness check (spec §5.3): the root is a readable directory
    /// and, in live mode, writable (a probe file is created and removed) with at least
    /// `min_free` bytes free.
    pub async fn reachable(&self, live: bool, min_free: u64) -> bool {
        let this = self.clone();
        blocking(move || Ok::<_, CasError>(this.reachable_blocking(live, min_free)))
            .await
            .unwrap_or(false)
    }

    fn reachable_blocking(&self, live: bool, min_free: u64) -> bool {
        let root = &self.inner.root;
        if std::fs::read_dir(root).is_err() {
            return false;
        }
        if !live {
            return true;
        }
        if !self.inner.writable {
            return false;
        }
        let probe = self.temp_path("probe");
        let wrote = create_exclusive(&probe).is_ok();
        let removed = std::fs::remove_file(&probe).is_ok();
        let free = rustix::fs::statvfs(root.as_path())
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
            .unwrap_or(0);
        wrote && removed && free >= min_free
    }

    fn get_blocking(&self, hex: &str) -> Result<Option<CasObject>, CasError> {
        let path = self.object_path(hex);
        let (body, meta) = match mapping::map_file(&path) {
            Ok(m) => m,
            Err(e) if absent(&e) => return Ok(None),
            Err(e) => return Err(io_err(&path, e)),
        };
        let id = file_id(&meta);
        let known = self.inner.seen.lock().get(hex).copied();
        let good = match known {
            Some(s) if s.id == id => s.good,
            _ => {
                let good = blake3::hash(&body).to_hex().as_str() == hex;
                if !good {
                    self.quarantine(hex, &path, id);
                    return Err(CasError::Integrity {
                        hex: hex.to_owned(),
                    });
                }
                self.remember(hex, id, true);
                true
            }
        };
        Ok(good.then(|| CasObject {
            etag: etag_for(&digest_bytes(hex)),
            body,
        }))
    }

    /// Moves a corrupt object aside so later reads answer 404; a read-only store (or a
    /// failed rename) remembers the verdict in memory instead.
    fn quarantine(&self, hex: &str, path: &Path, id: FileId) {
        self.count(|c| &c.integrity);
        let moved = self.inner.writable && {
            let to = self
                .inner
                .root
                .join("quarantine")
                .join(format!("{hex}.{}", ulid::Ulid::new()));
            std::fs::rename(path, to).is_ok()
        };
        if !moved {
            self.remember(hex, id, false);
        } else {
            self.inner.seen.lock().remove(hex);
        }
        tracing::error!(event = "cas_corrupt", hash = %hex, quarantined = moved, "cas_corrupt");
    }

    fn commit_blocking(
        &self,
        file: &File,
        temp: &Path,
        hex: &str,
    ) -> Result<WriteStatus, CasError> {
        let target = self.object_path(hex);
        let step = || -> io::Result<WriteStatus> {
            file.sync_all()?;
            if std::fs::symlink_metadata(&target).is_ok() {
                std::fs::remove_file(temp)?;
                return Ok(WriteStatus::Dedup);
            }
            let shard = target.parent().unwrap_or(&self.inner.root);
            std::fs::create_dir_all(shard)?;
            std::fs::rename(temp, &target)?;
            File::open(shard)?.sync_all()?;
            Ok(WriteStatus::Ok)
        };
        match step() {
            Ok(status) => {
                // The bytes were hashed while streaming, so the first read need not re-hash.
                if let Ok(meta) = std::fs::metadata(&target) {
                    self.remember(hex, file_id(&meta), true);
                }
                Ok(status)
            }
            Err(e) => {
                let _ = std::fs::remove_file(temp);
                Err(io_err(&target, e))
            }
        }
    }

    fn remember(&self, hex: &str, id: FileId, good: bool) {
        let mut seen = self.inner.seen.lock();
        if seen.len() >= VERIFIED_CAP && !seen.contains_key(hex) {
            let victim = seen.keys().next().cloned();
            if let Some(v) = victim {
                seen.remove(&v);
            }
        }
        seen.insert(hex.to_owned(), Seen { id, good });
    }

    fn count(&self, pick: impl FnOnce(&CasCounters) -> &Counter) {
        if let Some(c) = &self.counters {
            pick(c).inc();
        }
    }

    fn object_path(&self, hex: &str) -> PathBuf {
        self.inner
            .root
            .join("b3")
            .join(&hex[0..2])
            .join(&hex[2..4])
            .join(hex)
    }

    fn ref_path(&self, key: &str) -> PathBuf {
        // Keys are URLs; their digest makes a safe, fixed-length file name.
        let k = blake3::hash(key.as_bytes()).to_hex();
        self.inner.root.join("refs").join(&k[0..2]).join(k.as_str())
    }

    fn temp_path(&self, name: &str) -> PathBuf {
        self.inner
            .root
            .join("tmp")
            .join(format!("{name}.{}.tmp", ulid::Ulid::new()))
    }
}

impl CasTemp {
    /// Appends `chunk`, hashing it on the way.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), CasError> {
        use tokio::io::AsyncWriteExt;
        let file = match self.file.as_mut() {
            Some(f) => f,
            None => return Err(io_err(&self.path, io::ErrorKind::BrokenPipe.into())),
        };
        file.write_all(chunk)
            .await
            .map_err(|e| io_err(&self.path, e))?;
        self.hasher.update(chunk);
        self.len += chunk.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for CasTemp {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether `hex` names a digest: exactly 64 lower-case hex digits.
pub fn is_digest(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn check_hex(hex: &str) -> Result<(), CasError> {
    if is_digest(hex) {
        Ok(())
    } else {
        Err(CasError::BadDigest(hex.to_owned()))
    }
}

fn digest_bytes(hex: &str) -> [u8; 32] {
    blake3::Hash::from_hex(hex)
        .map(|h| *h.as_bytes())
        .unwrap_or([0; 32])
}

/// Not there, or not something we serve (a symlink refused by `O_NOFOLLOW`, a directory).
fn absent(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || e.kind() == io::ErrorKind::InvalidInput
        || e.raw_os_error() == Some(libc::ELOOP)
        || e.raw_os_error() == Some(libc::ENOTDIR)
}

fn file_id(meta: &std::fs::Metadata) -> FileId {
    FileId {
        size: meta.len(),
        mtime: meta.mtime(),
        mtime_nsec: meta.mtime_nsec(),
        ino: meta.ino(),
    }
}

fn io_err(path: &Path, source: io::Error) -> CasError {
    CasError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn create_exclusive(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(TEMP_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

fn write_atomically(temp: &Path, target: &Path, bytes: &[u8]) -> Result<(), CasError> {
    let step = || -> io::Result<()> {
        let mut f = create_exclusive(temp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        let dir = target.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        std::fs::rename(temp, target)?;
        File::open(dir)?.sync_all()
    };
    step().map_err(|e| io_err(target, e))
}

/// Removes files in `tmp` last modified more than `max_age` ago (left by a crash).
fn sweep_temps(tmp: &Path, max_age: Duration) -> io::Result<()> {
    let now = SystemTime::now();
    for entry in std::fs::read_dir(tmp)? {
        let entry = entry?;
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > max_age);
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CasError> + Send + 'static,
) -> Result<T, CasError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(CasError::Io {
            path: PathBuf::new(),
            source: io::Error::other(e),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("edge-cas-{name}-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn files_in(dir: &Path) -> usize {
        std::fs::read_dir(dir).map(|r| r.count()).unwrap_or(0)
    }

    #[tokio::test]
    async fn commit_places_the_object_in_its_shard_and_dedups_a_second_copy() {
        let root = scratch("commit");
        let cas = Cas::open(&root, true).unwrap();
        let first = cas.put(b"hello cas", None).await.unwrap();
        let hex = blake3::hash(b"hello cas").to_hex().to_string();
        assert_eq!(first.hex, hex);
        assert_eq!(first.status, WriteStatus::Ok);
        assert!(
            root.join("b3")
                .join(&hex[..2])
                .join(&hex[2..4])
                .join(&hex)
                .is_file()
        );
        let second = cas.put(b"hello cas", Some(&hex)).await.unwrap();
        assert_eq!(second.status, WriteStatus::Dedup);
        assert_eq!(files_in(&root.join("tmp")), 0);
        let obj = cas.get(&hex).await.unwrap().unwrap();
        assert_eq!(&obj.body[..], b"hello cas");
        assert_eq!(&*obj.etag, format!("\"b3:{hex}\""));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test]
    async fn a_digest_mismatch_stores_nothing_and_leaves_no_temp() {
        let root = scratch("mismatch");
        let cas = Cas::open(&root, true).unwrap();
        let wrong = "0".repeat(64);
        let err = cas.put(b"bytes", Some(&wrong)).await.unwrap_err();
        assert!(matches!(err, CasError::DigestMismatch { .. }));
        assert_eq!(err.edge_error(), EdgeError::DigestMismatch);
        assert_eq!(files_in(&root.join("tmp")), 0);
        assert_eq!(files_in(&root.join("b3")), 0);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test]
    async fn a_read_only_store_remembers_a_corrupt_object_instead_of_moving_it() {
        let root = scratch("ro");
        let hex = Cas::open(&root, true)
            .unwrap()
            .put(b"original", None)
            .await
            .unwrap()
            .hex;
        let path = root.join("b3").join(&hex[..2]).join(&hex[2..4]).join(&hex);
        std::fs::write(&path, b"tampered").unwrap();
        let ro = Cas::open(&root, false).unwrap();
        assert!(matches!(
            ro.get(&hex).await,
            Err(CasError::Integrity { .. })
        ));
        assert!(path.is_file());
        assert!(ro.get(&hex).await.unwrap().is_none());
        assert!(matches!(
            ro.put(b"x", None).await,
            Err(CasError::ReadOnly(_))
        ));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test]
    async fn malformed_keys_are_refused_before_any_file_is_touched() {
        let root = scratch("keys");
        let cas = Cas::open(&root, false).unwrap();
        for bad in ["", "../etc", &"A".repeat(64), &"a".repeat(63)] {
            assert!(matches!(cas.get(bad).await, Err(CasError::BadDigest(_))));
        }
        assert!(cas.get(&"a".repeat(64)).await.unwrap().is_none());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test]
    async fn refs_round_trip_and_a_missing_ref_is_none() {
        let root = scratch("refs");
        let cas = Cas::open(&root, true).unwrap();
        let key = "https://example.org/a/b";
        assert_eq!(cas.read_ref(key).await.unwrap(), None);
        let r = Ref {
            b3: "ab".repeat(32),
            len: 3,
            content_type: "text/plain".into(),
            fetched_at: 1_700_000_000,
        };
        cas.write_ref(key, &r).await.unwrap();
        assert_eq!(cas.read_ref(key).await.unwrap(), Some(r));
        assert_eq!(files_in(&root.join("tmp")), 0);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn opening_removes_only_temps_older_than_the_limit() {
        let root = scratch("sweep");
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        let old = root.join("tmp").join("old.tmp");
        let new = root.join("tmp").join("new.tmp");
        std::fs::write(&old, b"x").unwrap();
        std::fs::write(&new, b"x").unwrap();
        let f = File::options().write(true).open(&old).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(7200))
            .unwrap();
        Cas::open(&root, true).unwrap();
        assert!(!old.exists());
        assert!(new.exists());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test]
    async fn reachability_needs_a_directory_and_in_live_mode_room_to_write() {
        let root = scratch("reach");
        let cas = Cas::open(&root, true).unwrap();
        assert!(cas.reachable(false, 0).await);
        assert!(cas.reachable(true, 1).await);
        assert!(!cas.reachable(true, u64::MAX).await);
        assert!(!Cas::open(&root, false).unwrap().reachable(true, 0).await);
        let missing = Cas::open(&root.join("nope"), false).unwrap();
        assert!(!missing.reachable(false, 0).await);
        assert_eq!(files_in(&root.join("tmp")), 0);
        std::fs::remove_dir_all(root).unwrap();
    }
}
