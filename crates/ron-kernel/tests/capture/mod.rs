//! In-memory log capture shared by the kernel's black-box tests.

use std::io;
use std::sync::Arc;

use parking_lot::Mutex;
use ron_kernel::logging::{self, LogConfig, LogHandle, LogSubscriber};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use tracing_subscriber::fmt::MakeWriter;

/// A `MakeWriter` appending to a shared buffer.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

#[allow(dead_code)]
impl Capture {
    /// A capture plus the kernel subscriber writing into it.
    pub fn subscriber(config: &LogConfig) -> (Capture, LogSubscriber<Capture>, LogHandle) {
        let capture = Capture::default();
        let (subscriber, handle) =
            logging::subscriber(config, capture.clone()).expect("valid config");
        (capture, subscriber, handle)
    }

    /// Every line written so far.
    pub fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().clone())
            .expect("log output is UTF-8")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Lines parsed as JSON objects (panics on a line that is not one).
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// Parsed lines whose `message` equals `message`.
    pub fn with_message(&self, message: &str) -> Vec<serde_json::Value> {
        self.json()
            .into_iter()
            .filter(|v| v["message"] == message)
            .collect()
    }
}

/// The top-level keys of a JSON object line, in the order written.
#[allow(dead_code)]
pub fn keys_in_order(line: &str) -> Vec<String> {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                keys.push(key);
            }
            Ok(keys)
        }
    }
    let mut de = serde_json::Deserializer::from_str(line);
    de.deserialize_map(Keys)
        .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"))
}
