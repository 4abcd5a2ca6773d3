//! sentinel-proxy's request-head handling. Any bytes the HTTP/1 parser hyper uses
//! (httparse) accepts as a request head, and `http` accepts as a request, go through what
//! sentinel does with a head before forwarding it: the SEN-R14 checks, host extraction,
//! route matching against the shipped sample config, the hop-by-hop strip, X-Forwarded-*
//! and the correlation id. None may panic, and a head that passes the checks must leave
//! with no hop-by-hop header and nothing its `Connection` named (no smuggled framing), one
//! `X-Forwarded-Proto`, and a correlation id of 1-128 safe characters.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Version};
use libfuzzer_sys::fuzz_target;
use sentinel::routing::{RequestFacts, RouteTable};

static ROUTES: LazyLock<RouteTable> = LazyLock::new(|| {
    let text = include_str!("../../crates/sentinel/config/sentinel.kdl");
    let (cfg, _) = sentinel::config::parse_str(text, Path::new("sentinel.kdl"))
        .expect("the shipped sample config parses");
    RouteTable::build(&cfg.routes).0
});

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
];

fuzz_target!(|data: &[u8]| {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut slots);
    let Ok(httparse::Status::Complete(_)) = parsed.parse(data) else {
        return;
    };
    let (Some(method), Some(path), Some(minor)) = (parsed.method, parsed.path, parsed.version)
    else {
        return;
    };
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .version(if minor == 0 { Version::HTTP_10 } else { Version::HTTP_11 });
    for h in parsed.headers.iter() {
        b = b.header(h.name, h.value);
    }
    // What hyper would refuse with 400 before sentinel sees it.
    let Ok(req) = b.body(()) else { return };

    if sentinel::proxy::check_request(&req, 8192, 1 << 20).is_err() {
        return;
    }
    let host = sentinel::proxy::request_host(&req);
    let _ = ROUTES.find(&RequestFacts {
        host: host.as_deref(),
        path: req.uri().path(),
        method: req.method(),
        headers: req.headers(),
    });

    let named: Vec<HeaderName> = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    let mut headers = req.headers().clone();
    sentinel::forward::strip_hop_by_hop(&mut headers, false, false);
    for h in HOP_BY_HOP {
        assert!(!headers.contains_key(h), "{h} forwarded: {headers:?}");
    }
    for n in &named {
        assert!(!headers.contains_key(n), "{n} (named in Connection) forwarded");
    }
    let client = sentinel::forward::client_entry("127.0.0.1".parse().unwrap());
    let authority = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    sentinel::forward::set_forwarded(&mut headers, &client, false, authority);
    assert_eq!(headers.get_all("x-forwarded-proto").iter().count(), 1);
    let corr: HeaderValue = sentinel::forward::correlation_id(&headers);
    let c = corr.as_bytes();
    assert!(
        !c.is_empty()
            && c.len() <= 128
            && c.iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')),
        "correlation id {corr:?}"
    );
    sentinel::forward::set_correlation(&mut headers, &corr);
});
