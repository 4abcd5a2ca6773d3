//! `tools bench-data`: the seeded data set for `bench/svc-edge/` (§8.3).
//!
//! Layout under the output directory:
//! - `static/1k/f0000.bin` … `f0999.bin`: 1 KiB of random bytes each;
//! - `static/big.bin`: 16 MiB of random bytes;
//! - `bench.pmtiles`: gzip MVT tiles, z0–5 complete plus a window of z6–9 (3,942 tiles),
//!   each 0.5–8 KiB stored, about 2 KiB on average so the whole set stays near 25 MiB;
//! - `tiles/{z}/{x}/{y}.mvt`: the same stored (gzip) bytes, for nginx;
//! - `tiles.txt`: one `z/x/y` per line, the request list for the `tiles` scenario.
//!
//! The same seed gives the same bytes, so both servers and every run see the same data.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use pmtiles::TileType;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::json;

use super::mvt::{self, Feature, GeomType, Layer};
use crate::pmtiles::Coding;
use crate::pmtiles::writer::{ArchiveBuilder, gzip};

/// Seed of every random byte in the data set.
pub const BENCH_SEED: u64 = 0x5eed_0000_ed6e;
/// Number of 1 KiB files.
pub const SMALL_FILES: usize = 1000;
/// Size of each small file.
pub const SMALL_FILE_BYTES: usize = 1024;
/// Size of `big.bin`.
pub const BIG_FILE_BYTES: usize = 16 * 1024 * 1024;
/// Stored tile sizes lie in this range.
pub const TILE_BYTES_MIN: usize = 512;
/// Stored tile sizes lie in this range.
pub const TILE_BYTES_MAX: usize = 8 * 1024;
/// Zooms 0..=FULL_ZOOM are complete.
const FULL_ZOOM: u8 = 5;
/// Deepest zoom, covered by a window.
const MAX_ZOOM: u8 = 9;
/// The window at MAX_ZOOM: first column/row and side, in tiles.
const WINDOW_ORIGIN: (u64, u64) = (256, 160);
const WINDOW_SIDE: u64 = 44;
/// Approximate stored bytes per random line vertex, to size the first attempt.
const BYTES_PER_VERTEX: usize = 3;

/// What `bench_data` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchData {
    /// Tiles in `bench.pmtiles` (and files under `tiles/`).
    pub tiles: usize,
    /// Sum of the stored tile sizes.
    pub tile_bytes: u64,
    /// Smallest stored tile.
    pub min_tile_bytes: usize,
    /// Largest stored tile.
    pub max_tile_bytes: usize,
}

/// Writes the data set under `out_dir` (created if missing, files replaced).
pub fn bench_data(out_dir: &Path) -> io::Result<BenchData> {
    let mut rng = StdRng::seed_from_u64(BENCH_SEED);
    let small_dir = out_dir.join("static").join("1k");
    std::fs::create_dir_all(&small_dir)?;
    let mut buf = vec![0u8; SMALL_FILE_BYTES];
    for i in 0..SMALL_FILES {
        rng.fill_bytes(&mut buf);
        std::fs::write(small_dir.join(format!("f{i:04}.bin")), &buf)?;
    }
    let mut big = vec![0u8; BIG_FILE_BYTES];
    rng.fill_bytes(&mut big);
    std::fs::write(out_dir.join("static").join("big.bin"), &big)?;
    drop(big);

    let mut builder = ArchiveBuilder::new(TileType::Mvt)
        .precompressed(Coding::Gzip)
        .internal_coding(Coding::Gzip)
        .metadata(metadata().to_string())
        .zoom_range(0, MAX_ZOOM);
    let mut list = String::new();
    let mut stats = BenchData {
        tiles: 0,
        tile_bytes: 0,
        min_tile_bytes: usize::MAX,
        max_tile_bytes: 0,
    };
    for (z, x, y) in tile_set() {
        let stored = bench_tile(&mut rng, z, x, y);
        let dir = out_dir
            .join("tiles")
            .join(z.to_string())
            .join(x.to_string());
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("{y}.mvt")), &stored)?;
        let _ = writeln!(list, "{z}/{x}/{y}");
        stats.tiles += 1;
        stats.tile_bytes += stored.len() as u64;
        stats.min_tile_bytes = stats.min_tile_bytes.min(stored.len());
        stats.max_tile_bytes = stats.max_tile_bytes.max(stored.len());
        builder.add_tile(z, x, y, &stored);
    }
    builder
        .write_file(&out_dir.join("bench.pmtiles"))
        .map_err(io::Error::other)?;
    std::fs::write(out_dir.join("tiles.txt"), list)?;
    Ok(stats)
}

/// The tile coordinates, in z, x, y order.
pub fn tile_set() -> Vec<(u8, u64, u64)> {
    let mut out = Vec::new();
    for z in 0..=MAX_ZOOM {
        let (xs, ys) = if z <= FULL_ZOOM {
            (0..1u64 << z, 0..1u64 << z)
        } else {
            let shift = MAX_ZOOM - z;
            let (x0, y0) = WINDOW_ORIGIN;
            let last = WINDOW_SIDE - 1;
            (
                (x0 >> shift)..((x0 + last) >> shift) + 1,
                (y0 >> shift)..((y0 + last) >> shift) + 1,
            )
        };
        for x in xs {
            for y in ys.clone() {
                out.push((z, x, y));
            }
        }
    }
    out
}

/// One stored tile: a `bench` layer with the tile outline, a labelled point and a random
/// line sized so the gzip output lands on a target drawn from 512 · 16^(u²), u ∈ [0, 1),
/// which keeps most tiles small and a few near 8 KiB.
fn bench_tile(rng: &mut StdRng, z: u8, x: u64, y: u64) -> Vec<u8> {
    let u: f64 = rng.random();
    let target = (TILE_BYTES_MIN as f64 * 16f64.powf(u * u)) as usize;
    let target = target.clamp(TILE_BYTES_MIN + 64, TILE_BYTES_MAX - 256);
    let points: Vec<(i32, i32)> = (0..target / BYTES_PER_VERTEX * 2)
        .map(|_| (rng.random_range(0..4096), rng.random_range(0..4096)))
        .collect();
    let mut vertices = (target / BYTES_PER_VERTEX).max(2);
    loop {
        let stored = gzip(&bench_mvt(z, x, y, &points[..vertices]));
        if stored.len() < TILE_BYTES_MIN && vertices < points.len() {
            vertices = (vertices + vertices / 4).min(points.len());
        } else if stored.len() > TILE_BYTES_MAX && vertices > 2 {
            vertices = (vertices - vertices / 4).max(2);
        } else {
            return stored;
        }
    }
}

fn bench_mvt(z: u8, x: u64, y: u64, points: &[(i32, i32)]) -> Vec<u8> {
    let mut features = mvt::outline_and_label(z, x, y);
    features.push(Feature {
        id: 3,
        geom_type: GeomType::LineString,
        geometry: mvt::line(points),
        properties: vec![],
    });
    mvt::encode(&[Layer {
        name: "bench".into(),
        features,
    }])
}

fn metadata() -> serde_json::Value {
    json!({
        "name": "svc-edge bench",
        "description": "Seeded benchmark tiles: outline, label and a random line per tile.",
        "attribution": "svc-edge bench data (generated)",
        "vector_layers": [{ "id": "bench", "minzoom": 0, "maxzoom": MAX_ZOOM, "fields": { "zxy": "String" } }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_set_has_complete_low_zooms_and_a_deep_window() {
        let set = tile_set();
        assert_eq!(set.len(), 1365 + 36 + 121 + 484 + 1936);
        assert_eq!(set.iter().filter(|t| t.0 == 5).count(), 1024);
        assert!(set.iter().all(|&(z, x, y)| x < 1 << z && y < 1 << z));
    }

    #[test]
    fn bench_tiles_land_in_the_size_range() {
        let mut rng = StdRng::seed_from_u64(1);
        for i in 0..40 {
            let t = bench_tile(&mut rng, 9, i, i);
            assert!(
                (TILE_BYTES_MIN..=TILE_BYTES_MAX).contains(&t.len()),
                "{}",
                t.len()
            );
        }
    }
}
