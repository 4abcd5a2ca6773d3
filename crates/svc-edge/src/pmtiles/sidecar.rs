//! The optional `<archive>.b3` sidecar (§4.7 step 5): its first token must be the
//! archive's BLAKE3, as `b3sum` writes it.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::PackError;

/// A sidecar is one line; anything longer than this is not a `.b3` file.
const SIDECAR_MAX_BYTES: u64 = 4096;

/// `<archive>.b3`, next to the archive.
pub fn sidecar_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".b3");
    PathBuf::from(name)
}

/// Checks the sidecar's first token against `actual_hex`; a missing sidecar passes.
pub fn check_sidecar(path: &Path, actual_hex: &str) -> Result<(), PackError> {
    let bad = |why: String| PackError::BadSidecar {
        path: path.to_path_buf(),
        why,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(bad(e.to_string())),
    };
    let mut text = String::new();
    file.take(SIDECAR_MAX_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| bad(e.to_string()))?;
    let token = text.split_whitespace().next().unwrap_or("");
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(format!("first token {token:?} is not 64 hex digits")));
    }
    if !token.eq_ignore_ascii_case(actual_hex) {
        return Err(PackError::SidecarMismatch {
            path: path.to_path_buf(),
            expected: token.to_ascii_lowercase(),
            actual: actual_hex.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_path_appends_b3() {
        assert_eq!(
            sidecar_path(Path::new("/d/world.pmtiles")),
            PathBuf::from("/d/world.pmtiles.b3")
        );
    }

    #[test]
    fn sidecars_must_start_with_the_matching_digest() {
        let dir = std::env::temp_dir().join(format!("edge-sidecar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.b3");
        let hex = "ab".repeat(32);
        assert!(check_sidecar(&p, &hex).is_ok(), "missing sidecar passes");
        std::fs::write(&p, format!("{}  x\n", hex.to_uppercase())).unwrap();
        assert!(check_sidecar(&p, &hex).is_ok());
        std::fs::write(&p, format!("{}  x\n", "cd".repeat(32))).unwrap();
        assert_eq!(
            check_sidecar(&p, &hex).unwrap_err().reason(),
            "sidecar_mismatch"
        );
        std::fs::write(&p, "nothex\n").unwrap();
        assert_eq!(check_sidecar(&p, &hex).unwrap_err().reason(), "bad_sidecar");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
