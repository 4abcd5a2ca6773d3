//! Address vetting (spec §4.11 step 5): resolve an allow-listed host once, drop every
//! non-public address unless `allow_private`, and hand back the survivors, which are the
//! only addresses the client may connect to (it never re-resolves).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::time::Instant;

use super::allow::Origin;

/// Why vetting found nothing to connect to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VetError {
    /// The name did not resolve (or resolution failed or timed out).
    #[error("{host} did not resolve: {detail}")]
    Resolve {
        /// The host.
        host: String,
        /// What the resolver said.
        detail: String,
    },
    /// Every address was private, loopback, link-local, multicast or reserved.
    #[error("{host} resolves only to non-public addresses; set edge.allow_private for tests")]
    PrivateOnly {
        /// The host.
        host: String,
    },
}

/// Resolves `origin` before `deadline` and keeps the addresses that may be dialled.
pub async fn resolve(
    origin: &Origin,
    allow_private: bool,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, VetError> {
    let lookup = tokio::net::lookup_host((origin.host.as_str(), origin.port));
    let resolved = match tokio::time::timeout_at(deadline, lookup).await {
        Ok(Ok(addrs)) => addrs.collect::<Vec<_>>(),
        Ok(Err(e)) => {
            return Err(VetError::Resolve {
                host: origin.host.clone(),
                detail: e.to_string(),
            });
        }
        Err(_) => {
            return Err(VetError::Resolve {
                host: origin.host.clone(),
                detail: "timed out".into(),
            });
        }
    };
    vet(&origin.host, resolved, allow_private)
}

/// Filters resolved addresses; errors when none survive.
pub fn vet(
    host: &str,
    resolved: Vec<SocketAddr>,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, VetError> {
    if resolved.is_empty() {
        return Err(VetError::Resolve {
            host: host.to_owned(),
            detail: "no addresses".into(),
        });
    }
    let kept: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|a| allow_private || is_public(a.ip()))
        .collect();
    if kept.is_empty() {
        return Err(VetError::PrivateOnly {
            host: host.to_owned(),
        });
    }
    Ok(kept)
}

/// Whether `ip` is outside every range spec §4.11 step 5 forbids.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    const BLOCKED: [([u8; 4], u8); 11] = [
        ([0, 0, 0, 0], 8),
        ([10, 0, 0, 0], 8),
        ([100, 64, 0, 0], 10),
        ([127, 0, 0, 0], 8),
        ([169, 254, 0, 0], 16),
        ([172, 16, 0, 0], 12),
        ([192, 0, 0, 0], 24),
        ([192, 168, 0, 0], 16),
        ([198, 18, 0, 0], 15),
        ([224, 0, 0, 0], 4),
        ([240, 0, 0, 0], 4),
    ];
    let bits = u32::from(ip);
    !BLOCKED.iter().any(|(net, len)| {
        let mask = u32::MAX << (32 - u32::from(*len));
        bits & mask == u32::from_be_bytes(*net)
    })
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    // IPv4 reached through v4-mapped or NAT64 (64:ff9b::/96) forms is judged as IPv4.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let o = ip.octets();
        return is_public_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    let first = s[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || first & 0xfe00 == 0xfc00
        || first & 0xffc0 == 0xfe80
        || first & 0xff00 == 0xff00)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_listed_private_range_is_refused_and_its_neighbours_are_not() {
        for private in [
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.1.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fdff::1",
            "fe80::1",
            "febf::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:0101",
            "64:ff9b::7f00:1",
        ] {
            assert!(!is_public(ip(private)), "{private}");
        }
        for public in [
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "192.0.1.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700::1111",
            "fec0::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(ip(public)), "{public}");
        }
    }

    #[test]
    fn vetting_keeps_public_addresses_and_reports_private_only_hosts() {
        let loopback: SocketAddr = "127.0.0.1:443".parse().unwrap();
        let public: SocketAddr = "1.1.1.1:443".parse().unwrap();
        assert_eq!(
            vet("h", vec![loopback, public], false).unwrap(),
            vec![public]
        );
        assert_eq!(
            vet("h", vec![loopback], false),
            Err(VetError::PrivateOnly { host: "h".into() })
        );
        assert_eq!(vet("h", vec![loopback], true).unwrap(), vec![loopback]);
        assert!(matches!(
            vet("h", vec![], true),
            Err(VetError::Resolve { .. })
        ));
    }
}
