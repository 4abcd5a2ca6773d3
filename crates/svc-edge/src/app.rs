//! Shared server state: the live config and PackSet (each swapped atomically, so a request
//! keeps the set it started with), admission, metrics and readiness.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use ron_kernel::HealthState;

use crate::admission::{Inflight, RateLimiter};
use crate::config::EdgeConfig;
use crate::dirpack::{self, DirFile, DirPack, MapBudget, etag_value};
use crate::fill::Filler;
use crate::metrics::EdgeMetrics;
use crate::pmtiles::{Archive, DecodeCaps};

/// Readiness keys (spec §5.3).
pub mod ready {
    /// Config loaded and validated.
    pub const CONFIG_LOADED: &str = "config_loaded";
    /// Every configured pack mounted and verified.
    pub const PACKS_VERIFIED: &str = "packs_verified";
    /// `maintenance=true`.
    pub const MAINTENANCE: &str = "maintenance";
    /// Inflight near the cap.
    pub const UNDER_PRESSURE: &str = "under_pressure";
    /// Allow-list parsed (and non-empty in live mode).
    pub const ALLOW_LIST_PARSED: &str = "allow_list_parsed";
    /// Amnesia constraints hold.
    pub const AMNESIA_OK: &str = "amnesia_ok";
    /// `cas_dir` is a readable (in live mode writable, roomy) directory.
    pub const CAS_REACHABLE: &str = "cas_reachable";
}

/// A mounted archive and what its whole-file response needs.
pub struct ArchivePack {
    /// The verified archive.
    pub archive: Archive,
    /// Configured path (reused on reload when unchanged).
    pub path: PathBuf,
    /// File name under `/edge/assets/`.
    pub file_name: String,
    /// `"b3:<hex>"` of the whole file.
    pub etag: http::HeaderValue,
    /// Archive mtime in whole seconds, never later than mount time.
    pub last_modified: std::time::SystemTime,
    /// `Last-Modified` as a header value.
    pub last_modified_header: http::HeaderValue,
    /// Tile digests, computed lazily.
    pub digests: crate::digests::TileDigests,
}

/// What a key under `/edge/assets/` names.
#[derive(Clone)]
pub enum Asset {
    /// A directory-pack file.
    File(Arc<DirFile>),
    /// A whole archive.
    Archive(Arc<ArchivePack>),
}

/// An immutable set of mounted packs.
#[derive(Default)]
pub struct PackSet {
    /// Mount generation, bumped by every (re)mount.
    pub generation: u64,
    /// `/edge/assets` namespace: directory files and archive file names.
    pub assets: HashMap<String, Asset>,
    /// Archives by file stem (`/edge/tiles/{pack}`).
    pub archives: HashMap<String, Arc<ArchivePack>>,
    /// Mounted directory packs by configured path (reused on reload).
    pub dirs: HashMap<PathBuf, Arc<DirPack>>,
    /// Whether every configured pack mounted.
    pub complete: bool,
}

/// Everything a request needs.
pub struct App {
    /// Live configuration.
    pub config: ArcSwap<EdgeConfig>,
    /// Live packs.
    pub packs: ArcSwap<PackSet>,
    /// First mount pass finished.
    pub mounted: AtomicBool,
    /// Metric handles.
    pub metrics: EdgeMetrics,
    /// Readiness.
    pub health: Arc<HealthState>,
    /// RPS bucket.
    pub rate: RateLimiter,
    /// Inflight permits.
    pub inflight: Inflight,
    /// Mapping budget (`open_files`).
    pub budget: MapBudget,
    /// Draining has begun.
    pub draining: AtomicBool,
    /// `Cache-Control` of assets, tiles, 204s and TileJSON for the live config.
    pub pack_cache_control: ArcSwap<http::HeaderValue>,
    /// `Cache-Control` of live responses without `?b3=` for the live config.
    pub live_cache_control: ArcSwap<http::HeaderValue>,
    /// Live fill and the store behind `/cas/b3` (the CAS, or the RAM cache).
    pub filler: Filler,
    generation: AtomicU64,
    /// Process start, for logs.
    pub started: Instant,
}

impl App {
    /// State for `config`; packs are mounted later by [`App::mount_packs`].
    pub fn new(
        config: EdgeConfig,
        metrics: EdgeMetrics,
        health: Arc<HealthState>,
        filler: Filler,
    ) -> Arc<App> {
        let rate = RateLimiter::new(config.ingress.rps_limit);
        let inflight = Inflight::new(config.ingress.max_inflight);
        metrics
            .inflight_limit
            .set(i64::from(config.ingress.max_inflight));
        let budget = MapBudget::new(config.edge.open_files as usize);
        let pack_cache_control = ArcSwap::from_pointee(pack_cache_control(&config));
        let live_cache_control = ArcSwap::from_pointee(live_cache_control(&config));
        Arc::new(App {
            pack_cache_control,
            live_cache_control,
            filler,
            config: ArcSwap::from_pointee(config),
            packs: ArcSwap::from_pointee(PackSet::default()),
            mounted: AtomicBool::new(false),
            metrics,
            health,
            rate,
            inflight,
            budget,
            draining: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    /// Mounts every configured pack (blocking: run on the blocking pool), reusing
    /// unchanged files of the current set, then swaps the new set in atomically.
    /// Returns whether every pack mounted.
    pub fn mount_packs(&self, config: &EdgeConfig) -> bool {
        let previous = self.packs.load_full();
        let mut set = PackSet {
            generation: self.generation.fetch_add(1, Ordering::AcqRel) + 1,
            complete: true,
            ..PackSet::default()
        };
        let mut dir_count = 0i64;
        let mut archive_count = 0i64;
        let caps = DecodeCaps {
            max_ratio: config.ingress.max_decompress_ratio,
            max_bytes: config.ingress.max_decompress_bytes,
        };
        for path in &config.edge.packs {
            let started = Instant::now();
            let is_archive = path.extension().and_then(|e| e.to_str()) == Some("pmtiles");
            let kind = if is_archive { "pmtiles" } else { "dir" };
            if is_archive {
                let ms = || started.elapsed().as_millis() as u64;
                match mount_archive(path, caps, &previous) {
                    Ok(pack) => {
                        for w in pack.archive.warnings() {
                            tracing::warn!(event = "pack_mount", pack = %path.display(), warning = %w, "pack_mount");
                        }
                        let stem = path
                            .file_stem()
                            .and_then(|s| s.to_str())
                            .unwrap_or("")
                            .to_owned();
                        tracing::info!(event = "pack_mount", pack = %path.display(), kind, tiles = pack.archive.stats().addressed_tiles, bytes = pack.archive.bytes().len(), ms = ms(), result = "ok", "pack_mount");
                        self.metrics.pack_mounts.with_label_values(&["ok"]).inc();
                        if set.assets.contains_key(&pack.file_name) {
                            tracing::warn!(event = "pack_mount", pack = %path.display(), path = %pack.file_name, "name shadowed by an earlier pack");
                        } else {
                            set.assets
                                .insert(pack.file_name.clone(), Asset::Archive(pack.clone()));
                        }
                        set.archives.insert(stem, pack);
                        archive_count += 1;
                    }
                    Err(e) => {
                        set.complete = false;
                        tracing::warn!(event = "pack_mount", pack = %path.display(), kind, ms = ms(), result = "error", reason = e.reason(), detail = %e, "pack_mount");
                        self.metrics.pack_mounts.with_label_values(&["error"]).inc();
                    }
                }
                continue;
            }
            let result = dirpack::mount(path, previous.dirs.get(path).map(|d| d.as_ref()))
                .map_err(|e| (e.reason(), e.to_string()));
            let ms = started.elapsed().as_millis() as u64;
            match result {
                Ok(pack) => {
                    let pack = Arc::new(pack);
                    for (key, file) in &pack.files {
                        if set.assets.contains_key(key) {
                            tracing::warn!(event = "pack_mount", pack = %path.display(), path = %key, "name shadowed by an earlier pack");
                            continue;
                        }
                        set.assets.insert(key.clone(), Asset::File(file.clone()));
                    }
                    let bytes: u64 = pack.files.values().map(|f| f.id.size).sum();
                    tracing::info!(event = "pack_mount", pack = %path.display(), kind, files = pack.files.len(), bytes, ms, result = "ok", "pack_mount");
                    self.metrics.pack_mounts.with_label_values(&["ok"]).inc();
                    set.dirs.insert(path.clone(), pack);
                    dir_count += 1;
                }
                Err((reason, detail)) => {
                    set.complete = false;
                    tracing::warn!(event = "pack_mount", pack = %path.display(), kind, ms, result = "error", reason, detail = %detail, "pack_mount");
                    self.metrics.pack_mounts.with_label_values(&["error"]).inc();
                }
            }
        }
        self.metrics
            .packs_mounted
            .with_label_values(&["dir"])
            .set(dir_count);
        self.metrics
            .packs_mounted
            .with_label_values(&["pmtiles"])
            .set(archive_count);
        let complete = set.complete;
        self.packs.store(Arc::new(set));
        self.mounted.store(true, Ordering::Release);
        self.health.set(ready::PACKS_VERIFIED, complete);
        complete
    }
}

/// Opens and verifies an archive, reusing the previous mount when the file's identity
/// (path, size, mtime, inode) is unchanged, so a reload does not re-hash it.
pub fn mount_archive(
    path: &std::path::Path,
    caps: DecodeCaps,
    previous: &PackSet,
) -> Result<Arc<ArchivePack>, crate::pmtiles::PackError> {
    use std::os::unix::fs::MetadataExt;
    if let Some(old) = previous.archives.values().find(|a| a.path == path)
        && let (Ok(now), Some(then)) = (std::fs::metadata(path), old.archive.file_metadata())
        && (now.len(), now.mtime(), now.ino()) == (then.len(), then.mtime(), then.ino())
    {
        return Ok(old.clone());
    }
    let archive = Archive::open(path, caps)?;
    let mtime = archive
        .file_metadata()
        .and_then(|m| m.modified().ok())
        .map(|t| {
            let secs = t
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)
        })
        .unwrap_or(std::time::UNIX_EPOCH)
        .min(std::time::SystemTime::now());
    Ok(Arc::new(ArchivePack {
        etag: etag_value(&archive.digest()),
        file_name: path
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_owned(),
        path: path.to_path_buf(),
        last_modified: mtime,
        last_modified_header: dirpack::http_date_header(mtime),
        archive,
        digests: crate::digests::TileDigests::default(),
    }))
}

/// `public, max-age=<max_age_secs>`, formatted once per config.
pub fn pack_cache_control(config: &EdgeConfig) -> http::HeaderValue {
    max_age(config.edge.max_age_secs)
}

/// `Cache-Control` of live responses without `?b3=`: the shorter of the pack max-age and
/// the ref TTL, so no cache keeps an entry the edge itself would refetch.
pub fn live_cache_control(config: &EdgeConfig) -> http::HeaderValue {
    max_age(config.edge.max_age_secs.min(config.edge.live_ttl_secs))
}

/// `Cache-Control` of CAS objects and live responses pinned by `?b3=`.
pub fn immutable_cache_control() -> http::HeaderValue {
    http::HeaderValue::from_static("public, max-age=31536000, immutable")
}

fn max_age(secs: u32) -> http::HeaderValue {
    // Digits and ASCII text always make a valid header value.
    http::HeaderValue::from_str(&format!("public, max-age={secs}"))
        .unwrap_or(http::HeaderValue::from_static("no-store"))
}
