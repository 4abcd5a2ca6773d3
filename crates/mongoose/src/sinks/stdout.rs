//! `stdout`: one JSON record per item on standard output (§2.4, §3.2).
//!
//! Keys: `pretty: false`. Compact records are JSONL; `pretty: true` prints indented JSON,
//! still one whole record per write, ending in `\n`. Each record is written with a single
//! `write_all` on `Stdout`, which holds the stdout lock for the whole record, so output from
//! elsewhere in the process cannot land inside one. Success = written; an I/O error (e.g. a
//! closed pipe) is `Retryable`; there are no permanent errors. Logs move to stderr when a
//! `stdout` sink exists (MNG-R27): that is the server's job, not this module's.

use std::io::Write;

use serde::Deserialize;

use super::{json_line, parse};
use crate::event::Event;
use crate::processor::ConfigMap;
use crate::sink::SinkItem;
use crate::sink_agent::{Sink, SinkEnv, SinkError};

/// `stdout` sink config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StdoutConfig {
    /// Indented JSON instead of one compact line per record.
    #[serde(default)]
    pub pretty: bool,
}

/// Checks a `stdout` sink's `config` (no side effects).
pub fn validate(config: &ConfigMap) -> Result<(), String> {
    parse::<StdoutConfig>(config).map(|_| ())
}

/// Builds a `stdout` sink (no I/O).
pub fn build<E: Event>(config: &ConfigMap, _env: &SinkEnv) -> Result<Box<dyn Sink<E>>, String> {
    let cfg: StdoutConfig = parse(config)?;
    Ok(Box::new(StdoutSink::new(std::io::stdout(), cfg.pretty)))
}

/// Writes JSON records to `W` (standard output in the server; any writer in tests).
pub struct StdoutSink<W> {
    out: W,
    pretty: bool,
}

impl<W: Write + Send> StdoutSink<W> {
    /// A sink writing to `out`.
    pub fn new(out: W, pretty: bool) -> Self {
        StdoutSink { out, pretty }
    }
}

impl<W: Write + Send, E: Event> Sink<E> for StdoutSink<W> {
    fn write(&mut self, item: &SinkItem<E>) -> Result<(), SinkError> {
        let line = json_line(item, self.pretty);
        self.out
            .write_all(&line)
            // Stdout is line-buffered; flushing here keeps `written` meaning "handed to the
            // OS" for a pretty record too, and for writers that are not line-buffered.
            .and_then(|()| self.out.flush())
            .map_err(|e| SinkError::Retryable(format!("stdout: {e}")))
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out
            .flush()
            .map_err(|e| SinkError::Retryable(format!("stdout: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::json;

    use super::*;
    use crate::Record;
    use crate::sinks::test_util::map;

    /// A writer whose bytes the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A writer that always fails, like stdout on a closed pipe.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn event(v: serde_json::Value) -> SinkItem<Record> {
        SinkItem::Event {
            value: Record::new(v),
            origin: Some(("f", 1)),
        }
    }

    #[test]
    fn config_defaults_and_unknown_keys() {
        validate(&map(json!({}))).unwrap();
        validate(&map(json!({"pretty": true}))).unwrap();
        let e = validate(&map(json!({"prety": true}))).unwrap_err();
        assert!(e.contains("prety"), "{e}");
        let e = validate(&map(json!({"pretty": "yes"}))).unwrap_err();
        assert!(e.starts_with("config.pretty:"), "{e}");
    }

    #[test]
    fn compact_records_are_one_json_line_each() {
        let buf = Shared::default();
        let mut sink = StdoutSink::new(buf.clone(), false);
        Sink::<Record>::write(&mut sink, &event(json!({"a": 1}))).unwrap();
        Sink::<Record>::write(&mut sink, &event(json!({"b": [true]}))).unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"b\":[true]}\n");
    }

    #[test]
    fn pretty_records_are_whole_documents_ending_in_a_newline() {
        let buf = Shared::default();
        let mut sink = StdoutSink::new(buf.clone(), true);
        Sink::<Record>::write(&mut sink, &event(json!({"a": {"b": 1}}))).unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(text.ends_with("}\n") && text.lines().count() > 1, "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, json!({"a": {"b": 1}}));
    }

    #[test]
    fn quarantine_records_are_written_with_all_their_keys() {
        let buf = Shared::default();
        let mut sink = StdoutSink::new(buf.clone(), false);
        let rec = crate::quarantine::QuarantineRecord {
            ts_ms: 0,
            first_seen_ms: 0,
            server: "s".into(),
            kind: crate::quarantine::Kind::Error,
            feed: Some("f".into()),
            seq: Some(3),
            group: None,
            processor: None,
            sink: None,
            attempts: Some(1),
            error: Some("boom".into()),
            payload: json!({"x": 1}),
            truncated: false,
        };
        Sink::<Record>::write(&mut sink, &SinkItem::Quarantine(Box::new(rec))).unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["kind"], "error");
        assert_eq!(v["seq"], 3);
        assert!(v.as_object().unwrap().contains_key("group"));
    }

    #[test]
    fn io_errors_are_retryable() {
        let mut sink = StdoutSink::new(Broken, false);
        match Sink::<Record>::write(&mut sink, &event(json!(1))) {
            Err(SinkError::Retryable(e)) => assert!(e.contains("stdout"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
}
