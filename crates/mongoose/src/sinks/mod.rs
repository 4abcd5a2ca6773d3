//! Built-in sinks other than `memory` (MNG-R12, §2.4, §3.2): `stdout`, `file`, `tcp`,
//! `http` and, with the `redis` feature, `redis-stream`.
//!
//! Every module has the same shape:
//! - a `#[serde(deny_unknown_fields, rename_all = "camelCase")]` config struct with the
//!   spec's keys and defaults;
//! - `validate(&ConfigMap) -> Result<(), String>`: parses and range-checks the config, with
//!   no side effects (no file is opened, nothing is resolved or connected), which is what
//!   `--check` runs;
//! - `build::<E>(&ConfigMap, &SinkEnv) -> Result<Box<dyn Sink<E>>, String>`: validates and
//!   constructs the sink, still without I/O. [`Sink::start`](crate::sink_agent::Sink::start)
//!   opens the file or connects to the target (network sinks within
//!   `startup.connectTimeoutMs`, [`SinkEnv::connect_timeout`]).
//!
//! Errors are strings naming the offending key as `config.<key>: ...`.
//!
//! The sinks run on the `sinks` agent thread (or a named agent), so their calls block; the
//! network sinks drive their async clients with `env.io.block_on`, each call bounded by a
//! timeout. For that reason their methods must be called from a plain thread, never from
//! inside an async task (tokio's `block_on` panics there). Write verdicts follow §2.4: `Ok` once written, `SinkError::Retryable` for I/O,
//! connection and transient server errors (the agent keeps the item pending and the circuit
//! breaker counts a failure), `SinkError::Permanent` when the target refuses the item itself
//! (it is quarantined as `sink_rejected`).
//!
//! JSONL sinks (`stdout`, `file`, `tcp`) write `SinkItem::to_json()` as compact JSON plus
//! `\n`, quarantine records included; [`file::build_for_quarantine`] builds a `file` sink
//! whose file is created with mode 0600 (§7), for the configured `quarantine.sink`.

pub mod file;
pub mod http;
#[cfg(feature = "redis")]
pub mod redis_stream;
pub mod stdout;
pub mod tcp;

use std::fmt::Display;

use crate::event::Event;
use crate::sink::SinkItem;

pub(crate) use crate::builtins::parse_config as parse;

/// `Err("config.<key>: <v> is out of range lo..=hi")` unless `lo <= v <= hi`.
pub(crate) fn check_range<T: PartialOrd + Display>(
    key: &str,
    v: T,
    lo: T,
    hi: T,
) -> Result<(), String> {
    if v < lo || v > hi {
        Err(format!("config.{key}: {v} is out of range {lo}..={hi}"))
    } else {
        Ok(())
    }
}

/// The JSONL record of an item: its JSON, compact (or pretty), then `\n`.
pub(crate) fn json_line<E: Event>(item: &SinkItem<E>, pretty: bool) -> Vec<u8> {
    let value = item.to_json();
    let mut buf = Vec::with_capacity(128);
    let written = if pretty {
        serde_json::to_writer_pretty(&mut buf, &value)
    } else {
        serde_json::to_writer(&mut buf, &value)
    };
    // A `Value` always serializes (its keys are strings); the fallback only keeps this
    // total without a panic path.
    if written.is_err() {
        buf.clear();
        buf.extend_from_slice(b"null");
    }
    buf.push(b'\n');
    buf
}

/// Splits `host:port` (`[v6]:port` for IPv6) without resolving anything. The host comes
/// back without brackets.
pub(crate) fn split_host_port(key: &str, address: &str) -> Result<(String, u16), String> {
    let bad = || format!("config.{key}: {address:?} is not host:port");
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').ok_or_else(bad)?,
        // An unbracketed IPv6 address has colons in its host part.
        None if host.contains(':') => return Err(bad()),
        None => host,
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(bad());
    }
    let port: u16 = port.parse().map_err(|_| bad())?;
    if port == 0 {
        return Err(format!("config.{key}: port 0 cannot be connected to"));
    }
    Ok((host.to_string(), port))
}

/// A thread calling `tick` every `every` until dropped (dropping it wakes and joins the
/// thread). The sink agent calls `flush` only at shutdown, so sinks that buffer (`file`,
/// batching `http`) use one to bound how long a record can wait when no further write comes.
pub(crate) struct Ticker {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    /// Starts the thread, named `name` (at most 15 bytes show).
    pub(crate) fn spawn(
        name: &str,
        every: std::time::Duration,
        mut tick: impl FnMut() + Send + 'static,
    ) -> Result<Ticker, String> {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                // Only a timeout ticks; the sender being dropped ends the loop.
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                    tick();
                }
            })
            .map_err(|e| format!("spawn {name}: {e}"))?;
        Ok(Ticker {
            stop: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Outbound TLS (§7): the webpki roots plus the PEM certificates of `ca_path`, with the ring
/// provider named explicitly (the process default may be unset, or ambiguous when another
/// crate enables a second provider). There is deliberately no way to skip verification.
/// Reads `ca_path`, so it runs in `start`, never in `validate`.
#[cfg(feature = "tls")]
pub(crate) fn tls_client_config(
    ca_path: Option<&str>,
    key: &str,
) -> Result<std::sync::Arc<tokio_rustls::rustls::ClientConfig>, String> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_path {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("config.{key}: {path}: {e}"))?;
        let mut added = 0usize;
        for cert in certs {
            let cert = cert.map_err(|e| format!("config.{key}: {path}: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("config.{key}: {path}: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("config.{key}: {path}: no PEM certificate in it"));
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
}

/// Helpers shared by the sink tests.
#[cfg(test)]
pub(crate) mod test_util {
    use std::time::Duration;

    use serde_json::Value;

    use crate::processor::ConfigMap;
    use crate::sink_agent::SinkEnv;

    /// A config map from a JSON object literal.
    pub fn map(v: Value) -> ConfigMap {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    /// A two-worker runtime for the network sinks' async clients.
    pub fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// A sink environment on `rt` with a short connect timeout.
    pub fn env(rt: &tokio::runtime::Runtime) -> SinkEnv {
        SinkEnv {
            name: "test-sink",
            server: "test-server",
            connect_timeout: Duration::from_millis(1000),
            io: rt.handle().clone(),
        }
    }

    /// Generates a self-signed certificate for `127.0.0.1`/`localhost` with the openssl
    /// CLI into `dir`; returns (cert PEM path, key PEM path), or `None` (with a notice)
    /// when openssl is missing.
    #[cfg(feature = "tls")]
    pub fn self_signed_cert(
        dir: &std::path::Path,
    ) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
        let openssl = test_support::tool("openssl")?;
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let status = std::process::Command::new(openssl)
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run openssl");
        assert!(status.success(), "openssl req failed");
        Some((cert, key))
    }

    /// A rustls server config serving `cert`/`key` (PEM files).
    #[cfg(feature = "tls")]
    pub fn tls_server_config(
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> std::sync::Arc<tokio_rustls::rustls::ServerConfig> {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .expect("cert")
            .map(|c| c.expect("cert"))
            .collect();
        let key = PrivateKeyDer::from_pem_file(key).expect("key");
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server cert");
        std::sync::Arc::new(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn host_port_splitting_handles_ipv6_and_rejects_junk() {
        assert_eq!(
            split_host_port("address", "127.0.0.1:80").unwrap(),
            ("127.0.0.1".to_string(), 80)
        );
        assert_eq!(
            split_host_port("address", "[::1]:9000").unwrap(),
            ("::1".to_string(), 9000)
        );
        assert_eq!(
            split_host_port("address", "example.org:443").unwrap(),
            ("example.org".to_string(), 443)
        );
        for bad in [
            "", "host", ":80", "host:", "host:x", "::1:80", "[::1:80", "h:70000",
        ] {
            let e = split_host_port("address", bad).unwrap_err();
            assert!(e.starts_with("config.address:"), "{bad}: {e}");
        }
        assert!(
            split_host_port("address", "h:0")
                .unwrap_err()
                .contains("port 0")
        );
    }

    #[test]
    fn json_lines_are_compact_or_pretty_and_end_in_one_newline() {
        let item = SinkItem::Event {
            value: crate::Record::new(json!({"a": [1, 2], "b": "x"})),
            origin: None,
        };
        assert_eq!(json_line(&item, false), b"{\"a\":[1,2],\"b\":\"x\"}\n");
        let pretty = String::from_utf8(json_line(&item, true)).unwrap();
        assert!(
            pretty.ends_with("}\n") && !pretty.ends_with("\n\n"),
            "{pretty}"
        );
        assert!(pretty.matches('\n').count() > 1, "{pretty}");
        let back: serde_json::Value = serde_json::from_str(&pretty).unwrap();
        assert_eq!(back, json!({"a": [1, 2], "b": "x"}));
    }

    #[test]
    fn parse_errors_name_the_key() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        #[allow(dead_code)]
        struct C {
            flush_every_ms: u32,
        }
        let e = parse::<C>(&test_util::map(json!({"flushEveryMs": "x"}))).unwrap_err();
        assert!(e.starts_with("config.flushEveryMs:"), "{e}");
        let e = parse::<C>(&test_util::map(json!({"flushEveryMs": 1, "bogus": 1}))).unwrap_err();
        assert!(e.contains("bogus"), "{e}");
        let e = parse::<C>(&test_util::map(json!({}))).unwrap_err();
        assert!(e.contains("flushEveryMs"), "{e}");
        assert_eq!(
            check_range("batchMax", 0u32, 1, 10).unwrap_err(),
            "config.batchMax: 0 is out of range 1..=10"
        );
    }
}
