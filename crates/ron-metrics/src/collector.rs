//! `prometheus::core::Collector` for every ron-metrics family type, so a family can be
//! handed to code that expects the `prometheus` crate (interop; the exposer does not use
//! this path).

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};

use crate::family::{Cell, Encode, Family, Kind, ReadCells, Reading};
use crate::handles::*;

fn collect_family<C: Cell>(f: &Family<C>) -> Vec<MetricFamily>
where
    Family<C>: ReadCells,
{
    let mut metrics = Vec::new();
    let pair = |k: &str, v: &str| {
        let mut lp = LabelPair::default();
        lp.set_name(k.to_owned());
        lp.set_value(v.to_owned());
        lp
    };
    f.read(&mut |values, reading| {
        let mut m = proto::Metric::default();
        let labels = f
            .base_pairs
            .iter()
            .map(|(k, v)| pair(k, v))
            .chain(f.label_names().iter().zip(values).map(|(k, v)| pair(k, v)))
            .collect();
        m.set_label(labels);
        match reading {
            Reading::Counter(v) => {
                let mut c = proto::Counter::default();
                c.set_value(v);
                m.set_counter(c);
            }
            Reading::Gauge(v) => {
                let mut g = proto::Gauge::default();
                g.set_value(v);
                m.set_gauge(g);
            }
            Reading::Histogram(bounds, counts, sum) => {
                let mut h = proto::Histogram::default();
                let mut cumulative = 0;
                let buckets = bounds
                    .iter()
                    .zip(&counts)
                    .map(|(b, c)| {
                        cumulative += c;
                        let mut bucket = proto::Bucket::default();
                        bucket.set_upper_bound(*b);
                        bucket.set_cumulative_count(cumulative);
                        bucket
                    })
                    .collect();
                h.set_bucket(buckets);
                h.set_sample_count(counts.iter().sum());
                h.set_sample_sum(sum);
                m.set_histogram(h);
            }
        }
        metrics.push(m);
    });
    let mut mf = MetricFamily::default();
    mf.set_name(f.name().to_owned());
    mf.set_help(f.help().to_owned());
    mf.set_field_type(match f.kind() {
        Kind::Counter => MetricType::COUNTER,
        Kind::Gauge => MetricType::GAUGE,
        Kind::Histogram => MetricType::HISTOGRAM,
    });
    mf.set_metric(metrics);
    vec![mf]
}

macro_rules! collector {
    ($($t:ty),*) => {$(
        impl Collector for $t {
            fn desc(&self) -> Vec<&Desc> {
                self.family().desc.iter().collect()
            }
            fn collect(&self) -> Vec<MetricFamily> {
                collect_family(self.family())
            }
        }
    )*};
}

collector!(
    CounterVec,
    FloatCounterVec,
    GaugeVec,
    IntGaugeVec,
    HistogramVec
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BaseLabels, Registry};

    #[test]
    fn collector_view_carries_base_labels_and_values() {
        let r = Registry::new(BaseLabels::new("s", "i", "v", true));
        let h = r
            .histogram_vec("lat_seconds", "Latency.", &["route"], &[0.1, 1.0])
            .unwrap();
        h.with_label_values(&["/a"]).observe(0.5);
        let mf = &h.collect()[0];
        assert_eq!(mf.name(), "lat_seconds");
        assert_eq!(h.desc().len(), 1);
        let m = &mf.get_metric()[0];
        let names: Vec<&str> = m.get_label().iter().map(|l| l.name()).collect();
        assert_eq!(
            names,
            ["service", "instance", "build_version", "amnesia", "route"]
        );
        let hist = m.get_histogram();
        assert_eq!(hist.get_sample_count(), 1);
        assert_eq!(hist.get_bucket()[1].cumulative_count(), 1);
        assert_eq!(hist.get_bucket()[0].cumulative_count(), 0);
    }
}
