//! Content negotiation for `/metrics`: `Accept` picks text 0.0.4 or OpenMetrics 1.0.0,
//! `Accept-Encoding` decides gzip. Anything malformed or unusable falls back to text and
//! identity: a scrape is never refused for its headers.

use crate::Format;

/// The format chosen for an `Accept` header value (or its absence).
pub fn choose_format(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Text004;
    };
    let mut best_text = 0.0f32;
    let mut best_om = 0.0f32;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut q = 1.0f32;
        let mut version: Option<String> = None;
        let mut malformed = false;
        for p in parts {
            let Some((k, v)) = p.split_once('=') else {
                malformed = !p.is_empty();
                continue;
            };
            let v = v.trim().trim_matches('"');
            match k.trim().to_ascii_lowercase().as_str() {
                "q" => match v.parse::<f32>() {
                    Ok(x) if (0.0..=1.0).contains(&x) => q = x,
                    _ => malformed = true,
                },
                "version" => version = Some(v.to_owned()),
                _ => {}
            }
        }
        if malformed || q <= 0.0 {
            continue;
        }
        let v = version.as_deref();
        match media.as_str() {
            "application/openmetrics-text" if matches!(v, None | Some("1.0.0" | "0.0.1")) => {
                best_om = best_om.max(q)
            }
            "text/plain" if matches!(v, None | Some("0.0.4" | "1.0.0")) => {
                best_text = best_text.max(q)
            }
            "text/*" | "*/*" => best_text = best_text.max(q),
            _ => {}
        }
    }
    // Ties go to text.
    if best_om > best_text {
        Format::OpenMetrics100
    } else {
        Format::Text004
    }
}

/// Whether `Accept-Encoding` offers gzip (or `*`) with q > 0.
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accepts_coding(accept_encoding, "gzip")
}

/// Whether `Accept-Encoding` offers content coding `token` (lower case) with q > 0, or `*`
/// with q > 0 when `token` is not listed; `x-gzip` counts as `gzip`. No header offers
/// nothing (identity only).
pub fn accepts_coding(accept_encoding: Option<&str>, token: &str) -> bool {
    let Some(ae) = accept_encoding else {
        return false;
    };
    let mut exact: Option<bool> = None;
    let mut star = false;
    for item in ae.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("").to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map(|(_, v)| v.trim().parse::<f32>().unwrap_or(0.0))
            .unwrap_or(1.0);
        let coding = if coding == "x-gzip" {
            "gzip"
        } else {
            coding.as_str()
        };
        if coding == token {
            exact = Some(q > 0.0);
        } else if coding == "*" {
            star = q > 0.0;
        }
    }
    exact.unwrap_or(star)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROM3_DEFAULT: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

    #[test]
    fn prometheus3_default_accept_gets_openmetrics() {
        assert_eq!(choose_format(Some(PROM3_DEFAULT)), Format::OpenMetrics100);
    }

    #[test]
    fn curl_garbage_protobuf_and_ties_get_text() {
        for a in [
            None,
            Some("*/*"),
            Some("garbage;;;=="),
            Some(
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
            ),
            Some("application/openmetrics-text, text/plain"),
            Some("application/openmetrics-text;q=0"),
            Some("application/openmetrics-text;version=9.9.9"),
            Some("application/openmetrics-text;q=abc"),
        ] {
            assert_eq!(choose_format(a), Format::Text004, "{a:?}");
        }
        assert_eq!(
            choose_format(Some(
                "Application/OpenMetrics-Text; Version=1.0.0 ; Q=0.9, text/plain;q=0.5"
            )),
            Format::OpenMetrics100
        );
    }

    #[test]
    fn gzip_offers_are_read_with_q_values() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("br, gzip;q=0.5")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("gzip;q=0, *")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }
}
