//! The encoder: Prometheus text 0.0.4 and OpenMetrics 1.0.0.
//!
//! Native families arrive sorted and pre-rendered; foreign families (gathered from
//! `prometheus` collectors) and the two health gauges are merged in by name, so every
//! family appears once, in name order, as one contiguous group.

use ron_kernel::HealthState;

use crate::foreign;
use crate::registry::{HEALTH_DEGRADED, HEALTH_READY, Registry};
use crate::text::{escape_help, push_label_value};

/// Exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Text004,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics100,
}

/// Content type of the text format.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of OpenMetrics.
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

const HEALTH_READY_HELP: &str = "Readiness check value: 1 ok, 0 failing.";
const HEALTH_DEGRADED_HELP: &str = "1 when /readyz would answer 503.";

impl Format {
    /// The `Content-Type` this format is served with.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text004 => CONTENT_TYPE_TEXT,
            Format::OpenMetrics100 => CONTENT_TYPE_OPENMETRICS,
        }
    }

    /// Short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text004 => "text",
            Format::OpenMetrics100 => "openmetrics",
        }
    }
}

/// One family rendered outside the native list (foreign or health).
pub(crate) struct Rendered {
    pub(crate) name: String,
    pub(crate) body: Vec<u8>,
    pub(crate) series: usize,
}

impl Registry {
    /// Appends the whole exposition to `out`; returns the number of series written.
    pub fn encode_into(
        &self,
        health: Option<&HealthState>,
        fmt: Format,
        out: &mut Vec<u8>,
    ) -> usize {
        let mut extra = foreign::render_all(self, fmt);
        if let Some(h) = health {
            extra.extend(render_health(self, h, fmt));
        }
        extra.sort_by(|a, b| a.name.cmp(&b.name));

        let state = self.inner.state.read();
        let mut series = 0;
        let mut extra = extra.into_iter().peekable();
        for fam in &state.families {
            while let Some(e) = extra.next_if(|e| e.name.as_str() < fam.name()) {
                out.extend_from_slice(&e.body);
                series += e.series;
            }
            series += fam.encode(fmt, out);
        }
        drop(state);
        for e in extra {
            out.extend_from_slice(&e.body);
            series += e.series;
        }
        if fmt == Format::OpenMetrics100 {
            out.extend_from_slice(b"# EOF\n");
        }
        series
    }
}

fn render_health(reg: &Registry, health: &HealthState, fmt: Format) -> Vec<Rendered> {
    let snap = health.snapshot();
    let base = &reg.inner.base_rendered;
    let om = fmt == Format::OpenMetrics100;
    let mut out = Vec::with_capacity(2);

    let mut body = format!(
        "# HELP {HEALTH_DEGRADED} {}\n# TYPE {HEALTH_DEGRADED} gauge\n{HEALTH_DEGRADED}{{{base}}} {}\n",
        escape_help(HEALTH_DEGRADED_HELP, om),
        u8::from(!snap.ready)
    );
    out.push(Rendered {
        name: HEALTH_DEGRADED.to_owned(),
        body: std::mem::take(&mut body).into_bytes(),
        series: 1,
    });

    if !snap.checks.is_empty() {
        body.push_str(&format!(
            "# HELP {HEALTH_READY} {}\n# TYPE {HEALTH_READY} gauge\n",
            escape_help(HEALTH_READY_HELP, om)
        ));
        for (check, ok) in &snap.checks {
            body.push_str(HEALTH_READY);
            body.push('{');
            body.push_str(base);
            body.push_str(",check=\"");
            push_label_value(&mut body, check);
            body.push_str("\"} ");
            body.push_str(if *ok { "1\n" } else { "0\n" });
        }
        out.push(Rendered {
            name: HEALTH_READY.to_owned(),
            body: body.into_bytes(),
            series: snap.checks.len(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BaseLabels;

    #[test]
    fn health_gauges_merge_in_name_order() {
        let r = Registry::new(BaseLabels::new("s", "i", "v", false));
        r.gauge("a_gauge", "h").unwrap();
        r.gauge("z_gauge", "h").unwrap();
        let h = HealthState::new();
        h.set("db", true);
        h.set("cfg", false);
        let mut out = Vec::new();
        assert_eq!(r.encode_into(Some(&h), Format::OpenMetrics100, &mut out), 5);
        let s = String::from_utf8(out).unwrap();
        let order: Vec<&str> = s
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        assert_eq!(
            order,
            [
                "a_gauge gauge",
                "health_degraded gauge",
                "health_ready gauge",
                "z_gauge gauge"
            ]
        );
        assert!(s.contains("health_ready{service=\"s\",instance=\"i\",build_version=\"v\",amnesia=\"off\",check=\"cfg\"} 0\n"));
        assert!(s.ends_with("# EOF\n"));
    }
}
