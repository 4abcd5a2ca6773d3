//! Tile ids: the position of `z/x/y` on the PMTiles Hilbert curve (§4.8 step 2).
//!
//! The conversion itself is the `pmtiles` crate's (`TileCoord` ↔ `TileId`); this module
//! only widens it to the `u64` coordinates the HTTP layer parses and turns its errors into
//! `None`, so a coordinate out of range is a plain "bad coordinate" for the caller.

use pmtiles::{MAX_TILE_ID, TileCoord, TileId};

/// The deepest zoom a PMTiles v3 archive can address.
pub const MAX_ZOOM: u8 = pmtiles::MAX_ZOOM;

/// The tile id of `z/x/y`, or `None` when z > 31 or x or y ≥ 2^z.
pub fn tile_id(z: u8, x: u64, y: u64) -> Option<u64> {
    let x = u32::try_from(x).ok()?;
    let y = u32::try_from(y).ok()?;
    let coord = TileCoord::new(z, x, y).ok()?;
    Some(TileId::from(coord).value())
}

/// The `(z, x, y)` of a tile id, or `None` for ids past the last zoom-31 tile.
pub fn tile_coords(id: u64) -> Option<(u8, u64, u64)> {
    if id > MAX_TILE_ID {
        return None;
    }
    let coord = TileCoord::from(TileId::new(id).ok()?);
    Some((coord.z(), u64::from(coord.x()), u64::from(coord.y())))
}

/// The tile-id test vectors of spec §4.8: ((z, x, y), id).
pub const SPEC_VECTORS: [((u8, u64, u64), u64); 8] = [
    ((0, 0, 0), 0),
    ((1, 0, 0), 1),
    ((1, 0, 1), 2),
    ((1, 1, 1), 3),
    ((1, 1, 0), 4),
    ((2, 0, 0), 5),
    ((3, 0, 0), 21),
    ((12, 3423, 1763), 19_078_479),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The §4.8 algorithm written out as the spec states it, as an oracle for the crate.
    fn spec_tile_id(z: u8, mut x: u64, mut y: u64) -> u64 {
        let base = (4u64.pow(u32::from(z)) - 1) / 3;
        let mut d = 0u64;
        let mut s = if z == 0 { 0 } else { 1u64 << (z - 1) };
        while s > 0 {
            let rx = u64::from(x & s != 0);
            let ry = u64::from(y & s != 0);
            d += s * s * ((3 * rx) ^ ry);
            x %= s;
            y %= s;
            if ry == 0 {
                if rx == 1 {
                    x = s - 1 - x;
                    y = s - 1 - y;
                }
                std::mem::swap(&mut x, &mut y);
            }
            s /= 2;
        }
        base + d
    }

    #[test]
    fn spec_vectors_map_to_their_ids() {
        for ((z, x, y), id) in SPEC_VECTORS {
            assert_eq!(tile_id(z, x, y), Some(id), "{z}/{x}/{y}");
            assert_eq!(spec_tile_id(z, x, y), id, "oracle {z}/{x}/{y}");
            assert_eq!(tile_coords(id), Some((z, x, y)));
        }
    }

    #[test]
    fn every_tile_up_to_zoom_8_round_trips_and_matches_the_spec_algorithm() {
        let mut expected = 0u64;
        for z in 0..=8u8 {
            let n = 1u64 << z;
            let mut seen = vec![false; (n * n) as usize];
            for x in 0..n {
                for y in 0..n {
                    let id = tile_id(z, x, y).unwrap();
                    assert_eq!(id, spec_tile_id(z, x, y));
                    assert_eq!(tile_coords(id), Some((z, x, y)));
                    let slot = (id - (4u64.pow(u32::from(z)) - 1) / 3) as usize;
                    assert!(!seen[slot], "id {id} produced twice");
                    seen[slot] = true;
                }
            }
            expected += n * n;
        }
        assert_eq!(tile_id(9, 0, 0), Some(expected));
    }

    #[test]
    fn coordinates_outside_the_zoom_have_no_id() {
        assert_eq!(tile_id(32, 0, 0), None);
        assert_eq!(tile_id(0, 1, 0), None);
        assert_eq!(tile_id(3, 8, 0), None);
        assert_eq!(tile_id(3, 0, 8), None);
        assert_eq!(tile_id(31, u64::from(u32::MAX), 0), None);
        assert!(tile_id(31, (1 << 31) - 1, (1 << 31) - 1).is_some());
        assert_eq!(tile_coords(MAX_TILE_ID).map(|(z, _, _)| z), Some(31));
        assert_eq!(tile_coords(MAX_TILE_ID + 1), None);
    }
}
