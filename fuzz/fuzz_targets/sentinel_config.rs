//! sentinel-proxy's KDL config: any text is accepted or refused with errors, never a panic;
//! an accepted config printed canonically parses again to the same canonical text.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let file = Path::new("fuzz.kdl");
    if let Ok((cfg, _notes)) = sentinel::config::parse_str(text, file) {
        let printed = sentinel::config::print(&cfg);
        let (again, _) = sentinel::config::parse_str(&printed, file)
            .unwrap_or_else(|e| panic!("canonical config does not parse: {e:?}\n{printed}"));
        assert_eq!(sentinel::config::print(&again), printed);
    }
});
