//! MET-T18: the exposer mounted in a host's axum router.

mod support;

use std::net::SocketAddr;

use axum::Router;
use ron_kernel::{CorrIdConfig, CorrIdLayer, HealthState};
use ron_metrics::MountOptions;
use support::{blocking, expfmt};
use test_support::{get, http_raw, request};

async fn host(
    mount: MountOptions,
    with_corr_layer: bool,
) -> (SocketAddr, std::sync::Arc<ron_metrics::Metrics>) {
    let m = support::metrics();
    m.registry()
        .counter_vec("host_posts_total", "Posts created by the host.", &["team"])
        .unwrap()
        .with_label_values(&["core"])
        .inc_by(7);
    let health = HealthState::new();
    health.set("db", true);
    let mut app: Router = Router::new()
        .route("/host", axum::routing::get(|| async { "host" }))
        .merge(m.router(health, mount));
    if with_corr_layer {
        app = app.layer(CorrIdLayer::new(CorrIdConfig {
            header: http::HeaderName::from_static("x-request-id"),
            punct: "._-",
            max_len: 64,
        }));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounted_metrics_path_serves_host_families_with_base_labels_first() {
    let mount = MountOptions {
        metrics: Some("/api/v1/health/metrics".into()),
        healthz: None,
        readyz: None,
        ..MountOptions::default()
    };
    let (addr, _m) = host(mount, false).await;
    let (ok, post, unmounted, host_route) = blocking(move || {
        (
            get(addr, "/api/v1/health/metrics", &[]),
            http_raw(
                addr,
                request("POST", "/api/v1/health/metrics", &["Content-Length: 0"]).as_bytes(),
                false,
            )
            .unwrap(),
            get(addr, "/metrics", &[]),
            get(addr, "/host", &[]),
        )
    })
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(ok.header("cache-control"), Some("no-store"));
    let t = ok.text();
    expfmt::check(&t, false).unwrap_or_else(|e| panic!("{e}"));
    assert!(t.contains(r#"host_posts_total{service="svc-test",instance="node-1",build_version=""#));
    assert!(t.contains(r#",amnesia="off",team="core"} 7"#));
    assert!(t.contains("route=\"/api/v1/health/metrics\",method=\"GET\""));
    assert!(t.contains("health_ready{") && t.contains("check=\"db\"} 1"));
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    assert_eq!(unmounted.status, 404, "the host decides other paths");
    assert!(
        !unmounted.text().contains("not_found"),
        "not the exposer's 404"
    );
    assert_eq!(host_route.text(), "host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_corr_id_layer_wins_over_the_exposer_header() {
    let mount = MountOptions {
        corr_header: http::HeaderName::from_static("x-request-id"),
        ..MountOptions::default()
    };
    let (addr, _m) = host(mount, true).await;
    let r = blocking(move || get(addr, "/healthz", &["X-Request-Id: host.id-7"])).await;
    assert_eq!(r.text(), "ok");
    assert_eq!(r.header("x-request-id"), Some("host.id-7"));
    let r = blocking(move || {
        http_raw(
            addr,
            request("DELETE", "/readyz", &["X-Request-Id: del-1"]).as_bytes(),
            false,
        )
        .unwrap()
    })
    .await;
    assert_eq!(r.status, 405);
    assert!(r.text().contains("\"corr_id\":\"del-1\""));
}
