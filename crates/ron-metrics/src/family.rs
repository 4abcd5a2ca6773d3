//! One metric family: its pre-rendered header, its children (series) and the series cap.
//!
//! Each child renders its fixed text (`name{labels} `) once at creation, so a scrape only
//! formats numbers. Children are found by hashing the caller's `&[&str]` in place and
//! comparing against the stored values, so a lookup of an existing child allocates nothing.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use crate::Format;
use crate::text::{
    MAX_LABEL_VALUE_BYTES, escape_help, f64_string, push_f64, push_i64, push_label_value, push_u64,
    truncate_at_char,
};

/// Label value given to every family label of the overflow child.
pub const OVERFLOW_LABEL_VALUE: &str = "__overflow__";

/// Exposition type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A series' storage and its pre-rendered text.
pub(crate) trait Cell: Send + Sync + 'static {
    /// Per-family data every child needs (bucket bounds for histograms).
    type Spec: Send + Sync + 'static;
    const KIND: Kind;
    /// `labels` is the complete rendered label set without braces.
    fn new(spec: &Self::Spec, name: &str, labels: &str) -> Self;
    fn encode(&self, spec: &Self::Spec, out: &mut Vec<u8>);
}

/// What the registry and encoder need from any native family.
pub(crate) trait Encode: Send + Sync {
    fn name(&self) -> &str;
    fn kind(&self) -> Kind;
    fn help(&self) -> &str;
    fn label_names(&self) -> &[String];
    /// Writes HELP, TYPE and samples; returns the number of series (0 writes nothing).
    fn encode(&self, fmt: Format, out: &mut Vec<u8>) -> usize;
    /// Every child's label values and a reading of its value, for OTLP and `Collector`.
    fn read(&self, visit: &mut dyn FnMut(&[Box<str>], Reading<'_>));
}

/// A point-in-time reading of one child.
pub(crate) enum Reading<'a> {
    Counter(f64),
    Gauge(f64),
    /// Bounds, non-cumulative counts (last is `+Inf`), sum.
    Histogram(&'a [f64], Vec<u64>, f64),
}

struct Entry<C> {
    values: Box<[Box<str>]>,
    cell: Arc<C>,
}

struct Children<C> {
    list: Vec<Entry<C>>,
    index: HashMap<u64, Vec<u32>>,
    /// Children counted against the cap (the overflow child is not).
    counted: usize,
    overflow: Option<Arc<C>>,
}

/// A family of `C` series.
pub(crate) struct Family<C: Cell> {
    name: String,
    help: String,
    header_text: Box<[u8]>,
    header_om: Box<[u8]>,
    label_names: Vec<String>,
    base: Arc<str>,
    spec: C::Spec,
    hasher: RandomState,
    cap: usize,
    children: RwLock<Children<C>>,
    overflow_hits: OnceLock<crate::Counter>,
    arity_warned: AtomicBool,
    /// Descriptor for the `prometheus::core::Collector` view of this family.
    pub(crate) desc: Option<prometheus::core::Desc>,
    /// Base and extra labels as pairs, for the `Collector` view.
    pub(crate) base_pairs: Arc<[(String, String)]>,
}

impl<C: Cell> Family<C> {
    pub(crate) fn new(
        name: &str,
        help: &str,
        label_names: &[&str],
        base: Arc<str>,
        base_pairs: Arc<[(String, String)]>,
        spec: C::Spec,
        cap: usize,
    ) -> Family<C> {
        let om_name = match C::KIND {
            Kind::Counter => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        let header = |n: &str, h: String| {
            format!("# HELP {n} {h}\n# TYPE {n} {}\n", C::KIND.type_name()).into_bytes()
        };
        let fam = Family {
            name: name.to_owned(),
            help: help.to_owned(),
            header_text: header(name, escape_help(help, false)).into(),
            header_om: header(om_name, escape_help(help, true)).into(),
            label_names: label_names.iter().map(|s| (*s).to_owned()).collect(),
            base,
            spec,
            hasher: RandomState::new(),
            cap: cap.max(1),
            children: RwLock::new(Children {
                list: Vec::new(),
                index: HashMap::new(),
                counted: 0,
                overflow: None,
            }),
            overflow_hits: OnceLock::new(),
            arity_warned: AtomicBool::new(false),
            desc: prometheus::core::Desc::new(
                name.to_owned(),
                help.to_owned(),
                label_names.iter().map(|s| (*s).to_owned()).collect(),
                base_pairs.iter().cloned().collect(),
            )
            .ok(),
            base_pairs,
        };
        if label_names.is_empty() {
            fam.child(&[]);
        }
        fam
    }

    /// Where series-cap hits of this family are counted.
    pub(crate) fn set_overflow_counter(&self, c: crate::Counter) {
        let _ = self.overflow_hits.set(c);
    }

    /// The child for `values`, created on first use; the overflow child past the cap or on
    /// a wrong number of values.
    pub(crate) fn child(&self, values: &[&str]) -> Arc<C> {
        if values.len() != self.label_names.len() {
            if !self.arity_warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    family = %self.name,
                    reason = %format_args!("expected {} label values, got {}", self.label_names.len(), values.len()),
                    "metrics_label_arity"
                );
            }
            return self.overflow(&mut self.children.write());
        }
        let hash = self.hash(values);
        if let Some(cell) = self.find(&self.children.read(), hash, values) {
            return cell;
        }
        let mut children = self.children.write();
        if let Some(cell) = self.find(&children, hash, values) {
            return cell;
        }
        if children.counted >= self.cap {
            if let Some(c) = self.overflow_hits.get() {
                c.inc();
            }
            return self.overflow(&mut children);
        }
        let stored: Box<[Box<str>]> = values
            .iter()
            .map(|v| truncate_at_char(v, MAX_LABEL_VALUE_BYTES).into())
            .collect();
        let cell = Arc::new(C::new(&self.spec, &self.name, &self.labels(values)));
        let idx = children.list.len() as u32;
        children.list.push(Entry {
            values: stored,
            cell: cell.clone(),
        });
        children.index.entry(hash).or_default().push(idx);
        children.counted += 1;
        cell
    }

    /// Number of series, overflow child included.
    pub(crate) fn len(&self) -> usize {
        self.children.read().list.len()
    }

    fn hash(&self, values: &[&str]) -> u64 {
        let mut h = self.hasher.build_hasher();
        for v in values {
            std::hash::Hash::hash(truncate_at_char(v, MAX_LABEL_VALUE_BYTES), &mut h);
        }
        std::hash::Hasher::finish(&h)
    }

    fn find(&self, children: &Children<C>, hash: u64, values: &[&str]) -> Option<Arc<C>> {
        let slots = children.index.get(&hash)?;
        slots.iter().find_map(|&i| {
            let e = &children.list[i as usize];
            let same = e
                .values
                .iter()
                .zip(values)
                .all(|(a, b)| **a == *truncate_at_char(b, MAX_LABEL_VALUE_BYTES));
            same.then(|| e.cell.clone())
        })
    }

    fn overflow(&self, children: &mut Children<C>) -> Arc<C> {
        if let Some(c) = &children.overflow {
            return c.clone();
        }
        let values: Vec<&str> = self
            .label_names
            .iter()
            .map(|_| OVERFLOW_LABEL_VALUE)
            .collect();
        let cell = Arc::new(C::new(&self.spec, &self.name, &self.labels(&values)));
        children.list.push(Entry {
            values: values.iter().map(|v| (*v).into()).collect(),
            cell: cell.clone(),
        });
        children.overflow = Some(cell.clone());
        cell
    }

    fn labels(&self, values: &[&str]) -> String {
        let mut s = String::with_capacity(self.base.len() + 32 * values.len());
        s.push_str(&self.base);
        for (k, v) in self.label_names.iter().zip(values) {
            s.push(',');
            s.push_str(k);
            s.push_str("=\"");
            push_label_value(&mut s, v);
            s.push('"');
        }
        s
    }
}

impl<C: Cell> Encode for Family<C>
where
    Family<C>: ReadCells,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> Kind {
        C::KIND
    }

    fn help(&self) -> &str {
        &self.help
    }

    fn label_names(&self) -> &[String] {
        &self.label_names
    }

    fn encode(&self, fmt: Format, out: &mut Vec<u8>) -> usize {
        let children = self.children.read();
        if children.list.is_empty() {
            return 0;
        }
        out.extend_from_slice(match fmt {
            Format::Text004 => &self.header_text,
            Format::OpenMetrics100 => &self.header_om,
        });
        for e in &children.list {
            e.cell.encode(&self.spec, out);
        }
        children.list.len()
    }

    fn read(&self, visit: &mut dyn FnMut(&[Box<str>], Reading<'_>)) {
        self.read_cells(visit)
    }
}

/// Per-cell-type readings; separate from [`Cell`] so the histogram can lend its bounds.
pub(crate) trait ReadCells {
    fn read_cells(&self, visit: &mut dyn FnMut(&[Box<str>], Reading<'_>));
}

macro_rules! read_scalar {
    ($cell:ty, $variant:ident, $get:expr) => {
        impl ReadCells for Family<$cell> {
            fn read_cells(&self, visit: &mut dyn FnMut(&[Box<str>], Reading<'_>)) {
                for e in &self.children.read().list {
                    let get: fn(&$cell) -> f64 = $get;
                    visit(&e.values, Reading::$variant(get(&e.cell)));
                }
            }
        }
    };
}

read_scalar!(CounterCell, Counter, |c| c.get() as f64);
read_scalar!(FloatCounterCell, Counter, |c| c.get());
read_scalar!(GaugeCell, Gauge, |c| c.get());
read_scalar!(IntGaugeCell, Gauge, |c| c.get() as f64);

impl ReadCells for Family<HistogramCell> {
    fn read_cells(&self, visit: &mut dyn FnMut(&[Box<str>], Reading<'_>)) {
        for e in &self.children.read().list {
            let counts: Vec<u64> = e
                .cell
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect();
            visit(
                &e.values,
                Reading::Histogram(&self.spec.bounds, counts, e.cell.sum()),
            );
        }
    }
}

fn prefix(name: &str, suffix: &str, labels: &str) -> Box<[u8]> {
    format!("{name}{suffix}{{{labels}}} ").into_bytes().into()
}

/// An integer counter series.
pub struct CounterCell {
    prefix: Box<[u8]>,
    value: AtomicU64,
}

impl CounterCell {
    pub(crate) fn inc_by(&self, v: u64) {
        self.value.fetch_add(v, Ordering::Relaxed);
    }
    pub(crate) fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

impl Cell for CounterCell {
    type Spec = ();
    const KIND: Kind = Kind::Counter;
    fn new(_: &(), name: &str, labels: &str) -> Self {
        CounterCell {
            prefix: prefix(name, "", labels),
            value: AtomicU64::new(0),
        }
    }
    fn encode(&self, _: &(), out: &mut Vec<u8>) {
        out.extend_from_slice(&self.prefix);
        push_u64(out, self.get());
        out.push(b'\n');
    }
}

/// A float counter series (f64 bits in an atomic).
pub struct FloatCounterCell {
    prefix: Box<[u8]>,
    bits: AtomicU64,
}

impl FloatCounterCell {
    pub(crate) fn inc_by(&self, v: f64) {
        // Counters never go down; NaN would poison the series forever.
        if v.is_nan() || v < 0.0 {
            return;
        }
        add_f64(&self.bits, v);
    }
    pub(crate) fn get(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }
}

impl Cell for FloatCounterCell {
    type Spec = ();
    const KIND: Kind = Kind::Counter;
    fn new(_: &(), name: &str, labels: &str) -> Self {
        FloatCounterCell {
            prefix: prefix(name, "", labels),
            bits: AtomicU64::new(0f64.to_bits()),
        }
    }
    fn encode(&self, _: &(), out: &mut Vec<u8>) {
        out.extend_from_slice(&self.prefix);
        push_f64(out, self.get());
        out.push(b'\n');
    }
}

/// A float gauge series.
pub struct GaugeCell {
    prefix: Box<[u8]>,
    bits: AtomicU64,
}

impl GaugeCell {
    pub(crate) fn set(&self, v: f64) {
        self.bits.store(v.to_bits(), Ordering::Relaxed);
    }
    pub(crate) fn add(&self, v: f64) {
        add_f64(&self.bits, v);
    }
    pub(crate) fn get(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }
}

impl Cell for GaugeCell {
    type Spec = ();
    const KIND: Kind = Kind::Gauge;
    fn new(_: &(), name: &str, labels: &str) -> Self {
        GaugeCell {
            prefix: prefix(name, "", labels),
            bits: AtomicU64::new(0f64.to_bits()),
        }
    }
    fn encode(&self, _: &(), out: &mut Vec<u8>) {
        out.extend_from_slice(&self.prefix);
        push_f64(out, self.get());
        out.push(b'\n');
    }
}

/// An integer gauge series.
pub struct IntGaugeCell {
    prefix: Box<[u8]>,
    value: AtomicI64,
}

impl IntGaugeCell {
    pub(crate) fn set(&self, v: i64) {
        self.value.store(v, Ordering::Relaxed);
    }
    pub(crate) fn add(&self, v: i64) {
        self.value.fetch_add(v, Ordering::Relaxed);
    }
    pub(crate) fn get(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }
}

impl Cell for IntGaugeCell {
    type Spec = ();
    const KIND: Kind = Kind::Gauge;
    fn new(_: &(), name: &str, labels: &str) -> Self {
        IntGaugeCell {
            prefix: prefix(name, "", labels),
            value: AtomicI64::new(0),
        }
    }
    fn encode(&self, _: &(), out: &mut Vec<u8>) {
        out.extend_from_slice(&self.prefix);
        push_i64(out, self.get());
        out.push(b'\n');
    }
}

/// Bucket bounds of a histogram family, with their rendered `le` text.
pub struct Buckets {
    pub(crate) bounds: Arc<[f64]>,
    /// `0.005"} ` per bound, then `+Inf"} `.
    le: Box<[Box<[u8]>]>,
}

impl Buckets {
    pub(crate) fn new(bounds: &[f64]) -> Buckets {
        let le = bounds
            .iter()
            .map(|b| f64_string(*b))
            .chain(std::iter::once("+Inf".to_owned()))
            .map(|s| format!("{s}\"}} ").into_bytes().into())
            .collect();
        Buckets {
            bounds: bounds.into(),
            le,
        }
    }
}

/// A histogram series: one non-cumulative atomic per bucket plus `+Inf`, and the sum.
/// `_count` is not stored; the encoder derives it from the same bucket reads, so `+Inf`
/// always equals `_count`.
pub struct HistogramCell {
    bucket_prefix: Box<[u8]>,
    sum_prefix: Box<[u8]>,
    count_prefix: Box<[u8]>,
    bounds: Arc<[f64]>,
    counts: Box<[AtomicU64]>,
    sum_bits: AtomicU64,
}

impl HistogramCell {
    pub(crate) fn observe(&self, v: f64) {
        if v.is_nan() {
            return;
        }
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        add_f64(&self.sum_bits, v);
    }
    pub(crate) fn sum(&self) -> f64 {
        f64::from_bits(self.sum_bits.load(Ordering::Relaxed))
    }
    pub(crate) fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

impl Cell for HistogramCell {
    type Spec = Buckets;
    const KIND: Kind = Kind::Histogram;
    fn new(spec: &Buckets, name: &str, labels: &str) -> Self {
        HistogramCell {
            bucket_prefix: format!("{name}_bucket{{{labels},le=\"").into_bytes().into(),
            sum_prefix: prefix(name, "_sum", labels),
            count_prefix: prefix(name, "_count", labels),
            bounds: spec.bounds.clone(),
            counts: (0..=spec.bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }
    fn encode(&self, spec: &Buckets, out: &mut Vec<u8>) {
        let mut cumulative = 0u64;
        for (count, le) in self.counts.iter().zip(spec.le.iter()) {
            cumulative += count.load(Ordering::Relaxed);
            out.extend_from_slice(&self.bucket_prefix);
            out.extend_from_slice(le);
            push_u64(out, cumulative);
            out.push(b'\n');
        }
        out.extend_from_slice(&self.sum_prefix);
        push_f64(out, self.sum());
        out.push(b'\n');
        out.extend_from_slice(&self.count_prefix);
        push_u64(out, cumulative);
        out.push(b'\n');
    }
}

fn add_f64(bits: &AtomicU64, v: f64) {
    let mut cur = bits.load(Ordering::Relaxed);
    loop {
        let next = (f64::from_bits(cur) + v).to_bits();
        match bits.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => cur = actual,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs() -> Arc<[(String, String)]> {
        Arc::from(Vec::new())
    }

    fn base() -> Arc<str> {
        r#"service="s",instance="i",build_version="v",amnesia="off""#.into()
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_count_equals_inf() {
        let f: Family<HistogramCell> = Family::new(
            "x_seconds",
            "h",
            &[],
            base(),
            pairs(),
            Buckets::new(&[0.1, 1.0]),
            10,
        );
        let c = f.child(&[]);
        for v in [0.05, 0.1, 0.5, 3.0, f64::NAN] {
            c.observe(v);
        }
        let mut out = Vec::new();
        assert_eq!(f.encode(Format::Text004, &mut out), 1);
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("le=\"0.1\"} 2\n"), "{s}");
        assert!(s.contains("le=\"1.0\"} 3\n"));
        assert!(s.contains("le=\"+Inf\"} 4\n"));
        assert!(s.contains(
            "x_seconds_count{service=\"s\",instance=\"i\",build_version=\"v\",amnesia=\"off\"} 4\n"
        ));
        assert!(s.contains("x_seconds_sum{") && s.contains("} 3.65\n"));
    }

    #[test]
    fn existing_children_are_shared_and_cap_yields_overflow() {
        let f: Family<CounterCell> = Family::new("c_total", "h", &["k"], base(), pairs(), (), 2);
        let a = f.child(&["a"]);
        assert!(Arc::ptr_eq(&a, &f.child(&["a"])));
        f.child(&["b"]);
        let o1 = f.child(&["c"]);
        let o2 = f.child(&["d"]);
        assert!(Arc::ptr_eq(&o1, &o2));
        let wrong_arity = f.child(&["x", "y"]);
        assert!(Arc::ptr_eq(&o1, &wrong_arity));
        assert_eq!(f.len(), 3);
        let mut out = Vec::new();
        f.encode(Format::Text004, &mut out);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("k=\"__overflow__\"")
        );
    }

    #[test]
    fn openmetrics_header_drops_total_and_escapes_quotes() {
        let f: Family<CounterCell> =
            Family::new("c_total", "say \"hi\"", &[], base(), pairs(), (), 2);
        let mut out = Vec::new();
        f.encode(Format::OpenMetrics100, &mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("# HELP c say \\\"hi\\\"\n# TYPE c counter\nc_total{"));
    }

    #[test]
    fn float_counter_ignores_negative_and_nan() {
        let f: Family<FloatCounterCell> = Family::new("f_total", "h", &[], base(), pairs(), (), 2);
        let c = f.child(&[]);
        c.inc_by(1.5);
        c.inc_by(-1.0);
        c.inc_by(f64::NAN);
        assert_eq!(c.get(), 1.5);
    }
}
