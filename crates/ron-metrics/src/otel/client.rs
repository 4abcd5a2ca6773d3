//! The two OTLP transports over one hyper client stack: OTLP/gRPC through tonic's generic
//! unary client (its own channel and the OTel SDK exporters are not compiled) and OTLP
//! HTTP/protobuf as a plain POST.
//!
//! Errors are sorted so the exporter can decide the bare `host:port` fallback: a failure to
//! connect (or a timeout) says nothing about the protocol, while a peer that answered with
//! something other than gRPC is a protocol error.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::{ConfigBuilderExt, HttpsConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;

use super::endpoint::OtelEndpoint;

/// gRPC method of the OTLP metrics service.
const GRPC_EXPORT_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
/// Content type of OTLP HTTP/protobuf requests.
pub const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";
/// Largest collector response body read (it is only drained, so the connection is reused).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

type Connector = HttpsConnector<HttpConnector>;

/// Why one export failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExportError {
    /// No connection could be made (refused, unreachable, DNS, TLS handshake).
    #[error("connect: {0}")]
    Connect(String),
    /// The export did not finish within the timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The peer answered, but not in the protocol spoken to it.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The collector answered in protocol and refused the export.
    #[error("rejected: {0}")]
    Rejected(String),
}

impl ExportError {
    /// Whether the peer was reached and answered (so the first-export fallback is decided).
    pub(crate) fn reached_peer(&self) -> bool {
        matches!(self, ExportError::Protocol(_) | ExportError::Rejected(_))
    }
}

/// Both transports to one endpoint; cheap to clone.
#[derive(Clone)]
pub(crate) struct OtlpClient {
    grpc: tonic::client::Grpc<GrpcConn>,
    http: Client<Connector, Full<Bytes>>,
    http_url: Uri,
    authorization: Option<HeaderValue>,
}

/// The hyper HTTP/2 client, refusing responses that are not gRPC before tonic reads them,
/// so "answered, but not gRPC" stays distinguishable from a gRPC status.
#[derive(Clone)]
struct GrpcConn(Client<Connector, tonic::body::Body>);

/// A response that is not gRPC (wrong status or content type).
#[derive(Debug, thiserror::Error)]
#[error("not a gRPC response: HTTP {status}, content-type {content_type:?}")]
struct NotGrpc {
    status: u16,
    content_type: String,
}

impl OtlpClient {
    /// Builds the clients; fails only when TLS is wanted and no CA certificates load.
    pub(crate) fn new(endpoint: &OtelEndpoint) -> Result<OtlpClient, String> {
        let tls = tls_config(endpoint.tls)?;
        let h2 = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_http2()
            .build();
        let h1 = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let grpc_client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(h2);
        Ok(OtlpClient {
            grpc: tonic::client::Grpc::with_origin(GrpcConn(grpc_client), endpoint.origin.clone()),
            http: Client::builder(TokioExecutor::new()).build(h1),
            http_url: endpoint.http_url.clone(),
            authorization: endpoint.authorization.clone(),
        })
    }

    /// One OTLP/gRPC `Export` call.
    pub(crate) async fn export_grpc(
        &self,
        req: &ExportMetricsServiceRequest,
    ) -> Result<(), ExportError> {
        let mut grpc = self.grpc.clone();
        grpc.ready()
            .await
            .map_err(|e| ExportError::Connect(e.to_string()))?;
        let mut request = tonic::Request::new(req.clone());
        if let Some(auth) = &self.authorization {
            let value =
                tonic::metadata::MetadataValue::try_from(auth.as_bytes()).map_err(bad_auth)?;
            request.metadata_mut().insert("authorization", value);
        }
        let codec = tonic_prost::ProstCodec::<
            ExportMetricsServiceRequest,
            ExportMetricsServiceResponse,
        >::default();
        grpc.unary(request, PathAndQuery::from_static(GRPC_EXPORT_PATH), codec)
            .await
            .map(drop)
            .map_err(classify_status)
    }

    /// One OTLP HTTP/protobuf POST.
    pub(crate) async fn export_http(
        &self,
        req: &ExportMetricsServiceRequest,
    ) -> Result<(), ExportError> {
        let mut builder =
            Request::post(self.http_url.clone()).header(CONTENT_TYPE, CONTENT_TYPE_PROTOBUF);
        if let Some(auth) = &self.authorization {
            builder = builder.header(AUTHORIZATION, auth.clone());
        }
        let request = builder
            .body(Full::new(Bytes::from(req.encode_to_vec())))
            .map_err(|e| ExportError::Protocol(e.to_string()))?;
        let response = self.http.request(request).await.map_err(|e| {
            if e.is_connect() {
                ExportError::Connect(chain(&e))
            } else {
                ExportError::Protocol(chain(&e))
            }
        })?;
        let status = response.status();
        // Drain (bounded) so the pooled connection can carry the next export.
        let _ = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await;
        if status.is_success() {
            Ok(())
        } else {
            Err(ExportError::Rejected(format!("HTTP {status}")))
        }
    }
}

impl tower_service::Service<Request<tonic::body::Body>> for GrpcConn {
    type Response = Response<Incoming>;
    type Error = Box<dyn StdError + Send + Sync>;
    type Future =
        Pin<Box<dyn Future<Output = Result<Response<Incoming>, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The pooled client is always ready; it connects per request.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<tonic::body::Body>) -> Self::Future {
        let response = self.0.request(req);
        Box::pin(async move {
            let response = response.await?;
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if response.status() != http::StatusCode::OK
                || !content_type.starts_with("application/grpc")
            {
                return Err(NotGrpc {
                    status: response.status().as_u16(),
                    content_type: content_type.to_owned(),
                }
                .into());
            }
            Ok(response)
        })
    }
}

/// TLS settings with the system's CA store (honouring `SSL_CERT_FILE`/`SSL_CERT_DIR`),
/// loaded only when the endpoint uses TLS; plaintext endpoints never consult it.
fn tls_config(tls: bool) -> Result<rustls::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?;
    if !tls {
        return Ok(builder
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth());
    }
    builder
        .with_native_roots()
        .map(|b| b.with_no_client_auth())
        .map_err(|e| {
            format!(
                "no usable CA certificates for TLS ({e}); install ca-certificates or set SSL_CERT_FILE"
            )
        })
}

/// Sorts a tonic failure: our [`NotGrpc`] or a hyper failure after connecting means the
/// peer does not speak gRPC; a failed connect is a connection error; a status without
/// such a cause came from a gRPC server.
fn classify_status(status: tonic::Status) -> ExportError {
    let mut source = status.source();
    while let Some(e) = source {
        if e.is::<NotGrpc>() {
            return ExportError::Protocol(e.to_string());
        }
        if let Some(client) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            return if client.is_connect() {
                ExportError::Connect(chain(client))
            } else {
                ExportError::Protocol(chain(client))
            };
        }
        if e.is::<hyper::Error>() {
            return ExportError::Protocol(chain(e));
        }
        source = e.source();
    }
    ExportError::Rejected(format!(
        "gRPC status {:?}: {}",
        status.code(),
        status.message()
    ))
}

/// The error and its causes on one line, since hyper's top-level text alone is vague.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

fn bad_auth<E>(_: E) -> ExportError {
    ExportError::Protocol("the Authorization value is not valid gRPC metadata".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_caused_by_a_non_grpc_answer_is_a_protocol_error() {
        let not_grpc = NotGrpc {
            status: 404,
            content_type: "text/html".into(),
        };
        let status = tonic::Status::from_error(Box::new(not_grpc));
        let err = classify_status(status);
        assert!(matches!(err, ExportError::Protocol(_)), "{err}");
        assert!(err.reached_peer());
    }

    #[test]
    fn a_plain_grpc_status_is_a_rejection_not_a_protocol_error() {
        let err = classify_status(tonic::Status::unavailable("busy"));
        assert!(matches!(err, ExportError::Rejected(_)), "{err}");
    }

    #[test]
    fn connection_errors_and_timeouts_do_not_count_as_reaching_the_peer() {
        assert!(!ExportError::Connect("refused".into()).reached_peer());
        assert!(!ExportError::Timeout(Duration::from_secs(5)).reached_peer());
    }
}
