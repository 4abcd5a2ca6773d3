//! ron-metrics label escaping: any label value encodes to one exposition line whose
//! unescaped value is a prefix of the input (values are cut at a size cap), in both formats.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ron_metrics::{BaseLabels, Format, Registry};

fn unescape(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next()? {
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                'n' => out.push('\n'),
                _ => return None,
            },
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

fuzz_target!(|value: &str| {
    let reg = Registry::new(BaseLabels::new("fuzz", "fuzz-0", "0.0.0", false));
    let fam = reg
        .counter_vec("fuzz_events_total", "Fuzzed label values.", &["v"])
        .expect("family");
    fam.with_label_values(&[value]).inc();
    for fmt in [Format::Text004, Format::OpenMetrics100] {
        let mut out = Vec::new();
        reg.encode_into(None, fmt, &mut out);
        let text = String::from_utf8(out).expect("exposition is UTF-8");
        let line = text
            .lines()
            .find(|l| l.starts_with("fuzz_events_total{"))
            .unwrap_or_else(|| panic!("no sample line:\n{text}"));
        let start = line.find("v=\"").expect("label v") + 3;
        let end = line.rfind("\"}").expect("end of labels");
        let got = unescape(&line[start..end])
            .unwrap_or_else(|| panic!("bad escaping in {line:?}"));
        assert!(value.starts_with(&got), "{value:?} encoded as {got:?}");
    }
});
