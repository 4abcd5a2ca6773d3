//! An in-process HTTPS origin for the live-fill tests (spec §10 harness): a tokio-rustls
//! server with an rcgen test CA and a `localhost` certificate on 127.0.0.1, counting
//! connections and requests, plus response builders for the origin behaviours the tests
//! need (redirects, chunked and stalled bodies, delays). [`Background`] runs one on its
//! own runtime for tests that drive the binary with blocking clients.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use svc_edge::config::{EdgeConfig, Mode};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub type OriginBody = BoxBody<Bytes, Infallible>;
/// Each request's path and header names, in arrival order.
pub type RequestLog = Arc<Mutex<Vec<(String, BTreeSet<String>)>>>;
pub type Handler = dyn Fn(&str, usize) -> Response<OriginBody> + Send + Sync;

/// An HTTPS origin on 127.0.0.1 with its own CA; counts connections and requests.
pub struct Origin {
    pub port: u16,
    pub ca_file: PathBuf,
    pub connections: Arc<AtomicUsize>,
    pub requests: RequestLog,
    dir: PathBuf,
}

impl Origin {
    pub async fn start(
        handler: impl Fn(&str, usize) -> Response<OriginBody> + Send + Sync + 'static,
    ) -> Origin {
        let dir = test_support::temp_dir("cas-fill");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let chain: Vec<CertificateDer<'static>> = vec![leaf.der().clone()];
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests: RequestLog = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let (conns, reqs) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                conns.fetch_add(1, Ordering::SeqCst);
                let (acceptor, handler, reqs) = (acceptor.clone(), handler.clone(), reqs.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let path = req.uri().path().to_owned();
                        let names = req
                            .headers()
                            .keys()
                            .map(|k| k.as_str().to_owned())
                            .collect();
                        let n = {
                            let mut r = reqs.lock();
                            r.push((path.clone(), names));
                            r.iter().filter(|(p, _)| *p == path).count()
                        };
                        let resp = handler(&path, n);
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Origin {
            port,
            ca_file,
            connections,
            requests,
            dir,
        }
    }

    pub fn host(&self) -> String {
        format!("localhost:{}", self.port)
    }

    pub fn requests_for(&self, path: &str) -> usize {
        self.requests
            .lock()
            .iter()
            .filter(|(p, _)| p == path)
            .count()
    }

    pub fn config(&self, cas_dir: Option<&Path>) -> EdgeConfig {
        let mut c = EdgeConfig::default();
        c.edge.mode = Mode::Live;
        c.edge.allow = vec![self.host()];
        c.edge.allow_private = true;
        c.edge.ca_file = Some(self.ca_file.clone());
        c.edge.cas_dir = cas_dir.map(Path::to_path_buf);
        c.edge.fill_backoff_base_ms = 10;
        c.edge.fill_backoff_max_ms = 40;
        c.edge.fill_timeout_secs = 10;
        c
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn full(status: u16, body: impl Into<Bytes>) -> Response<OriginBody> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

pub fn redirect(to: &str) -> Response<OriginBody> {
    let mut r = full(302, "");
    r.headers_mut().insert(
        http::header::LOCATION,
        http::HeaderValue::from_str(to).unwrap(),
    );
    r
}

/// A body of `chunks` × 1 KiB sent chunked (no Content-Length), or `partial` bytes then
/// nothing ever again with a declared length.
pub fn streamed(chunks: usize, stall_after: Option<(usize, u64)>) -> Response<OriginBody> {
    use futures_util::StreamExt;
    let frames = futures_util::stream::iter(
        (0..chunks).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![7u8; 1024])))),
    );
    let mut r = match stall_after {
        Some((partial, declared)) => {
            let head = futures_util::stream::iter([Ok::<_, Infallible>(Frame::data(Bytes::from(
                vec![1u8; partial],
            )))]);
            let mut r = Response::new(BodyExt::boxed(StreamBody::new(
                head.chain(futures_util::stream::pending()),
            )));
            r.headers_mut().insert(
                http::header::CONTENT_LENGTH,
                http::HeaderValue::from(declared),
            );
            r
        }
        None => Response::new(BodyExt::boxed(StreamBody::new(frames))),
    };
    *r.status_mut() = StatusCode::OK;
    r
}

/// `body` sent after `delay`, headers at once.
pub fn delayed(body: &'static [u8], delay: Duration) -> Response<OriginBody> {
    let frame = futures_util::stream::once(async move {
        tokio::time::sleep(delay).await;
        Ok::<_, Infallible>(Frame::data(Bytes::from_static(body)))
    });
    Response::new(BodyExt::boxed(StreamBody::new(frame)))
}

/// An [`Origin`] on a runtime of its own, for tests whose client side is blocking.
pub struct Background {
    /// The origin.
    pub origin: Origin,
    _rt: tokio::runtime::Runtime,
}

impl Background {
    /// Starts an origin answering with `handler(path, nth request for that path)`.
    pub fn start(
        handler: impl Fn(&str, usize) -> Response<OriginBody> + Send + Sync + 'static,
    ) -> Background {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let origin = rt.block_on(Origin::start(handler));
        Background { origin, _rt: rt }
    }
}

impl std::ops::Deref for Background {
    type Target = Origin;
    fn deref(&self) -> &Origin {
        &self.origin
    }
}
