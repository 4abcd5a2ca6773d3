//! Orchestration: seed, ramp users in, measure windows (one hold window, or `--search`
//! steps and bisection), drain, reconcile, and assemble the report.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use parking_lot::RwLock;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::delivery::Registry;
use crate::gates::Verdict;
use crate::metrics::{Metrics, Window, hist_json};
use crate::net::{Body, Http, worker_addr};
use crate::opts::{Opts, parse_server};
use crate::sim::{Counters, Ctx, run_user};
use crate::{procstat, scrape, seed};

/// Mattermost's published figure: 200 concurrent users per 2 vCPU / 4 GiB app node.
pub const MATTERMOST_USERS_PER_NODE: f64 = 200.0;

struct Running {
    actions: CancellationToken,
    sockets: CancellationToken,
    task: JoinHandle<()>,
}

struct Bench {
    ctx: Arc<Ctx>,
    users: Vec<Option<Running>>,
}

/// Raises the open-file soft limit to the hard limit: every user holds two sockets.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    lim.rlim_cur
}

async fn wait_ready(server: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut http = Http::new(worker_addr(0xFFF1), server);
    while Instant::now() < deadline {
        if let Ok(r) = http.call("GET", "/api/v1/health/ready", Body::Empty).await
            && r.status == 200
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("{server}: /api/v1/health/ready not 200 within 60 s")
}

impl Bench {
    fn active(&self) -> u32 {
        self.users.iter().filter(|u| u.is_some()).count() as u32
    }

    /// Starts users `from..to` at the ramp rate and waits until each is ready or failed.
    async fn start(&mut self, from: u32, to: u32) {
        let ramp = self.ctx.opts.ramp_per_sec.max(0.001);
        let t0 = tokio::time::Instant::now();
        let c = &self.ctx.counters;
        let done_before = c.ready.load(Ordering::Relaxed) + c.login_failed.load(Ordering::Relaxed);
        for (k, u) in (from..to).enumerate() {
            let at = t0 + Duration::from_secs_f64(k as f64 / ramp);
            let (actions, sockets) = (CancellationToken::new(), CancellationToken::new());
            let task = tokio::spawn(run_user(
                self.ctx.clone(),
                u,
                at,
                actions.clone(),
                sockets.clone(),
            ));
            if self.users.len() <= u as usize {
                self.users.resize_with(u as usize + 1, || None);
            }
            self.users[u as usize] = Some(Running {
                actions,
                sockets,
                task,
            });
        }
        let n = u64::from(to.saturating_sub(from));
        let limit = Duration::from_secs_f64(n as f64 / ramp) + Duration::from_secs(60);
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let done = c.ready.load(Ordering::Relaxed) + c.login_failed.load(Ordering::Relaxed);
            if done - done_before >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops users `from..to` (their sockets close at once).
    async fn stop(&mut self, from: u32, to: u32) {
        let mut tasks = Vec::new();
        for u in from..to {
            if let Some(r) = self.users.get_mut(u as usize).and_then(Option::take) {
                r.actions.cancel();
                r.sockets.cancel();
                tasks.push(r.task);
            }
        }
        join_all(tasks).await;
    }

    /// Stops every user's actions, waits for outstanding deliveries, then closes sockets.
    async fn finish(&mut self) {
        for r in self.users.iter().flatten() {
            r.actions.cancel();
        }
        let start = Instant::now();
        let limit = Duration::from_secs(self.ctx.opts.drain_secs);
        let mut last = self.ctx.reg.delivered_count();
        let mut stable = 0;
        while start.elapsed() < limit && stable < 4 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = self.ctx.reg.delivered_count();
            stable = if now == last { stable + 1 } else { 0 };
            last = now;
        }
        self.ctx.reg.drained();
        let n = self.users.len() as u32;
        self.stop(0, n).await;
    }

    /// Measures one window of `secs` seconds.
    async fn measure(&self, secs: u64) -> Measured {
        let before = scrape_all(&self.ctx.servers).await;
        let cpu0 = procstat::sample(&self.ctx.opts.server_pids);
        self.ctx.metrics.rotate();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let window = self.ctx.metrics.rotate();
        let cpu1 = procstat::sample(&self.ctx.opts.server_pids);
        let after = scrape_all(&self.ctx.servers).await;
        Measured {
            users: self.ctx.counters.online.load(Ordering::Relaxed) as u32,
            started: self.active(),
            verdict: Verdict::of(&window),
            window,
            cpu: procstat::split(&cpu0, &cpu1),
            server_metrics: before
                .iter()
                .zip(&after)
                .map(|(b, a)| match (b, a) {
                    (Some(b), Some(a)) => scrape::delta(b, a),
                    _ => Value::Null,
                })
                .collect(),
            rss: rss_json(&self.ctx.opts.server_pids),
        }
    }
}

async fn join_all(tasks: Vec<JoinHandle<()>>) {
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
}

async fn scrape_all(servers: &[SocketAddr]) -> Vec<Option<scrape::Sample>> {
    let mut out = Vec::new();
    for s in servers {
        out.push(scrape::scrape(*s).await);
    }
    out
}

fn rss_json(pids: &[u32]) -> Value {
    Value::Array(
        pids.iter()
            .map(|p| match procstat::rss_bytes(*p) {
                Some((rss, hwm)) => json!({"pid": p, "rss_bytes": rss, "peak_rss_bytes": hwm}),
                None => json!({"pid": p}),
            })
            .collect(),
    )
}

struct Measured {
    /// Users online (logged in, socket up) at the end of the window.
    users: u32,
    /// User tasks started (including any whose login failed).
    started: u32,
    verdict: Verdict,
    window: Window,
    cpu: Value,
    server_metrics: Vec<Value>,
    rss: Value,
}

impl Measured {
    fn to_json(&self) -> Value {
        json!({
            "users": self.users,
            "users_started": self.started,
            "gates": self.verdict.to_json(),
            "window": self.window.to_json(),
            "cpu": self.cpu,
            "server_metrics_delta": self.server_metrics,
            "server_rss": self.rss,
        })
    }
}

/// Runs the benchmark; returns the report.
pub async fn run(opts: Opts) -> Result<Value> {
    let servers: Vec<SocketAddr> = opts
        .servers
        .iter()
        .map(|s| parse_server(s).map_err(|e| anyhow!(e)))
        .collect::<Result<_>>()?;
    if servers.is_empty() {
        bail!("no --server");
    }
    let nofile = raise_nofile();
    for s in &servers {
        wait_ready(*s).await?;
    }
    let started = Instant::now();
    let first = if opts.search {
        opts.search_step.min(opts.max_users)
    } else {
        opts.users
    };
    let capacity = if opts.search {
        opts.max_users
    } else {
        opts.users
    };
    eprintln!(
        "loadgen: seeding {} teams, {first} users, {} posts",
        opts.teams, opts.seed_posts
    );
    let mut world = seed::base(&opts, servers[0])
        .await
        .context("seeding teams and channels")?;
    seed::grow(&mut world, &opts, &servers, first)
        .await
        .context("seeding users")?;
    seed::posts(&world, &opts, servers[0], opts.seed_posts)
        .await
        .context("seeding posts")?;
    let seed_secs = started.elapsed().as_secs_f64();
    let seeded = json!({
        "teams": world.teams.len(),
        "channels": world.channels.len(),
        "users": world.users.len(),
        "posts": opts.seed_posts,
        "seconds": crate::metrics::round3(seed_secs),
    });
    eprintln!("loadgen: seeded in {seed_secs:.1} s");
    let nodes = (0..capacity)
        .map(|u| seed::node_for(u, opts.teams, servers.len() as u32))
        .collect();
    let ctx = Arc::new(Ctx {
        opts: opts.clone(),
        servers: servers.clone(),
        world: RwLock::new(world),
        reg: Registry::new(nodes),
        metrics: Metrics::new(),
        counters: Counters::default(),
        pending_seq: AtomicU64::new(0),
    });
    let mut bench = Bench {
        ctx: ctx.clone(),
        users: Vec::new(),
    };
    let mut windows = Vec::new();
    let mut max_within = None;
    if opts.search {
        max_within = Some(search(&mut bench, &opts, &servers, &mut windows).await?);
    } else {
        let ramp0 = Instant::now();
        eprintln!(
            "loadgen: ramping {} users at {}/s",
            opts.users, opts.ramp_per_sec
        );
        bench.start(0, opts.users).await;
        eprintln!(
            "loadgen: ramp done in {:.1} s; holding {} s",
            ramp0.elapsed().as_secs_f64(),
            opts.hold
        );
        windows.push(bench.measure(opts.hold).await);
    }
    bench.finish().await;
    let rec = {
        let world = ctx.world.read();
        ctx.reg.reconcile(|c| {
            world
                .channels
                .get(c as usize)
                .map(|ch| ch.members.clone())
                .unwrap_or_default()
        })
    };
    let c = &ctx.counters;
    let total = ctx.metrics.total();
    let users_within = max_within.or_else(|| {
        windows
            .first()
            .filter(|m| m.verdict.pass())
            .map(|m| m.users)
    });
    let mut report = json!({
        "tool": "rustchat-loadgen",
        "label": opts.label,
        "driver": opts.driver.name(),
        "servers": opts.servers,
        "nofile_limit": nofile,
        "options": {
            "users": opts.users, "search": opts.search, "hold_seconds": opts.hold,
            "ramp_per_sec": opts.ramp_per_sec, "rate_scale": opts.rate_scale,
            "teams": opts.teams, "public_channels": opts.public_channels,
            "private_channels": opts.private_channels, "channels_per_user": opts.channels_per_user,
            "seed_posts": opts.seed_posts, "search_step": opts.search_step,
            "search_step_secs": opts.search_step_secs, "search_resolution": opts.search_resolution,
        },
        "seed": seeded,
        "windows": windows.iter().map(Measured::to_json).collect::<Vec<_>>(),
        "total": total.to_json(),
        "delivery_total": hist_json(&total.delivery),
        "reconciliation": rec.to_json(),
        "users": {
            "logged_in": c.logged_in.load(Ordering::Relaxed),
            "login_failed": c.login_failed.load(Ordering::Relaxed),
            "login_retries": c.login_retries.load(Ordering::Relaxed),
            "ws_failed": c.ws_failed.load(Ordering::Relaxed),
            "first_ws_error": c.first_ws_error.lock().clone(),
            "ws_dropped": c.ws_dropped.load(Ordering::Relaxed),
            "ws_reconnects": c.ws_reconnects.load(Ordering::Relaxed),
            "seq_gaps": c.seq_gaps.load(Ordering::Relaxed),
            "actions": c.actions.load(Ordering::Relaxed),
            "actions_skipped": c.skipped.load(Ordering::Relaxed),
            "typing_sent": c.typing_sent.load(Ordering::Relaxed),
        },
        "users_within_gates": users_within,
        "mattermost_reference": {
            "users_per_node": MATTERMOST_USERS_PER_NODE,
            "ratio": users_within.map(|u| crate::metrics::round3(f64::from(u) / MATTERMOST_USERS_PER_NODE)),
            "note": "not like-for-like: Mattermost's figure is one 2 vCPU/4 GiB app node with a separate database, a 100 M-post dataset and its own tool; here server and generator share 2 cores",
        },
        "elapsed_seconds": crate::metrics::round3(started.elapsed().as_secs_f64()),
    });
    report["ok"] = json!(rec.ok() && c.seq_gaps.load(Ordering::Relaxed) == 0);
    Ok(report)
}

/// `--search`: add a step of users per window until a gate fails, then bisect down to the
/// resolution ([`SearchPlan`] picks each count). Returns the largest user count measured
/// within the gates.
async fn search(
    bench: &mut Bench,
    opts: &Opts,
    servers: &[SocketAddr],
    windows: &mut Vec<Measured>,
) -> Result<u32> {
    let mut plan = SearchPlan::new(opts.search_step, opts.search_resolution, opts.max_users);
    let mut target = plan.first();
    while let Some(to) = target {
        let now = bench.active();
        if to > now {
            grow_to(bench, opts, servers, to).await?;
            bench.start(now, to).await;
        } else if to < now {
            bench.stop(to, now).await;
        }
        if plan.bisecting() {
            eprintln!("loadgen: bisect at {to} users");
        } else {
            eprintln!("loadgen: search step: {now} → {to} users");
        }
        let m = bench.measure(opts.search_step_secs).await;
        eprintln!("loadgen: {to} users: gates {}", gate_word(&m.verdict));
        let pass = m.verdict.pass();
        windows.push(m);
        target = plan.record(pass);
    }
    Ok(plan.largest_within())
}

/// The `--search` walk without the load: which user count to measure next, given whether
/// the last count passed the gates. Counts climb by `step` (capped at `max`) until one
/// fails, then the bracket between the last pass and the first failure is halved, in
/// multiples of `resolution`, until it is at most `resolution` wide.
#[derive(Debug, Clone)]
pub struct SearchPlan {
    step: u32,
    resolution: u32,
    max: u32,
    current: u32,
    lo: u32,
    hi: Option<u32>,
}

impl SearchPlan {
    pub fn new(step: u32, resolution: u32, max: u32) -> SearchPlan {
        let step = step.max(1);
        SearchPlan {
            step,
            resolution: resolution.max(1),
            max,
            current: step.min(max),
            lo: 0,
            hi: None,
        }
    }

    /// The first count to measure (none when `max` is 0).
    pub fn first(&self) -> Option<u32> {
        (self.current > 0).then_some(self.current)
    }

    /// Whether a count has failed, so the walk is bisecting.
    pub fn bisecting(&self) -> bool {
        self.hi.is_some()
    }

    /// Records the verdict at the current count; the next count, or None when done.
    pub fn record(&mut self, pass: bool) -> Option<u32> {
        if pass {
            self.lo = self.current;
        } else {
            self.hi = Some(self.current);
        }
        self.current = match self.hi {
            None if self.current >= self.max => return None,
            None => self.current.saturating_add(self.step).min(self.max),
            Some(hi) if hi - self.lo <= self.resolution => return None,
            Some(hi) => {
                let half = ((hi - self.lo) / 2 / self.resolution).max(1) * self.resolution;
                self.lo + half
            }
        };
        Some(self.current)
    }

    /// The largest count that passed (0 when none did).
    pub fn largest_within(&self) -> u32 {
        self.lo
    }
}

fn gate_word(v: &Verdict) -> String {
    if v.pass() {
        "pass".into()
    } else {
        format!("FAIL ({})", v.failing().join(", "))
    }
}

/// Seeds users until the world holds `to` (on a copy, swapped in at once, so running users
/// never see a half-built world).
async fn grow_to(bench: &Bench, opts: &Opts, servers: &[SocketAddr], to: u32) -> Result<()> {
    let have = bench.ctx.world.read().users.len() as u32;
    if have >= to {
        return Ok(());
    }
    let mut w = bench.ctx.world.read().clone();
    seed::grow(&mut w, opts, servers, to - have).await?;
    *bench.ctx.world.write() = w;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::SearchPlan;

    /// Runs the plan against a server that stays within the gates up to `knee` users;
    /// returns the counts measured and the answer.
    fn walk(step: u32, res: u32, max: u32, knee: u32) -> (Vec<u32>, u32) {
        let mut plan = SearchPlan::new(step, res, max);
        let mut measured = Vec::new();
        let mut next = plan.first();
        while let Some(n) = next {
            assert!(measured.len() < 1000, "the walk does not end: {measured:?}");
            measured.push(n);
            next = plan.record(n <= knee);
        }
        (measured, plan.largest_within())
    }

    #[test]
    fn climbs_by_steps_then_bisects_to_the_resolution() {
        let (measured, answer) = walk(1000, 250, 30_000, 3_700);
        assert_eq!(measured, [1000, 2000, 3000, 4000, 3500, 3750]);
        assert_eq!(answer, 3500);
    }

    #[test]
    fn stops_at_the_cap_when_every_count_passes() {
        let (measured, answer) = walk(1000, 250, 2_500, u32::MAX);
        assert_eq!(measured, [1000, 2000, 2500]);
        assert_eq!(answer, 2500);
    }

    #[test]
    fn a_failing_first_step_bisects_below_it() {
        let (measured, answer) = walk(1000, 250, 30_000, 300);
        assert_eq!(measured, [1000, 500, 250]);
        assert_eq!(answer, 250);
        assert_eq!(walk(1000, 250, 30_000, 100).1, 0);
        assert_eq!(walk(10, 1, 0, 5).0, Vec::<u32>::new());
    }

    #[test]
    fn the_answer_is_within_one_resolution_below_any_knee() {
        for knee in (0..7_000).step_by(37) {
            let (_, answer) = walk(1000, 250, 30_000, knee);
            assert!(answer <= knee, "knee {knee}: {answer} passed above it");
            assert!(knee - answer < 250, "knee {knee}: answer {answer} too low");
        }
    }
}
