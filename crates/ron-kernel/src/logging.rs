//! JSON log lines with a fixed key order and a reloadable filter (spec KRN-R6).
//!
//! Every line is one JSON object whose keys come in this order: `ts`, `level`, `message`,
//! `service`, static fields, `corr_id`, event fields (top level, or under `"fields"`),
//! `target`. tracing-subscriber's JSON formatter cannot promise that order or put span
//! fields at the top level, so [`JsonLayer`] writes the line itself.
//!
//! The filter is an `EnvFilter` (from `RUST_LOG`, else `default_filter`) behind a reload
//! handle, wrapped so that spans carrying `corr_id` are always recorded: a `warn` filter
//! must still put the correlation id on a WARN line inside an INFO request span.
//!
//! Not for: log shipping, sampling or rate limiting (services rate-limit their own noisy
//! events).

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Once};

use parking_lot::Mutex;
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, Layered, SubscriberExt};
use tracing_subscriber::registry::{LookupSpan, Registry};
use tracing_subscriber::reload;

use crate::config::ConfigError;

/// Filter used when `RUST_LOG` is unset or empty.
pub const DEFAULT_FILTER: &str = "info";
/// Environment variable holding the filter directives.
pub const ENV_FILTER: &str = "RUST_LOG";
/// Span and event field carrying the correlation id.
pub const CORR_ID_FIELD: &str = "corr_id";
/// Message of the line the panic hook writes.
pub const PANIC_MESSAGE: &str = "panic";

/// Where event fields go in a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldLayout {
    /// Event fields are top-level keys (what the runbooks' `jq .field` queries expect).
    #[default]
    Flat,
    /// Event fields live under `"fields": {…}`.
    Nested,
}

/// The stream `init` writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogWriter {
    /// Standard output.
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
}

/// How a service's log lines look.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Value of the `service` key on every line.
    pub service: String,
    /// Keys written on every line after `service`, in this order (e.g. `node_id`).
    pub static_fields: Vec<(String, serde_json::Value)>,
    /// Flat or nested event fields.
    pub fields: FieldLayout,
    /// Output stream for [`init`].
    pub writer: LogWriter,
    /// Filter directives when `RUST_LOG` is unset.
    pub default_filter: String,
    /// Write an `event` key on every line: the event's own `event` field, else its
    /// message. For services whose runbooks select lines by `.event` (svc-edge).
    pub event_key: bool,
    /// Event fields written as top-level keys even in the nested layout, right after
    /// `corr_id` (e.g. `ip`, which operators filter on directly).
    pub hoisted: Vec<String>,
    /// Write the innermost span as `"span":{"name":…,<fields>}` and the whole scope,
    /// outermost first, as `"spans":[…]` (runbooks select on `.span.name`).
    pub spans: bool,
}

/// Changes the active filter at run time (SIGUSR1/SIGUSR2, admin endpoints). Cheap to clone.
#[derive(Clone)]
pub struct LogHandle {
    inner: Arc<HandleInner>,
}

/// Formats events as JSON lines into `W`.
pub struct JsonLayer<W> {
    make_writer: W,
    layout: FieldLayout,
    /// `"service":"x"` plus the static fields, rendered once.
    fixed: String,
    /// Static field names: an event field of the same name is not written again, so a
    /// line never carries a key twice.
    static_keys: Vec<String>,
    event_key: bool,
    hoisted: Vec<String>,
    spans: bool,
}

/// The global filter layer: `EnvFilter` (reloadable), except that spans with a `corr_id`
/// field always pass so their id is known to every line inside them.
pub struct LogFilter {
    env: reload::Layer<EnvFilter, Registry>,
}

/// What [`subscriber`] builds.
pub type LogSubscriber<W> = Layered<JsonLayer<W>, Layered<LogFilter, Registry>>;

struct HandleInner {
    reload: reload::Handle<EnvFilter, Registry>,
    configured: String,
    current: Mutex<String>,
}

/// A span's correlation id, kept in its extensions.
struct SpanCorrId(String);

/// A span's name and fields as a JSON object, kept when `LogConfig::spans` is on.
struct SpanJson(String);

#[derive(Default)]
struct CorrIdVisitor(Option<String>);

/// Collects one event's message and fields as rendered JSON values.
struct EventVisitor {
    message: Option<String>,
    corr_id: Option<String>,
    fields: Vec<(&'static str, String)>,
}

const TS_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Keys the line writes itself; event fields with these names are prefixed with `field.`
/// so a line never carries a duplicate key.
const RESERVED_KEYS: [&str; 6] = ["ts", "level", "message", "service", "corr_id", "target"];

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            service: "unknown".to_owned(),
            static_fields: Vec::new(),
            fields: FieldLayout::Flat,
            writer: LogWriter::Stdout,
            default_filter: DEFAULT_FILTER.to_owned(),
            event_key: false,
            hoisted: Vec::new(),
            spans: false,
        }
    }
}

impl LogConfig {
    /// Defaults with `service` set.
    pub fn new(service: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            ..Self::default()
        }
    }

    /// Adds a static field written on every line.
    pub fn static_field(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.static_fields.push((key.into(), value.into()));
        self
    }
}

/// Installs the global JSON subscriber (filter from `RUST_LOG`, else `default_filter`) and
/// the panic hook. Under `cfg(tokio_unstable)` it also serves tokio-console on
/// `TOKIO_CONSOLE_BIND`. A bad `RUST_LOG` is a config error.
pub fn init(config: LogConfig) -> Result<LogHandle, ConfigError> {
    match config.writer {
        LogWriter::Stdout => init_with(config, std::io::stdout),
        LogWriter::Stderr => init_with(config, std::io::stderr),
    }
}

/// [`init`] writing to any `MakeWriter` instead of `config.writer` (a service that tees its
/// lines to a log file as well): the same `RUST_LOG` handling, panic hook and
/// tokio-console layer.
pub fn init_with<W>(mut config: LogConfig, make_writer: W) -> Result<LogHandle, ConfigError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let from_env = std::env::var(ENV_FILTER)
        .ok()
        .filter(|v| !v.trim().is_empty());
    if let Some(directives) = &from_env {
        parse_filter(directives).map_err(|why| {
            ConfigError::new(
                ENV_FILTER,
                directives.as_str(),
                format!("env {ENV_FILTER}"),
                why,
            )
        })?;
        config.default_filter = directives.clone();
    }
    let handle = install(subscriber(&config, make_writer)?)?;
    install_panic_hook();
    Ok(handle)
}

/// Builds the subscriber without installing it, writing to any `MakeWriter`; tests use it
/// with `tracing::subscriber::with_default`. The filter is `config.default_filter`
/// (`RUST_LOG` is not read).
pub fn subscriber<W>(
    config: &LogConfig,
    make_writer: W,
) -> Result<(LogSubscriber<W>, LogHandle), ConfigError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = parse_filter(&config.default_filter).map_err(|why| {
        ConfigError::new(
            "default_filter",
            config.default_filter.as_str(),
            "LogConfig",
            why,
        )
    })?;
    let (env, reload) = reload::Layer::new(filter);
    let handle = LogHandle {
        inner: Arc::new(HandleInner {
            reload,
            configured: config.default_filter.clone(),
            current: Mutex::new(config.default_filter.clone()),
        }),
    };
    let layer = JsonLayer::new(config, make_writer);
    Ok((
        Registry::default().with(LogFilter { env }).with(layer),
        handle,
    ))
}

fn install<W>((subscriber, handle): (LogSubscriber<W>, LogHandle)) -> Result<LogHandle, ConfigError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::util::SubscriberInitExt;
    #[cfg(tokio_unstable)]
    let subscriber = subscriber.with(
        console_subscriber::ConsoleLayer::builder()
            .with_default_env()
            .spawn(),
    );
    subscriber.try_init().map_err(|e| {
        ConfigError::new(
            "logging",
            "init",
            "logging::init",
            format!("{e}; call logging::init once per process"),
        )
    })?;
    Ok(handle)
}

fn parse_filter(directives: &str) -> Result<EnvFilter, String> {
    EnvFilter::builder().parse(directives).map_err(|e| {
        format!("{e}; expected tracing directives such as info or my_crate=debug,warn")
    })
}

/// Routes panics to an ERROR line `panic` with `location` and `payload`. Idempotent.
///
/// When no subscriber would record the line (nothing installed on this thread or
/// globally), the previous hook runs instead, so a panic is never silent.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !tracing::enabled!(Level::ERROR) {
                previous(info);
                return;
            }
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_else(|| "unknown".to_owned());
            let payload = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "<non-string panic payload>".to_owned());
            tracing::error!(location = %location, payload = %payload, "{}", PANIC_MESSAGE);
        }));
    });
}

impl LogHandle {
    /// Replaces the filter with `directives` (`debug`, `my_crate=trace,info`).
    pub fn set_filter(&self, directives: &str) -> Result<(), ConfigError> {
        let filter = parse_filter(directives).map_err(|why| {
            ConfigError::new("log filter", directives, "LogHandle::set_filter", why)
        })?;
        let mut current = self.inner.current.lock();
        self.inner.reload.reload(filter).map_err(|e| {
            ConfigError::new(
                "log filter",
                directives,
                "LogHandle::set_filter",
                format!("{e}; the subscriber this handle belongs to is gone"),
            )
        })?;
        *current = directives.to_owned();
        Ok(())
    }

    /// Returns to the filter configured at start-up.
    pub fn reset(&self) -> Result<(), ConfigError> {
        self.set_filter(&self.inner.configured)
    }

    /// The active filter directives.
    pub fn current(&self) -> String {
        self.inner.current.lock().clone()
    }

    /// The filter configured at start-up.
    pub fn configured(&self) -> &str {
        &self.inner.configured
    }
}

impl fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogHandle")
            .field("configured", &self.inner.configured)
            .field("current", &self.current())
            .finish()
    }
}

impl<W> JsonLayer<W> {
    /// A formatter for `config` writing to `make_writer`.
    pub fn new(config: &LogConfig, make_writer: W) -> Self {
        let mut fixed = String::from("\"service\":");
        push_json_str(&mut fixed, &config.service);
        for (key, value) in &config.static_fields {
            fixed.push(',');
            push_json_str(&mut fixed, key);
            fixed.push(':');
            fixed.push_str(&value.to_string());
        }
        Self {
            make_writer,
            layout: config.fields,
            fixed,
            static_keys: config
                .static_fields
                .iter()
                .map(|(k, _)| k.clone())
                .collect(),
            event_key: config.event_key,
            hoisted: config.hoisted.clone(),
            spans: config.spans,
        }
    }

    fn format(&self, event: &Event<'_>, corr_id: Option<&str>, spans: &[String]) -> String {
        let mut visitor = EventVisitor {
            message: None,
            corr_id: None,
            fields: Vec::new(),
        };
        event.record(&mut visitor);
        let meta = event.metadata();
        let mut line = String::with_capacity(256);
        line.push_str("{\"ts\":\"");
        let now = OffsetDateTime::now_utc();
        // Formatting a UTC timestamp with this description cannot fail.
        line.push_str(&now.format(TS_FORMAT).unwrap_or_default());
        line.push_str("\",\"level\":\"");
        line.push_str(level_name(*meta.level()));
        line.push_str("\",\"message\":");
        push_json_str(&mut line, visitor.message.as_deref().unwrap_or(""));
        line.push(',');
        line.push_str(&self.fixed);
        if let Some(id) = visitor.corr_id.as_deref().or(corr_id) {
            line.push_str(",\"corr_id\":");
            push_json_str(&mut line, id);
        }
        let hoisted = |name: &str| self.hoisted.iter().any(|h| h == name);
        if self.layout == FieldLayout::Nested {
            for (name, value) in visitor.fields.iter().filter(|(n, _)| hoisted(n)) {
                line.push(',');
                push_json_str(&mut line, name);
                line.push(':');
                line.push_str(value);
            }
        }
        if self.event_key && !visitor.fields.iter().any(|(name, _)| *name == "event") {
            line.push_str(",\"event\":");
            push_json_str(&mut line, visitor.message.as_deref().unwrap_or(""));
        }
        match self.layout {
            FieldLayout::Flat => {
                let is_static = |n: &str| self.static_keys.iter().any(|k| k == n);
                for (name, value) in visitor.fields.iter().filter(|(n, _)| !is_static(n)) {
                    line.push(',');
                    if RESERVED_KEYS.contains(name) {
                        push_json_str(&mut line, &format!("field.{name}"));
                    } else {
                        push_json_str(&mut line, name);
                    }
                    line.push(':');
                    line.push_str(value);
                }
            }
            FieldLayout::Nested => {
                line.push_str(",\"fields\":{");
                let mut first = true;
                for (name, value) in visitor.fields.iter().filter(|(n, _)| !hoisted(n)) {
                    if !first {
                        line.push(',');
                    }
                    first = false;
                    push_json_str(&mut line, name);
                    line.push(':');
                    line.push_str(value);
                }
                line.push('}');
            }
        }
        if let Some(inner) = spans.last() {
            line.push_str(",\"span\":");
            line.push_str(inner);
            line.push_str(",\"spans\":[");
            line.push_str(&spans.join(","));
            line.push(']');
        }
        line.push_str(",\"target\":");
        push_json_str(&mut line, meta.target());
        line.push_str("}\n");
        line
    }
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut visitor = CorrIdVisitor::default();
        attrs.record(&mut visitor);
        if let (Some(corr), Some(span)) = (visitor.0, ctx.span(id)) {
            span.extensions_mut().replace(SpanCorrId(corr));
        }
        if self.spans
            && let Some(span) = ctx.span(id)
        {
            let mut fields = EventVisitor {
                message: None,
                corr_id: None,
                fields: Vec::new(),
            };
            attrs.record(&mut fields);
            let mut json = String::from("{\"name\":");
            push_json_str(&mut json, attrs.metadata().name());
            for (name, value) in &fields.fields {
                json.push(',');
                push_json_str(&mut json, name);
                json.push(':');
                json.push_str(value);
            }
            if let Some(c) = &fields.corr_id {
                json.push_str(",\"corr_id\":");
                push_json_str(&mut json, c);
            }
            json.push('}');
            span.extensions_mut().replace(SpanJson(json));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut visitor = CorrIdVisitor::default();
        values.record(&mut visitor);
        if let (Some(corr), Some(span)) = (visitor.0, ctx.span(id)) {
            span.extensions_mut().replace(SpanCorrId(corr));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let corr_id = ctx.event_scope(event).and_then(|scope| {
            scope
                .into_iter()
                .find_map(|span| span.extensions().get::<SpanCorrId>().map(|c| c.0.clone()))
        });
        let spans: Vec<String> = if self.spans {
            ctx.event_scope(event)
                .map(|scope| {
                    scope
                        .from_root()
                        .filter_map(|span| span.extensions().get::<SpanJson>().map(|j| j.0.clone()))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let line = self.format(event, corr_id.as_deref(), &spans);
        let mut writer = self.make_writer.make_writer_for(event.metadata());
        // A failed log write has nowhere better to be reported.
        let _ = writer.write_all(line.as_bytes());
    }
}

impl fmt::Debug for LogFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogFilter").finish_non_exhaustive()
    }
}

fn carries_corr_id(meta: &Metadata<'_>) -> bool {
    meta.is_span() && meta.fields().field(CORR_ID_FIELD).is_some()
}

// A global layer, not a per-layer `Filter`: with per-layer filtering, a library that asks
// `tracing::enabled!` for a disabled callsite (sqlx does, for every PostgreSQL notice and
// query log) leaves per-layer filter state behind on that thread, and the next enabled
// event there is dropped. A global filter has no such state.
impl Layer<Registry> for LogFilter {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if carries_corr_id(meta) {
            Interest::always()
        } else {
            Layer::register_callsite(&self.env, meta)
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, cx: Context<'_, Registry>) -> bool {
        carries_corr_id(meta) || Layer::enabled(&self.env, meta, cx)
    }

    fn event_enabled(&self, event: &Event<'_>, cx: Context<'_, Registry>) -> bool {
        Layer::event_enabled(&self.env, event, cx)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // Correlation spans may sit above the filter's level, so no static cap is safe.
        None
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, Registry>) {
        Layer::on_new_span(&self.env, attrs, id, ctx);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, Registry>) {
        Layer::on_record(&self.env, id, values, ctx);
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, Registry>) {
        Layer::on_enter(&self.env, id, ctx);
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, Registry>) {
        Layer::on_exit(&self.env, id, ctx);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, Registry>) {
        Layer::on_close(&self.env, id, ctx);
    }
}

impl Visit for CorrIdVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == CORR_ID_FIELD {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == CORR_ID_FIELD {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl EventVisitor {
    fn push(&mut self, field: &Field, json: String) {
        self.fields.push((field.name(), json));
    }

    fn push_str(&mut self, field: &Field, text: &str) {
        match field.name() {
            "message" => self.message = Some(text.to_owned()),
            CORR_ID_FIELD => self.corr_id = Some(text.to_owned()),
            _ => {
                let mut json = String::with_capacity(text.len() + 2);
                push_json_str(&mut json, text);
                self.push(field, json);
            }
        }
    }
}

impl Visit for EventVisitor {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity; keep them readable as strings.
        match serde_json::Number::from_f64(value) {
            Some(n) => self.push(field, n.to_string()),
            None => self.push_str(field, &value.to_string()),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, value.to_string());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, value.to_string());
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.push(field, value.to_string());
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.push(field, value.to_string());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, value.to_string());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.push_str(field, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push_str(field, &value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push_str(field, &format!("{value:?}"));
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// Appends `text` as a JSON string literal (control characters escaped).
fn push_json_str(out: &mut String, text: &str) {
    // serde_json's escaping of a &str cannot fail.
    out.push_str(&serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

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

    impl Capture {
        fn lines(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().clone())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    fn capture(config: &LogConfig, f: impl FnOnce(&LogHandle)) -> Vec<String> {
        let out = Capture::default();
        let (sub, handle) = subscriber(config, out.clone()).unwrap();
        tracing::subscriber::with_default(sub, || f(&handle));
        out.lines()
    }

    #[test]
    fn event_key_uses_the_event_field_else_the_message() {
        let cfg = LogConfig {
            event_key: true,
            ..LogConfig::new("svc")
        };
        let lines = capture(&cfg, |_| {
            tracing::info!(event = "request", status = 200, "request served");
            tracing::info!("plain message");
        });
        assert!(lines[0].contains(r#""event":"request""#), "{}", lines[0]);
        assert_eq!(lines[0].matches("\"event\"").count(), 1);
        assert!(
            lines[1].contains(r#""event":"plain message""#),
            "{}",
            lines[1]
        );
        let plain = capture(&LogConfig::new("svc"), |_| tracing::info!("x"));
        assert!(!plain[0].contains("\"event\""));
    }

    #[test]
    fn keys_come_in_the_specified_order() {
        let cfg = LogConfig::new("svc").static_field("node_id", "n1");
        let lines = capture(&cfg, |_| {
            let span = tracing::info_span!("request", corr_id = "abc");
            let _g = span.enter();
            tracing::info!(count = 3, ok = true, "hello");
        });
        let line = &lines[0];
        let order = [
            "\"ts\"",
            "\"level\"",
            "\"message\"",
            "\"service\"",
            "\"node_id\"",
            "\"corr_id\"",
            "\"count\"",
            "\"ok\"",
            "\"target\"",
        ];
        let positions: Vec<usize> = order
            .iter()
            .map(|k| line.find(k).unwrap_or_else(|| panic!("{k} in {line}")))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{line}");
        assert!(line.contains("\"count\":3,\"ok\":true"), "{line}");
    }

    #[test]
    fn an_event_field_named_like_a_static_field_is_written_once() {
        let cfg = LogConfig::new("svc").static_field("server", "s1");
        let lines = capture(&cfg, |_| tracing::info!(server = "s1", n = 1, "x"));
        assert_eq!(lines[0].matches("\"server\"").count(), 1, "{}", lines[0]);
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            (v["server"].as_str(), v["n"].as_i64()),
            (Some("s1"), Some(1))
        );
    }

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        let lines = capture(&LogConfig::new("svc"), |_| tracing::warn!("x"));
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        let ts = v["ts"].as_str().unwrap();
        assert_eq!(ts.len(), "2024-01-01T00:00:00.000Z".len(), "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
        assert_eq!(v["level"], "WARN");
    }

    #[test]
    fn control_characters_are_escaped_and_reserved_names_do_not_collide() {
        let lines = capture(&LogConfig::new("svc"), |_| {
            tracing::info!(target = "x", note = "a\nb\u{1}", "m\t");
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["note"], "a\nb\u{1}");
        assert_eq!(v["message"], "m\t");
        assert_eq!(v["field.target"], "x");
    }

    #[test]
    fn filter_changes_take_effect_and_reset_restores() {
        let lines = capture(&LogConfig::new("svc"), |h| {
            tracing::debug!("hidden");
            h.set_filter("debug").unwrap();
            assert_eq!(h.current(), "debug");
            tracing::debug!("shown");
            h.reset().unwrap();
            tracing::debug!("hidden again");
            assert_eq!(h.current(), h.configured());
        });
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("\"shown\""));
    }

    #[test]
    fn corr_id_reaches_lines_below_the_filter_level_of_its_span() {
        let cfg = LogConfig {
            default_filter: "warn".into(),
            ..LogConfig::new("svc")
        };
        let lines = capture(&cfg, |_| {
            let span = tracing::info_span!("request", corr_id = "r-1");
            let _g = span.enter();
            tracing::info!("filtered out");
            tracing::warn!("kept");
        });
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("\"corr_id\":\"r-1\""), "{}", lines[0]);
    }

    #[test]
    fn bad_filter_is_a_config_error() {
        let err = LogHandle::set_filter(
            &subscriber(&LogConfig::new("svc"), Capture::default())
                .unwrap()
                .1,
            "foo=notalevel",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("log filter = \"foo=notalevel\""),
            "{err}"
        );
    }
}
