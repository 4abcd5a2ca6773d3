//! Encode costs (spec §8.2): the first-party registry and the large synthetic registry
//! (`RON_METRICS_LOAD=large`, 11,000 series), text 0.0.4 against OpenMetrics, and with
//! gzip level 1 as the exposer applies it. The peer comparison (G1) is
//! `bench/ron-metrics/encode.sh`; nothing here asserts a time.

use std::hint::black_box;
use std::io::Write;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use flate2::Compression;
use flate2::write::GzEncoder;
use ron_metrics::{EnvSource, Format, Metrics};

fn metrics(large: bool) -> Arc<Metrics> {
    Metrics::builder()
        .env(EnvSource::fixed::<&str, &str>([]))
        .service("bench")
        .instance("bench-1")
        .build_version("0.1.0")
        .amnesia(false)
        .synthetic_load(large)
        .build()
        .expect("fixed labels are valid")
}

fn encode_once(m: &Metrics, fmt: Format, gzip: bool, hint: usize) -> usize {
    let mut out = Vec::with_capacity(hint);
    m.encode(None, fmt, &mut out);
    if !gzip {
        return out.len();
    }
    let mut enc = GzEncoder::new(Vec::with_capacity(out.len() / 4), Compression::fast());
    enc.write_all(&out).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail").len()
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    for (set, large) in [("small", false), ("large", true)] {
        let m = metrics(large);
        for fmt in [Format::Text004, Format::OpenMetrics100] {
            let mut probe = Vec::new();
            m.encode(None, fmt, &mut probe);
            let hint = probe.len() + probe.len() / 8 + 256;
            g.throughput(Throughput::Bytes(probe.len() as u64));
            for gzip in [false, true] {
                let id = format!(
                    "{set}/{}/{}",
                    fmt.as_str(),
                    if gzip { "gzip" } else { "identity" }
                );
                g.bench_function(BenchmarkId::from_parameter(id), |b| {
                    b.iter(|| black_box(encode_once(&m, fmt, gzip, hint)))
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
