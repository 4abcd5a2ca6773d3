//! `mongoose-server admin [--addr A] [--token T] [--json] [--timeout-ms N] <command> [args..]`
//! (MNG-R09): `POST /admin/commands/<command>` and print a table, or the raw body with
//! `--json`.
//!
//! Exit statuses: 0 ok; 1 the server answered 4xx/5xx; 2 usage; 3 connect failure or
//! timeout. Defaults come from `MONGOOSE_ADMIN_ADDR` (else `127.0.0.1:9200`) and
//! `MONGOOSE_ADMIN_TOKEN`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Default admin address of the client.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9200";
/// Largest response the client reads.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// The client's outcome: (exit status, stdout text, stderr text).
pub type Outcome = (u8, String, String);

/// One admin call.
#[derive(Debug, Clone)]
pub struct Call {
    /// `host:port`.
    pub addr: String,
    /// Bearer token.
    pub token: Option<String>,
    /// Print the raw body.
    pub json: bool,
    /// Connect + request + response budget.
    pub timeout: Duration,
    /// Command name.
    pub command: String,
    /// Arguments.
    pub args: Vec<String>,
}

fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .collect();
    let mut last = format!("{addr}: no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    Err(last)
}

/// Sends the request; Err is a connect or timeout failure (exit 3).
fn roundtrip(c: &Call) -> Result<(u16, String), String> {
    let started = Instant::now();
    let mut s = connect(&c.addr, c.timeout)?;
    let left = c
        .timeout
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(1));
    s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(left)).map_err(|e| e.to_string())?;
    let body = serde_json::json!({"args": c.args}).to_string();
    let auth = c
        .token
        .as_ref()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST /admin/commands/{} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n{body}",
        percent_encode(&c.command),
        c.addr,
        body.len()
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("{}: {e}", c.addr))?;
    let mut buf = Vec::new();
    s.take(MAX_RESPONSE_BYTES as u64)
        .read_to_end(&mut buf)
        .map_err(|e| format!("{}: {e}", c.addr))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{}: incomplete response", c.addr))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("{}: bad status line", c.addr))?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Renders a command's output for people: arrays of objects as aligned columns (`name`,
/// `feed`, `group` first), objects as `key value` lines, anything else as JSON.
pub fn render(output: &Value) -> String {
    match output {
        Value::Array(rows) if !rows.is_empty() && rows.iter().all(Value::is_object) => {
            // Identifying columns first, the rest in key order.
            let mut cols: Vec<String> = rows[0]
                .as_object()
                .expect("object")
                .keys()
                .cloned()
                .collect();
            cols.sort_by_key(|c| {
                let first = ["name", "feed", "group"].iter().position(|k| k == c);
                (first.unwrap_or(usize::MAX), c.clone())
            });
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| cols.iter().map(|c| cell(&r[c])).collect())
                .collect();
            let widths: Vec<usize> = cols
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    table
                        .iter()
                        .map(|r| r[i].chars().count())
                        .max()
                        .unwrap_or(0)
                        .max(c.len())
                })
                .collect();
            let line = |cells: &[String]| {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_string()
            };
            let mut out = line(&cols.iter().map(|c| c.to_uppercase()).collect::<Vec<_>>());
            for r in &table {
                out.push('\n');
                out.push_str(&line(r));
            }
            out.push('\n');
            out
        }
        Value::Array(rows) if rows.is_empty() => "(none)\n".into(),
        Value::Object(m) => {
            let w = m.keys().map(String::len).max().unwrap_or(0);
            m.iter()
                .map(|(k, v)| format!("{k:<w$}  {}\n", cell(v)))
                .collect()
        }
        other => format!("{other}\n"),
    }
}

/// Runs the call and decides the exit status and output.
pub fn run(c: &Call) -> Outcome {
    match roundtrip(c) {
        Err(e) => (3, String::new(), format!("admin: cannot reach {e}\n")),
        Ok((status, body)) => {
            let ok = (200..300).contains(&status);
            if c.json {
                let out = format!("{}\n", body.trim_end());
                return if ok {
                    (0, out, String::new())
                } else {
                    (1, out, String::new())
                };
            }
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::String(body.clone()));
            if ok {
                (0, render(&v["output"]), String::new())
            } else {
                let msg = match (&v["code"], &v["message"]) {
                    (Value::String(code), Value::String(m)) => format!("{code}: {m}"),
                    _ => body.trim().to_string(),
                };
                (1, String::new(), format!("admin: {status} {msg}\n"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_columns_and_objects_list_keys() {
        let t = render(&json!([{"name": "a", "depth": 10}, {"name": "long-name", "depth": 2}]));
        assert_eq!(t, "NAME       DEPTH\na          10\nlong-name  2\n");
        let o = render(&json!({"enabled": true, "x": null}));
        assert_eq!(o, "enabled  true\nx        -\n");
        assert_eq!(render(&json!([])), "(none)\n");
    }

    #[test]
    fn chunked_bodies_are_joined_and_names_are_escaped() {
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
        assert_eq!(percent_encode("queues.reconnect"), "queues.reconnect");
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn a_closed_port_is_exit_3() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (code, _, err) = run(&Call {
            addr: format!("127.0.0.1:{port}"),
            token: None,
            json: false,
            timeout: Duration::from_millis(500),
            command: "queues".into(),
            args: vec![],
        });
        assert_eq!(code, 3, "{err}");
        assert!(err.contains("cannot reach"), "{err}");
    }
}
