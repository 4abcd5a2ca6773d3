//! Canonical KDL v2 of an effective config (`--print-config`, `/admin/config`; spec §2.1).
//!
//! Every key is written explicitly, in the schema's order, four-space indented. Upstreams
//! show their merged `connection-pool` and `timeouts`. Paths are printed resolved
//! (absolute), so the output re-parses to the same config from any directory, and
//! printing that again gives the same bytes. The admin token is printed as
//! [`REDACTED`](super::parse::REDACTED); keys with no value (an unset `pid-file`, no
//! `health-check`, no rate limit) are left out, which is how the file says "unset".

use std::fmt::Write as _;
use std::path::Path;

use super::model::*;
use super::parse::REDACTED;

/// Renders `config` as canonical KDL v2.
pub fn print(config: &Config) -> String {
    let mut w = Writer::default();
    server(&mut w, &config.server);
    w.open("listeners");
    for l in &config.listeners {
        listener(&mut w, l);
    }
    w.close();
    limits(&mut w, &config.limits);
    pool(&mut w, &config.connection_pool);
    timeouts(&mut w, &config.timeouts);
    for u in &config.upstreams {
        upstream(&mut w, u);
    }
    for r in &config.routes {
        route(&mut w, r);
    }
    w.open("metrics");
    w.kv("address", &s(&config.metrics.address));
    w.kv("enabled", &b(config.metrics.enabled));
    w.close();
    logging(&mut w, &config.logging);
    w.open("admin");
    match &config.admin.token {
        Some(AdminToken::Inline(_)) => w.kv("token", &s(REDACTED)),
        Some(AdminToken::File { path, .. }) => w.kv("token-file", &p(path)),
        None => {}
    }
    w.close();
    w.out
}

/// Indentation-aware line writer.
#[derive(Default)]
struct Writer {
    out: String,
    depth: usize,
}

impl Writer {
    fn line(&mut self, text: &str) {
        for _ in 0..self.depth {
            self.out.push_str("    ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn kv(&mut self, key: &str, value: &str) {
        self.line(&format!("{key} {value}"));
    }

    fn open(&mut self, head: &str) {
        self.line(&format!("{head} {{"));
        self.depth += 1;
    }

    fn close(&mut self) {
        self.depth = self.depth.saturating_sub(1);
        self.line("}");
    }
}

/// A KDL v2 quoted string.
fn s(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || is_kdl_disallowed(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Code points KDL v2 forbids literally in a document (direction controls, BOM).
fn is_kdl_disallowed(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

fn p(path: &Path) -> String {
    s(&path.to_string_lossy())
}

fn b(v: bool) -> String {
    (if v { "#true" } else { "#false" }).to_owned()
}

fn server(w: &mut Writer, v: &Server) {
    w.open("server");
    w.kv("listen", &s(&v.listen));
    w.kv("worker-threads", &v.worker_threads.to_string());
    w.kv("max-connections", &v.max_connections.to_string());
    if let Some(pid) = &v.pid_file {
        w.kv("pid-file", &p(pid));
    }
    w.kv(
        "graceful-shutdown-timeout-secs",
        &v.graceful_shutdown_timeout_secs.to_string(),
    );
    w.kv(
        "client-header-timeout-secs",
        &v.client_header_timeout_secs.to_string(),
    );
    w.kv(
        "client-keepalive-timeout-secs",
        &v.client_keepalive_timeout_secs.to_string(),
    );
    w.kv(
        "client-body-timeout-secs",
        &v.client_body_timeout_secs.to_string(),
    );
    w.kv(
        "client-send-timeout-secs",
        &v.client_send_timeout_secs.to_string(),
    );
    w.kv("h2c", &b(v.h2c));
    w.kv(
        "h2-max-concurrent-streams",
        &v.h2_max_concurrent_streams.to_string(),
    );
    w.close();
}

fn listener(w: &mut Writer, l: &Listener) {
    w.open(&format!("listener {}", s(&l.name)));
    w.kv("address", &s(&l.address));
    let proto = match l.protocol {
        ListenerProtocol::Http => "http",
        ListenerProtocol::Https => "https",
    };
    w.kv("protocol", &s(proto));
    if let Some(t) = &l.tls {
        w.open("tls");
        w.kv("cert-file", &p(&t.cert_file));
        w.kv("key-file", &p(&t.key_file));
        let v = match t.min_version {
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        };
        w.kv("min-version", &s(v));
        w.close();
    }
    w.close();
}

fn limits(w: &mut Writer, l: &Limits) {
    w.open("limits");
    w.kv(
        "max-header-size-bytes",
        &l.max_header_size_bytes.to_string(),
    );
    w.kv("max-header-count", &l.max_header_count.to_string());
    w.kv("max-uri-bytes", &l.max_uri_bytes.to_string());
    w.kv("max-body-size-bytes", &l.max_body_size_bytes.to_string());
    w.kv(
        "max-total-connections",
        &l.max_total_connections.to_string(),
    );
    w.kv(
        "max-connections-per-client",
        &l.max_connections_per_client.to_string(),
    );
    w.kv(
        "max-in-flight-requests",
        &l.max_in_flight_requests.to_string(),
    );
    w.close();
}

fn pool(w: &mut Writer, v: &Pool) {
    w.open("connection-pool");
    w.kv("max-connections", &v.max_connections.to_string());
    w.kv("max-idle", &v.max_idle.to_string());
    w.kv("idle-timeout-secs", &v.idle_timeout_secs.to_string());
    w.close();
}

fn timeouts(w: &mut Writer, t: &Timeouts) {
    w.open("timeouts");
    w.kv("connect-secs", &t.connect_secs.to_string());
    w.kv("request-secs", &t.request_secs.to_string());
    w.kv("read-secs", &t.read_secs.to_string());
    w.kv("write-secs", &t.write_secs.to_string());
    w.close();
}

fn upstream(w: &mut Writer, u: &Upstream) {
    w.open(&format!("upstream {}", s(&u.name)));
    match &u.kind {
        UpstreamKind::Static(st) => static_response(w, st),
        UpstreamKind::Proxy(pu) => proxy(w, pu),
    }
    w.close();
}

fn proxy(w: &mut Writer, u: &ProxyUpstream) {
    w.open("targets");
    for t in &u.targets {
        w.open("target");
        w.kv("address", &s(&t.address));
        w.kv("weight", &t.weight.to_string());
        w.close();
    }
    w.close();
    let lb = match u.load_balancing {
        LbPolicy::RoundRobin => "round-robin",
        LbPolicy::Weighted => "weighted",
        LbPolicy::LeastConnections => "least-connections",
        LbPolicy::P2c => "p2c",
        LbPolicy::IpHash => "ip-hash",
    };
    w.kv("load-balancing", &s(lb));
    let proto = match u.protocol {
        UpstreamProtocol::Http1 => "http1",
        UpstreamProtocol::H2c => "h2c",
    };
    w.kv("protocol", &s(proto));
    if let Some(hc) = &u.health_check {
        w.open("health-check");
        match &hc.probe {
            Probe::Tcp => w.kv("type", &s("tcp")),
            Probe::Http {
                path,
                expected_status,
                host,
            } => {
                w.open(&format!("type {}", s("http")));
                w.kv("path", &s(path));
                let codes: Vec<String> = expected_status.iter().map(u16::to_string).collect();
                w.kv("expected-status", &codes.join(" "));
                if let Some(h) = host {
                    w.kv("host", &s(h));
                }
                w.close();
            }
        }
        w.kv("interval-secs", &hc.interval_secs.to_string());
        w.kv("timeout-secs", &hc.timeout_secs.to_string());
        w.kv("healthy-threshold", &hc.healthy_threshold.to_string());
        w.kv("unhealthy-threshold", &hc.unhealthy_threshold.to_string());
        w.close();
    }
    let ph = &u.passive_health;
    w.open("passive-health");
    w.kv("enabled", &b(ph.enabled));
    w.kv("window", &ph.window.to_string());
    // `{:?}` is the shortest text that parses back to the same f64 and always has a
    // fraction or exponent, so it stays a KDL float.
    w.kv("failure-ratio", &format!("{:?}", ph.failure_ratio));
    w.kv("min-requests", &ph.min_requests.to_string());
    w.kv("cooldown-secs", &ph.cooldown_secs.to_string());
    w.close();
    let cb = &u.circuit_breaker;
    w.open("circuit-breaker");
    w.kv("enabled", &b(cb.enabled));
    w.kv("failure-threshold", &cb.failure_threshold.to_string());
    w.kv("success-threshold", &cb.success_threshold.to_string());
    w.kv("timeout-secs", &cb.timeout_secs.to_string());
    w.kv(
        "half-open-max-requests",
        &cb.half_open_max_requests.to_string(),
    );
    w.close();
    pool(w, &u.pool);
    timeouts(w, &u.timeouts);
}

fn static_response(w: &mut Writer, st: &StaticResponse) {
    w.open("static");
    w.kv("status", &st.status.to_string());
    match &st.body {
        StaticBody::Inline(body) => w.kv("body", &s(body)),
        StaticBody::File { path, .. } => w.kv("body-file", &p(path)),
    }
    w.kv("content-type", &s(&st.content_type));
    for (name, value) in &st.headers {
        w.kv("header", &format!("{} {}", s(name), s(value)));
    }
    w.close();
}

fn route(w: &mut Writer, r: &Route) {
    w.open(&format!("route {}", s(&r.name)));
    let prio = match r.priority {
        Priority::Low => "low",
        Priority::Normal => "normal",
        Priority::High => "high",
        Priority::Critical => "critical",
    };
    w.kv("priority", &s(prio));
    let m = &r.matches;
    w.open("matches");
    for (key, list) in [
        ("path", &m.path),
        ("path-prefix", &m.path_prefix),
        ("host", &m.host),
        ("method", &m.method),
    ] {
        if !list.is_empty() {
            let vals: Vec<String> = list.iter().map(|v| s(v)).collect();
            w.kv(key, &vals.join(" "));
        }
    }
    for (name, value) in &m.header {
        match value {
            Some(v) => w.kv("header", &format!("{} {}", s(name), s(v))),
            None => w.kv("header", &s(name)),
        }
    }
    w.close();
    w.kv("upstream", &s(&r.upstream));
    let pol = &r.policies;
    w.open("policies");
    if let Some(t) = pol.timeout_secs {
        w.kv("timeout-secs", &t.to_string());
    }
    let mode = match pol.failure_mode {
        FailureMode::Closed => "closed",
        FailureMode::Open => "open",
    };
    w.kv("failure-mode", &s(mode));
    w.kv("retries", &pol.retries.to_string());
    if let Some(rl) = &pol.rate_limit {
        w.open("rate-limit");
        w.kv("requests-per-second", &rl.requests_per_second.to_string());
        w.kv("burst", &rl.burst.to_string());
        match &rl.key {
            RateKey::ClientIp => w.kv("key", &s("client_ip")),
            RateKey::Route => w.kv("key", &s("route")),
            RateKey::Header(h) => w.kv("key", &format!("{} {}", s("header"), s(h))),
        }
        w.kv("max-keys", &rl.max_keys.to_string());
        w.close();
    }
    w.close();
    w.close();
}

fn logging(w: &mut Writer, l: &Logging) {
    w.open("logging");
    w.kv("level", &s(&l.level));
    let format = match l.format {
        LogFormat::Json => "json",
        LogFormat::Pretty => "pretty",
    };
    w.kv("format", &s(format));
    w.kv("stdout", &b(l.stdout));
    if let Some(f) = &l.file {
        w.kv("file", &p(f));
    }
    match &l.access_log {
        AccessLog::Off => w.kv("access-log", &s("off")),
        AccessLog::Stdout => w.kv("access-log", &s("stdout")),
        AccessLog::File(f) => w.kv("access-log", &p(f)),
    }
    w.close();
}
