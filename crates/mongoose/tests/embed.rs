//! The embedding API (MNG-R08): `ServerConfig::builder()` → `Server::from_config` (validation
//! only) → `start`, `RunningServer::reload` (MNG-R31, the library half of MNG-T26), and
//! `wrapWithNamedEvent` on the built-ins (§2.4, decision 11).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mongoose::config::ServerConfig;
use mongoose::registry::Registry;
use mongoose::reload::Outcome;
use mongoose::{Record, Server};
use serde_json::{Value, json};

fn config(name: &str, max_batch: u32, policy: &str) -> ServerConfig {
    ServerConfig::builder()
        .name(name)
        .set("admin", json!({"address": "off"}))
        .feed(json!({"name": "plain", "type": "memory", "backpressure": policy}))
        .feed(json!({"name": "named", "type": "memory", "wrapWithNamedEvent": true}))
        .sink(json!({"name": "out", "type": "memory"}))
        .group(json!({
            "agentName": "g",
            "idleStrategy": "sleeping-millis",
            "maxBatch": max_batch,
            "processors": {
                "keep": {"type": "filter", "feeds": ["plain", "named"],
                         "config": {"field": "n", "op": "exists", "to": "out"}},
                "show": {"type": "log", "feeds": ["named"], "config": {"level": "debug"}},
            },
        }))
        .build()
        .expect("builder config")
}

fn wait(what: &str, f: impl Fn() -> bool) {
    let d = Instant::now() + Duration::from_secs(10);
    while Instant::now() < d {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn built_configs_start_wrap_named_feeds_and_reload_their_reloadable_keys() {
    let srv = Server::from_config(
        config("embed-1", 64, "drop-newest"),
        Registry::<Record>::standard(),
    )
    .expect("valid")
    .start()
    .expect("starts");
    let mut plain = srv.publisher("plain").unwrap();
    let mut named = srv.publisher("named").unwrap();
    plain.publish(Record::new(json!({"n": 1}))).unwrap();
    named.publish(Record::new(json!({"n": 2}))).unwrap();
    let out = srv.memory_sink("out").unwrap();
    wait("two forwarded", || out.snapshot().len() == 2);
    let got: Vec<Value> = out.snapshot().iter().map(|i| i.to_json()).collect();
    assert!(got.contains(&json!({"n": 1})), "{got:?}");
    assert!(
        got.contains(&json!({"feed": "named", "seq": 1, "data": {"n": 2}})),
        "{got:?}"
    );

    // ok: maxBatch and a policy change through atomics.
    let out = srv.reload(config("embed-1", 4, "fail-fast"));
    assert!(
        matches!(&out, Outcome::Ok(keys) if !keys.is_empty()),
        "{out:?}"
    );
    assert_eq!(srv.group("g").unwrap().max_batch.load(Ordering::Relaxed), 4);
    let sub = srv.subscription("plain", "g").unwrap();
    assert_eq!(sub.backpressure().policy.name(), "fail-fast");
    // invalid: out of range; nothing changes.
    let out = srv.reload(config("embed-1", 0, "drop-newest"));
    assert!(
        matches!(out, Outcome::Invalid(ref e) if e.contains("maxBatch")),
        "{out:?}"
    );
    assert_eq!(srv.group("g").unwrap().max_batch.load(Ordering::Relaxed), 4);
    // rejected: a topology change (a new feed).
    let mut more = config("embed-1", 8, "drop-newest");
    more.event_feeds.push(more.event_feeds[0].clone());
    more.event_feeds[2].name = "extra".into();
    let out = srv.reload(more);
    assert!(
        matches!(&out, Outcome::Rejected { keys, .. } if keys.iter().any(|k| k.contains("eventFeeds"))),
        "{out:?}"
    );
    assert_eq!(srv.group("g").unwrap().max_batch.load(Ordering::Relaxed), 4);
    // rejected: drop-oldest needs the evicting ring chosen at start; this queue is SPSC.
    let out = srv.reload(config("embed-1", 4, "drop-oldest"));
    assert!(
        matches!(&out, Outcome::Rejected { keys, .. } if keys == &["eventFeeds[0].backpressure"]),
        "{out:?}"
    );
    assert_eq!(sub.backpressure().policy.name(), "fail-fast");
    let m = srv.metrics_text();
    for (outcome, n) in [("ok", 1.0), ("invalid", 1.0), ("rejected", 2.0)] {
        let line = m
            .lines()
            .find(|l| {
                l.starts_with("mongoose_config_reloads_total{")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .unwrap_or_else(|| panic!("no {outcome} series: {m}"));
        let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert_eq!(v, n, "{line}");
    }
    srv.shutdown(Duration::from_secs(1));
}

#[test]
fn from_config_validates_like_check_does() {
    let mut bad = config("embed-2", 64, "drop-newest");
    bad.event_handlers[0].processors[0].feeds = vec!["nope".into()];
    let e = Server::from_config(bad, Registry::<Record>::standard())
        .err()
        .expect("unknown feed")
        .to_string();
    assert!(e.contains("nope"), "{e}");
    let e = ServerConfig::builder()
        .set("healthh", json!({}))
        .build()
        .unwrap_err()
        .to_string();
    assert!(e.contains("healthh"), "{e}");
}

fn loop_config(name: &str, pipe_policy: &str) -> ServerConfig {
    ServerConfig::builder()
        .name(name)
        .set("admin", json!({"address": "off"}))
        .feed(json!({"name": "in", "type": "memory"}))
        .pipe(json!({"name": "p", "backpressure": pipe_policy}))
        .sink(json!({"name": "out", "type": "memory"}))
        .group(json!({
            "agentName": "g",
            "idleStrategy": "sleeping-millis",
            "processors": {
                "relay": {"type": "filter", "feeds": ["in"],
                          "config": {"field": "n", "op": "exists", "to": "p.sink"}},
                "drain": {"type": "filter", "feeds": ["p"],
                          "config": {"field": "n", "op": "exists", "to": "out"}},
            },
        }))
        .build()
        .expect("builder config")
}

// MNG-R23/R28: a group sending into a pipe it consumes under `block` would wait on itself,
// so startup refuses it; with a dropping policy the loop runs and delivers through the pipe.
#[test]
fn a_group_cannot_block_on_a_pipe_it_consumes_but_may_drop() {
    let e = Server::from_config(
        loop_config("embed-loop", "block"),
        Registry::<Record>::standard(),
    )
    .expect("valid config")
    .start()
    .err()
    .expect("refused");
    assert_eq!(e.component, "group 'g'");
    assert!(e.error.contains("pipe 'p'"), "{}", e.error);

    let srv = Server::from_config(
        loop_config("embed-loop-ok", "drop-newest"),
        Registry::<Record>::standard(),
    )
    .unwrap()
    .start()
    .expect("starts");
    srv.publisher("in")
        .unwrap()
        .publish(Record::new(json!({"n": 1})))
        .unwrap();
    let out = srv.memory_sink("out").unwrap();
    wait("delivered through the pipe", || out.snapshot().len() == 1);
    assert_eq!(out.snapshot()[0].to_json(), json!({"n": 1}));
    assert_eq!(
        srv.admin().exec("event-sources", &[]).unwrap()[1]["type"],
        "pipe"
    );
    srv.shutdown(Duration::from_secs(1));
}

// MNG-T23: an idle `sleeping-millis` group reports `parked` and its idle cycles keep growing.
#[test]
fn an_idle_sleeping_group_is_parked_and_keeps_cycling() {
    let srv = Server::from_config(
        config("embed-idle", 64, "drop-newest"),
        Registry::<Record>::standard(),
    )
    .unwrap()
    .start()
    .unwrap();
    let parked = r#"mongoose_agent_idle_state{agent="g",state="parked"}"#;
    let working = r#"mongoose_agent_idle_state{agent="g",state="working"}"#;
    let idle = r#"mongoose_agent_idle_cycles_total{agent="g"}"#;
    wait("parked", || {
        test_support::sample_value(&srv.metrics_text(), parked) == 1.0
    });
    assert_eq!(
        test_support::sample_value(&srv.metrics_text(), working),
        0.0
    );
    let first = test_support::sample_value(&srv.metrics_text(), idle);
    wait("idle cycles growing", || {
        test_support::sample_value(&srv.metrics_text(), idle) > first + 2.0
    });
    srv.shutdown(Duration::from_secs(1));
}
