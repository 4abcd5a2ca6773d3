//! The live-fill allow-list (spec §4.11 step 1): exact `host:port` matches, checked before
//! any lookup, DNS query or connection, for the request and for every redirect.

use std::collections::HashSet;

use crate::config::parse_allow;

/// Default HTTPS port, dropped from keys and `Host` headers.
pub const HTTPS_PORT: u16 = 443;

/// An allow-listed origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// Lower-case DNS name.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Origin {
    /// `host` or `host:port` when the port is not 443: the `Host` header and the key's
    /// authority.
    pub fn authority(&self) -> String {
        if self.port == HTTPS_PORT {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The parsed `edge.allow` list.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    entries: HashSet<Origin>,
}

impl AllowList {
    /// Parses config entries; invalid ones were rejected by config validation and are
    /// skipped here.
    pub fn new(entries: &[String]) -> AllowList {
        AllowList {
            entries: entries
                .iter()
                .filter_map(|e| parse_allow(e).ok())
                .map(|(host, port)| Origin { host, port })
                .collect(),
        }
    }

    /// The origin `authority` names (`host[:port]`, any case, `:443` optional) when it is
    /// listed exactly.
    pub fn check(&self, authority: &str) -> Option<Origin> {
        let lower = authority.to_ascii_lowercase();
        let (host, port) = match lower.rsplit_once(':') {
            // Only the canonical spelling of a port matches: no sign, no leading zero.
            Some((_, p)) if p.starts_with('0') || p.starts_with('+') => return None,
            Some((h, p)) => (h, p.parse::<u16>().ok()?),
            None => (lower.as_str(), HTTPS_PORT),
        };
        let origin = Origin {
            host: host.to_owned(),
            port,
        };
        self.entries.contains(&origin).then_some(origin)
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> AllowList {
        AllowList::new(&["tiles.example.org".into(), "localhost:8443".into()])
    }

    #[test]
    fn matching_is_exact_case_insensitive_and_defaults_to_443() {
        let l = list();
        assert_eq!(l.check("TILES.example.org").unwrap().port, 443);
        assert_eq!(
            l.check("tiles.example.org:443").unwrap().authority(),
            "tiles.example.org"
        );
        assert_eq!(
            l.check("LOCALHOST:8443").unwrap().authority(),
            "localhost:8443"
        );
        for bad in [
            "localhost",
            "localhost:8444",
            "x.tiles.example.org",
            "tiles.example.org.",
            "tiles.example.org:0443x",
            "user@tiles.example.org",
            "",
        ] {
            assert_eq!(l.check(bad), None, "{bad}");
        }
    }
}
