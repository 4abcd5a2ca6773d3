//! Archive-level acceptance tests: EDGE-T9 (tile ids), the lookup half of EDGE-T10,
//! EDGE-T12's corrupt archives, EDGE-T31 (the committed sample) and the tile codings.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use svc_edge::pmtiles::corrupt::{Corruption, write_sidecar};
use svc_edge::pmtiles::tileid::{tile_coords, tile_id};
use svc_edge::pmtiles::writer::{ArchiveBuilder, encode};
use svc_edge::pmtiles::{
    Archive, Coding, DecodeCaps, DecodeError, TileError, TileLookup, TileType, codings,
    content_type, ext_allowed, tilejson,
};
use svc_edge::tools;

/// A fresh scratch directory per test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edge-pmtiles-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn world_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/world.pmtiles")
}

fn open_bytes(bytes: Vec<u8>) -> Archive {
    Archive::from_bytes(Bytes::from(bytes), DecodeCaps::default()).unwrap()
}

fn found(archive: &Archive, z: u8, x: u64, y: u64) -> Bytes {
    match archive.lookup(z, x, y) {
        Ok(TileLookup::Found(b)) => b,
        other => panic!("{z}/{x}/{y}: {other:?}"),
    }
}

/// Whether `slice` points into `whole` (a zero-copy view of the mapping).
fn is_view_of(slice: &Bytes, whole: &Bytes) -> bool {
    let start = whole.as_ptr() as usize;
    let at = slice.as_ptr() as usize;
    at >= start && at + slice.len() <= start + whole.len()
}

fn raw_tile(z: u8, x: u64, y: u64) -> Vec<u8> {
    format!("tile {z}/{x}/{y} ")
        .repeat(1 + (x as usize + y as usize) % 5)
        .into_bytes()
}

#[test]
fn edge_t9_tile_id_vectors_and_round_trips_up_to_zoom_8() {
    for ((z, x, y), id) in svc_edge::pmtiles::tileid::SPEC_VECTORS {
        assert_eq!(tile_id(z, x, y), Some(id), "{z}/{x}/{y}");
    }
    for z in 0..=8u8 {
        for x in 0..1u64 << z {
            for y in 0..1u64 << z {
                let id = tile_id(z, x, y).unwrap();
                assert_eq!(tile_coords(id), Some((z, x, y)));
            }
        }
    }
}

#[test]
fn root_only_gzip_mvt_archive_returns_every_tile_byte_exact_from_the_mapping() {
    let mut builder = ArchiveBuilder::new(TileType::Mvt)
        .tile_coding(Coding::Gzip)
        .zoom_range(0, 4);
    for z in 0..=3u8 {
        for x in 0..1u64 << z {
            for y in 0..1u64 << z {
                builder.add_tile(z, x, y, &raw_tile(z, x, y));
            }
        }
    }
    let dir = scratch("root-only");
    let path = dir.join("root.pmtiles");
    builder.write_file(&path).unwrap();
    let archive = Archive::open(&path, DecodeCaps::default()).unwrap();
    assert_eq!(archive.stats().depth, 1);
    assert_eq!(archive.tile_coding(), Coding::Gzip);
    assert_eq!(
        content_type(archive.tile_type()),
        "application/vnd.mapbox-vector-tile"
    );
    assert!(archive.file_metadata().is_some());
    assert_eq!(
        archive.digest(),
        *blake3::hash(&std::fs::read(&path).unwrap()).as_bytes()
    );

    for z in 0..=3u8 {
        for x in 0..1u64 << z {
            for y in 0..1u64 << z {
                let stored = found(&archive, z, x, y);
                assert_eq!(&stored[..], &encode(Coding::Gzip, &raw_tile(z, x, y))[..]);
                assert!(
                    is_view_of(&stored, archive.bytes()),
                    "tile is a view of the mapping"
                );
                let decoded =
                    codings::decode_tile(Coding::Gzip, &stored, &DecodeCaps::default()).unwrap();
                assert_eq!(decoded, raw_tile(z, x, y));
            }
        }
    }
    // z4 is inside the zoom range but holds no tiles.
    assert_eq!(archive.lookup(4, 3, 3).unwrap(), TileLookup::Absent);
    assert!(matches!(
        archive.lookup(5, 0, 0),
        Err(TileError::ZoomOutOfRange {
            z: 5,
            min: 0,
            max: 4
        })
    ));
    assert!(matches!(archive.lookup(2, 4, 0), Err(TileError::BadCoord)));
    assert!(matches!(archive.lookup(2, 0, 4), Err(TileError::BadCoord)));
    assert!(matches!(archive.lookup(32, 0, 0), Err(TileError::BadCoord)));
    assert!(matches!(
        archive.lookup(1, u64::MAX, 0),
        Err(TileError::BadCoord)
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn zooms_below_the_minimum_are_out_of_range() {
    let archive = open_bytes(
        ArchiveBuilder::new(TileType::Png)
            .zoom_range(2, 3)
            .tile(2, 1, 1, b"x")
            .to_bytes()
            .unwrap(),
    );
    assert!(matches!(
        archive.lookup(1, 0, 0),
        Err(TileError::ZoomOutOfRange { .. })
    ));
    assert_eq!(&found(&archive, 2, 1, 1)[..], b"x");
}

#[test]
fn depth_two_archive_resolves_every_tile_through_its_leaves() {
    const TILES: u64 = 20_000;
    let mut builder = ArchiveBuilder::new(TileType::Png).tile_coding(Coding::None);
    for id in 0..TILES {
        let (z, x, y) = tile_coords(id).unwrap();
        builder.add_tile(z, x, y, &id.to_le_bytes());
    }
    let archive = open_bytes(builder.to_bytes().unwrap());
    let stats = archive.stats();
    assert_eq!(stats.depth, 2, "{stats:?}");
    assert!(stats.leaf_directories >= 2);
    assert_eq!(stats.tile_entries, TILES);
    assert!(archive.header().leaves.length > 0);
    assert_eq!(content_type(archive.tile_type()), "image/png");

    for id in 0..TILES {
        let (z, x, y) = tile_coords(id).unwrap();
        assert_eq!(
            &found(&archive, z, x, y)[..],
            &id.to_le_bytes()[..],
            "id {id}"
        );
    }
    let (z, x, y) = tile_coords(TILES + 5).unwrap();
    assert_eq!(archive.lookup(z, x, y).unwrap(), TileLookup::Absent);
    assert!(archive.cached_leaf_bytes() > 0);
    assert!(archive.cached_leaf_bytes() <= 16 * 1024 * 1024);
}

#[test]
fn run_length_dedup_serves_one_stored_copy_for_repeated_tiles() {
    let archive = open_bytes(
        ArchiveBuilder::new(TileType::Png)
            .tile(1, 0, 0, b"ocean")
            .tile(1, 0, 1, b"ocean")
            .tile(1, 1, 1, b"ocean")
            .tile(1, 1, 0, b"land")
            .tile(2, 0, 0, b"ocean")
            .to_bytes()
            .unwrap(),
    );
    // Ids 1..=3 form one run; id 5 reuses the run's bytes from a separate entry.
    assert_eq!(archive.stats().tile_entries, 3);
    assert_eq!(archive.stats().addressed_tiles, 5);
    let first = found(&archive, 1, 0, 0);
    for (z, x, y) in [(1, 0, 1), (1, 1, 1), (2, 0, 0)] {
        let t = found(&archive, z, x, y);
        assert_eq!(&t[..], b"ocean");
        assert_eq!(
            t.as_ptr(),
            first.as_ptr(),
            "{z}/{x}/{y} shares the stored bytes"
        );
    }
    assert_eq!(&found(&archive, 1, 1, 0)[..], b"land");
    assert_eq!(archive.lookup(2, 1, 0).unwrap(), TileLookup::Absent);
}

#[test]
fn brotli_and_zstd_archives_store_tiles_and_directories_in_their_coding() {
    for coding in [Coding::Brotli, Coding::Zstd, Coding::None] {
        let archive = open_bytes(
            ArchiveBuilder::new(TileType::Mvt)
                .tile_coding(coding)
                .internal_coding(coding)
                .metadata(r#"{"name":"coded"}"#)
                .tile(0, 0, 0, &raw_tile(0, 0, 0))
                .tile(1, 1, 0, &raw_tile(1, 1, 0))
                .to_bytes()
                .unwrap(),
        );
        assert_eq!(archive.tile_coding(), coding);
        assert_eq!(archive.metadata()["name"], "coded");
        let stored = found(&archive, 1, 1, 0);
        assert_eq!(
            &stored[..],
            &encode(coding, &raw_tile(1, 1, 0))[..],
            "{coding:?}"
        );
        let decoded = codings::decode_tile(coding, &stored, &DecodeCaps::default()).unwrap();
        assert_eq!(decoded, raw_tile(1, 1, 0));
    }
}

#[test]
fn extension_rules_follow_the_tile_type() {
    let mvt = open_bytes(
        ArchiveBuilder::new(TileType::Mvt)
            .tile(0, 0, 0, b"m")
            .to_bytes()
            .unwrap(),
    );
    let png = open_bytes(
        ArchiveBuilder::new(TileType::Png)
            .tile(0, 0, 0, b"p")
            .to_bytes()
            .unwrap(),
    );
    for ok in [None, Some("mvt"), Some("pbf")] {
        assert!(ext_allowed(mvt.tile_type(), ok), "{ok:?}");
    }
    assert!(!ext_allowed(mvt.tile_type(), Some("png")));
    assert!(ext_allowed(png.tile_type(), Some("png")));
    assert!(!ext_allowed(png.tile_type(), Some("jpg")));
    assert_eq!(content_type(png.tile_type()), "image/png");
}

#[test]
fn edge_t12_each_corruption_fails_the_mount_with_its_reason() {
    let valid = std::fs::read(world_path()).unwrap();
    let dir = scratch("corrupt");
    for c in Corruption::ALL {
        let path = dir.join(format!("{}.pmtiles", c.name()));
        std::fs::write(&path, c.apply(&valid).unwrap()).unwrap();
        let err = Archive::open(&path, DecodeCaps::default()).expect_err(c.name());
        assert_eq!(err.reason(), c.reason(), "{}: {err}", c.name());
        assert!(!err.to_string().is_empty());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_padded_directory_fails_only_under_the_cap() {
    let valid = tools::sample_pmtiles_bytes().unwrap();
    let padded = Corruption::DirectoryOverCap {
        decoded_bytes: 100 * 1024,
    }
    .apply(&valid)
    .unwrap();
    let tight = DecodeCaps {
        max_ratio: 10,
        max_bytes: 64 * 1024,
    };
    let err = Archive::from_bytes(Bytes::from(padded.clone()), tight).unwrap_err();
    assert_eq!(err.reason(), "decompress_cap");
    let archive = Archive::from_bytes(Bytes::from(padded), DecodeCaps::default()).unwrap();
    assert!(matches!(archive.lookup(0, 0, 0), Ok(TileLookup::Found(_))));
}

#[test]
fn sidecars_must_match_the_archive_digest() {
    let dir = scratch("sidecar");
    let path = dir.join("world.pmtiles");
    std::fs::copy(world_path(), &path).unwrap();
    let archive = Archive::open(&path, DecodeCaps::default()).unwrap();
    write_sidecar(&path, &archive.digest_hex()).unwrap();
    assert!(Archive::open(&path, DecodeCaps::default()).is_ok());
    write_sidecar(&path, &"0".repeat(64)).unwrap();
    let err = Archive::open(&path, DecodeCaps::default()).unwrap_err();
    assert_eq!(err.reason(), "sidecar_mismatch");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_files_and_non_object_metadata_are_rejected() {
    let err =
        Archive::open(Path::new("/nonexistent/a.pmtiles"), DecodeCaps::default()).unwrap_err();
    assert_eq!(err.reason(), "io");
    let bytes = ArchiveBuilder::new(TileType::Png)
        .metadata("[1,2]")
        .tile(0, 0, 0, b"x")
        .to_bytes()
        .unwrap();
    let err = Archive::from_bytes(Bytes::from(bytes), DecodeCaps::default()).unwrap_err();
    assert_eq!(err.reason(), "bad_metadata");
    let empty = ArchiveBuilder::new(TileType::Png).to_bytes().unwrap();
    let err = Archive::from_bytes(Bytes::from(empty), DecodeCaps::default()).unwrap_err();
    assert_eq!(err.reason(), "empty_directory");
}

#[test]
fn edge_t31_sample_writer_reproduces_the_committed_world_archive() {
    let committed = std::fs::read(world_path()).unwrap();
    assert_eq!(
        tools::sample_pmtiles_bytes().unwrap(),
        committed,
        "regenerate with `svc-edge tools sample-pmtiles`"
    );
    assert!(committed.len() < 64 * 1024);

    let dir = scratch("t31");
    let out = dir.join("world.pmtiles");
    let mut stdout = Vec::new();
    let args = [
        "sample-pmtiles".to_owned(),
        "--out".to_owned(),
        out.display().to_string(),
    ];
    tools::run(&args, &mut stdout).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), committed);

    let info = tools::pmtiles_info(&world_path()).unwrap();
    assert_eq!(info["valid"], true);
    assert_eq!(info["header"]["tile_type"], "mvt");
    assert_eq!(info["header"]["tile_compression"], "gzip");
    assert_eq!(info["header"]["internal_compression"], "gzip");
    assert_eq!(info["directories"]["addressed_tiles"], 85);
    assert_eq!(
        (
            info["header"]["min_zoom"].as_u64(),
            info["header"]["max_zoom"].as_u64()
        ),
        (Some(0), Some(3))
    );
    for key in ["name", "description", "attribution"] {
        assert!(info["metadata"][key].is_string(), "{key}");
    }
    assert_eq!(info["metadata"]["vector_layers"][0]["id"], "grid");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn world_tiles_hold_the_grid_layer_with_their_own_label() {
    let archive = Archive::open(&world_path(), DecodeCaps::default()).unwrap();
    let mut count = 0;
    for z in 0..=3u8 {
        for x in 0..1u64 << z {
            for y in 0..1u64 << z {
                let stored = found(&archive, z, x, y);
                let mvt =
                    codings::decode_tile(archive.tile_coding(), &stored, &DecodeCaps::default())
                        .unwrap();
                assert_eq!(mvt, tools::sample::sample_tile(z, x, y));
                let label = format!("{z}/{x}/{y}");
                assert!(mvt.windows(label.len()).any(|w| w == label.as_bytes()));
                count += 1;
            }
        }
    }
    assert_eq!(count, 85);
    let doc: serde_json::Value =
        serde_json::from_str(&tilejson::render(&archive, "world", "https://edge.example")).unwrap();
    assert_eq!(
        doc["tiles"][0],
        "https://edge.example/edge/tiles/world/{z}/{x}/{y}.mvt"
    );
    assert_eq!(doc["vector_layers"][0]["id"], "grid");
    assert_eq!(doc["maxzoom"], 3);
}

#[test]
fn codings_round_trip_and_stop_at_the_cap() {
    let raw = b"codings codings codings codings".repeat(100);
    for coding in [Coding::Gzip, Coding::Brotli] {
        let stored = encode(coding, &raw);
        assert_eq!(
            codings::decode(coding, &stored, raw.len() as u64).unwrap(),
            raw
        );
        assert_eq!(
            codings::decode(coding, &stored, raw.len() as u64 - 1),
            Err(DecodeError::CapExceeded {
                limit: raw.len() as u64 - 1
            })
        );
    }
    // gzip compresses this 100:1 or better, so a ratio cap of 10 trips.
    let stored = encode(Coding::Gzip, &vec![0u8; 100_000]);
    let caps = DecodeCaps {
        max_ratio: 10,
        max_bytes: 10 * 1024 * 1024,
    };
    assert!(matches!(
        codings::decode_tile(Coding::Gzip, &stored, &caps),
        Err(DecodeError::CapExceeded { .. })
    ));
}

#[test]
fn bench_data_writes_the_seeded_set_with_tiles_in_range() {
    let dir = scratch("bench");
    let made = tools::bench_data(&dir).unwrap();
    assert!((3_500..=4_500).contains(&made.tiles), "{made:?}");
    assert!(
        made.min_tile_bytes >= 512 && made.max_tile_bytes <= 8 * 1024,
        "{made:?}"
    );
    assert_eq!(
        std::fs::metadata(dir.join("static/1k/f0999.bin"))
            .unwrap()
            .len(),
        1024
    );
    assert_eq!(
        std::fs::metadata(dir.join("static/big.bin")).unwrap().len(),
        16 * 1024 * 1024
    );
    let archive = Archive::open(&dir.join("bench.pmtiles"), DecodeCaps::default()).unwrap();
    assert_eq!(archive.stats().tile_entries as usize, made.tiles);
    let list = std::fs::read_to_string(dir.join("tiles.txt")).unwrap();
    assert_eq!(list.lines().count(), made.tiles);
    for line in list.lines().step_by(97) {
        let mut it = line.split('/').map(|p| p.parse::<u64>().unwrap());
        let (z, x, y) = (
            it.next().unwrap() as u8,
            it.next().unwrap(),
            it.next().unwrap(),
        );
        let copy = std::fs::read(dir.join(format!("tiles/{z}/{x}/{y}.mvt"))).unwrap();
        assert_eq!(&found(&archive, z, x, y)[..], &copy[..], "{line}");
    }
    let first = std::fs::read(dir.join("static/1k/f0000.bin")).unwrap();
    let again = scratch("bench-again");
    tools::bench_data(&again).unwrap();
    assert_eq!(
        std::fs::read(again.join("static/1k/f0000.bin")).unwrap(),
        first,
        "seeded"
    );
    assert_eq!(
        std::fs::read(again.join("bench.pmtiles")).unwrap(),
        std::fs::read(dir.join("bench.pmtiles")).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&again).unwrap();
}

#[test]
fn manifest_matches_b3sum_format_for_the_static_pack() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/static");
    let text = tools::manifest(&dir).unwrap();
    let hello = blake3::hash(b"hello from svc-edge\n").to_hex();
    assert!(
        text.lines().any(|l| l == format!("{hello}  hello.txt")),
        "{text}"
    );
}
