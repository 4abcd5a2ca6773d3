//! Black-box harness: starts the real `rustchat` binary on 127.0.0.1:0 in its own working
//! directory, on SQLite (default) or on a fresh database of the shared PostgreSQL server,
//! and speaks JSON to it over plain HTTP/1.1.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::{PgServer, Service, http_raw, json_field, temp_dir};

/// A strong secret for tests (tests forge tokens with it).
pub const JWT_SECRET: &str = "c2VjcmV0LWZvci10ZXN0cy1vbmx5LXJhbmRvbS1ieXRlcy0wMTIzNDU2Nzg5YWJjZGVm";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A running server.
pub struct Chat {
    pub svc: Service,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub db: Db,
    pub db_url: Option<String>,
}

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rustchat"))
}

/// A fresh PostgreSQL database URL, or None (test skipped) when PostgreSQL is absent.
pub fn pg_url() -> Option<String> {
    PgServer::shared().map(|pg| pg.fresh_database())
}

impl Chat {
    /// Starts on `db` with extra environment; None when `db` is unavailable here.
    pub fn start(db: Db, env: &[(&str, &str)]) -> Option<Chat> {
        let dir = temp_dir("rustchat");
        let db_url = match db {
            Db::Sqlite => None,
            Db::Postgres => Some(pg_url()?),
        };
        Some(Chat::start_in(dir, db, db_url, env))
    }

    /// Starts in `dir` (reused across restarts).
    pub fn start_in(dir: PathBuf, db: Db, db_url: Option<String>, env: &[(&str, &str)]) -> Chat {
        // server.port must be 1-65535 (CHAT-R3), so the harness picks a free port itself.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port()
            .to_string();
        // Tests that are not about rate limits log in far more than 10 times a minute from
        // one address (spec §10 preamble); rate-limit tests override these.
        let mut all: Vec<(&str, &str)> = Vec::new();
        if !env
            .iter()
            .any(|(k, _)| k.contains("RATE_LIMIT") || *k == "RUSTCHAT_CONFIG")
        {
            all.push(("RUSTCHAT_SECURITY_RATE_LIMIT_AUTH_PER_MINUTE", "100000"));
            all.push(("RUSTCHAT_SECURITY_RATE_LIMIT_WS_PER_MINUTE", "100000"));
        }
        all.extend_from_slice(&[("RUSTCHAT_HOST", "127.0.0.1"), ("RUSTCHAT_PORT", &port)]);
        // A test that passes RUSTCHAT_JWT_SECRET itself decides; an empty value means "no
        // secret at all" (the development ephemeral-secret path).
        if !env.iter().any(|(k, _)| *k == "RUSTCHAT_JWT_SECRET") {
            all.push(("RUSTCHAT_JWT_SECRET", JWT_SECRET));
        }
        if let Some(u) = &db_url {
            all.push(("RUSTCHAT_DATABASE_URL", u));
        }
        all.extend(
            env.iter()
                .filter(|(k, v)| !(*k == "RUSTCHAT_JWT_SECRET" && v.is_empty())),
        );
        let mut cmd = test_support::command(&bin(), &all);
        cmd.current_dir(&dir);
        let (svc, seen) = Service::start(cmd, "rustchat listening", 1);
        let addr: SocketAddr = json_field(&seen[0], "bound_addr")
            .expect("bound_addr")
            .parse()
            .expect("socket addr");
        let chat = Chat {
            svc,
            addr,
            dir,
            db,
            db_url,
        };
        chat.wait_ready();
        chat
    }

    /// Waits for `/api/v1/health/ready` to answer 200.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let probe = test_support::request("GET", "/api/v1/health/ready", &[]);
            if http_raw(self.addr, probe.as_bytes(), false).is_ok_and(|r| r.status == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("rustchat not ready within 30 s");
    }

    /// One request; returns status, headers and the JSON body (Null when not JSON).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        self.call_raw(
            method,
            path,
            token,
            body.map(|b| b.to_string()).as_deref(),
            &[],
        )
    }

    /// One request with a raw body and extra header lines.
    pub fn call_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        extra: &[&str],
    ) -> Reply {
        let mut headers: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if let Some(t) = token {
            headers.push(format!("Authorization: Bearer {t}"));
        }
        let body = body.unwrap_or("");
        if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            headers.push("Content-Type: application/json".into());
            headers.push(format!("Content-Length: {}", body.len()));
        }
        let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
        let mut raw = test_support::request(method, path, &refs).into_bytes();
        raw.extend_from_slice(body.as_bytes());
        let r = http_raw(self.addr, &raw, method == "HEAD")
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let json = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        Reply {
            status: r.status,
            headers: r.headers,
            json,
            text: String::from_utf8_lossy(&r.body).into_owned(),
        }
    }

    /// Registers and logs in a user; returns (token, user id).
    pub fn user(&self, name: &str) -> (String, String) {
        let r = self.call(
            "POST",
            "/api/v1/auth/register",
            None,
            Some(&serde_json::json!({"username": name, "email": format!("{name}@example.com"), "password": "password-123"})),
        );
        assert_eq!(r.status, 201, "register {name}: {}", r.text);
        let id = r.json["id"].as_str().unwrap().to_string();
        (self.login(name), id)
    }

    /// Logs in; returns the token.
    pub fn login(&self, name: &str) -> String {
        let r = self.call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(&serde_json::json!({"login": name, "password": "password-123"})),
        );
        assert_eq!(r.status, 200, "login {name}: {}", r.text);
        r.json["token"].as_str().unwrap().to_string()
    }

    /// A SQL count through the backend's own client (psql or the sqlite file via the server
    /// is not possible), PostgreSQL only.
    pub fn pg_count(&self, sql: &str) -> i64 {
        let url = self.db_url.as_ref().expect("postgres test");
        let db = url.rsplit('/').next().unwrap();
        PgServer::shared()
            .unwrap()
            .psql(db, sql)
            .trim()
            .parse()
            .unwrap()
    }

    /// Restarts the process in the same directory and database.
    pub fn restart(self, env: &[(&str, &str)]) -> Chat {
        let Chat {
            mut svc,
            dir,
            db,
            db_url,
            ..
        } = self;
        let _ = svc.child.kill();
        let _ = svc.child.wait();
        Chat::start_in(dir, db, db_url, env)
    }
}

/// A response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub json: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Runs the binary with args/env (no server), returning (status, stdout, stderr).
pub fn run_cli(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut cmd: Command = test_support::command(&bin(), env);
    cmd.current_dir(dir).args(args);
    let out = cmd.output().expect("run rustchat");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Defines a test once per backend: `both!(name, |db| { ... })`.
#[macro_export]
macro_rules! both {
    ($name:ident, |$db:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn sqlite() {
                let $db = $crate::common::Db::Sqlite;
                $body
            }
            #[test]
            fn postgres() {
                let $db = $crate::common::Db::Postgres;
                if test_support::PgServer::shared().is_none() {
                    return;
                }
                $body
            }
        }
    };
}

/// One part of a [`multipart`] body: field name, `Some((file name, content type))` for a
/// file part, bytes.
pub type Part<'a> = (&'a str, Option<(&'a str, &'a str)>, &'a [u8]);

/// A `multipart/form-data` body: (content type, bytes).
pub fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "rustchat-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, file, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some((file_name, ct)) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\n\
                     Content-Type: {ct}\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

impl Chat {
    /// One request with a raw body of the given content type; the raw response.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> test_support::Response {
        let mut headers = vec![
            format!("Content-Type: {content_type}"),
            format!("Content-Length: {}", body.len()),
        ];
        if let Some(t) = token {
            headers.push(format!("Authorization: Bearer {t}"));
        }
        let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
        let mut raw = test_support::request(method, path, &refs).into_bytes();
        raw.extend_from_slice(body);
        http_raw(self.addr, &raw, false).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// `POST /api/v1/files` with `channel_id` then `file`.
    pub fn upload(
        &self,
        token: &str,
        channel_id: &str,
        file_name: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> test_support::Response {
        let (ct, body) = multipart(&[
            ("channel_id", None, channel_id.as_bytes()),
            ("file", Some((file_name, content_type)), bytes),
        ]);
        self.send("POST", "/api/v1/files", Some(token), &ct, &body)
    }

    /// The current value of a metric series (see `test_support::sample_value`).
    pub fn metric(&self, series: &str) -> f64 {
        let page = test_support::get(self.addr, "/api/v1/health/metrics", &[]);
        test_support::sample_value(&page.text(), series)
    }
}

impl Chat {
    /// Creates a team as `admin` (who becomes its team_admin); returns its id.
    pub fn team(&self, admin: &str, name: &str) -> String {
        let r = self.call(
            "POST",
            "/api/v1/teams",
            Some(admin),
            Some(&serde_json::json!({"name": name, "display_name": name})),
        );
        assert_eq!(r.status, 201, "create team {name}: {}", r.text);
        r.json["id"].as_str().unwrap().to_string()
    }

    /// Adds `user_id` to the team (as `admin`).
    pub fn add_to_team(&self, admin: &str, team: &str, user_id: &str) {
        let r = self.call(
            "POST",
            &format!("/api/v1/teams/{team}/members"),
            Some(admin),
            Some(&serde_json::json!({"user_id": user_id})),
        );
        assert_eq!(r.status, 201, "add {user_id} to {team}: {}", r.text);
    }

    /// Creates a `public` or `private` channel as `tok`; returns its id.
    pub fn channel(&self, tok: &str, team: &str, name: &str, kind: &str) -> String {
        let r = self.call(
            "POST",
            &format!("/api/v1/teams/{team}/channels"),
            Some(tok),
            Some(&serde_json::json!({"name": name, "display_name": name, "type": kind})),
        );
        assert_eq!(r.status, 201, "create channel {name}: {}", r.text);
        r.json["id"].as_str().unwrap().to_string()
    }

    /// Joins a public channel as `tok`.
    pub fn join(&self, tok: &str, channel: &str) {
        let r = self.call(
            "POST",
            &format!("/api/v1/channels/{channel}/join"),
            Some(tok),
            None,
        );
        assert_eq!(r.status, 200, "join {channel}: {}", r.text);
    }

    /// Posts `message` as `tok`; returns the post.
    pub fn post(&self, tok: &str, channel: &str, message: &str) -> Value {
        let r = self.call(
            "POST",
            &format!("/api/v1/channels/{channel}/posts"),
            Some(tok),
            Some(&serde_json::json!({"message": message})),
        );
        assert_eq!(r.status, 201, "post {message:?}: {}", r.text);
        r.json
    }
}

/// Percent-encodes everything but unreserved characters (for query strings).
pub fn urlencode(s: &str) -> String {
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

/// `node` from PATH when it is 20.11 or newer (node:test reporters, `--test-timeout`,
/// global fetch), else None after a skip notice (a panic when RON_REQUIRE_EXTERNAL_TOOLS
/// is set).
pub fn node_20_11() -> Option<PathBuf> {
    let node = test_support::external("node")?;
    let version = Command::new(&node)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut parts = version
        .trim_start_matches('v')
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (20, 11) {
        assert!(
            !test_support::external_tools_required(),
            "node >= 20.11 is required ({} is set), found {version:?}",
            test_support::ENV_REQUIRE_EXTERNAL_TOOLS
        );
        eprintln!("skipping: node >= 20.11 needed, found {version:?}");
        return None;
    }
    Some(node)
}

/// Runs `node --test` (spec reporter, one file at a time, `per_test` as each test's time
/// limit) in `dir` with `env`; Ok(stdout) when every test passed, Err(report with both
/// streams) when one failed or the run overran `limit`.
pub fn run_node_tests(
    node: &std::path::Path,
    dir: &std::path::Path,
    env: &[(&str, &str)],
    per_test: Duration,
    limit: Duration,
) -> Result<String, String> {
    use std::io::Read;
    use std::process::Stdio;
    let mut cmd = Command::new(node);
    cmd.args([
        "--test",
        "--test-reporter=spec",
        "--test-concurrency=1",
        &format!("--test-timeout={}", per_test.as_millis()),
    ])
    .current_dir(dir)
    .env("NO_COLOR", "1")
    .env_remove("NODE_OPTIONS")
    .env_remove("FORCE_COLOR")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", node.display()));
    let readers = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .map(|stream| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = stream {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for node") {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let [out, err] = readers.map(|r| r.join().unwrap_or_default());
    match status {
        Some(st) if st.success() => Ok(out),
        Some(st) => Err(format!(
            "node exit {st}\n--- node stdout ---\n{out}\n--- node stderr ---\n{err}"
        )),
        None => Err(format!(
            "node did not finish within {limit:?}\n--- node stdout ---\n{out}\n--- node stderr ---\n{err}"
        )),
    }
}
