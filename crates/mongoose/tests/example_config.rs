//! The shipped configs and the embedded example: MNG-T01 (`--check` on configs/mongoose.yaml
//! and configs/mongoose-ingest.yaml while the admin port is taken), MNG-T21 (the example
//! config's `/metrics`: base labels, every §5.1 family, promtool), MNG-T03 (admin address
//! and pinning validation) and the flow of examples/embedded.rs through the library.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/mongoose.yaml");
const INGEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../configs/mongoose-ingest.yaml"
);

/// Every §5.1 family except the `alloc-count` ones (`mongoose_hot_path_allocations_total`,
/// `mongoose_process_allocations_total`).
const FAMILIES: [&str; 41] = [
    "mongoose_feed_published_total",
    "mongoose_feed_unrouted_total",
    "mongoose_queue_enqueued_total",
    "mongoose_queue_consumed_total",
    "mongoose_queue_depth",
    "mongoose_queue_capacity",
    "mongoose_queue_backlog_threshold",
    "mongoose_feed_dropped_total",
    "mongoose_feed_block_timeouts_total",
    "mongoose_feed_blocked_seconds_total",
    "mongoose_feed_connected",
    "mongoose_feed_decode_errors_total",
    "mongoose_feed_acked_total",
    "mongoose_batches_total",
    "mongoose_agent_duty_cycles_total",
    "mongoose_agent_idle_cycles_total",
    "mongoose_agent_idle_state",
    "mongoose_agent_heartbeat_age_seconds",
    "mongoose_agent_core",
    "mongoose_processor_events_total",
    "mongoose_processor_errors_total",
    "mongoose_processor_retries_total",
    "mongoose_processor_unrouted_total",
    "mongoose_quarantined_total",
    "mongoose_quarantine_write_failures_total",
    "mongoose_handler_latency_seconds",
    "mongoose_sink_sent_total",
    "mongoose_sink_written_total",
    "mongoose_sink_errors_total",
    "mongoose_sink_rejected_total",
    "mongoose_sink_evicted_total",
    "mongoose_sink_queue_depth",
    "mongoose_sink_circuit_state",
    "mongoose_sink_circuit_transitions_total",
    "mongoose_timers_fired_total",
    "mongoose_service_up",
    "mongoose_shutdown_undrained_total",
    "mongoose_config_reloads_total",
    "mongoose_admin_commands_total",
    "mongoose_ready",
    "mongoose_process_resident_memory_bytes",
];

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mongoose-server")
}

/// The binary with no MONGOOSE_*/RON_* variables from the caller's environment.
fn command(args: &[&str], dir: &Path) -> Command {
    let mut cmd = test_support::command(Path::new(bin()), &[]);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("MONGOOSE_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args).current_dir(dir);
    cmd
}

/// A spawned `mongoose-server`, killed when dropped; its stdout and stderr lines arrive on
/// one channel as ("out"|"err", line).
struct Server {
    child: std::process::Child,
    lines: Receiver<(&'static str, String)>,
    seen: Vec<(&'static str, String)>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn spawn(mut cmd: Command) -> Server {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn mongoose-server");
        let (tx, lines) = channel();
        let pump = |r: Box<dyn Read + Send>, tag: &'static str| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send((tag, l)).is_err() {
                        break;
                    }
                }
            });
        };
        pump(Box::new(child.stdout.take().expect("piped")), "out");
        pump(Box::new(child.stderr.take().expect("piped")), "err");
        Server {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first JSON log line (stdout or stderr) whose `message` is `message`.
    fn wait_log(&mut self, message: &str, limit: Duration) -> Value {
        let hit = |l: &str| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(|v| v["message"] == message)
        };
        if let Some(v) = self.seen.iter().find_map(|(_, l)| hit(l)) {
            return v;
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((tag, l)) => {
                    let v = hit(&l);
                    self.seen.push((tag, l));
                    if let Some(v) = v {
                        return v;
                    }
                }
                Err(_) => panic!("no {message:?} log line; output so far: {:#?}", self.seen),
            }
        }
    }

    fn admin_addr(&mut self) -> SocketAddr {
        self.wait_log("admin_listening", test_support::START_TIMEOUT)["address"]
            .as_str()
            .expect("address field")
            .parse()
            .expect("socket address")
    }

    fn sigterm(&self) {
        unsafe extern "C" {
            fn kill(pid: i32, sig: i32) -> i32;
        }
        // SAFETY: kill(2) on our own child's pid with SIGTERM has no memory effects.
        unsafe {
            kill(self.child.id() as i32, 15);
        }
    }

    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Exit code plus every stdout and stderr line, for a process expected to exit by itself.
    fn finish(mut self, limit: Duration) -> (Option<i32>, Vec<String>, Vec<String>) {
        let code = self.wait_exit(limit);
        // The pumps end once the pipes close (the process exited, or Drop kills it).
        if code.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Ok(x) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(x);
        }
        let pick = |tag: &str| -> Vec<String> {
            self.seen
                .iter()
                .filter(|(t, _)| *t == tag)
                .map(|(_, l)| l.clone())
                .collect()
        };
        (code, pick("out"), pick("err"))
    }
}

/// `mongoose-server admin --addr ADDR ARGS..`, run to completion under the kill-on-drop
/// guard: (exit code, stdout lines, stderr lines).
fn admin_cli(
    addr: SocketAddr,
    args: &[&str],
    dir: &Path,
) -> (Option<i32>, Vec<String>, Vec<String>) {
    let addr = addr.to_string();
    let mut all = vec!["admin", "--addr", addr.as_str()];
    all.extend_from_slice(args);
    Server::spawn(command(&all, dir)).finish(Duration::from_secs(30))
}

// MNG-T01: --check on both shipped configs prints `config ok` and exits 0 while the admin
// port 127.0.0.1:9200 is held (by this test, or by someone else when the bind fails).
#[test]
fn mng_t01_check_passes_on_the_shipped_configs_while_the_admin_port_is_taken() {
    let _taken = std::net::TcpListener::bind("127.0.0.1:9200");
    let dir = test_support::temp_dir("mg-example");
    for cfg in [EXAMPLE, INGEST] {
        let srv = Server::spawn(command(&["--check", "--config", cfg], &dir));
        let (code, out, err) = srv.finish(Duration::from_secs(30));
        assert_eq!(code, Some(0), "{cfg}: {err:?}");
        assert_eq!(out, ["config ok"], "{cfg}: {err:?}");
    }
}

// MNG-T21: the full example config, admin moved to an ephemeral port by the flag: /metrics
// carries the four base labels on every mongoose_ sample, every §5.1 family but the
// alloc-count ones, and passes promtool apart from the one expected `le` lint.
#[test]
fn mng_t21_the_example_config_exposes_every_family_with_base_labels() {
    let dir = test_support::temp_dir("mg-example");
    let mut srv = Server::spawn(command(
        &["--config", EXAMPLE, "--admin-addr", "127.0.0.1:0"],
        &dir,
    ));
    let admin = srv.admin_addr();
    srv.wait_log("server_ready", test_support::START_TIMEOUT);
    // An operator command first (the runbook's `… admin queues`), so the admin counter has
    // a sample too.
    let (code, _, err) = admin_cli(admin, &["queues"], &dir);
    assert_eq!(code, Some(0), "{err:?}");
    // Ready with no setup: nothing in the example config waits for a file or a peer.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready = test_support::get(admin, "/readyz", &[]);
        if ready.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "{}", ready.text());
        std::thread::sleep(Duration::from_millis(50));
    }

    let text = test_support::get(admin, "/metrics", &[]).text();
    let samples: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("mongoose_"))
        .collect();
    assert!(!samples.is_empty(), "{text}");
    for line in &samples {
        for label in [
            r#"service="mongoose""#,
            r#"instance="example""#,
            "build_version=",
            "amnesia=",
        ] {
            assert!(line.contains(label), "{label} missing: {line}");
        }
    }
    let present = |family: &str| {
        samples.iter().any(|l| {
            let name = l.split(['{', ' ']).next().unwrap_or("");
            name == family
                || name
                    .strip_prefix(family)
                    .is_some_and(|rest| ["_sum", "_count"].contains(&rest))
        })
    };
    // `mongoose_service_up` has one series per service: with none configured (this build has
    // no built-in service type the YAML could name) the family has nothing to expose.
    let (code, out, err) = admin_cli(admin, &["--json", "services.list"], &dir);
    assert_eq!(code, Some(0), "{err:?}");
    let services: Value = serde_json::from_str(&out.concat()).expect("JSON body");
    let no_services = services["output"].as_array().is_some_and(Vec::is_empty);
    let missing: Vec<&str> = FAMILIES
        .iter()
        .copied()
        .filter(|f| !present(f))
        .filter(|f| !(no_services && *f == "mongoose_service_up"))
        .collect();
    assert!(missing.is_empty(), "families missing: {missing:?}");

    if let Some(promtool) = test_support::external("promtool") {
        let (_, out, err) =
            test_support::run_with_stdin(&promtool, &["check", "metrics"], text.as_bytes());
        // Spec decision 5: `mongoose_batches_total{le}` is a counter family, which promtool
        // lints; that lint is expected and anything else fails.
        let problems: Vec<&str> = out
            .lines()
            .chain(err.lines())
            .filter(|l| !l.trim().is_empty())
            .filter(|l| {
                !l.contains(
                    r#"mongoose_batches_total non-histogram metrics should not have "le" label"#,
                )
            })
            .collect();
        assert!(problems.is_empty(), "promtool: {problems:?}");
    }
    srv.sigterm();
    assert_eq!(srv.wait_exit(Duration::from_secs(30)), Some(0));
}

/// A small config for MNG-T03: `admin.address`, `pinning` and the group's `coreId` vary.
fn pinned(admin: &str, pinning: &str, core: Option<u32>) -> String {
    let core = core
        .map(|c| format!("    coreId: {c}\n"))
        .unwrap_or_default();
    format!(
        "\
name: pin-test
pinning: {pinning}
admin: {{address: \"{admin}\"}}
eventFeeds:
  - {{name: orders, type: memory}}
eventSinks:
  - {{name: big, type: memory}}
eventHandlers:
  - agentName: pricing
    idleStrategy: sleeping-millis
{core}    processors:
      pick:
        type: filter
        feeds: [orders]
        config: {{field: amount, op: gt, value: 100, to: big}}
"
    )
}

// MNG-T03: a non-loopback admin address without a token and an unavailable core under
// `strict` exit 2 with one stderr line; under `best-effort` the same config starts, logs a
// `pinning` WARN, and drains on SIGTERM with exit 0.
#[test]
fn mng_t03_admin_address_and_pinning_are_validated() {
    let dir = test_support::temp_dir("mg-example");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write config");
        p.to_str().expect("utf-8 path").to_owned()
    };
    let exit_2_naming = |cfg: &str, needle: &str| {
        // Run mode, not --check: the server must refuse before binding anything.
        let srv = Server::spawn(command(&["--config", cfg], &dir));
        let (code, out, err) = srv.finish(Duration::from_secs(30));
        assert_eq!(code, Some(2), "{cfg}: {out:?} {err:?}");
        assert_eq!(err.len(), 1, "one stderr line: {err:?}");
        assert!(err[0].contains(needle), "{needle} not named: {err:?}");
    };

    let open = write("open.yaml", &pinned("0.0.0.0:0", "strict", None));
    exit_2_naming(&open, "admin");

    let strict = write("strict.yaml", &pinned("127.0.0.1:0", "strict", Some(99)));
    exit_2_naming(&strict, "coreId");

    let best = write("best.yaml", &pinned("127.0.0.1:0", "best-effort", Some(99)));
    let mut srv = Server::spawn(command(&["--config", &best], &dir));
    let warn = srv.wait_log("pinning", test_support::START_TIMEOUT);
    assert_eq!(warn["level"], "WARN", "{warn}");
    assert_eq!(warn["agent"], "pricing", "{warn}");
    assert_eq!(warn["core"], 99, "{warn}");
    assert_eq!(warn["ok"], false, "{warn}");
    srv.wait_log("server_ready", test_support::START_TIMEOUT);
    srv.sigterm();
    assert_eq!(srv.wait_exit(Duration::from_secs(30)), Some(0));
}

// The flow of examples/embedded.rs, through the library: a user processor type registered
// next to the built-ins, a server from YAML, a memory feed in and a memory sink out.
mod embedded_flow {
    use super::*;
    use mongoose::processor::ConfigMap;
    use mongoose::registry::{Registry, RegistryError};
    use mongoose::{
        Context, Envelope, JsonEvent, Processor, ProcessorError, Record, RunningServer, SinkHandle,
    };

    const YAML: &str = r#"
name: embedded-flow-test
admin: {address: "off"}
idleStrategy: {type: sleeping-millis, millis: 1}
eventFeeds:
  - {name: orders, type: memory}
eventSinks:
  - {name: flagged, type: memory, config: {capacity: 100}}
eventHandlers:
  - agentName: pricing
    processors:
      flag:
        type: flag-large
        feeds: [orders]
        config: {threshold: 1000, to: flagged}
"#;

    struct Flag {
        threshold: f64,
        to: String,
        out: Option<SinkHandle<Record>>,
    }

    fn parse(c: &ConfigMap) -> Result<(f64, String), String> {
        if let Some(k) = c
            .keys()
            .find(|k| !["threshold", "to"].contains(&k.as_str()))
        {
            return Err(format!("unknown key {k}"));
        }
        let t = c["threshold"].as_f64().ok_or("threshold: a number")?;
        let to = c["to"].as_str().ok_or("to: a sink name")?;
        Ok((t, to.to_owned()))
    }

    impl Processor<Record> for Flag {
        fn init(&mut self, ctx: &mut Context<'_, Record>) -> Result<(), String> {
            self.out = Some(ctx.sink(&self.to).map_err(|e| e.to_string())?);
            Ok(())
        }
        fn on_event(
            &mut self,
            env: &Envelope<Record>,
            ctx: &mut Context<'_, Record>,
        ) -> Result<(), ProcessorError> {
            match env.event().field("amount").and_then(Value::as_f64) {
                Some(a) if a >= self.threshold => {
                    let mut v = env.event().value().clone();
                    v["flagged_by"] = json!(ctx.name());
                    ctx.forward(self.out.as_ref().unwrap(), Record::new(v))
                        .map_err(|e| ProcessorError::new(format!("{e:?}")))
                }
                _ => Ok(()),
            }
        }
    }

    fn registry() -> Registry<Record> {
        let mut r = Registry::<Record>::standard();
        r.register_processor(
            "flag-large",
            |c| parse(c).map(|_| ()),
            |c| {
                let (threshold, to) = parse(c)?;
                Ok(Box::new(Flag {
                    threshold,
                    to,
                    out: None,
                }) as Box<dyn Processor<Record>>)
            },
        )
        .expect("a new type name");
        r
    }

    #[test]
    fn the_embedded_example_flow_forwards_the_large_orders() {
        let mut reg = registry();
        let dup = reg
            .register_processor("flag-large", |_| Ok(()), |_| Err("unused".into()))
            .err();
        assert!(
            matches!(dup, Some(RegistryError::Duplicate { .. })),
            "{dup:?}"
        );
        let cfg = mongoose::config::from_yaml_str(YAML, "embedded.yaml").expect("parses");
        let spec = mongoose::plan::to_spec(&cfg, &reg).expect("valid");
        let srv = RunningServer::start(spec).expect("starts");
        assert_eq!(srv.admin_addr(), None, "admin is off");
        let mut orders = srv.publisher("orders").expect("memory feed publisher");
        let customers = ["ada", "bea", "cyd"];
        for (i, amount) in [120, 1500, 80, 1000, 2400, 999].into_iter().enumerate() {
            let r = orders
                .publish(Record::new(
                    json!({"id": i, "customer": customers[i % 3], "amount": amount}),
                ))
                .expect("published");
            assert!(r.lossless(), "{r:?}");
        }
        let sink = srv.memory_sink("flagged").expect("memory sink");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut items = sink.snapshot();
        while items.len() < 3 {
            assert!(Instant::now() < deadline, "only {} flagged", items.len());
            std::thread::sleep(Duration::from_millis(5));
            items = sink.snapshot();
        }
        let got: Vec<Value> = items.iter().map(|i| i.to_json()).collect();
        assert_eq!(
            got,
            [
                json!({"id": 1, "customer": "bea", "amount": 1500, "flagged_by": "flag"}),
                json!({"id": 3, "customer": "ada", "amount": 1000, "flagged_by": "flag"}),
                json!({"id": 4, "customer": "bea", "amount": 2400, "flagged_by": "flag"}),
            ]
        );
        // Origins travel with forwarded values: feed `orders`, seq from 1.
        let origins: Vec<_> = items.iter().map(|i| i.origin()).collect();
        assert_eq!(
            origins,
            [
                Some(("orders", 2)),
                Some(("orders", 4)),
                Some(("orders", 5))
            ]
        );
        srv.shutdown(Duration::from_secs(1));
        assert!(!srv.health().ready, "not ready after shutdown");
    }
}
