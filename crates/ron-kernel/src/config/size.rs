//! Serde helper for byte sizes: `#[serde(with = "ron_kernel::config::size")]` on any
//! unsigned integer field.
//!
//! Accepts `N`, `NB`, `NKiB`, `NMiB`, `NGiB` (powers of 1024) and `NKB`, `NMB`, `NGB`
//! (powers of 1000), units in any case. Serialises as the largest exact binary unit.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

const UNITS: [(&str, u64); 7] = [
    ("gib", 1 << 30),
    ("mib", 1 << 20),
    ("kib", 1 << 10),
    ("gb", 1_000_000_000),
    ("mb", 1_000_000),
    ("kb", 1_000),
    ("b", 1),
];

/// Parses a size into bytes.
pub fn parse(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("expected a size like 512, 64KiB, 10MiB or 1GB, got {text:?}"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let per = if unit.is_empty() {
        1
    } else {
        UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, per)| *per)
            .ok_or_else(|| {
                format!("unknown size unit {unit:?}: use B, KiB, MiB, GiB, KB, MB or GB")
            })?
    };
    n.checked_mul(per)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// Renders bytes with the largest exact binary unit (`64KiB`), else plain bytes.
pub fn render(bytes: u64) -> String {
    for (name, per) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes != 0 && bytes.is_multiple_of(per) {
            return format!("{}{name}", bytes / per);
        }
    }
    bytes.to_string()
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size: bytes, or a string like 64KiB, 10MiB, 1GB")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("size {v} is negative; use 0 or more")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse(v).map_err(E::custom)
    }
}

/// Serialises as `64KiB`-style text.
pub fn serialize<N, S>(n: &N, s: S) -> Result<S::Ok, S::Error>
where
    N: Copy + TryInto<u64>,
    S: Serializer,
{
    let bytes = (*n)
        .try_into()
        .map_err(|_| serde::ser::Error::custom("size does not fit in 64 bits"))?;
    s.serialize_str(&render(bytes))
}

/// Accepts bytes or text with a unit, into any unsigned integer type.
pub fn deserialize<'de, N, D>(d: D) -> Result<N, D::Error>
where
    N: TryFrom<u64>,
    D: Deserializer<'de>,
{
    let bytes = d.deserialize_any(SizeVisitor)?;
    N::try_from(bytes)
        .map_err(|_| de::Error::custom(format!("size {bytes} bytes is too large for this key")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_and_decimal_units() {
        assert_eq!(parse("512"), Ok(512));
        assert_eq!(parse("512B"), Ok(512));
        assert_eq!(parse("64KiB"), Ok(65_536));
        assert_eq!(parse("10mib"), Ok(10 << 20));
        assert_eq!(parse("1GiB"), Ok(1 << 30));
        assert_eq!(parse("2KB"), Ok(2_000));
        assert_eq!(parse("3MB"), Ok(3_000_000));
        assert_eq!(parse("1GB"), Ok(1_000_000_000));
        assert!(parse("12 furlongs").is_err());
        assert!(parse("99999999999GiB").is_err());
    }

    #[test]
    fn renders_exact_binary_units() {
        assert_eq!(render(65_536), "64KiB");
        assert_eq!(render(1000), "1000");
        assert_eq!(render(0), "0");
        assert_eq!(parse(&render(3 << 20)), Ok(3 << 20));
    }
}
