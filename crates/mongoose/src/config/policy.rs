//! Config-side value types that YAML writes as a bare string or a small map: idle strategies,
//! backpressure, pinning mode, admin address and log destination.
//!
//! They mirror the runtime types (`crate::idle::IdleStrategy`, `crate::queue::Policy`,
//! `crate::queue::Backpressure`) field for field, so the conversions are plain `From` impls
//! that live beside the runtime types; this module does not depend on them. Every string
//! goes through `${env:}`/`${file:}` substitution before it is interpreted.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::subst;

/// Defaults of the `backoff` idle strategy (decision 3: 10 spins, 5 yields, 1 µs to 1 ms).
pub const DEFAULT_BACKOFF_MAX_SPINS: u32 = 10;
/// See [`DEFAULT_BACKOFF_MAX_SPINS`].
pub const DEFAULT_BACKOFF_MAX_YIELDS: u32 = 5;
/// See [`DEFAULT_BACKOFF_MAX_SPINS`].
pub const DEFAULT_BACKOFF_MIN_PARK_NS: u64 = 1_000;
/// See [`DEFAULT_BACKOFF_MAX_SPINS`].
pub const DEFAULT_BACKOFF_MAX_PARK_NS: u64 = 1_000_000;
/// Default pause of the `sleeping` strategy, ns.
pub const DEFAULT_SLEEPING_NANOS: u64 = 1_000;
/// Default pause of the `sleeping-millis` strategy, ms.
pub const DEFAULT_SLEEPING_MILLIS: u64 = 1;
/// Default `backpressure.maxWaitMs` (decision 6).
pub const DEFAULT_MAX_WAIT_MS: u32 = 10;

/// Implements `FromStr`, `Display`, `Serialize` and a substituting `Deserialize` for a
/// fieldless enum written as a kebab-case string.
macro_rules! string_enum {
    ($ty:ident, $what:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every accepted spelling, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The YAML spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }
        }

        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    other => Err(format!(
                        "unknown {} `{}` (expected one of {})",
                        $what, other, Self::NAMES.join(", ")
                    )),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = subst::string(d)?;
                text.parse().map_err(de::Error::custom)
            }
        }
    };
}

/// What a full queue does (`backpressure.policy` and `.fallback`); mirrors
/// `crate::queue::Policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyConfig {
    /// `block`: wait up to `maxWaitMs`, then apply the fallback.
    Block,
    /// `drop-newest`: drop the event being published.
    DropNewest,
    /// `drop-oldest`: evict the oldest queued event.
    DropOldest,
    /// `disconnect`: disconnect the subscription until `queues.reconnect`.
    Disconnect,
    /// `fail-fast`: reject the event back to the publisher.
    FailFast,
}

string_enum!(PolicyConfig, "backpressure policy", {
    Block => "block",
    DropNewest => "drop-newest",
    DropOldest => "drop-oldest",
    Disconnect => "disconnect",
    FailFast => "fail-fast",
});

/// `pinning`: whether an unavailable core is a config error (`strict`) or a WARN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pinning {
    /// `strict` (default, decision 16).
    #[default]
    Strict,
    /// `best-effort`.
    BestEffort,
}

string_enum!(Pinning, "pinning mode", {
    Strict => "strict",
    BestEffort => "best-effort",
});

/// `--log-to` / `MONGOOSE_LOG_TO`: where logs go. Not a YAML key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTo {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

string_enum!(LogTo, "log destination", {
    Stdout => "stdout",
    Stderr => "stderr",
});

/// `admin.address`: a socket address, or `off` for no admin listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAddress {
    /// `off`.
    Off,
    /// `IP:port`.
    Socket(SocketAddr),
}

/// Default `admin.address`.
pub const DEFAULT_ADMIN_ADDRESS: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    9200,
));

impl Default for AdminAddress {
    fn default() -> Self {
        AdminAddress::Socket(DEFAULT_ADMIN_ADDRESS)
    }
}

impl AdminAddress {
    /// The socket address, or `None` for `off`.
    pub fn socket(self) -> Option<SocketAddr> {
        match self {
            AdminAddress::Off => None,
            AdminAddress::Socket(a) => Some(a),
        }
    }
}

impl FromStr for AdminAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "off" {
            return Ok(AdminAddress::Off);
        }
        s.parse().map(AdminAddress::Socket).map_err(|_| {
            format!(
                "`{s}` is not an address (expected `IP:port` such as `127.0.0.1:9200`, or `off`)"
            )
        })
    }
}

impl fmt::Display for AdminAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminAddress::Off => f.write_str("off"),
            AdminAddress::Socket(a) => a.fmt(f),
        }
    }
}

impl Serialize for AdminAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AdminAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        subst::string(d)?.parse().map_err(de::Error::custom)
    }
}

/// An idle strategy and its parameters; mirrors `crate::idle::IdleStrategy`.
///
/// YAML: a bare name (`backoff`) uses the per-type defaults; a map `{type: backoff,
/// maxSpins: 20}` overrides some of them, and a key that does not apply to the type is an
/// error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleStrategyConfig {
    /// `busy-spin`.
    BusySpin,
    /// `yielding`.
    Yielding,
    /// `sleeping{nanos: 1000}`, 1..=10^9.
    Sleeping {
        /// Pause, ns.
        nanos: u64,
    },
    /// `sleeping-millis{millis: 1}`, 1..=10000.
    SleepingMillis {
        /// Pause, ms.
        millis: u64,
    },
    /// `backoff{maxSpins: 10, maxYields: 5, minParkNs: 1000, maxParkNs: 1000000}`.
    Backoff {
        /// Spins before yielding.
        max_spins: u32,
        /// Yields before parking.
        max_yields: u32,
        /// First park, ns.
        min_park_ns: u64,
        /// Longest park, ns; at least `min_park_ns`.
        max_park_ns: u64,
    },
    /// `no-op`.
    NoOp,
}

impl Default for IdleStrategyConfig {
    /// `backoff` with its defaults (decision 3).
    fn default() -> Self {
        IdleStrategyConfig::Backoff {
            max_spins: DEFAULT_BACKOFF_MAX_SPINS,
            max_yields: DEFAULT_BACKOFF_MAX_YIELDS,
            min_park_ns: DEFAULT_BACKOFF_MIN_PARK_NS,
            max_park_ns: DEFAULT_BACKOFF_MAX_PARK_NS,
        }
    }
}

impl IdleStrategyConfig {
    /// Every strategy name.
    pub const NAMES: &'static [&'static str] = &[
        "busy-spin",
        "yielding",
        "sleeping",
        "sleeping-millis",
        "backoff",
        "no-op",
    ];

    /// The YAML `type`.
    pub fn name(&self) -> &'static str {
        match self {
            IdleStrategyConfig::BusySpin => "busy-spin",
            IdleStrategyConfig::Yielding => "yielding",
            IdleStrategyConfig::Sleeping { .. } => "sleeping",
            IdleStrategyConfig::SleepingMillis { .. } => "sleeping-millis",
            IdleStrategyConfig::Backoff { .. } => "backoff",
            IdleStrategyConfig::NoOp => "no-op",
        }
    }

    /// The strategy with this name and its default parameters.
    ///
    /// # Errors
    /// An unknown name, listing the known ones.
    pub fn from_name(name: &str) -> Result<Self, String> {
        IdleRaw {
            kind: name.to_owned(),
            ..IdleRaw::default()
        }
        .into_strategy()
    }

    /// The longest single park or sleep, ns (0 for the non-sleeping strategies); the health
    /// check needs `agentStaleMs` to be well above it.
    pub fn longest_pause_ns(&self) -> u64 {
        match *self {
            IdleStrategyConfig::Sleeping { nanos } => nanos,
            IdleStrategyConfig::SleepingMillis { millis } => millis.saturating_mul(1_000_000),
            IdleStrategyConfig::Backoff { max_park_ns, .. } => max_park_ns,
            IdleStrategyConfig::BusySpin
            | IdleStrategyConfig::Yielding
            | IdleStrategyConfig::NoOp => 0,
        }
    }
}

/// The map form of an idle strategy before the per-type key check.
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IdleRaw {
    #[serde(rename = "type", deserialize_with = "subst::string")]
    kind: String,
    nanos: Option<u64>,
    millis: Option<u64>,
    max_spins: Option<u32>,
    max_yields: Option<u32>,
    min_park_ns: Option<u64>,
    max_park_ns: Option<u64>,
}

impl IdleRaw {
    fn into_strategy(self) -> Result<IdleStrategyConfig, String> {
        let present: [(&str, bool); 6] = [
            ("nanos", self.nanos.is_some()),
            ("millis", self.millis.is_some()),
            ("maxSpins", self.max_spins.is_some()),
            ("maxYields", self.max_yields.is_some()),
            ("minParkNs", self.min_park_ns.is_some()),
            ("maxParkNs", self.max_park_ns.is_some()),
        ];
        let (strategy, allowed): (IdleStrategyConfig, &[&str]) = match self.kind.as_str() {
            "busy-spin" => (IdleStrategyConfig::BusySpin, &[]),
            "yielding" => (IdleStrategyConfig::Yielding, &[]),
            "no-op" => (IdleStrategyConfig::NoOp, &[]),
            "sleeping" => (
                IdleStrategyConfig::Sleeping {
                    nanos: self.nanos.unwrap_or(DEFAULT_SLEEPING_NANOS),
                },
                &["nanos"],
            ),
            "sleeping-millis" => (
                IdleStrategyConfig::SleepingMillis {
                    millis: self.millis.unwrap_or(DEFAULT_SLEEPING_MILLIS),
                },
                &["millis"],
            ),
            "backoff" => (
                IdleStrategyConfig::Backoff {
                    max_spins: self.max_spins.unwrap_or(DEFAULT_BACKOFF_MAX_SPINS),
                    max_yields: self.max_yields.unwrap_or(DEFAULT_BACKOFF_MAX_YIELDS),
                    min_park_ns: self.min_park_ns.unwrap_or(DEFAULT_BACKOFF_MIN_PARK_NS),
                    max_park_ns: self.max_park_ns.unwrap_or(DEFAULT_BACKOFF_MAX_PARK_NS),
                },
                &["maxSpins", "maxYields", "minParkNs", "maxParkNs"],
            ),
            other => {
                return Err(format!(
                    "unknown idle strategy `{other}` (expected one of {})",
                    IdleStrategyConfig::NAMES.join(", ")
                ));
            }
        };
        if let Some((key, _)) = present
            .iter()
            .find(|(key, set)| *set && !allowed.contains(key))
        {
            let mut expected = vec!["type"];
            expected.extend_from_slice(allowed);
            return Err(format!(
                "key `{key}` does not apply to idle strategy `{}` (expected one of {})",
                self.kind,
                expected.join(", ")
            ));
        }
        Ok(strategy)
    }
}

impl<'de> Deserialize<'de> for IdleStrategyConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IdleStrategyConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an idle strategy name or a map with `type`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let name = subst::substitute(v).map_err(E::custom)?;
                IdleStrategyConfig::from_name(&name).map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let raw = IdleRaw::deserialize(MapAccessDeserializer::new(map))?;
                raw.into_strategy().map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for IdleStrategyConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            IdleStrategyConfig::BusySpin
            | IdleStrategyConfig::Yielding
            | IdleStrategyConfig::NoOp => s.serialize_str(self.name()),
            IdleStrategyConfig::Sleeping { nanos } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("type", self.name())?;
                m.serialize_entry("nanos", &nanos)?;
                m.end()
            }
            IdleStrategyConfig::SleepingMillis { millis } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("type", self.name())?;
                m.serialize_entry("millis", &millis)?;
                m.end()
            }
            IdleStrategyConfig::Backoff {
                max_spins,
                max_yields,
                min_park_ns,
                max_park_ns,
            } => {
                let mut m = s.serialize_map(Some(5))?;
                m.serialize_entry("type", self.name())?;
                m.serialize_entry("maxSpins", &max_spins)?;
                m.serialize_entry("maxYields", &max_yields)?;
                m.serialize_entry("minParkNs", &min_park_ns)?;
                m.serialize_entry("maxParkNs", &max_park_ns)?;
                m.end()
            }
        }
    }
}

/// `backpressure` of a feed or pipe; mirrors `crate::queue::Backpressure`.
///
/// YAML: a policy string (`drop-oldest`, other keys default) or `{policy, maxWaitMs,
/// fallback}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct BackpressureConfig {
    /// What a full queue does.
    pub policy: PolicyConfig,
    /// `block` only: longest wait per target, ms, 0..=60000.
    pub max_wait_ms: u32,
    /// `block` only: what happens after the wait; never `block`.
    pub fallback: PolicyConfig,
}

impl Default for BackpressureConfig {
    /// `block` for 10 ms, then `drop-newest` (decision 6).
    fn default() -> Self {
        BackpressureConfig {
            policy: PolicyConfig::Block,
            max_wait_ms: DEFAULT_MAX_WAIT_MS,
            fallback: PolicyConfig::DropNewest,
        }
    }
}

/// Deserializes `backpressure` from a policy string or a map.
pub(crate) fn backpressure<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BackpressureConfig, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = BackpressureConfig;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a backpressure policy name or a map with `policy`")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let name = subst::substitute(v).map_err(E::custom)?;
            Ok(BackpressureConfig {
                policy: name.parse().map_err(E::custom)?,
                ..BackpressureConfig::default()
            })
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            BackpressureConfig::deserialize(MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle(yaml: &str) -> Result<IdleStrategyConfig, String> {
        serde_saphyr::from_str::<IdleStrategyConfig>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn bare_idle_names_use_per_type_defaults() {
        assert_eq!(idle("busy-spin").unwrap(), IdleStrategyConfig::BusySpin);
        assert_eq!(idle("yielding").unwrap(), IdleStrategyConfig::Yielding);
        assert_eq!(idle("no-op").unwrap(), IdleStrategyConfig::NoOp);
        assert_eq!(
            idle("sleeping").unwrap(),
            IdleStrategyConfig::Sleeping { nanos: 1000 }
        );
        assert_eq!(
            idle("sleeping-millis").unwrap(),
            IdleStrategyConfig::SleepingMillis { millis: 1 }
        );
        assert_eq!(
            idle("backoff").unwrap(),
            IdleStrategyConfig::Backoff {
                max_spins: 10,
                max_yields: 5,
                min_park_ns: 1000,
                max_park_ns: 1_000_000
            }
        );
        assert_eq!(IdleStrategyConfig::default(), idle("backoff").unwrap());
    }

    #[test]
    fn idle_map_overrides_some_keys_and_defaults_the_rest() {
        assert_eq!(
            idle("{type: backoff, maxParkNs: 5000}").unwrap(),
            IdleStrategyConfig::Backoff {
                max_spins: 10,
                max_yields: 5,
                min_park_ns: 1000,
                max_park_ns: 5000
            }
        );
        assert_eq!(
            idle("{type: sleeping-millis, millis: 7}").unwrap(),
            IdleStrategyConfig::SleepingMillis { millis: 7 }
        );
    }

    #[test]
    fn idle_key_of_another_type_is_rejected() {
        let err = idle("{type: backoff, nanos: 5}").unwrap_err();
        assert!(err.contains("key `nanos` does not apply"), "{err}");
    }

    #[test]
    fn unknown_idle_name_lists_the_known_ones() {
        let err = idle("spin-wildly").unwrap_err();
        assert!(err.contains("expected one of busy-spin"), "{err}");
        let err = idle("{type: backoff, maxSpinz: 1}").unwrap_err();
        assert!(err.contains("maxSpinz"), "{err}");
    }

    #[test]
    fn idle_strategy_round_trips_through_yaml() {
        for s in [
            IdleStrategyConfig::BusySpin,
            IdleStrategyConfig::Sleeping { nanos: 9 },
            IdleStrategyConfig::default(),
        ] {
            let text = serde_saphyr::to_string(&s).unwrap();
            assert_eq!(idle(&text).unwrap(), s, "{text}");
        }
    }

    #[test]
    fn longest_pause_covers_each_sleeping_strategy() {
        assert_eq!(IdleStrategyConfig::BusySpin.longest_pause_ns(), 0);
        assert_eq!(
            IdleStrategyConfig::Sleeping { nanos: 5 }.longest_pause_ns(),
            5
        );
        assert_eq!(
            IdleStrategyConfig::SleepingMillis { millis: 2 }.longest_pause_ns(),
            2_000_000
        );
        assert_eq!(IdleStrategyConfig::default().longest_pause_ns(), 1_000_000);
    }

    #[derive(serde::Deserialize)]
    struct Bp {
        #[serde(deserialize_with = "backpressure")]
        bp: BackpressureConfig,
    }

    #[test]
    fn backpressure_string_keeps_the_other_defaults() {
        let b: Bp = serde_saphyr::from_str("bp: drop-oldest").unwrap();
        assert_eq!(
            b.bp,
            BackpressureConfig {
                policy: PolicyConfig::DropOldest,
                max_wait_ms: 10,
                fallback: PolicyConfig::DropNewest
            }
        );
    }

    #[test]
    fn backpressure_map_defaults_missing_keys() {
        let b: Bp = serde_saphyr::from_str("bp: {maxWaitMs: 1, fallback: fail-fast}").unwrap();
        assert_eq!(
            b.bp,
            BackpressureConfig {
                policy: PolicyConfig::Block,
                max_wait_ms: 1,
                fallback: PolicyConfig::FailFast
            }
        );
        assert!(serde_saphyr::from_str::<Bp>("bp: {polcy: block}").is_err());
        assert!(serde_saphyr::from_str::<Bp>("bp: drop-everything").is_err());
    }

    #[test]
    fn admin_address_accepts_socket_or_off() {
        assert_eq!("off".parse::<AdminAddress>().unwrap(), AdminAddress::Off);
        assert_eq!(
            "127.0.0.1:9200".parse::<AdminAddress>().unwrap(),
            AdminAddress::default()
        );
        assert!("localhost".parse::<AdminAddress>().is_err());
        assert_eq!(AdminAddress::default().to_string(), "127.0.0.1:9200");
    }

    #[test]
    fn string_enums_parse_their_names() {
        assert_eq!(
            "best-effort".parse::<Pinning>().unwrap(),
            Pinning::BestEffort
        );
        assert_eq!(Pinning::default(), Pinning::Strict);
        assert_eq!("stderr".parse::<LogTo>().unwrap(), LogTo::Stderr);
        let err = "kafka".parse::<PolicyConfig>().unwrap_err();
        assert!(err.contains("expected one of block, drop-newest"), "{err}");
    }
}
