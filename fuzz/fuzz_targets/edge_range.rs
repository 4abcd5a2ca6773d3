//! svc-edge's Range evaluation (RFC 9110 §14): any header lines against any length never
//! panic, and every range it accepts lies inside the representation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svc_edge::range::{RangeOutcome, content_range, evaluate};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let len = u64::from_le_bytes(data[..8].try_into().unwrap()) >> (data[0] % 64);
    let Ok(text) = std::str::from_utf8(&data[8..]) else {
        return;
    };
    let lines: Vec<&str> = text.split('\n').take(4).collect();
    match evaluate(&lines, len) {
        RangeOutcome::Single(r) => {
            assert!(r.first <= r.last && r.last < len, "{r:?} outside {len}");
            let _ = content_range(&r, len);
        }
        RangeOutcome::Multi(rs) => {
            for r in rs.iter() {
                assert!(r.first <= r.last && r.last < len, "{r:?} outside {len}");
            }
        }
        _ => {}
    }
});
