//! `stdin` feed (MNG-R12, R30, §3.2): one event per line of the process's standard input,
//! read on the feed's own thread.
//!
//! - **Lines.** As for the other line feeds: `\r\n` or `\n` endings, `maxLineBytes`
//!   bounded (an over-long line is skipped to its newline with its first KiB quarantined),
//!   bad JSON quarantined and skipped, invalid UTF-8 in text format replaced and counted.
//!   At EOF an unterminated last line still counts: the input is complete.
//! - **EOF.** With `exitOnEof`, once every line has been published the feed asks the server
//!   to shut down (`request_shutdown`), which drains the groups (MNG-T30). Without it the
//!   thread just ends. A read error other than an interrupt ends the input like EOF, since
//!   nothing more can be read.
//! - **Stopping.** A read from stdin blocks and cannot be interrupted portably, so when
//!   `out.stop` is cancelled the thread exits at the next chunk of input or at EOF. The
//!   server does not wait for it: it publishes nothing after the feeds stop (publishes
//!   return `Closed`), and it ends with the process.
//! - **Connected** always (the thread exists as long as input may come).

use std::io::BufRead;

use serde::Deserialize;

use super::{Format, LineOutcome, LineSplitter, MAX_LINE_BYTES_LIMIT, Piece, handle_piece};
use crate::builtins::parse_config;
use crate::event::JsonEvent;
use crate::feed::{FeedEnv, FeedOut, FeedRunner, RunsOn};
use crate::processor::ConfigMap;

/// Where the feed runs: its own thread.
pub const RUNS_ON: RunsOn = RunsOn::Thread;
/// One reader publishes.
pub const MULTI_PRODUCER: bool = false;

/// `stdin` feed config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StdinConfig {
    /// `text` (each line as a JSON string) or `json`.
    #[serde(default)]
    pub format: Format,
    /// Shut the server down at EOF.
    #[serde(default)]
    pub exit_on_eof: bool,
    /// Longest line, 1..=64 MiB (default 1 MiB, as for `file`).
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
}

fn default_max_line_bytes() -> usize {
    1024 * 1024
}

/// Parses and range-checks a `stdin` config.
pub fn parse(config: &ConfigMap) -> Result<StdinConfig, String> {
    let cfg: StdinConfig = parse_config(config)?;
    if !(1..=MAX_LINE_BYTES_LIMIT).contains(&cfg.max_line_bytes) {
        return Err(format!(
            "config: maxLineBytes must be 1-{MAX_LINE_BYTES_LIMIT}"
        ));
    }
    Ok(cfg)
}

/// Checks a `stdin` config.
pub fn validate(config: &ConfigMap) -> Result<(), String> {
    parse(config).map(|_| ())
}

/// Returns the thread runner reading the process's stdin (nothing to connect).
pub fn build<E: JsonEvent>(config: &ConfigMap, _env: &FeedEnv) -> Result<FeedRunner<E>, String> {
    let cfg = parse(config)?;
    Ok(FeedRunner::Thread(Box::new(move |mut out: FeedOut<E>| {
        let stdin = std::io::stdin();
        let end = read_lines(stdin.lock(), &cfg, &mut out);
        finish(end, &cfg, &out);
    })))
}

/// Why reading stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The input ended (or failed), after every line was handled.
    Eof,
    /// `out.stop` was cancelled.
    Stopped,
    /// The server stopped accepting events.
    Closed,
}

/// Reads `reader` line by line into `out` until EOF, stop or close. Any `BufRead` works,
/// so tests need no process stdin.
pub fn read_lines<R: BufRead, E: JsonEvent>(
    mut reader: R,
    cfg: &StdinConfig,
    out: &mut FeedOut<E>,
) -> End {
    let mut splitter = LineSplitter::new(cfg.max_line_bytes);
    let (format, max) = (cfg.format, cfg.max_line_bytes);
    let mut closed = false;
    loop {
        if out.stopping() {
            return End::Stopped;
        }
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(feed = out.name(), error = %e, "stdin read failed; treating it as EOF");
                &[]
            }
        };
        let mut on_piece = |piece: Piece<'_>| {
            if !closed && handle_piece(out, piece, format, max) == LineOutcome::NotRunning {
                closed = true;
            }
        };
        if chunk.is_empty() {
            splitter.finish(&mut on_piece);
            return End::Eof;
        }
        let n = chunk.len();
        splitter.push(chunk, &mut on_piece);
        reader.consume(n);
        if closed {
            return End::Closed;
        }
    }
}

/// After reading: at EOF with `exitOnEof`, ask the server to shut down.
pub fn finish<E: JsonEvent>(end: End, cfg: &StdinConfig, out: &FeedOut<E>) {
    if end == End::Eof {
        if cfg.exit_on_eof {
            tracing::info!(feed = out.name(), "stdin EOF; shutting down");
            (out.request_shutdown)();
        } else {
            tracing::info!(feed = out.name(), "stdin EOF");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufReader, Cursor, Read};
    use std::sync::atomic::Ordering;

    use serde_json::json;

    use super::super::testkit::*;
    use super::*;
    use crate::feed::DecodeError;
    use crate::queue::Policy;

    fn conf(v: serde_json::Value) -> StdinConfig {
        parse(&cfg(v)).unwrap()
    }

    /// A reader returning its data a few bytes at a time, as a pipe might.
    struct Trickle(Cursor<Vec<u8>>);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(3);
            self.0.read(&mut buf[..n])
        }
    }

    #[test]
    fn config_validation() {
        let e = validate(&cfg(json!({"exitOnEOF": true}))).unwrap_err();
        assert!(e.contains("exitOnEOF"), "{e}");
        let e = validate(&cfg(json!({"maxLineBytes": 0}))).unwrap_err();
        assert!(e.contains("maxLineBytes"), "{e}");
        let c = conf(json!({}));
        assert_eq!(c.format, Format::Text);
        assert!(!c.exit_on_eof);
    }

    #[test]
    fn every_line_is_published_then_eof_requests_shutdown() {
        let c = conf(json!({"format": "json", "exitOnEof": true, "maxLineBytes": 32}));
        let (mut out, mut probe) = harness(false, 64, Policy::DropNewest);
        let input = format!(
            "{{\"n\":1}}\r\n\nbroken\n\"{}\"\n{{\"n\":2}}\n{{\"n\":3}}",
            "x".repeat(40)
        );
        let reader = BufReader::with_capacity(8, Trickle(Cursor::new(input.into_bytes())));
        let end = read_lines(reader, &c, &mut out);
        assert_eq!(end, End::Eof);
        // Nothing requested until finish runs, after every line was published.
        assert_eq!(probe.shutdowns.load(Ordering::SeqCst), 0);
        finish(end, &c, &out);
        assert_eq!(probe.shutdowns.load(Ordering::SeqCst), 1);
        assert_eq!(
            probe.values(),
            vec![json!({"n": 1}), json!({"n": 2}), json!({"n": 3})]
        );
        assert_eq!(probe.decode_errors(DecodeError::BadJson), 1);
        assert_eq!(probe.decode_errors(DecodeError::TooLong), 1);
    }

    #[test]
    fn eof_without_exit_on_eof_does_not_shut_down_and_stop_ends_reading() {
        let c = conf(json!({}));
        let (mut out, mut probe) = harness(false, 64, Policy::DropNewest);
        let end = read_lines(Cursor::new(b"a\nb\n".to_vec()), &c, &mut out);
        finish(end, &c, &out);
        assert_eq!(probe.shutdowns.load(Ordering::SeqCst), 0);
        assert_eq!(probe.values(), vec![json!("a"), json!("b")]);

        out.stop.cancel();
        let end = read_lines(Cursor::new(b"c\n".to_vec()), &c, &mut out);
        assert_eq!(end, End::Stopped);
        finish(end, &c, &out);
        assert_eq!(probe.shutdowns.load(Ordering::SeqCst), 0);
        assert!(probe.values().is_empty());
    }

    #[test]
    fn a_closed_server_ends_reading() {
        let c = conf(json!({}));
        let (mut out, probe) = harness(false, 64, Policy::DropNewest);
        probe
            .phase
            .store(crate::publish::PHASE_CLOSED, Ordering::Release);
        let end = read_lines(Cursor::new(b"a\nb\n".to_vec()), &c, &mut out);
        assert_eq!(end, End::Closed);
    }
}
