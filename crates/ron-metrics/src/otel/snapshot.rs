//! One OTLP snapshot of the registry: the same families and values a scrape would show,
//! mapped to OTLP data.
//!
//! Mapping: the base labels become resource attributes (`service.name`,
//! `service.instance.id`, `service.version`, `ron.amnesia`, then the extra labels under
//! their own names), so data points carry only the family's own labels. Counters become
//! monotonic cumulative Sums, gauges Gauges, histograms explicit-bucket cumulative
//! Histograms. Metric names stay the Prometheus names, so a value can be matched to its
//! `/metrics` line without a translation table.
//!
//! Foreign collectors and the health gauges are not included: the former are gathered,
//! not read atomically, and the latter need a `HealthState` the registry does not hold.

use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::family::{Encode, Kind, Reading};
use crate::labels::BaseLabels;
use crate::registry::Inner;

/// Resource attribute names for the four base labels, in base-label order.
pub const RESOURCE_ATTRIBUTES: [&str; 4] = [
    "service.name",
    "service.instance.id",
    "service.version",
    "ron.amnesia",
];

/// Reads every native family of `registry` into one export request.
pub(crate) fn snapshot(
    registry: &Inner,
    start: SystemTime,
    now: SystemTime,
) -> ExportMetricsServiceRequest {
    // Clone the list and let go of the lock at once: registration is the only writer and
    // must not wait for a large registry to be read.
    let families: Vec<Arc<dyn Encode>> = registry.state.read().families.clone();
    let times = Times {
        start: unix_nanos(start),
        now: unix_nanos(now),
    };
    let metrics = families
        .iter()
        .filter_map(|f| metric(&**f, times))
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource(&registry.base)),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: env!("CARGO_PKG_NAME").to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[derive(Clone, Copy)]
struct Times {
    start: u64,
    now: u64,
}

fn resource(base: &BaseLabels) -> Resource {
    let values = [
        base.service.as_str(),
        base.instance.as_str(),
        base.build_version.as_str(),
        base.amnesia_str(),
    ];
    let attributes = RESOURCE_ATTRIBUTES
        .iter()
        .zip(values)
        .map(|(k, v)| kv(k, v))
        .chain(base.extra.iter().map(|(k, v)| kv(k, v)))
        .collect();
    Resource {
        attributes,
        ..Default::default()
    }
}

/// One family as an OTLP metric; `None` when it has no series (a scrape skips it too).
fn metric(family: &dyn Encode, t: Times) -> Option<Metric> {
    let names = family.label_names();
    let mut numbers = Vec::new();
    let mut histograms = Vec::new();
    family.read(&mut |values, reading| {
        let attributes = names.iter().zip(values).map(|(k, v)| kv(k, v)).collect();
        match reading {
            Reading::Counter(v) | Reading::Gauge(v) => numbers.push(NumberDataPoint {
                attributes,
                start_time_unix_nano: t.start,
                time_unix_nano: t.now,
                value: Some(number_data_point::Value::AsDouble(v)),
                ..Default::default()
            }),
            Reading::Histogram(bounds, counts, sum) => histograms.push(HistogramDataPoint {
                attributes,
                start_time_unix_nano: t.start,
                time_unix_nano: t.now,
                count: counts.iter().sum(),
                sum: Some(sum),
                bucket_counts: counts,
                explicit_bounds: bounds.to_vec(),
                ..Default::default()
            }),
        }
    });
    let cumulative = AggregationTemporality::Cumulative as i32;
    let data = match family.kind() {
        Kind::Counter => metric::Data::Sum(Sum {
            data_points: numbers,
            aggregation_temporality: cumulative,
            is_monotonic: true,
        }),
        Kind::Gauge => metric::Data::Gauge(Gauge {
            data_points: numbers,
        }),
        Kind::Histogram => metric::Data::Histogram(Histogram {
            data_points: histograms,
            aggregation_temporality: cumulative,
        }),
    };
    let empty = match &data {
        metric::Data::Sum(s) => s.data_points.is_empty(),
        metric::Data::Gauge(g) => g.data_points.is_empty(),
        metric::Data::Histogram(h) => h.data_points.is_empty(),
        _ => true,
    };
    (!empty).then(|| Metric {
        name: family.name().to_owned(),
        description: family.help().to_owned(),
        unit: unit(family.name()).to_owned(),
        data: Some(data),
        ..Default::default()
    })
}

/// UCUM unit implied by the name suffixes the registry enforces.
fn unit(name: &str) -> &'static str {
    if name.ends_with("_seconds") {
        "s"
    } else if name.ends_with("_bytes") {
        "By"
    } else {
        ""
    }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;

    fn registry() -> Registry {
        let mut base = BaseLabels::new("svc", "n1", "1.2.3", true);
        base.extra.push(("zone".into(), "a".into()));
        let r = Registry::new(base);
        r.counter_vec("jobs_total", "Jobs.", &["kind"])
            .unwrap()
            .with_label_values(&["x"])
            .inc_by(7);
        r.int_gauge("queue_depth", "Depth.").unwrap().set(-3);
        let h = r.histogram("work_seconds", "Work.", &[0.1, 1.0]).unwrap();
        h.observe(0.05);
        h.observe(0.5);
        h.observe(5.0);
        r.counter_vec("unused_total", "No series.", &["k"]).unwrap();
        r
    }

    fn attr(kvs: &[KeyValue], key: &str) -> String {
        match kvs
            .iter()
            .find(|k| k.key == key)
            .and_then(|k| k.value.clone())
        {
            Some(AnyValue {
                value: Some(any_value::Value::StringValue(s)),
            }) => s,
            other => panic!("{key}: {other:?}"),
        }
    }

    #[test]
    fn base_labels_become_resource_attributes() {
        let r = registry();
        let req = snapshot(&r.inner, SystemTime::UNIX_EPOCH, SystemTime::now());
        let res = req.resource_metrics[0].resource.as_ref().unwrap();
        assert_eq!(attr(&res.attributes, "service.name"), "svc");
        assert_eq!(attr(&res.attributes, "service.instance.id"), "n1");
        assert_eq!(attr(&res.attributes, "service.version"), "1.2.3");
        assert_eq!(attr(&res.attributes, "ron.amnesia"), "on");
        assert_eq!(attr(&res.attributes, "zone"), "a");
    }

    #[test]
    fn kinds_map_to_sums_gauges_and_explicit_bucket_histograms() {
        let r = registry();
        let start = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(5);
        let req = snapshot(&r.inner, start, SystemTime::now());
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["jobs_total", "queue_depth", "work_seconds"]);

        let Some(metric::Data::Sum(sum)) = &metrics[0].data else {
            panic!("{:?}", metrics[0])
        };
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        let p = &sum.data_points[0];
        assert_eq!(attr(&p.attributes, "kind"), "x");
        assert_eq!(p.attributes.len(), 1);
        assert_eq!(p.value, Some(number_data_point::Value::AsDouble(7.0)));
        assert_eq!(p.start_time_unix_nano, 5_000_000_000);

        let Some(metric::Data::Gauge(g)) = &metrics[1].data else {
            panic!("{:?}", metrics[1])
        };
        assert_eq!(
            g.data_points[0].value,
            Some(number_data_point::Value::AsDouble(-3.0))
        );

        assert_eq!(metrics[2].unit, "s");
        let Some(metric::Data::Histogram(h)) = &metrics[2].data else {
            panic!("{:?}", metrics[2])
        };
        assert_eq!(
            h.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        let p = &h.data_points[0];
        assert_eq!(p.explicit_bounds, [0.1, 1.0]);
        assert_eq!(p.bucket_counts, [1, 1, 1]);
        assert_eq!(p.count, 3);
        assert_eq!(p.sum, Some(5.55));
    }
}
