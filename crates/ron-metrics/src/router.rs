//! Mounting the exposer in a host's axum router, or as a plain tower service.
//!
//! Mounted handlers apply the exposer's rules (GET/HEAD only, no bodies, no upgrades, the
//! same headers) on their paths; every other path is the host's business. A `CorrId`
//! placed in the request extensions by the host's `CorrIdLayer` wins over the header.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use http::{HeaderValue, Request, Response, StatusCode, header};
use ron_kernel::{CorrId, CorrIdConfig, HealthState};

use crate::Metrics;
use crate::exposer::{Exposer, Head, Reply};
use crate::options::{Endpoint, MountOptions};

/// A tower service answering one exposer endpoint.
#[derive(Clone)]
pub struct ExposerService {
    exposer: Arc<Exposer>,
    ep: Endpoint,
}

impl Metrics {
    /// An axum router with the endpoints `mount` names; merge or nest it into the host's.
    pub fn router(self: &Arc<Self>, health: Arc<HealthState>, mount: MountOptions) -> axum::Router {
        let exposer = Exposer::new(self.clone(), health, mount.clone());
        let mut router = axum::Router::new();
        for ep in [Endpoint::Metrics, Endpoint::Healthz, Endpoint::Readyz] {
            if let Some(path) = mount.path(ep) {
                let svc = ExposerService {
                    exposer: exposer.clone(),
                    ep,
                };
                router = router.route_service(path, svc);
            }
        }
        router
    }

    /// One endpoint as a tower service.
    pub fn service(
        self: &Arc<Self>,
        health: Arc<HealthState>,
        ep: Endpoint,
        mount: &MountOptions,
    ) -> ExposerService {
        ExposerService {
            exposer: Exposer::new(self.clone(), health, mount.clone()),
            ep,
        }
    }
}

impl<B: Send + 'static> tower_service::Service<Request<B>> for ExposerService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let exposer = self.exposer.clone();
        let ep = self.ep;
        Box::pin(async move {
            let (parts, _body) = req.into_parts();
            let h = &parts.headers;
            let text = |name: header::HeaderName| h.get(name).and_then(|v| v.to_str().ok());
            let corr_cfg = CorrIdConfig {
                header: exposer.mount.corr_header.clone(),
                ..CorrIdConfig::default()
            };
            let corr = parts
                .extensions
                .get::<CorrId>()
                .cloned()
                .unwrap_or_else(|| CorrId::from_header(h.get(&corr_cfg.header), &corr_cfg));
            let has_body = h.contains_key(header::TRANSFER_ENCODING)
                || text(header::CONTENT_LENGTH).is_some_and(|v| v.trim() != "0");
            let head = Head {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                accept: text(header::ACCEPT),
                accept_encoding: text(header::ACCEPT_ENCODING),
                has_body,
                upgrade: h.contains_key(header::UPGRADE),
                user_agent: text(header::USER_AGENT),
                peer: "mounted",
                corr,
            };
            let reply = exposer.handle(Some(ep), &head).await;
            Ok(to_response(reply, &exposer.mount.corr_header))
        })
    }
}

fn to_response(r: Reply, corr_header: &header::HeaderName) -> Response<Body> {
    let len = r.body.len();
    let body = if r.head_only {
        Body::empty()
    } else {
        Body::from(r.body)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(r.content_type),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(r.corr.as_str()) {
        h.insert(corr_header.clone(), v);
    }
    if r.vary {
        h.insert(
            header::VARY,
            HeaderValue::from_static("Accept, Accept-Encoding"),
        );
    }
    if r.gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if r.allow {
        h.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    if let Some(s) = r.retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    if r.close {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}
