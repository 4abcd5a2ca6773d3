//! TLS on proxy listeners (spec §2.4 `listener … tls { … }`, §4.8 R38): rustls with ring,
//! TLS 1.2+ (or 1.3 only), ALPN `h2` and `http/1.1`, and certificates that a reload swaps
//! for new handshakes without touching open connections.
//!
//! What it is for: the server side of https listeners. What it is not for: TLS to
//! upstreams or client certificates (spec: later).

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};

use crate::config::{ListenerTls, TlsVersion, load_certified_key};

/// The certificate a listener presents; [`TlsCerts::reload`] swaps it.
#[derive(Debug)]
pub struct TlsCerts {
    current: ArcSwap<CertifiedKey>,
}

impl ResolvesServerCert for TlsCerts {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl TlsCerts {
    /// Re-reads the certificate and key (SIGHUP); on error the old pair stays.
    pub fn reload(&self, cfg: &ListenerTls) -> Result<(), String> {
        let key = load_certified_key(&cfg.cert_file, &cfg.key_file)?;
        self.current.store(Arc::new(key));
        Ok(())
    }
}

/// An acceptor for `cfg` and the handle that swaps its certificate.
pub fn acceptor(cfg: &ListenerTls) -> Result<(TlsAcceptor, Arc<TlsCerts>), String> {
    let key = load_certified_key(&cfg.cert_file, &cfg.key_file)?;
    let certs = Arc::new(TlsCerts {
        current: ArcSwap::from_pointee(key),
    });
    let versions: &[&'static rustls::SupportedProtocolVersion] = match cfg.min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(certs.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), certs))
}
