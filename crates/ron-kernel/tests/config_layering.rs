//! KRN-T2: layered configuration, its errors, and reload.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ron_kernel::config::{
    self, ConfigCell, ConfigErrorKind, ConfigLoader, ReloadClass, ReloadOutcome, ReloadPolicy,
    Validate,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Cfg {
    a: Section,
    listen: String,
    #[serde(with = "config::duration::secs")]
    timeout: Duration,
    #[serde(with = "config::size")]
    max_body: u32,
    peers: Vec<String>,
    verbose: bool,
    db_password: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Section {
    b: u32,
    c: String,
}

impl Default for Cfg {
    fn default() -> Self {
        Self {
            a: Section::default(),
            listen: "127.0.0.1:8080".into(),
            timeout: Duration::from_secs(5),
            max_body: 1024,
            peers: Vec::new(),
            verbose: false,
            db_password: "default-secret".into(),
        }
    }
}

impl Default for Section {
    fn default() -> Self {
        Self {
            b: 1,
            c: "x".into(),
        }
    }
}

impl Validate for Cfg {
    fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if !(1..=1000).contains(&self.a.b) {
            errors.push(("a.b".into(), "must be between 1 and 1000".into()));
        }
        if self.db_password.len() < 4 {
            errors.push(("db_password".into(), "must be at least 4 characters".into()));
        }
        errors
    }
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ron-kernel-config-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn loader() -> ConfigLoader<Cfg> {
    ConfigLoader::new("P")
        .defaults(Cfg::default())
        .secret("db_password")
}

fn no_env() -> [(&'static str, &'static str); 0] {
    []
}

#[test]
fn highest_layer_wins_for_the_same_key() {
    let dir = TempDir::new();
    let toml = dir.write("cfg.toml", "[a]\nb = 2\n");
    let only_defaults = loader().env_from(no_env()).load().unwrap();
    assert_eq!(only_defaults.value.a.b, 1);
    assert_eq!(only_defaults.source_of("a.b").as_deref(), Some("default"));

    let with_file = loader().file(&toml).env_from(no_env()).load().unwrap();
    assert_eq!(with_file.value.a.b, 2);
    assert_eq!(
        with_file.source_of("a.b"),
        Some(format!("{}:2", toml.display()))
    );

    let with_env = loader()
        .file(&toml)
        .env_from([("P_A__B", "3")])
        .load()
        .unwrap();
    assert_eq!(with_env.value.a.b, 3);
    assert_eq!(with_env.source_of("a.b").as_deref(), Some("env P_A__B"));

    let with_flag = loader()
        .file(&toml)
        .env_from([("P_A__B", "3")])
        .cli([("a.b", "4", "--b")])
        .load()
        .unwrap();
    assert_eq!(with_flag.value.a.b, 4);
    assert_eq!(with_flag.source_of("a.b").as_deref(), Some("flag --b"));
    assert_eq!(
        with_flag.value.a.c, "x",
        "untouched leaves keep the lower layer"
    );
}

#[test]
fn dotenv_sits_between_file_and_env_and_never_overrides_the_environment() {
    let dir = TempDir::new();
    let toml = dir.write("cfg.toml", "listen = \"file:1\"\n[a]\nb = 2\n");
    let dotenv = dir.write(".env", "# local overrides\nP_A__B=5\nP_LISTEN=dotenv:1\n");
    let loaded = loader()
        .file(&toml)
        .dotenv(&dotenv)
        .env_from([("P_LISTEN", "env:1")])
        .load()
        .unwrap();
    assert_eq!(loaded.value.a.b, 5);
    assert_eq!(loaded.value.listen, "env:1");
    assert_eq!(
        loaded.source_of("a.b"),
        Some(format!("env P_A__B from {}:2", dotenv.display()))
    );
    let missing = loader()
        .dotenv(dir.0.join("absent.env"))
        .env_from(no_env())
        .load();
    assert!(missing.is_ok(), "a missing dotenv file is skipped");
}

#[test]
fn env_strings_are_coerced_to_booleans_lists_durations_and_sizes() {
    let loaded = loader()
        .env_from([
            ("P_VERBOSE", "On"),
            ("P_PEERS", " a:1 , b:2,"),
            ("P_TIMEOUT", "1500ms"),
            ("P_MAX_BODY", "64KiB"),
        ])
        .load()
        .unwrap();
    assert!(loaded.value.verbose);
    assert_eq!(loaded.value.peers, ["a:1", "b:2"]);
    assert_eq!(loaded.value.timeout, Duration::from_millis(1500));
    assert_eq!(loaded.value.max_body, 65_536);
    let bare = loader().env_from([("P_TIMEOUT", "7")]).load().unwrap();
    assert_eq!(
        bare.value.timeout,
        Duration::from_secs(7),
        "bare numbers use the key's unit"
    );
}

#[test]
fn yaml_and_json_files_layer_like_toml_and_cite_lines() {
    let dir = TempDir::new();
    let yaml = dir.write("cfg.yaml", "listen: yaml:1\na:\n  b: 7\n  bogus: 1\n");
    let err = loader().file(&yaml).env_from(no_env()).load().unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::UnknownKey);
    assert_eq!(err.first().key, "a.bogus");
    assert_eq!(err.first().source, format!("{}:4", yaml.display()));

    let json = dir.write(
        "cfg.json",
        "{\n  \"a\": {\"b\": 8},\n  \"timeout\": \"2m\"\n}\n",
    );
    let loaded = loader().file(&yaml).file(&json).env_from(no_env()).load();
    assert!(
        loaded.is_err(),
        "the YAML's unknown key still fails when layered"
    );
    let loaded = loader().file(&json).env_from(no_env()).load().unwrap();
    assert_eq!(loaded.value.a.b, 8);
    assert_eq!(loaded.value.timeout, Duration::from_secs(120));
    assert_eq!(
        loaded.source_of("a.b"),
        Some(format!("{}:2", json.display()))
    );
}

#[test]
fn unknown_toml_key_is_an_error_citing_file_and_line() {
    let dir = TempDir::new();
    let toml = dir.write("cfg.toml", "listen = \"x\"\n\n[a]\nb = 2\ntypo = 3\n");
    let err = loader().file(&toml).env_from(no_env()).load().unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::UnknownKey);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "a.typo = \"3\" ({}:5): unknown field `typo`",
            toml.display()
        )),
        "{text}"
    );
}

#[test]
fn unknown_prefixed_variable_is_an_error_naming_key_value_and_source() {
    let err = loader()
        .env_from([("P_NOPE", "1"), ("OTHER_NOPE", "2")])
        .load()
        .unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::UnknownKey);
    let text = err.to_string();
    assert!(
        text.starts_with(r#"nope = "1" (env P_NOPE): unknown field `nope`"#),
        "{text}"
    );
}

#[test]
fn wrong_type_is_an_error_naming_key_value_and_source() {
    let err = loader().env_from([("P_A__B", "lots")]).load().unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::WrongType);
    let p = err.first();
    assert_eq!(
        (p.key.as_str(), p.value.as_deref(), p.source.as_str()),
        ("a.b", Some("lots"), "env P_A__B")
    );
    assert!(err.to_string().contains("expected u32"), "{err}");

    let dir = TempDir::new();
    let toml = dir.write("cfg.toml", "verbose = \"yes\"\n");
    let err = loader().file(&toml).env_from(no_env()).load().unwrap_err();
    assert_eq!(err.first().source, format!("{}:1", toml.display()));
    assert_eq!(err.first().key, "verbose", "file strings are not coerced");
}

#[test]
fn out_of_range_value_is_an_error_naming_key_value_and_source() {
    let err = loader()
        .cli([("a.b", "5000", "--b")])
        .env_from(no_env())
        .load()
        .unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::Invalid);
    assert_eq!(
        err.to_string(),
        r#"a.b = "5000" (flag --b): must be between 1 and 1000"#
    );
}

#[test]
fn validation_reports_every_error() {
    let err = loader()
        .env_from([("P_A__B", "0"), ("P_DB_PASSWORD", "abc")])
        .load()
        .unwrap_err();
    let keys: Vec<_> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["a.b", "db_password"]);
}

#[test]
fn secrets_print_redacted() {
    let err = loader()
        .env_from([("P_DB_PASSWORD", "abc")])
        .load()
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(
        text,
        "db_password = <redacted> (env P_DB_PASSWORD): must be at least 4 characters"
    );

    let err = loader()
        .env_alias("DB_PASSWORD", "db_password")
        .env_from([
            ("P_DB_PASSWORD", "hunter22"),
            ("DB_PASSWORD", "other-secret"),
        ])
        .load()
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.kind(), ConfigErrorKind::Conflict);
    assert!(
        !text.contains("hunter22") && !text.contains("other-secret"),
        "{text}"
    );
    assert!(
        text.contains("env DB_PASSWORD") && text.contains("env P_DB_PASSWORD"),
        "{text}"
    );
}

#[test]
fn exit_on_error_prints_one_line_and_exits_2() {
    if std::env::var_os("RON_KERNEL_EXIT_CHILD").is_some() {
        let err = loader()
            .env_from([("P_A__B", "0"), ("P_VERBOSE", "perhaps")])
            .load()
            .unwrap_err();
        config::exit_on_error("svc-test", &err);
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "exit_on_error_prints_one_line_and_exits_2",
            "--nocapture",
        ])
        .env("RON_KERNEL_EXIT_CHILD", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(r#"svc-test: config error: verbose = "perhaps" (env P_VERBOSE): "#),
        "{stderr}"
    );
}

fn write_reloadable(path: &Path, b: u32, listen: &str) {
    std::fs::write(path, format!("listen = \"{listen}\"\n[a]\nb = {b}\n")).unwrap();
}

fn reload_loader(path: &Path) -> ConfigLoader<Cfg> {
    loader()
        .file(path)
        .env_from(no_env())
        .reload_class("listen", ReloadClass::Restart)
}

#[test]
fn reload_with_an_invalid_file_keeps_the_old_config() {
    let dir = TempDir::new();
    let path = dir.0.join("cfg.toml");
    write_reloadable(&path, 2, "a:1");
    let loader = reload_loader(&path);
    let cell = ConfigCell::from(loader.load().unwrap());
    let before = cell.get();

    std::fs::write(&path, "[a]\nb = = 3\n").unwrap();
    let outcome = cell.reload(&loader, ReloadPolicy::KeepOld);
    assert!(
        matches!(&outcome, ReloadOutcome::Invalid(e) if e.kind() == ConfigErrorKind::Syntax),
        "{outcome:?}"
    );
    assert!(Arc::ptr_eq(&before, &cell.get()));

    write_reloadable(&path, 5000, "a:1");
    let outcome = cell.reload(&loader, ReloadPolicy::KeepOld);
    assert_eq!(outcome.as_str(), "invalid");
    assert!(Arc::ptr_eq(&before, &cell.get()));

    write_reloadable(&path, 3, "a:1");
    let outcome = cell.reload(&loader, ReloadPolicy::KeepOld);
    assert_eq!(outcome.changed_keys(), ["a.b"]);
    assert_eq!(cell.get().a.b, 3);
}

#[test]
fn reject_all_rejects_a_changed_restart_key() {
    let dir = TempDir::new();
    let path = dir.0.join("cfg.toml");
    write_reloadable(&path, 2, "a:1");
    let loader = reload_loader(&path);
    let cell = ConfigCell::from(loader.load().unwrap());
    let before = cell.get();

    write_reloadable(&path, 3, "b:2");
    let outcome = cell.reload(&loader, ReloadPolicy::RejectAll);
    let ReloadOutcome::Rejected { restart_keys } = &outcome else {
        panic!("expected rejected, got {outcome:?}");
    };
    assert_eq!(restart_keys.len(), 1);
    assert_eq!(restart_keys[0].key, "listen");
    assert_eq!(
        (restart_keys[0].old.as_str(), restart_keys[0].new.as_str()),
        ("\"a:1\"", "\"b:2\"")
    );
    assert!(Arc::ptr_eq(&before, &cell.get()));

    let outcome = cell.reload(&loader, ReloadPolicy::KeepOld);
    let ReloadOutcome::Applied {
        changed,
        pending_restart,
    } = &outcome
    else {
        panic!("expected applied, got {outcome:?}");
    };
    assert_eq!(changed[0].key, "a.b");
    assert_eq!(pending_restart[0].key, "listen");
    assert_eq!((cell.get().a.b, cell.get().listen.as_str()), (3, "a:1"));
}

#[test]
fn unchanged_sources_reload_as_unchanged() {
    let dir = TempDir::new();
    let path = dir.0.join("cfg.toml");
    write_reloadable(&path, 2, "a:1");
    let loader = reload_loader(&path);
    let cell = ConfigCell::from(loader.load().unwrap());
    assert_eq!(
        cell.reload(&loader, ReloadPolicy::KeepOld),
        ReloadOutcome::Unchanged
    );
}

#[test]
fn missing_file_is_an_error_naming_the_path() {
    let err = loader()
        .file("/nonexistent/ron/cfg.toml")
        .env_from(no_env())
        .load()
        .unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::Io);
    assert!(
        err.to_string()
            .starts_with(r#"config file = "/nonexistent/ron/cfg.toml""#),
        "{err}"
    );
}
