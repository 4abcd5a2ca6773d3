//! TileJSON 3.0.0 documents for archive packs (§4.8).
//!
//! Zooms, bounds and center come from the header; `name`, `description`, `attribution`,
//! `version` and `vector_layers` are copied from the metadata only when they have the
//! type TileJSON requires, so a sloppy archive yields a smaller but valid document.

use serde_json::{Map, Value, json};

use super::archive::Archive;
use super::media::tilejson_ext;

/// Metadata keys copied when they are strings.
const STRING_KEYS: [&str; 4] = ["name", "description", "attribution", "version"];

/// The TileJSON for `archive` served as `pack`; `base_url` is `public_url`, `http://<Host>`
/// or empty (giving path-absolute tile URLs). A trailing `/` on it is ignored.
pub fn render(archive: &Archive, pack: &str, base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    let suffix = tilejson_ext(archive.tile_type())
        .map(|e| format!(".{e}"))
        .unwrap_or_default();
    let [lon, lat, _] = archive.center();
    let mut doc = Map::new();
    doc.insert("tilejson".into(), json!("3.0.0"));
    doc.insert("scheme".into(), json!("xyz"));
    doc.insert(
        "tiles".into(),
        json!([format!(
            "{base}/edge/tiles/{pack}/{{z}}/{{x}}/{{y}}{suffix}"
        )]),
    );
    doc.insert("minzoom".into(), json!(archive.min_zoom()));
    doc.insert("maxzoom".into(), json!(archive.max_zoom()));
    doc.insert("bounds".into(), json!(archive.bounds()));
    doc.insert(
        "center".into(),
        json!([lon, lat, archive.header().center_zoom]),
    );
    if let Some(meta) = archive.metadata().as_object() {
        for key in STRING_KEYS {
            if let Some(v @ Value::String(_)) = meta.get(key) {
                doc.insert(key.into(), v.clone());
            }
        }
        if let Some(v @ Value::Array(_)) = meta.get("vector_layers") {
            doc.insert("vector_layers".into(), v.clone());
        }
    }
    Value::Object(doc).to_string()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use pmtiles::TileType;

    use super::super::codings::DecodeCaps;
    use super::super::writer::ArchiveBuilder;
    use super::*;

    fn archive(tile_type: TileType, metadata: &str) -> Archive {
        let bytes = ArchiveBuilder::new(tile_type)
            .metadata(metadata)
            .zoom_range(0, 5)
            .bounds([-10.0, -20.0, 30.0, 40.0])
            .center(1.5, 2.5, 3)
            .tile(0, 0, 0, b"t")
            .to_bytes()
            .unwrap();
        Archive::from_bytes(Bytes::from(bytes), DecodeCaps::default()).unwrap()
    }

    #[test]
    fn header_fields_and_well_typed_metadata_are_rendered() {
        let a = archive(
            TileType::Mvt,
            r#"{"name":"World","version":"1.0","attribution":7,"vector_layers":[{"id":"grid","fields":{}}]}"#,
        );
        let doc: Value = serde_json::from_str(&render(&a, "world", "http://h:1/")).unwrap();
        assert_eq!(doc["tilejson"], "3.0.0");
        assert_eq!(doc["scheme"], "xyz");
        assert_eq!(
            doc["tiles"][0],
            "http://h:1/edge/tiles/world/{z}/{x}/{y}.mvt"
        );
        assert_eq!(
            (doc["minzoom"].as_u64(), doc["maxzoom"].as_u64()),
            (Some(0), Some(5))
        );
        assert_eq!(doc["bounds"], json!([-10.0, -20.0, 30.0, 40.0]));
        assert_eq!(doc["center"], json!([1.5, 2.5, 3]));
        assert_eq!(doc["name"], "World");
        assert_eq!(doc["version"], "1.0");
        assert!(
            doc.get("attribution").is_none(),
            "a number is not an attribution"
        );
        assert_eq!(doc["vector_layers"][0]["id"], "grid");
    }

    #[test]
    fn empty_base_gives_path_absolute_urls_and_unknown_types_no_extension() {
        let a = archive(TileType::Unknown, "{}");
        let doc: Value = serde_json::from_str(&render(&a, "raw", "")).unwrap();
        assert_eq!(doc["tiles"][0], "/edge/tiles/raw/{z}/{x}/{y}");
        let png = archive(TileType::Png, "{}");
        let doc: Value = serde_json::from_str(&render(&png, "img", "")).unwrap();
        assert_eq!(doc["tiles"][0], "/edge/tiles/img/{z}/{x}/{y}.png");
    }
}
