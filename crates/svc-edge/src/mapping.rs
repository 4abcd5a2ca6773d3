//! Read-only file mappings as `Bytes`: the one module of svc-edge allowed `unsafe`.
//!
//! Contract: packs and CAS objects are immutable while mounted (operators replace them by
//! rename, then SIGHUP). Truncating a mapped file in place is an operator error that can
//! kill the process with SIGBUS; that is documented in the runbook and the spec (§4.7).
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use bytes::Bytes;

/// Opens `path` without following a final symlink and maps it read-only. Empty files
/// map to an empty `Bytes` (a zero-length mapping is not allowed).
pub fn map_file(path: &Path) -> io::Result<(Bytes, std::fs::Metadata)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    map_open_file(&file)
}

/// Maps an already opened file read-only.
pub fn map_open_file(file: &File) -> io::Result<(Bytes, std::fs::Metadata)> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() == 0 {
        return Ok((Bytes::new(), meta));
    }
    // SAFETY: the mapping is read-only and the file is immutable while mounted (module
    // contract above); the Mmap lives inside the Bytes owner for as long as any view does.
    let map = unsafe { memmap2::Mmap::map(file)? };
    Ok((Bytes::from_owner(map), meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_regular_files_and_refuses_symlinks() {
        let dir = std::env::temp_dir().join(format!("edge-map-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.bin");
        std::fs::write(&f, b"hello").unwrap();
        let (b, meta) = map_file(&f).unwrap();
        assert_eq!(&b[..], b"hello");
        assert_eq!(meta.len(), 5);
        let l = dir.join("link");
        let _ = std::fs::remove_file(&l);
        std::os::unix::fs::symlink(&f, &l).unwrap();
        assert!(map_file(&l).is_err());
        let e = dir.join("empty");
        std::fs::write(&e, b"").unwrap();
        assert!(map_file(&e).unwrap().0.is_empty());
    }
}
