//! `file` feed (MNG-R12, §3.2, §4 "File and timer feeds"): tails a file, one event per
//! line, polled by the `feeds` agent.
//!
//! - **Start.** At the end of the file, or at offset 0 with `replayFromStart`. A file that
//!   was missing at startup (`waitForFile`, or a non-critical feed) is read from offset 0
//!   once it appears: everything in it is new.
//! - **Polling.** [`AgentFeed::poll`] runs in the agent's loop and never blocks: it reads
//!   only when `pollMs` has passed since the last read, at most [`MAX_READ_PER_POLL`] bytes
//!   per call; if more is waiting the next call reads again without waiting `pollMs`.
//! - **Lines.** A trailing partial line waits for its newline; a preceding `\r` is
//!   stripped; a line over `maxLineBytes` is skipped up to its newline, its first KiB
//!   quarantined as `decode_error` (`too_long`). A bad JSON line is quarantined and
//!   skipped; invalid UTF-8 in text format is replaced and counted (`utf8`).
//! - **Truncation and replacement.** A file shorter than the read offset (truncated), or a
//!   path now naming another inode (replaced, as log rotation does), restarts at offset 0
//!   with a WARN. A replaced file is first read to its end, so rotation loses nothing but
//!   an unterminated last line.
//! - **Connected** while the file is open. A deleted file stays open (and connected) until
//!   a new file appears at the path.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Format, LineOutcome, LineSplitter, MAX_LINE_BYTES_LIMIT, handle_piece};
use crate::builtins::parse_config;
use crate::event::JsonEvent;
use crate::feed::{AgentFeed, FeedEnv, FeedOut, FeedRunner, RunsOn};
use crate::processor::ConfigMap;

/// Where the feed runs: the `feeds` agent.
pub const RUNS_ON: RunsOn = RunsOn::Agent;
/// One reader publishes.
pub const MULTI_PRODUCER: bool = false;

/// Most bytes read in one poll, so one busy file cannot hold the agent.
pub const MAX_READ_PER_POLL: usize = 1024 * 1024;
const READ_CHUNK: usize = 64 * 1024;

/// `file` feed config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileConfig {
    /// The file to tail.
    pub path: String,
    /// `text` (each line as a JSON string) or `json`.
    #[serde(default)]
    pub format: Format,
    /// Start at offset 0 instead of the end.
    #[serde(default)]
    pub replay_from_start: bool,
    /// Poll interval, 1..=60000 ms.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// Longest line, 1..=64 MiB.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// A missing file is waited for instead of failing a critical feed's startup.
    #[serde(default)]
    pub wait_for_file: bool,
}

fn default_poll_ms() -> u64 {
    10
}
fn default_max_line_bytes() -> usize {
    1024 * 1024
}

/// Parses and range-checks a `file` config.
pub fn parse(config: &ConfigMap) -> Result<FileConfig, String> {
    let cfg: FileConfig = parse_config(config)?;
    if cfg.path.is_empty() {
        return Err("config: path must not be empty".into());
    }
    if !(1..=60_000).contains(&cfg.poll_ms) {
        return Err("config: pollMs must be 1-60000".into());
    }
    if !(1..=MAX_LINE_BYTES_LIMIT).contains(&cfg.max_line_bytes) {
        return Err(format!(
            "config: maxLineBytes must be 1-{MAX_LINE_BYTES_LIMIT}"
        ));
    }
    Ok(cfg)
}

/// Checks a `file` config without touching the file.
pub fn validate(config: &ConfigMap) -> Result<(), String> {
    parse(config).map(|_| ())
}

/// Opens the file (a critical feed without `waitForFile` fails on a missing file) and
/// returns the agent-polled runner.
pub fn build<E: JsonEvent>(config: &ConfigMap, env: &FeedEnv) -> Result<FeedRunner<E>, String> {
    let cfg = parse(config)?;
    Ok(FeedRunner::Agent(Box::new(FileFeed::<E>::open(cfg, env)?)))
}

/// The open file and how far it was read.
struct Tail {
    file: File,
    offset: u64,
    id: Option<(u64, u64)>,
}

/// (device, inode): what tells a replaced file from the one we hold.
#[cfg(unix)]
fn file_id(m: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(_m: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

fn open_tail(path: &str, at_end: bool) -> std::io::Result<Tail> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(std::io::Error::other("is a directory"));
    }
    let offset = if at_end { meta.len() } else { 0 };
    file.seek(SeekFrom::Start(offset))?;
    Ok(Tail {
        file,
        offset,
        id: file_id(&meta),
    })
}

/// The `file` feed's runner.
pub struct FileFeed<E> {
    cfg: FileConfig,
    interval: Duration,
    tail: Option<Tail>,
    splitter: LineSplitter,
    buf: Vec<u8>,
    last_read: Option<Instant>,
    /// Unread data is waiting: read on the next poll without waiting `pollMs`.
    more: bool,
    /// The server stopped accepting events.
    stopped: bool,
    _event: PhantomData<fn() -> E>,
}

impl<E: JsonEvent> FileFeed<E> {
    /// Opens the file per `cfg`; see [`build`].
    pub fn open(cfg: FileConfig, env: &FeedEnv) -> Result<Self, String> {
        let tail = match open_tail(&cfg.path, !cfg.replay_from_start) {
            Ok(t) => Some(t),
            Err(e) => {
                let missing = e.kind() == std::io::ErrorKind::NotFound;
                if env.critical && !(missing && cfg.wait_for_file) {
                    return Err(if missing {
                        format!("{}: file not found", cfg.path)
                    } else {
                        format!("{}: {e}", cfg.path)
                    });
                }
                tracing::warn!(feed = env.name, path = %cfg.path, error = %e, "file feed waiting for the file");
                None
            }
        };
        Ok(FileFeed {
            interval: Duration::from_millis(cfg.poll_ms),
            splitter: LineSplitter::new(cfg.max_line_bytes),
            buf: vec![0; READ_CHUNK],
            cfg,
            tail,
            last_read: None,
            more: false,
            stopped: false,
            _event: PhantomData,
        })
    }

    /// One poll at time `now` (tests drive the clock).
    pub fn poll_at(&mut self, now: Instant, out: &mut FeedOut<E>) -> usize {
        if self.stopped {
            return 0;
        }
        if !self.more
            && let Some(last) = self.last_read
            && now.saturating_duration_since(last) < self.interval
        {
            return 0;
        }
        self.last_read = Some(now);
        self.more = false;
        if self.tail.is_none() {
            match open_tail(&self.cfg.path, false) {
                Ok(t) => {
                    tracing::info!(feed = out.name(), path = %self.cfg.path, "file feed opened the file");
                    self.tail = Some(t);
                }
                Err(e) => {
                    // Format the error only on the transition: this repeats every pollMs.
                    if out
                        .shared
                        .connected
                        .load(std::sync::atomic::Ordering::Relaxed)
                    {
                        out.set_connected(false, Some(&format!("{}: {e}", self.cfg.path)));
                    }
                    return 0;
                }
            }
        }
        out.set_connected(true, None);
        self.read_available(out)
    }

    fn read_available(&mut self, out: &mut FeedOut<E>) -> usize {
        let FileFeed {
            cfg,
            tail,
            splitter,
            buf,
            more,
            stopped,
            ..
        } = self;
        let Some(t) = tail.as_mut() else {
            return 0;
        };
        match t.file.metadata() {
            Ok(m) if m.len() < t.offset => {
                tracing::warn!(
                    feed = out.name(),
                    path = %cfg.path,
                    size = m.len(),
                    offset = t.offset,
                    "file truncated; reading from the start"
                );
                if let Err(e) = t.file.seek(SeekFrom::Start(0)) {
                    tracing::warn!(feed = out.name(), error = %e, "file seek failed");
                    return 0;
                }
                t.offset = 0;
                splitter.reset();
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(feed = out.name(), path = %cfg.path, error = %e, "file stat failed");
            }
        }
        let (format, max) = (cfg.format, cfg.max_line_bytes);
        let mut pieces = 0usize;
        let mut bytes = 0usize;
        let mut eof = false;
        while bytes < MAX_READ_PER_POLL {
            match t.file.read(buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    t.offset += n as u64;
                    bytes += n;
                    splitter.push(&buf[..n], &mut |piece| {
                        if *stopped {
                            return;
                        }
                        pieces += 1;
                        if handle_piece(out, piece, format, max) == LineOutcome::NotRunning {
                            *stopped = true;
                        }
                    });
                    if *stopped {
                        return pieces.max(1);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    out.set_connected(false, Some(&format!("{}: {e}", cfg.path)));
                    return pieces;
                }
            }
        }
        if !eof {
            *more = true;
        } else if let Ok(m) = std::fs::metadata(&cfg.path)
            && file_id(&m).is_some()
            && file_id(&m) != t.id
        {
            // Replaced (rotation): the old file was read to its end above; switch.
            tracing::warn!(feed = out.name(), path = %cfg.path, "file replaced; reading the new file from the start");
            match open_tail(&cfg.path, false) {
                Ok(new) => {
                    *t = new;
                    splitter.reset();
                    *more = true;
                }
                Err(e) => {
                    tracing::warn!(feed = out.name(), path = %cfg.path, error = %e, "opening the new file failed");
                }
            }
        }
        pieces + usize::from(bytes > 0 && pieces == 0)
    }
}

impl<E: JsonEvent> AgentFeed<E> for FileFeed<E> {
    fn poll(&mut self, out: &mut FeedOut<E>) -> usize {
        self.poll_at(Instant::now(), out)
    }

    fn stop(&mut self, _out: &mut FeedOut<E>) {
        self.tail = None;
        self.stopped = true;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;

    use serde_json::json;

    use super::super::testkit::*;
    use super::*;
    use crate::event::Record;
    use crate::feed::DecodeError;
    use crate::queue::Policy;

    fn append(path: &str, data: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(data).unwrap();
    }

    fn feed(config: serde_json::Value, critical: bool) -> Result<FileFeed<Record>, String> {
        let rt = runtime();
        let cfg = parse(&cfg(config))?;
        FileFeed::open(cfg, &env(&rt, critical))
    }

    /// Polls as if `pollMs` had passed since the previous poll.
    struct Clock(Instant);
    impl Clock {
        fn tick(&mut self) -> Instant {
            self.0 += Duration::from_secs(1);
            self.0
        }
    }

    #[test]
    fn config_validation_names_the_key() {
        let e = validate(&cfg(json!({}))).unwrap_err();
        assert!(e.contains("path"), "{e}");
        let e = validate(&cfg(json!({"path": "/x", "polMs": 5}))).unwrap_err();
        assert!(e.contains("polMs"), "{e}");
        let e = validate(&cfg(json!({"path": "/x", "pollMs": 0}))).unwrap_err();
        assert!(e.contains("pollMs"), "{e}");
        let e = validate(&cfg(json!({"path": "/x", "maxLineBytes": 0}))).unwrap_err();
        assert!(e.contains("maxLineBytes"), "{e}");
        let e = validate(&cfg(json!({"path": "/x", "format": "xml"}))).unwrap_err();
        assert!(e.contains("xml"), "{e}");
        let c = parse(&cfg(json!({"path": "/x"}))).unwrap();
        assert_eq!(c.format, Format::Text);
        assert!(!c.replay_from_start && !c.wait_for_file);
        assert_eq!((c.poll_ms, c.max_line_bytes), (10, 1_048_576));
        // Validation has no side effects: a missing file is fine here.
        validate(&cfg(json!({"path": "/nonexistent/file", "format": "json"}))).unwrap();
    }

    #[test]
    fn missing_file_fails_a_critical_feed_unless_waiting_for_it() {
        let dir = TempDir::new("missing");
        let path = dir.file("later.log");
        let e = feed(json!({"path": path}), true).err().unwrap();
        assert!(e.contains(&path) && e.contains("not found"), "{e}");
        // Non-critical, or waitForFile: polls until the file appears, then reads from 0.
        let mut f = feed(json!({"path": path, "waitForFile": true}), true).unwrap();
        let (mut out, mut probe) = harness(false, 16, Policy::DropNewest);
        let mut clock = Clock(Instant::now());
        assert_eq!(f.poll_at(clock.tick(), &mut out), 0);
        assert!(!probe.connected());
        append(&path, b"first\nsecond\n");
        assert_eq!(f.poll_at(clock.tick(), &mut out), 2);
        assert!(probe.connected());
        assert_eq!(probe.values(), vec![json!("first"), json!("second")]);
        assert!(feed(json!({"path": dir.file("other")}), false).is_ok());
    }

    #[test]
    fn starts_at_the_end_or_replays_from_the_start() {
        let dir = TempDir::new("start");
        let path = dir.file("a.log");
        append(&path, b"old1\nold2\n");
        let (mut out, mut probe) = harness(false, 16, Policy::DropNewest);
        let mut clock = Clock(Instant::now());
        let mut tailing = feed(json!({"path": path}), true).unwrap();
        let mut replay = feed(json!({"path": path, "replayFromStart": true}), true).unwrap();
        assert_eq!(tailing.poll_at(clock.tick(), &mut out), 0);
        assert!(probe.values().is_empty());
        append(&path, b"new\n");
        tailing.poll_at(clock.tick(), &mut out);
        assert_eq!(probe.values(), vec![json!("new")]);
        replay.poll_at(clock.tick(), &mut out);
        assert_eq!(
            probe.values(),
            vec![json!("old1"), json!("old2"), json!("new")]
        );
    }

    #[test]
    fn reads_only_every_poll_ms() {
        let dir = TempDir::new("pollms");
        let path = dir.file("a.log");
        append(&path, b"");
        let mut f = feed(json!({"path": path, "pollMs": 50}), true).unwrap();
        let (mut out, mut probe) = harness(false, 16, Policy::DropNewest);
        let t0 = Instant::now();
        assert_eq!(f.poll_at(t0, &mut out), 0);
        append(&path, b"x\n");
        assert_eq!(f.poll_at(t0 + Duration::from_millis(49), &mut out), 0);
        assert!(probe.values().is_empty());
        assert_eq!(f.poll_at(t0 + Duration::from_millis(50), &mut out), 1);
        assert_eq!(probe.values(), vec![json!("x")]);
    }

    #[test]
    fn partial_line_waits_for_its_newline() {
        let dir = TempDir::new("partial");
        let path = dir.file("a.json");
        append(&path, b"");
        let mut f = feed(json!({"path": path, "format": "json"}), true).unwrap();
        let (mut out, mut probe) = harness(false, 16, Policy::DropNewest);
        let mut clock = Clock(Instant::now());
        append(&path, br#"{"a":"#);
        f.poll_at(clock.tick(), &mut out);
        f.poll_at(clock.tick(), &mut out);
        assert!(probe.values().is_empty());
        append(&path, b"1}\r\n");
        f.poll_at(clock.tick(), &mut out);
        assert_eq!(probe.values(), vec![json!({"a": 1})]);
        assert_eq!(probe.decode_errors(DecodeError::BadJson), 0);
    }

    #[test]
    fn truncation_and_replacement_restart_at_zero() {
        let dir = TempDir::new("truncate");
        let path = dir.file("a.log");
        append(&path, b"");
        let mut f = feed(json!({"path": path}), true).unwrap();
        let (mut out, mut probe) = harness(false, 16, Policy::DropNewest);
        let mut clock = Clock(Instant::now());
        append(&path, b"one line\ntwo lines\n");
        f.poll_at(clock.tick(), &mut out);
        assert_eq!(probe.values().len(), 2);
        // Truncated and rewritten shorter than the offset: read from 0.
        std::fs::write(&path, b"x\n").unwrap();
        f.poll_at(clock.tick(), &mut out);
        assert_eq!(probe.values(), vec![json!("x")]);
        // Replaced (rename over the path): the old file's tail first, then the new file.
        append(&path, b"last of old\n");
        let tmp = dir.file("new.log");
        std::fs::write(&tmp, b"fresh\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        f.poll_at(clock.tick(), &mut out);
        f.poll_at(clock.tick(), &mut out);
        assert_eq!(probe.values(), vec![json!("last of old"), json!("fresh")]);
        assert!(probe.connected());
    }

    #[test]
    fn bad_json_and_long_lines_are_quarantined_and_skipped() {
        let dir = TempDir::new("bad");
        let path = dir.file("a.json");
        append(&path, b"");
        let mut f = feed(
            json!({"path": path, "format": "json", "maxLineBytes": 16}),
            true,
        )
        .unwrap();
        let (mut out, mut probe) = harness(false, 16, Policy::DropNewest);
        let mut clock = Clock(Instant::now());
        let long = format!("{{\"k\":\"{}\"}}\n", "v".repeat(100));
        append(
            &path,
            format!("{{\"ok\":1}}\nnot json\n{long}\n{{\"ok\":2}}\n").as_bytes(),
        );
        f.poll_at(clock.tick(), &mut out);
        assert_eq!(probe.values(), vec![json!({"ok": 1}), json!({"ok": 2})]);
        assert_eq!(probe.decode_errors(DecodeError::BadJson), 1);
        assert_eq!(probe.decode_errors(DecodeError::TooLong), 1);
        let recs = probe.records(10);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].payload, json!("not json"));
        assert_eq!(recs[0].feed.as_deref(), Some("f"));
        assert!(
            recs[1]
                .payload
                .as_str()
                .unwrap()
                .starts_with("{\"k\":\"vvv")
        );
    }

    #[test]
    fn large_backlogs_are_read_across_polls_without_waiting() {
        let dir = TempDir::new("backlog");
        let path = dir.file("a.log");
        let line = "y".repeat(999) + "\n";
        let n = 2 * MAX_READ_PER_POLL / line.len() + 10;
        append(&path, line.repeat(n).as_bytes());
        let mut f = feed(
            json!({"path": path, "replayFromStart": true, "pollMs": 60000}),
            true,
        )
        .unwrap();
        let (mut out, mut probe) = harness(false, 4096, Policy::DropNewest);
        let t = Instant::now();
        let mut got = 0;
        // The same instant every time: only the "more waiting" path can read again.
        for _ in 0..5 {
            f.poll_at(t, &mut out);
            got += probe.drain().len();
        }
        assert_eq!(got, n);
        assert!(Path::new(&path).exists());
    }
}
