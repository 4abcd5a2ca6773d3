//! TLS for the standalone exposer: a ring-backed rustls `ServerConfig` built from PEM files,
//! with TLS 1.2 and 1.3, ALPN `http/1.1` only, and a session cache plus tickets so
//! resumption works (runbook: "TLS handshake spikes → enable resumption").

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::ServerSessionMemoryCache;
use tokio_rustls::rustls::{self, ServerConfig};
use zeroize::Zeroize;

/// Session cache entries kept for resumption.
pub const TLS_SESSION_CACHE_ENTRIES: usize = 1024;

/// Builds the server config; on error says whether the key (true) or the certificate
/// (false) is at fault, and why, naming the file.
pub(crate) fn server_config_from_pem(
    cert: &Path,
    key: &Path,
) -> Result<Arc<ServerConfig>, (bool, String)> {
    let cert_err = |why: String| (false, why);
    let key_err = |why: String| (true, why);

    let cert_pem = std::fs::read(cert).map_err(|e| {
        cert_err(format!(
            "cannot read certificate file {}: {e}",
            cert.display()
        ))
    })?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            cert_err(format!(
                "certificate file {} is not valid PEM: {e:?}",
                cert.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(cert_err(format!(
            "certificate file {} holds no CERTIFICATE block",
            cert.display()
        )));
    }

    // Symlinks are allowed (mounted secrets), so follow them before checking the target.
    let meta = std::fs::metadata(key)
        .map_err(|e| key_err(format!("cannot read key file {}: {e}", key.display())))?;
    if !meta.is_file() {
        return Err(key_err(format!(
            "key file {} is not a regular file",
            key.display()
        )));
    }
    let mode = meta.permissions().mode();
    if mode & 0o004 != 0 {
        return Err(key_err(format!(
            "key file {} is world-readable (mode {:04o}); chmod o-r it",
            key.display(),
            mode & 0o7777
        )));
    }
    let mut key_pem = Vec::new();
    std::fs::File::open(key)
        .and_then(|mut f| f.read_to_end(&mut key_pem))
        .map_err(|e| key_err(format!("cannot read key file {}: {e}", key.display())))?;
    let parsed = PrivateKeyDer::from_pem_slice(&key_pem);
    key_pem.zeroize();
    let private = parsed.map_err(|e| {
        key_err(format!(
            "key file {} holds no PKCS#8, SEC1 or RSA private key: {e:?}",
            key.display()
        ))
    })?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| cert_err(format!("TLS setup failed: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            key_err(format!(
                "key file {} does not match the certificate: {e}",
                key.display()
            ))
        })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.session_storage = ServerSessionMemoryCache::new(TLS_SESSION_CACHE_ENTRIES);
    cfg.ticketer = rustls::crypto::ring::Ticketer::new()
        .map_err(|e| cert_err(format!("TLS ticketer setup failed: {e}")))?;
    Ok(Arc::new(cfg))
}
