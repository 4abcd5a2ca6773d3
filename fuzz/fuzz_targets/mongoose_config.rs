//! mongoose-server's YAML config: any text is accepted or refused with one error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = mongoose::config::from_yaml_str(text, "fuzz.yaml");
});
