//! The command line: `ronctl up` and `ronctl status`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Default state directory (configs, data, logs of every service), relative to the
/// working directory.
pub const DEFAULT_STATE_DIR: &str = ".ronctl";
/// Default front door: sentinel-proxy's listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// ronctl: run and inspect the whole ron stack.
#[derive(Debug, Parser)]
#[command(name = "ronctl", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start every service on embedded defaults behind sentinel-proxy; Ctrl-C drains them
    /// in order (front door first).
    Up(UpArgs),
    /// Print each service's readiness (exit 0 when all are ready, 1 otherwise).
    Status(StatusArgs),
    /// Bounded, loopback-only fault drills (the runbooks' chaos sections).
    #[command(subcommand)]
    Chaos(ChaosCommand),
}

/// `ronctl chaos …`.
#[derive(Debug, Subcommand)]
pub enum ChaosCommand {
    /// Open connections against a loopback HTTP target with one fault at a fixed rate.
    Inject(InjectArgs),
    /// A loopback TCP proxy adding latency (and resets) between a client and an upstream.
    Proxy(ProxyArgs),
}

/// `ronctl chaos inject`.
#[derive(Debug, clap::Args)]
pub struct InjectArgs {
    /// Target URL (`http://127.0.0.1:9100/metrics`); loopback only.
    #[arg(long)]
    pub target: String,
    /// The fault.
    #[arg(long, value_enum)]
    pub fault: crate::chaos::inject::Fault,
    /// New connections per second (`5/s`, `300/m`).
    #[arg(long, default_value = "5/s")]
    pub rate: String,
    /// How long to open new connections (`120s`, `2m`).
    #[arg(long, default_value = "30s")]
    pub duration: String,
    /// Pause between writes for `slowloris` and `latency` (`500ms`).
    #[arg(long, default_value = "500ms")]
    pub trickle: String,
    /// Also print the report as one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// `ronctl chaos proxy`.
#[derive(Debug, clap::Args)]
pub struct ProxyArgs {
    /// Where to listen (loopback; port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Where to forward (loopback `host:port`).
    #[arg(long)]
    pub upstream: String,
    /// Delay added to every chunk, each way (`80ms`).
    #[arg(long, default_value = "80ms")]
    pub latency: String,
    /// Uniform jitter around the latency (`20ms`).
    #[arg(long, default_value = "20ms")]
    pub jitter: String,
    /// Reset every Nth connection after its first answer (0: never).
    #[arg(long, default_value_t = 0)]
    pub reset_every: u64,
    /// Stop after this long (default: until Ctrl-C).
    #[arg(long)]
    pub duration: Option<String>,
    /// Start the fault (latency, resets) this long after the proxy (`5s`); before it the
    /// proxy forwards without delay, giving the drill a baseline.
    #[arg(long, default_value = "0s")]
    pub fault_after: String,
    /// End the fault after this long (`20s`), as `tc qdisc del` would; the proxy keeps
    /// forwarding without delay so recovery can be watched. Default: until it stops.
    #[arg(long)]
    pub fault_for: Option<String>,
}

/// `ronctl up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Where configs, data and logs go (created; reused across runs).
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// sentinel-proxy's listener, the stack's front door (0.0.0.0:8080 to serve others).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// `fixed`: the services' usual ports (rustchat 3000, svc-edge 8180/9909, sentinel
    /// metrics 9090, mongoose admin 9200); `auto`: free ephemeral ports for all of them,
    /// the front door included unless --listen names a non-zero port.
    #[arg(long, value_enum, default_value_t = PortMode::Fixed)]
    pub ports: PortMode,
    /// Where the service binaries are (default: next to ronctl itself).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
}

/// How internal ports are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PortMode {
    /// Well-known ports.
    Fixed,
    /// Free ephemeral ports (tests, several stacks on one machine).
    Auto,
}

/// `ronctl status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The state directory of the `ronctl up` to inspect.
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}
