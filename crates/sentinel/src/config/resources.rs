//! What a full load checks beyond the file itself (spec §2.1 `--test-config`, SEN-R11):
//! reading `body-file` and `token-file` (at most 1 MiB), loading each TLS cert/key pair
//! and checking that they match, resolving target hosts (system resolver, 2 s per name),
//! and, for `--test-config` only, that the directories of the pid file and log files
//! exist or can be created and are writable. Nothing is bound.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::error::ConfigError;
use super::model::*;
use super::parse::{Loc, Locations, REDACTED};
use super::rules;

/// Largest `body-file` / `token-file`.
pub const MAX_RESOURCE_FILE_BYTES: u64 = 1 << 20;
/// How long one target host may take to resolve.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Hostname → first resolved address for every target (and nothing else); IP literals map
/// to themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedTargets(HashMap<String, SocketAddr>);

impl ResolvedTargets {
    /// The resolved address of a target `address` as written in the config.
    pub fn get(&self, address: &str) -> Option<SocketAddr> {
        self.0.get(address).copied()
    }

    /// Number of distinct target addresses.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no targets.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Reports problems for one load; `file` is the config file the locations refer to.
pub(crate) struct Checker<'a> {
    pub(crate) file: &'a Path,
    pub(crate) errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn error(&mut self, loc: Option<&Loc>, fallback_path: &str, message: String) {
        let e = match loc {
            Some(l) => ConfigError::at(self.file, l.pos, &l.path, message),
            None => ConfigError {
                path: fallback_path.to_owned(),
                ..ConfigError::file(self.file, message)
            },
        };
        self.errors.push(e);
    }

    /// Reads static bodies and the token file into `config`; refuses the redaction marker
    /// that `--print-config` writes in place of the token, so a printed config cannot run
    /// with `<redacted>` as its admin token.
    pub(crate) fn read_files(&mut self, config: &mut Config, locs: &Locations) {
        for (i, u) in config.upstreams.iter_mut().enumerate() {
            let UpstreamKind::Static(st) = &mut u.kind else {
                continue;
            };
            let StaticBody::File { path, bytes } = &mut st.body else {
                continue;
            };
            let loc = locs.upstreams.get(i).and_then(|l| l.body_file.as_ref());
            match read_limited(path) {
                Ok(b) => *bytes = Some(b),
                Err(why) => self.error(loc, "body-file", why),
            }
        }
        match &mut config.admin.token {
            Some(AdminToken::File { path, value }) => match read_limited(path) {
                Ok(b) => {
                    let text = String::from_utf8_lossy(&b).trim().to_owned();
                    match rules::token(&text) {
                        Ok(()) => *value = Some(text),
                        Err(why) => self.error(
                            locs.token.as_ref(),
                            "admin > token-file",
                            format!("the content of {}: {why}", path.display()),
                        ),
                    }
                }
                Err(why) => self.error(locs.token.as_ref(), "admin > token-file", why),
            },
            Some(AdminToken::Inline(t)) if *t == REDACTED => self.error(
                locs.token.as_ref(),
                "admin > token",
                format!("{REDACTED:?} is the redaction marker of --print-config, not a token; set the real token"),
            ),
            _ => {}
        }
    }

    /// Loads each https listener's certificate chain and key and checks they match.
    pub(crate) fn check_tls(&mut self, config: &Config, locs: &Locations) {
        for (i, l) in config.listeners.iter().enumerate() {
            let Some(tls) = &l.tls else { continue };
            let ll = locs.listeners.get(i);
            let cert_loc = ll.and_then(|x| x.cert.as_ref());
            let key_loc = ll.and_then(|x| x.key.as_ref());
            if let Err((which, why)) = load_tls_pair(&tls.cert_file, &tls.key_file) {
                let loc = if which == TlsPart::Key {
                    key_loc
                } else {
                    cert_loc
                };
                self.error(loc, "tls", why);
            }
        }
    }

    /// Resolves every target host (in parallel, `RESOLVE_TIMEOUT` each).
    pub(crate) fn resolve(&mut self, config: &Config, locs: &Locations) -> ResolvedTargets {
        let mut out = HashMap::new();
        let mut pending = Vec::new();
        for (ui, u) in config.upstreams.iter().enumerate() {
            let UpstreamKind::Proxy(p) = &u.kind else {
                continue;
            };
            for (ti, t) in p.targets.iter().enumerate() {
                if out.contains_key(&t.address) || pending.iter().any(|(a, _, _)| *a == t.address) {
                    continue;
                }
                if let Ok(a) = literal_addr(&t.address) {
                    out.insert(t.address.clone(), a);
                    continue;
                }
                let loc = locs
                    .upstreams
                    .get(ui)
                    .and_then(|l| l.targets.get(ti))
                    .cloned()
                    .flatten();
                let (tx, rx) = mpsc::channel();
                let name = t.address.clone();
                // The resolver blocks with no timeout of its own; a thread per name lets
                // the deadline apply (a late answer is simply dropped).
                std::thread::spawn(move || {
                    let _ = tx.send(name.to_socket_addrs().map(|mut it| it.next()));
                });
                pending.push((t.address.clone(), rx, loc));
            }
        }
        let deadline = Instant::now() + RESOLVE_TIMEOUT;
        for (address, rx, loc) in pending {
            let left = deadline.saturating_duration_since(Instant::now());
            let why = match rx.recv_timeout(left) {
                Ok(Ok(Some(a))) => {
                    out.insert(address, a);
                    continue;
                }
                Ok(Ok(None)) => "no addresses".to_owned(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {} s", RESOLVE_TIMEOUT.as_secs()),
            };
            self.error(
                loc.as_ref(),
                "address",
                format!("cannot resolve {address:?}: {why}"),
            );
        }
        ResolvedTargets(out)
    }

    /// `--test-config`: the directories of the pid file, log file and access log exist or
    /// can be created, and are writable.
    pub(crate) fn check_output_dirs(&mut self, config: &Config, locs: &Locations) {
        let mut outputs: Vec<(&Path, Option<&Loc>, &str)> = Vec::new();
        if let Some(p) = &config.server.pid_file {
            outputs.push((p, locs.pid_file.as_ref(), "server > pid-file"));
        }
        if let Some(p) = &config.logging.file {
            outputs.push((p, locs.log_file.as_ref(), "logging > file"));
        }
        if let AccessLog::File(p) = &config.logging.access_log {
            outputs.push((p, locs.access_log.as_ref(), "logging > access-log"));
        }
        for (path, loc, key) in outputs {
            if let Err(why) = writable_parent(path) {
                self.error(loc, key, format!("{}: {why}", path.display()));
            }
        }
    }
}

/// An IP-literal target address.
fn literal_addr(address: &str) -> Result<SocketAddr, ()> {
    address.parse::<SocketAddr>().map_err(|_| ())
}

/// Reads a file of at most [`MAX_RESOURCE_FILE_BYTES`].
fn read_limited(path: &Path) -> Result<Vec<u8>, String> {
    let f = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut buf = Vec::new();
    f.take(MAX_RESOURCE_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if buf.len() as u64 > MAX_RESOURCE_FILE_BYTES {
        return Err(format!(
            "{} is larger than {MAX_RESOURCE_FILE_BYTES} bytes",
            path.display()
        ));
    }
    Ok(buf)
}

/// Which half of a TLS pair a problem is in.
#[derive(Debug, PartialEq, Eq)]
enum TlsPart {
    Cert,
    Key,
}

/// Loads a PEM certificate chain and private key and checks the key matches the leaf
/// certificate (rustls compares the SubjectPublicKeyInfo).
fn load_tls_pair(cert: &Path, key: &Path) -> Result<(), (TlsPart, String)> {
    certified_key(cert, key).map(|_| ())
}

/// The certificate chain and key of a TLS listener, loaded and checked to match; the
/// listeners build their TLS resolvers from it (at start and on each reload).
pub fn load_certified_key(
    cert: &Path,
    key: &Path,
) -> Result<tokio_rustls::rustls::sign::CertifiedKey, String> {
    certified_key(cert, key).map_err(|(_, why)| why)
}

fn certified_key(
    cert: &Path,
    key: &Path,
) -> Result<tokio_rustls::rustls::sign::CertifiedKey, (TlsPart, String)> {
    use tokio_rustls::rustls::crypto::ring::default_provider;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls::sign::CertifiedKey;

    let cert_pem = read_limited(cert).map_err(|e| (TlsPart::Cert, e))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            (
                TlsPart::Cert,
                format!("{}: not a PEM certificate chain: {e}", cert.display()),
            )
        })?;
    if chain.is_empty() {
        return Err((
            TlsPart::Cert,
            format!("{}: no certificate found", cert.display()),
        ));
    }
    let key_pem = read_limited(key).map_err(|e| (TlsPart::Key, e))?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        (
            TlsPart::Key,
            format!(
                "{}: not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
                key.display()
            ),
        )
    })?;
    CertifiedKey::from_der(chain, key_der, &default_provider()).map_err(|e| {
        (
            TlsPart::Key,
            format!(
                "{} does not load or does not match the certificate {}: {e}",
                key.display(),
                cert.display()
            ),
        )
    })
}

/// The nearest existing ancestor of `path`'s directory is a directory we can write in
/// (so the missing levels can be created). Writability is probed by creating and removing
/// a temporary file, which also covers read-only mounts and ACLs.
fn writable_parent(path: &Path) -> Result<(), String> {
    let mut dir: PathBuf = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    loop {
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => return Err(format!("{} is not a directory", dir.display())),
            Err(_) => match dir.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => dir = parent.to_path_buf(),
                _ => {
                    return Err(format!(
                        "no existing parent directory of {}",
                        path.display()
                    ));
                }
            },
        }
    }
    let probe = dir.join(format!(".sentinel-test-config-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!("directory {} is not writable: {e}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_limited_refuses_files_over_one_mebibyte() {
        let dir = std::env::temp_dir().join(format!("sentinel-res-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let big = dir.join("big");
        std::fs::write(&big, vec![b'x'; (MAX_RESOURCE_FILE_BYTES + 1) as usize])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(read_limited(&big).is_err());
        let ok = dir.join("ok");
        std::fs::write(&ok, b"hello").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_limited(&ok).ok(), Some(b"hello".to_vec()));
        assert!(writable_parent(&dir.join("new/sub/file.log")).is_ok());
        assert!(writable_parent(&ok.join("below-a-file")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn mismatched_tls_key_is_reported_and_a_matching_pair_loads() {
        let dir = std::env::temp_dir().join(format!("sentinel-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let a = rcgen::generate_simple_self_signed(vec!["localhost".into()])
            .unwrap_or_else(|e| panic!("{e}"));
        let b = rcgen::generate_simple_self_signed(vec!["localhost".into()])
            .unwrap_or_else(|e| panic!("{e}"));
        let write = |name: &str, text: String| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
            p
        };
        let cert = write("a.pem", a.cert.pem());
        let key_a = write("a.key", a.signing_key.serialize_pem());
        let key_b = write("b.key", b.signing_key.serialize_pem());
        assert_eq!(load_tls_pair(&cert, &key_a), Ok(()));
        assert!(matches!(
            load_tls_pair(&cert, &key_b),
            Err((TlsPart::Key, _))
        ));
        assert!(matches!(
            load_tls_pair(&dir.join("missing.pem"), &key_a),
            Err((TlsPart::Cert, _))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
