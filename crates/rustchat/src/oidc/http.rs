//! The HTTP client rustchat uses to talk to identity providers (CHAT-R22, R30).
//!
//! It only ever fetches URLs from the configured provider (discovery document, JWKS, token
//! endpoint), so it is deliberately narrow: rustls over the system trust store (webpki
//! roots when the system has none), no redirects followed (a 3xx is an error, which keeps
//! a compromised or misconfigured provider from bouncing us elsewhere), one deadline of
//! `oauth.http_timeout_ms` covering connect, headers and body, and bodies capped at 1 MiB.
//!
//! Every failure is classified for the provider's circuit breaker: connect errors,
//! timeouts and 5xx are the provider being down; anything else (4xx such as
//! `invalid_grant`, a body that is not what we expect) is the provider answering.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Largest response body read from a provider.
pub const MAX_BODY: usize = 1024 * 1024;

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpFail {
    /// No connection (refused, DNS, TLS handshake, reset before a response).
    #[error("cannot reach the provider: {0}")]
    Connect(String),
    /// The deadline passed before the whole response arrived.
    #[error("the provider did not answer within the timeout")]
    Timeout,
    /// A non-2xx status (the body is kept, capped, for error codes such as invalid_grant).
    #[error("the provider answered HTTP {0}")]
    Status(u16, Bytes),
    /// The body was larger than [`MAX_BODY`].
    #[error("the provider's response is larger than 1 MiB")]
    TooLarge,
    /// The URL could not be used (not http(s), unparsable).
    #[error("bad provider URL: {0}")]
    Url(String),
}

impl HttpFail {
    /// Whether the failure means the provider is unavailable (counts for its breaker).
    pub fn provider_down(&self) -> bool {
        match self {
            HttpFail::Connect(_) | HttpFail::Timeout => true,
            HttpFail::Status(s, _) => *s >= 500,
            HttpFail::TooLarge | HttpFail::Url(_) => false,
        }
    }
}

/// A pooled client for provider calls.
#[derive(Clone)]
pub struct ProviderHttp {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Default for ProviderHttp {
    fn default() -> Self {
        Self::new()
    }
}

impl ProviderHttp {
    /// A client; each call takes its own deadline (`oauth.http_timeout_ms` is reloadable).
    pub fn new() -> Self {
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        // The system store is where operators put a private CA for an internal provider;
        // without one, the bundled web PKI roots still reach public providers.
        let connector = match builder.with_native_roots() {
            Ok(b) => b.https_or_http().enable_http1().build(),
            Err(_) => hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(webpki_config())
                .https_or_http()
                .enable_http1()
                .build(),
        };
        ProviderHttp {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
        }
    }

    /// `GET url` expecting a 2xx body within `timeout`.
    pub async fn get(&self, url: &str, timeout: Duration) -> Result<Bytes, HttpFail> {
        let req = Request::builder()
            .method(Method::GET)
            .uri(parse_uri(url)?)
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, user_agent())
            .body(Full::new(Bytes::new()))
            .map_err(|e| HttpFail::Url(e.to_string()))?;
        self.send(req, timeout).await
    }

    /// `POST url` with a form body (and HTTP Basic client authentication when given)
    /// within `timeout`.
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
        timeout: Duration,
    ) -> Result<Bytes, HttpFail> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(parse_uri(url)?)
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, user_agent())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| HttpFail::Url(e.to_string()))?;
        if let Some((id, secret)) = basic {
            req.headers_mut()
                .insert(header::AUTHORIZATION, basic_auth(id, secret)?);
        }
        self.send(req, timeout).await
    }

    async fn send(&self, req: Request<Full<Bytes>>, timeout: Duration) -> Result<Bytes, HttpFail> {
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| HttpFail::Connect(error_chain(&e)))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        HttpFail::TooLarge
                    } else {
                        HttpFail::Connect(e.to_string())
                    }
                })?
                .to_bytes();
            if status.is_success() {
                Ok(body)
            } else {
                Err(HttpFail::Status(status.as_u16(), body))
            }
        };
        tokio::time::timeout(timeout, call)
            .await
            .unwrap_or(Err(HttpFail::Timeout))
    }
}

fn parse_uri(url: &str) -> Result<http::Uri, HttpFail> {
    let uri: http::Uri = url.parse().map_err(|_| HttpFail::Url(url.to_string()))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(uri),
        _ => Err(HttpFail::Url(url.to_string())),
    }
}

/// RFC 6749 §2.3.1: client id and secret are form-encoded before the Basic encoding.
fn basic_auth(id: &str, secret: &str) -> Result<HeaderValue, HttpFail> {
    use base64::Engine;
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let raw = format!("{}:{}", enc(id), enc(secret));
    let value = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    );
    HeaderValue::from_str(&value).map_err(|_| HttpFail::Url("client credentials".into()))
}

fn user_agent() -> HeaderValue {
    HeaderValue::from_static(concat!("rustchat/", env!("CARGO_PKG_VERSION")))
}

fn webpki_config() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map(|b| b.with_root_certificates(roots).with_no_client_auth())
    .unwrap_or_else(|_| {
        rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    })
}

/// The error and its sources on one line (hyper's top-level message alone is vague).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_outages_count_against_the_provider() {
        assert!(HttpFail::Connect("refused".into()).provider_down());
        assert!(HttpFail::Timeout.provider_down());
        assert!(HttpFail::Status(503, Bytes::new()).provider_down());
        assert!(!HttpFail::Status(400, Bytes::from_static(b"invalid_grant")).provider_down());
        assert!(!HttpFail::TooLarge.provider_down());
    }

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        let v = basic_auth("my client", "p:ss").unwrap();
        // base64("my+client:p%3Ass")
        assert_eq!(v.to_str().unwrap(), "Basic bXkrY2xpZW50OnAlM0Fzcw==");
    }

    #[test]
    fn only_http_urls_are_fetched() {
        assert!(parse_uri("https://id.example.com/.well-known/openid-configuration").is_ok());
        assert!(parse_uri("file:///etc/passwd").is_err());
        assert!(parse_uri("gopher://x").is_err());
        assert!(parse_uri("/relative").is_err());
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_provider_outage() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let http = ProviderHttp::new();
        let err = http
            .get(
                &format!("http://127.0.0.1:{port}/x"),
                Duration::from_secs(2),
            )
            .await
            .unwrap_err();
        assert!(err.provider_down(), "{err:?}");
    }
}
