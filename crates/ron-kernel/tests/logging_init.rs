//! `logging::init` installs the process-wide subscriber exactly once (own process).

use ron_kernel::logging::{self, LogConfig, LogWriter};

#[test]
fn init_installs_once_and_a_second_init_is_an_error() {
    let config = LogConfig {
        writer: LogWriter::Stderr,
        ..LogConfig::new("init-test")
    };
    let handle = logging::init(config.clone()).expect("first init");
    let expected = std::env::var(logging::ENV_FILTER)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| logging::DEFAULT_FILTER.to_owned());
    assert_eq!(handle.configured(), expected);
    assert_eq!(handle.current(), expected);
    handle.set_filter("debug").unwrap();
    assert!(tracing::enabled!(tracing::Level::DEBUG));
    handle.reset().unwrap();
    assert_eq!(handle.current(), expected);
    let err = logging::init(config).unwrap_err();
    assert_eq!(err.key(), "logging");
}
