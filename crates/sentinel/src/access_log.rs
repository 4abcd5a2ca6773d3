//! The access log (spec §5 SEN-R46): one JSON line per finished request, written by a
//! background task through a bounded queue; when the queue is full the line is dropped and
//! counted, so a slow disk never slows the request path.
//!
//! The destination (`off`, `stdout` or a file) follows reloads, and a file is reopened on
//! every reload so log rotation works with `kill -HUP`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use ron_metrics::Counter;

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::config;

/// Lines the writer queue holds before new ones are dropped.
pub const QUEUE_LINES: usize = 65_536;

/// Everything one access line says.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// `correlation_id`.
    pub correlation_id: String,
    /// `client_ip`.
    pub client_ip: String,
    /// `method`.
    pub method: String,
    /// `host`.
    pub host: String,
    /// `path` (no query).
    pub path: String,
    /// `protocol` (`HTTP/1.1`, `HTTP/2.0`, …).
    pub protocol: String,
    /// `route`.
    pub route: String,
    /// `upstream` (static name for static upstreams).
    pub upstream: Option<String>,
    /// `target` (`-` for static upstreams).
    pub target: Option<String>,
    /// `status` (499 when the client went away).
    pub status: u16,
    /// `latency_ms`.
    pub latency_ms: f64,
    /// `upstream_latency_ms` (to the response head).
    pub upstream_latency_ms: Option<f64>,
    /// `bytes_in` (request body bytes).
    pub bytes_in: u64,
    /// `bytes_out` (response body bytes).
    pub bytes_out: u64,
    /// `attempts`.
    pub attempts: u32,
    /// `error` (an outcome or error code).
    pub error: Option<String>,
    /// `user_agent`.
    pub user_agent: Option<String>,
}

impl Record {
    /// The JSON line (without newline).
    pub fn to_json(&self) -> String {
        let ts = ron_metrics::readyz::rfc3339_millis(std::time::SystemTime::now());
        let opt = |v: &Option<String>| v.as_ref().map_or(Value::Null, |s| Value::from(s.as_str()));
        json!({
            "ts": ts,
            "correlation_id": self.correlation_id,
            "client_ip": self.client_ip,
            "method": self.method,
            "host": self.host,
            "path": self.path,
            "protocol": self.protocol,
            "route": self.route,
            "upstream": opt(&self.upstream),
            "target": opt(&self.target),
            "status": self.status,
            "latency_ms": self.latency_ms,
            "upstream_latency_ms": self.upstream_latency_ms,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "attempts": self.attempts,
            "error": opt(&self.error),
            "user_agent": opt(&self.user_agent),
        })
        .to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Dest {
    Off,
    Stdout,
    File(PathBuf),
}

impl From<&config::AccessLog> for Dest {
    fn from(c: &config::AccessLog) -> Dest {
        match c {
            config::AccessLog::Off => Dest::Off,
            config::AccessLog::Stdout => Dest::Stdout,
            config::AccessLog::File(p) => Dest::File(p.clone()),
        }
    }
}

/// The queue side, shared by every request.
pub struct AccessLog {
    tx: mpsc::Sender<String>,
    dest: watch::Sender<Dest>,
    /// `sentinel_access_log_dropped_total`.
    dropped: Counter,
}

impl AccessLog {
    /// Starts the writer for `cfg` (inside a tokio runtime); drops count in `dropped`,
    /// failed file writes in `write_errors`.
    pub fn start(
        cfg: &config::AccessLog,
        dropped: Counter,
        write_errors: Counter,
    ) -> Arc<AccessLog> {
        let (tx, rx) = mpsc::channel(QUEUE_LINES);
        let (dest, dest_rx) = watch::channel(Dest::from(cfg));
        tokio::spawn(writer(rx, dest_rx, write_errors));
        Arc::new(AccessLog { tx, dest, dropped })
    }

    /// Whether lines are wanted at all (skip building records when off).
    pub fn enabled(&self) -> bool {
        *self.dest.borrow() != Dest::Off
    }

    /// Queues `rec`; a full queue drops it and counts the drop.
    pub fn log(&self, rec: &Record) {
        if !self.enabled() {
            return;
        }
        if self.tx.try_send(rec.to_json()).is_err() {
            self.dropped.inc();
        }
    }

    /// A reload: the new destination, and a reopened file either way.
    pub fn reconfigure(&self, cfg: &config::AccessLog) {
        self.dest.send_replace(Dest::from(cfg));
    }
}

async fn writer(
    mut rx: mpsc::Receiver<String>,
    mut dest_rx: watch::Receiver<Dest>,
    errors: Counter,
) {
    let mut file = open(&dest_rx.borrow_and_update(), &errors);
    loop {
        tokio::select! {
            line = rx.recv() => {
                let Some(line) = line else { return };
                let dest = dest_rx.borrow().clone();
                match dest {
                    Dest::Off => {}
                    Dest::Stdout => {
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(out, "{line}");
                    }
                    Dest::File(_) => {
                        let ok = file.as_mut().is_some_and(|f| writeln!(f, "{line}").is_ok());
                        if !ok {
                            errors.inc();
                        }
                    }
                }
            }
            changed = dest_rx.changed() => {
                if changed.is_err() {
                    return;
                }
                file = open(&dest_rx.borrow_and_update(), &errors);
            }
        }
    }
}

fn open(dest: &Dest, errors: &Counter) -> Option<std::fs::File> {
    let Dest::File(path) = dest else {
        return None;
    };
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        Ok(f) => Some(f),
        Err(e) => {
            errors.inc();
            tracing::error!(path = %path.display(), error = %e, "cannot open the access log");
            None
        }
    }
}
