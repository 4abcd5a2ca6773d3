//! `--print-config`: the effective config as YAML, with secrets as `***` (spec §2.2, §7).
//!
//! Redacted: `admin.token`; any type-specific `config` key (at any depth) whose name contains
//! `token`, `password`, `secret` or `authorization` (case-insensitive); and the userinfo of
//! any URL-looking string (`redis://user:pw@host` → `redis://***@host`).

use serde_json::{Map, Value};

use super::schema::ServerConfig;

/// What redacted values print as.
pub const REDACTED: &str = "***";

/// Key-name fragments whose values are secrets.
const SECRET_KEY_PARTS: &[&str] = &["token", "password", "secret", "authorization"];

/// Renders `cfg` (every default filled in) as YAML with secrets redacted.
pub fn print_yaml(cfg: &ServerConfig) -> String {
    let red = redacted(cfg);
    serde_saphyr::to_string(&red).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
}

/// A copy of `cfg` with every secret replaced by [`REDACTED`].
pub fn redacted(cfg: &ServerConfig) -> ServerConfig {
    let mut c = cfg.clone();
    if c.admin.token.is_some() {
        c.admin.token = Some(REDACTED.to_owned());
    }
    for f in &mut c.event_feeds {
        redact_map(&mut f.config);
    }
    for s in &mut c.event_sinks {
        redact_map(&mut s.config);
    }
    for s in &mut c.services {
        redact_map(&mut s.config);
    }
    for g in &mut c.event_handlers {
        for p in &mut g.processors {
            redact_map(&mut p.config);
        }
    }
    c
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEY_PARTS.iter().any(|p| key.contains(p))
}

fn redact_map(map: &mut Map<String, Value>) {
    for (key, value) in map.iter_mut() {
        if is_secret_key(key) && !value.is_null() {
            *value = Value::String(REDACTED.to_owned());
        } else {
            redact_value(value);
        }
    }
}

fn redact_value(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let Some(r) = redact_userinfo(s) {
                *s = r;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::Object(map) => redact_map(map),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// `scheme://user:pw@host/...` → `scheme://***@host/...`; `None` when there is no userinfo.
pub fn redact_userinfo(url: &str) -> Option<String> {
    let scheme_end = url.find("://")?;
    let scheme = &url[..scheme_end];
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return None;
    }
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    Some(format!("{}://{REDACTED}@{}", scheme, &rest[at + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::{FeedConfig, SinkConfig};
    use serde_json::json;

    fn secretive() -> ServerConfig {
        let mut c = ServerConfig::default();
        c.admin.token = Some("0123456789abcdef-very-secret".into());
        let Value::Object(feed_cfg) = json!({
            "url": "redis://user:hunter2@redis.local:6379/0",
            "stream": "events",
            "tls": {"keyPassword": "pw1"},
        }) else {
            unreachable!()
        };
        c.event_feeds.push(FeedConfig {
            name: "r".into(),
            type_name: "redis-stream".into(),
            critical: true,
            broadcast: false,
            wrap_with_named_event: false,
            queue_capacity: 1024,
            backpressure: Default::default(),
            backlog_threshold: None,
            agent_name: None,
            idle_strategy: None,
            config: feed_cfg,
        });
        let Value::Object(sink_cfg) = json!({
            "url": "https://hooks.local/x",
            "token": "t0k3n",
            "headers": {"Authorization": "Bearer abc"},
        }) else {
            unreachable!()
        };
        c.event_sinks.push(SinkConfig {
            name: "h".into(),
            type_name: "http".into(),
            critical: true,
            queue_capacity: 1024,
            agent_name: None,
            idle_strategy: None,
            circuit_breaker: None,
            config: sink_cfg,
        });
        c
    }

    #[test]
    fn print_redacts_tokens_passwords_and_url_userinfo() {
        let text = print_yaml(&secretive());
        for secret in [
            "very-secret",
            "hunter2",
            "user:",
            "pw1",
            "t0k3n",
            "Bearer abc",
        ] {
            assert!(!text.contains(secret), "{secret} leaked:\n{text}");
        }
        assert!(text.contains("redis://***@redis.local:6379/0"), "{text}");
        assert!(text.contains("https://hooks.local/x"), "{text}");
    }

    #[test]
    fn printed_config_parses_back_to_the_redacted_config() {
        let cfg = secretive();
        let text = print_yaml(&cfg);
        let back = crate::config::from_yaml_str(&text, "printed").unwrap();
        assert_eq!(back, redacted(&cfg));
    }

    #[test]
    fn userinfo_redaction_leaves_plain_urls_alone() {
        assert_eq!(redact_userinfo("http://host/a@b"), None);
        assert_eq!(redact_userinfo("not a url"), None);
        assert_eq!(
            redact_userinfo("rediss://:pw@h:1").as_deref(),
            Some("rediss://***@h:1")
        );
    }
}
