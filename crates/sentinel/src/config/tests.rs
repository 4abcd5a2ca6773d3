//! Unit tests of the loader: schema walk, errors and their positions, merging, layering,
//! printing. Black-box CLI tests are in `tests/config_cli.rs`.

use std::path::Path;

use super::parse::{Options, parse};
use super::*;

const SAMPLE: &str = include_str!("../../config/sentinel.kdl");

fn ok(text: &str) -> (Config, Vec<Note>) {
    parse_str(text, Path::new("/etc/sentinel/t.kdl")).unwrap_or_else(|e| panic!("{e}\n---\n{text}"))
}

/// The single error of `text`, as printed.
fn one_error(text: &str) -> String {
    match parse_str(text, Path::new("t.kdl")) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => {
            assert_eq!(e.0.len(), 1, "expected one error, got:\n{e}");
            e.to_string()
        }
    }
}

const UPSTREAM: &str = "upstream \"u\" { targets { target \"127.0.0.1:1\" } }\n";

#[test]
fn the_sample_parses_with_every_block() {
    let (c, notes) = ok(SAMPLE);
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(c.routes.len(), 2);
    assert_eq!(c.upstreams.len(), 3);
    assert_eq!(c.listeners.len(), 1);
    assert_eq!(
        c.server.pid_file.as_deref(),
        Some(Path::new("/var/run/sentinel.pid"))
    );
    assert_eq!(
        c.logging.access_log,
        AccessLog::File("/var/log/sentinel/access.log".into())
    );
    let api = &c.routes[0];
    assert_eq!(api.name, "api");
    assert!(api.policies.rate_limit.is_some());
    let UpstreamKind::Static(page) = &c.upstreams[2].kind else {
        panic!("maintenance-page is static");
    };
    assert_eq!(page.status, 503);
    assert!(page.headers.iter().any(|(k, _)| k == "Retry-After"));
}

#[test]
fn empty_text_gives_the_built_in_defaults() {
    assert_eq!(ok("").0, Config::default());
}

#[test]
fn unknown_key_is_one_error_with_its_position() {
    let e = one_error("server {\n    max-conections 5\n}\n");
    assert!(
        e.starts_with("error: t.kdl:2:5: server > max-conections: unknown key \"max-conections\""),
        "{e}"
    );
}

#[test]
fn quoted_integer_is_a_type_error_naming_the_value() {
    let text = format!(
        "{UPSTREAM}route \"api\" {{\n  upstream \"u\"\n  policies {{ timeout-secs \"30\" }}\n}}\n"
    );
    let e = one_error(&text);
    assert_eq!(
        e,
        "error: t.kdl:4:27: route \"api\" > policies > timeout-secs: expected integer 1..=3600, got string \"30\""
    );
}

#[test]
fn column_counts_characters_not_bytes() {
    // "é" is two bytes; the bad value is the 12th character of the line.
    let e = one_error("/* é */ limits { max-header-count 0 }");
    assert!(
        e.starts_with("error: t.kdl:1:35: limits > max-header-count:"),
        "{e}"
    );
}

#[test]
fn expected_status_must_be_integers() {
    let e = one_error(
        "upstream \"u\" {\n  targets { target \"127.0.0.1:1\" }\n  health-check { type \"http\" { expected-status \"204\" } }\n}\n",
    );
    assert!(e.contains("t.kdl:3:"), "{e}");
    assert!(
        e.contains("expected-status: expected integer 100..=599, got string \"204\""),
        "{e}"
    );
}

#[test]
fn target_without_port_is_an_error() {
    let e =
        one_error("upstream \"u\" {\n  targets {\n    target { address \"10.0.0.1\" }\n  }\n}\n");
    assert!(
        e.contains("t.kdl:3:22: upstream \"u\" > targets > target > address:"),
        "{e}"
    );
    assert!(e.contains("\"10.0.0.1\""), "{e}");
}

#[test]
fn zero_requests_per_second_is_out_of_range() {
    let text = format!(
        "{UPSTREAM}route \"r\" {{ upstream \"u\"; policies {{ rate-limit {{ requests-per-second 0 }} }} }}\n"
    );
    let e = one_error(&text);
    assert!(
        e.contains("requests-per-second: expected integer 1..=1000000, got integer 0"),
        "{e}"
    );
}

#[test]
fn undefined_upstream_and_duplicate_route_names_are_reference_errors() {
    let e = one_error(&format!("{UPSTREAM}route \"r\" {{ upstream \"nope\" }}\n"));
    assert!(
        e.contains("t.kdl:2:22: route \"r\" > upstream: upstream \"nope\" is not defined"),
        "{e}"
    );
    let e = one_error(&format!(
        "{UPSTREAM}route \"r\" {{ upstream \"u\" }}\nroute \"r\" {{ upstream \"u\" }}\n"
    ));
    assert!(
        e.contains("t.kdl:3:7: route \"r\": duplicate route name \"r\" (lines 2 and 3)"),
        "{e}"
    );
}

#[test]
fn bracket_arrays_are_a_syntax_error() {
    // The parser recovers and reports follow-on errors too; the one that points at the
    // bracket is kept.
    let e = one_error("server { listen [a b] }\n");
    assert!(e.starts_with("error: t.kdl:1:17: syntax: "), "{e}");
    assert!(e.contains("bracket arrays"), "{e}");
    let e = one_error("server {\n    listen \"x\"\n\nlimits { }\n");
    assert!(
        e.starts_with("error: t.kdl:1:8: syntax: No closing '}'"),
        "{e}"
    );
}

#[test]
fn https_without_the_tls_feature_names_the_feature() {
    let text = "listeners {\n  listener \"s\" {\n    address \"127.0.0.1:8443\"\n    protocol \"https\"\n    tls { cert-file \"c.pem\"; key-file \"k.pem\" }\n  }\n}\n";
    let errs = parse(
        text,
        Path::new("t.kdl"),
        Options {
            tls_available: false,
        },
    )
    .err()
    .unwrap_or_default();
    assert_eq!(errs.0.len(), 1, "{errs}");
    assert!(
        errs.to_string()
            .contains("t.kdl:4:14: listener \"s\" > protocol:"),
        "{errs}"
    );
    assert!(errs.to_string().contains("feature \"tls\""), "{errs}");
    assert!(
        parse(
            text,
            Path::new("t.kdl"),
            Options {
                tls_available: true
            }
        )
        .is_ok()
    );
}

#[test]
fn strict_shape_rules_reject_annotations_properties_extra_args_children_and_repeats() {
    for (text, needle) in [
        ("server { (u32)max-connections 5 }", "type annotations"),
        ("server { max-connections (u32)5 }", "type annotations"),
        ("server { max-connections 5 6 }", "extra argument 6"),
        (
            "server { max-connections x=5 }",
            "properties are not allowed",
        ),
        ("server { max-connections 5 { a 1 } }", "no children"),
        (
            "server { max-connections 5; max-connections 6 }",
            "repeated in one block",
        ),
        ("server { h2c \"yes\" }", "expected #true or #false"),
        ("server { listen \"localhost:80\" }", "IPv4:port"),
        ("bogus { }", "unknown block \"bogus\""),
        (
            "listeners { listener \"main\" { address \"127.0.0.1:1\" } }",
            "reserved",
        ),
        (
            "listeners { listener \"a b\" { address \"127.0.0.1:1\" } }",
            "A-Za-z0-9",
        ),
        ("server { worker-threads 1.5 }", "got float 1.5"),
    ] {
        let e = one_error(text);
        assert!(e.contains(needle), "{text}: {e}");
    }
}

#[test]
fn v1_documents_load_with_bare_booleans() {
    let (c, _) =
        ok("server {\n  h2c false\n  listen \"127.0.0.1:0\"\n}\nmetrics { enabled true; }\n");
    assert!(!c.server.h2c);
    assert!(c.metrics.enabled);
    // A mixed file (v2 #false with v1 syntax elsewhere) is neither; the parser's
    // multi-line help still prints as one line.
    let e = one_error("server { h2c #false }\nmetrics { enabled true }\n");
    assert!(e.contains(": syntax: "), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn v1_errors_point_at_the_right_line() {
    let e = one_error("server {\n  h2c true\n  max-connections \"5\"\n}\n");
    assert!(e.contains("t.kdl:3:19: server > max-connections"), "{e}");
}

#[test]
fn duplicate_singletons_merge_first_key_wins_with_a_note() {
    let (c, notes) = ok(
        "limits { max-total-connections 1000 }\nlimits { max-total-connections 5; max-header-count 7 }\nlimits { }\n",
    );
    assert_eq!(c.limits.max_total_connections, 1000);
    assert_eq!(c.limits.max_header_count, 7);
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[0].message, "duplicate block merged");
    assert_eq!(
        notes[0].fields,
        vec![
            ("block".to_owned(), "limits".to_owned()),
            ("overridden".to_owned(), "max-total-connections".to_owned())
        ]
    );
    assert_eq!(notes[0].level, tracing::Level::INFO);
}

#[test]
fn upstream_blocks_override_global_pool_and_timeouts_key_by_key() {
    let (c, _) = ok(
        "connection-pool { max-connections 200; max-idle 50 }\ntimeouts { connect-secs 5; read-secs 15 }\nupstream \"u\" {\n  targets { target \"10.0.0.1:80\" weight=3; target { address \"backend.internal:8080\"; weight 0 } }\n  connection-pool { max-idle 10 }\n  timeouts { read-secs 7 }\n  load-balancing \"least_connections\"\n}\n",
    );
    let UpstreamKind::Proxy(p) = &c.upstreams[0].kind else {
        panic!("proxy upstream");
    };
    assert_eq!(p.pool.max_connections, 200);
    assert_eq!(p.pool.max_idle, 10);
    assert_eq!(p.pool.idle_timeout_secs, 60);
    assert_eq!(p.timeouts.connect_secs, 5);
    assert_eq!(p.timeouts.read_secs, 7);
    assert_eq!(p.timeouts.request_secs, 60);
    assert_eq!(p.targets[0].weight, 3);
    assert_eq!(p.targets[1].weight, 0);
    assert_eq!(p.load_balancing, LbPolicy::LeastConnections);
    let e = one_error(
        "connection-pool { max-connections 5; max-idle 2 }\nupstream \"u\" { targets { target \"10.0.0.1:80\" }; connection-pool { max-idle 6 } }",
    );
    assert!(
        e.contains("max-idle must be at most max-connections"),
        "{e}"
    );
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let (c, _) = ok(
        "server { pid-file \"run/s.pid\" }\nlogging { file \"/abs/s.log\"; access-log \"stdout\" }\n",
    );
    assert_eq!(
        c.server.pid_file.as_deref(),
        Some(Path::new("/etc/sentinel/run/s.pid"))
    );
    assert_eq!(c.logging.file.as_deref(), Some(Path::new("/abs/s.log")));
    assert_eq!(c.logging.access_log, AccessLog::Stdout);
}

#[test]
fn static_upstreams_exclude_other_keys_and_one_body_source() {
    let e = one_error("upstream \"s\" { static { status 503 }; load-balancing \"p2c\" }");
    assert!(e.contains("a static upstream takes no other keys"), "{e}");
    let e = one_error("upstream \"s\" { static { body \"x\"; body-file \"b.html\" } }");
    assert!(e.contains("either body or body-file"), "{e}");
    let (c, _) = ok("upstream \"s\" { static { body-file \"b.html\" } }\n");
    let UpstreamKind::Static(st) = &c.upstreams[0].kind else {
        panic!("static");
    };
    assert_eq!(
        st.body,
        StaticBody::File {
            path: "/etc/sentinel/b.html".into(),
            bytes: None
        }
    );
}

#[test]
fn health_check_rules() {
    let base = "upstream \"u\" { targets { target \"127.0.0.1:1\" }; health-check { ";
    let e = one_error(&format!("{base}interval-secs 5 }} }}"));
    assert!(e.contains("required key \"type\""), "{e}");
    let e = one_error(&format!(
        "{base}type \"tcp\"; interval-secs 2; timeout-secs 3 }} }}"
    ));
    assert!(e.contains("at most interval-secs"), "{e}");
    let (c, _) = ok(&format!(
        "{base}type \"http\" {{ expected-status 200 204 }}; interval-secs 2 }} }}"
    ));
    let UpstreamKind::Proxy(p) = &c.upstreams[0].kind else {
        panic!("proxy");
    };
    let hc = p
        .health_check
        .as_ref()
        .unwrap_or_else(|| panic!("health check"));
    assert_eq!(hc.timeout_secs, 2);
    assert_eq!(
        hc.probe,
        Probe::Http {
            path: "/health".into(),
            expected_status: vec![200, 204],
            host: None
        }
    );
}

#[test]
fn match_rules_and_rate_limit_defaults() {
    let (c, _) = ok(&format!(
        "{UPSTREAM}route \"r\" {{\n  matches {{ path-prefix \"/api\" \"/v2\"; host \"*.example.com\"; method \"GET\" \"POST\"; header \"X-Key\"; header \"X-Env\" \"prod\" }}\n  upstream \"u\"\n  policies {{ rate-limit {{ requests-per-second 10; key \"header\" \"X-Api-Key\" }} }}\n}}\n"
    ));
    let r = &c.routes[0];
    assert_eq!(r.matches.path_prefix, vec!["/api", "/v2"]);
    assert_eq!(
        r.matches.header[1],
        ("X-Env".to_owned(), Some("prod".to_owned()))
    );
    let rl = r
        .policies
        .rate_limit
        .as_ref()
        .unwrap_or_else(|| panic!("rate limit"));
    assert_eq!(rl.burst, 10);
    assert_eq!(rl.key, RateKey::Header("X-Api-Key".into()));
    assert_eq!(rl.max_keys, 100_000);
    for bad in [
        "path \"api\"",
        "host \"Example.com\"",
        "host \"a.com:80\"",
        "method \"get\"",
        "header \"X Key\"",
    ] {
        let e = one_error(&format!(
            "{UPSTREAM}route \"r\" {{ matches {{ {bad} }}; upstream \"u\" }}"
        ));
        assert!(e.contains("route \"r\" > matches >"), "{bad}: {e}");
    }
}

#[test]
fn listener_addresses_must_be_unique_including_metrics() {
    let e =
        one_error("server { listen \"127.0.0.1:9000\" }\nmetrics { address \"0.0.0.0:9000\" }\n");
    assert!(e.contains("t.kdl:2:19: metrics > address:"), "{e}");
    assert!(e.contains("clashes with server.listen"), "{e}");
    ok(
        "server { listen \"127.0.0.1:0\" }\nlisteners { listener \"a\" { address \"127.0.0.1:0\" } }\nmetrics { address \"127.0.0.1:0\" }\n",
    );
}

#[test]
fn errors_come_in_file_order() {
    let errs = parse_str(
        "route \"r\" { upstream \"missing\" }\nserver { max-connections 0 }\nlimits { max-header-count 0 }\n",
        Path::new("t.kdl"),
    )
    .err()
    .unwrap_or_default();
    let lines: Vec<usize> = errs.0.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![1, 2, 3], "{errs}");
}

#[test]
fn print_is_a_fixed_point_and_redacts_the_token() {
    let text = format!(
        "{SAMPLE}\nadmin {{ token \"0123456789abcdef-secret\" }}\nupstream \"x\" {{ targets {{ target \"[::1]:81\" weight=2 }}; protocol \"h2c\"; health-check {{ type \"tcp\" }}; passive-health {{ failure-ratio 1 }} }}\nroute \"h\" {{ matches {{ header \"X-A\" \"q\\\"uote\" }}; upstream \"x\"; policies {{ rate-limit {{ requests-per-second 5; key \"route\" }} }} }}\n"
    );
    let (c, notes) = ok(&text);
    assert_eq!(notes.len(), 1, "the admin block was merged");
    let first = print(&c);
    assert!(first.contains("token \"<redacted>\""), "{first}");
    assert!(!first.contains("secret"), "{first}");
    let (again, notes) = ok(&first);
    assert!(notes.is_empty());
    assert_eq!(print(&again), first);
    // Everything but the token survives the round trip.
    let mut expected = c.clone();
    expected.admin.token = Some(AdminToken::Inline(REDACTED.into()));
    assert_eq!(again, expected);
    assert_eq!(
        print(&Config::default()),
        print(&ok(&print(&Config::default())).0)
    );
}
