//! Black-box tile, TileJSON and archive-asset tests against the real binary (EDGE-T1,
//! T10, T11, T12, T13 server side), plus the shipped config and alert rules (§2.4, T30).

mod common;

use common::repo_root;

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use svc_edge::pmtiles::writer::{self, ArchiveBuilder};
use svc_edge::pmtiles::{Coding, TileType};
use test_support::{Service, command, get, json_field, temp_dir};

const BIN: &str = env!("CARGO_BIN_EXE_svc-edge");

struct Edge {
    _svc: Service,
    api: SocketAddr,
    metrics: SocketAddr,
}

fn start(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Edge {
    let mut all = vec![
        ("SVC_EDGE_BIND_ADDR", "127.0.0.1:0"),
        ("SVC_EDGE_METRICS_ADDR", "127.0.0.1:0"),
    ];
    all.extend_from_slice(env);
    let mut cmd = command(Path::new(BIN), &all);
    cmd.current_dir(cwd).args(args);
    let (svc, lines) = Service::start(cmd, "listening", 2);
    let addr = |which: &str| -> SocketAddr {
        lines
            .iter()
            .find(|l| l.contains(&format!("\"listener\":\"{which}\"")))
            .and_then(|l| json_field(l, "addr"))
            .and_then(|a| a.parse().ok())
            .unwrap()
    };
    Edge {
        api: addr("api"),
        metrics: addr("metrics"),
        _svc: svc,
    }
}

fn wait_for_mount(addr: SocketAddr) {
    // Readiness may stay 503 on purpose (a bad pack); wait for the mount pass instead.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while get(addr, "/edge/assets/__probe__", &[]).status == 503 {
        assert!(
            std::time::Instant::now() < deadline,
            "mount pass did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn runbook_env_startup_serves_the_shipped_archive_and_is_ready() {
    let root = repo_root();
    let e = start(
        &root,
        &[
            ("SVC_EDGE_EDGE__MODE", "offline"),
            ("SVC_EDGE_EDGE__PACKS", "./data/world.pmtiles"),
            ("SVC_EDGE_SECURITY__AMNESIA", "true"),
        ],
        &[],
    );
    wait_for_mount(e.api);
    for addr in [e.api, e.metrics] {
        let r = get(addr, "/readyz", &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            r.text()
                .starts_with("{\"degraded\":false,\"missing\":[],\"retry_after\":0,\"since\":\"")
        );
    }
    let t = get(e.api, "/edge/tiles/world/0/0/0.mvt", &[]);
    assert_eq!(t.status, 200);
    assert_eq!(
        t.header("content-type"),
        Some("application/vnd.mapbox-vector-tile")
    );
    let archive = std::fs::read(root.join("data/world.pmtiles")).unwrap();
    let whole = get(e.api, "/edge/assets/world.pmtiles", &[]);
    assert_eq!(whole.body, archive);
    assert_eq!(
        whole.header("content-type"),
        Some("application/vnd.pmtiles")
    );
    assert_eq!(
        whole.header("etag").unwrap(),
        format!("\"b3:{}\"", blake3::hash(&archive).to_hex())
    );
    let first = get(
        e.api,
        "/edge/assets/world.pmtiles",
        &["Range: bytes=0-16383"],
    );
    assert_eq!(first.status, 206);
    assert_eq!(first.body, &archive[..16384.min(archive.len())]);
    let m = get(e.metrics, "/metrics", &[]).text();
    assert!(m.contains("amnesia=\"on\""));
}

#[test]
fn gzip_tiles_pass_through_or_decode_with_distinct_etags() {
    let e = start(
        &repo_root(),
        &[("SVC_EDGE_EDGE__PACKS", "./data/world.pmtiles")],
        &[],
    );
    wait_for_mount(e.api);
    let stored = get(
        e.api,
        "/edge/tiles/world/1/0/1.mvt",
        &["Accept-Encoding: gzip"],
    );
    assert_eq!(stored.header("content-encoding"), Some("gzip"));
    assert_eq!(stored.header("vary"), Some("Accept-Encoding"));
    let plain = get(e.api, "/edge/tiles/world/1/0/1.mvt", &[]);
    assert!(plain.header("content-encoding").is_none());
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    assert_eq!(gunzip(&stored.body), plain.body);
    assert_ne!(stored.header("etag"), plain.header("etag"));
    assert_eq!(
        plain.header("etag").unwrap(),
        format!("\"b3:{}\"", blake3::hash(&plain.body).to_hex())
    );
    let q0 = get(
        e.api,
        "/edge/tiles/world/1/0/1.mvt",
        &["Accept-Encoding: gzip;q=0"],
    );
    assert_eq!(q0.body, plain.body);
    assert_eq!(
        get(e.api, "/edge/tiles/world/1/0/1", &[]).status,
        200,
        "no ext"
    );
    assert_eq!(
        get(e.api, "/edge/tiles/world/1/0/1.png", &[]).status,
        400,
        "wrong ext"
    );
    assert_eq!(
        get(e.api, "/edge/tiles/world/1/2/0.mvt", &[]).status,
        400,
        "x >= 2^z"
    );
    assert_eq!(
        get(e.api, "/edge/tiles/world/9/0/0.mvt", &[]).status,
        404,
        "z > max"
    );
    assert_eq!(get(e.api, "/edge/tiles/nope/0/0/0.mvt", &[]).status, 404);
    // test-support sends `Host: test`.
    let tj = get(e.api, "/edge/tiles/world.json", &[]);
    let v: serde_json::Value = serde_json::from_slice(&tj.body).unwrap();
    assert_eq!(v["tilejson"], "3.0.0");
    assert_eq!(
        v["tiles"][0],
        "http://test/edge/tiles/world/{z}/{x}/{y}.mvt"
    );
    let e2 = start(
        &repo_root(),
        &[
            ("SVC_EDGE_EDGE__PACKS", "./data/world.pmtiles"),
            ("SVC_EDGE_EDGE__PUBLIC_URL", "https://maps.example.org"),
        ],
        &[],
    );
    wait_for_mount(e2.api);
    let v: serde_json::Value =
        serde_json::from_slice(&get(e2.api, "/edge/tiles/world.json", &[]).body).unwrap();
    assert_eq!(
        v["tiles"][0],
        "https://maps.example.org/edge/tiles/world/{z}/{x}/{y}.mvt"
    );
    assert_eq!(v["minzoom"], 0);
    assert_eq!(v["maxzoom"], 3);
}

#[test]
fn absent_tiles_get_204_and_over_cap_decodes_get_406() {
    let dir = temp_dir("tiles-absent");
    let big = vec![0u8; 600_000];
    ArchiveBuilder::new(TileType::Png)
        .precompressed(Coding::Gzip)
        .tile(0, 0, 0, &writer::gzip(b"png-ish bytes"))
        .tile(1, 0, 0, &writer::gzip(&big))
        .zoom_range(0, 1)
        .write_file(&dir.join("t.pmtiles"))
        .unwrap();
    let e = start(
        &dir,
        &[
            ("SVC_EDGE_EDGE__PACKS", "./t.pmtiles"),
            ("SVC_EDGE_INGRESS__MAX_DECOMPRESS_RATIO", "2"),
        ],
        &[],
    );
    wait_for_mount(e.api);
    let absent = get(e.api, "/edge/tiles/t/1/1/1.png", &[]);
    assert_eq!(absent.status, 204);
    assert!(absent.body.is_empty());
    assert_eq!(
        get(e.api, "/edge/tiles/t/0/0/0.png", &[]).body,
        b"png-ish bytes"
    );
    let capped = get(e.api, "/edge/tiles/t/1/0/0.png", &[]);
    assert_eq!(capped.status, 406);
    assert_eq!(capped.header("x-reason"), Some("decompress_cap"));
    assert_eq!(
        get(e.api, "/edge/tiles/t/1/0/0.png", &["Accept-Encoding: gzip"]).status,
        200
    );
}

#[test]
fn a_corrupt_archive_stays_unmounted_while_other_packs_serve() {
    let dir = temp_dir("tiles-corrupt");
    let good = svc_edge::tools::sample_pmtiles_bytes().unwrap();
    std::fs::write(
        dir.join("bad.pmtiles"),
        b"not a pmtiles archive at all, far too short",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("static")).unwrap();
    std::fs::write(dir.join("static/hello.txt"), b"hi").unwrap();
    std::fs::write(dir.join("good.pmtiles"), &good).unwrap();
    let e = start(
        &dir,
        &[(
            "SVC_EDGE_EDGE__PACKS",
            "./bad.pmtiles,./good.pmtiles,./static",
        )],
        &[],
    );
    wait_for_mount(e.api);
    let r = get(e.api, "/readyz", &[]);
    assert_eq!(r.status, 503);
    assert!(r.text().contains("packs_verified"));
    assert_eq!(get(e.api, "/edge/assets/hello.txt", &[]).text(), "hi");
    assert_eq!(get(e.api, "/edge/tiles/good/0/0/0.mvt", &[]).status, 200);
    assert_eq!(get(e.api, "/edge/tiles/bad/0/0/0.mvt", &[]).status, 404);
    assert_eq!(get(e.api, "/healthz", &[]).status, 200);
}

#[test]
fn shipped_config_checks_clean_and_alert_rules_pass_promtool() {
    let root = repo_root();
    let out = command(Path::new(BIN), &[])
        .current_dir(&root)
        .args(["--config", "configs/svc-edge.toml", "--check-config"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("pack ./data/world.pmtiles: ok (85 tiles)"),
        "{stdout}"
    );
    assert!(stdout.contains("pack ./data/static: ok"), "{stdout}");
    if let Some(p) = common::external("promtool") {
        let out = std::process::Command::new(p)
            .args(["check", "rules"])
            .arg(root.join("deploy/svc-edge/prometheus/svc-edge-rules.yml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let rules = std::fs::read_to_string(root.join("deploy/svc-edge/prometheus/svc-edge-rules.yml"))
        .unwrap();
    for alert in ["EdgeHighErrorRate", "EdgeExcessiveShedding", "EdgeNotReady"] {
        assert!(rules.contains(&format!("alert: {alert}")));
    }
}

#[test]
fn redbot_finds_nothing_bad_on_files_archives_tiles_and_tilejson() {
    let Some(redbot) = common::external("redbot") else {
        return;
    };
    let e = start(
        &repo_root(),
        &[("SVC_EDGE_EDGE__PACKS", "./data/world.pmtiles,./data/static")],
        &[],
    );
    wait_for_mount(e.api);
    let mut bad = Vec::new();
    for path in [
        "/edge/assets/hello.txt",
        "/edge/assets/world.pmtiles",
        "/edge/tiles/world/1/0/1.mvt",
        "/edge/tiles/world.json",
    ] {
        bad.extend(common::redbot_bad_notes(
            &redbot,
            &format!("http://{}{path}", e.api),
        ));
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn edge_t13_a_range_reading_client_gets_every_tile_byte_identical_to_the_tile_route() {
    use futures_util::TryStreamExt;
    use pmtiles::AsyncPmTilesReader;
    use svc_edge::tools::range_reader::HttpRangeBackend;

    let e = start(
        &repo_root(),
        &[("SVC_EDGE_EDGE__PACKS", "./data/world.pmtiles")],
        &[],
    );
    wait_for_mount(e.api);
    let url = format!("http://{}/edge/assets/world.pmtiles", e.api);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let backend = HttpRangeBackend::new(&url).unwrap();
    let log = backend.range_log();
    let reader = std::sync::Arc::new(
        rt.block_on(AsyncPmTilesReader::try_from_source(backend))
            .unwrap(),
    );
    let entries: Vec<_> = rt.block_on(reader.clone().entries().try_collect()).unwrap();
    let mut tiles = 0;
    for entry in &entries {
        for id in entry.iter_coords() {
            let coord = pmtiles::TileCoord::from(id);
            let stored = rt.block_on(reader.get_tile(coord)).unwrap().unwrap();
            let plain = rt
                .block_on(reader.get_tile_decompressed(coord))
                .unwrap()
                .unwrap();
            let path = format!(
                "/edge/tiles/world/{}/{}/{}.mvt",
                coord.z(),
                coord.x(),
                coord.y()
            );
            let gz = get(e.api, &path, &["Accept-Encoding: gzip"]);
            assert_eq!(gz.status, 200, "{path}");
            assert_eq!(gz.body, stored, "{path}: stored bytes");
            let identity = get(e.api, &path, &[]);
            assert_eq!(identity.body, plain, "{path}: decoded bytes");
            tiles += 1;
        }
    }
    assert_eq!(tiles, 85, "every addressed tile of the sample archive");
    let ranges = log.ranges();
    assert_eq!(
        ranges[0], "bytes=0-16383",
        "the first read is the 16 KiB head"
    );
    assert!(
        ranges.len() > tiles,
        "tiles were read by range, one request each"
    );
}
