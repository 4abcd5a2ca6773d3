//! `file`: appends JSONL records to a file (§2.4, §3.2).
//!
//! Keys: `path`\*, `flushEveryMs: 100` (0 = flush every write), `fsync: false`,
//! `createDirs: true`, `mode: 0640`.
//!
//! - **Opening** happens in `start` (or at the first write if `start` was not called): the
//!   parent directories are created when `createDirs`, the file is opened for append and
//!   never truncated. A file this sink creates gets exactly `mode` (set again after
//!   creation, so the process umask cannot narrow it); an existing file keeps its mode.
//! - **`mode`** is an integer up to `0o777` (YAML `0o640` or `416`), or octal digits as a
//!   string (`"0640"`). YAML's `0640` (a leading zero, which YAML 1.2 parsers read as the
//!   decimal 640, as a float) is taken as the octal digits it shows; an integer 640 is an
//!   error (it is above `0o777`), since it is ambiguous.
//! - **Flushing.** With `flushEveryMs: 0` every record is written to the file before `write`
//!   returns. Otherwise records go through a `BufWriter`; a write flushes first when
//!   `flushEveryMs` has passed since the last flush, and a small `mg-file-flush` thread
//!   flushes a dirty buffer every `flushEveryMs`, so the last records of a burst reach the
//!   file within that bound even when no further write comes (the sink agent only calls
//!   `flush` at shutdown). With `fsync: true` every flush is followed by `fdatasync`.
//! - **Verdicts.** Written (or buffered) → `Ok`; any I/O error → `Retryable`. A flush that is
//!   due runs before the record is appended, so a failing disk is reported without the
//!   record entering the buffer (no duplicate when the agent retries it).
//! - **Quarantine files.** [`build_for_quarantine`] builds the sink for the configured
//!   `quarantine.sink`: its file is created with mode 0600 at most (§7, records carry
//!   payloads), whatever `mode` says.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::{Ticker, check_range, json_line, parse};
use crate::event::Event;
use crate::processor::ConfigMap;
use crate::sink::SinkItem;
use crate::sink_agent::{Sink, SinkEnv, SinkError};

/// Default `flushEveryMs`.
pub const DEFAULT_FLUSH_EVERY_MS: u32 = 100;
/// Longest `flushEveryMs` (one hour).
pub const MAX_FLUSH_EVERY_MS: u32 = 3_600_000;
/// Default `mode`.
pub const DEFAULT_MODE: u32 = 0o640;
/// The widest mode a quarantine file is created with (§7).
pub const QUARANTINE_MODE: u32 = 0o600;

/// `file` sink config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileConfig {
    /// The file appended to.
    pub path: String,
    /// Flush when this many ms have passed since the last flush; 0 flushes every write.
    #[serde(default = "default_flush_every_ms")]
    pub flush_every_ms: u32,
    /// `fdatasync` after each flush.
    #[serde(default)]
    pub fsync: bool,
    /// Create missing parent directories.
    #[serde(default = "yes")]
    pub create_dirs: bool,
    /// Permission bits of a file this sink creates.
    #[serde(default = "default_mode", deserialize_with = "de_mode")]
    pub mode: u32,
}

fn default_flush_every_ms() -> u32 {
    DEFAULT_FLUSH_EVERY_MS
}
fn yes() -> bool {
    true
}
fn default_mode() -> u32 {
    DEFAULT_MODE
}

fn de_mode<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = Value::deserialize(d)?;
    mode_from_json(&v).map_err(serde::de::Error::custom)
}

/// Reads a file mode; see the module docs for the accepted forms.
fn mode_from_json(v: &Value) -> Result<u32, String> {
    let octal = |digits: &str| -> Result<u32, String> {
        if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(format!("{digits:?} is not an octal file mode such as 0640"));
        }
        u32::from_str_radix(digits, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| format!("{digits:?} is above 0777"))
    };
    match v {
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(m), _) if m <= 0o777 => Ok(m as u32),
            (Some(m), _) => Err(format!(
                "{m} is above 0o777 (511); write the mode in octal, e.g. 0o640"
            )),
            // YAML's `0640` arrives as the float 640.0: take the digits it shows as octal.
            (None, Some(f)) if f.fract() == 0.0 && (0.0..=777.0).contains(&f) => {
                octal(&format!("{}", f as u64))
            }
            _ => Err(format!("{n} is not a file mode")),
        },
        Value::String(s) => {
            let t = s.trim();
            octal(t.strip_prefix("0o").unwrap_or(t))
        }
        other => Err(format!(
            "expected an octal file mode such as 0o640, got {other}"
        )),
    }
}

fn checked(config: &ConfigMap) -> Result<FileConfig, String> {
    let cfg: FileConfig = parse(config)?;
    if cfg.path.trim().is_empty() {
        return Err("config.path: must not be empty".into());
    }
    if cfg.path.contains('\0') {
        return Err("config.path: must not contain a NUL byte".into());
    }
    check_range("flushEveryMs", cfg.flush_every_ms, 0, MAX_FLUSH_EVERY_MS)?;
    Ok(cfg)
}

/// Checks a `file` sink's `config` (no side effects: the file is not touched).
pub fn validate(config: &ConfigMap) -> Result<(), String> {
    checked(config).map(|_| ())
}

/// Builds a `file` sink (no I/O: the file is opened in `start`).
pub fn build<E: Event>(config: &ConfigMap, env: &SinkEnv) -> Result<Box<dyn Sink<E>>, String> {
    Ok(Box::new(FileSink::new(checked(config)?, env.name)))
}

/// Builds a `file` sink for `quarantine.sink`: like [`build`], but a file it creates gets
/// `mode & 0600` ([`QUARANTINE_MODE`] by default), since records carry payloads (§7).
pub fn build_for_quarantine<E: Event>(
    config: &ConfigMap,
    env: &SinkEnv,
) -> Result<Box<dyn Sink<E>>, String> {
    let mut cfg = checked(config)?;
    cfg.mode &= QUARANTINE_MODE;
    Ok(Box::new(FileSink::new(cfg, env.name)))
}

/// The open file and its flush bookkeeping, shared with the flusher thread.
struct Open {
    out: BufWriter<File>,
    last_flush: Instant,
    dirty: bool,
}

impl Open {
    fn flush(&mut self, fsync: bool) -> std::io::Result<()> {
        self.out.flush()?;
        if fsync {
            self.out.get_ref().sync_data()?;
        }
        self.dirty = false;
        self.last_flush = Instant::now();
        Ok(())
    }
}

/// The `file` sink.
pub struct FileSink {
    cfg: FileConfig,
    name: &'static str,
    open: Option<Arc<Mutex<Open>>>,
    flusher: Option<Ticker>,
}

impl FileSink {
    /// A sink for `cfg`, named `name` in logs; nothing is opened yet.
    pub fn new(cfg: FileConfig, name: &'static str) -> Self {
        FileSink {
            cfg,
            name,
            open: None,
            flusher: None,
        }
    }

    fn flush_every(&self) -> Duration {
        Duration::from_millis(u64::from(self.cfg.flush_every_ms))
    }

    fn open_file(&self) -> Result<File, String> {
        let path = PathBuf::from(&self.cfg.path);
        if self.cfg.create_dirs
            && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("file sink: create {}: {e}", parent.display()))?;
        }
        let fail = |e: std::io::Error| format!("file sink: open {}: {e}", path.display());
        let created = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(self.cfg.mode)
            .open(&path);
        match created {
            Ok(file) => {
                // `mode` at creation is narrowed by the umask; the spec's mode is exact.
                file.set_permissions(Permissions::from_mode(self.cfg.mode))
                    .map_err(fail)?;
                Ok(file)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                OpenOptions::new().append(true).open(&path).map_err(fail)
            }
            Err(e) => Err(fail(e)),
        }
    }

    /// The open file, opening it (and starting the flusher) on first use.
    fn ensure_open(&mut self) -> Result<Arc<Mutex<Open>>, String> {
        if let Some(open) = &self.open {
            return Ok(open.clone());
        }
        let file = self.open_file()?;
        let open = Arc::new(Mutex::new(Open {
            out: BufWriter::with_capacity(64 * 1024, file),
            last_flush: Instant::now(),
            dirty: false,
        }));
        if !self.flush_every().is_zero() {
            self.flusher = Some(self.spawn_flusher(open.clone())?);
        }
        self.open = Some(open.clone());
        Ok(open)
    }

    fn spawn_flusher(&self, open: Arc<Mutex<Open>>) -> Result<Ticker, String> {
        let (fsync, name) = (self.cfg.fsync, self.name);
        let mut failing = false;
        Ticker::spawn("mg-file-flush", self.flush_every(), move || {
            let mut o = open.lock();
            if !o.dirty {
                return;
            }
            match o.flush(fsync) {
                Ok(()) => failing = false,
                Err(e) => {
                    // Logged once per failing spell, not every tick; the next write reports
                    // the error to the agent as retryable.
                    if !failing {
                        tracing::warn!(sink = name, error = %e, "file sink flush failed");
                    }
                    failing = true;
                }
            }
        })
    }
}

fn retryable(path: &str, e: std::io::Error) -> SinkError {
    SinkError::Retryable(format!("file sink: write {path}: {e}"))
}

impl<E: Event> Sink<E> for FileSink {
    fn start(&mut self) -> Result<(), String> {
        self.ensure_open().map(|_| ())
    }

    fn write(&mut self, item: &SinkItem<E>) -> Result<(), SinkError> {
        let line = json_line(item, false);
        let open = self.ensure_open().map_err(SinkError::Retryable)?;
        let mut o = open.lock();
        if self.cfg.flush_every_ms == 0 {
            // Straight to the file: nothing is ever left in the buffer in this mode, so a
            // failed write cannot leave the record behind to be written twice.
            o.out
                .get_mut()
                .write_all(&line)
                .map_err(|e| retryable(&self.cfg.path, e))?;
            if self.cfg.fsync {
                o.out
                    .get_ref()
                    .sync_data()
                    .map_err(|e| retryable(&self.cfg.path, e))?;
            }
            return Ok(());
        }
        if o.dirty && o.last_flush.elapsed() >= self.flush_every() {
            o.flush(self.cfg.fsync)
                .map_err(|e| retryable(&self.cfg.path, e))?;
        }
        o.out
            .write_all(&line)
            .map_err(|e| retryable(&self.cfg.path, e))?;
        o.dirty = true;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        match &self.open {
            Some(open) => open
                .lock()
                .flush(self.cfg.fsync)
                .map_err(|e| retryable(&self.cfg.path, e)),
            None => Ok(()),
        }
    }

    fn stop(&mut self) {
        self.flusher.take();
        if let Some(open) = self.open.take()
            && let Err(e) = open.lock().flush(self.cfg.fsync)
        {
            tracing::error!(sink = self.name, error = %e, "file sink: final flush failed");
        }
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        // Joins the flusher; BufWriter's own drop flushes what is left.
        self.flusher.take();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::Record;
    use crate::sinks::test_util::{env, map, runtime};

    fn item(v: serde_json::Value) -> SinkItem<Record> {
        SinkItem::Event {
            value: Record::new(v),
            origin: Some(("f", 7)),
        }
    }

    fn sink(cfg: serde_json::Value) -> Box<dyn Sink<Record>> {
        let rt = runtime();
        build::<Record>(&map(cfg), &env(&rt)).unwrap()
    }

    fn mode_of(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn config_validation_names_the_key() {
        validate(&map(json!({"path": "/tmp/x"}))).unwrap();
        let e = validate(&map(json!({}))).unwrap_err();
        assert!(e.contains("path"), "{e}");
        let e = validate(&map(json!({"path": "/tmp/x", "flushEvery": 1}))).unwrap_err();
        assert!(e.contains("flushEvery"), "{e}");
        let e = validate(&map(json!({"path": "/tmp/x", "flushEveryMs": 3_600_001}))).unwrap_err();
        assert!(e.starts_with("config.flushEveryMs:"), "{e}");
        let e = validate(&map(json!({"path": "/tmp/x", "flushEveryMs": -1}))).unwrap_err();
        assert!(e.starts_with("config.flushEveryMs:"), "{e}");
        let e = validate(&map(json!({"path": ""}))).unwrap_err();
        assert!(e.starts_with("config.path:"), "{e}");
        for bad in [
            json!(640),
            json!(0o1000),
            json!("0x1"),
            json!("9"),
            json!(true),
        ] {
            let e = validate(&map(json!({"path": "/x", "mode": bad}))).unwrap_err();
            assert!(e.starts_with("config.mode:"), "{bad}: {e}");
        }
        // Validation has no side effects: the directory is not created.
        let dir = test_support::temp_dir("sink-file-validate");
        let path = dir.join("sub/out.jsonl");
        validate(&map(json!({"path": path}))).unwrap();
        assert!(!dir.join("sub").exists());
    }

    #[test]
    fn mode_accepts_integers_octal_strings_and_yaml_leading_zero() {
        let parse_mode = |v: serde_json::Value| {
            checked(&map(json!({"path": "/x", "mode": v})))
                .unwrap()
                .mode
        };
        assert_eq!(parse_mode(json!(416)), 0o640);
        assert_eq!(parse_mode(json!("0640")), 0o640);
        assert_eq!(parse_mode(json!("0o600")), 0o600);
        assert_eq!(parse_mode(json!(640.0)), 0o640);
        assert_eq!(checked(&map(json!({"path": "/x"}))).unwrap().mode, 0o640);
        // The YAML the spec shows, through the config parser.
        for (text, want) in [("0640", 0o640), ("0o600", 0o600), ("420", 0o644)] {
            let yaml = format!(
                "eventSinks:\n  - name: out\n    type: file\n    config: {{path: /x, mode: {text}}}\n"
            );
            let cfg = crate::config::from_yaml_str(&yaml, "test").unwrap();
            let got = checked(&cfg.event_sinks[0].config).unwrap().mode;
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn records_are_appended_as_jsonl_and_never_truncated() {
        let dir = test_support::temp_dir("sink-file-append");
        let path = dir.join("out.jsonl");
        let cfg = json!({"path": path, "flushEveryMs": 0, "fsync": true});
        let mut s = sink(cfg.clone());
        s.start().unwrap();
        s.write(&item(json!({"n": 1}))).unwrap();
        s.write(&item(json!({"n": 2}))).unwrap();
        s.stop();
        drop(s);
        let mut s = sink(cfg);
        s.start().unwrap();
        s.write(&item(json!({"n": 3, "s": "a\nb"}))).unwrap();
        s.stop();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"n\":1}\n{\"n\":2}\n{\"n\":3,\"s\":\"a\\nb\"}\n");
    }

    #[test]
    fn created_files_get_the_configured_mode_and_quarantine_files_0600() {
        let dir = test_support::temp_dir("sink-file-mode");
        let rt = runtime();
        for (mode, want) in [(0o600, 0o600), (0o640, 0o640), (0o644, 0o644)] {
            let path = dir.join(format!("m{mode:o}.jsonl"));
            let mut s =
                build::<Record>(&map(json!({"path": path, "mode": mode})), &env(&rt)).unwrap();
            s.start().unwrap();
            assert_eq!(mode_of(&path), want, "{mode:o}");
        }
        // Default mode.
        let path = dir.join("default.jsonl");
        let mut s = build::<Record>(&map(json!({"path": path})), &env(&rt)).unwrap();
        s.start().unwrap();
        assert_eq!(mode_of(&path), 0o640);
        // Quarantine: never wider than 0600.
        let path = dir.join("q.jsonl");
        let mut s =
            build_for_quarantine::<Record>(&map(json!({"path": path, "mode": 0o644})), &env(&rt))
                .unwrap();
        s.start().unwrap();
        assert_eq!(mode_of(&path), 0o600);
        // An existing file keeps its mode.
        let path = dir.join("m600.jsonl");
        let mut s = build::<Record>(&map(json!({"path": path, "mode": 0o644})), &env(&rt)).unwrap();
        s.start().unwrap();
        assert_eq!(mode_of(&path), 0o600);
    }

    #[test]
    fn flush_every_0_writes_through_and_buffered_mode_waits_for_flush() {
        let dir = test_support::temp_dir("sink-file-flush");
        let now = dir.join("now.jsonl");
        let mut s = sink(json!({"path": now, "flushEveryMs": 0}));
        s.start().unwrap();
        s.write(&item(json!(1))).unwrap();
        assert_eq!(std::fs::read_to_string(&now).unwrap(), "1\n");

        let later = dir.join("later.jsonl");
        let mut s = sink(json!({"path": later, "flushEveryMs": 3_600_000}));
        s.start().unwrap();
        s.write(&item(json!(1))).unwrap();
        s.write(&item(json!(2))).unwrap();
        assert_eq!(std::fs::read_to_string(&later).unwrap(), "");
        s.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&later).unwrap(), "1\n2\n");
    }

    #[test]
    fn buffered_records_reach_the_file_within_flush_every_ms_without_more_writes() {
        let dir = test_support::temp_dir("sink-file-tick");
        let path = dir.join("tick.jsonl");
        let mut s = sink(json!({"path": path, "flushEveryMs": 20}));
        s.start().unwrap();
        s.write(&item(json!({"last": true}))).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&path).unwrap().is_empty() {
            assert!(Instant::now() < deadline, "never flushed");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"last\":true}\n");
        s.stop();
    }

    #[test]
    fn create_dirs_makes_parents_and_its_absence_fails_start_naming_the_path() {
        let dir = test_support::temp_dir("sink-file-dirs");
        let deep = dir.join("a/b/c.jsonl");
        let mut s = sink(json!({"path": deep, "flushEveryMs": 0}));
        s.start().unwrap();
        s.write(&item(json!(1))).unwrap();
        assert_eq!(std::fs::read_to_string(&deep).unwrap(), "1\n");

        let missing = dir.join("x/y.jsonl");
        let mut s = sink(json!({"path": missing, "createDirs": false}));
        let e = s.start().unwrap_err();
        assert!(e.contains(&missing.display().to_string()), "{e}");
        // A write without a successful start retries the open and is retryable.
        assert!(matches!(
            s.write(&item(json!(1))),
            Err(SinkError::Retryable(_))
        ));
        assert!(!dir.join("x").exists());
    }
}
