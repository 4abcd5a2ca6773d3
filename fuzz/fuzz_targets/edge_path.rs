//! svc-edge's path normaliser: whatever the raw path, an accepted key has no empty, `.` or
//! `..` segment and no NUL, so it can never climb out of a pack.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &str| {
    if let Ok(key) = svc_edge::paths::normalize(raw) {
        for seg in key.split('/') {
            assert!(!seg.is_empty() && seg != "." && seg != "..", "{raw:?} -> {key:?}");
        }
        assert!(!key.contains('\0'), "{raw:?} -> {key:?}");
    }
});
