//! Command line. Defaults are the spec's scenario (§8 Method): 5 teams × 1,000 users, 50
//! public + 10 private channels per team, 14 channels + town-square + 3 DMs per user,
//! 100,000 seeded posts, ramp 10 users/s, 10-minute hold.

use std::net::{SocketAddr, ToSocketAddrs};

use clap::{Parser, ValueEnum};

/// Which API the simulated clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Driver {
    /// Mattermost-style: /api/v4 routes and /api/v4/websocket with the
    /// authentication_challenge (search and uploads use /api/v1: the v4 subset has neither).
    V4,
    /// Native: /api/v1 routes and /api/v1/ws with a Bearer header.
    V1,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::V4 => "v4",
            Driver::V1 => "v1",
        }
    }
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "rustchat-loadgen",
    about = "rustchat load generator (spec §8, CHAT-R31). The matrix driver / Synapse peer is not implemented."
)]
pub struct Opts {
    /// Server base URL; repeat for several nodes (users are spread round-robin).
    #[arg(long = "server", default_value = "http://127.0.0.1:3000")]
    pub servers: Vec<String>,
    #[arg(long, value_enum, default_value = "v4")]
    pub driver: Driver,
    /// Concurrent simulated users (ignored with --search).
    #[arg(long, default_value_t = 5000)]
    pub users: u32,
    /// Add --search-step users per step until a gate fails, then bisect.
    #[arg(long)]
    pub search: bool,
    #[arg(long, default_value_t = 1000)]
    pub search_step: u32,
    /// Seconds measured per search step (after that step's ramp).
    #[arg(long, default_value_t = 180)]
    pub search_step_secs: u64,
    /// Bisection stops when the bracket is this narrow.
    #[arg(long, default_value_t = 250)]
    pub search_resolution: u32,
    /// Upper bound for --search.
    #[arg(long, default_value_t = 30_000)]
    pub max_users: u32,
    #[arg(long, default_value_t = 5)]
    pub teams: u32,
    #[arg(long, default_value_t = 50)]
    pub public_channels: u32,
    #[arg(long, default_value_t = 10)]
    pub private_channels: u32,
    /// Channels per user besides town-square and DMs (2 of them private when possible).
    #[arg(long, default_value_t = 14)]
    pub channels_per_user: u32,
    /// Existing posts created before the simulation.
    #[arg(long, default_value_t = 100_000)]
    pub seed_posts: u32,
    /// Concurrent requests while seeding.
    #[arg(long, default_value_t = 32)]
    pub seed_concurrency: usize,
    /// Logins per second during ramps.
    #[arg(long, default_value_t = 10.0)]
    pub ramp_per_sec: f64,
    /// Measured seconds after the ramp.
    #[arg(long, default_value_t = 600)]
    pub hold: u64,
    /// Multiplies every per-hour action rate (smoke tests use large values to get traffic
    /// out of few users in few seconds).
    #[arg(long, default_value_t = 1.0)]
    pub rate_scale: f64,
    /// Maximum seconds to wait for outstanding deliveries after the hold.
    #[arg(long, default_value_t = 10)]
    pub drain_secs: u64,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
    /// Server process ids, for CPU and RSS (repeatable).
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// Free-text label for the report (e.g. the run.sh mode).
    #[arg(long, default_value = "")]
    pub label: String,
}

/// `http://host:port[/]` or `host:port` → a socket address.
pub fn parse_server(s: &str) -> Result<SocketAddr, String> {
    let rest = s.strip_prefix("http://").unwrap_or(s).trim_end_matches('/');
    if s.starts_with("https://") || rest.contains('/') {
        return Err(format!("{s}: expected http://HOST:PORT"));
    }
    rest.to_socket_addrs()
        .map_err(|e| format!("{s}: {e}"))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| format!("{s}: no IPv4 address (sources are bound in 127.1.0.0/16)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_parse_or_fail_cleanly() {
        assert_eq!(
            parse_server("http://127.0.0.1:3000/").unwrap(),
            "127.0.0.1:3000".parse().unwrap()
        );
        assert_eq!(
            parse_server("127.0.0.1:81").unwrap(),
            "127.0.0.1:81".parse().unwrap()
        );
        assert!(parse_server("https://127.0.0.1:3000").is_err());
        assert!(parse_server("http://127.0.0.1:3000/api").is_err());
        assert!(parse_server("nonsense").is_err());
        assert!(parse_server("[::1]:3000").is_err());
    }
}
