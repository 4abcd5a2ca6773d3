//! The libraries under comparison, each holding the same [`DataSet`] and exposing one
//! timed operation that produces a complete text exposition.
//!
//! Every operation starts from an empty output buffer, as one scrape does. Ours passes the
//! previous body's size as a capacity hint because that is what its exposer does on every
//! scrape; a no-hint row is printed for information.

use std::borrow::Cow;
use std::cell::Cell;

use anyhow::{Context, Result};
use metrics::{Key, KeyName, Label, Level, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use prometheus::Encoder;
use prometheus_client::metrics::counter::Counter as PcCounter;
use prometheus_client::metrics::family::Family as PcFamily;
use prometheus_client::metrics::histogram::Histogram as PcHistogram;
use ron_metrics::{BaseLabels, Format, Registry};

use crate::dataset::{BASE_LABELS, BUCKETS, COUNTER_HELP, DataSet, HISTOGRAM_HELP};

/// One library's encode operation.
pub trait Contender {
    /// Library and version, as printed in the table.
    fn library(&self) -> &'static str;
    /// What is timed.
    fn operation(&self) -> &'static str;
    /// Whether the row is for information only (not a G1 peer and not ours).
    fn informational(&self) -> bool {
        false
    }
    /// Whether this is ron-metrics' own primary row.
    fn is_ours(&self) -> bool {
        false
    }
    /// Produces the full exposition.
    fn encode(&self) -> Result<Vec<u8>>;
}

/// ron-metrics: a `Registry` with the four base labels.
pub struct Ours {
    registry: Registry,
    size_hint: Option<Cell<usize>>,
}

/// `prometheus` 0.14: `gather()` then `TextEncoder::encode`.
pub struct Prometheus {
    registry: prometheus::Registry,
}

/// `prometheus` 0.14: `TextEncoder::encode` of families gathered once (information only).
pub struct PrometheusEncodeOnly {
    families: Vec<prometheus::proto::MetricFamily>,
}

/// `prometheus-client` 0.25: `encoding::text::encode`.
pub struct PrometheusClient {
    registry: prometheus_client::registry::Registry,
}

/// `metrics-exporter-prometheus` 0.18: `PrometheusHandle::render`.
pub struct MetricsExporter {
    handle: PrometheusHandle,
}

type PcLabels = Vec<(&'static str, String)>;

impl Ours {
    /// Builds our registry; `size_hint` mirrors the exposer's per-scrape capacity hint.
    pub fn build(d: &DataSet, size_hint: bool) -> Result<Ours> {
        let [service, instance, build_version, _] = BASE_LABELS.map(|(_, v)| v);
        let registry = Registry::new(BaseLabels::new(service, instance, build_version, false));
        for fam in &d.counters {
            let vec = registry
                .counter_vec(&fam.name, COUNTER_HELP, &["shard", "kind"])
                .with_context(|| format!("registering {}", fam.name))?;
            for ([shard, kind], v) in &fam.series {
                vec.with_label_values(&[shard, kind]).inc_by(*v);
            }
        }
        for fam in &d.histograms {
            let vec = registry
                .histogram_vec(&fam.name, HISTOGRAM_HELP, &["shard"], &BUCKETS)
                .with_context(|| format!("registering {}", fam.name))?;
            for (shard, obs) in &fam.series {
                let h = vec.with_label_values(&[shard]);
                obs.iter().for_each(|v| h.observe(*v));
            }
        }
        Ok(Ours {
            registry,
            size_hint: size_hint.then(|| Cell::new(0)),
        })
    }
}

impl Contender for Ours {
    fn library(&self) -> &'static str {
        "ron-metrics"
    }
    fn operation(&self) -> &'static str {
        match self.size_hint {
            Some(_) => "Registry::encode_into (size hint)",
            None => "Registry::encode_into (no hint)",
        }
    }
    fn informational(&self) -> bool {
        self.size_hint.is_none()
    }
    fn is_ours(&self) -> bool {
        self.size_hint.is_some()
    }
    fn encode(&self) -> Result<Vec<u8>> {
        let mut out = match &self.size_hint {
            // The exposer's rule: previous size plus 1/8 plus 256 bytes.
            Some(last) => Vec::with_capacity(last.get() + last.get() / 8 + 256),
            None => Vec::new(),
        };
        self.registry.encode_into(None, Format::Text004, &mut out);
        if let Some(last) = &self.size_hint {
            last.set(out.len());
        }
        Ok(out)
    }
}

impl Prometheus {
    /// Builds a `prometheus` registry with the base labels as constant labels.
    pub fn build(d: &DataSet) -> Result<Prometheus> {
        let labels = BASE_LABELS
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let registry = prometheus::Registry::new_custom(None, Some(labels))?;
        for fam in &d.counters {
            let vec = prometheus::IntCounterVec::new(
                prometheus::Opts::new(&fam.name, COUNTER_HELP),
                &["shard", "kind"],
            )?;
            registry.register(Box::new(vec.clone()))?;
            for ([shard, kind], v) in &fam.series {
                vec.with_label_values(&[shard, kind]).inc_by(*v);
            }
        }
        for fam in &d.histograms {
            let vec = prometheus::HistogramVec::new(
                prometheus::HistogramOpts::new(&fam.name, HISTOGRAM_HELP).buckets(BUCKETS.to_vec()),
                &["shard"],
            )?;
            registry.register(Box::new(vec.clone()))?;
            for (shard, obs) in &fam.series {
                let h = vec.with_label_values(&[shard]);
                obs.iter().for_each(|v| h.observe(*v));
            }
        }
        Ok(Prometheus { registry })
    }

    /// The encode-only variant over one `gather()` result.
    pub fn encode_only(&self) -> PrometheusEncodeOnly {
        PrometheusEncodeOnly {
            families: self.registry.gather(),
        }
    }
}

impl Contender for Prometheus {
    fn library(&self) -> &'static str {
        "prometheus 0.14"
    }
    fn operation(&self) -> &'static str {
        "gather() + TextEncoder::encode"
    }
    fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(out)
    }
}

impl Contender for PrometheusEncodeOnly {
    fn library(&self) -> &'static str {
        "prometheus 0.14"
    }
    fn operation(&self) -> &'static str {
        "TextEncoder::encode only"
    }
    fn informational(&self) -> bool {
        true
    }
    fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        prometheus::TextEncoder::new().encode(&self.families, &mut out)?;
        Ok(out)
    }
}

impl PrometheusClient {
    /// Builds a `prometheus-client` registry with the base labels as registry labels.
    /// Counters are registered without `_total`, which the encoder appends.
    pub fn build(d: &DataSet) -> Result<PrometheusClient> {
        let mut registry = prometheus_client::registry::Registry::with_labels(
            BASE_LABELS
                .iter()
                .map(|(k, v)| (Cow::Borrowed(*k), Cow::Borrowed(*v))),
        );
        for fam in &d.counters {
            let family = PcFamily::<PcLabels, PcCounter>::default();
            for ([shard, kind], v) in &fam.series {
                family
                    .get_or_create(&vec![("shard", shard.clone()), ("kind", kind.clone())])
                    .inc_by(*v);
            }
            let name = fam
                .name
                .strip_suffix("_total")
                .context("counter names end in _total")?;
            registry.register(name, COUNTER_HELP, family);
        }
        for fam in &d.histograms {
            let family =
                PcFamily::<PcLabels, PcHistogram, fn() -> PcHistogram>::new_with_constructor(
                    || PcHistogram::new(BUCKETS),
                );
            for (shard, obs) in &fam.series {
                let h = family.get_or_create(&vec![("shard", shard.clone())]);
                obs.iter().for_each(|v| h.observe(*v));
            }
            registry.register(&fam.name, HISTOGRAM_HELP, family);
        }
        Ok(PrometheusClient { registry })
    }
}

impl Contender for PrometheusClient {
    fn library(&self) -> &'static str {
        "prometheus-client 0.25"
    }
    fn operation(&self) -> &'static str {
        "encoding::text::encode"
    }
    fn encode(&self) -> Result<Vec<u8>> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out.into_bytes())
    }
}

impl MetricsExporter {
    /// Builds a local `metrics-exporter-prometheus` recorder (no global install, no HTTP
    /// listener) with the base labels as global labels and explicit histogram buckets.
    pub fn build(d: &DataSet) -> Result<MetricsExporter> {
        let mut builder = PrometheusBuilder::new().set_buckets(&BUCKETS)?;
        for (k, v) in BASE_LABELS {
            builder = builder.add_global_label(k, v);
        }
        let recorder = builder.build_recorder();
        let meta = Metadata::new("ron_metrics_bench", Level::INFO, None);
        for fam in &d.counters {
            recorder.describe_counter(
                KeyName::from(fam.name.clone()),
                None,
                SharedString::from(COUNTER_HELP),
            );
            for ([shard, kind], v) in &fam.series {
                let key = Key::from_parts(
                    fam.name.clone(),
                    vec![
                        Label::new("shard", shard.clone()),
                        Label::new("kind", kind.clone()),
                    ],
                );
                recorder.register_counter(&key, &meta).increment(*v);
            }
        }
        for fam in &d.histograms {
            recorder.describe_histogram(
                KeyName::from(fam.name.clone()),
                None,
                SharedString::from(HISTOGRAM_HELP),
            );
            for (shard, obs) in &fam.series {
                let key =
                    Key::from_parts(fam.name.clone(), vec![Label::new("shard", shard.clone())]);
                let h = recorder.register_histogram(&key, &meta);
                obs.iter().for_each(|v| h.record(*v));
            }
        }
        Ok(MetricsExporter {
            handle: recorder.handle(),
        })
    }
}

impl Contender for MetricsExporter {
    fn library(&self) -> &'static str {
        "metrics-exporter-prometheus 0.18"
    }
    fn operation(&self) -> &'static str {
        "PrometheusHandle::render"
    }
    fn encode(&self) -> Result<Vec<u8>> {
        Ok(self.handle.render().into_bytes())
    }
}
