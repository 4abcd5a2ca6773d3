//! Services (MNG-R06, R19 steps 5 and 8, R29 `service:NAME`, R30 step 7), built from YAML
//! through an embedder's registry: lifecycle order, lookup by name and by type from a
//! processor, agent-driven `do_work`, readiness, `services.list`, `mongoose_service_up`, and
//! fail-fast on a critical service.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mongoose::config::from_yaml_str;
use mongoose::registry::Registry;
use mongoose::service::Service;
use mongoose::{Context, Envelope, Processor, ProcessorError, Record, RunningServer};
use serde_json::{Value, json};

/// Records its lifecycle; counts `do_work` calls and lookups; health is switchable.
struct Ledger {
    log: Arc<Mutex<Vec<String>>>,
    work: AtomicU64,
    seen: AtomicU64,
    healthy: Arc<AtomicBool>,
    fail_start: bool,
}

impl Service for Ledger {
    fn init(&self) -> Result<(), String> {
        self.log.lock().unwrap().push("init".into());
        Ok(())
    }
    fn start(&self) -> Result<(), String> {
        self.log.lock().unwrap().push("start".into());
        if self.fail_start {
            Err("ledger unavailable".into())
        } else {
            Ok(())
        }
    }
    fn start_complete(&self) {
        self.log.lock().unwrap().push("start_complete".into());
    }
    fn stop(&self) {
        self.log.lock().unwrap().push("stop".into());
    }
    fn tear_down(&self) {
        self.log.lock().unwrap().push("tear_down".into());
    }
    fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }
    fn do_work(&self) -> usize {
        self.work.fetch_add(1, Ordering::Relaxed);
        0
    }
}

/// Counts every event into the ledger it looked up in `init`.
struct Booker {
    ledger: Option<Arc<Ledger>>,
}

impl Processor<Record> for Booker {
    fn init(&mut self, ctx: &mut Context<'_, Record>) -> Result<(), String> {
        let by_name = ctx.service::<Ledger>("ledger").map_err(|e| e.to_string())?;
        let by_type = ctx.service_of::<Ledger>().map_err(|e| e.to_string())?;
        assert!(Arc::ptr_eq(&by_name, &by_type), "one allocation");
        self.ledger = Some(by_name);
        Ok(())
    }
    fn on_event(
        &mut self,
        _: &Envelope<Record>,
        _: &mut Context<'_, Record>,
    ) -> Result<(), ProcessorError> {
        if let Some(l) = &self.ledger {
            l.seen.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

struct Probe {
    log: Arc<Mutex<Vec<String>>>,
    healthy: Arc<AtomicBool>,
}

fn registry(p: &Probe) -> Registry<Record> {
    let mut reg = Registry::<Record>::standard();
    let (log, healthy) = (p.log.clone(), p.healthy.clone());
    reg.register_service(
        "ledger",
        |c| match c.keys().find(|k| *k != "failStart") {
            Some(k) => Err(format!("unknown key {k}")),
            None => Ok(()),
        },
        move |c| {
            Ok(Ledger {
                log: log.clone(),
                work: AtomicU64::new(0),
                seen: AtomicU64::new(0),
                healthy: healthy.clone(),
                fail_start: c.get("failStart").and_then(Value::as_bool) == Some(true),
            })
        },
    )
    .unwrap();
    reg.register_processor(
        "booker",
        |_| Ok(()),
        |_| Ok(Box::new(Booker { ledger: None })),
    )
    .unwrap();
    reg
}

fn yaml(name: &str, critical: bool, fail_start: bool) -> String {
    format!(
        "name: {name}
admin:
  address: 'off'
health:
  checkIntervalMs: 20
services:
  - name: ledger
    type: ledger
    critical: {critical}
    agentName: books
    idleStrategy: sleeping-millis
    config: {{failStart: {fail_start}}}
eventFeeds:
  - name: in
    type: memory
eventHandlers:
  - agentName: g1
    idleStrategy: sleeping-millis
    processors:
      book:
        type: booker
        feeds: [in]
"
    )
}

/// A sample line's value.
fn value(line: &str) -> f64 {
    line.rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
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
fn services_start_first_serve_processors_and_stop_last() {
    let p = Probe {
        log: Arc::default(),
        healthy: Arc::new(AtomicBool::new(true)),
    };
    let reg = registry(&p);
    let cfg = from_yaml_str(&yaml("svc-ok", true, false), "svc.yaml").unwrap();
    let srv: RunningServer<Record> =
        RunningServer::start(mongoose::plan::to_spec(&cfg, &reg).unwrap()).unwrap();
    assert_eq!(*p.log.lock().unwrap(), ["init", "start", "start_complete"]);
    let mut publisher = srv.publisher("in").unwrap();
    for i in 0..7 {
        publisher.publish(Record::new(json!({ "i": i }))).unwrap();
    }
    let list = srv.admin().exec("services.list", &[]).unwrap();
    assert_eq!(
        list,
        json!([{"name": "ledger", "type": "ledger", "critical": true, "state": "started", "healthy": true}])
    );
    let agents = srv.admin().exec("agents", &[]).unwrap();
    let books = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "books")
        .expect("the service's agent is listed");
    assert_eq!(
        (books["role"].clone(), books["hosts"].clone()),
        (json!("service"), json!(["ledger"]))
    );
    wait("the agent drives do_work", || {
        books["duty_cycles"].as_u64().is_some()
            && srv.admin().exec("agents", &[]).unwrap()[1]["duty_cycles"].as_u64() > Some(2)
    });
    wait("ready", || srv.health().ready);
    let m = srv.metrics_text();
    assert!(
        m.lines().any(|l| l.starts_with("mongoose_service_up{")
            && l.contains("service_name=\"ledger\"")
            && value(l) == 1.0),
        "{m}"
    );

    // Unhealthy: readiness names it; healthy again: ready.
    p.healthy.store(false, Ordering::Release);
    wait("service:ledger in readiness", || {
        srv.health().missing.contains(&"service:ledger".to_string())
    });
    assert_eq!(
        srv.admin().exec("services.list", &[]).unwrap()[0]["healthy"],
        false
    );
    p.healthy.store(true, Ordering::Release);
    wait("ready again", || srv.health().ready);

    srv.shutdown(Duration::from_secs(1));
    let log = p.log.lock().unwrap().clone();
    assert_eq!(
        log,
        ["init", "start", "start_complete", "stop", "tear_down"]
    );
    assert_eq!(
        srv.admin().exec("services.list", &[]).unwrap()[0]["state"],
        "stopped"
    );
}

#[test]
fn a_critical_service_that_fails_to_start_fails_startup_and_an_optional_one_is_listed_failed() {
    let p = Probe {
        log: Arc::default(),
        healthy: Arc::new(AtomicBool::new(true)),
    };
    let reg = registry(&p);
    let cfg = from_yaml_str(&yaml("svc-crit", true, true), "svc.yaml").unwrap();
    let e = RunningServer::start(mongoose::plan::to_spec(&cfg, &reg).unwrap())
        .err()
        .expect("startup fails");
    assert_eq!(e.component, "service 'ledger' (ledger)");
    assert_eq!(e.error, "ledger unavailable");
    assert_eq!(*p.log.lock().unwrap(), ["init", "start", "tear_down"]);

    // Not critical: the server starts, the service is failed, and the processor that needs
    // it fails its own init (a processor failure is startup-fatal only when critical).
    let p = Probe {
        log: Arc::default(),
        healthy: Arc::new(AtomicBool::new(true)),
    };
    let reg = registry(&p);
    let text = yaml("svc-opt", false, true).replace(
        "        feeds: [in]\n",
        "        feeds: [in]\n        critical: false\n",
    );
    let cfg = from_yaml_str(&text, "svc.yaml").unwrap();
    let srv: RunningServer<Record> =
        RunningServer::start(mongoose::plan::to_spec(&cfg, &reg).unwrap()).unwrap();
    let list = srv.admin().exec("services.list", &[]).unwrap();
    assert_eq!(
        (list[0]["state"].clone(), list[0]["healthy"].clone()),
        (json!("failed"), json!(false))
    );
    let m = srv.metrics_text();
    assert!(
        m.lines()
            .any(|l| l.starts_with("mongoose_service_up{") && value(l) == 0.0),
        "{m}"
    );
    srv.shutdown(Duration::from_secs(1));
}

#[test]
fn unregistered_service_types_and_bad_service_config_are_config_errors() {
    let p = Probe {
        log: Arc::default(),
        healthy: Arc::new(AtomicBool::new(true)),
    };
    let reg = registry(&p);
    let cfg = from_yaml_str(
        &yaml("svc-bad", true, false).replace("failStart", "failStrat"),
        "svc.yaml",
    )
    .unwrap();
    let e = mongoose::plan::check(&cfg, &reg).unwrap_err().to_string();
    assert!(
        e.contains("services[0].config") && e.contains("failStrat"),
        "{e}"
    );
    let cfg = from_yaml_str(
        &yaml("svc-bad2", true, false).replace("type: ledger", "type: vault"),
        "svc.yaml",
    );
    let e = match cfg {
        Err(e) => e.to_string(),
        Ok(c) => mongoose::plan::check(&c, &reg).unwrap_err().to_string(),
    };
    assert!(e.contains("services[0].type") && e.contains("vault"), "{e}");
}
