//! Tests of loading, layering, environment spellings, validation and reload.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine;
use rand::RngCore;

use super::*;

/// The shipped sample file, loaded by [`sample_config_file_loads_and_equals_the_defaults`].
const SAMPLE: &str = include_str!("../../../../configs/rustchat.toml");
/// The shipped production `.env` template.
const ENV_EXAMPLE: &str = include_str!("../../../../deploy/rustchat/env.example");

/// A private temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rustchat-config-test-{}-{}",
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

fn opts(dir: &TempDir, env: &[(&str, &str)]) -> LoadOptions {
    LoadOptions {
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        cwd: dir.0.clone(),
        ..LoadOptions::default()
    }
}

fn load_env(env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    let dir = TempDir::new();
    load(&opts(&dir, env))
}

fn config_env(env: &[(&str, &str)]) -> Config {
    load_env(env).unwrap_or_else(|e| panic!("{e}")).config
}

fn error_env(env: &[(&str, &str)]) -> ConfigError {
    match load_env(env) {
        Ok(loaded) => panic!("expected an error, got {:?}", loaded.config),
        Err(e) => e,
    }
}

/// What `openssl rand -base64 48` prints.
fn strong_secret() -> String {
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The runbook's first-deployment `.env`, with loopback URLs.
fn runbook_env(jwt: &str, enc: &str) -> String {
    format!(
        "RUSTCHAT_ENVIRONMENT=production\nRUSTCHAT_JWT_SECRET={jwt}\n\
         RUSTCHAT_ENCRYPTION_KEY={enc}\n\
         RUSTCHAT_DATABASE_URL=postgres://user:pass@127.0.0.1:5432/rustchat\n\
         RUSTCHAT_REDIS_URL=redis://127.0.0.1:6379\n\
         RUSTCHAT_SECURITY_OAUTH_TOKEN_DELIVERY=cookie\n"
    )
}

#[test]
fn defaults_match_the_spec_table() {
    let loaded = load_env(&[]).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert_eq!(c.environment, Environment::Development);
    assert_eq!(c.data_dir, Path::new("./data"));
    assert_eq!(
        c.database_url,
        DatabaseUrl::Sqlite {
            path: PathBuf::from("./data/rustchat.db"),
            memory: false,
            url: "sqlite://./data/rustchat.db".into()
        }
    );
    assert_eq!(c.redis_url, None);
    assert_eq!(c.site_url, None);
    assert_eq!(c.jwt_secret, None);
    assert_eq!(c.encryption_key, None);
    assert_eq!(c.server.host.to_string(), "0.0.0.0");
    assert_eq!(c.server.port, 3000);
    assert!(c.server.trusted_proxies.is_empty());
    assert_eq!(c.server.shutdown_grace_seconds, 30);
    assert_eq!(c.server.request_timeout_seconds, 30);
    assert_eq!(c.server.config_refresh_seconds, 30);
    assert_eq!(c.db_pool.max_connections, None);
    assert_eq!(c.effective_pool_max(), 8);
    assert_eq!(c.db_pool.min_connections, 2);
    assert_eq!(c.db_pool.acquire_timeout_ms, 3000);
    assert_eq!(c.db_pool.idle_timeout_seconds, 600);
    assert_eq!(c.db_pool.max_lifetime_seconds, 1800);
    assert_eq!(c.db.statement_timeout_ms, 30_000);
    assert_eq!(c.db.sqlite_synchronous, SqliteSynchronous::Full);
    assert!(c.security.rate_limit_enabled);
    assert_eq!(c.security.rate_limit_auth_per_minute, 10);
    assert_eq!(c.security.rate_limit_ws_per_minute, 30);
    assert_eq!(c.security.rate_limit_webhook_per_minute, 60);
    assert_eq!(c.security.oauth_token_delivery, OAuthTokenDelivery::Cookie);
    assert!(c.security.cors_allowed_origins.is_empty());
    assert_eq!(c.jwt.issuer, "rustchat");
    assert_eq!(c.jwt.audience, "rustchat");
    assert_eq!(c.jwt.expiry_hours, 168);
    assert_eq!(c.files.dir, Path::new("./data/files"));
    assert_eq!(c.files.min_free_mb, 256);
    assert_eq!(c.ws.max_connections_per_node, 20_000);
    assert_eq!(c.ws.send_queue_messages, 256);
    assert_eq!(c.ws.ping_interval_seconds, 30);
    assert_eq!(c.ws.auth_timeout_seconds, 10);
    assert_eq!(c.cluster.heartbeat_interval_seconds, 10);
    assert_eq!(c.compat.mattermost_version, "10.11.10");
    assert_eq!(c.search.pg_language, "english");
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.log.access, AccessLog::ErrorsAndSlow);
    assert_eq!(c.log.slow_request_ms, 1000);
    assert_eq!(c.log.slow_query_ms, 500);
    assert_eq!(c.oauth.breaker_failure_threshold, 5);
    assert_eq!(c.oauth.breaker_open_seconds, 30);
    assert_eq!(c.oauth.http_timeout_ms, 5000);
    assert!(c.oauth.providers.is_empty());
}

#[test]
fn default_node_id_is_hostname_dash_six_random_characters() {
    let c = config_env(&[("HOSTNAME", "chat-node.1")]);
    let suffix = c
        .cluster
        .node_id
        .strip_prefix("chat-node.1-")
        .unwrap_or_else(|| panic!("{}", c.cluster.node_id));
    assert_eq!(suffix.len(), 6);
    assert!(
        suffix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    let other = config_env(&[("HOSTNAME", "chat-node.1")]);
    assert_ne!(c.cluster.node_id, other.cluster.node_id);
    let odd = config_env(&[("HOSTNAME", "host name/ü")]);
    assert!(
        odd.cluster.node_id.starts_with("host-name--"),
        "{}",
        odd.cluster.node_id
    );
}

#[test]
fn derived_defaults_follow_data_dir() {
    let c = config_env(&[("RUSTCHAT_DATA_DIR", "/var/lib/rustchat")]);
    assert_eq!(
        c.database_url.url(),
        "sqlite:///var/lib/rustchat/rustchat.db"
    );
    assert!(
        matches!(&c.database_url, DatabaseUrl::Sqlite { path, .. } if path == Path::new("/var/lib/rustchat/rustchat.db"))
    );
    assert_eq!(c.files.dir, Path::new("/var/lib/rustchat/files"));
}

#[test]
fn canonical_and_single_underscore_spellings_each_set_the_key() {
    for var in [
        "RUSTCHAT_DB_POOL__MAX_CONNECTIONS",
        "RUSTCHAT_DB_POOL_MAX_CONNECTIONS",
    ] {
        let c = config_env(&[(var, "7")]);
        assert_eq!(c.db_pool.max_connections, Some(7), "{var}");
        assert_eq!(c.effective_pool_max(), 7);
    }
    for var in [
        "RUSTCHAT_SECURITY__RATE_LIMIT_AUTH_PER_MINUTE",
        "RUSTCHAT_SECURITY_RATE_LIMIT_AUTH_PER_MINUTE",
    ] {
        let c = config_env(&[(var, "20")]);
        assert_eq!(c.security.rate_limit_auth_per_minute, 20, "{var}");
    }
    let c = config_env(&[("RUSTCHAT_SERVER_PORT", "4000")]);
    assert_eq!(c.server.port, 4000);
    let c = config_env(&[("RUSTCHAT_JWT_ISSUER", "chat.example.com")]);
    assert_eq!(c.jwt.issuer, "chat.example.com");
}

#[test]
fn two_spellings_with_the_same_value_are_fine() {
    let c = config_env(&[
        ("RUSTCHAT_DB_POOL__MAX_CONNECTIONS", "7"),
        ("RUSTCHAT_DB_POOL_MAX_CONNECTIONS", "7"),
    ]);
    assert_eq!(c.db_pool.max_connections, Some(7));
}

#[test]
fn two_spellings_with_different_values_are_an_error_naming_both() {
    let err = error_env(&[
        ("RUSTCHAT_DB_POOL__MAX_CONNECTIONS", "7"),
        ("RUSTCHAT_DB_POOL_MAX_CONNECTIONS", "8"),
    ]);
    let line = err.to_string();
    assert!(line.starts_with("config error: "), "{line}");
    assert!(line.contains("RUSTCHAT_DB_POOL__MAX_CONNECTIONS"), "{line}");
    assert!(line.contains("RUSTCHAT_DB_POOL_MAX_CONNECTIONS"), "{line}");
    assert_eq!(err.first().kind, ConfigErrorKind::Conflict);
    assert_eq!(err.exit_code(), 2);
    let err = error_env(&[("RUSTCHAT_PORT", "1"), ("RUSTCHAT_SERVER__PORT", "2")]);
    assert!(err.to_string().contains("RUSTCHAT_PORT"), "{err}");
    assert!(err.to_string().contains("RUSTCHAT_SERVER__PORT"), "{err}");
}

#[test]
fn misspelt_variable_is_an_error_naming_it() {
    let err = error_env(&[("RUSTCHAT_DB_POOL__MAX_CONECTIONS", "5")]);
    assert_eq!(
        err.to_string(),
        "config error: RUSTCHAT_DB_POOL__MAX_CONECTIONS = \"5\": unknown key; did you mean \
         RUSTCHAT_DB_POOL__MAX_CONNECTIONS?"
    );
    assert_eq!(err.first().kind, ConfigErrorKind::UnknownKey);
}

#[test]
fn every_unknown_variable_is_reported_at_once() {
    let err = error_env(&[
        ("RUSTCHAT_FOO", "1"),
        ("RUSTCHAT_SERVER__PORT__X", "2"),
        ("RUSTCHAT_SERVER", "3"),
    ]);
    let names: Vec<&str> = err.problems().iter().map(ConfigProblem::name).collect();
    assert_eq!(
        names,
        [
            "RUSTCHAT_FOO",
            "RUSTCHAT_SERVER",
            "RUSTCHAT_SERVER__PORT__X"
        ]
    );
    assert!(
        err.to_string()
            .ends_with("(and 2 more problems; --check-config lists all)")
    );
}

#[test]
fn unknown_variable_that_looks_secret_is_redacted() {
    let err = error_env(&[("RUSTCHAT_JWT_SECRETT", "hunter2-hunter2")]);
    let line = err.to_string();
    assert!(!line.contains("hunter2"), "{line}");
    assert!(line.contains("RUSTCHAT_JWT_SECRETT = ***"), "{line}");
}

#[test]
fn kubernetes_service_links_and_test_variables_are_ignored() {
    let loaded = load_env(&[
        ("RUSTCHAT_PORT", "tcp://10.0.0.1:3000"),
        ("RUSTCHAT_SERVICE_HOST", "10.0.0.1"),
        ("RUSTCHAT_SERVICE_PORT", "3000"),
        ("RUSTCHAT_PORT_3000_TCP_ADDR", "10.0.0.1"),
        ("RUSTCHAT_TEST_FIXTURE", "x"),
        ("RUSTCHAT_CONFIG", ""),
    ])
    .unwrap();
    assert_eq!(loaded.config.server.port, 3000);
    assert_eq!(
        loaded.ignored_env,
        [
            "RUSTCHAT_PORT",
            "RUSTCHAT_PORT_3000_TCP_ADDR",
            "RUSTCHAT_SERVICE_HOST",
            "RUSTCHAT_SERVICE_PORT",
            "RUSTCHAT_TEST_FIXTURE"
        ]
    );
}

#[test]
fn port_and_host_aliases_set_the_bind_address() {
    let c = config_env(&[("RUSTCHAT_PORT", "8080"), ("RUSTCHAT_HOST", "127.0.0.1")]);
    assert_eq!(c.server.bind_addr().to_string(), "127.0.0.1:8080");
}

#[test]
fn dotenv_never_overrides_the_process_environment() {
    let dir = TempDir::new();
    dir.write(
        ".env",
        "RUSTCHAT_SERVER__PORT=4001\nRUSTCHAT_JWT__ISSUER=from-dotenv\n",
    );
    let c = load(&opts(&dir, &[("RUSTCHAT_SERVER__PORT", "4002")]))
        .unwrap()
        .config;
    assert_eq!(c.server.port, 4002);
    assert_eq!(c.jwt.issuer, "from-dotenv");
}

#[test]
fn layers_apply_in_order_file_dotenv_env_cli() {
    let dir = TempDir::new();
    let file = dir.write(
        "rustchat.toml",
        "[server]\nport = 4001\n[jwt]\nissuer = \"file\"\naudience = \"file\"\n\
         [ws]\nping_interval_seconds = 11\n",
    );
    let env_file = dir.write(
        "custom.env",
        "RUSTCHAT_SERVER_PORT=4002\nRUSTCHAT_JWT_ISSUER=dotenv\nRUSTCHAT_JWT_AUDIENCE=dotenv\n",
    );
    let mut o = opts(
        &dir,
        &[
            ("RUSTCHAT_SERVER__PORT", "4003"),
            ("RUSTCHAT_JWT__ISSUER", "env"),
        ],
    );
    o.config_file = Some(file);
    o.env_file = Some(env_file);
    o.port = Some("4004".into());
    let c = load(&o).unwrap().config;
    assert_eq!(c.server.port, 4004, "CLI beats env");
    assert_eq!(c.jwt.issuer, "env", "env beats .env");
    assert_eq!(c.jwt.audience, "dotenv", ".env beats the file");
    assert_eq!(c.ws.ping_interval_seconds, 11, "the file beats defaults");
    o.port = None;
    assert_eq!(load(&o).unwrap().config.server.port, 4003);
    o.env.clear();
    assert_eq!(load(&o).unwrap().config.server.port, 4002);
    o.env_file = None;
    assert_eq!(load(&o).unwrap().config.server.port, 4001);
}

#[test]
fn rustchat_config_names_the_file_when_no_flag_does() {
    let dir = TempDir::new();
    let file = dir.write("chat.toml", "[server]\nport = 4100\n");
    let file = file.display().to_string();
    let c = load(&opts(&dir, &[("RUSTCHAT_CONFIG", &file)]))
        .unwrap()
        .config;
    assert_eq!(c.server.port, 4100);
}

#[test]
fn a_missing_env_file_or_config_file_is_an_error() {
    let dir = TempDir::new();
    let mut o = opts(&dir, &[]);
    o.env_file = Some(dir.0.join("absent.env"));
    let err = load(&o).unwrap_err();
    assert!(
        err.to_string().starts_with("config error: --env-file = "),
        "{err}"
    );
    let mut o = opts(&dir, &[]);
    o.config_file = Some(dir.0.join("absent.toml"));
    let err = load(&o).unwrap_err();
    assert!(err.to_string().contains("absent.toml"), "{err}");
}

#[test]
fn unknown_toml_key_is_an_error_with_file_and_line() {
    let dir = TempDir::new();
    let file = dir.write("rustchat.toml", "[server]\nport = 3000\nprot = 3001\n");
    let mut o = opts(&dir, &[]);
    o.config_file = Some(file.clone());
    let err = load(&o).unwrap_err();
    let line = err.to_string();
    assert!(
        line.starts_with("config error: server.prot = \"3001\": unknown field `prot`"),
        "{line}"
    );
    assert!(line.ends_with(&format!("({}:3)", file.display())), "{line}");
}

#[test]
fn invalid_values_in_the_file_cite_file_and_line() {
    let dir = TempDir::new();
    let file = dir.write("rustchat.toml", "# c\n[ws]\nping_interval_seconds = 1\n");
    let mut o = opts(&dir, &[]);
    o.config_file = Some(file.clone());
    let err = load(&o).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "config error: ws.ping_interval_seconds = \"1\": must be between 5 and 300 ({}:3)",
            file.display()
        )
    );
}

#[test]
fn wrong_types_say_what_was_expected() {
    let err = error_env(&[("RUSTCHAT_SERVER_PORT", "http")]);
    let line = err.to_string();
    assert!(line.contains("expected an integer"), "{line}");
    assert!(line.contains("RUSTCHAT_SERVER_PORT = \"http\""), "{line}");
}

#[test]
fn environment_accepts_dev_and_prod() {
    for (text, expected) in [
        ("dev", Environment::Development),
        ("development", Environment::Development),
        ("Production", Environment::Production),
        ("prod", Environment::Production),
    ] {
        let secret_a = strong_secret();
        let secret_b = strong_secret();
        let c = config_env(&[
            ("RUSTCHAT_ENVIRONMENT", text),
            ("RUSTCHAT_JWT_SECRET", &secret_a),
            ("RUSTCHAT_ENCRYPTION_KEY", &secret_b),
        ]);
        assert_eq!(c.environment, expected, "{text}");
    }
    let err = error_env(&[("RUSTCHAT_ENVIRONMENT", "staging")]);
    assert!(
        err.to_string()
            .contains("expected development or production"),
        "{err}"
    );
}

/// (canonical variable, lowest valid, highest valid, extra env making both valid)
type RangeCase = (
    &'static str,
    i64,
    i64,
    &'static [(&'static str, &'static str)],
);

#[test]
fn every_range_bound_is_enforced() {
    let cases: &[RangeCase] = &[
        ("RUSTCHAT_SERVER__PORT", 1, 65_535, &[]),
        ("RUSTCHAT_SERVER__SHUTDOWN_GRACE_SECONDS", 1, 600, &[]),
        ("RUSTCHAT_SERVER__REQUEST_TIMEOUT_SECONDS", 1, 600, &[]),
        ("RUSTCHAT_SERVER__CONFIG_REFRESH_SECONDS", 1, 3600, &[]),
        (
            "RUSTCHAT_DB_POOL__MAX_CONNECTIONS",
            1,
            1000,
            &[("RUSTCHAT_DB_POOL__MIN_CONNECTIONS", "1")],
        ),
        (
            "RUSTCHAT_DB_POOL__MIN_CONNECTIONS",
            1,
            1000,
            &[("RUSTCHAT_DB_POOL__MAX_CONNECTIONS", "1000")],
        ),
        ("RUSTCHAT_DB_POOL__ACQUIRE_TIMEOUT_MS", 100, 60_000, &[]),
        (
            "RUSTCHAT_DB_POOL__IDLE_TIMEOUT_SECONDS",
            10,
            i64::from(u32::MAX),
            &[],
        ),
        (
            "RUSTCHAT_DB_POOL__MAX_LIFETIME_SECONDS",
            10,
            i64::from(u32::MAX),
            &[],
        ),
        (
            "RUSTCHAT_SECURITY__RATE_LIMIT_AUTH_PER_MINUTE",
            1,
            100_000,
            &[],
        ),
        (
            "RUSTCHAT_SECURITY__RATE_LIMIT_WS_PER_MINUTE",
            1,
            100_000,
            &[],
        ),
        (
            "RUSTCHAT_SECURITY__RATE_LIMIT_WEBHOOK_PER_MINUTE",
            1,
            100_000,
            &[],
        ),
        ("RUSTCHAT_JWT__EXPIRY_HOURS", 1, 8760, &[]),
        ("RUSTCHAT_WS__MAX_CONNECTIONS_PER_NODE", 1, 1_000_000, &[]),
        ("RUSTCHAT_WS__SEND_QUEUE_MESSAGES", 16, 65_536, &[]),
        ("RUSTCHAT_WS__PING_INTERVAL_SECONDS", 5, 300, &[]),
        ("RUSTCHAT_WS__AUTH_TIMEOUT_SECONDS", 1, 60, &[]),
        ("RUSTCHAT_CLUSTER__HEARTBEAT_INTERVAL_SECONDS", 1, 60, &[]),
        ("RUSTCHAT_OAUTH__BREAKER_FAILURE_THRESHOLD", 1, 100, &[]),
        ("RUSTCHAT_OAUTH__BREAKER_OPEN_SECONDS", 1, 3600, &[]),
        ("RUSTCHAT_OAUTH__HTTP_TIMEOUT_MS", 100, 60_000, &[]),
        ("RUSTCHAT_FILES__MIN_FREE_MB", 0, i64::from(u32::MAX), &[]),
        ("RUSTCHAT_LOG__SLOW_REQUEST_MS", 0, i64::from(u32::MAX), &[]),
        ("RUSTCHAT_LOG__SLOW_QUERY_MS", 0, i64::from(u32::MAX), &[]),
        (
            "RUSTCHAT_DB__STATEMENT_TIMEOUT_MS",
            0,
            i64::from(u32::MAX),
            &[],
        ),
    ];
    for (var, lo, hi, extra) in cases {
        for (value, ok) in [(*lo, true), (*hi, true), (lo - 1, false), (hi + 1, false)] {
            let text = value.to_string();
            let mut env = extra.to_vec();
            env.push((var, &text));
            let result = load_env(&env);
            assert_eq!(result.is_ok(), ok, "{var}={value}: {:?}", result.err());
            if let Err(err) = result {
                assert_eq!(err.first().var.as_deref(), Some(*var), "{err}");
                assert!(err.first().reason.starts_with("must be"), "{err}");
            }
        }
    }
}

#[test]
fn pool_minimum_may_not_exceed_the_effective_maximum() {
    let err = error_env(&[("RUSTCHAT_DB_POOL__MIN_CONNECTIONS", "9")]);
    assert!(
        err.to_string()
            .contains("must not exceed db_pool.max_connections (8)"),
        "{err}"
    );
    let c = config_env(&[
        ("RUSTCHAT_DB_POOL__MIN_CONNECTIONS", "9"),
        ("RUSTCHAT_DATABASE_URL", "postgres://db/chat"),
    ]);
    assert_eq!(c.effective_pool_max(), 20);
}

#[test]
fn enum_and_format_rules_are_enforced() {
    for (var, bad, needle) in [
        ("RUSTCHAT_LOG__FORMAT", "xml", "json or pretty"),
        ("RUSTCHAT_LOG__ACCESS", "some", "errors_and_slow or all"),
        ("RUSTCHAT_DB__SQLITE_SYNCHRONOUS", "off", "full or normal"),
        ("RUSTCHAT_SERVER__HOST", "localhost", "IP literal"),
        ("RUSTCHAT_CLUSTER__NODE_ID", "node 1", "A-Z a-z 0-9 . _ -"),
        (
            "RUSTCHAT_COMPAT__MATTERMOST_VERSION",
            "10.11",
            "three integers",
        ),
        (
            "RUSTCHAT_COMPAT__MATTERMOST_VERSION",
            "10.x.1",
            "three integers",
        ),
        (
            "RUSTCHAT_SEARCH__PG_LANGUAGE",
            "klingon",
            "built-in PostgreSQL",
        ),
        (
            "RUSTCHAT_SERVER__TRUSTED_PROXIES",
            "10.0.0.0/8,nope",
            "CIDR",
        ),
        ("RUSTCHAT_DATABASE_URL", "mysql://db/chat", "sqlite://"),
        ("RUSTCHAT_REDIS_URL", "http://redis", "redis://"),
        ("RUSTCHAT_JWT__ISSUER", &"x".repeat(257), "1-256 characters"),
    ] {
        let err = error_env(&[(var, bad)]);
        assert!(err.to_string().contains(needle), "{var}={bad}: {err}");
    }
    let c = config_env(&[
        ("RUSTCHAT_LOG__FORMAT", "pretty"),
        ("RUSTCHAT_LOG__ACCESS", "all"),
        ("RUSTCHAT_CLUSTER__NODE_ID", "node-1.a_b"),
        (
            "RUSTCHAT_SERVER__TRUSTED_PROXIES",
            "10.0.0.0/8, 192.168.1.1",
        ),
        ("RUSTCHAT_SEARCH__PG_LANGUAGE", "German"),
    ]);
    assert_eq!(c.log.format, LogFormat::Pretty);
    assert_eq!(c.cluster.node_id, "node-1.a_b");
    assert_eq!(c.search.pg_language, "german");
    assert!(c.server.is_trusted_proxy("192.168.1.1".parse().unwrap()));
    assert!(c.server.is_trusted_proxy("10.9.9.9".parse().unwrap()));
    assert!(!c.server.is_trusted_proxy("192.168.1.2".parse().unwrap()));
    let err = error_env(&[("RUSTCHAT_CLUSTER__NODE_ID", &"n".repeat(65))]);
    assert!(err.to_string().contains("1-64"), "{err}");
}

#[test]
fn oauth_token_delivery_accepts_only_cookie() {
    let err = error_env(&[("RUSTCHAT_SECURITY_OAUTH_TOKEN_DELIVERY", "query")]);
    assert_eq!(
        err.to_string(),
        "config error: RUSTCHAT_SECURITY_OAUTH_TOKEN_DELIVERY = \"query\": only \"cookie\" is \
         supported: tokens are never put in URLs (security.oauth_token_delivery)"
    );
}

#[test]
fn runbook_env_passes_in_production_with_a_site_url_warning() {
    let dir = TempDir::new();
    dir.write(".env", &runbook_env(&strong_secret(), &strong_secret()));
    let loaded = load(&opts(&dir, &[])).unwrap();
    let c = &loaded.config;
    assert!(c.is_production());
    assert!(matches!(c.database_url, DatabaseUrl::Postgres { .. }));
    assert_eq!(c.effective_pool_max(), 20);
    assert_eq!(
        c.redacted_database_url(),
        "postgres://user:***@127.0.0.1:5432/rustchat"
    );
    let keys: Vec<&str> = loaded.warnings.iter().map(|w| w.key.as_str()).collect();
    // The runbook's .env warns about site_url only (CHAT-R32): Redis is the cluster bus, so
    // a redis_url beside PostgreSQL is nothing to warn about.
    assert_eq!(keys, ["site_url"], "{:?}", loaded.warnings);
    assert!(c.jwt_key_material().unwrap().len() == 48);
}

#[test]
fn production_requires_both_secrets() {
    let err = error_env(&[("RUSTCHAT_ENVIRONMENT", "production")]);
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["jwt_secret", "encryption_key"]);
    assert_eq!(
        err.first().to_string(),
        "jwt_secret = <unset>: required in production: set RUSTCHAT_JWT_SECRET (generate one \
         with `openssl rand -base64 48`)"
    );
}

fn production_error(jwt: &str, enc: &str) -> ConfigError {
    error_env(&[
        ("RUSTCHAT_ENVIRONMENT", "production"),
        ("RUSTCHAT_JWT_SECRET", jwt),
        ("RUSTCHAT_ENCRYPTION_KEY", enc),
    ])
}

#[test]
fn production_rejects_a_secret_with_a_placeholder_word() {
    let weak = format!("{}changeme", strong_secret());
    let err = production_error(&weak, &strong_secret());
    let line = err.to_string();
    assert!(
        line.starts_with("config error: RUSTCHAT_JWT_SECRET = ***: too weak: "),
        "{line}"
    );
    assert!(line.contains("placeholder word \"changeme\""), "{line}");
    assert!(!line.contains(&weak), "{line}");
}

#[test]
fn production_rejects_a_short_secret() {
    let err = production_error(&strong_secret(), "Zq8#kP2!vB");
    assert_eq!(err.first().key, "encryption_key");
    assert!(
        err.first().reason.contains("only 10 bytes of key material"),
        "{err}"
    );
    assert!(!err.to_string().contains("Zq8#kP2!vB"), "{err}");
}

#[test]
fn production_rejects_a_low_entropy_secret() {
    let flat = "ab".repeat(40);
    let err = production_error(&flat, &strong_secret());
    assert_eq!(err.first().key, "jwt_secret");
    assert!(
        err.first().reason.contains("estimated entropy 80 bits"),
        "{err}"
    );
}

#[test]
fn production_rejects_equal_secrets() {
    let secret = strong_secret();
    let err = production_error(&secret, &secret);
    assert_eq!(err.problems().len(), 1, "{err}");
    assert_eq!(err.first().key, "encryption_key");
    assert!(
        err.first().reason.contains("must differ from jwt_secret"),
        "{err}"
    );
}

#[test]
fn production_accepts_openssl_rand_base64_48_secrets() {
    for _ in 0..10 {
        let (jwt, enc) = (strong_secret(), strong_secret());
        let loaded = load_env(&[
            ("RUSTCHAT_ENVIRONMENT", "production"),
            ("RUSTCHAT_JWT_SECRET", &jwt),
            ("RUSTCHAT_ENCRYPTION_KEY", &enc),
            ("RUSTCHAT_SITE_URL", "https://chat.example.com/"),
        ])
        .unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(
            loaded.config.site_url.as_deref(),
            Some("https://chat.example.com")
        );
        assert_eq!(loaded.config.jwt_secret.unwrap().expose(), jwt);
    }
}

#[test]
fn development_turns_secret_problems_into_warnings() {
    let loaded = load_env(&[
        ("RUSTCHAT_JWT_SECRET", "changeme"),
        ("RUSTCHAT_ENCRYPTION_KEY", "changeme"),
    ])
    .unwrap();
    let keys: Vec<&str> = loaded.warnings.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(keys, ["jwt_secret", "encryption_key", "encryption_key"]);
    assert!(!format!("{:?}", loaded.warnings).contains("changeme\""));
}

#[test]
fn production_requires_https_site_url_and_cors_origins() {
    let (jwt, enc) = (strong_secret(), strong_secret());
    let base = [
        ("RUSTCHAT_ENVIRONMENT", "production"),
        ("RUSTCHAT_JWT_SECRET", jwt.as_str()),
        ("RUSTCHAT_ENCRYPTION_KEY", enc.as_str()),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut env = base.to_vec();
        env.extend_from_slice(extra);
        load_env(&env)
    };
    let err = with(&[("RUSTCHAT_SITE_URL", "http://chat.example.com")]).unwrap_err();
    assert_eq!(err.first().key, "site_url");
    assert!(err.first().reason.contains("https"), "{err}");
    let err = with(&[(
        "RUSTCHAT_SECURITY__CORS_ALLOWED_ORIGINS",
        "https://a.example.com,http://b.example.com",
    )])
    .unwrap_err();
    assert_eq!(err.first().key, "security.cors_allowed_origins[1]");
    let ok = with(&[(
        "RUSTCHAT_SECURITY__CORS_ALLOWED_ORIGINS",
        "https://a.example.com/, https://b.example.com:8443",
    )])
    .unwrap();
    assert_eq!(
        ok.config.security.cors_allowed_origins,
        ["https://a.example.com", "https://b.example.com:8443"]
    );
    let dev = config_env(&[
        ("RUSTCHAT_SITE_URL", "http://localhost:3000"),
        (
            "RUSTCHAT_SECURITY__CORS_ALLOWED_ORIGINS",
            "http://localhost:5173",
        ),
    ]);
    assert_eq!(dev.site_url.as_deref(), Some("http://localhost:3000"));
    let err = error_env(&[(
        "RUSTCHAT_SECURITY__CORS_ALLOWED_ORIGINS",
        "https://a.example.com/x",
    )]);
    assert!(err.to_string().contains("no path"), "{err}");
    let err = error_env(&[("RUSTCHAT_SECURITY__CORS_ALLOWED_ORIGINS", "*")]);
    assert!(err.to_string().contains("not allowed"), "{err}");
}

#[test]
fn redis_with_sqlite_is_only_a_warning() {
    let loaded = load_env(&[("RUSTCHAT_REDIS_URL", "redis://:pw@127.0.0.1:6379")]).unwrap();
    // One warning: Redis beside SQLite (a SQLite database serves one node only).
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings.iter().all(|w| w.key == "redis_url"));
    assert_eq!(
        loaded.config.redacted_redis_url().as_deref(),
        Some("redis://:***@127.0.0.1:6379")
    );
}

#[test]
fn error_lines_redact_url_passwords_and_secrets() {
    let err = error_env(&[("RUSTCHAT_DATABASE_URL", "mysql://app:hunter2@db/chat")]);
    let line = err.to_string();
    assert_eq!(
        line,
        "config error: RUSTCHAT_DATABASE_URL = \"mysql://app:***@db/chat\": expected a \
         sqlite://, postgres:// or postgresql:// URL (database_url)"
    );
    let err = error_env(&[
        ("RUSTCHAT_DATABASE_URL", "postgres://app:hunter2@db/chat"),
        ("RUSTCHAT_DATABASE__URL", "postgres://app:hunter3@db/chat"),
    ]);
    let line = err.to_string();
    assert!(!line.contains("hunter"), "{line}");
    let err = error_env(&[
        ("RUSTCHAT_JWT_SECRET", "first-secret-value"),
        ("RUSTCHAT_JWT__SECRET", "second-secret-value"),
    ]);
    let line = err.to_string();
    assert!(!line.contains("secret-value"), "{line}");
}

#[test]
fn oauth_providers_nest_from_the_environment() {
    let loaded = load_env(&[
        ("RUSTCHAT_SITE_URL", "https://chat.example.com"),
        (
            "RUSTCHAT_OAUTH__PROVIDERS__GOOGLE__ISSUER_URL",
            "https://accounts.google.com/",
        ),
        ("RUSTCHAT_OAUTH__PROVIDERS__GOOGLE__CLIENT_ID", "cid"),
        (
            "RUSTCHAT_OAUTH__PROVIDERS__GOOGLE__CLIENT_SECRET",
            "csecret",
        ),
        ("RUSTCHAT_OAUTH__PROVIDERS__GOOGLE__SCOPES", "openid email"),
        (
            "RUSTCHAT_OAUTH__PROVIDERS__GOOGLE__ALLOWED_EMAIL_DOMAINS",
            "Example.com,@corp.example",
        ),
        ("RUSTCHAT_OAUTH__PROVIDERS__GOOGLE__LINK_BY_EMAIL", "true"),
    ])
    .unwrap();
    let google = &loaded.config.oauth.providers["google"];
    assert_eq!(google.name, "google");
    assert_eq!(google.issuer_url, "https://accounts.google.com");
    assert_eq!(google.client_id, "cid");
    assert_eq!(google.client_secret.expose(), "csecret");
    assert_eq!(google.display_name, "google");
    assert_eq!(google.scopes, ["openid", "email"]);
    assert_eq!(
        google.allowed_email_domains,
        ["example.com", "corp.example"]
    );
    assert!(google.link_by_email);
}

#[test]
fn oauth_providers_need_a_site_url_and_their_required_fields() {
    let err = error_env(&[(
        "RUSTCHAT_OAUTH__PROVIDERS__OKTA__CLIENT_SECRET",
        "s3cr3t-value",
    )]);
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "oauth.providers.okta.issuer_url",
            "oauth.providers.okta.client_id",
            "site_url"
        ]
    );
    assert!(!err.to_string().contains("s3cr3t"), "{err}");
    assert_eq!(
        err.first().to_string(),
        "oauth.providers.okta.issuer_url = <unset>: required for every OAuth provider"
    );
}

#[test]
fn oauth_provider_names_and_scopes_are_checked() {
    let dir = TempDir::new();
    let file = dir.write(
        "rustchat.toml",
        "site_url = \"https://chat.example.com\"\n\
         [oauth.providers.Bad_Name]\nissuer_url = \"https://idp\"\nclient_id = \"a\"\n\
         client_secret = \"b\"\n\
         [oauth.providers.corp-sso]\nissuer_url = \"https://idp\"\nclient_id = \"a\"\n\
         client_secret = \"b\"\nscopes = [\"email\"]\ndisplay_name = \"Corp SSO\"\n",
    );
    let mut o = opts(&dir, &[]);
    o.config_file = Some(file);
    let err = load(&o).unwrap_err();
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["oauth.providers", "oauth.providers.corp-sso.scopes"]);
    assert_eq!(err.first().value.as_deref(), Some("Bad_Name"));
    assert!(
        err.first().location.as_deref().unwrap().ends_with(":2"),
        "{err:?}"
    );
    assert!(
        err.problems()[1]
            .location
            .as_deref()
            .unwrap()
            .ends_with(":10"),
        "{err:?}"
    );
}

#[test]
fn sample_config_file_loads_and_equals_the_defaults() {
    let dir = TempDir::new();
    let mut o = opts(&dir, &[]);
    o.config_file = Some(dir.write("rustchat.toml", SAMPLE));
    let loaded = load(&o).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let mut sample = loaded.config;
    let defaults = load_env(&[]).unwrap().config;
    sample.cluster.node_id.clone_from(&defaults.cluster.node_id);
    assert_eq!(sample, defaults);
    // Every non-secret key with a fixed default is written out in the sample.
    let derived = [
        "database_url",
        "redis_url",
        "site_url",
        "jwt_secret",
        "encryption_key",
        "db_pool.max_connections",
        "files.dir",
        "cluster.node_id",
    ];
    for key in config_keys() {
        let field = key.rsplit('.').next().unwrap();
        let written = SAMPLE
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("{field} =")));
        let commented = SAMPLE
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("# {field} =")));
        if derived.contains(&key.as_str()) {
            assert!(commented, "{key} is shown commented out in the sample");
        } else {
            assert!(written, "{key} is set in the sample");
        }
    }
}

#[test]
fn env_example_placeholders_fail_and_real_secrets_pass() {
    let dir = TempDir::new();
    dir.write(".env", ENV_EXAMPLE);
    let err = load(&opts(&dir, &[])).unwrap_err();
    let names: Vec<&str> = err.problems().iter().map(ConfigProblem::name).collect();
    assert_eq!(
        names,
        ["RUSTCHAT_JWT_SECRET", "RUSTCHAT_ENCRYPTION_KEY"],
        "{err}"
    );
    assert!(!err.to_string().contains("changeme-"), "{err}");
    let (jwt, enc) = (strong_secret(), strong_secret());
    let loaded = load(&opts(
        &dir,
        &[
            ("RUSTCHAT_JWT_SECRET", &jwt),
            ("RUSTCHAT_ENCRYPTION_KEY", &enc),
        ],
    ))
    .unwrap();
    assert!(loaded.config.is_production());
    assert_eq!(
        loaded.config.redis_url.as_deref(),
        Some("redis://redis:6379")
    );
    // Only site_url warns (CHAT-R32): the runbook's Redis is the cluster bus.
    let keys: Vec<&str> = loaded.warnings.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(keys, ["site_url"]);
}

#[test]
fn config_keys_cover_every_typed_field() {
    let c = load_env(&[]).unwrap().config;
    let typed: Vec<String> = c.entries().into_keys().collect();
    assert_eq!(typed, config_keys());
    for key in reloadable_keys() {
        assert!(config_keys().contains(&(*key).to_owned()), "{key}");
    }
}

#[test]
fn reload_applies_reloadable_keys_and_reports_restart_keys() {
    let dir = TempDir::new();
    let file = dir.write(
        "rustchat.toml",
        "[security]\nrate_limit_auth_per_minute = 10\n",
    );
    let mut o = opts(&dir, &[]);
    o.config_file = Some(file.clone());
    let current = load(&o).unwrap().config;
    std::fs::write(
        &file,
        "[security]\nrate_limit_auth_per_minute = 25\n[server]\nport = 4000\n\
         [log]\nformat = \"pretty\"\n",
    )
    .unwrap();
    let result = reload(&o, &current).unwrap();
    assert_eq!(result.config.security.rate_limit_auth_per_minute, 25);
    assert_eq!(result.config.log.format, LogFormat::Pretty);
    assert_eq!(
        result.config.server.port, 3000,
        "a restart key keeps its running value"
    );
    assert_eq!(result.restart_required, ["server.port"]);
    assert_eq!(
        result.applied,
        ["log.format", "security.rate_limit_auth_per_minute"]
    );
    assert_eq!(result.config.cluster.node_id, current.cluster.node_id);
}

#[test]
fn reload_of_unchanged_sources_changes_nothing() {
    let dir = TempDir::new();
    let o = opts(&dir, &[]);
    let current = load(&o).unwrap().config;
    let result = reload(&o, &current).unwrap();
    assert!(result.applied.is_empty() && result.restart_required.is_empty());
    assert_eq!(result.config, current);
}

#[test]
fn reload_with_an_invalid_value_is_an_error() {
    let dir = TempDir::new();
    let file = dir.write("rustchat.toml", "[ws]\nsend_queue_messages = 256\n");
    let mut o = opts(&dir, &[]);
    o.config_file = Some(file.clone());
    let current = load(&o).unwrap().config;
    std::fs::write(
        &file,
        "[ws]\nsend_queue_messages = 8\n[security]\nrate_limit_ws_per_minute = 99\n",
    )
    .unwrap();
    let err = reload(&o, &current).unwrap_err();
    assert_eq!(err.first().key, "ws.send_queue_messages");
}

#[test]
fn reload_rereads_the_dotenv_file() {
    let dir = TempDir::new();
    let o = opts(&dir, &[]);
    let current = load(&o).unwrap().config;
    dir.write(".env", "RUSTCHAT_SECURITY_RATE_LIMIT_WS_PER_MINUTE=60\n");
    let result = reload(&o, &current).unwrap();
    assert_eq!(result.config.security.rate_limit_ws_per_minute, 60);
}

#[test]
fn loading_never_creates_files() {
    let dir = TempDir::new();
    let data = dir.0.join("data");
    let data_text = data.display().to_string();
    load(&opts(&dir, &[("RUSTCHAT_DATA_DIR", &data_text)])).unwrap();
    assert!(!data.exists());
}
