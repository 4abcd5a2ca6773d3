//! OTLP push against fake collectors started here on 127.0.0.1:0 (MET-T23): a gRPC
//! collector (hyper HTTP/2 decoding the gRPC frame with prost), an HTTP/protobuf collector,
//! and one that accepts and never answers.
#![cfg(feature = "otel")]

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric, number_data_point};
use prost::Message;
use ron_metrics::{EnvSource, Format, Metrics, RESOURCE_ATTRIBUTES};
use support::{blocking, start_with};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Longest wait for a collector to see an export; generous, never a timing assertion.
const WAIT: Duration = Duration::from_secs(30);
/// Snapshot interval used here instead of the 10 s default.
const INTERVAL: Duration = Duration::from_millis(50);

/// What a fake collector saw in one request.
struct Seen {
    path: String,
    content_type: String,
    authorization: Option<String>,
    request: ExportMetricsServiceRequest,
}

/// Every log line of this test binary, captured by the kernel's JSON subscriber.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = logs.clone();
        let config = ron_kernel::logging::LogConfig::new("otel-test");
        let (subscriber, _) =
            ron_kernel::logging::subscriber(&config, move || writer.clone()).unwrap();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
}

/// Captured lines whose message is `message` and which mention `needle`.
fn log_lines(message: &str, needle: &str) -> Vec<serde_json::Value> {
    String::from_utf8(logs().0.lock().unwrap().clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["message"] == message && v.to_string().contains(needle))
        .collect()
}

fn metrics_for(endpoint: &str) -> Arc<Metrics> {
    Metrics::builder()
        .env(EnvSource::fixed([("RON_OTEL_ENDPOINT", endpoint)]))
        .service("svc-otel")
        .instance("node-7")
        .amnesia(true)
        .otel_interval(INTERVAL)
        .build()
        .expect("metrics")
}

/// A gRPC collector: answers every `Export` with an empty response and `grpc-status: 0`.
async fn grpc_collector() -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            let svc = service_fn(move |req: Request<Incoming>| {
                let tx = tx.clone();
                async move {
                    let (head, mut body) = read(req).await;
                    // gRPC frame: compressed flag, big-endian length, message.
                    assert_eq!(body.get_u8(), 0, "uncompressed frame");
                    let len = body.get_u32() as usize;
                    assert_eq!(len, body.len());
                    let request = ExportMetricsServiceRequest::decode(body).unwrap();
                    let _ = tx.send(Seen {
                        path: head.path,
                        content_type: head.content_type,
                        authorization: head.authorization,
                        request,
                    });
                    Ok::<_, Infallible>(grpc_ok())
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, rx)
}

type GrpcBody =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

fn grpc_ok() -> Response<GrpcBody> {
    let msg = ExportMetricsServiceResponse::default().encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    let frames = vec![
        Ok(Frame::data(Bytes::from(frame))),
        Ok(Frame::trailers(trailers)),
    ];
    Response::builder()
        .header("content-type", "application/grpc")
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .unwrap()
}

/// An OTLP HTTP/protobuf collector (HTTP/1.1): records and answers 200.
async fn http_collector() -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            let svc = service_fn(move |req: Request<Incoming>| {
                let tx = tx.clone();
                async move {
                    let is_post = req.method() == http::Method::POST;
                    let (head, body) = read(req).await;
                    if is_post && let Ok(request) = ExportMetricsServiceRequest::decode(body) {
                        let _ = tx.send(Seen {
                            path: head.path,
                            content_type: head.content_type,
                            authorization: head.authorization,
                            request,
                        });
                    }
                    let reply = ExportMetricsServiceResponse::default().encode_to_vec();
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "application/x-protobuf")
                            .body(Full::new(Bytes::from(reply)))
                            .unwrap(),
                    )
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, rx)
}

/// The parts of a request head the collectors check.
struct Head {
    path: String,
    content_type: String,
    authorization: Option<String>,
}

async fn read(req: Request<Incoming>) -> (Head, Bytes) {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let head = Head {
        path: req.uri().path().to_owned(),
        content_type: header("content-type").unwrap_or_default(),
        authorization: header("authorization"),
    };
    let body = req.into_body().collect().await.unwrap().to_bytes();
    (head, body)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the collector saw no export")
        .expect("collector alive")
}

fn attr(kvs: &[KeyValue], key: &str) -> String {
    let v = kvs
        .iter()
        .find(|k| k.key == key)
        .unwrap_or_else(|| panic!("no {key}"));
    match v.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        other => panic!("{key}: {other:?}"),
    }
}

fn find<'a>(req: &'a ExportMetricsServiceRequest, name: &str) -> &'a Metric {
    req.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

/// `series → value` for every sample line of the text exposition.
fn prometheus_samples(m: &Metrics) -> HashMap<String, f64> {
    let mut out = Vec::new();
    m.encode(None, Format::Text004, &mut out);
    String::from_utf8(out)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// The text series name for `name` with the base labels and then `own` labels.
fn series(m: &Metrics, name: &str, own: &[KeyValue], le: Option<&str>) -> String {
    let b = m.base_labels();
    let mut s = format!(
        "{name}{{service=\"{}\",instance=\"{}\",build_version=\"{}\",amnesia=\"{}\"",
        b.service,
        b.instance,
        b.build_version,
        b.amnesia_str()
    );
    for kv in own {
        s.push_str(&format!(",{}=\"{}\"", kv.key, attr(own, &kv.key)));
    }
    if let Some(le) = le {
        s.push_str(&format!(",le=\"{le}\""));
    }
    s.push('}');
    s
}

fn scalar_points(metric: &Metric) -> Vec<(&[KeyValue], f64)> {
    let points = match metric.data.as_ref().unwrap() {
        metric::Data::Sum(s) => {
            assert!(s.is_monotonic, "{}", metric.name);
            &s.data_points
        }
        metric::Data::Gauge(g) => &g.data_points,
        other => panic!("{}: {other:?}", metric.name),
    };
    points
        .iter()
        .map(|p| match p.value {
            Some(number_data_point::Value::AsDouble(v)) => (p.attributes.as_slice(), v),
            other => panic!("{}: {other:?}", metric.name),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_export_carries_base_labels_as_resource_and_the_prometheus_values() {
    let (addr, mut rx) = grpc_collector().await;
    let m = metrics_for(&format!("grpc://{addr}"));
    let jobs = m
        .registry()
        .counter_vec("jobs_total", "Jobs done.", &["kind"])
        .unwrap();
    jobs.with_label_values(&["a"]).inc_by(7);
    jobs.with_label_values(&["b"]).inc_by(11);
    m.registry()
        .gauge("temperature_celsius", "Temperature.")
        .unwrap()
        .set(21.5);
    let h = m
        .registry()
        .histogram("work_seconds", "Work time.", &[0.1, 1.0])
        .unwrap();
    for v in [0.05, 0.5, 0.7, 3.0] {
        h.observe(v);
    }

    // Snapshots taken before the values above were set may arrive first.
    let seen = loop {
        let seen = next(&mut rx).await;
        let work = find(&seen.request, "work_seconds");
        let Some(metric::Data::Histogram(hist)) = &work.data else {
            panic!("{work:?}")
        };
        if hist.data_points[0].count == 4
            && scalar_points(find(&seen.request, "jobs_total")).len() == 2
        {
            break seen;
        }
    };
    assert_eq!(
        seen.path,
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
    );
    assert!(
        seen.content_type.starts_with("application/grpc"),
        "{}",
        seen.content_type
    );

    let resource = seen.request.resource_metrics[0].resource.as_ref().unwrap();
    let b = m.base_labels();
    let want = [
        b.service.as_str(),
        b.instance.as_str(),
        b.build_version.as_str(),
        b.amnesia_str(),
    ];
    for (key, value) in RESOURCE_ATTRIBUTES.iter().zip(want) {
        assert_eq!(attr(&resource.attributes, key), value, "{key}");
    }
    assert_eq!(attr(&resource.attributes, "ron.amnesia"), "on");

    let prom = prometheus_samples(&m);
    for name in [
        "jobs_total",
        "temperature_celsius",
        "rejected_total",
        "otel_exports_total",
    ] {
        let metric = find(&seen.request, name);
        // otel_exports_total moves between the snapshot and this scrape; check its shape.
        let live = name == "otel_exports_total";
        for (attrs, value) in scalar_points(metric) {
            let key = series(&m, name, attrs, None);
            let text = prom.get(&key).unwrap_or_else(|| panic!("no line {key}"));
            if !live {
                assert_eq!(*text, value, "{key}");
            }
        }
    }

    let work = find(&seen.request, "work_seconds");
    let Some(metric::Data::Histogram(hist)) = &work.data else {
        panic!("{work:?}")
    };
    let p = &hist.data_points[0];
    assert_eq!(p.explicit_bounds, [0.1, 1.0]);
    let mut cumulative = 0;
    for (i, le) in ["0.1", "1.0", "+Inf"].iter().enumerate() {
        cumulative += p.bucket_counts[i];
        assert_eq!(
            prom[&series(&m, "work_seconds_bucket", &[], Some(le))],
            cumulative as f64,
            "le={le}"
        );
    }
    assert_eq!(
        prom[&series(&m, "work_seconds_count", &[], None)],
        p.count as f64
    );
    assert_eq!(
        prom[&series(&m, "work_seconds_sum", &[], None)],
        p.sum.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_export_posts_protobuf_to_v1_metrics_or_the_given_path() {
    let (addr, mut rx) = http_collector().await;
    let m = metrics_for(&format!("http://{addr}"));
    let seen = next(&mut rx).await;
    assert_eq!(seen.path, "/v1/metrics");
    assert_eq!(seen.content_type, "application/x-protobuf");
    let resource = seen.request.resource_metrics[0].resource.as_ref().unwrap();
    assert_eq!(attr(&resource.attributes, "service.name"), "svc-otel");

    let m2 = metrics_for(&format!("http://{addr}/custom/otlp"));
    let seen = loop {
        let seen = next(&mut rx).await;
        if seen.path != "/v1/metrics" {
            break seen;
        }
    };
    assert_eq!(seen.path, "/custom/otlp");
    drop((m, m2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_host_port_falls_back_to_http_when_the_peer_does_not_speak_grpc() {
    logs();
    let (addr, mut rx) = http_collector().await;
    let m = metrics_for(&format!("otel:s3cret@{addr}"));
    let seen = next(&mut rx).await;
    assert_eq!(seen.path, "/v1/metrics");
    assert_eq!(seen.content_type, "application/x-protobuf");
    // Once on HTTP it stays there: later exports succeed too.
    next(&mut rx).await;
    let lines = log_lines("otel_fallback", &addr.to_string());
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["level"], "WARN");
    assert_eq!(lines[0]["endpoint"], addr.to_string());
    assert!(!lines[0].to_string().contains("s3cret"), "{}", lines[0]);
    // The URL's credentials travel as Basic auth ("otel:s3cret").
    assert_eq!(
        seen.authorization.as_deref(),
        Some("Basic b3RlbDpzM2NyZXQ=")
    );
    let prom = prometheus_samples(&m);
    let errors = prom[&series(&m, "otel_exports_total", &[kv("result", "error")], None)];
    assert!(errors >= 1.0, "the failed gRPC attempt is counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_host_port_stays_on_grpc_when_the_peer_speaks_it() {
    let (addr, mut rx) = grpc_collector().await;
    let _m = metrics_for(&addr.to_string());
    let seen = next(&mut rx).await;
    assert!(
        seen.path.ends_with("MetricsService/Export"),
        "{}",
        seen.path
    );
    assert_eq!(seen.authorization, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_collector_drops_old_snapshots_while_scrapes_keep_answering() {
    logs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = listener.local_addr().unwrap();
    // Accepts and holds every connection without ever answering.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let m = metrics_for(&format!("http://{collector}"));
    let s = start_with(m.clone(), |o| o).await;
    let scrape_addr = s.addr;
    let dropped_key = series(&m, "otel_export_dropped_total", &[], None);
    let mut dropped = 0.0;
    for _ in 0..600 {
        let r = blocking(move || test_support::get(scrape_addr, "/metrics", &[])).await;
        assert_eq!(r.status, 200);
        let text = r.text();
        dropped = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{dropped_key} ")))
            .expect("dropped family present")
            .parse()
            .unwrap();
        if dropped >= 2.0 {
            break;
        }
        tokio::time::sleep(INTERVAL).await;
    }
    assert!(
        dropped >= 2.0,
        "otel_export_dropped_total stayed at {dropped}"
    );
    let depth_key = series(&m, "otel_export_queue_depth", &[], None);
    let depth = prometheus_samples(&m)[&depth_key];
    assert!(
        depth <= ron_metrics::OTEL_QUEUE_CAPACITY as f64,
        "depth {depth}"
    );
    // The stalled export ends in the 5 s timeout and is logged once, not per snapshot.
    let endpoint = format!("http://{collector}");
    for _ in 0..600 {
        if !log_lines("otel_export_failed", &endpoint).is_empty() {
            break;
        }
        tokio::time::sleep(INTERVAL).await;
    }
    let lines = log_lines("otel_export_failed", &endpoint);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["endpoint"], endpoint);
    assert!(
        lines[0]["error"].as_str().unwrap().contains("timed out"),
        "{}",
        lines[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_families_exist_at_zero_without_an_endpoint() {
    let m = Metrics::builder()
        .env(EnvSource::fixed::<&str, &str>([]))
        .build()
        .unwrap();
    let prom = prometheus_samples(&m);
    for (name, own) in [
        ("otel_exports_total", vec![kv("result", "ok")]),
        ("otel_exports_total", vec![kv("result", "error")]),
        ("otel_export_dropped_total", vec![]),
        ("otel_export_queue_depth", vec![]),
    ] {
        assert_eq!(prom[&series(&m, name, &own, None)], 0.0, "{name}");
    }
}

#[test]
fn an_unparseable_endpoint_is_a_config_error_naming_the_variable() {
    for raw in ["grpc://collector", "ftp://c:21", "not a url"] {
        let err = Metrics::builder()
            .env(EnvSource::fixed([("RON_OTEL_ENDPOINT", raw)]))
            .build()
            .err()
            .expect("must fail")
            .to_string();
        assert!(
            err.starts_with(&format!(
                "RON_OTEL_ENDPOINT = \"{raw}\" (env RON_OTEL_ENDPOINT): "
            )),
            "{err}"
        );
    }
    let err = Metrics::builder()
        .env(EnvSource::fixed([(
            "RON_OTEL_ENDPOINT",
            "grpc://u:secret@c",
        )]))
        .build()
        .err()
        .expect("must fail")
        .to_string();
    assert!(!err.contains("secret"), "{err}");
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.to_owned(),
        value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
            value: Some(any_value::Value::StringValue(v.to_owned())),
        }),
        ..Default::default()
    }
}
