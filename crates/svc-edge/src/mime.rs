//! Content types by file extension (spec §3.2): text types carry `charset=utf-8`,
//! `.pmtiles` is `application/vnd.pmtiles`, anything unknown is
//! `application/octet-stream`. A small fixed table: the set of assets an edge serves is
//! known, and a lookup must not allocate.

/// Fallback type.
pub const OCTET_STREAM: &str = "application/octet-stream";

const TABLE: &[(&str, &str)] = &[
    ("avif", "image/avif"),
    ("css", "text/css; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("geojson", "application/geo+json"),
    ("gif", "image/gif"),
    ("htm", "text/html; charset=utf-8"),
    ("html", "text/html; charset=utf-8"),
    ("ico", "image/x-icon"),
    ("jpeg", "image/jpeg"),
    ("jpg", "image/jpeg"),
    ("js", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("md", "text/markdown; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("mlt", "application/vnd.maplibre-tile"),
    ("mvt", "application/vnd.mapbox-vector-tile"),
    ("pbf", "application/x-protobuf"),
    ("pdf", "application/pdf"),
    ("pmtiles", "application/vnd.pmtiles"),
    ("png", "image/png"),
    ("svg", "image/svg+xml"),
    ("txt", "text/plain; charset=utf-8"),
    ("wasm", "application/wasm"),
    ("webp", "image/webp"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("xml", "application/xml"),
];

/// The content type of `path` by its extension (case-insensitive).
pub fn for_path(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let Some((_, ext)) = name.rsplit_once('.') else {
        return OCTET_STREAM;
    };
    TABLE
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        .map_or(OCTET_STREAM, |(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_the_extension_with_charset_for_text() {
        assert_eq!(for_path("a/hello.txt"), "text/plain; charset=utf-8");
        assert_eq!(for_path("world.pmtiles"), "application/vnd.pmtiles");
        assert_eq!(for_path("X.PNG"), "image/png");
        assert_eq!(for_path("noext"), OCTET_STREAM);
        assert_eq!(for_path("dir.v1/blob"), OCTET_STREAM);
    }
}
