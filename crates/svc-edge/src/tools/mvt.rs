//! A minimal Mapbox Vector Tile 2.1 encoder for generated sample and bench tiles.
//!
//! Hand-written protobuf: the tiles need one layer of polygons, points and lines with
//! string properties, which is a few dozen bytes of wire format, and no crate in the
//! workspace encodes MVT. Not a general encoder: values are strings only.

/// Default MVT extent (tile-local coordinates run 0..4096).
pub const EXTENT: u32 = 4096;
/// MVT spec version written in every layer.
const MVT_VERSION: u64 = 2;

/// MVT geometry types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeomType {
    /// A point or multipoint.
    Point = 1,
    /// A linestring.
    LineString = 2,
    /// A polygon.
    Polygon = 3,
}

/// One feature: an id, a geometry and string properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature {
    /// Feature id.
    pub id: u64,
    /// Geometry type.
    pub geom_type: GeomType,
    /// Encoded geometry commands (see `polygon`, `point`, `line`).
    pub geometry: Vec<u32>,
    /// (key, value) string properties.
    pub properties: Vec<(String, String)>,
}

/// One layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Layer name.
    pub name: String,
    /// Features in order.
    pub features: Vec<Feature>,
}

/// Command ids from the MVT spec §4.3.
const MOVE_TO: u32 = 1;
const LINE_TO: u32 = 2;
const CLOSE_PATH: u32 = 7;

/// Protobuf wire types.
const VARINT: u64 = 0;
const LEN: u64 = 2;

/// Encodes a tile holding `layers`.
pub fn encode(layers: &[Layer]) -> Vec<u8> {
    let mut tile = Vec::new();
    for layer in layers {
        put_len(&mut tile, 3, &encode_layer(layer));
    }
    tile
}

/// A clockwise ring around `[min, max]²`, an exterior ring in tile coordinates (y down).
pub fn polygon(min: i32, max: i32) -> Vec<u32> {
    let side = max - min;
    vec![
        command(MOVE_TO, 1),
        zigzag(min),
        zigzag(min),
        command(LINE_TO, 3),
        zigzag(side),
        zigzag(0),
        zigzag(0),
        zigzag(side),
        zigzag(-side),
        zigzag(0),
        command(CLOSE_PATH, 1),
    ]
}

/// A single point.
pub fn point(x: i32, y: i32) -> Vec<u32> {
    vec![command(MOVE_TO, 1), zigzag(x), zigzag(y)]
}

/// A linestring through `points` (at least two).
pub fn line(points: &[(i32, i32)]) -> Vec<u32> {
    let mut out = Vec::with_capacity(points.len() * 2 + 2);
    let (mut cx, mut cy) = (0i32, 0i32);
    for (i, &(x, y)) in points.iter().enumerate() {
        match i {
            0 => out.push(command(MOVE_TO, 1)),
            1 => out.push(command(LINE_TO, (points.len() - 1) as u32)),
            _ => {}
        }
        out.push(zigzag(x - cx));
        out.push(zigzag(y - cy));
        (cx, cy) = (x, y);
    }
    out
}

fn encode_layer(layer: &Layer) -> Vec<u8> {
    let mut keys: Vec<&str> = Vec::new();
    let mut values: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    put_len(&mut out, 1, layer.name.as_bytes());
    for f in &layer.features {
        let mut tags = Vec::with_capacity(f.properties.len() * 2);
        for (k, v) in &f.properties {
            tags.push(intern(&mut keys, k));
            tags.push(intern(&mut values, v));
        }
        let mut feature = Vec::new();
        put_varint_field(&mut feature, 1, f.id);
        if !tags.is_empty() {
            put_packed(&mut feature, 2, &tags);
        }
        put_varint_field(&mut feature, 3, f.geom_type as u64);
        put_packed(&mut feature, 4, &f.geometry);
        put_len(&mut out, 2, &feature);
    }
    for k in &keys {
        put_len(&mut out, 3, k.as_bytes());
    }
    for v in &values {
        let mut value = Vec::new();
        put_len(&mut value, 1, v.as_bytes());
        put_len(&mut out, 4, &value);
    }
    put_varint_field(&mut out, 5, u64::from(EXTENT));
    put_varint_field(&mut out, 15, MVT_VERSION);
    out
}

fn intern<'a>(list: &mut Vec<&'a str>, s: &'a str) -> u32 {
    match list.iter().position(|x| *x == s) {
        Some(i) => i as u32,
        None => {
            list.push(s);
            (list.len() - 1) as u32
        }
    }
}

fn command(id: u32, count: u32) -> u32 {
    (id & 0x7) | (count << 3)
}

fn zigzag(n: i32) -> u32 {
    ((n << 1) ^ (n >> 31)) as u32
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint_field(out: &mut Vec<u8>, field: u64, v: u64) {
    put_varint(out, field << 3 | VARINT);
    put_varint(out, v);
}

fn put_len(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, field << 3 | LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_packed(out: &mut Vec<u8>, field: u64, values: &[u32]) {
    let mut body = Vec::with_capacity(values.len() * 2);
    for &v in values {
        put_varint(&mut body, u64::from(v));
    }
    put_len(out, field, &body);
}

/// The two features every generated tile starts with: a polygon covering the tile extent
/// and a point at its centre labelled `zxy="z/x/y"`.
pub fn outline_and_label(z: u8, x: u64, y: u64) -> Vec<Feature> {
    let extent = EXTENT as i32;
    vec![
        Feature {
            id: 1,
            geom_type: GeomType::Polygon,
            geometry: polygon(0, extent),
            properties: vec![],
        },
        Feature {
            id: 2,
            geom_type: GeomType::Point,
            geometry: point(extent / 2, extent / 2),
            properties: vec![("zxy".into(), format!("{z}/{x}/{y}"))],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_and_commands_follow_the_spec() {
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(4096), 8192);
        assert_eq!(command(MOVE_TO, 1), 9);
        assert_eq!(command(LINE_TO, 3), 26);
        assert_eq!(command(CLOSE_PATH, 1), 15);
    }

    #[test]
    fn the_full_tile_polygon_is_a_clockwise_exterior_ring() {
        assert_eq!(
            polygon(0, 4096),
            vec![9, 0, 0, 26, 8192, 0, 0, 8192, 8191, 0, 15]
        );
    }

    #[test]
    fn lines_are_delta_encoded() {
        assert_eq!(
            line(&[(1, 1), (3, 0), (3, 2)]),
            vec![9, 2, 2, 18, 4, 1, 0, 4]
        );
    }

    #[test]
    fn a_layer_encodes_to_the_expected_wire_bytes() {
        let tile = encode(&[Layer {
            name: "g".into(),
            features: vec![Feature {
                id: 1,
                geom_type: GeomType::Point,
                geometry: point(1, 1),
                properties: vec![("k".into(), "v".into())],
            }],
        }]);
        let layer: Vec<u8> = vec![
            0x0a, 1, b'g', // name
            0x12, 13, 0x08, 1, 0x12, 2, 0, 0, 0x18, 1, 0x22, 3, 9, 2, 2, // feature
            0x1a, 1, b'k', // keys
            0x22, 3, 0x0a, 1, b'v', // values
            0x28, 0x80, 0x20, // extent 4096
            0x78, 2, // version 2
        ];
        let mut expected = vec![0x1a, layer.len() as u8];
        expected.extend_from_slice(&layer);
        assert_eq!(tile, expected);
    }
}
