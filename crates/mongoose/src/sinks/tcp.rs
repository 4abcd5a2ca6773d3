//! `tcp`: JSONL records over one outbound TCP connection, optionally TLS (§2.4, §3.2, §7).
//!
//! Keys: `address`\* (`host:port`, `[v6]:port`), `connectTimeoutMs: 2000`, optional
//! `tls{serverName?, caPath?}` (feature `tls`).
//!
//! - **Connecting.** `start` connects within the smaller of `connectTimeoutMs` and
//!   `startup.connectTimeoutMs` (a critical sink that cannot connect fails startup). After an
//!   error the connection is dropped and the next write reconnects, within
//!   `connectTimeoutMs`; a failed reconnect is `Retryable`, so the circuit breaker paces the
//!   attempts.
//! - **Writing.** Blocking std sockets: the sink runs on an agent thread, not the runtime.
//!   `connectTimeoutMs` also bounds each socket write (and the TLS handshake), so a peer that
//!   stops reading cannot hang the agent. Before each write the socket is polled without
//!   blocking for end-of-file: a peer that closed the connection is noticed before the record
//!   goes into a kernel buffer nobody will read, and the sink reconnects instead. Anything
//!   the peer sends is discarded (this sink only writes). Connect and write errors are
//!   `Retryable`; there are no permanent errors.
//! - **TLS** is rustls with the ring provider. The server certificate is verified against the
//!   webpki roots plus the PEM certificates in `caPath` (read in `start`); verification cannot
//!   be turned off. `serverName` defaults to the host of `address` (an IP address is checked
//!   against the certificate's IP SANs).

use std::io::Read;
#[cfg(feature = "tls")]
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{check_range, json_line, parse, split_host_port};
use crate::event::Event;
use crate::processor::ConfigMap;
use crate::sink::SinkItem;
use crate::sink_agent::{Sink, SinkEnv, SinkError};

/// Default `connectTimeoutMs`.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u32 = 2000;
/// Longest `connectTimeoutMs`.
pub const MAX_CONNECT_TIMEOUT_MS: u32 = 600_000;

/// `tcp` sink config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TcpConfig {
    /// `host:port` to connect to.
    pub address: String,
    /// Connect (and per-write) timeout.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u32,
    /// TLS client settings; absent means plain TCP.
    #[serde(default)]
    pub tls: Option<TcpTlsConfig>,
}

/// `tcp` sink `tls` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TcpTlsConfig {
    /// Name checked against the certificate (default: the host of `address`).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Extra trusted CA certificates (PEM), on top of the webpki roots.
    #[serde(default)]
    pub ca_path: Option<String>,
}

fn default_connect_timeout_ms() -> u32 {
    DEFAULT_CONNECT_TIMEOUT_MS
}

/// A checked config: the parsed struct and the split address.
struct Checked {
    cfg: TcpConfig,
    host: String,
    port: u16,
}

fn checked(config: &ConfigMap) -> Result<Checked, String> {
    let cfg: TcpConfig = parse(config)?;
    let (host, port) = split_host_port("address", &cfg.address)?;
    check_range(
        "connectTimeoutMs",
        cfg.connect_timeout_ms,
        1,
        MAX_CONNECT_TIMEOUT_MS,
    )?;
    if let Some(tls) = &cfg.tls {
        if !cfg!(feature = "tls") {
            return Err("config.tls: needs the `tls` feature, which this build lacks".into());
        }
        if tls.ca_path.as_deref().is_some_and(|p| p.trim().is_empty()) {
            return Err("config.tls.caPath: must not be empty".into());
        }
        #[cfg(feature = "tls")]
        {
            let name = tls.server_name.clone().unwrap_or_else(|| host.clone());
            server_name(&name, tls.server_name.is_some())?;
        }
    }
    Ok(Checked { cfg, host, port })
}

#[cfg(feature = "tls")]
fn server_name(
    name: &str,
    explicit: bool,
) -> Result<tokio_rustls::rustls::pki_types::ServerName<'static>, String> {
    tokio_rustls::rustls::pki_types::ServerName::try_from(name.to_string()).map_err(|e| {
        let key = if explicit {
            "tls.serverName"
        } else {
            "address"
        };
        format!("config.{key}: {name:?} is not a valid TLS server name: {e}")
    })
}

/// Checks a `tcp` sink's `config` (no side effects: nothing is resolved, read or connected).
pub fn validate(config: &ConfigMap) -> Result<(), String> {
    checked(config).map(|_| ())
}

/// Builds a `tcp` sink (no I/O: `start` connects).
pub fn build<E: Event>(config: &ConfigMap, env: &SinkEnv) -> Result<Box<dyn Sink<E>>, String> {
    let Checked { cfg, host, port } = checked(config)?;
    #[cfg(feature = "tls")]
    let tls = match &cfg.tls {
        Some(t) => {
            let name = t.server_name.clone().unwrap_or_else(|| host.clone());
            Some(TlsSetup {
                server_name: server_name(&name, t.server_name.is_some())?,
                ca_path: t.ca_path.clone(),
                config: None,
            })
        }
        None => None,
    };
    Ok(Box::new(TcpSink {
        name: env.name,
        address: cfg.address.clone(),
        host,
        port,
        timeout: Duration::from_millis(u64::from(cfg.connect_timeout_ms)),
        start_timeout: env.connect_timeout,
        #[cfg(feature = "tls")]
        tls,
        conn: None,
    }))
}

/// TLS client state: the name to verify and the rustls config, built in `start`.
#[cfg(feature = "tls")]
struct TlsSetup {
    server_name: tokio_rustls::rustls::pki_types::ServerName<'static>,
    ca_path: Option<String>,
    config: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
}

#[cfg(feature = "tls")]
impl TlsSetup {
    fn config(&mut self) -> Result<std::sync::Arc<tokio_rustls::rustls::ClientConfig>, String> {
        if let Some(c) = &self.config {
            return Ok(c.clone());
        }
        let c = super::tls_client_config(self.ca_path.as_deref(), "tls.caPath")?;
        self.config = Some(c.clone());
        Ok(c)
    }
}

/// One live connection.
enum Conn {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<TlsConn>),
}

#[cfg(feature = "tls")]
struct TlsConn {
    tls: tokio_rustls::rustls::ClientConnection,
    sock: TcpStream,
}

/// Reads at most this many times when polling for end-of-file, so a chatty peer cannot keep
/// the writer in the poll.
const MAX_POLL_READS: usize = 64;

impl Conn {
    /// Whether the peer closed (or broke) the connection, found without blocking.
    fn sock(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            #[cfg(feature = "tls")]
            Conn::Tls(t) => &t.sock,
        }
    }

    fn peer_closed(&mut self) -> bool {
        if self.sock().set_nonblocking(true).is_err() {
            return true;
        }
        let closed = match self {
            Conn::Plain(s) => plain_closed(s),
            #[cfg(feature = "tls")]
            Conn::Tls(t) => t.closed(),
        };
        closed || self.sock().set_nonblocking(false).is_err()
    }

    fn send(&mut self, line: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => std::io::Write::write_all(s, line),
            #[cfg(feature = "tls")]
            Conn::Tls(t) => t.send(line),
        }
    }

    fn close(self) {
        match self {
            Conn::Plain(s) => {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            #[cfg(feature = "tls")]
            Conn::Tls(mut t) => {
                t.tls.send_close_notify();
                let _ = t.flush_tls();
                let _ = t.sock.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

fn plain_closed(mut s: &TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    for _ in 0..MAX_POLL_READS {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
    false
}

#[cfg(feature = "tls")]
impl TlsConn {
    /// Drains what the peer sent (session tickets, alerts) through rustls; true on EOF, a
    /// close_notify, or a TLS error. The socket is non-blocking here.
    fn closed(&mut self) -> bool {
        for _ in 0..MAX_POLL_READS {
            match self.tls.read_tls(&mut self.sock) {
                Ok(0) => return true,
                Ok(_) => match self.tls.process_new_packets() {
                    Err(_) => return true,
                    Ok(state) => {
                        if state.peer_has_closed() {
                            return true;
                        }
                        let mut buf = [0u8; 1024];
                        while matches!(self.tls.reader().read(&mut buf), Ok(n) if n > 0) {}
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return true,
            }
        }
        false
    }

    fn flush_tls(&mut self) -> std::io::Result<()> {
        while self.tls.wants_write() {
            self.tls.write_tls(&mut self.sock)?;
        }
        Ok(())
    }

    fn send(&mut self, line: &[u8]) -> std::io::Result<()> {
        let mut rest = line;
        while !rest.is_empty() {
            let n = self.tls.writer().write(rest)?;
            self.flush_tls()?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    "TLS connection accepts no more data",
                ));
            }
            rest = &rest[n..];
        }
        Ok(())
    }
}

/// The `tcp` sink.
pub struct TcpSink {
    name: &'static str,
    address: String,
    host: String,
    port: u16,
    timeout: Duration,
    start_timeout: Duration,
    #[cfg(feature = "tls")]
    tls: Option<TlsSetup>,
    conn: Option<Conn>,
}

impl TcpSink {
    /// Resolves and connects (and handshakes) within `within`.
    fn connect(&mut self, within: Duration) -> Result<Conn, String> {
        let deadline = Instant::now() + within;
        // The CA file is read before connecting, so a bad caPath is reported as such.
        #[cfg(feature = "tls")]
        let tls_config = match self.tls.as_mut() {
            Some(t) => Some(t.config()?),
            None => None,
        };
        let fail = |what: &str| format!("tcp sink: connect to {}: {what}", self.address);
        let addrs: Vec<_> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| fail(&format!("resolve: {e}")))?
            .collect();
        let mut last = format!("{} resolved to no address", self.host);
        let mut sock = None;
        for addr in addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                last = "timed out".into();
                break;
            }
            match TcpStream::connect_timeout(&addr, left) {
                Ok(s) => {
                    sock = Some(s);
                    break;
                }
                Err(e) => last = e.to_string(),
            }
        }
        let sock = sock.ok_or_else(|| fail(&last))?;
        let setup = |s: &TcpStream, t: Duration| -> std::io::Result<()> {
            s.set_nodelay(true)?;
            s.set_write_timeout(Some(t))?;
            s.set_read_timeout(Some(t))
        };
        #[cfg(feature = "tls")]
        if let (Some(config), Some(tls)) = (tls_config, self.tls.as_ref()) {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            setup(&sock, left).map_err(|e| fail(&e.to_string()))?;
            let mut conn =
                tokio_rustls::rustls::ClientConnection::new(config, tls.server_name.clone())
                    .map_err(|e| fail(&format!("tls: {e}")))?;
            let mut s = &sock;
            while conn.is_handshaking() {
                if Instant::now() >= deadline {
                    return Err(fail("tls handshake timed out"));
                }
                conn.complete_io(&mut s)
                    .map_err(|e| fail(&format!("tls handshake: {e}")))?;
            }
            setup(&sock, self.timeout).map_err(|e| fail(&e.to_string()))?;
            return Ok(Conn::Tls(Box::new(TlsConn { tls: conn, sock })));
        }
        setup(&sock, self.timeout).map_err(|e| fail(&e.to_string()))?;
        Ok(Conn::Plain(sock))
    }
}

impl<E: Event> Sink<E> for TcpSink {
    fn start(&mut self) -> Result<(), String> {
        let within = self.timeout.min(self.start_timeout);
        let conn = self.connect(within)?;
        self.conn = Some(conn);
        Ok(())
    }

    fn write(&mut self, item: &SinkItem<E>) -> Result<(), SinkError> {
        let line = json_line(item, false);
        if let Some(c) = self.conn.as_mut()
            && c.peer_closed()
        {
            tracing::debug!(sink = self.name, address = %self.address, "tcp sink: peer closed; reconnecting");
            if let Some(c) = self.conn.take() {
                c.close();
            }
        }
        let conn = match self.conn.as_mut() {
            Some(c) => c,
            None => {
                let c = self.connect(self.timeout).map_err(SinkError::Retryable)?;
                self.conn.insert(c)
            }
        };
        if let Err(e) = conn.send(&line) {
            // The connection is in an unknown state (maybe half a record sent): the next
            // write starts on a fresh one.
            if let Some(c) = self.conn.take() {
                c.close();
            }
            return Err(SinkError::Retryable(format!(
                "tcp sink: write to {}: {e}",
                self.address
            )));
        }
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(c) = self.conn.take() {
            c.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;

    use serde_json::json;

    use super::*;
    use crate::Record;
    use crate::sinks::test_util::{env, map, runtime};

    fn item(n: u64) -> SinkItem<Record> {
        SinkItem::Event {
            value: Record::new(json!({"n": n})),
            origin: Some(("f", n)),
        }
    }

    fn read_line(r: &mut BufReader<TcpStream>) -> String {
        let mut s = String::new();
        r.read_line(&mut s).expect("read line");
        s
    }

    fn accept(l: &TcpListener) -> BufReader<TcpStream> {
        let (s, _) = l.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        BufReader::new(s)
    }

    #[test]
    fn config_validation_names_the_key() {
        validate(&map(json!({"address": "127.0.0.1:9"}))).unwrap();
        validate(&map(json!({"address": "[::1]:9", "connectTimeoutMs": 1}))).unwrap();
        let e = validate(&map(json!({}))).unwrap_err();
        assert!(e.contains("address"), "{e}");
        let e = validate(&map(json!({"address": "h:1", "timeout": 1}))).unwrap_err();
        assert!(e.contains("timeout"), "{e}");
        let e = validate(&map(json!({"address": "nohost"}))).unwrap_err();
        assert!(e.starts_with("config.address:"), "{e}");
        for bad in [0, 600_001] {
            let e = validate(&map(json!({"address": "h:1", "connectTimeoutMs": bad}))).unwrap_err();
            assert!(e.starts_with("config.connectTimeoutMs:"), "{e}");
        }
        let e = validate(&map(json!({"address": "h:1", "tls": {"verify": false}}))).unwrap_err();
        assert!(e.starts_with("config.tls.verify:"), "{e}");
        let e = validate(&map(json!({"address": "h:1", "tls": {"caPath": ""}}))).unwrap_err();
        assert!(e.starts_with("config.tls.caPath:"), "{e}");
        #[cfg(feature = "tls")]
        {
            validate(&map(json!({"address": "h:1", "tls": {}}))).unwrap();
            let e = validate(&map(
                json!({"address": "h:1", "tls": {"serverName": "bad name"}}),
            ))
            .unwrap_err();
            assert!(e.starts_with("config.tls.serverName:"), "{e}");
            // The CA file is not read by validate.
            validate(&map(
                json!({"address": "h:1", "tls": {"caPath": "/nonexistent.pem"}}),
            ))
            .unwrap();
        }
    }

    #[test]
    fn lines_arrive_and_a_vanished_peer_is_retryable_until_it_comes_back() {
        let rt = runtime();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut sink =
            build::<Record>(&map(json!({"address": addr.to_string()})), &env(&rt)).unwrap();
        sink.start().unwrap();
        sink.write(&item(1)).unwrap();
        sink.write(&item(2)).unwrap();
        let mut peer = accept(&listener);
        assert_eq!(read_line(&mut peer), "{\"n\":1}\n");
        assert_eq!(read_line(&mut peer), "{\"n\":2}\n");

        // The listener and the connection go away: the closed peer is noticed before the
        // record is written, and the reconnect is refused.
        drop(peer);
        drop(listener);
        for n in 3..5 {
            match sink.write(&item(n)) {
                Err(SinkError::Retryable(e)) => assert!(e.contains(&addr.to_string()), "{e}"),
                other => panic!("write {n}: {other:?}"),
            }
        }

        // It comes back on the same port: the next write reconnects and is delivered.
        let listener = TcpListener::bind(addr).unwrap();
        sink.write(&item(5)).unwrap();
        let mut peer = accept(&listener);
        assert_eq!(read_line(&mut peer), "{\"n\":5}\n");
        sink.stop();
        assert_eq!(read_line(&mut peer), "", "stop closes the connection");
    }

    #[test]
    fn a_closed_port_fails_start_and_writes_are_retryable() {
        let rt = runtime();
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let mut sink =
            build::<Record>(&map(json!({"address": addr.to_string()})), &env(&rt)).unwrap();
        let e = sink.start().unwrap_err();
        assert!(e.contains(&addr.to_string()), "{e}");
        assert!(matches!(sink.write(&item(1)), Err(SinkError::Retryable(_))));
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_verifies_against_ca_path_and_delivers_lines() {
        use tokio_rustls::rustls;
        let dir = test_support::temp_dir("sink-tcp-tls");
        let Some((cert, key)) = crate::sinks::test_util::self_signed_cert(&dir) else {
            return;
        };
        let server_cfg = crate::sinks::test_util::tls_server_config(&cert, &key);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let mut lines = Vec::new();
            // First connection: the sink without caPath, which must refuse our certificate.
            // Second: the sink that trusts it.
            for _ in 0..2 {
                let (sock, _) = listener.accept().unwrap();
                sock.set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let conn = rustls::ServerConnection::new(server_cfg.clone()).unwrap();
                let mut tls = BufReader::new(rustls::StreamOwned::new(conn, sock));
                loop {
                    let mut s = String::new();
                    match tls.read_line(&mut s) {
                        Ok(n) if n > 0 => lines.push(s),
                        _ => break,
                    }
                }
            }
            lines
        });
        let rt = runtime();
        let untrusted = build::<Record>(
            &map(json!({"address": addr.to_string(), "tls": {"serverName": "localhost"}})),
            &env(&rt),
        );
        let e = untrusted.unwrap().start().unwrap_err();
        assert!(e.contains("tls handshake"), "{e}");

        let cfg = json!({"address": addr.to_string(), "tls": {"caPath": cert}});
        let mut sink = build::<Record>(&map(cfg), &env(&rt)).unwrap();
        sink.start().unwrap();
        sink.write(&item(1)).unwrap();
        sink.write(&item(2)).unwrap();
        sink.stop();
        assert_eq!(server.join().unwrap(), ["{\"n\":1}\n", "{\"n\":2}\n"]);

        let missing = dir.join("missing.pem");
        let cfg = json!({"address": addr.to_string(), "tls": {"caPath": missing}});
        let e = build::<Record>(&map(cfg), &env(&rt))
            .unwrap()
            .start()
            .unwrap_err();
        assert!(e.starts_with("config.tls.caPath:"), "{e}");
    }
}
