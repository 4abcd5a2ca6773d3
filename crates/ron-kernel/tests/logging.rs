//! KRN-T4: JSON log lines, correlation ids and the panic hook.

mod capture;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use capture::{Capture, keys_in_order};
use http::{Request, Response};
use ron_kernel::logging::{self, FieldLayout, LogConfig};
use ron_kernel::{CorrIdConfig, CorrIdLayer};
use tower_layer::Layer;
use tower_service::Service;

/// A handler that logs inside the request and answers 200.
#[derive(Clone)]
struct Handler;

impl Service<Request<()>> for Handler {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<String>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<()>) -> Self::Future {
        Box::pin(async move {
            tracing::info!(path = %req.uri().path(), status = 200u16, cached = false, "request handled");
            Ok(Response::new(String::from("ok")))
        })
    }
}

fn config(layout: FieldLayout) -> LogConfig {
    LogConfig {
        fields: layout,
        ..LogConfig::new("svc-test").static_field("node_id", "n1")
    }
}

async fn serve_one(header: Option<&str>) -> String {
    let mut svc = CorrIdLayer::new(CorrIdConfig::default()).layer(Handler);
    let mut req = Request::builder().uri("/demo");
    if let Some(h) = header {
        req = req.header("x-corr-id", h);
    }
    let resp = svc.call(req.body(()).unwrap()).await.unwrap();
    resp.headers()["x-corr-id"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_line_is_json_starting_with_ts_level_message_service() {
    let (out, sub, _h) = Capture::subscriber(&config(FieldLayout::Flat));
    let _guard = tracing::subscriber::set_default(sub);
    tracing::info!("plain");
    tracing::warn!(answer = 42, ratio = 0.5, "typed");
    serve_one(None).await;
    let lines = out.lines();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        let keys = keys_in_order(line);
        assert_eq!(
            keys[..5],
            ["ts", "level", "message", "service", "node_id"],
            "{line}"
        );
        assert_eq!(keys.last().map(String::as_str), Some("target"), "{line}");
    }
    let typed = &out.with_message("typed")[0];
    assert_eq!(typed["answer"], 42);
    assert_eq!(typed["ratio"], 0.5);
    assert_eq!(typed["level"], "WARN");
    assert_eq!(typed["service"], "svc-test");
}

#[tokio::test]
async fn flat_layout_puts_corr_id_from_the_response_header_and_fields_at_top_level() {
    let (out, sub, _h) = Capture::subscriber(&config(FieldLayout::Flat));
    let _guard = tracing::subscriber::set_default(sub);
    let echoed = serve_one(Some("abc-1")).await;
    assert_eq!(echoed, "abc-1");
    let generated = serve_one(Some("not valid")).await;
    assert_eq!(generated.len(), 26);
    let lines = out.lines();
    let handled = out.with_message("request handled");
    assert_eq!(handled.len(), 2);
    assert_eq!(handled[0]["corr_id"], "abc-1");
    assert_eq!(handled[1]["corr_id"], generated.as_str());
    assert_eq!(handled[0]["path"], "/demo");
    assert_eq!(handled[0]["status"], 200);
    assert_eq!(handled[0]["cached"], false);
    assert_eq!(
        keys_in_order(&lines[0]),
        [
            "ts", "level", "message", "service", "node_id", "corr_id", "path", "status", "cached",
            "target"
        ]
    );
}

#[tokio::test]
async fn nested_layout_puts_event_fields_under_fields() {
    let (out, sub, _h) = Capture::subscriber(&config(FieldLayout::Nested));
    let _guard = tracing::subscriber::set_default(sub);
    let id = serve_one(None).await;
    let line = &out.lines()[0];
    assert_eq!(
        keys_in_order(line),
        [
            "ts", "level", "message", "service", "node_id", "corr_id", "fields", "target"
        ]
    );
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["corr_id"], id.as_str());
    assert_eq!(v["fields"]["path"], "/demo");
    assert_eq!(v["fields"]["status"], 200);
}

#[tokio::test]
async fn hoisted_fields_sit_at_top_level_and_spans_are_written_innermost_first() {
    let cfg = LogConfig {
        hoisted: vec!["ip".into()],
        spans: true,
        ..config(FieldLayout::Nested)
    };
    let (out, sub, _h) = Capture::subscriber(&cfg);
    let _guard = tracing::subscriber::set_default(sub);
    let outer = tracing::info_span!("session", user_id = "u1");
    {
        let _o = outer.enter();
        // Created inside `outer`, so `outer` is its parent.
        let inner = tracing::info_span!("ws_handler", conn_id = "c7", api = "v1");
        let _i = inner.enter();
        tracing::warn!(ip = "127.0.0.1", limit = 5u32, "ws: Too many connections");
    }
    tracing::info!(ip = "10.0.0.1", "outside");
    let lines = out.lines();
    assert_eq!(
        keys_in_order(&lines[0]),
        [
            "ts", "level", "message", "service", "node_id", "ip", "fields", "span", "spans",
            "target"
        ]
    );
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["ip"], "127.0.0.1");
    assert_eq!(v["fields"], serde_json::json!({"limit": 5}));
    assert_eq!(
        v["span"],
        serde_json::json!({"name": "ws_handler", "conn_id": "c7", "api": "v1"})
    );
    assert_eq!(v["spans"][0]["name"], "session");
    assert_eq!(v["spans"][1]["name"], "ws_handler");
    let v: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert!(v.get("span").is_none(), "no span outside any span");
    assert_eq!(v["ip"], "10.0.0.1");
}

// A library asking `tracing::enabled!` about a disabled callsite (sqlx does for PostgreSQL
// notices) must not cost the next enabled event on that thread its line.
#[test]
fn an_enabled_probe_for_a_disabled_callsite_does_not_swallow_the_next_event() {
    let (out, sub, _h) = Capture::subscriber(&config(FieldLayout::Nested));
    let _guard = tracing::subscriber::set_default(sub);
    for i in 0..3 {
        assert!(!tracing::enabled!(target: "sqlx::query", tracing::Level::DEBUG));
        tracing::info!(i, "after probe");
    }
    assert_eq!(out.lines().len(), 3, "{:?}", out.lines());
}

#[tokio::test]
async fn lines_outside_a_request_have_no_corr_id() {
    let (out, sub, _h) = Capture::subscriber(&config(FieldLayout::Flat));
    let _guard = tracing::subscriber::set_default(sub);
    tracing::info!("startup");
    assert!(out.json()[0].get("corr_id").is_none());
}

#[tokio::test]
async fn handler_panic_is_logged_and_the_process_lives_on() {
    logging::install_panic_hook();
    let (out, sub, _h) = Capture::subscriber(&config(FieldLayout::Flat));
    let _guard = tracing::subscriber::set_default(sub);
    let joined = tokio::spawn(async {
        let span = tracing::info_span!("request", corr_id = "p-1");
        let _g = span.enter();
        panic!("handler exploded");
    })
    .await;
    assert!(joined.unwrap_err().is_panic());
    tracing::info!("still serving");
    let panics = out.with_message(logging::PANIC_MESSAGE);
    assert_eq!(panics.len(), 1, "{:?}", out.lines());
    let p = &panics[0];
    assert_eq!(p["level"], "ERROR");
    assert_eq!(p["payload"], "handler exploded");
    assert_eq!(p["corr_id"], "p-1");
    assert!(
        p["location"]
            .as_str()
            .unwrap()
            .contains("tests/logging.rs:"),
        "{p}"
    );
    assert_eq!(out.with_message("still serving").len(), 1);
}

#[test]
fn a_bad_default_filter_is_a_config_error_naming_it() {
    let cfg = LogConfig {
        default_filter: "=[".into(),
        ..LogConfig::new("svc")
    };
    let err = logging::subscriber(&cfg, Capture::default())
        .err()
        .expect("must fail");
    assert!(
        err.to_string().starts_with(r#"default_filter = "=[""#),
        "{err}"
    );
}
