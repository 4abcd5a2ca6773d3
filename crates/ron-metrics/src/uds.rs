//! Safe Unix-socket binding for the exposer.
//!
//! The parent directory must be ours and private (0700, no symlink), so nobody else can
//! swap the path between our checks; an existing socket is removed only after a failed
//! `connect` proves it stale; anything else at the path is refused and never deleted. The
//! socket is made 0600 before `listen`, and on shutdown removed only if the inode at the
//! path is still the one we bound.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::options::MAX_UDS_PATH_BYTES;

/// Backlog of the exposer's listening sockets.
pub const LISTEN_BACKLOG: i32 = 1024;

/// A bound socket and the identity of its file.
pub(crate) struct BoundUds {
    pub(crate) listener: std::os::unix::net::UnixListener,
    pub(crate) path: PathBuf,
    dev: u64,
    ino: u64,
}

/// Binds `path` following the rules above; errors name the path and the mode.
pub(crate) fn bind(path: &Path) -> Result<BoundUds, String> {
    let shown = path.display();
    if !path.is_absolute() || path.as_os_str().len() > MAX_UDS_PATH_BYTES {
        return Err(format!(
            "uds path {shown} must be absolute and at most 107 bytes"
        ));
    }
    let parent = path
        .parent()
        .ok_or_else(|| format!("uds path {shown} has no parent directory"))?;
    check_parent(parent)?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(format!("uds path {shown} is a symlink; refusing to use it"));
        }
        Ok(meta) if meta.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => return Err(format!("uds path {shown} is in use by a live server")),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(path)
                        .map_err(|e| format!("cannot remove stale socket {shown}: {e}"))?;
                }
                Err(e) => return Err(format!("cannot probe existing socket {shown}: {e}")),
            }
        }
        Ok(_) => {
            return Err(format!(
                "uds path {shown} exists and is not a socket; refusing to replace it"
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot inspect uds path {shown}: {e}")),
    }

    let sock = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)
        .map_err(|e| format!("cannot create socket for {shown}: {e}"))?;
    let addr = socket2::SockAddr::unix(path).map_err(|e| format!("bad uds path {shown}: {e}"))?;
    sock.bind(&addr)
        .map_err(|e| format!("cannot bind uds {shown}: {e}"))?;
    set_mode(path, 0o600).map_err(|e| format!("cannot chmod 0600 uds {shown}: {e}"))?;
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| format!("uds {shown} vanished after bind: {e}"))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if !meta.file_type().is_socket() || meta.uid() != euid {
        return Err(format!("uds path {shown} was replaced during bind"));
    }
    sock.listen(LISTEN_BACKLOG)
        .map_err(|e| format!("cannot listen on uds {shown}: {e}"))?;
    sock.set_nonblocking(true)
        .map_err(|e| format!("cannot set uds {shown} non-blocking: {e}"))?;
    Ok(BoundUds {
        listener: sock.into(),
        path: path.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

impl BoundUds {
    /// Removes the socket file if the path still holds the socket we bound.
    pub(crate) fn remove_if_ours(path: &Path, dev: u64, ino: u64) {
        if let Ok(meta) = std::fs::symlink_metadata(path)
            && meta.file_type().is_socket()
            && meta.dev() == dev
            && meta.ino() == ino
        {
            let _ = std::fs::remove_file(path);
        }
    }

    /// The bound file's identity.
    pub(crate) fn identity(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }
}

fn check_parent(parent: &Path) -> Result<(), String> {
    let shown = parent.display();
    match std::fs::symlink_metadata(parent) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| format!("cannot create uds parent {shown} with mode 0700: {e}")),
        Err(e) => Err(format!("cannot inspect uds parent {shown}: {e}")),
        Ok(meta) => {
            if meta.file_type().is_symlink() {
                return Err(format!(
                    "uds parent {shown} is a symlink; need a real directory"
                ));
            }
            if !meta.is_dir() {
                return Err(format!("uds parent {shown} is not a directory"));
            }
            // SAFETY: geteuid has no preconditions and cannot fail.
            let euid = unsafe { libc::geteuid() };
            if meta.uid() != euid {
                return Err(format!(
                    "uds parent {shown} is owned by uid {}; need uid {euid}",
                    meta.uid()
                ));
            }
            let mode = meta.mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(format!("uds parent {shown} has mode {mode:04o}; need 0700"));
            }
            Ok(())
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ron-uds-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn fresh_parent_is_created_private_and_socket_is_0600() {
        let d = tmpdir("fresh").join("nested");
        let p = d.join("m.sock");
        let b = bind(&p).unwrap();
        assert_eq!(std::fs::metadata(&d).unwrap().mode() & 0o777, 0o700);
        assert_eq!(std::fs::symlink_metadata(&p).unwrap().mode() & 0o777, 0o600);
        let (dev, ino) = b.identity();
        drop(b);
        BoundUds::remove_if_ours(&p, dev, ino);
        assert!(!p.exists());
    }

    #[test]
    fn open_parent_symlink_regular_file_and_live_socket_are_refused() {
        let d = tmpdir("refuse");
        std::fs::create_dir_all(&d).unwrap();
        set_mode(&d, 0o755).unwrap();
        let err = bind(&d.join("m.sock")).err().unwrap();
        assert!(err.contains("has mode 0755; need 0700"), "{err}");
        set_mode(&d, 0o700).unwrap();

        let file = d.join("file");
        std::fs::write(&file, b"keep").unwrap();
        assert!(bind(&file).is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"keep");

        let link = d.join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(bind(&link).err().unwrap().contains("symlink"));

        let live = d.join("live.sock");
        let _b = bind(&live).unwrap();
        assert!(bind(&live).err().unwrap().contains("in use"));
    }

    #[test]
    fn stale_socket_is_replaced() {
        let d = tmpdir("stale");
        let p = d.join("m.sock");
        let b = bind(&p).unwrap();
        drop(b);
        assert!(p.exists());
        let b2 = bind(&p).unwrap();
        assert_ne!(b2.identity(), (0, 0));
    }
}
