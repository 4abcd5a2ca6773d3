//! The value rules of the schema (spec SEN-R07, §2.4): names, listen addresses, target
//! addresses, match conditions, header names and values, tokens. Each returns the rule the
//! value broke, so messages read `<rule>, got "<value>"`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Longest upstream, route or listener name.
pub const MAX_NAME_LEN: usize = 64;

/// `[A-Za-z0-9._-]{1,64}` (upstream, route and listener names).
pub fn name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected a name of 1 to {MAX_NAME_LEN} characters [A-Za-z0-9._-]"
        ))
    }
}

/// `IPv4:port` or `[IPv6]:port`, port 0–65535 (0 = ephemeral).
pub fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .map_err(|_| "expected IPv4:port or [IPv6]:port (port 0..=65535)".to_owned())
}

/// `IPv4:port`, `[IPv6]:port` or `host:port` with port 1–65535.
pub fn target_addr(s: &str) -> Result<(), String> {
    const RULE: &str = "expected HOST:PORT (IPv4, [IPv6] or DNS name; port 1..=65535)";
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("{RULE}; the port is missing"));
    };
    if host.contains(':') && !host.starts_with('[') {
        // A bare IPv6 literal: its last group was taken for the port.
        return Err(format!("{RULE}; write IPv6 addresses in brackets"));
    }
    match port.parse::<u16>() {
        Ok(p) if p >= 1 => {}
        _ => return Err(format!("{RULE}; bad port")),
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner
            .parse::<Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| format!("{RULE}; bad IPv6 literal"));
    }
    if host.parse::<IpAddr>().is_ok() || dns_name(host) {
        Ok(())
    } else {
        Err(format!("{RULE}; bad host"))
    }
}

/// A DNS name: dot-separated labels of 1–63 `[A-Za-z0-9-]`, not starting or ending with
/// `-`, at most 253 characters; an all-numeric last label is rejected (it would be a
/// malformed IPv4 literal).
pub fn dns_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    let labels_ok = s.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    let last_numeric = s
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    labels_ok && !last_numeric
}

/// A request path for `path`/`path-prefix`/health checks: starts with `/`, no whitespace,
/// control characters, `?` or `#`.
pub fn path(s: &str) -> Result<(), String> {
    let ok = s.starts_with('/')
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#');
    if ok {
        Ok(())
    } else {
        Err("expected a path starting with \"/\" (no spaces, query or fragment)".to_owned())
    }
}

/// A `host` match: lowercase DNS name, IPv4 literal, `[IPv6]` literal or `*.suffix`; no port.
pub fn match_host(s: &str) -> Result<(), String> {
    const RULE: &str = "expected a lowercase host name, IP or *.suffix without port";
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(RULE.to_owned());
    }
    let host = s.strip_prefix("*.").unwrap_or(s);
    let ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !s.starts_with('*') && inner.parse::<Ipv6Addr>().is_ok()
    } else {
        (host.parse::<std::net::Ipv4Addr>().is_ok() && !s.starts_with('*')) || dns_name(host)
    };
    if ok { Ok(()) } else { Err(RULE.to_owned()) }
}

/// An HTTP token character (RFC 9110 `tchar`).
fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A `method` match: an uppercase token.
pub fn method(s: &str) -> Result<(), String> {
    if !s.is_empty() && s.bytes().all(tchar) && !s.bytes().any(|b| b.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err("expected an uppercase method token such as \"GET\"".to_owned())
    }
}

/// A header name: a non-empty token.
pub fn header_name(s: &str) -> Result<(), String> {
    if !s.is_empty() && s.bytes().all(tchar) {
        Ok(())
    } else {
        Err("expected a header name (an HTTP token)".to_owned())
    }
}

/// A header value: visible ASCII, spaces and tabs, no leading or trailing blank.
pub fn header_value(s: &str) -> Result<(), String> {
    let ok = s.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        && !s.starts_with([' ', '\t'])
        && !s.ends_with([' ', '\t']);
    if ok {
        Ok(())
    } else {
        Err("expected a header value of visible ASCII characters".to_owned())
    }
}

/// The admin token: 16–256 printable ASCII characters, no spaces.
pub fn token(s: &str) -> Result<(), String> {
    let ok = (16..=256).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected 16 to 256 printable ASCII characters without spaces ({} characters given)",
            s.chars().count()
        ))
    }
}

/// Whether two listen addresses would take the same socket: the same port (not 0) and
/// the same IP, or an unspecified IP of the same family on either side.
pub fn addrs_clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_charset_and_length() {
        assert!(name("api-backend.v2_x").is_ok());
        assert!(name("").is_err());
        assert!(name("has space").is_err());
        assert!(name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn target_addresses_need_a_port_and_a_valid_host() {
        assert!(target_addr("10.0.0.1:80").is_ok());
        assert!(target_addr("[::1]:8080").is_ok());
        assert!(target_addr("backend.internal:8080").is_ok());
        assert!(target_addr("10.0.0.1").is_err());
        assert!(target_addr("10.0.0.1:0").is_err());
        assert!(target_addr("10.0.0.1:65536").is_err());
        assert!(target_addr("::1:80").is_err());
        assert!(target_addr("bad_host:80").is_err());
        assert!(target_addr("10.0.0.300:80").is_err());
    }

    #[test]
    fn listen_addresses_are_ip_and_port_only() {
        assert!(listen_addr("0.0.0.0:0").is_ok());
        assert!(listen_addr("[::]:8080").is_ok());
        assert!(listen_addr("localhost:8080").is_err());
        assert!(listen_addr("127.0.0.1").is_err());
    }

    #[test]
    fn match_conditions_follow_their_rules() {
        assert!(match_host("*.example.com").is_ok());
        assert!(match_host("api.example.com").is_ok());
        assert!(match_host("10.0.0.1").is_ok());
        assert!(match_host("Example.com").is_err());
        assert!(match_host("example.com:8080").is_err());
        assert!(match_host("*.10.0.0.1").is_err());
        assert!(method("GET").is_ok());
        assert!(method("get").is_err());
        assert!(header_name("X-Api-Key").is_ok());
        assert!(header_name("X Api").is_err());
        assert!(path("/api").is_ok());
        assert!(path("api").is_err());
        assert!(path("/a?b").is_err());
    }

    #[test]
    fn clashing_addresses_are_detected() {
        let a: SocketAddr = "0.0.0.0:8080".parse().unwrap_or_else(|e| panic!("{e}"));
        let b: SocketAddr = "127.0.0.1:8080".parse().unwrap_or_else(|e| panic!("{e}"));
        let c: SocketAddr = "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(addrs_clash(a, b));
        assert!(!addrs_clash(c, c));
    }
}
