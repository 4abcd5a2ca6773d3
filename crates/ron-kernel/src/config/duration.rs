//! Serde helpers for `Duration` fields: `#[serde(with = "ron_kernel::config::duration::secs")]`.
//!
//! Values are a bare number in the key's unit (`secs`: seconds, `millis`: milliseconds) or a
//! number with a unit: `ns`, `us`, `ms`, `s`, `m`, `h`. Durations serialise as the largest
//! unit that represents them exactly (`30s`, `1500ms`), so printed configs read back the same.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

const UNITS: [(&str, u64); 6] = [
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// Parses `N` (in `bare_unit`) or `N<unit>`.
pub fn parse(text: &str, bare_unit: Duration) -> Result<Duration, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("expected a duration like 30s, 250ms, 5m or 1h, got {text:?}"))?;
    let nanos_per = match unit.trim() {
        "" => u64::try_from(bare_unit.as_nanos()).unwrap_or(u64::MAX),
        unit => UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, nanos)| *nanos)
            .ok_or_else(|| format!("unknown duration unit {unit:?}: use ns, us, ms, s, m or h"))?,
    };
    n.checked_mul(nanos_per)
        .map(Duration::from_nanos)
        .ok_or_else(|| format!("duration {text:?} is too large"))
}

/// Renders a duration with the largest exact unit.
pub fn render(d: Duration) -> String {
    let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return "0s".to_owned();
    }
    let (name, per) = UNITS
        .iter()
        .find(|(_, per)| nanos.is_multiple_of(*per))
        .copied()
        .unwrap_or(("ns", 1));
    format!("{}{name}", nanos / per)
}

struct DurationVisitor(Duration);

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration: a number or a string like 30s, 250ms, 5m, 1h")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        let per = u64::try_from(self.0.as_nanos()).unwrap_or(u64::MAX);
        v.checked_mul(per)
            .map(Duration::from_nanos)
            .ok_or_else(|| E::custom(format!("duration {v} is too large")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        let v = u64::try_from(v)
            .map_err(|_| E::custom(format!("duration {v} is negative; use 0 or more")))?;
        self.visit_u64(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v, self.0).map_err(E::custom)
    }
}

fn deserialize_in<'de, D: Deserializer<'de>>(d: D, unit: Duration) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor(unit))
}

/// Bare numbers are seconds.
pub mod secs {
    use super::*;

    /// Serialises as `30s`-style text.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&render(*d))
    }

    /// Accepts seconds or text with a unit.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        deserialize_in(d, Duration::from_secs(1))
    }
}

/// Bare numbers are milliseconds.
pub mod millis {
    use super::*;

    /// Serialises as `250ms`-style text.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&render(*d))
    }

    /// Accepts milliseconds or text with a unit.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        deserialize_in(d, Duration::from_millis(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bare_numbers_in_the_keys_unit_and_suffixed_numbers() {
        let s = Duration::from_secs(1);
        assert_eq!(parse("30", s), Ok(Duration::from_secs(30)));
        assert_eq!(
            parse("30", Duration::from_millis(1)),
            Ok(Duration::from_millis(30))
        );
        assert_eq!(parse("250ms", s), Ok(Duration::from_millis(250)));
        assert_eq!(parse("5m", s), Ok(Duration::from_secs(300)));
        assert_eq!(parse("2h", s), Ok(Duration::from_secs(7200)));
        assert!(parse("5 parsecs", s).is_err());
        assert!(parse("-1s", s).is_err());
        assert!(parse("", s).is_err());
    }

    #[test]
    fn renders_with_the_largest_exact_unit() {
        assert_eq!(render(Duration::from_secs(30)), "30s");
        assert_eq!(render(Duration::from_millis(1500)), "1500ms");
        assert_eq!(render(Duration::from_secs(3600)), "1h");
        assert_eq!(render(Duration::ZERO), "0s");
        for d in [Duration::from_micros(7), Duration::from_secs(90)] {
            assert_eq!(parse(&render(d), Duration::from_secs(1)), Ok(d));
        }
    }
}
