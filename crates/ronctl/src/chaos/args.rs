//! Parsing and bounds of drill arguments: `5/s`, `120s`, `80ms`, loopback-only targets.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Highest rate a drill may use.
pub const MAX_RATE: f64 = 10_000.0;
/// Longest drill.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// `N/s`, `N/m` or a bare `N` (per second) → events per second.
pub fn rate(s: &str) -> Result<f64, String> {
    let (n, per) = match s.split_once('/') {
        Some((n, "s")) => (n, 1.0),
        Some((n, "m")) => (n, 60.0),
        Some(_) => return Err(format!("rate {s:?}: use N/s or N/m")),
        None => (s, 1.0),
    };
    let v: f64 = n
        .trim()
        .parse()
        .map_err(|_| format!("rate {s:?}: not a number"))?;
    let per_sec = v / per;
    if !(per_sec > 0.0 && per_sec <= MAX_RATE) {
        return Err(format!(
            "rate {s:?}: must be above 0 and at most {MAX_RATE}/s"
        ));
    }
    Ok(per_sec)
}

/// `120s`, `2m`, `500ms`, `1h` or bare seconds.
pub fn duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, unit) = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((t, "s"), |i| (&t[..i], &t[i..]));
    let v: f64 = num
        .parse()
        .map_err(|_| format!("duration {s:?}: not a number"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("duration {s:?}: use ms, s, m or h")),
    };
    if !(0.0..=MAX_DURATION.as_secs_f64()).contains(&secs) {
        return Err(format!("duration {s:?}: at most 1h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A target URL split into a loopback socket address, host header and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The `Host` header.
    pub host: String,
    /// Path and query.
    pub path: String,
}

/// Parses `http://host:port/path`; the host must resolve to loopback only.
pub fn target(url: &str) -> Result<Target, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("target {url:?}: only http:// URLs (TLS is not needed on loopback)")
    })?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr = loopback(authority, 80)?;
    Ok(Target {
        addr,
        host: authority.to_string(),
        path: path.to_string(),
    })
}

/// Resolves `host[:port]` and refuses anything that is not a loopback address.
pub fn loopback(authority: &str, default_port: u16) -> Result<SocketAddr, String> {
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !authority.ends_with(']')
    {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    };
    let addrs: Vec<SocketAddr> = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{authority:?}: {e}"))?
        .collect();
    let first = *addrs
        .first()
        .ok_or_else(|| format!("{authority:?}: no address"))?;
    if addrs.iter().all(|a| is_loopback(a.ip())) {
        Ok(first)
    } else {
        Err(format!(
            "{authority:?} is not a loopback address: chaos drills only target this machine (127.0.0.0/8, ::1)"
        ))
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_durations_parse_with_units_and_bounds() {
        assert_eq!(rate("5/s").unwrap(), 5.0);
        assert_eq!(rate("120/m").unwrap(), 2.0);
        assert_eq!(rate("7").unwrap(), 7.0);
        for bad in ["0/s", "-1/s", "20000/s", "x/s", "5/h"] {
            assert!(rate(bad).is_err(), "{bad}");
        }
        assert_eq!(duration("120s").unwrap(), Duration::from_secs(120));
        assert_eq!(duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(duration("3").unwrap(), Duration::from_secs(3));
        for bad in ["2h", "5d", "abc", "-1s"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_loopback_targets_are_accepted() {
        let t = target("http://127.0.0.1:9100/metrics").unwrap();
        assert_eq!(t.addr, "127.0.0.1:9100".parse().unwrap());
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("127.0.0.1:9100", "/metrics")
        );
        assert_eq!(target("http://localhost:8080").unwrap().path, "/");
        assert!(target("http://[::1]:80/x").is_ok());
        for bad in [
            "http://10.0.0.1/metrics",
            "http://192.0.2.7:9100/",
            "https://127.0.0.1/",
            "ftp://127.0.0.1/",
        ] {
            assert!(target(bad).is_err(), "{bad}");
        }
    }
}
