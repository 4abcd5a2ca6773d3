//! The live-fill HTTPS client (spec §4.11 steps 6-7): hyper's HTTP/1 connection over our
//! own `TcpStream` and rustls stream, so every connection goes to an address that vetting
//! approved and the name is never resolved again behind our back. Redirects are followed
//! here, each hop re-checked against the allow-list and re-vetted.
//!
//! Certificates are always verified against the compiled-in web PKI roots plus
//! `edge.ca_file`; there is no switch to turn that off.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use ron_metrics::Counter;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use super::allow::{AllowList, Origin};
use super::vet::{self, VetError};

/// Most redirects followed for one fill.
pub const MAX_REDIRECTS: usize = 5;
/// Connect timeout per attempt (capped by the time left).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// `User-Agent` sent to origins.
pub const USER_AGENT: &str = concat!("svc-edge/", env!("CARGO_PKG_VERSION"));

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `edge.ca_file` could not be read.
    #[error("edge.ca_file {path}: cannot read: {source}")]
    CaRead {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// `edge.ca_file` holds no usable certificate.
    #[error("edge.ca_file {path}: {why}; expected PEM with at least one CERTIFICATE")]
    CaInvalid {
        /// The file.
        path: String,
        /// What was wrong.
        why: String,
    },
    /// rustls refused the configuration.
    #[error("TLS client configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Why one fetch attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// No vetted address accepted a TCP connection in time.
    #[error("connect failed: {0}")]
    Connect(String),
    /// The TLS handshake failed (certificate, protocol).
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The connection broke before a complete response.
    #[error("transport error: {0}")]
    Transport(String),
    /// A redirect could not be followed.
    #[error("redirect refused: {0}")]
    Redirect(&'static str),
    /// A redirect target failed vetting.
    #[error("redirect target refused: {0}")]
    Vet(VetError),
}

impl FetchError {
    /// Whether another attempt may succeed (spec §4.11 step 9): connect and transport
    /// failures yes; certificates and redirect policy never.
    pub fn retryable(&self) -> bool {
        matches!(self, FetchError::Connect(_) | FetchError::Transport(_))
    }
}

/// A response whose status is not a redirect, and where it finally came from.
pub struct Fetched {
    /// The response head and streaming body.
    pub response: Response<Incoming>,
    /// The origin that answered.
    pub origin: Origin,
}

/// Counters the client records into.
#[derive(Clone)]
pub struct TlsCounters {
    /// `edge_tls_handshake_failures_total{side="outbound"}`.
    pub outbound: Counter,
    /// The golden unlabelled `tls_handshake_failures_total`.
    pub total: Counter,
}

/// What the client needs to follow redirects safely.
pub struct Policy<'a> {
    /// Allow-list for every hop.
    pub allow: &'a AllowList,
    /// Skip private-address filtering (tests).
    pub allow_private: bool,
}

/// An HTTPS client pinned to vetted addresses.
#[derive(Clone)]
pub struct Client {
    tls: TlsConnector,
    counters: TlsCounters,
}

impl Client {
    /// A client trusting the web PKI roots plus the certificates in `ca_file`.
    pub fn new(ca_file: Option<&Path>, counters: TlsCounters) -> Result<Client, ClientError> {
        Ok(Client {
            tls: TlsConnector::from(tls_config(ca_file)?),
            counters,
        })
    }

    /// GETs `path` (origin-form, with any query) from `origin` at the vetted `addrs`,
    /// following at most [`MAX_REDIRECTS`] redirects. Sets `connected` once any TCP
    /// connection succeeds. The caller bounds the whole call by the fill deadline.
    pub async fn get(
        &self,
        origin: &Origin,
        path: &str,
        addrs: &[SocketAddr],
        policy: &Policy<'_>,
        deadline: Instant,
        connected: &mut bool,
    ) -> Result<Fetched, FetchError> {
        let mut origin = origin.clone();
        let mut path = path.to_owned();
        let mut addrs = addrs.to_vec();
        for hop in 0..=MAX_REDIRECTS {
            let response = self
                .request(&origin, &path, &addrs, deadline, connected)
                .await?;
            if !is_redirect(response.status()) {
                return Ok(Fetched { response, origin });
            }
            if hop == MAX_REDIRECTS {
                return Err(FetchError::Redirect("more than 5 redirects"));
            }
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or(FetchError::Redirect("redirect without a usable Location"))?;
            let (next, next_path) = next_hop(&origin, location, policy.allow)?;
            if next != origin {
                addrs = vet::resolve(&next, policy.allow_private, deadline)
                    .await
                    .map_err(FetchError::Vet)?;
            }
            origin = next;
            path = next_path;
        }
        Err(FetchError::Redirect("more than 5 redirects"))
    }

    async fn request(
        &self,
        origin: &Origin,
        path: &str,
        addrs: &[SocketAddr],
        deadline: Instant,
        connected: &mut bool,
    ) -> Result<Response<Incoming>, FetchError> {
        let budget = CONNECT_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
        let tcp = tokio::time::timeout(budget, connect_any(addrs))
            .await
            .map_err(|_| FetchError::Connect("timed out".into()))??;
        *connected = true;
        let name = ServerName::try_from(origin.host.clone())
            .map_err(|_| FetchError::Tls("host is not a valid server name".into()))?;
        let tls = self.tls.connect(name, tcp).await.map_err(|e| {
            self.counters.outbound.inc();
            self.counters.total.inc();
            FetchError::Tls(e.to_string())
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        // The connection task ends when the response body and sender are dropped.
        tokio::spawn(conn);
        let request = Request::get(path)
            .header(header::HOST, origin.authority())
            .header(header::USER_AGENT, HeaderValue::from_static(USER_AGENT))
            .header(header::ACCEPT, HeaderValue::from_static("*/*"))
            .header(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|_| FetchError::Redirect("target path is not a valid URI path"))?;
        sender
            .send_request(request)
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))
    }
}

/// The rustls client config: ring, TLS 1.2 and 1.3, web PKI roots plus `ca_file`.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, ClientError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let shown = path.display().to_string();
        let pem = std::fs::read(path).map_err(|source| ClientError::CaRead {
            path: shown.clone(),
            source,
        })?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| ClientError::CaInvalid {
                path: shown.clone(),
                why: format!("not valid PEM ({e:?})"),
            })?;
        if certs.is_empty() {
            return Err(ClientError::CaInvalid {
                path: shown,
                why: "no certificate found".into(),
            });
        }
        for cert in certs {
            roots.add(cert).map_err(|e| ClientError::CaInvalid {
                path: shown.clone(),
                why: format!("unusable certificate ({e})"),
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn connect_any(addrs: &[SocketAddr]) -> Result<TcpStream, FetchError> {
    let mut last = String::from("no address");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e.to_string(),
        }
    }
    Err(FetchError::Connect(last))
}

fn is_redirect(s: StatusCode) -> bool {
    matches!(s.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Where a `Location` leads: an absolute `https` URL to an allow-listed `host[:port]`, or
/// an absolute path on the current origin. Anything else (`http:`, other schemes,
/// userinfo, scheme-relative or relative paths) is refused.
pub fn next_hop(
    current: &Origin,
    location: &str,
    allow: &AllowList,
) -> Result<(Origin, String), FetchError> {
    let location = location.split('#').next().unwrap_or("");
    if location.starts_with('/') && !location.starts_with("//") {
        return Ok((current.clone(), valid_path(location)?));
    }
    let scheme_end = location.find("://").ok_or(FetchError::Redirect(
        "Location is neither https nor an absolute path",
    ))?;
    if !location[..scheme_end].eq_ignore_ascii_case("https") {
        return Err(FetchError::Redirect("Location is not https"));
    }
    let rest = &location[scheme_end + 3..];
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    if authority.contains('@') {
        return Err(FetchError::Redirect("Location carries credentials"));
    }
    let origin = allow
        .check(authority)
        .ok_or(FetchError::Redirect("Location host is not allow-listed"))?;
    let path = if tail.starts_with('?') {
        format!("/{tail}")
    } else if tail.is_empty() {
        "/".to_owned()
    } else {
        tail.to_owned()
    };
    Ok((origin, valid_path(&path)?))
}

fn valid_path(p: &str) -> Result<String, FetchError> {
    p.parse::<http::uri::PathAndQuery>()
        .map(|_| p.to_owned())
        .map_err(|_| FetchError::Redirect("Location path is not a valid URI path"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow() -> AllowList {
        AllowList::new(&["a.example".into(), "b.example:8443".into()])
    }

    fn here() -> Origin {
        Origin {
            host: "a.example".into(),
            port: 443,
        }
    }

    #[test]
    fn redirects_to_listed_https_origins_and_absolute_paths_are_followed() {
        let (o, p) = next_hop(&here(), "/x/y?z=1#frag", &allow()).unwrap();
        assert_eq!((o, p.as_str()), (here(), "/x/y?z=1"));
        let (o, p) = next_hop(&here(), "HTTPS://B.example:8443/t", &allow()).unwrap();
        assert_eq!(o.authority(), "b.example:8443");
        assert_eq!(p, "/t");
        let (_, p) = next_hop(&here(), "https://a.example?q", &allow()).unwrap();
        assert_eq!(p, "/?q");
    }

    #[test]
    fn redirects_off_the_allow_list_or_off_https_are_refused() {
        for bad in [
            "http://a.example/x",
            "https://c.example/x",
            "https://b.example/x",
            "https://user@a.example/x",
            "//a.example/x",
            "x/y",
            "ftp://a.example/",
            "/bad path",
        ] {
            assert!(next_hop(&here(), bad, &allow()).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_connect_and_transport_failures_are_retried() {
        assert!(FetchError::Connect("x".into()).retryable());
        assert!(FetchError::Transport("x".into()).retryable());
        assert!(!FetchError::Tls("x".into()).retryable());
        assert!(!FetchError::Redirect("x").retryable());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("edge-ca-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("empty.pem");
        std::fs::write(&f, "nothing here\n").unwrap();
        assert!(matches!(
            tls_config(Some(&f)),
            Err(ClientError::CaInvalid { .. })
        ));
        assert!(matches!(
            tls_config(Some(&dir.join("missing.pem"))),
            Err(ClientError::CaRead { .. })
        ));
        assert!(tls_config(None).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
