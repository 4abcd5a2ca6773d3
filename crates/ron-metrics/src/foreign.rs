//! Foreign collectors: `prometheus`-crate collectors gathered at scrape time and rendered
//! with the base labels first. A family that breaks the registry's rules, or a collector
//! that panics, is skipped, logged once and counted; the rest of the scrape is served.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};

use prometheus::proto::{MetricFamily, MetricType};

use crate::Format;
use crate::encode::Rendered;
use crate::labels::BASE_LABEL_NAMES;
use crate::registry::Registry;
use crate::text::{escape_help, f64_string, is_label_name, is_metric_name, push_label_value};

/// Gathers every foreign collector and renders its valid families.
pub(crate) fn render_all(reg: &Registry, fmt: Format) -> Vec<Rendered> {
    let collectors = reg.inner.state.read().foreign.clone();
    if collectors.is_empty() {
        return Vec::new();
    }
    let native: HashSet<String> = reg
        .inner
        .state
        .read()
        .families
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, c) in collectors.iter().enumerate() {
        let families = match catch_unwind(AssertUnwindSafe(|| c.collect())) {
            Ok(f) => f,
            Err(_) => {
                skip(
                    reg,
                    &format!("collector#{i}"),
                    "collector panicked",
                    "foreign_panic",
                );
                continue;
            }
        };
        for mf in families {
            if mf.get_metric().is_empty() {
                continue;
            }
            let name = mf.name().to_owned();
            if native.contains(&name) || !seen.insert(name.clone()) {
                skip(reg, &name, "name already exposed", "foreign_invalid");
                continue;
            }
            match render_family(reg, &mf, fmt) {
                Ok(r) => out.push(r),
                Err(why) => skip(reg, &name, why, "foreign_invalid"),
            }
        }
    }
    out
}

fn skip(reg: &Registry, family: &str, reason: &str, cause: &str) {
    if let Some(errors) = reg.inner.errors.get() {
        errors.with_label_values(&[cause]).inc();
    }
    if reg.inner.warned_foreign.lock().insert(family.to_owned()) {
        tracing::warn!(family, reason, "metrics_foreign_invalid");
    }
}

fn render_family(reg: &Registry, mf: &MetricFamily, fmt: Format) -> Result<Rendered, &'static str> {
    let name = mf.name();
    if !is_metric_name(name) {
        return Err("invalid metric name");
    }
    let om = fmt == Format::OpenMetrics100;
    let kind = mf.get_field_type();
    let (type_name, shown) = match kind {
        MetricType::COUNTER => {
            if !name.ends_with("_total") {
                return Err("counter name must end in _total");
            }
            ("counter", if om { &name[..name.len() - 6] } else { name })
        }
        MetricType::GAUGE => ("gauge", name),
        MetricType::HISTOGRAM => {
            if !(name.ends_with("_seconds") || name.ends_with("_bytes")) {
                return Err("histogram name must end in _seconds or _bytes");
            }
            ("histogram", name)
        }
        MetricType::SUMMARY => ("summary", name),
        MetricType::UNTYPED => (if om { "unknown" } else { "untyped" }, name),
    };
    let help = if mf.help().is_empty() {
        name
    } else {
        mf.help()
    };
    let mut s = String::new();
    let _ = write!(
        s,
        "# HELP {shown} {}\n# TYPE {shown} {type_name}\n",
        escape_help(help, om)
    );
    let base = &reg.inner.base_rendered;
    let mut series = 0;
    for m in mf.get_metric() {
        let mut labels = String::from(&**base);
        for lp in m.get_label() {
            // Base (and extra) labels win over a collector's clashing label.
            if BASE_LABEL_NAMES.contains(&lp.name()) || reg.inner.base.is_reserved(lp.name()) {
                continue;
            }
            // `le` and `quantile` are generated for histograms and summaries, so there a
            // collector's own would clash; on counters and gauges they are ordinary labels
            // (mongoose exposes a cumulative `mongoose_batches_total{le}` counter family).
            let generated = match kind {
                MetricType::HISTOGRAM => lp.name() == "le",
                MetricType::SUMMARY => lp.name() == "quantile",
                _ => false,
            };
            if !is_label_name(lp.name()) || generated {
                return Err("invalid label name");
            }
            let _ = write!(labels, ",{}=\"", lp.name());
            push_label_value(&mut labels, lp.value());
            labels.push('"');
        }
        series += 1;
        match kind {
            MetricType::COUNTER => line(&mut s, name, "", &labels, m.get_counter().get_value()),
            MetricType::GAUGE => line(&mut s, name, "", &labels, m.get_gauge().get_value()),
            #[allow(deprecated)]
            MetricType::UNTYPED => line(&mut s, name, "", &labels, m.get_untyped().get_value()),
            MetricType::HISTOGRAM => {
                let h = m.get_histogram();
                let mut prev = 0u64;
                for b in h.get_bucket() {
                    if b.cumulative_count() < prev || !b.upper_bound().is_finite() {
                        return Err("histogram buckets not cumulative or not finite");
                    }
                    prev = b.cumulative_count();
                    let _ = writeln!(
                        s,
                        "{name}_bucket{{{labels},le=\"{}\"}} {prev}",
                        f64_string(b.upper_bound())
                    );
                }
                let count = h.get_sample_count();
                if count < prev {
                    return Err("histogram count below its last bucket");
                }
                let _ = writeln!(s, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
                line(&mut s, name, "_sum", &labels, h.get_sample_sum());
                let _ = writeln!(s, "{name}_count{{{labels}}} {count}");
            }
            MetricType::SUMMARY => {
                let sm = m.get_summary();
                for q in sm.get_quantile() {
                    let _ = write!(
                        s,
                        "{name}{{{labels},quantile=\"{}\"}} ",
                        f64_string(q.quantile())
                    );
                    s.push_str(&f64_string(q.value()));
                    s.push('\n');
                }
                line(&mut s, name, "_sum", &labels, sm.sample_sum());
                let _ = writeln!(s, "{name}_count{{{labels}}} {}", sm.sample_count());
            }
        }
    }
    Ok(Rendered {
        name: name.to_owned(),
        body: s.into_bytes(),
        series,
    })
}

fn line(s: &mut String, name: &str, suffix: &str, labels: &str, v: f64) {
    let _ = writeln!(s, "{name}{suffix}{{{labels}}} {}", f64_string(v));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BaseLabels;

    fn reg() -> Registry {
        let r = Registry::new(BaseLabels::new("s", "i", "v", false));
        r.set_errors_family(
            r.counter_vec("metrics_exposition_errors_total", "e", &["cause"])
                .unwrap(),
        );
        r
    }

    #[test]
    fn foreign_counter_gets_base_labels_first_and_clashes_dropped() {
        let r = reg();
        let c = prometheus::IntCounterVec::new(
            prometheus::Opts::new("ext_requests_total", "External requests."),
            &["service", "code"],
        )
        .unwrap();
        c.with_label_values(&["evil", "200"]).inc_by(3);
        r.register_collector(Box::new(c)).unwrap();
        let mut out = Vec::new();
        r.encode_into(None, Format::Text004, &mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.contains(r#"ext_requests_total{service="s",instance="i",build_version="v",amnesia="off",code="200"} 3"#),
            "{s}"
        );
        assert!(!s.contains("evil"));
    }

    #[test]
    fn invalid_foreign_family_is_skipped_and_counted() {
        let r = reg();
        let bad = prometheus::IntCounter::new("no_suffix", "Bad counter.").unwrap();
        bad.inc();
        r.register_collector(Box::new(bad)).unwrap();
        let mut out = Vec::new();
        r.encode_into(None, Format::Text004, &mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(!s.contains("no_suffix"));
        assert!(s.contains(r#"cause="foreign_invalid"} 1"#), "{s}");
    }

    #[test]
    fn le_is_an_ordinary_label_on_a_counter_family() {
        let r = reg();
        let c = prometheus::IntCounterVec::new(
            prometheus::Opts::new("batches_total", "Batches."),
            &["le"],
        )
        .unwrap();
        c.with_label_values(&["4"]).inc_by(3);
        r.register_collector(Box::new(c)).unwrap();
        let mut out = Vec::new();
        r.encode_into(None, Format::Text004, &mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains(r#"batches_total{service="s",instance="i",build_version="v",amnesia="off",le="4"} 3"#), "{s}");
    }

    #[test]
    fn duplicate_descriptor_is_refused() {
        let r = reg();
        r.counter("dup_total", "h").unwrap();
        let c = prometheus::IntCounter::new("dup_total", "Dup.").unwrap();
        assert!(r.register_collector(Box::new(c)).is_err());
    }
}
