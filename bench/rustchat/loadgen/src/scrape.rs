//! Server `/api/v1/health/metrics` before and after a window: deltas of a few key counter
//! families (summed over labels) and the final value of key gauges.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::{Value, json};

use crate::net::{Body, Http, worker_addr};

/// Counter families reported as deltas (summed over every label set).
const COUNTERS: [&str; 8] = [
    "rustchat_http_requests_total",
    "rustchat_messages_sent_total",
    "rustchat_websocket_connections_total",
    "rustchat_websocket_disconnects_total",
    "rustchat_rate_limit_hits_total",
    "rustchat_auth_attempts_total",
    "rustchat_websocket_delivery_seconds_count",
    "rustchat_websocket_delivery_seconds_sum",
];
/// Gauges reported as their value at the end (max over label sets).
const GAUGES: [&str; 3] = [
    "rustchat_websocket_active_connections",
    "rustchat_active_users",
    "rustchat_db_pool_saturation_ratio",
];

/// Family name → summed value; `_5xx` variants for HTTP requests with a 5xx status label.
pub type Sample = BTreeMap<String, f64>;

pub fn parse(text: &str) -> Sample {
    let mut out = Sample::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = match line.rsplit_once(' ') {
            Some((s, v)) => (s, v.parse::<f64>().unwrap_or(f64::NAN)),
            None => continue,
        };
        if !value.is_finite() {
            continue;
        }
        let name = series.split('{').next().unwrap_or(series);
        if COUNTERS.contains(&name) {
            *out.entry(name.to_owned()).or_default() += value;
            if name == "rustchat_http_requests_total" && series.contains("status=\"5") {
                *out.entry(format!("{name}_5xx")).or_default() += value;
            }
        } else if GAUGES.contains(&name) {
            let e = out.entry(name.to_owned()).or_insert(f64::MIN);
            *e = e.max(value);
        }
    }
    out
}

/// Scrapes one node (None when it does not answer).
pub async fn scrape(server: SocketAddr) -> Option<Sample> {
    let mut http = Http::new(worker_addr(0xFFF0), server);
    let r = http
        .call("GET", "/api/v1/health/metrics", Body::Empty)
        .await
        .ok()?;
    (r.status == 200).then(|| parse(&String::from_utf8_lossy(&r.body)))
}

/// Deltas of counters, final gauges, and the server-side mean delivery time.
pub fn delta(before: &Sample, after: &Sample) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in after {
        let gauge = GAUGES.contains(&k.as_str());
        let x = if gauge {
            *v
        } else {
            v - before.get(k).copied().unwrap_or(0.0)
        };
        m.insert(k.clone(), json!(crate::metrics::round3(x)));
    }
    let n = m
        .get("rustchat_websocket_delivery_seconds_count")
        .and_then(Value::as_f64);
    let s = m
        .get("rustchat_websocket_delivery_seconds_sum")
        .and_then(Value::as_f64);
    if let (Some(n), Some(s)) = (n, s)
        && n > 0.0
    {
        m.insert(
            "server_delivery_mean_ms".into(),
            json!(crate::metrics::round3(s / n * 1000.0)),
        );
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_sum_over_labels_and_gauges_keep_the_max() {
        let a = parse(
            "# TYPE x counter\nrustchat_http_requests_total{route=\"/a\",status=\"200\"} 5\n\
             rustchat_http_requests_total{route=\"/a\",status=\"503\"} 1\n\
             rustchat_db_pool_saturation_ratio{pool=\"read\"} 0.5\n\
             rustchat_db_pool_saturation_ratio{pool=\"write\"} 0.25\nnot a metric\nfoo NaN\n",
        );
        assert_eq!(a["rustchat_http_requests_total"], 6.0);
        assert_eq!(a["rustchat_http_requests_total_5xx"], 1.0);
        assert_eq!(a["rustchat_db_pool_saturation_ratio"], 0.5);
        let b = parse(
            "rustchat_http_requests_total{status=\"200\"} 16\nrustchat_http_requests_total{status=\"500\"} 1\n",
        );
        let d = delta(&a, &b);
        assert_eq!(d["rustchat_http_requests_total"], 11.0);
        assert_eq!(d["rustchat_http_requests_total_5xx"], 0.0);
    }
}
