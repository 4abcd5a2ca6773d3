//! The admin surface (spec §3.1, MNG-R13, R14): MNG-T18 (every command and its shape,
//! unknown commands, `processors.stop`, 405 on `/metrics`), MNG-T19 (token, open
//! `/metrics`, 504 on a wedged group) and MNG-T20 (the `mongoose-server admin` client).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mongoose::admin::{AdminSpec, COMMANDS};
use mongoose::{
    Context, Envelope, FeedSpec, GroupSpec, IdleStrategy, ProcSpec, Processor, ProcessorError,
    RetryPolicy, RunningServer, ServerSpec,
};
use serde_json::{Value, json};
use test_support::{Response, http_raw};

/// Counts its lifecycle calls; blocks in `on_event` while `wedge` is set.
struct Probe {
    stops: Arc<AtomicU32>,
    teardowns: Arc<AtomicU32>,
    wedge: Arc<AtomicBool>,
}

impl Processor<u64> for Probe {
    fn on_event(
        &mut self,
        _: &Envelope<u64>,
        _: &mut Context<'_, u64>,
    ) -> Result<(), ProcessorError> {
        while self.wedge.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }
    fn stop(&mut self, _: &mut Context<'_, u64>) {
        self.stops.fetch_add(1, Ordering::SeqCst);
    }
    fn tear_down(&mut self) {
        self.teardowns.fetch_add(1, Ordering::SeqCst);
    }
}

struct Probes {
    stops: Arc<AtomicU32>,
    teardowns: Arc<AtomicU32>,
    wedge: Arc<AtomicBool>,
}

fn group(name: &'static str, procs: &[&'static str], p: &Probes) -> GroupSpec<u64> {
    GroupSpec {
        name,
        idle: IdleStrategy::SleepingMillis { millis: 1 },
        core_id: None,
        max_batch: 64,
        max_timers: 16,
        retry: RetryPolicy::default(),
        processors: procs
            .iter()
            .map(|n| {
                let (s, t, w) = (p.stops.clone(), p.teardowns.clone(), p.wedge.clone());
                ProcSpec {
                    name: n,
                    factory: Box::new(move || {
                        Ok(Box::new(Probe {
                            stops: s,
                            teardowns: t,
                            wedge: w,
                        }) as Box<dyn Processor<u64>>)
                    }),
                    feeds: vec!["in".into()],
                    critical: true,
                    enabled: true,
                    config: Default::default(),
                }
            })
            .collect(),
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn server(name: &str, token: Option<&str>, timeout: Duration) -> (RunningServer<u64>, Probes) {
    let p = Probes {
        stops: Arc::default(),
        teardowns: Arc::default(),
        wedge: Arc::default(),
    };
    let (a, b, c) = (
        leak(format!("{name}-a")),
        leak(format!("{name}-b")),
        leak(format!("{name}-p2")),
    );
    let spec = ServerSpec {
        name: name.into(),
        feeds: vec![FeedSpec::memory("in")],
        groups: vec![
            group(a, &[leak(format!("{name}-p1")), c], &p),
            group(b, &[leak(format!("{name}-p3"))], &p),
        ],
        admin: AdminSpec {
            address: Some("127.0.0.1:0".parse().unwrap()),
            token: token.map(str::to_string),
            command_timeout: timeout,
        },
        ..Default::default()
    };
    (RunningServer::start(spec).expect("server starts"), p)
}

fn call(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &str) -> Response {
    let mut raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        raw.push_str(h);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    http_raw(addr, raw.as_bytes(), false).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn json_of(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

fn cmd(addr: SocketAddr, name: &str, args: &[&str], auth: &[&str]) -> Response {
    let mut h = vec!["Content-Type: application/json"];
    h.extend_from_slice(auth);
    call(
        addr,
        "POST",
        &format!("/admin/commands/{name}"),
        &h,
        &json!({ "args": args }).to_string(),
    )
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

// MNG-T18.
#[test]
fn every_command_answers_with_its_documented_shape() {
    let (srv, probes) = server("adm-shapes", None, Duration::from_secs(2));
    let addr = srv.admin_addr().expect("admin bound");
    let mut publisher = srv.publisher("in").unwrap();
    for i in 0..5 {
        publisher.publish(i).unwrap();
    }
    wait("5 events consumed", || {
        srv.subscriptions()
            .iter()
            .all(|s| s.consumed.load(Ordering::Relaxed) == 5)
    });

    let list = call(addr, "GET", "/admin/commands", &[], "");
    assert_eq!(list.status, 200, "{}", list.text());
    let names: Vec<String> = json_of(&list)["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert!(c["args"].is_string() && c["help"].is_string(), "{c}");
            c["name"].as_str().unwrap().to_string()
        })
        .collect();
    for (n, ..) in COMMANDS {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }

    let ok = |name: &str, args: &[&str]| -> Value {
        let r = cmd(addr, name, args, &["X-Correlation-Id: corr-123"]);
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        assert_eq!(r.header("x-correlation-id"), Some("corr-123"));
        let v = json_of(&r);
        assert_eq!(v["command"], name);
        assert_eq!(v["ok"], true);
        assert_eq!(v["corr_id"], "corr-123");
        v["output"].clone()
    };
    assert!(ok("help", &[])["commands"].as_array().unwrap().len() >= 15);
    assert_eq!(ok("help", &["queues"])["commands"][0]["name"], "queues");
    let sorted = ok("commands", &[])["commands"].clone();
    let mut expect: Vec<&str> = COMMANDS.iter().map(|(n, ..)| *n).collect();
    expect.sort_unstable();
    assert_eq!(sorted, json!(expect));

    let sources = ok("event-sources", &[]);
    let f = &sources[0];
    for k in [
        "name",
        "type",
        "critical",
        "connected",
        "broadcast",
        "policy",
        "published",
        "subscriptions",
    ] {
        assert!(f.get(k).is_some(), "event-sources lacks {k}: {f}");
    }
    assert_eq!(f["published"], 5);
    assert_eq!(f["type"], "memory");
    let sub = &f["subscriptions"][0];
    for k in [
        "group",
        "processors",
        "depth",
        "capacity",
        "dropped",
        "state",
    ] {
        assert!(sub.get(k).is_some(), "subscription lacks {k}: {sub}");
    }
    assert_eq!(sub["processors"], json!(["adm-shapes-p1", "adm-shapes-p2"]));

    assert_eq!(ok("services.list", &[]), json!([]));
    let procs = ok("processors.list", &[]);
    assert_eq!(procs.as_array().unwrap().len(), 3);
    for k in [
        "name",
        "group",
        "type",
        "state",
        "feeds",
        "events",
        "errors",
        "retries",
        "quarantined",
    ] {
        assert!(procs[0].get(k).is_some(), "processors.list lacks {k}");
    }
    assert_eq!(procs[0]["events"], 5);
    assert_eq!(procs[0]["state"], "running");

    let lat = ok("latency.status", &[]);
    assert_eq!(lat["enabled"], true);
    let row = &lat["processors"][0];
    for k in ["name", "group", "interval", "cumulative"] {
        assert!(row.get(k).is_some(), "latency row lacks {k}");
    }
    assert_eq!(row["cumulative"]["count"], 5, "{row}");
    for k in ["count", "p50", "p90", "p99", "p999", "max"] {
        assert!(row["interval"].get(k).is_some(), "interval lacks {k}");
    }
    let one = ok("latency.status", &["adm-shapes-p3"]);
    assert_eq!(one["processors"].as_array().unwrap().len(), 1);
    assert_eq!(ok("latency.disable", &[]), json!({"enabled": false}));
    assert_eq!(ok("latency.status", &[])["enabled"], false);
    assert_eq!(ok("latency.enable", &[]), json!({"enabled": true}));
    assert_eq!(ok("latency.reset", &[]), json!({"reset": true}));
    assert_eq!(
        ok("latency.status", &[])["processors"][0]["cumulative"]["count"],
        0
    );

    let queues = ok("queues", &[]);
    assert_eq!(queues.as_array().unwrap().len(), 2);
    for k in [
        "feed",
        "group",
        "kind",
        "capacity",
        "depth",
        "threshold",
        "enqueued",
        "consumed",
        "dropped",
        "state",
        "policy",
    ] {
        assert!(queues[0].get(k).is_some(), "queues lacks {k}");
    }
    assert_eq!(queues[0]["kind"], "spsc");
    assert_eq!(queues[0]["consumed"], 5);
    assert_eq!(queues[0]["policy"], "block");

    let agents = ok("agents", &[]);
    for k in [
        "name",
        "role",
        "thread",
        "idle_strategy",
        "state",
        "core",
        "duty_cycles",
        "idle_cycles",
        "heartbeat_age_ms",
        "stale",
        "hosts",
    ] {
        assert!(agents[0].get(k).is_some(), "agents lacks {k}");
    }
    assert_eq!(agents[0]["role"], "group");
    assert_eq!(agents[0]["idle_strategy"], "sleeping-millis");

    let h = ok("health", &[]);
    for k in [
        "degraded",
        "missing",
        "retry_after",
        "since",
        "alive",
        "stale",
        "checks",
    ] {
        assert!(h.get(k).is_some(), "health lacks {k}");
    }
    assert_eq!(ok("quarantine.list", &[]), json!([]));

    // Unknown command: 404 unknown_command with the correlation id, counted as unknown.
    let r = cmd(addr, "nope", &[], &[]);
    assert_eq!(r.status, 404);
    let v = json_of(&r);
    assert_eq!(v["code"], "unknown_command");
    assert!(v["corr_id"].as_str().is_some_and(|c| !c.is_empty()));
    assert_eq!(r.header("x-correlation-id"), v["corr_id"].as_str());

    // processors.stop calls stop and tear_down once; a repeat is 409; unknown is 404.
    let out = ok("processors.stop", &["adm-shapes-p3"]);
    assert_eq!(out, json!({"stopped": "adm-shapes-p3"}));
    assert_eq!(probes.stops.load(Ordering::SeqCst), 1);
    assert_eq!(probes.teardowns.load(Ordering::SeqCst), 1);
    let again = cmd(addr, "processors.stop", &["adm-shapes-p3"], &[]);
    assert_eq!(again.status, 409, "{}", again.text());
    assert_eq!(json_of(&again)["code"], "conflict");
    assert_eq!(cmd(addr, "processors.stop", &["ghost"], &[]).status, 404);
    assert_eq!(probes.stops.load(Ordering::SeqCst), 1);

    // queues.reconnect on a connected subscription: 409; on a missing one: 404.
    let r = cmd(addr, "queues.reconnect", &["in", "adm-shapes-a"], &[]);
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(
        cmd(addr, "queues.reconnect", &["in", "zz"], &[]).status,
        404
    );

    // Bad requests.
    assert_eq!(cmd(addr, "processors.stop", &[], &[]).status, 400);
    let r = call(
        addr,
        "POST",
        "/admin/commands/queues",
        &["Content-Type: application/json"],
        "{oops",
    );
    assert_eq!(
        (r.status, json_of(&r)["code"].clone()),
        (400, json!("bad_json"))
    );
    let r = call(
        addr,
        "POST",
        "/admin/commands/queues",
        &["Content-Type: text/plain"],
        "{}",
    );
    assert_eq!(r.status, 415);
    let many: Vec<String> = (0..17).map(|i| i.to_string()).collect();
    let r = call(
        addr,
        "POST",
        "/admin/commands/help",
        &["Content-Type: application/json"],
        &json!({"args": many}).to_string(),
    );
    assert_eq!(
        (r.status, json_of(&r)["code"].clone()),
        (400, json!("bad_args"))
    );
    let big = format!("{{\"args\":[\"{}\"]}}", "x".repeat(70 * 1024));
    let r = call(
        addr,
        "POST",
        "/admin/commands/help",
        &["Content-Type: application/json"],
        &big,
    );
    assert_eq!(r.status, 413, "{}", r.text());
    let r = call(addr, "POST", "/admin/commands/queues", &[], "");
    assert_eq!(r.status, 200, "an empty body means no args: {}", r.text());

    // Methods: POST /metrics is 405 with Allow; GET on a command is 405 too.
    let r = call(addr, "POST", "/metrics", &[], "");
    assert_eq!(r.status, 405);
    assert!(r.header("allow").is_some());
    let r = call(addr, "GET", "/admin/commands/queues", &[], "");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));

    // /healthz, /readyz and the counter the commands above moved.
    let r = call(addr, "GET", "/healthz", &[], "");
    assert_eq!(
        (r.status, json_of(&r)),
        (200, json!({"alive": true, "stale": []}))
    );
    let r = call(addr, "GET", "/readyz", &[], "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json_of(&r)["missing"], json!([]));
    let m = call(addr, "GET", "/metrics", &[], "").text();
    assert!(
        m.contains("mongoose_admin_commands_total{")
            && m.lines()
                .any(|l| l.starts_with("mongoose_admin_commands_total")
                    && l.contains("command=\"unknown\"")
                    && l.contains("outcome=\"unknown_command\"")
                    && l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) == Some(1.0)),
        "{m}"
    );
    srv.shutdown(Duration::from_secs(1));
}

// MNG-T19.
#[test]
fn a_token_guards_commands_but_not_metrics_and_wedged_groups_time_out() {
    let token = "s3cret-token-0123456789";
    let (srv, probes) = server("adm-token", Some(token), Duration::from_millis(300));
    let addr = srv.admin_addr().expect("admin bound");
    let r = cmd(addr, "queues", &[], &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(json_of(&r)["code"], "unauthorized");
    assert_eq!(
        cmd(
            addr,
            "queues",
            &[],
            &["Authorization: Bearer wrong-token-0123456789"]
        )
        .status,
        401
    );
    let auth = format!("Authorization: Bearer {token}");
    assert_eq!(cmd(addr, "queues", &[], &[&auth]).status, 200);
    assert_eq!(call(addr, "GET", "/admin/commands", &[], "").status, 401);
    assert_eq!(
        call(addr, "GET", "/admin/commands", &[&auth], "").status,
        200
    );
    assert_eq!(call(addr, "GET", "/metrics", &[], "").status, 200);
    assert_eq!(call(addr, "GET", "/readyz", &[], "").status, 200);

    // Wedge both groups inside on_event; a routed command then times out with 504.
    probes.wedge.store(true, Ordering::Release);
    srv.publisher("in").unwrap().publish(1).unwrap();
    wait("both groups inside on_event", || {
        srv.groups().iter().all(|g| {
            g.procs
                .lock()
                .iter()
                .any(|p| p.events.load(Ordering::Relaxed) == 1)
        })
    });
    let t = Instant::now();
    let r = cmd(addr, "latency.reset", &[], &[&auth]);
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(json_of(&r)["code"], "command_timeout");
    assert!(t.elapsed() >= Duration::from_millis(300));
    // A command that reads counters still answers.
    assert_eq!(cmd(addr, "queues", &[], &[&auth]).status, 200);
    probes.wedge.store(false, Ordering::Release);
    srv.shutdown(Duration::from_secs(1));
}

// The admin port is a startup failure when taken (MNG-R19 step 2).
#[test]
fn a_taken_admin_port_fails_startup_naming_admin() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let spec: ServerSpec<u64> = ServerSpec {
        name: "adm-taken".into(),
        admin: AdminSpec {
            address: Some(taken.local_addr().unwrap()),
            ..AdminSpec::default()
        },
        ..Default::default()
    };
    let e = RunningServer::start(spec).err().expect("start fails");
    assert_eq!(e.component, "admin");
    assert!(e.error.contains("address in use"), "{}", e.error);
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mongoose-server")
}

fn admin_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin())
        .arg("admin")
        .args(args)
        .env_remove("MONGOOSE_ADMIN_ADDR")
        .env_remove("MONGOOSE_ADMIN_TOKEN")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

// MNG-T20, against the binary.
#[test]
fn the_admin_client_exits_0_1_3_and_prints_tables_or_json() {
    let dir = test_support::temp_dir("mg-admin");
    let cfg = dir.join("server.yaml");
    std::fs::write(
        &cfg,
        "name: adm-cli\nadmin:\n  address: 127.0.0.1:0\neventFeeds:\n  - name: orders\n    type: memory\neventHandlers:\n  - agentName: g1\n    idleStrategy: sleeping-millis\n    processors:\n      show:\n        type: log\n        feeds: [orders]\n",
    )
    .unwrap();
    let mut child = Command::new(bin())
        .args(["--config", cfg.to_str().unwrap()])
        .env_remove("MONGOOSE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let out = child.stdout.take().unwrap();
    let l2 = lines.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            l2.lock().unwrap().push(l);
        }
    });
    let addr = {
        let d = Instant::now() + Duration::from_secs(15);
        loop {
            let found = lines.lock().unwrap().iter().find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                (v["message"] == "admin_listening")
                    .then(|| v["address"].as_str().unwrap().to_string())
            });
            if let Some(a) = found {
                break a;
            }
            assert!(
                Instant::now() < d,
                "no admin_listening line: {:?}",
                lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let (code, out, err) = admin_cli(&["--addr", &addr, "queues"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("FEED"), "a table: {out}");
    assert!(out.contains("orders") && out.contains("g1"), "{out}");
    let (code, out, _) = admin_cli(&["--addr", &addr, "--json", "queues"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).expect("raw JSON body");
    assert_eq!(v["ok"], true);
    assert_eq!(v["output"][0]["feed"], "orders");
    let (code, _, err) = admin_cli(&["--addr", &addr, "no-such-command"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("404") && err.contains("unknown_command"),
        "{err}"
    );
    let (code, out, _) = admin_cli(&["--addr", &addr, "processors.stop", "show"]);
    assert_eq!(code, 0);
    assert!(out.contains("stopped"), "{out}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (code, _, err) = admin_cli(&["--addr", &closed.to_string(), "queues"]);
    assert_eq!(code, 3, "{err}");
    let (code, _, _) = admin_cli(&[]);
    assert_eq!(code, 2, "usage error");
    // SIGTERM: drains and exits 0; the admin command log line was written.
    unsafe_kill(child.id(), 15);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let logs = lines.lock().unwrap().clone();
    assert!(
        logs.iter()
            .any(|l| l.contains("\"message\":\"admin_command\"")
                && l.contains("\"command\":\"queues\"")),
        "{logs:?}"
    );
}

fn unsafe_kill(pid: u32, sig: i32) {
    unsafe extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    // SAFETY: kill(2) with a child's pid and a valid signal number has no memory effects.
    unsafe {
        kill(pid as i32, sig);
    }
}

/// Registers `ping` (echoes its args) and `explode` (panics) in init.
struct Pinger {
    name: &'static str,
}

impl Processor<u64> for Pinger {
    fn init(&mut self, ctx: &mut Context<'_, u64>) -> Result<(), String> {
        ctx.register_admin_command(self.name, "echo the arguments")
            .map_err(|e| e.to_string())?;
        ctx.register_admin_command(&format!("{}.explode", self.name), "panic")
            .map_err(|e| e.to_string())
    }
    fn on_event(
        &mut self,
        _: &Envelope<u64>,
        _: &mut Context<'_, u64>,
    ) -> Result<(), ProcessorError> {
        Ok(())
    }
    fn on_admin_command(&mut self, name: &str, args: &[String]) -> Result<Value, String> {
        if name.ends_with(".explode") {
            panic!("asked to explode");
        }
        let thread = std::thread::current().name().map(str::to_string);
        Ok(json!({"args": args, "thread": thread}))
    }
}

fn pinger_server(
    name: &str,
    command: &'static str,
) -> Result<RunningServer<u64>, mongoose::StartError> {
    let g: &'static str = leak(format!("{name}-g"));
    RunningServer::start(ServerSpec {
        name: name.into(),
        feeds: vec![FeedSpec::memory("in")],
        groups: vec![GroupSpec {
            name: g,
            idle: IdleStrategy::SleepingMillis { millis: 1 },
            core_id: None,
            max_batch: 64,
            max_timers: 16,
            retry: RetryPolicy::default(),
            processors: vec![ProcSpec {
                name: leak(format!("{name}-pinger")),
                factory: Box::new(move || {
                    Ok(Box::new(Pinger { name: command }) as Box<dyn Processor<u64>>)
                }),
                feeds: vec!["in".into()],
                critical: true,
                enabled: true,
                config: Default::default(),
            }],
        }],
        admin: AdminSpec {
            address: Some("127.0.0.1:0".parse().unwrap()),
            ..AdminSpec::default()
        },
        ..Default::default()
    })
}

// MNG-R04/R05: commands processors register run on the processor's own thread; a clash
// with a built-in fails startup.
#[test]
fn processor_commands_run_on_their_group_thread_and_clashes_fail_startup() {
    let srv = pinger_server("adm-ping", "ping").expect("starts");
    let addr = srv.admin_addr().unwrap();
    let list = json_of(&call(addr, "GET", "/admin/commands", &[], ""));
    assert!(
        list["commands"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "ping" && c["help"] == "echo the arguments"),
        "{list}"
    );
    let r = cmd(addr, "ping", &["a", "b"], &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        json_of(&r)["output"],
        json!({"args": ["a", "b"], "thread": "adm-ping-g"})
    );
    let r = cmd(addr, "ping.explode", &[], &[]);
    assert_eq!(
        (r.status, json_of(&r)["code"].clone()),
        (500, json!("command_failed"))
    );
    // The group survives the panic.
    assert_eq!(cmd(addr, "ping", &[], &[]).status, 200);
    srv.shutdown(Duration::from_secs(1));

    let e = pinger_server("adm-clash", "queues")
        .err()
        .expect("clash fails startup");
    assert_eq!(e.component, "processor 'adm-clash-pinger'");
    assert!(e.error.contains("queues"), "{}", e.error);
}
