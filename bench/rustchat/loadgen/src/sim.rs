//! Simulated users (§8 Method). Each logs in, holds one WebSocket and, until told to stop,
//! performs actions as a Poisson process: the per-hour rates below are independent
//! exponential clocks, merged here into one clock of their total rate whose events pick an
//! action by weight (the same process, one timer per user).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use crate::api::{self, NewPost, PostRef};
use crate::delivery::{Registry, token};
use crate::metrics::{Ep, Metrics, Outcome};
use crate::net::{Http, Reply, user_addr};
use crate::opts::Opts;
use crate::seed::World;
use crate::ws::{self, Socket};

/// Actions and their rates per user-hour (spec §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    SwitchChannel,
    RootPost,
    ThreadReply,
    AddReaction,
    RemoveReaction,
    UsersByIds,
    Unreads,
    Search,
    Status,
    Upload,
}

pub const RATES: [(Action, f64); 10] = [
    (Action::SwitchChannel, 60.0),
    (Action::RootPost, 20.0),
    (Action::ThreadReply, 6.0),
    (Action::AddReaction, 12.0),
    (Action::RemoveReaction, 2.0),
    (Action::UsersByIds, 30.0),
    (Action::Unreads, 20.0),
    (Action::Search, 3.0),
    (Action::Status, 6.0),
    (Action::Upload, 1.0),
];

/// Total actions per user-hour.
pub fn total_rate() -> f64 {
    RATES.iter().map(|(_, r)| r).sum()
}

/// The action for a uniform draw `x` in [0, 1).
pub fn pick_action(x: f64) -> Action {
    let mut acc = 0.0;
    let total = total_rate();
    for (a, r) in RATES {
        acc += r / total;
        if x < acc {
            return a;
        }
    }
    Action::Upload
}

/// Exponential wait with mean `1/rate_per_sec`, from a uniform draw `u` in (0, 1].
pub fn exp_wait(rate_per_sec: f64, u: f64) -> Duration {
    Duration::from_secs_f64((-u.ln() / rate_per_sec).min(3600.0))
}

#[derive(Default)]
pub struct Counters {
    pub logged_in: AtomicU64,
    pub login_failed: AtomicU64,
    pub ws_failed: AtomicU64,
    /// Sockets the server (or the network) closed, not us.
    pub ws_dropped: AtomicU64,
    pub ws_reconnects: AtomicU64,
    pub seq_gaps: AtomicU64,
    pub actions: AtomicU64,
    pub skipped: AtomicU64,
    pub typing_sent: AtomicU64,
    pub ready: AtomicU64,
    /// Users logged in with their socket set up and not yet stopped.
    pub online: AtomicU64,
    pub login_retries: AtomicU64,
    /// The first WebSocket failure, for the report.
    pub first_ws_error: parking_lot::Mutex<Option<String>>,
}

/// Everything users share.
pub struct Ctx {
    pub opts: Opts,
    pub servers: Vec<SocketAddr>,
    pub world: RwLock<World>,
    pub reg: Registry,
    pub metrics: Metrics,
    pub counters: Counters,
    pub pending_seq: AtomicU64,
}

impl Ctx {
    pub fn node_of(&self, u: u32) -> u16 {
        crate::seed::node_for(u, self.opts.teams, self.servers.len() as u32)
    }
}

/// What one user needs to know about the world (copied once).
struct Me {
    idx: u32,
    id: String,
    name: String,
    team_id: String,
    teammates: Vec<String>,
    channels: Vec<(u32, String)>,
    password: String,
}

/// Login attempts per user before it counts as failed.
const LOGIN_ATTEMPTS: u32 = 5;

const EMOJI: [&str; 6] = ["thumbsup", "smile", "tada", "heart", "eyes", "rocket"];

struct User {
    ctx: Arc<Ctx>,
    me: Me,
    http: Http,
    rng: StdRng,
    sock: Option<Socket>,
    /// Index into `me.channels`.
    current: usize,
    known: Vec<PostRef>,
    reactions: Vec<(String, &'static str)>,
}

/// Runs user `u`: logs in at `start_at`, acts until `actions` is cancelled, keeps the socket
/// until `sockets` is cancelled.
pub async fn run_user(
    ctx: Arc<Ctx>,
    u: u32,
    start_at: tokio::time::Instant,
    actions: CancellationToken,
    sockets: CancellationToken,
) {
    let me = {
        let w = ctx.world.read();
        let user = &w.users[u as usize];
        let team = &w.teams[user.team as usize];
        let mut rng = rand::rng();
        let teammates = (0..40)
            .map(|_| {
                w.users[team.users[rng.random_range(0..team.users.len())] as usize]
                    .id
                    .clone()
            })
            .collect();
        Me {
            idx: u,
            id: user.id.clone(),
            name: user.name.clone(),
            team_id: team.id.clone(),
            teammates,
            channels: user
                .channels
                .iter()
                .map(|c| (*c, w.channels[*c as usize].id.clone()))
                .collect(),
            password: w.password.clone(),
        }
    };
    let (Some(src), Some(server)) = (
        user_addr(u),
        ctx.servers.get(ctx.node_of(u) as usize).copied(),
    ) else {
        return;
    };
    let mut user = User {
        http: Http::new(src, server),
        rng: StdRng::from_rng(&mut rand::rng()),
        ctx,
        me,
        sock: None,
        current: 0,
        known: Vec::new(),
        reactions: Vec::new(),
    };
    tokio::select! {
        _ = actions.cancelled() => return,
        _ = tokio::time::sleep_until(start_at) => {}
    }
    // A client whose login times out or is refused retries a few times with a pause, as
    // the webapp does; Argon2 is capped at the core count, so a fast ramp queues logins.
    let mut attempt = 0;
    while !user.login().await {
        attempt += 1;
        if attempt >= LOGIN_ATTEMPTS {
            user.ctx
                .counters
                .login_failed
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        user.ctx
            .counters
            .login_retries
            .fetch_add(1, Ordering::Relaxed);
        let pause = Duration::from_millis(user.rng.random_range(1000..3000));
        tokio::select! {
            _ = actions.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    user.ctx.counters.logged_in.fetch_add(1, Ordering::Relaxed);
    user.connect().await;
    // Initial load: the first channel's page and view, as a client does on start.
    user.switch_to(0).await;
    user.ctx.counters.ready.fetch_add(1, Ordering::Relaxed);
    user.ctx.counters.online.fetch_add(1, Ordering::Relaxed);
    let rate = total_rate() * user.ctx.opts.rate_scale.max(0.0) / 3600.0;
    loop {
        let wait = if rate > 0.0 {
            exp_wait(rate, 1.0 - user.rng.random::<f64>())
        } else {
            Duration::from_secs(3600)
        };
        tokio::select! {
            _ = actions.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        if user
            .sock
            .as_ref()
            .is_none_or(|s| !s.alive.load(Ordering::Acquire))
        {
            user.ctx
                .counters
                .ws_reconnects
                .fetch_add(1, Ordering::Relaxed);
            user.connect().await;
        }
        let a = pick_action(user.rng.random::<f64>());
        user.ctx.counters.actions.fetch_add(1, Ordering::Relaxed);
        user.act(a).await;
    }
    sockets.cancelled().await;
    if let Some(s) = user.sock.as_mut() {
        ws::close(s).await;
    }
    user.ctx.counters.online.fetch_sub(1, Ordering::Relaxed);
}

impl User {
    /// One timed call; the reply when it was answered.
    async fn call(&mut self, ep: Ep, req: api::Req) -> Option<Reply> {
        let (m, path, body) = req;
        let t0 = Instant::now();
        let r = self.http.call(m, &path, body).await;
        let d = t0.elapsed();
        match r {
            Ok(r) => {
                self.ctx.metrics.call(ep, d, Outcome::Status(r.status));
                Some(r)
            }
            Err(f) => {
                self.ctx.metrics.call(ep, d, Outcome::Failed(f));
                None
            }
        }
    }

    async fn login(&mut self) -> bool {
        let d = self.ctx.opts.driver;
        let req = api::login(d, &self.me.name, &self.me.password);
        match self.call(Ep::Login, req).await {
            Some(r) if r.status == 200 => {
                self.http.token = api::login_token(d, &r);
                self.http.token.is_some()
            }
            _ => false,
        }
    }

    async fn connect(&mut self) {
        let Some(token) = self.http.token.clone() else {
            return;
        };
        let t0 = Instant::now();
        match ws::connect(&self.ctx, self.me.idx, &token).await {
            Ok(s) => {
                self.ctx
                    .metrics
                    .call(Ep::WsConnect, t0.elapsed(), Outcome::Status(101));
                self.sock = Some(s);
            }
            Err(e) => {
                self.ctx.counters.ws_failed.fetch_add(1, Ordering::Relaxed);
                self.ctx
                    .counters
                    .first_ws_error
                    .lock()
                    .get_or_insert_with(|| format!("{e:#}"));
                self.ctx.metrics.call(
                    Ep::WsConnect,
                    t0.elapsed(),
                    Outcome::Failed(crate::net::Failure::Transport),
                );
                self.sock = None;
            }
        }
    }

    fn skip(&self) {
        self.ctx.counters.skipped.fetch_add(1, Ordering::Relaxed);
    }

    async fn act(&mut self, a: Action) {
        match a {
            Action::SwitchChannel => {
                let n = self.me.channels.len();
                if n > 1 {
                    let next = (self.current + self.rng.random_range(1..n)) % n;
                    self.switch_to(next).await;
                }
            }
            Action::RootPost => {
                for _ in 0..self.rng.random_range(1..=2) {
                    self.typing("").await;
                    let pause = self.rng.random_range(200..800);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                self.post(None, Vec::new()).await;
            }
            Action::ThreadReply => {
                let Some((_, root)) = self.random_known() else {
                    return self.skip();
                };
                let d = self.ctx.opts.driver;
                if self.call(Ep::Thread, api::thread(d, &root)).await.is_some() {
                    self.post(Some(root), Vec::new()).await;
                }
            }
            Action::AddReaction => {
                let Some((pid, _)) = self.random_known() else {
                    return self.skip();
                };
                let emoji = EMOJI[self.rng.random_range(0..EMOJI.len())];
                let req = api::add_reaction(self.ctx.opts.driver, &self.me.id, &pid, emoji);
                if self
                    .call(Ep::AddReaction, req)
                    .await
                    .is_some_and(|r| r.status < 300)
                    && !self.reactions.contains(&(pid.clone(), emoji))
                {
                    self.reactions.push((pid, emoji));
                }
            }
            Action::RemoveReaction => {
                if self.reactions.is_empty() {
                    return self.skip();
                }
                let i = self.rng.random_range(0..self.reactions.len());
                let (pid, emoji) = self.reactions.swap_remove(i);
                let req = api::remove_reaction(self.ctx.opts.driver, &self.me.id, &pid, emoji);
                self.call(Ep::RemoveReaction, req).await;
            }
            Action::UsersByIds => {
                let k = self.rng.random_range(5..=20).min(self.me.teammates.len());
                let start = self.rng.random_range(0..self.me.teammates.len().max(1));
                let ids: Vec<&str> = (0..k)
                    .map(|i| self.me.teammates[(start + i) % self.me.teammates.len()].as_str())
                    .collect();
                let req = api::users_by_ids(self.ctx.opts.driver, &ids);
                self.call(Ep::UsersByIds, req).await;
            }
            Action::Unreads => {
                let req = api::unreads(self.ctx.opts.driver, &self.me.team_id);
                self.call(Ep::Unreads, req).await;
            }
            Action::Search => {
                let word = {
                    let w = self.ctx.world.read();
                    w.words[self.rng.random_range(0..w.words.len())].clone()
                };
                let req = api::search(&self.me.team_id, &word);
                self.call(Ep::Search, req).await;
            }
            Action::Status => {
                let req = api::status(self.ctx.opts.driver, &self.me.id);
                self.call(Ep::Status, req).await;
            }
            Action::Upload => {
                let size = self.rng.random_range(1..=100 * 1024);
                let mut data = vec![0u8; size];
                self.rng.fill(&mut data[..]);
                let boundary = format!("lgboundary{:016x}", self.rng.random::<u64>());
                let cid = self.me.channels[self.current].1.clone();
                let r = self
                    .call(Ep::Upload, api::upload(&cid, &data, &boundary))
                    .await;
                match r
                    .filter(|r| r.status == 201)
                    .and_then(|r| r.json()["id"].as_str().map(str::to_owned))
                {
                    Some(fid) => self.post(None, vec![fid]).await,
                    None => self.skip(),
                }
            }
        }
    }

    fn random_known(&mut self) -> Option<PostRef> {
        if self.known.is_empty() {
            return None;
        }
        Some(self.known[self.rng.random_range(0..self.known.len())].clone())
    }

    async fn typing(&mut self, parent: &str) {
        let cid = self.me.channels[self.current].1.clone();
        if let Some(s) = self.sock.as_mut()
            && ws::typing(s, &cid, parent).await
        {
            self.ctx
                .counters
                .typing_sent
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Posts page + view of channel `i`.
    async fn switch_to(&mut self, i: usize) {
        let d = self.ctx.opts.driver;
        let prev = self.me.channels[self.current].1.clone();
        let cid = self.me.channels[i].1.clone();
        self.current = i;
        self.known.clear();
        if let Some(r) = self.call(Ep::PostsPage, api::posts_page(d, &cid)).await
            && r.status == 200
        {
            let mut posts = api::page_posts(d, &r.json());
            // Keep the newest 20: enough targets for threads and reactions.
            let skip = posts.len().saturating_sub(20);
            self.known = posts.split_off(skip);
        }
        let prev = if prev == cid { String::new() } else { prev };
        self.call(Ep::View, api::view(d, &cid, &prev)).await;
    }

    async fn post(&mut self, root: Option<String>, file_ids: Vec<String>) {
        let (chan_idx, cid) = self.me.channels[self.current].clone();
        let words = self.rng.random_range(3..12);
        let body = self.ctx.world.read().sentence(&mut self.rng, words);
        let tok = self.ctx.reg.sending(chan_idx, self.me.idx);
        let message = format!("{body} {}", token(tok));
        let pending = format!(
            "{}:{}",
            self.me.id,
            self.ctx.pending_seq.fetch_add(1, Ordering::Relaxed)
        );
        let req = api::create_post(
            self.ctx.opts.driver,
            &NewPost {
                channel: &cid,
                message: &message,
                root: root.as_deref(),
                file_ids: &file_ids,
                pending: &pending,
            },
        );
        let r = self.call(Ep::CreatePost, req).await;
        self.ctx
            .reg
            .answered(tok, r.as_ref().map_or(0, |r| r.status));
        if let Some(p) = r
            .filter(|r| r.status == 201)
            .and_then(|r| api::created_post(&r.json()))
        {
            if self.known.len() >= 40 {
                self.known.remove(0);
            }
            self.known.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_mix_follows_the_spec_rates() {
        assert_eq!(total_rate(), 160.0);
        let n = 160_000;
        let mut counts = [0u32; 10];
        for i in 0..n {
            let a = pick_action((i as f64 + 0.5) / n as f64);
            counts[RATES.iter().position(|(x, _)| *x == a).unwrap()] += 1;
        }
        for ((_, r), c) in RATES.iter().zip(counts) {
            assert!((f64::from(c) - r * 1000.0).abs() <= 1.0, "{r} → {c}");
        }
        assert_eq!(pick_action(0.999_999_999), Action::Upload);
    }

    #[test]
    fn exponential_waits_have_the_right_median() {
        // Median of Exp(λ) = ln 2 / λ.
        let w = exp_wait(2.0, 0.5);
        assert!((w.as_secs_f64() - std::f64::consts::LN_2 / 2.0).abs() < 1e-9);
        assert_eq!(exp_wait(1.0, 1.0), Duration::ZERO);
        assert!(exp_wait(1e-9, 1e-300) <= Duration::from_secs(3600));
    }
}
