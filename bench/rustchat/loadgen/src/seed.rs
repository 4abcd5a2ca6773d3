//! Seeding through the public API (§8 Method): teams, channels, users, memberships, DMs and
//! existing posts, built as a [`World`] the simulation then reads.
//!
//! Layout (defaults): `teams` open teams created by a loadgen admin (its creator, hence
//! team_admin); per team `public_channels` public and `private_channels` private channels;
//! users are dealt round-robin to teams; each joins its team (and so town-square), joins
//! `channels_per_user - 2` public channels itself and is added to 2 private ones by the admin,
//! and has 3 DMs: a ring of the team's users in that batch (left and right neighbours) plus
//! the user half-way round. Names carry a random run tag so a reused data dir never clashes.
//!
//! Register and login are auth-rate-limited per IP, so they go out from the user's own
//! address; everything else goes through a pool of worker connections (127.2.0.0/16).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use parking_lot::Mutex;
use rand::Rng;
use serde_json::{Value, json};

use crate::net::{Body, Http, user_addr, worker_addr};
use crate::opts::Opts;

/// What a channel is, for choosing traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Town,
    Public,
    Private,
    Direct,
}

#[derive(Clone)]
pub struct Channel {
    pub id: String,
    pub team: u32,
    pub kind: Kind,
    /// Simulated members (the admin is not simulated).
    pub members: Vec<u32>,
}

#[derive(Clone)]
pub struct Team {
    pub id: String,
    pub town: u32,
    pub public: Vec<u32>,
    pub private: Vec<u32>,
    pub users: Vec<u32>,
}

#[derive(Clone)]
pub struct User {
    pub id: String,
    pub name: String,
    pub team: u32,
    /// Channel indexes: town-square, team channels, DMs.
    pub channels: Vec<u32>,
    /// Which server node this user talks to.
    pub node: u16,
    /// Session from seeding (used only for seeding posts; the simulation logs in again).
    pub seed_token: String,
}

#[derive(Clone)]
pub struct World {
    pub tag: String,
    pub password: String,
    pub admin_token: String,
    pub teams: Vec<Team>,
    pub channels: Vec<Channel>,
    pub users: Vec<User>,
    pub words: Vec<String>,
    by_id: HashMap<String, u32>,
}

impl World {
    pub fn is_member(&self, user: u32, channel: u32) -> bool {
        self.users
            .get(user as usize)
            .is_some_and(|u| u.channels.contains(&channel))
    }

    fn add_channel(&mut self, id: String, team: u32, kind: Kind) -> u32 {
        if let Some(i) = self.by_id.get(&id) {
            return *i;
        }
        let i = self.channels.len() as u32;
        self.by_id.insert(id.clone(), i);
        self.channels.push(Channel {
            id,
            team,
            kind,
            members: Vec::new(),
        });
        i
    }

    fn join(&mut self, user: u32, channel: u32) {
        let u = &mut self.users[user as usize];
        if !u.channels.contains(&channel) {
            u.channels.push(channel);
            self.channels[channel as usize].members.push(user);
        }
    }

    /// A short message of seed vocabulary.
    pub fn sentence(&self, rng: &mut impl Rng, words: usize) -> String {
        (0..words)
            .map(|_| self.words[rng.random_range(0..self.words.len())].as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Pseudo-words (syllable pairs and triples) that search can find and the mention parser
/// ignores.
pub fn vocabulary() -> Vec<String> {
    const SYL: [&str; 16] = [
        "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "do", "gu", "bel", "mor",
        "tan", "vex",
    ];
    let mut out = Vec::new();
    for (i, a) in SYL.iter().enumerate() {
        for (j, b) in SYL.iter().enumerate() {
            out.push(format!("{a}{b}"));
            if (i + j) % 5 == 0 {
                out.push(format!("{a}{b}{}", SYL[(i * 3 + j) % SYL.len()]));
            }
        }
    }
    out
}

/// Fails unless the reply has one of `ok` statuses; returns its JSON.
async fn expect(
    http: &mut Http,
    method: &str,
    path: &str,
    body: Body,
    ok: &[u16],
) -> Result<Value> {
    let r = http
        .call(method, path, body)
        .await
        .map_err(|f| anyhow!("{method} {path}: {f:?}"))?;
    if !ok.contains(&r.status) {
        bail!(
            "{method} {path}: HTTP {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
                .chars()
                .take(300)
                .collect::<String>()
        );
    }
    Ok(r.json())
}

fn str_field(v: &Value, k: &str) -> Result<String> {
    v[k].as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("response without {k}: {v}"))
}

/// Runs `n` jobs on `workers` connections concurrently (one task, many futures: seeding is
/// I/O-bound and the server does the work).
async fn pooled<T>(
    n: usize,
    workers: usize,
    server: SocketAddr,
    job: impl AsyncFn(&mut Http, usize) -> Result<T>,
) -> Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<T>>> = Mutex::new((0..n).map(|_| None).collect());
    let run = |w: usize| {
        let (next, out, job) = (&next, &out, &job);
        async move {
            let mut http = Http::new(worker_addr(w as u32), server);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), anyhow::Error>(());
                }
                let v = job(&mut http, i).await?;
                out.lock()[i] = Some(v);
            }
        }
    };
    futures_util::future::try_join_all((0..workers.clamp(1, 512)).map(run)).await?;
    Ok(out.into_inner().into_iter().flatten().collect())
}

/// Admin, teams and channels.
pub async fn base(opts: &Opts, server: SocketAddr) -> Result<World> {
    let mut rng = rand::rng();
    let tag: String = (0..4)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect();
    let password = format!("lg-password-{tag}");
    let admin = format!("lg{tag}admin");
    let mut http = Http::new(worker_addr(0), server);
    expect(
        &mut http,
        "POST",
        "/api/v1/auth/register",
        Body::Json(json!({"username": admin, "email": format!("{admin}@example.com"), "password": password})),
        &[201],
    )
    .await
    .context("register the loadgen admin")?;
    let login = expect(
        &mut http,
        "POST",
        "/api/v1/auth/login",
        Body::Json(json!({"login": admin, "password": password})),
        &[200],
    )
    .await?;
    let admin_token = str_field(&login, "token")?;
    let mut world = World {
        tag: tag.clone(),
        password,
        admin_token: admin_token.clone(),
        teams: Vec::new(),
        channels: Vec::new(),
        users: Vec::new(),
        words: vocabulary(),
        by_id: HashMap::new(),
    };
    http.token = Some(admin_token.clone());
    for t in 0..opts.teams {
        let team = expect(
            &mut http,
            "POST",
            "/api/v1/teams",
            Body::Json(json!({"name": format!("lg-{tag}-t{t}"), "display_name": format!("Load team {t}"), "open": true})),
            &[201],
        )
        .await?;
        let tid = str_field(&team, "id")?;
        let mine = expect(
            &mut http,
            "GET",
            &format!("/api/v1/teams/{tid}/channels"),
            Body::Empty,
            &[200],
        )
        .await?;
        let town = mine
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == "town-square"))
            .ok_or_else(|| anyhow!("team {tid} has no town-square: {mine}"))?;
        let town = world.add_channel(str_field(town, "id")?, t, Kind::Town);
        world.teams.push(Team {
            id: tid,
            town,
            public: Vec::new(),
            private: Vec::new(),
            users: Vec::new(),
        });
    }
    // Channels, created concurrently by the admin.
    let per_team = (opts.public_channels + opts.private_channels) as usize;
    let jobs = per_team * opts.teams as usize;
    let team_ids: Vec<String> = world.teams.iter().map(|t| t.id.clone()).collect();
    let created = pooled(jobs, opts.seed_concurrency, server, async |http: &mut Http, i| {
        let (t, c) = (i / per_team, (i % per_team) as u32);
        let public = c < opts.public_channels;
        let (name, kind) = if public {
            (format!("pub-{c}"), "public")
        } else {
            (format!("priv-{}", c - opts.public_channels), "private")
        };
        http.token = Some(admin_token.clone());
        let ch = expect(
            http,
            "POST",
            &format!("/api/v1/teams/{}/channels", team_ids[t]),
            Body::Json(json!({"name": name, "display_name": name, "type": kind, "purpose": "load test"})),
            &[201],
        )
        .await?;
        Ok((t as u32, public, str_field(&ch, "id")?))
    })
    .await?;
    for (t, public, id) in created {
        let kind = if public { Kind::Public } else { Kind::Private };
        let c = world.add_channel(id, t, kind);
        let team = &mut world.teams[t as usize];
        if public {
            team.public.push(c);
        } else {
            team.private.push(c);
        }
    }
    Ok(world)
}

/// Adds `n` users (registered, logged in, in their team, channels and DMs).
pub async fn grow(world: &mut World, opts: &Opts, servers: &[SocketAddr], n: u32) -> Result<()> {
    let server = servers[0];
    let first = world.users.len() as u32;
    let last = first
        .checked_add(n)
        .filter(|l| user_addr(l.saturating_sub(1)).is_some())
        .ok_or_else(|| anyhow!("at most 65,534 users fit in 127.1.0.0/16"))?;
    let (tag, password) = (world.tag.clone(), world.password.clone());
    // 1. Register and log in from each user's own address.
    let accounts = pooled(n as usize, opts.seed_concurrency, server, async |_w: &mut Http, i| {
        let u = first + i as u32;
        let name = format!("lg{tag}{u}");
        let src = user_addr(u).ok_or_else(|| anyhow!("no address for user {u}"))?;
        let mut http = Http::new(src, server);
        let reg = expect(
            &mut http,
            "POST",
            "/api/v1/auth/register",
            Body::Json(json!({"username": name, "email": format!("{name}@example.com"), "password": password})),
            &[201],
        )
        .await?;
        let login = expect(
            &mut http,
            "POST",
            "/api/v1/auth/login",
            Body::Json(json!({"login": name, "password": password})),
            &[200],
        )
        .await?;
        Ok((str_field(&reg, "id")?, name, str_field(&login, "token")?))
    })
    .await?;
    let nodes = servers.len().max(1) as u32;
    for (i, (id, name, token)) in accounts.into_iter().enumerate() {
        let u = first + i as u32;
        let team = u % opts.teams;
        world.users.push(User {
            id,
            name,
            team,
            channels: Vec::new(),
            node: node_for(u, opts.teams, nodes),
            seed_token: token,
        });
        world.teams[team as usize].users.push(u);
    }
    // 2. Team, town-square and channel memberships.
    let plan: Vec<(u32, Vec<u32>, Vec<u32>)> = (first..last)
        .map(|u| {
            let t = &world.teams[(u % opts.teams) as usize];
            let private_n = 2.min(t.private.len()).min(opts.channels_per_user as usize);
            let public_n = (opts.channels_per_user as usize - private_n).min(t.public.len());
            // Deterministic spread: step 4 (resp. 5) through the channel list from a start
            // that moves with the user, so every channel gets a similar member count.
            let public = pick(&t.public, public_n, u as usize * 7, 4);
            let private = pick(&t.private, private_n, u as usize * 3, 5);
            (u, public, private)
        })
        .collect();
    let (users, teams, channels, admin) = (
        &world.users,
        &world.teams,
        &world.channels,
        &world.admin_token,
    );
    pooled(
        plan.len(),
        opts.seed_concurrency,
        server,
        async |http: &mut Http, i| {
            let (u, public, private) = &plan[i];
            let user = &users[*u as usize];
            let team = &teams[user.team as usize];
            http.token = Some(user.seed_token.clone());
            expect(
                http,
                "POST",
                &format!("/api/v1/teams/{}/join", team.id),
                Body::Empty,
                &[200],
            )
            .await?;
            for c in public {
                let cid = &channels[*c as usize].id;
                expect(
                    http,
                    "POST",
                    &format!("/api/v1/channels/{cid}/join"),
                    Body::Empty,
                    &[200],
                )
                .await?;
            }
            http.token = Some(admin.clone());
            for c in private {
                let cid = &channels[*c as usize].id;
                expect(
                    http,
                    "POST",
                    &format!("/api/v1/channels/{cid}/members"),
                    Body::Json(json!({"user_id": user.id})),
                    &[200, 201],
                )
                .await?;
            }
            Ok(())
        },
    )
    .await?;
    for (u, public, private) in &plan {
        let town = world.teams[(u % opts.teams) as usize].town;
        world.join(*u, town);
        for c in public.iter().chain(private) {
            world.join(*u, *c);
        }
    }
    // 3. DMs: within each team's new users, a ring plus the opposite user.
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    for t in 0..opts.teams {
        let batch: Vec<u32> = (first..last).filter(|u| u % opts.teams == t).collect();
        let k = batch.len();
        if k < 2 {
            continue;
        }
        for i in 0..k {
            if k > 2 || i == 0 {
                pairs.push((batch[i], batch[(i + 1) % k]));
            }
            if k >= 4 && i < k / 2 {
                pairs.push((batch[i], batch[i + k / 2]));
            }
        }
    }
    let users = &world.users;
    let dms = pooled(
        pairs.len(),
        opts.seed_concurrency,
        server,
        async |http: &mut Http, i| {
            let (a, b) = pairs[i];
            http.token = Some(users[a as usize].seed_token.clone());
            let ch = expect(
                http,
                "POST",
                "/api/v1/channels/direct",
                Body::Json(json!({"user_id": users[b as usize].id})),
                &[200, 201],
            )
            .await?;
            str_field(&ch, "id")
        },
    )
    .await?;
    for ((a, b), id) in pairs.into_iter().zip(dms) {
        let team = world.users[a as usize].team;
        let c = world.add_channel(id, team, Kind::Direct);
        world.join(a, c);
        world.join(b, c);
    }
    Ok(())
}

/// The node user `u` talks to. Users are dealt to teams round-robin (`u % teams`), so the
/// node follows `u / teams`: every team, and so every channel, spans all nodes and
/// multi-node runs see cross-node deliveries.
pub fn node_for(u: u32, teams: u32, nodes: u32) -> u16 {
    ((u / teams.max(1)) % nodes.max(1)) as u16
}

/// `n` distinct items of `from`, starting at `start`, stepping by `step` (coprime steps
/// are not required: collisions move to the next free slot).
pub fn pick(from: &[u32], n: usize, start: usize, step: usize) -> Vec<u32> {
    let len = from.len();
    let mut out: Vec<u32> = Vec::with_capacity(n);
    let mut pos = start;
    while out.len() < n.min(len) {
        let mut i = pos % len;
        while out.contains(&from[i]) {
            i = (i + 1) % len;
        }
        out.push(from[i]);
        pos += step;
    }
    out
}

/// Creates `n` existing posts by random users in random channels of theirs.
pub async fn posts(world: &World, opts: &Opts, server: SocketAddr, n: u32) -> Result<()> {
    if world.users.is_empty() {
        return Ok(());
    }
    pooled(
        n as usize,
        opts.seed_concurrency,
        server,
        async |http: &mut Http, _i| {
            let (user, cid, message) = {
                let mut rng = rand::rng();
                let u = &world.users[rng.random_range(0..world.users.len())];
                let c = u.channels[rng.random_range(0..u.channels.len())];
                let len = rng.random_range(3..14);
                (
                    u,
                    &world.channels[c as usize].id,
                    world.sentence(&mut rng, len),
                )
            };
            http.token = Some(user.seed_token.clone());
            expect(
                http,
                "POST",
                &format!("/api/v1/channels/{cid}/posts"),
                Body::Json(json!({"message": message})),
                &[201],
            )
            .await?;
            Ok(())
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_team_spans_every_node() {
        for t in 0..5 {
            let nodes: Vec<u16> = (0..20)
                .filter(|u| u % 5 == t)
                .map(|u| node_for(u, 5, 2))
                .collect();
            assert!(nodes.contains(&0) && nodes.contains(&1), "{nodes:?}");
        }
        assert_eq!(node_for(7, 0, 0), 0);
    }

    #[test]
    fn pick_is_distinct_and_bounded() {
        let from: Vec<u32> = (100..150).collect();
        for u in 0..200 {
            let p = pick(&from, 12, u * 7, 4);
            let mut d = p.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), 12);
        }
        assert_eq!(pick(&from[..3], 5, 0, 4).len(), 3);
        assert!(pick(&[], 2, 0, 1).is_empty());
    }

    #[test]
    fn vocabulary_words_are_searchable_and_distinct() {
        let v = vocabulary();
        assert!(v.len() > 250);
        let mut d = v.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), v.len());
        assert!(v.iter().all(|w| w.chars().all(|c| c.is_ascii_lowercase())));
    }
}
