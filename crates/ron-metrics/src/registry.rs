//! The registry: validates and holds families, all carrying the same base labels.
//!
//! Hand-written rather than the `prometheus` crate's registry for two measured reasons
//! (see the spec's decisions): that crate sorts labels, which breaks the ordered base-label
//! grep operators rely on, and it can only expose bucket counts by building protobuf
//! structures on every scrape, which rules out the encode-speed goal. Interop is kept:
//! `register_collector` accepts any `prometheus` collector.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};

use crate::family::{
    Buckets, Cell, CounterCell, Encode, Family, FloatCounterCell, GaugeCell, HistogramCell,
    IntGaugeCell, Kind, ReadCells,
};
use crate::handles::*;
use crate::labels::BaseLabels;
use crate::text::{is_label_name, is_metric_name};

/// Default most children per vector family before the overflow child is used.
pub const DEFAULT_MAX_SERIES_PER_FAMILY: usize = 10_000;
/// Most labels a family may declare.
pub const MAX_FAMILY_LABELS: usize = 8;
/// Longest HELP text, in bytes.
pub const MAX_HELP_BYTES: usize = 512;
/// Most histogram buckets (besides the implicit `+Inf`).
pub const MAX_BUCKETS: usize = 64;
/// Names the encoder renders itself from the HealthState at scrape time.
pub(crate) const HEALTH_READY: &str = "health_ready";
pub(crate) const HEALTH_DEGRADED: &str = "health_degraded";

/// Why a family was refused. Nothing is half-registered on error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// The family name breaks `[a-zA-Z_][a-zA-Z0-9_]*` or starts with `__`.
    #[error("metric name {0:?} is invalid: expected [a-zA-Z_][a-zA-Z0-9_]* not starting with __")]
    InvalidName(String),
    /// A label name is malformed, repeated, or there are more than 8.
    #[error("label {label:?} of {family:?} is invalid: {why}")]
    InvalidLabel {
        /// Family name.
        family: String,
        /// Offending label.
        label: String,
        /// What rule it breaks.
        why: &'static str,
    },
    /// A label name is `le`, `quantile`, a base label or an extra label.
    #[error(
        "label {label:?} of {family:?} is reserved (le, quantile and the base labels are added by ron-metrics)"
    )]
    ReservedLabel {
        /// Family name.
        family: String,
        /// Offending label.
        label: String,
    },
    /// The name's suffix does not fit the type.
    #[error("metric name {name:?} must {rule}")]
    BadSuffix {
        /// Family name.
        name: String,
        /// The rule, e.g. "end in _total for a counter".
        rule: &'static str,
    },
    /// The name (or a histogram's derived name) is already registered.
    #[error("metric name {0:?} is already registered")]
    Duplicate(String),
    /// Buckets are empty, too many, non-finite, non-positive or not strictly increasing.
    #[error("buckets of {name:?} are invalid: {why}")]
    BadBuckets {
        /// Family name.
        name: String,
        /// What rule they break.
        why: &'static str,
    },
    /// HELP is empty or longer than 512 bytes.
    #[error("help of {0:?} must be 1-512 bytes")]
    EmptyHelp(String),
}

pub(crate) struct State {
    /// Sorted by name.
    pub(crate) families: Vec<Arc<dyn Encode>>,
    taken: HashSet<String>,
    pub(crate) foreign: Vec<Arc<dyn prometheus::core::Collector>>,
}

pub(crate) struct Inner {
    pub(crate) base: BaseLabels,
    pub(crate) base_rendered: Arc<str>,
    base_pairs: Arc<[(String, String)]>,
    max_series: usize,
    pub(crate) state: RwLock<State>,
    overflow: OnceLock<CounterVec>,
    pub(crate) errors: OnceLock<CounterVec>,
    pub(crate) warned_foreign: Mutex<HashSet<String>>,
}

/// Holds families that all carry the same base labels. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    pub(crate) inner: Arc<Inner>,
}

impl Registry {
    /// An empty registry with the given base labels and the default series cap.
    pub fn new(base: BaseLabels) -> Registry {
        Registry::with_series_cap(base, DEFAULT_MAX_SERIES_PER_FAMILY)
    }

    /// An empty registry with a custom per-family series cap.
    pub fn with_series_cap(mut base: BaseLabels, max_series: usize) -> Registry {
        base.extra.sort();
        let base_rendered: Arc<str> = base.render().into();
        let base_pairs: Arc<[(String, String)]> = base.pairs().into();
        let taken = [HEALTH_READY, HEALTH_DEGRADED]
            .into_iter()
            .map(str::to_owned)
            .collect();
        Registry {
            inner: Arc::new(Inner {
                base,
                base_rendered,
                base_pairs,
                max_series: max_series.max(1),
                state: RwLock::new(State {
                    families: Vec::new(),
                    taken,
                    foreign: Vec::new(),
                }),
                overflow: OnceLock::new(),
                errors: OnceLock::new(),
                warned_foreign: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// The base labels every family carries.
    pub fn base_labels(&self) -> &BaseLabels {
        &self.inner.base
    }

    /// Registers an integer counter (name must end in `_total`).
    pub fn counter(&self, name: &str, help: &str) -> Result<Counter, MetricsError> {
        let f = self.add::<CounterCell>(name, help, &[], ())?;
        Ok(Counter(f.child(&[])))
    }

    /// Registers a labelled integer counter family.
    pub fn counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<CounterVec, MetricsError> {
        Ok(CounterVec(self.add::<CounterCell>(
            name,
            help,
            labels,
            (),
        )?))
    }

    /// Registers a float counter.
    pub fn float_counter(&self, name: &str, help: &str) -> Result<FloatCounter, MetricsError> {
        let f = self.add::<FloatCounterCell>(name, help, &[], ())?;
        Ok(FloatCounter(f.child(&[])))
    }

    /// Registers a labelled float counter family.
    pub fn float_counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<FloatCounterVec, MetricsError> {
        Ok(FloatCounterVec(self.add::<FloatCounterCell>(
            name,
            help,
            labels,
            (),
        )?))
    }

    /// Registers a float gauge.
    pub fn gauge(&self, name: &str, help: &str) -> Result<Gauge, MetricsError> {
        let f = self.add::<GaugeCell>(name, help, &[], ())?;
        Ok(Gauge(f.child(&[])))
    }

    /// Registers a labelled float gauge family.
    pub fn gauge_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<GaugeVec, MetricsError> {
        Ok(GaugeVec(self.add::<GaugeCell>(name, help, labels, ())?))
    }

    /// Registers an integer gauge.
    pub fn int_gauge(&self, name: &str, help: &str) -> Result<IntGauge, MetricsError> {
        let f = self.add::<IntGaugeCell>(name, help, &[], ())?;
        Ok(IntGauge(f.child(&[])))
    }

    /// Registers a labelled integer gauge family.
    pub fn int_gauge_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntGaugeVec, MetricsError> {
        Ok(IntGaugeVec(self.add::<IntGaugeCell>(
            name,
            help,
            labels,
            (),
        )?))
    }

    /// Registers a histogram (name must end in `_seconds` or `_bytes`).
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
    ) -> Result<Histogram, MetricsError> {
        check_buckets(name, buckets)?;
        let f = self.add::<HistogramCell>(name, help, &[], Buckets::new(buckets))?;
        Ok(Histogram(f.child(&[])))
    }

    /// Registers a labelled histogram family.
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> Result<HistogramVec, MetricsError> {
        check_buckets(name, buckets)?;
        Ok(HistogramVec(self.add::<HistogramCell>(
            name,
            help,
            labels,
            Buckets::new(buckets),
        )?))
    }

    /// Adds a `prometheus`-crate collector, gathered at scrape time and rendered with the
    /// base labels first. Its descriptor names must not clash with registered names.
    pub fn register_collector(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), MetricsError> {
        let names: Vec<String> = collector.desc().iter().map(|d| d.fq_name.clone()).collect();
        let mut state = self.inner.state.write();
        for n in &names {
            if !is_metric_name(n) {
                return Err(MetricsError::InvalidName(n.clone()));
            }
            if derived_names(n).iter().any(|d| state.taken.contains(d)) {
                return Err(MetricsError::Duplicate(n.clone()));
            }
        }
        for n in &names {
            state.taken.extend(derived_names(n));
        }
        state.foreign.push(Arc::from(collector));
        Ok(())
    }

    /// Sets the family that counts series-cap hits; every vector family registered after
    /// this gets its child pre-created.
    pub(crate) fn set_overflow_family(&self, vec: CounterVec) {
        let _ = self.inner.overflow.set(vec);
    }

    /// Sets the family that counts skipped foreign families.
    pub(crate) fn set_errors_family(&self, vec: CounterVec) {
        let _ = self.inner.errors.set(vec);
    }

    fn add<C: Cell>(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        spec: C::Spec,
    ) -> Result<Arc<Family<C>>, MetricsError>
    where
        Family<C>: ReadCells,
    {
        validate(name, help, labels, C::KIND, &self.inner.base)?;
        let mut state = self.inner.state.write();
        let names = match C::KIND {
            Kind::Histogram => derived_names(name),
            _ => vec![name.to_owned()],
        };
        // A counter `x_total` also clashes with a foreign or histogram family using it.
        if let Some(n) = names.iter().find(|n| state.taken.contains(*n)) {
            return Err(MetricsError::Duplicate(n.clone()));
        }
        let fam = Arc::new(Family::<C>::new(
            name,
            help,
            labels,
            self.inner.base_rendered.clone(),
            self.inner.base_pairs.clone(),
            spec,
            self.inner.max_series,
        ));
        state.taken.extend(names);
        let at = state.families.partition_point(|f| f.name() < fam.name());
        state.families.insert(at, fam.clone() as Arc<dyn Encode>);
        drop(state);
        if !labels.is_empty()
            && let Some(overflow) = self.inner.overflow.get()
        {
            fam.set_overflow_counter(overflow.with_label_values(&[name]));
        }
        Ok(fam)
    }
}

fn derived_names(name: &str) -> Vec<String> {
    let mut v = vec![name.to_owned()];
    for s in ["_bucket", "_sum", "_count"] {
        v.push(format!("{name}{s}"));
    }
    v
}

fn validate(
    name: &str,
    help: &str,
    labels: &[&str],
    kind: Kind,
    base: &BaseLabels,
) -> Result<(), MetricsError> {
    if !is_metric_name(name) {
        return Err(MetricsError::InvalidName(name.to_owned()));
    }
    let suffix_rule = match kind {
        Kind::Counter if !name.ends_with("_total") => Some("end in _total for a counter"),
        Kind::Histogram if !(name.ends_with("_seconds") || name.ends_with("_bytes")) => {
            Some("end in _seconds or _bytes for a histogram")
        }
        Kind::Gauge
            if ["_total", "_bucket", "_count", "_sum", "_created"]
                .iter()
                .any(|s| name.ends_with(s)) =>
        {
            Some("not end in _total, _bucket, _count, _sum or _created for a gauge")
        }
        _ => None,
    };
    if let Some(rule) = suffix_rule {
        return Err(MetricsError::BadSuffix {
            name: name.to_owned(),
            rule,
        });
    }
    if help.is_empty() || help.len() > MAX_HELP_BYTES {
        return Err(MetricsError::EmptyHelp(name.to_owned()));
    }
    let invalid = |label: &str, why| MetricsError::InvalidLabel {
        family: name.to_owned(),
        label: label.to_owned(),
        why,
    };
    if labels.len() > MAX_FAMILY_LABELS {
        return Err(invalid(labels[MAX_FAMILY_LABELS], "more than 8 labels"));
    }
    for (i, l) in labels.iter().enumerate() {
        if !is_label_name(l) {
            return Err(invalid(
                l,
                "expected [a-zA-Z_][a-zA-Z0-9_]* not starting with __",
            ));
        }
        if *l == "le" || *l == "quantile" || base.is_reserved(l) {
            return Err(MetricsError::ReservedLabel {
                family: name.to_owned(),
                label: (*l).to_owned(),
            });
        }
        if labels[..i].contains(l) {
            return Err(invalid(l, "declared twice"));
        }
    }
    Ok(())
}

fn check_buckets(name: &str, buckets: &[f64]) -> Result<(), MetricsError> {
    let bad = |why| MetricsError::BadBuckets {
        name: name.to_owned(),
        why,
    };
    if buckets.is_empty() || buckets.len() > MAX_BUCKETS {
        return Err(bad("need 1-64 bounds"));
    }
    if buckets.iter().any(|b| !b.is_finite() || *b <= 0.0) {
        return Err(bad("bounds must be finite and > 0"));
    }
    if buckets.windows(2).any(|w| w[0] >= w[1]) {
        return Err(bad("bounds must be strictly increasing"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg() -> Registry {
        Registry::new(BaseLabels::new("s", "i", "0.1.0", false))
    }

    #[test]
    fn every_registration_rule_has_its_error() {
        let r = reg();
        assert!(matches!(
            r.counter("1x_total", "h"),
            Err(MetricsError::InvalidName(_))
        ));
        assert!(matches!(
            r.counter("__x_total", "h"),
            Err(MetricsError::InvalidName(_))
        ));
        assert!(matches!(
            r.counter("x", "h"),
            Err(MetricsError::BadSuffix { .. })
        ));
        assert!(matches!(
            r.histogram("x_ms", "h", &[1.0]),
            Err(MetricsError::BadSuffix { .. })
        ));
        assert!(matches!(
            r.gauge("g_total", "h"),
            Err(MetricsError::BadSuffix { .. })
        ));
        assert!(matches!(
            r.counter_vec("a_total", "h", &["le"]),
            Err(MetricsError::ReservedLabel { .. })
        ));
        assert!(matches!(
            r.counter_vec("a_total", "h", &["service"]),
            Err(MetricsError::ReservedLabel { .. })
        ));
        assert!(matches!(
            r.counter_vec("a_total", "h", &["a", "a"]),
            Err(MetricsError::InvalidLabel { .. })
        ));
        assert!(matches!(
            r.counter_vec("a_total", "h", &["a-b"]),
            Err(MetricsError::InvalidLabel { .. })
        ));
        assert!(matches!(
            r.counter("a_total", ""),
            Err(MetricsError::EmptyHelp(_))
        ));
        assert!(matches!(
            r.histogram("h_seconds", "h", &[1.0, 1.0]),
            Err(MetricsError::BadBuckets { .. })
        ));
        assert!(matches!(
            r.histogram("h_seconds", "h", &[]),
            Err(MetricsError::BadBuckets { .. })
        ));
        assert!(matches!(
            r.histogram("h_seconds", "h", &[f64::INFINITY]),
            Err(MetricsError::BadBuckets { .. })
        ));
        r.counter("a_total", "h").unwrap();
        assert!(matches!(
            r.counter("a_total", "h"),
            Err(MetricsError::Duplicate(_))
        ));
        r.histogram("h_seconds", "h", &[1.0]).unwrap();
        assert!(matches!(
            r.gauge("h_seconds_count", "h"),
            Err(MetricsError::BadSuffix { .. })
        ));
        assert!(matches!(
            r.gauge("h_seconds_bucket", "h"),
            Err(MetricsError::BadSuffix { .. })
        ));
        assert!(matches!(
            r.gauge("health_ready", "h"),
            Err(MetricsError::Duplicate(_))
        ));
    }

    #[test]
    fn families_stay_sorted_by_name() {
        let r = reg();
        r.counter("b_total", "h").unwrap();
        r.counter("a_total", "h").unwrap();
        r.gauge("c", "h").unwrap();
        let names: Vec<String> = r
            .inner
            .state
            .read()
            .families
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        assert_eq!(names, ["a_total", "b_total", "c"]);
    }
}
