//! Directory packs (spec §4.7): a recursive walk recorded at mount, every file hashed with
//! BLAKE3 in parallel, an optional `.b3sums` manifest enforced, and bodies served from
//! lazily created read-only mappings.
//!
//! A request path is only ever a key into the index built here; it never becomes a
//! file-system path. Files are opened from their recorded absolute paths with
//! `O_NOFOLLOW`.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use http::HeaderValue;

use crate::mapping::map_file;
use crate::mime;

/// Deepest directory level walked.
pub const MAX_DEPTH: usize = 32;
/// Most files one directory pack may hold.
pub const MAX_FILES: usize = 1_000_000;
/// Manifest file name at the pack root.
pub const MANIFEST: &str = ".b3sums";

/// Why a directory pack failed to mount.
#[derive(Debug, thiserror::Error)]
pub enum DirPackError {
    /// The root is missing or not a directory.
    #[error("pack root is not a readable directory")]
    NotADirectory,
    /// More than [`MAX_FILES`] files or deeper than [`MAX_DEPTH`].
    #[error("directory pack too large: {0}")]
    TooLarge(&'static str),
    /// A file listed in the manifest is missing.
    #[error("manifest lists a missing file")]
    ManifestMissing(String),
    /// A file's digest differs from its manifest line.
    #[error("manifest digest mismatch")]
    ManifestMismatch(String),
    /// The manifest cannot be parsed.
    #[error("manifest line {0} is malformed")]
    ManifestMalformed(usize),
    /// Reading a file failed.
    #[error("cannot read a pack file: {0}")]
    Io(#[from] std::io::Error),
}

impl DirPackError {
    /// Short machine reason for the `pack_mount` log line.
    pub fn reason(&self) -> &'static str {
        match self {
            DirPackError::NotADirectory => "not_a_directory",
            DirPackError::TooLarge(_) => "too_large",
            DirPackError::ManifestMissing(_) => "manifest_missing",
            DirPackError::ManifestMismatch(_) => "manifest_mismatch",
            DirPackError::ManifestMalformed(_) => "manifest_malformed",
            DirPackError::Io(_) => "io",
        }
    }
}

/// Identity of a file on disk; a change means the bytes may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    /// Size in bytes.
    pub size: u64,
    /// Modification time in whole seconds since the epoch.
    pub mtime: i64,
    /// Inode number.
    pub ino: u64,
}

/// A served file and its verified digest.
pub struct DirFile {
    /// Key under `/edge/assets/`.
    pub rel: String,
    /// Absolute path opened with `O_NOFOLLOW`.
    pub abs: PathBuf,
    /// Identity recorded at mount.
    pub id: FileId,
    /// BLAKE3 recorded at mount.
    pub digest: [u8; 32],
    /// Digest from the manifest, when one listed the file.
    pub manifest: Option<[u8; 32]>,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// `Last-Modified`: mtime in whole seconds, never later than the mount time.
    pub last_modified: SystemTime,
    /// `Last-Modified` as a header value.
    pub last_modified_header: HeaderValue,
    opened: OnceLock<Opened>,
    disabled: AtomicBool,
}

/// A mapped body and the digest of exactly those bytes.
#[derive(Clone)]
pub struct Opened {
    /// The mapping.
    pub body: Bytes,
    /// `"b3:<hex>"`, quoted.
    pub etag: HeaderValue,
}

/// Why a file could not be served.
#[derive(Debug, PartialEq, Eq)]
pub enum ServeError {
    /// The bytes no longer match the manifest: 500 `integrity`, file disabled.
    Integrity,
    /// The file was disabled after an integrity failure: 404.
    Disabled,
    /// The file cannot be opened or mapped: 503 `io`.
    Io,
}

/// A mounted directory pack.
pub struct DirPack {
    /// The root as configured.
    pub root: PathBuf,
    /// Files by key.
    pub files: HashMap<String, Arc<DirFile>>,
}

/// Counts live mappings so `open_files` bounds them.
#[derive(Default)]
pub struct MapBudget {
    open: AtomicUsize,
    limit: AtomicUsize,
}

impl MapBudget {
    /// A budget of `limit` mappings.
    pub fn new(limit: usize) -> MapBudget {
        MapBudget {
            open: AtomicUsize::new(0),
            limit: AtomicUsize::new(limit),
        }
    }

    fn take(&self) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }
}

impl DirFile {
    /// The body and its ETag. The first call maps the file (and re-hashes it if its
    /// identity changed since mount); later calls are a lock-free load. Blocking: call
    /// from the blocking pool the first time (see [`DirFile::is_open`]).
    pub fn open(&self, budget: &MapBudget) -> Result<Opened, ServeError> {
        if self.disabled.load(Ordering::Acquire) {
            return Err(ServeError::Disabled);
        }
        if let Some(o) = self.opened.get() {
            return Ok(o.clone());
        }
        let (body, meta) = map_file(&self.abs).map_err(|_| ServeError::Io)?;
        let now = file_id(&meta);
        let digest = if now == self.id {
            self.digest
        } else {
            let d = *blake3::hash(&body).as_bytes();
            tracing::warn!(event = "pack_changed", path = %self.rel, "pack_changed");
            if self.manifest.is_some_and(|m| m != d) {
                self.disabled.store(true, Ordering::Release);
                return Err(ServeError::Integrity);
            }
            d
        };
        let opened = Opened {
            body,
            etag: etag_value(&digest),
        };
        // Past the mapping budget the body is served but not kept mapped.
        if budget.take() {
            let _ = self.opened.set(opened.clone());
        }
        Ok(opened)
    }

    /// Whether a warm (lock-free, syscall-free) open is possible.
    pub fn is_open(&self) -> bool {
        self.opened.get().is_some()
    }
}

/// `"b3:<64 lowercase hex>"` including the quotes.
pub fn etag_for(digest: &[u8; 32]) -> Arc<str> {
    format!("\"b3:{}\"", blake3::Hash::from(*digest).to_hex()).into()
}

/// [`etag_for`] as a ready header value: cloning it is a reference-count bump, so the hot
/// path never re-formats or re-validates a tag.
pub fn etag_value(digest: &[u8; 32]) -> HeaderValue {
    // Quotes, a colon and hex digits are always a valid header value.
    HeaderValue::from_str(&etag_for(digest)).unwrap_or(HeaderValue::from_static("\"\""))
}

/// `Last-Modified` text for `t`, formatted once per file.
pub fn http_date_header(t: SystemTime) -> HeaderValue {
    HeaderValue::from_str(&httpdate::fmt_http_date(t)).unwrap_or(HeaderValue::from_static(""))
}

fn file_id(meta: &std::fs::Metadata) -> FileId {
    FileId {
        size: meta.len(),
        mtime: meta.mtime(),
        ino: meta.ino(),
    }
}

/// Mounts `root`, reusing the verification of files whose identity did not change in
/// `previous`.
pub fn mount(root: &Path, previous: Option<&DirPack>) -> Result<DirPack, DirPackError> {
    let meta = std::fs::symlink_metadata(root).map_err(|_| DirPackError::NotADirectory)?;
    if !meta.is_dir() {
        return Err(DirPackError::NotADirectory);
    }
    let abs_root = root.canonicalize()?;
    let mut found = Vec::new();
    walk(&abs_root, "", 0, &mut found)?;
    let manifest = read_manifest(&abs_root)?;
    let now = SystemTime::now();

    let hashed = hash_all(&found, previous)?;
    let mut files = HashMap::with_capacity(found.len());
    for ((rel, abs, id), digest) in found.into_iter().zip(hashed) {
        let listed = manifest.as_ref().and_then(|m| m.get(&rel).copied());
        if let Some(m) = listed
            && m != digest
        {
            return Err(DirPackError::ManifestMismatch(rel));
        }
        if manifest.is_some() && listed.is_none() {
            tracing::warn!(event = "pack_mount", path = %rel, "file not listed in .b3sums; serving it unverified by the manifest");
        }
        let lm = std::time::UNIX_EPOCH + std::time::Duration::from_secs(id.mtime.max(0) as u64);
        let file = DirFile {
            content_type: mime::for_path(&rel),
            last_modified: lm.min(now),
            last_modified_header: http_date_header(lm.min(now)),
            rel: rel.clone(),
            abs,
            id,
            digest,
            manifest: listed,
            opened: OnceLock::new(),
            disabled: AtomicBool::new(false),
        };
        files.insert(rel, Arc::new(file));
    }
    if let Some(m) = &manifest
        && let Some(missing) = m.keys().find(|k| !files.contains_key(*k))
    {
        return Err(DirPackError::ManifestMissing(missing.clone()));
    }
    Ok(DirPack {
        root: root.to_path_buf(),
        files,
    })
}

type Found = (String, PathBuf, FileId);

/// Whether a request could address this name at all (spec §4.3 segment rules).
fn addressable(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b'\\' || b < 0x20 || b == 0x7f)
}

fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<Found>) -> Result<(), DirPackError> {
    if depth > MAX_DEPTH {
        return Err(DirPackError::TooLarge("deeper than 32 levels"));
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            tracing::warn!(
                event = "pack_mount",
                "skipping a file name that is not UTF-8"
            );
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if !addressable(&name) {
            tracing::warn!(event = "pack_mount", path = %rel.escape_debug(), "skipping a name no request could address");
            continue;
        }
        let meta = std::fs::symlink_metadata(entry.path())?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            tracing::warn!(event = "pack_mount", path = %rel, "skipping symlink (never followed)");
        } else if ft.is_dir() {
            walk(&entry.path(), &rel, depth + 1, out)?;
        } else if ft.is_file() {
            if out.len() >= MAX_FILES {
                return Err(DirPackError::TooLarge("more than 1,000,000 files"));
            }
            out.push((rel, entry.path(), file_id(&meta)));
        } else {
            tracing::warn!(event = "pack_mount", path = %rel, "skipping non-regular file");
        }
    }
    Ok(())
}

/// One hashing thread's results: (index into the walk, digest).
type HashedChunk = Result<Vec<(usize, [u8; 32])>, std::io::Error>;

/// Hashes every file on a few threads; unchanged files keep their earlier digest.
fn hash_all(found: &[Found], previous: Option<&DirPack>) -> Result<Vec<[u8; 32]>, DirPackError> {
    let reuse = |rel: &str, abs: &Path, id: &FileId| {
        previous
            .and_then(|p| p.files.get(rel))
            .filter(|f| f.abs == abs && f.id == *id)
            .map(|f| f.digest)
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let next = AtomicUsize::new(0);
    let mut out = vec![[0u8; 32]; found.len()];
    let results: Vec<HashedChunk> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((rel, abs, id)) = found.get(i) else {
                            return Ok(mine);
                        };
                        let d = match reuse(rel, abs, id) {
                            Some(d) => d,
                            None => *blake3::hash(&map_file(abs)?.0).as_bytes(),
                        };
                        mine.push((i, d));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("hash thread panicked")))
            })
            .collect()
    });
    for r in results {
        for (i, d) in r? {
            out[i] = d;
        }
    }
    Ok(out)
}

/// Parses `<64 hex> <space|*><path>` lines (b3sum format).
fn read_manifest(root: &Path) -> Result<Option<HashMap<String, [u8; 32]>>, DirPackError> {
    let text = match std::fs::read_to_string(root.join(MANIFEST)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut m = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (hex, rest) = line
            .split_at_checked(64)
            .ok_or(DirPackError::ManifestMalformed(n + 1))?;
        let digest =
            blake3::Hash::from_hex(hex).map_err(|_| DirPackError::ManifestMalformed(n + 1))?;
        let path = rest
            .strip_prefix("  ")
            .or_else(|| rest.strip_prefix(" *"))
            .or_else(|| rest.strip_prefix(' '))
            .ok_or(DirPackError::ManifestMalformed(n + 1))?;
        m.insert(path.to_owned(), *digest.as_bytes());
    }
    Ok(Some(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("edge-dir-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn mount_indexes_regular_files_and_skips_dotfiles_and_symlinks() {
        let d = tmp("walk");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("a.txt"), b"alpha").unwrap();
        std::fs::write(d.join("sub/b.json"), b"{}").unwrap();
        std::fs::write(d.join(".hidden"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("passwd")).unwrap();
        let p = mount(&d, None).unwrap();
        let mut keys: Vec<_> = p.files.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["a.txt", "sub/b.json"]);
        let a = &p.files["a.txt"];
        assert_eq!(a.digest, *blake3::hash(b"alpha").as_bytes());
        assert_eq!(a.content_type, "text/plain; charset=utf-8");
        let o = a.open(&MapBudget::new(16)).unwrap();
        assert_eq!(&o.body[..], b"alpha");
        assert_eq!(
            o.etag.to_str().unwrap(),
            format!("\"b3:{}\"", blake3::hash(b"alpha").to_hex())
        );
    }

    #[test]
    fn manifest_mismatch_or_missing_file_fails_the_mount() {
        let d = tmp("manifest");
        std::fs::write(d.join("a.txt"), b"alpha").unwrap();
        let good = format!("{}  a.txt\n", blake3::hash(b"alpha").to_hex());
        std::fs::write(d.join(MANIFEST), &good).unwrap();
        assert!(mount(&d, None).is_ok());
        std::fs::write(
            d.join(MANIFEST),
            format!("{}  a.txt\n", blake3::hash(b"other").to_hex()),
        )
        .unwrap();
        assert_eq!(mount(&d, None).err().unwrap().reason(), "manifest_mismatch");
        std::fs::write(
            d.join(MANIFEST),
            format!("{good}{}  gone.txt\n", blake3::hash(b"x").to_hex()),
        )
        .unwrap();
        assert_eq!(mount(&d, None).err().unwrap().reason(), "manifest_missing");
    }

    #[test]
    fn a_file_changed_after_mount_is_rehashed_and_disabled_on_manifest_mismatch() {
        let d = tmp("changed");
        std::fs::write(d.join("a.txt"), b"alpha").unwrap();
        std::fs::write(
            d.join(MANIFEST),
            format!("{}  a.txt\n", blake3::hash(b"alpha").to_hex()),
        )
        .unwrap();
        let p = mount(&d, None).unwrap();
        // Replace by rename with different bytes: new inode, so the identity changes.
        std::fs::write(d.join("new"), b"tampered").unwrap();
        std::fs::rename(d.join("new"), d.join("a.txt")).unwrap();
        let f = &p.files["a.txt"];
        assert_eq!(
            f.open(&MapBudget::new(16)).err(),
            Some(ServeError::Integrity)
        );
        assert_eq!(
            f.open(&MapBudget::new(16)).err(),
            Some(ServeError::Disabled)
        );
    }
}
