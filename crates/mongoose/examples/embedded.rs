//! Embedding mongoose in your own program (spec §1, MNG-R03, MNG-R08).
//!
//! The program registers its own processor type, `flag-large`, next to the built-ins, builds
//! a server from a YAML string, publishes a few orders on a `memory` feed, reads what the
//! processor forwarded to a `memory` sink, prints it and shuts down. No port is bound
//! (`admin: {address: off}`).
//!
//! Run: `cargo run -p mongoose --example embedded`
//!
//! Expected output:
//!
//! ```text
//! server embedded-example started
//! published 6 orders
//! flagged 3 orders: ids [1, 3, 4]
//! {"amount":1500,"customer":"bea","flagged_by":"flag","id":1}
//! {"amount":1000,"customer":"ada","flagged_by":"flag","id":3}
//! {"amount":2400,"customer":"bea","flagged_by":"flag","id":4}
//! shut down
//! ```

use std::time::{Duration, Instant};

use mongoose::builtins::parse_config;
use mongoose::processor::ConfigMap;
use mongoose::registry::Registry;
use mongoose::{
    Context, Envelope, JsonEvent, Processor, ProcessorError, Record, RunningServer, SinkHandle,
};
use serde_json::json;

const CONFIG: &str = r#"
name: embedded-example
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

/// `flag-large`'s own config: unknown keys are refused when the YAML is checked.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FlagConfig {
    threshold: f64,
    to: String,
}

/// Forwards orders whose `amount` is at least `threshold`, stamped with its own name.
struct FlagLarge {
    cfg: FlagConfig,
    out: Option<SinkHandle<Record>>,
}

impl Processor<Record> for FlagLarge {
    fn init(&mut self, ctx: &mut Context<'_, Record>) -> Result<(), String> {
        // Sink handles are looked up once, in init; the hot path only uses them.
        self.out = Some(ctx.sink(&self.cfg.to).map_err(|e| e.to_string())?);
        Ok(())
    }

    fn on_event(
        &mut self,
        env: &Envelope<Record>,
        ctx: &mut Context<'_, Record>,
    ) -> Result<(), ProcessorError> {
        let amount = env.event().field("amount").and_then(|v| v.as_f64());
        if amount.is_none_or(|a| a < self.cfg.threshold) {
            return Ok(());
        }
        let mut v = env.event().value().clone();
        v["flagged_by"] = json!(ctx.name());
        let sink = self.out.as_ref().expect("set in init");
        ctx.forward(sink, Record::new(v))
            .map_err(|e| ProcessorError::new(format!("{e:?}")))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut registry = Registry::<Record>::standard();
    registry.register_processor(
        "flag-large",
        |c: &ConfigMap| parse_config::<FlagConfig>(c).map(|_| ()),
        |c: &ConfigMap| {
            let cfg = parse_config::<FlagConfig>(c)?;
            Ok(Box::new(FlagLarge { cfg, out: None }) as Box<dyn Processor<Record>>)
        },
    )?;
    let cfg = mongoose::config::from_yaml_str(CONFIG, "embedded.yaml")?;
    let srv = RunningServer::start(mongoose::plan::to_spec(&cfg, &registry)?)?;
    println!("server {} started", srv.name());

    let mut orders = srv.publisher("orders").ok_or("no publisher for orders")?;
    let amounts = [120, 1500, 80, 1000, 2400, 999];
    let customers = ["ada", "bea", "cyd"];
    for (i, amount) in amounts.iter().enumerate() {
        let order = json!({"id": i, "customer": customers[i % 3], "amount": amount});
        orders
            .publish(Record::new(order))
            .map_err(|e| format!("{e:?}"))?;
    }
    println!("published {} orders", amounts.len());

    // The group thread handles the events asynchronously: wait for the three matches.
    let sink = srv.memory_sink("flagged").ok_or("no sink flagged")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut items = sink.snapshot();
    while items.len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        items = sink.snapshot();
    }
    let values: Vec<serde_json::Value> = items.iter().map(|i| i.to_json()).collect();
    let ids: Vec<u64> = values.iter().filter_map(|v| v["id"].as_u64()).collect();
    println!("flagged {} orders: ids {ids:?}", values.len());
    for v in &values {
        println!("{v}");
    }
    srv.shutdown(Duration::from_secs(1));
    println!("shut down");
    Ok(())
}
