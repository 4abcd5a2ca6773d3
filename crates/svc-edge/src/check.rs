//! `--check-config`: validate, then mount and verify every pack read-only, one line per
//! pack. Binds nothing and writes nothing (EDGE-R2). Exit 0, or 3 if a pack fails.

use crate::config::EdgeConfig;
use crate::dirpack;

/// Exit code for a pack that fails verification.
pub const EXIT_PACK_FAILED: i32 = 3;

/// Checks every pack of `cfg`; prints `pack <path>: ok|error (<reason>)` lines.
pub fn check_config(cfg: &EdgeConfig) -> i32 {
    let mut code = 0;
    for p in &cfg.edge.packs {
        let is_archive = p.extension().and_then(|e| e.to_str()) == Some("pmtiles");
        let result = if is_archive {
            let caps = crate::pmtiles::DecodeCaps {
                max_ratio: cfg.ingress.max_decompress_ratio,
                max_bytes: cfg.ingress.max_decompress_bytes,
            };
            crate::pmtiles::Archive::open(p, caps)
                .map(|a| format!("{} tiles", a.stats().addressed_tiles))
                .map_err(|e| e.reason().to_owned())
        } else {
            dirpack::mount(p, None)
                .map(|d| format!("{} files", d.files.len()))
                .map_err(|e| e.reason().to_owned())
        };
        match result {
            Ok(what) => println!("pack {}: ok ({what})", p.display()),
            Err(reason) => {
                println!("pack {}: error ({reason})", p.display());
                code = EXIT_PACK_FAILED;
            }
        }
    }
    code
}
