//! Archive metadata (§4.7 step 4): empty, or a JSON object after decoding under the
//! internal cap.

use super::codings::{Coding, DecodeCaps, decode};
use super::error::PackError;
use super::header::Header;

/// The metadata object, an empty object when the archive has none.
pub fn read_metadata(
    bytes: &[u8],
    header: &Header,
    internal: Coding,
    caps: DecodeCaps,
) -> Result<serde_json::Value, PackError> {
    let empty = || serde_json::Value::Object(serde_json::Map::new());
    let section = header.metadata;
    if section.length == 0 {
        return Ok(empty());
    }
    // The header check proved the section lies inside the file.
    let stored = &bytes[section.offset as usize..(section.offset + section.length) as usize];
    let raw =
        decode(internal, stored, caps.internal_limit()).map_err(|source| PackError::Decode {
            what: "metadata",
            offset: section.offset,
            source,
        })?;
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(empty());
    }
    match serde_json::from_slice::<serde_json::Value>(&raw) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(v),
        Ok(other) => Err(PackError::BadMetadata {
            why: format!("top level is {}", json_kind(&other)),
        }),
        Err(e) => Err(PackError::BadMetadata { why: e.to_string() }),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use pmtiles::TileType;

    use super::super::archive::Archive;
    use super::*;

    #[test]
    fn metadata_must_be_an_object_or_empty() {
        let kinds = [
            ("[1]", Some("bad_metadata")),
            ("{", Some("bad_metadata")),
            ("  ", None),
            ("{\"a\":1}", None),
        ];
        for (text, want) in kinds {
            let bytes = super::super::writer::ArchiveBuilder::new(TileType::Png)
                .internal_coding(Coding::None)
                .metadata(text)
                .tile(0, 0, 0, b"t")
                .to_bytes()
                .unwrap();
            let got = Archive::from_bytes(Bytes::from(bytes), DecodeCaps::default());
            assert_eq!(got.err().map(|e| e.reason()), want, "{text}");
        }
    }
}
