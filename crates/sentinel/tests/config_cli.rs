//! Black-box tests of the offline CLI against the real binary (spec §10 T01–T04 and the
//! offline parts of T05): `--validate`, `--test-config`, `--print-config`, `--version`,
//! config path precedence and env validation. Nothing here starts the proxy runtime.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use test_support::temp_dir;

const BIN: &str = env!("CARGO_BIN_EXE_sentinel-proxy");
const SAMPLE: &str = include_str!("../config/sentinel.kdl");
const TLS_EXAMPLE: &str = include_str!("../config/examples/tls-listener.kdl");
const RUNBOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/runbook");

/// The sentinel variables a developer's shell might hold; tests set only what they pass.
const SENTINEL_VARS: [&str; 3] = [
    "SENTINEL_CONFIG",
    "SENTINEL_WORKERS",
    "SENTINEL_METRICS_ADDR",
];

/// Runs the binary in `cwd` with `args` and exactly the env overrides in `env`.
fn run_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = test_support::command(Path::new(BIN), env);
    for v in SENTINEL_VARS {
        if !env.iter().any(|(k, _)| *k == v) {
            cmd.env_remove(v);
        }
    }
    cmd.args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("run {BIN}: {e}"))
}

fn run(args: &[&str]) -> Output {
    run_in(&std::env::temp_dir(), args, &[])
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    p
}

fn s(p: &Path) -> &str {
    p.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 path {}", p.display()))
}

/// Replaces exactly one occurrence of `from` (which must exist) in `text`.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "the sample no longer contains exactly one {from:?}"
    );
    text.replacen(from, to, 1)
}

fn snippet(name: &str) -> String {
    let p = Path::new(RUNBOOK).join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Asserts `--validate` accepts `text`; returns the run.
fn assert_valid(dir: &Path, name: &str, text: &str) -> Output {
    let f = write(dir, name, text);
    let o = run(&["--validate", "--config", s(&f)]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{name}: {}\n---\n{text}",
        stderr(&o)
    );
    o
}

/// 1-based line and character column of the first `needle` in `text`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in text"));
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

// ---- T01 -------------------------------------------------------------------------

#[test]
fn t01_sample_validates_without_binding_or_writing() {
    let dir = temp_dir("sentinel-t01");
    // Hold every port the sample names, and point the pid file into the temp dir: a
    // bind attempt would fail and a write would leave the file behind.
    let held: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}")))
        .collect();
    let port = |i: usize| held[i].local_addr().map(|a| a.port()).unwrap_or(0);
    let pid = dir.join("sentinel.pid");
    let text = replace_once(
        SAMPLE,
        "\"0.0.0.0:8080\"",
        &format!("\"127.0.0.1:{}\"", port(0)),
    );
    let text = replace_once(
        &text,
        "\"127.0.0.1:8088\"",
        &format!("\"127.0.0.1:{}\"", port(1)),
    );
    let text = replace_once(
        &text,
        "\"0.0.0.0:9090\"",
        &format!("\"127.0.0.1:{}\"", port(2)),
    );
    let text = replace_once(
        &text,
        "\"/var/run/sentinel.pid\"",
        &format!("{:?}", s(&pid)),
    );
    let f = write(&dir, "sentinel.kdl", &text);
    let o = run(&["--validate", "--config", s(&f)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "configuration OK: {} (2 routes, 3 upstreams, 2 listeners)\n",
            s(&f)
        )
    );
    assert!(!pid.exists(), "--validate wrote the pid file");
    drop(held);

    // The shipped file itself, as the runbook runs it.
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/sentinel.kdl");
    let o = run(&["--validate", "--config", shipped]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with(&format!("configuration OK: {shipped} (")));
    assert_eq!(stderr(&o), "", "the sample merges nothing");
}

#[test]
fn t01_tls_example_passes_test_config_with_generated_certs() {
    let dir = temp_dir("sentinel-t01-tls");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .unwrap_or_else(|e| panic!("rcgen: {e}"));
    write(&dir, "cert.pem", &cert.cert.pem());
    write(&dir, "key.pem", &cert.signing_key.serialize_pem());
    let f = write(&dir, "tls-listener.kdl", TLS_EXAMPLE);
    let o = run(&["--test-config", s(&f)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("configuration test successful: {}\n", s(&f))
    );

    // A key that belongs to another certificate does not pass.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .unwrap_or_else(|e| panic!("rcgen: {e}"));
    write(&dir, "key.pem", &other.signing_key.serialize_pem());
    let o = run(&["--test-config", s(&f)]);
    assert_eq!(o.status.code(), Some(2));
    let (line, col) = position(TLS_EXAMPLE, "\"key.pem\"");
    assert!(
        stderr(&o).starts_with(&format!(
            "error: {}:{line}:{col}: listener \"public-tls\" > tls > key-file: ",
            s(&f)
        )),
        "{}",
        stderr(&o)
    );
}

// ---- T02 -------------------------------------------------------------------------

#[test]
fn t02_runbook_snippets_validate_inside_the_sample() {
    let dir = temp_dir("sentinel-t02");
    // Appended: a health check inside an upstream (the sample's api-backend has one, so
    // it goes into a new upstream), the three routes, a rate limit inside a route.
    let checked = format!(
        "{SAMPLE}\nupstream \"checked\" {{\n    targets {{\n        target \"127.0.0.1:8083\"\n    }}\n{}}}\n",
        snippet("health-check.kdl")
    );
    assert_valid(&dir, "health.kdl", &checked);
    for route in [
        "route-new-api.kdl",
        "route-emergency.kdl",
        "route-maintenance.kdl",
    ] {
        assert_valid(&dir, route, &format!("{SAMPLE}\n{}", snippet(route)));
    }
    let limited = format!(
        "{SAMPLE}\nroute \"ddos\" {{\n    matches {{ path-prefix \"/ddos\" }}\n    upstream \"api-backend\"\n{}}}\n",
        snippet("rate-limit.kdl")
    );
    assert_valid(&dir, "rate.kdl", &limited);

    // Appended tuning blocks merge into the sample's (first key wins) with notes.
    let o = assert_valid(
        &dir,
        "tuning.kdl",
        &format!("{SAMPLE}\n{}", snippet("tuning.kdl")),
    );
    let err = stderr(&o);
    for block in ["server", "connection-pool", "timeouts"] {
        assert!(
            err.contains(&format!("duplicate block merged block={block} ")),
            "{err}"
        );
    }

    // Substituted: the runbook's targets (new target first, then the existing ones)
    // and the weight-0 target in place of the first existing one.
    let existing_first = "            target {\n                address \"127.0.0.1:8081\"\n                weight 1\n            }\n";
    let existing = format!(
        "{existing_first}            target {{\n                address \"127.0.0.1:8082\"\n                weight 1\n            }}\n"
    );
    let runbook_upstream = snippet("targets.kdl");
    let start = runbook_upstream
        .find("    targets {")
        .unwrap_or_else(|| panic!("targets block in the runbook snippet"));
    let end = runbook_upstream
        .rfind("\n}")
        .unwrap_or_else(|| panic!("end of the runbook snippet"));
    let targets = runbook_upstream[start..end]
        .replace("// ... existing targets", existing.trim())
        .replace('\n', "\n    ");
    let sample_targets = format!("        targets {{\n{existing}        }}");
    let text = replace_once(SAMPLE, &sample_targets, &format!("    {targets}"));
    assert!(text.contains("10.1.1.12:8080"));
    assert_valid(&dir, "targets.kdl", &text);
    let weight0 = snippet("target-weight-0.kdl").replace('\n', "\n            ");
    let text = replace_once(
        SAMPLE,
        existing_first,
        &format!("            {}\n", weight0.trim_end()),
    );
    assert_valid(&dir, "weight0.kdl", &text);

    // Prepended emergency limit: printed as 1000, with the merge noted on stderr.
    let f = write(
        &dir,
        "emergency.kdl",
        &format!("limits {{ max-total-connections 1000 }}\n{SAMPLE}"),
    );
    let o = run(&["--print-config", "--config", s(&f)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("\n    max-total-connections 1000\n"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("duplicate block merged block=limits overridden=max-total-connections"),
        "{}",
        stderr(&o)
    );
}

// ---- T03 -------------------------------------------------------------------------

/// A sample variant that must fail with one error on key path `path`, naming `value`, at
/// `skip` characters into the first occurrence of `at` in the variant.
struct Bad {
    name: &'static str,
    text: String,
    at: &'static str,
    skip: usize,
    path: &'static str,
    value: &'static str,
}

#[test]
fn t03_each_bad_input_is_one_error_line_with_position_path_and_value() {
    let dir = temp_dir("sentinel-t03");
    let cases = vec![
        Bad {
            name: "unknown-key",
            text: replace_once(SAMPLE, "max-connections 10000", "max-conections 10000"),
            at: "max-conections",
            skip: 0,
            path: "server > max-conections",
            value: "\"max-conections\"",
        },
        Bad {
            name: "quoted-integer",
            text: replace_once(
                SAMPLE,
                "timeout-secs 30\n            failure-mode",
                "timeout-secs \"30\"\n            failure-mode",
            ),
            at: "\"30\"",
            skip: 0,
            path: "route \"api\" > policies > timeout-secs",
            value: "string \"30\"",
        },
        Bad {
            name: "quoted-status",
            text: replace_once(SAMPLE, "expected-status 200", "expected-status \"204\""),
            at: "\"204\"",
            skip: 0,
            path: "upstream \"api-backend\" > health-check > type > expected-status",
            value: "string \"204\"",
        },
        Bad {
            name: "no-port",
            text: replace_once(SAMPLE, "\"127.0.0.1:8081\"", "\"10.0.0.1\""),
            at: "\"10.0.0.1\"",
            skip: 0,
            path: "upstream \"api-backend\" > targets > target > address",
            value: "\"10.0.0.1\"",
        },
        Bad {
            name: "zero-rps",
            text: replace_once(SAMPLE, "requests-per-second 100", "requests-per-second 0"),
            at: "requests-per-second 0",
            skip: 20,
            path: "route \"api\" > policies > rate-limit > requests-per-second",
            value: "integer 0",
        },
        Bad {
            name: "undefined-upstream",
            text: format!("{SAMPLE}route \"extra\" {{ upstream \"nowhere\" }}\n"),
            at: "\"nowhere\"",
            skip: 0,
            path: "route \"extra\" > upstream",
            value: "\"nowhere\"",
        },
        Bad {
            name: "duplicate-route",
            text: format!("{SAMPLE}route \"api\" {{ upstream \"api-backend\" }}\n"),
            at: "\"api\" { upstream",
            skip: 0,
            path: "route \"api\"",
            value: "duplicate route name \"api\"",
        },
        Bad {
            name: "bracket-array",
            text: replace_once(SAMPLE, "max-header-count 100", "max-header-count [a b]"),
            at: "[a b]",
            skip: 0,
            path: "syntax",
            value: "",
        },
    ];
    for c in cases {
        let f = write(&dir, &format!("{}.kdl", c.name), &c.text);
        let o = run(&["--validate", "--config", s(&f)]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{}: {err}", c.name);
        assert_eq!(err.lines().count(), 1, "{}: {err}", c.name);
        assert_eq!(stdout(&o), "", "{}", c.name);
        let (line, col) = position(&c.text, c.at);
        let col = col + c.skip;
        let expected = format!("error: {}:{line}:", s(&f));
        assert!(
            err.starts_with(&expected),
            "{}: want {expected}…, got {err}",
            c.name
        );
        if c.path == "syntax" {
            // The parser decides the exact column inside the bad line.
            assert!(err.contains(": syntax: "), "{}: {err}", c.name);
        } else {
            let expected = format!("error: {}:{line}:{col}: {}: ", s(&f), c.path);
            assert!(
                err.starts_with(&expected),
                "{}: want {expected}…, got {err}",
                c.name
            );
        }
        assert!(err.contains(c.value), "{}: {err}", c.name);
    }

    // The duplicate route error names both lines.
    let text = format!("{SAMPLE}route \"api\" {{ upstream \"api-backend\" }}\n");
    let f = write(&dir, "dup2.kdl", &text);
    let err = stderr(&run(&["--validate", "--config", s(&f)]));
    let (first, _) = position(&text, "route \"api\"");
    let want = format!("(lines {first} and {})", text.lines().count());
    assert!(err.contains(&want), "want {want} in {err}");
}

#[test]
fn t03_https_listener_depends_on_the_tls_feature() {
    let dir = temp_dir("sentinel-t03-tls");
    let text = format!(
        "{SAMPLE}listeners {{\n    listener \"s\" {{\n        address \"127.0.0.1:8443\"\n        protocol \"https\"\n        tls {{\n            cert-file \"c.pem\"\n            key-file \"k.pem\"\n        }}\n    }}\n}}\n"
    );
    let f = write(&dir, "https.kdl", &text);
    let o = run(&["--validate", "--config", s(&f)]);
    if cfg!(feature = "tls") {
        // --validate reads no cert files; the listener is well-formed.
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    } else {
        assert_eq!(o.status.code(), Some(2));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("listener \"s\" > protocol: "), "{err}");
        assert!(err.contains("feature \"tls\""), "{err}");
    }
}

// ---- T04 -------------------------------------------------------------------------

#[test]
fn t04_print_config_is_a_fixed_point_and_redacts_the_token() {
    let dir = temp_dir("sentinel-t04");
    let secret = "s3cr3t-admin-token-0123456789";
    let text = replace_once(
        SAMPLE,
        "admin {\n",
        &format!("admin {{\n    token \"{secret}\"\n"),
    );
    let f = write(&dir, "with-token.kdl", &text);
    let first = run(&["--print-config", "--config", s(&f)]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let printed = stdout(&first);
    assert!(printed.contains("    token \"<redacted>\"\n"), "{printed}");
    assert!(!printed.contains(secret));
    // Every key explicit, merged pools per upstream.
    assert!(printed.contains("    max-idle 20\n"));
    assert!(
        printed.matches("connection-pool {").count() >= 2,
        "{printed}"
    );

    let p1 = write(&dir, "printed.kdl", &printed);
    let v = run(&["--validate", "--config", s(&p1)]);
    assert_eq!(v.status.code(), Some(0), "{}", stderr(&v));
    let second = run(&["--print-config", "--config", s(&p1)]);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert_eq!(stdout(&second), printed, "printing is not a fixed point");
    // From another directory too: printed paths are absolute.
    let elsewhere = temp_dir("sentinel-t04-elsewhere");
    let p2 = write(&elsewhere, "printed.kdl", &printed);
    assert_eq!(
        stdout(&run(&["--print-config", "--config", s(&p2)])),
        printed
    );
}

#[test]
fn t04_test_config_fails_on_a_missing_cert_or_an_unresolvable_host() {
    let dir = temp_dir("sentinel-t04-tc");
    let f = write(&dir, "tls.kdl", TLS_EXAMPLE);
    let o = run(&["--test-config", s(&f)]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    let (line, col) = position(TLS_EXAMPLE, "\"cert.pem\"");
    assert!(
        err.starts_with(&format!(
            "error: {}:{line}:{col}: listener \"public-tls\" > tls > cert-file: ",
            s(&f)
        )),
        "{err}"
    );
    assert!(err.contains("cert.pem"), "{err}");
    // --validate does not look at the files.
    assert_eq!(
        run(&["--validate", "--config", s(&f)]).status.code(),
        Some(0)
    );

    let text = replace_once(SAMPLE, "\"127.0.0.1:8082\"", "\"nonexistent.invalid:8082\"");
    let text = text.replace("/var/run/", &format!("{}/", s(&dir)));
    let text = text.replace("/var/log/sentinel/", &format!("{}/logs/", s(&dir)));
    let f = write(&dir, "dns.kdl", &text);
    let o = run(&["--test-config", s(&f)]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let (line, col) = position(&text, "\"nonexistent.invalid:8082\"");
    assert!(
        err.starts_with(&format!(
            "error: {}:{line}:{col}: upstream \"api-backend\" > targets > target > address: cannot resolve \"nonexistent.invalid:8082\"",
            s(&f)
        )),
        "{err}"
    );
    assert!(
        !dir.join("logs").exists(),
        "--test-config created a directory"
    );

    // With a resolvable (literal) host, the same file passes.
    let good = write(
        &dir,
        "good.kdl",
        &text.replace("nonexistent.invalid", "127.0.0.1"),
    );
    let o = run(&["--test-config", s(&good)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("configuration test successful: {}\n", s(&good))
    );
}

#[test]
fn t04_test_config_reports_unwritable_output_directories() {
    let dir = temp_dir("sentinel-t04-dirs");
    let blocker = write(&dir, "not-a-dir", "");
    let text = replace_once(
        SAMPLE,
        "\"/var/run/sentinel.pid\"",
        &format!("\"{}/sentinel.pid\"", s(&blocker)),
    );
    let text = text.replace("/var/log/sentinel/", &format!("{}/logs/", s(&dir)));
    let f = write(&dir, "dirs.kdl", &text);
    let o = run(&["--test-config", s(&f)]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("server > pid-file: "), "{err}");
    assert!(err.contains("not a directory"), "{err}");
}

// ---- T05 (offline parts) ---------------------------------------------------------

#[test]
fn t05_version_prints_the_crate_version() {
    let o = run(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o).lines().next(),
        Some(format!("sentinel-proxy {}", env!("CARGO_PKG_VERSION")).as_str())
    );
}

#[test]
fn t05_bad_env_values_exit_2_naming_the_variable() {
    let dir = temp_dir("sentinel-t05-env");
    let f = write(&dir, "c.kdl", "server { listen \"127.0.0.1:0\" }\n");
    for (var, value) in [
        ("SENTINEL_WORKERS", "abc"),
        ("SENTINEL_WORKERS", "1025"),
        ("SENTINEL_METRICS_ADDR", "localhost:9090"),
        ("RON_AMNESIA", "maybe"),
    ] {
        // Run mode fails before the runtime starts.
        for args in [
            vec!["--config", s(&f)],
            vec!["--print-config", "--config", s(&f)],
        ] {
            let o = run_in(&dir, &args, &[(var, value)]);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{var}={value} {args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.starts_with(&format!("error: env: {var}: ")), "{err}");
            assert!(err.contains(value), "{err}");
        }
    }
}

#[test]
fn t05_env_overrides_show_in_the_printed_config() {
    let dir = temp_dir("sentinel-t05-print");
    let f = write(&dir, "c.kdl", "metrics { address \"127.0.0.1:9999\" }\n");
    let o = run_in(
        &dir,
        &["--print-config", "--config", s(&f)],
        &[
            ("SENTINEL_METRICS_ADDR", "127.0.0.1:19090"),
            ("SENTINEL_WORKERS", "3"),
            ("RUST_LOG", "debug"),
        ],
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.contains("    address \"127.0.0.1:19090\"\n"), "{out}");
    assert!(out.contains("    worker-threads 3\n"), "{out}");
    assert!(out.contains("    level \"debug\"\n"), "{out}");
}

#[test]
fn t05_config_flag_beats_sentinel_config_which_beats_the_default() {
    let dir = temp_dir("sentinel-t05-prec");
    std::fs::create_dir_all(dir.join("config")).unwrap_or_else(|e| panic!("{e}"));
    write(
        &dir,
        "config/sentinel.kdl",
        "limits { max-header-count 11 }\n",
    );
    let env_file = write(&dir, "env.kdl", "limits { max-header-count 22 }\n");
    let flag_file = write(&dir, "flag.kdl", "limits { max-header-count 33 }\n");
    let count = |o: &Output| {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
        let out = stdout(o);
        out.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("max-header-count ")
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| panic!("no max-header-count in {out}"))
    };
    let env = [("SENTINEL_CONFIG", s(&env_file))];
    assert_eq!(count(&run_in(&dir, &["--print-config"], &[])), "11");
    assert_eq!(count(&run_in(&dir, &["--print-config"], &env)), "22");
    assert_eq!(
        count(&run_in(
            &dir,
            &["--print-config", "--config", s(&flag_file)],
            &env
        )),
        "33"
    );
    let o = run_in(&dir, &["--validate"], &env);
    assert_eq!(
        stdout(&o),
        format!(
            "configuration OK: {} (0 routes, 0 upstreams, 1 listeners)\n",
            s(&env_file)
        )
    );
}

#[test]
fn t05_missing_files_explicit_is_an_error_default_falls_back_to_built_ins() {
    let dir = temp_dir("sentinel-t05-missing");
    let missing = dir.join("nope.kdl");
    // Run mode with an explicitly named missing file: config error before the runtime.
    for env in [vec![], vec![("SENTINEL_CONFIG", s(&missing))]] {
        let args: Vec<&str> = if env.is_empty() {
            vec!["--config", s(&missing)]
        } else {
            vec![]
        };
        let o = run_in(&dir, &args, &env);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with(&format!("error: {}: ", s(&missing))),
            "{err}"
        );
    }
    let o = run_in(&dir, &["--validate", "--config", s(&missing)], &[]);
    assert_eq!(o.status.code(), Some(2));

    // No file at the default path: built-in defaults, with the warning.
    let o = run_in(&dir, &["--print-config"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("    listen \"0.0.0.0:8080\"\n"));
    assert!(
        stderr(&o)
            .contains("no configuration file at config/sentinel.kdl; using built-in defaults"),
        "{}",
        stderr(&o)
    );
    let o = run_in(&dir, &["--validate"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "configuration OK: built-in defaults (0 routes, 0 upstreams, 1 listeners)\n"
    );
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    for args in [
        vec!["--test-config", "a.kdl", "--config", "b.kdl"],
        vec!["--no-such-flag"],
        vec!["--config"],
    ] {
        let o = run(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: usage: "), "{err}");
    }
}
