//! End-to-end tests of the config boundary: text in, one-line error or valid config out
//! (MNG-T01, T02, T03, T26, T28 at the library level).

use super::*;

const EXAMPLE: &str = include_str!("../../../../configs/mongoose.yaml");

fn valid_base() -> &'static str {
    "name: t\n\
     eventFeeds:\n\
     \x20 - name: in\n\
     \x20   type: memory\n\
     eventSinks:\n\
     \x20 - name: out\n\
     \x20   type: memory\n\
     eventHandlers:\n\
     \x20 - agentName: g\n\
     \x20   processors:\n\
     \x20     p:\n\
     \x20       type: log\n\
     \x20       feeds: [in]\n"
}

fn check(yaml: &str) -> Result<ServerConfig, ConfigError> {
    let cfg = from_yaml_str(yaml, "server.yaml")?;
    validate(&cfg, &KnownTypes::builtin())?;
    Ok(cfg)
}

#[test]
fn example_config_parses_and_validates() {
    let cfg = check(EXAMPLE).unwrap();
    assert_eq!(cfg.name, "example");
    assert_eq!(cfg.event_feeds.len(), 3);
    assert_eq!(cfg.pipes[0].effective_sink_name(), "big-orders.sink");
    let order: Vec<&str> = cfg.event_handlers[0]
        .processors
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(order, ["trace", "big-orders", "server-errors"]);
    assert_eq!(cfg.admin.address.to_string(), "127.0.0.1:9200");
}

#[test]
fn example_config_loads_from_file() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let path = format!("{dir}/../../configs/mongoose.yaml");
    if std::path::Path::new(&path).exists() {
        let cfg = from_yaml_file(&path).unwrap();
        assert_eq!(cfg, from_yaml_str(EXAMPLE, "x").unwrap());
    }
}

#[test]
fn base_config_is_valid() {
    check(valid_base()).unwrap();
}

#[test]
fn misspelled_key_reports_file_line_path_and_expected_keys() {
    let yaml = valid_base().replace(
        "    type: memory\neventSinks",
        "    queueCapcity: 8\neventSinks",
    );
    let err = from_yaml_str(&yaml, "server.yaml").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("server.yaml:4: eventFeeds[0].queueCapcity: unknown key (expected one of name, type, critical"),
        "{text}"
    );
    assert!(!text.contains('\n'));
}

#[test]
fn misspelled_top_level_key_reports_its_line() {
    let err = from_yaml_str("name: a\n\nshutdwn: {}\n", "s.yaml").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("s.yaml:3: shutdwn: unknown key (expected one of name,"),
        "{err}"
    );
}

#[test]
fn misspelled_processor_key_reports_the_processor_path() {
    let yaml = valid_base().replace("feeds: [in]", "feedz: [in]");
    let err = from_yaml_str(&yaml, "server.yaml").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("server.yaml:13: eventHandlers[0].processors.p.feedz: unknown key"),
        "{err}"
    );
}

#[test]
fn wrong_value_type_reports_line_and_path() {
    let err = from_yaml_str("ioThreads: many\n", "s.yaml").unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("s.yaml:1: ioThreads: "), "{text}");
}

#[test]
fn missing_required_key_names_it() {
    let err = from_yaml_str("eventFeeds:\n  - name: f\n", "s.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "s.yaml:2: eventFeeds[0].type: missing required key"
    );
}

#[test]
fn yaml_syntax_error_reports_line() {
    let err = from_yaml_str("name: a\neventFeeds: [\n", "s.yaml").unwrap_err();
    assert!(
        matches!(err, ConfigError::Parse { line: Some(_), .. }),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("s.yaml:"), "{err}");
}

#[test]
fn queue_capacity_not_a_power_of_two_names_path_and_value() {
    let yaml = valid_base().replace(
        "    type: memory\neventSinks",
        "    type: memory\n    queueCapacity: 1000\neventSinks",
    );
    let err = check(&yaml).unwrap_err();
    assert_eq!(
        err.to_string(),
        "eventFeeds[0].queueCapacity = 1000: must be a power of two in 2..=1048576 (e.g. 1024)"
    );
}

#[test]
fn unknown_type_lists_the_registered_ones() {
    let yaml = valid_base().replacen("type: memory", "type: kafka", 1);
    let err = check(&yaml).unwrap_err();
    assert_eq!(
        err.to_string(),
        "eventFeeds[0].type = kafka: unknown feed type (expected one of file, http, memory, redis-stream, stdin, tcp, timer)"
    );
}

#[test]
fn user_registered_type_is_accepted_and_unregistered_is_not() {
    let yaml = valid_base().replace("type: log", "type: enrich");
    let mut known = KnownTypes::builtin();
    let cfg = from_yaml_str(&yaml, "s.yaml").unwrap();
    let err = validate(&cfg, &known).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("eventHandlers[0].processors.p.type = enrich: unknown processor type"),
        "{err}"
    );
    known.insert(TypeKind::Processor, "enrich");
    validate(&cfg, &known).unwrap();
}

#[test]
fn feature_gated_type_names_the_feature() {
    let yaml = valid_base().replacen("type: memory", "type: redis-stream", 1);
    let cfg = from_yaml_str(&yaml, "s.yaml").unwrap();
    let mut known = KnownTypes::new();
    known
        .insert(TypeKind::Sink, "memory")
        .insert(TypeKind::Processor, "log");
    known
        .feature_gated
        .insert("redis-stream".into(), "redis".into());
    let err = validate(&cfg, &known).unwrap_err();
    assert!(
        err.to_string().contains("needs cargo feature `redis`"),
        "{err}"
    );
}

#[test]
fn processor_feed_must_name_a_feed_or_pipe() {
    let yaml = valid_base().replace("feeds: [in]", "feeds: [in, nope]");
    let err = check(&yaml).unwrap_err();
    assert_eq!(
        err.to_string(),
        "eventHandlers[0].processors.p.feeds[1] = nope: unknown feed (expected one of the eventFeeds or pipes: in)"
    );
    let piped = format!(
        "{}pipes: [{{name: nope}}]\n",
        valid_base().replace("feeds: [in]", "feeds: [in, nope]")
    );
    check(&piped).unwrap();
}

#[test]
fn non_loopback_admin_without_token_is_rejected() {
    let yaml = format!("{}admin: {{address: 0.0.0.0:9200}}\n", valid_base());
    let err = check(&yaml).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "admin.address = 0.0.0.0:9200: a non-loopback address requires admin.token"
        ),
        "{err}"
    );
    let with_token = format!(
        "{}admin: {{address: 0.0.0.0:9200, token: 0123456789abcdef}}\n",
        valid_base()
    );
    check(&with_token).unwrap();
}

#[test]
fn core_id_outside_affinity_fails_only_under_strict() {
    let strict = format!(
        "{}agentThreads: [{{agentName: g, coreId: 99}}]\n",
        valid_base()
    );
    let err = check(&strict).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("agentThreads[0].coreId = 99: core not in the process affinity set"),
        "{err}"
    );
    let best_effort = format!("{strict}pinning: best-effort\n");
    check(&best_effort).unwrap();
}

#[test]
fn env_substitution_applies_to_yaml_strings() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let yaml = format!(
        "{}admin: {{token: \"${{env:CARGO_MANIFEST_DIR}}\"}}\n",
        valid_base()
    );
    let cfg = from_yaml_str(&yaml, "s.yaml").unwrap();
    assert_eq!(cfg.admin.token, Some(dir));
}

#[test]
fn unset_env_variable_is_a_parse_error_naming_it() {
    let err = from_yaml_str("name: ${env:MONGOOSE_TEST_NOT_SET_ANYWHERE}\n", "s.yaml").unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("s.yaml:1: name: "), "{text}");
    assert!(text.contains("MONGOOSE_TEST_NOT_SET_ANYWHERE"), "{text}");
}

#[test]
fn file_substitution_reads_trimmed_contents_anywhere_in_strings() {
    let dir = std::env::temp_dir().join(format!("mongoose-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("token");
    std::fs::write(&secret, "abcdefghijklmnop\n").unwrap();
    let policy = dir.join("policy");
    std::fs::write(&policy, "drop-oldest").unwrap();
    let yaml = format!(
        "{}admin: {{token: \"${{file:{}}}\"}}\npipes: [{{name: p, backpressure: \"${{file:{}}}\"}}]\n",
        valid_base(),
        secret.display(),
        policy.display()
    );
    let cfg = check(&yaml).unwrap();
    assert_eq!(cfg.admin.token.as_deref(), Some("abcdefghijklmnop"));
    assert_eq!(cfg.pipes[0].backpressure.policy, PolicyConfig::DropOldest);
    std::fs::remove_dir_all(&dir).unwrap();
    let err = from_yaml_str(&yaml, "s.yaml").unwrap_err();
    assert!(
        err.to_string().contains(&secret.display().to_string()),
        "{err}"
    );
}

#[test]
fn substitution_reaches_type_config_maps() {
    let yaml = valid_base().replace(
        "    type: memory\neventHandlers",
        "    type: memory\n    config: {x: [\"${env:MONGOOSE_TEST_NOT_SET_ANYWHERE}\"]}\neventHandlers",
    );
    let err = from_yaml_str(&yaml, "s.yaml").unwrap_err();
    assert!(err.to_string().contains("eventSinks[0].config"), "{err}");
    assert!(
        err.to_string().contains("x: [0]: environment variable"),
        "{err}"
    );
}

#[test]
fn oversized_text_is_rejected_before_parsing() {
    let text = format!("name: a\n#{}\n", "x".repeat(MAX_CONFIG_BYTES));
    let err = from_yaml_str(&text, "big.yaml").unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().starts_with("big.yaml: config is "), "{err}");
}

#[test]
fn alias_bomb_is_rejected() {
    let mut yaml = String::from(
        "eventFeeds:\n  - name: f\n    type: memory\n    config:\n      a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n",
    );
    for i in 1..8 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        yaml.push_str(&format!("      a{i}: &a{i} [{refs}]\n"));
    }
    let err = from_yaml_str(&yaml, "bomb.yaml").unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("bomb.yaml:"), "{text}");
    assert!(text.contains("alias") || text.contains("budget"), "{text}");
}

#[test]
fn missing_file_is_a_read_error_naming_it() {
    let err = from_yaml_file("/nonexistent/mongoose.yaml").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/mongoose.yaml: cannot read config"),
        "{err}"
    );
}

#[test]
fn yaml_one_one_booleans_are_not_booleans() {
    let err = from_yaml_str("latency: {enabled: yes}\n", "s.yaml").unwrap_err();
    assert!(
        err.to_string().starts_with("s.yaml:1: latency.enabled: "),
        "{err}"
    );
}

#[test]
fn duplicate_keys_are_rejected_with_a_line() {
    let err = from_yaml_str("name: a\nname: b\n", "s.yaml").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("s.yaml:2: duplicate key `name`"),
        "{err}"
    );
    let yaml = valid_base().replace("      p:\n", "      p:\n        type: log\n      p:\n");
    let err = from_yaml_str(&yaml, "s.yaml").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("s.yaml:13: eventHandlers[0].processors: duplicate key `p`"),
        "{err}"
    );
}

#[test]
fn reload_of_max_batch_and_policy_is_applied() {
    let old = check(valid_base()).unwrap();
    let new_yaml = valid_base()
        .replace("  - agentName: g\n", "  - agentName: g\n    maxBatch: 4\n")
        .replace(
            "    type: memory\neventSinks",
            "    type: memory\n    backpressure: drop-oldest\neventSinks",
        );
    let new = check(&new_yaml).unwrap();
    let d = diff(&old, &new);
    assert!(!d.is_rejected(), "{d:?}");
    assert_eq!(
        d.reloadable_changes,
        ["eventFeeds[0].backpressure", "eventHandlers[0].maxBatch"]
    );
}

#[test]
fn reload_with_unknown_key_is_a_parse_error() {
    let yaml = format!("{}bogus: 1\n", valid_base());
    assert!(matches!(check(&yaml), Err(ConfigError::Parse { .. })));
}

#[test]
fn reload_adding_a_feed_is_rejected_naming_it() {
    let old = check(valid_base()).unwrap();
    let new_yaml = valid_base().replace(
        "eventSinks:",
        "  - name: extra\n    type: memory\neventSinks:",
    );
    let new = check(&new_yaml).unwrap();
    let d = diff(&old, &new);
    assert!(d.is_rejected());
    assert_eq!(d.rejected_keys, ["eventFeeds[1] (added \"extra\")"]);
}
