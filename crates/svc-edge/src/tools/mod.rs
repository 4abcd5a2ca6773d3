//! `svc-edge tools <CMD>`: offline helpers that never bind ports or read config (§2.1).
//!
//! - `sample-pmtiles --out FILE`: write the sample archive (`data/world.pmtiles`);
//! - `bench-data --out DIR`: write the seeded benchmark data set;
//! - `manifest DIR`: print a `.b3sums` manifest;
//! - `pmtiles-info FILE`: verify an archive and print its header and directory stats.
//!
//!
//! [`range_reader`] is the library side of the same family: a Range-request backend for
//! the `pmtiles` crate's reader, pointed at a served archive.
//!
//! What it is not for: anything a running server does.

pub mod bench_data;
pub mod info;
pub mod manifest;
pub mod mvt;
pub mod range_reader;
pub mod sample;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use bench_data::{BenchData, bench_data};
pub use info::pmtiles_info;
pub use manifest::manifest;
pub use sample::{sample_pmtiles, sample_pmtiles_bytes};

use crate::pmtiles::PackError;

/// One-line usage for `svc-edge tools`.
pub const USAGE: &str = "usage: svc-edge tools sample-pmtiles --out FILE | bench-data --out DIR | manifest DIR | pmtiles-info FILE";

/// Why a tool failed; `exit_code` follows §2.1.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// Bad arguments (exit 2).
    #[error("{0}\n{USAGE}")]
    Usage(String),
    /// A file could not be read or written (exit 1).
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Archive verification failed (exit 3).
    #[error("{path}: {reason}: {source}", reason = source.reason())]
    Pack {
        /// The archive.
        path: PathBuf,
        /// What the mount check found.
        source: PackError,
    },
}

impl ToolError {
    /// Process exit status for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) => 2,
            Self::Io { .. } => 1,
            Self::Pack { .. } => 3,
        }
    }
}

/// Runs `svc-edge tools <args>`, printing results to `out`.
pub fn run(args: &[String], out: &mut dyn Write) -> Result<(), ToolError> {
    let (cmd, rest) = args
        .split_first()
        .ok_or_else(|| ToolError::Usage("missing tool name".into()))?;
    let io_at = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ToolError::Io { path, source }
    };
    match cmd.as_str() {
        "sample-pmtiles" => {
            let path = out_flag(rest)?;
            sample_pmtiles(&path).map_err(io_at(&path))
        }
        "bench-data" => {
            let path = out_flag(rest)?;
            let made = bench_data(&path).map_err(io_at(&path))?;
            writeln!(
                out,
                "wrote {} tiles ({} bytes stored, {}..{} per tile) under {}",
                made.tiles,
                made.tile_bytes,
                made.min_tile_bytes,
                made.max_tile_bytes,
                path.display()
            )
            .map_err(io_at(Path::new("stdout")))
        }
        "manifest" => {
            let path = one_path(rest)?;
            let text = manifest(&path).map_err(io_at(&path))?;
            out.write_all(text.as_bytes())
                .map_err(io_at(Path::new("stdout")))
        }
        "pmtiles-info" => {
            let path = one_path(rest)?;
            let info = pmtiles_info(&path).map_err(|source| ToolError::Pack {
                path: path.clone(),
                source,
            })?;
            writeln!(out, "{info:#}").map_err(io_at(Path::new("stdout")))
        }
        other => Err(ToolError::Usage(format!("unknown tool {other:?}"))),
    }
}

/// `--out PATH` or `--out=PATH`, and nothing else.
fn out_flag(args: &[String]) -> Result<PathBuf, ToolError> {
    match args {
        [flag, path] if flag == "--out" => Ok(PathBuf::from(path)),
        [one] if one.starts_with("--out=") => Ok(PathBuf::from(&one["--out=".len()..])),
        _ => Err(ToolError::Usage(format!(
            "expected --out PATH, got {args:?}"
        ))),
    }
}

fn one_path(args: &[String]) -> Result<PathBuf, ToolError> {
    match args {
        [path] if !path.starts_with('-') => Ok(PathBuf::from(path)),
        _ => Err(ToolError::Usage(format!("expected one path, got {args:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn bad_arguments_are_usage_errors_with_exit_2() {
        let mut out = Vec::new();
        for bad in [
            &[][..],
            &["nope"],
            &["sample-pmtiles"],
            &["manifest", "a", "b"],
            &["bench-data", "--outx", "d"],
        ] {
            let err = run(&args(bad), &mut out).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn info_on_a_missing_file_exits_3_with_reason_io() {
        let err = run(
            &args(&["pmtiles-info", "/nonexistent/x.pmtiles"]),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), 3);
        assert!(err.to_string().contains(": io:"), "{err}");
    }

    #[test]
    fn out_flag_accepts_both_spellings() {
        assert_eq!(
            out_flag(&args(&["--out", "f"])).unwrap(),
            PathBuf::from("f")
        );
        assert_eq!(out_flag(&args(&["--out=f"])).unwrap(), PathBuf::from("f"));
    }
}
