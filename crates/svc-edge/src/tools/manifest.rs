//! `tools manifest DIR`: a `.b3sums` manifest for a directory pack (§4.7).
//!
//! Lines are `<64 hex>  <relative path>` (b3sum's format), sorted by path, for the same
//! files a directory pack would serve: symlinks, dot-entries and non-regular files are
//! skipped, as are names that cannot be written on one manifest line (not UTF-8, or
//! holding a control character or a backslash).

use std::io;
use std::path::Path;

/// Deepest directory nesting walked, as for directory packs.
pub const MAX_DEPTH: usize = 32;
/// Most files listed, as for directory packs.
pub const MAX_FILES: usize = 1_000_000;

/// The manifest text for `dir`.
pub fn manifest(dir: &Path) -> io::Result<String> {
    let mut files = Vec::new();
    walk(dir, String::new(), 0, &mut files)?;
    files.sort_unstable();
    let mut out = String::with_capacity(files.len() * 80);
    for rel in files {
        let (bytes, _) = crate::mapping::map_file(&dir.join(&rel))?;
        out.push_str(blake3::hash(&bytes).to_hex().as_str());
        out.push_str("  ");
        out.push_str(&rel);
        out.push('\n');
    }
    Ok(out)
}

fn walk(dir: &Path, prefix: String, depth: usize, files: &mut Vec<String>) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::other(format!(
            "{} nests deeper than {MAX_DEPTH} directories",
            dir.display()
        )));
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.starts_with('.') || name.chars().any(|c| c.is_control() || c == '\\') {
            continue;
        }
        // `DirEntry::file_type` does not follow symlinks, so links are seen as links.
        let kind = entry.file_type()?;
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if kind.is_dir() {
            walk(&entry.path(), rel, depth + 1, files)?;
        } else if kind.is_file() {
            if files.len() == MAX_FILES {
                return Err(io::Error::other(format!(
                    "more than {MAX_FILES} files under the directory"
                )));
            }
            files.push(rel);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_lists_regular_files_sorted_and_skips_links_and_dotfiles() {
        let dir = std::env::temp_dir().join(format!("edge-manifest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("b.txt"), b"b").unwrap();
        std::fs::write(dir.join("sub/a.txt"), b"a").unwrap();
        std::fs::write(dir.join(".hidden"), b"h").unwrap();
        std::fs::write(dir.join("empty"), b"").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).unwrap();
        let text = manifest(&dir).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], format!("{}  b.txt", blake3::hash(b"b").to_hex()));
        assert!(lines[1].ends_with("  empty"));
        assert_eq!(
            lines[2],
            format!("{}  sub/a.txt", blake3::hash(b"a").to_hex())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
