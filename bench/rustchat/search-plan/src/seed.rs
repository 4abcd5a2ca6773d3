//! Seeds a SQLite database with the spec's layout (§8 Method) through rustchat's own store:
//! 5 teams × 1,000 users, 50 public + 10 private channels per team, every user in
//! town-square + 12 public + 2 private channels + 3 DMs, 100,000 posts of the loadgen's
//! vocabulary by random users in random channels of theirs.
//!
//! Why through the store and not plain INSERTs: the FTS5 index's shape (how many segments,
//! how merged) depends on how posts were committed. Every row goes through the real writer
//! task with the loadgen's seeding concurrency, so posts land in the same batched
//! transactions (and the same trigger-fed FTS5 segments) as when the loadgen seeds a
//! running server over HTTP, only without the HTTP and Argon2 cost.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustchat::store::sqlite::{SqliteOptions, SqliteStore};
use rustchat::store::{NewChannel, NewPost, NewUser, channel_type};
use rustchat_loadgen::seed::{pick, vocabulary};

// rustchat's `store_read!`/`store_write!` pick the backend by rustchat's cargo features,
// which a dependent crate cannot see, so this bench calls the SQLite store directly.
macro_rules! store_read {
    ($store:expr, |$c:ident| $body:expr) => {
        $store
            .read(move |$c| {
                Box::pin(async move {
                    #[allow(unused_imports)]
                    use rustchat::store::sqlite_ops as ops;
                    $body
                })
            })
            .await
    };
}
macro_rules! store_write {
    ($store:expr, |$c:ident| $body:expr) => {
        $store
            .write(move |$c| {
                Box::pin(async move {
                    #[allow(unused_imports)]
                    use rustchat::store::sqlite_ops as ops;
                    $body
                })
            })
            .await
    };
}

/// The seeded world the searches are drawn from.
pub struct Layout {
    /// (user id, team id) per simulated user.
    pub users: Vec<(String, String)>,
    /// The search vocabulary (the loadgen's).
    pub words: Vec<String>,
}

/// How big a world to seed.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub teams: u32,
    pub users: u32,
    pub posts: u32,
    /// Writes in flight while seeding (the loadgen's `--seed-concurrency`).
    pub concurrency: usize,
    pub rng_seed: u64,
}

/// Opens `path` through rustchat's store (migrations applied, writer task running).
pub async fn open(path: &Path) -> Result<SqliteStore> {
    let opts = SqliteOptions {
        path: path.to_path_buf(),
        memory: false,
        readers: 2,
        synchronous_full: true,
        acquire_timeout: Duration::from_secs(30),
        breaker: rustchat::server::db_breaker(None),
    };
    let (s, _) = SqliteStore::open(&opts)
        .await
        .with_context(|| format!("open {}", path.display()))?;
    Ok(s)
}

/// Runs `n` writes, `concurrency` at a time, so the writer batches them as it does under
/// concurrent API traffic.
async fn concurrently<F, Fut>(n: usize, concurrency: usize, job: F) -> Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut s = futures_util::stream::iter((0..n).map(job)).buffer_unordered(concurrency.max(1));
    while let Some(r) = s.next().await {
        r?;
    }
    Ok(())
}

/// Seeds an empty database; returns the layout. Progress goes to stderr.
pub async fn seed(store: &SqliteStore, size: Size) -> Result<Layout> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(size.rng_seed);
    let admin = new_user(store, "searchbenchadmin").await?;
    let mut teams: Vec<(String, String, Vec<String>, Vec<String>)> = Vec::new();
    for t in 0..size.teams {
        let tid = rustchat::ids::new_id();
        let (tid2, a, name) = (tid.clone(), admin.clone(), format!("bench-t{t}"));
        store_write!(store, |c| ops::create_team(
            c, &tid2, &name, &name, true, &a
        )
        .await)?;
        let tid2 = tid.clone();
        let town = store_read!(store, |c| ops::public_channels(c, &tid2).await)?
            .into_iter()
            .find(|c| c.name == "town-square")
            .context("team without town-square")?
            .id;
        let (mut public, mut private) = (Vec::new(), Vec::new());
        for i in 0..60 {
            let (kind, name) = if i < 50 {
                (channel_type::OPEN, format!("pub-{i}"))
            } else {
                (channel_type::PRIVATE, format!("priv-{}", i - 50))
            };
            let ch = NewChannel {
                id: rustchat::ids::new_id(),
                team_id: tid.clone(),
                kind,
                name: name.clone(),
                display_name: name,
                purpose: String::new(),
                header: String::new(),
                creator_id: admin.clone(),
            };
            let id = ch.id.clone();
            store_write!(store, |c| ops::create_channel(c, ch).await)?;
            if i < 50 {
                public.push(id);
            } else {
                private.push(id);
            }
        }
        teams.push((tid, town, public, private));
    }
    // Users and their memberships: town-square, 12 public, 2 private (the loadgen's spread).
    let mut users: Vec<(String, String)> = Vec::new();
    let mut channels_of: Vec<Vec<String>> = Vec::new();
    for u in 0..size.users {
        let id = new_user(store, &format!("benchuser{u}")).await?;
        let (tid, town, public, private) = &teams[(u % size.teams) as usize];
        let idx = |v: &Vec<String>| (0..v.len() as u32).collect::<Vec<u32>>();
        let mut mine = vec![town.clone()];
        mine.extend(
            pick(&idx(public), 12, u as usize * 7, 4)
                .into_iter()
                .map(|i| public[i as usize].clone()),
        );
        mine.extend(
            pick(&idx(private), 2, u as usize * 3, 5)
                .into_iter()
                .map(|i| private[i as usize].clone()),
        );
        users.push((id, tid.clone()));
        channels_of.push(mine);
    }
    concurrently(users.len(), size.concurrency, |u| {
        let (uid, tid) = users[u].clone();
        let chans = channels_of[u].clone();
        async move {
            store_write!(store, |c| {
                ops::add_team_member(c, &tid, &uid, "member").await?;
                for ch in &chans {
                    ops::add_channel_member(c, ch, &uid).await?;
                }
                Ok(())
            })?;
            Ok(())
        }
    })
    .await?;
    // DMs: within each team, a ring plus the user half-way round (3 per user).
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for t in 0..size.teams as usize {
        let batch: Vec<usize> = (t..users.len()).step_by(size.teams as usize).collect();
        let k = batch.len();
        for i in 0..k {
            if k > 2 || (k == 2 && i == 0) {
                pairs.push((batch[i], batch[(i + 1) % k]));
            }
            if k >= 4 && i < k / 2 {
                pairs.push((batch[i], batch[i + k / 2]));
            }
        }
    }
    let mut dms: Vec<String> = Vec::with_capacity(pairs.len());
    for &(a, b) in &pairs {
        let mut members = vec![users[a].0.clone(), users[b].0.clone()];
        members.sort();
        let creator = users[a].0.clone();
        let (ch, _) = store_write!(store, |c| ops::direct_channel(c, &members, &creator, "")
            .await)?;
        dms.push(ch.id);
    }
    for (&(a, b), id) in pairs.iter().zip(&dms) {
        channels_of[a].push(id.clone());
        channels_of[b].push(id.clone());
    }
    eprintln!(
        "seed: {} teams, {} users, {} DMs in {:.1} s",
        size.teams,
        users.len(),
        dms.len(),
        started.elapsed().as_secs_f64()
    );
    // Posts: random user, random channel of theirs, 3..14 words (as the loadgen seeds).
    let words = vocabulary();
    let plan: Vec<NewPost> = (0..size.posts)
        .map(|_| {
            let u = rng.random_range(0..users.len());
            let chans = &channels_of[u];
            let len = rng.random_range(3..14);
            let message = (0..len)
                .map(|_| words[rng.random_range(0..words.len())].as_str())
                .collect::<Vec<_>>()
                .join(" ");
            NewPost {
                id: rustchat::ids::new_id(),
                channel_id: chans[rng.random_range(0..chans.len())].clone(),
                user_id: users[u].0.clone(),
                root_id: String::new(),
                message,
                props: "{}".into(),
                file_ids: Vec::new(),
                client_msg_id: None,
            }
        })
        .collect();
    let posts_started = Instant::now();
    concurrently(plan.len(), size.concurrency, |i| {
        let p = plan[i].clone();
        async move {
            let online = std::collections::HashSet::new();
            store_write!(store, |c| ops::create_post(c, p, &online).await)?;
            Ok(())
        }
    })
    .await?;
    eprintln!(
        "seed: {} posts in {:.1} s ({:.0}/s)",
        plan.len(),
        posts_started.elapsed().as_secs_f64(),
        plan.len() as f64 / posts_started.elapsed().as_secs_f64()
    );
    Ok(Layout { users, words })
}

/// Reads the layout back from a database seeded earlier (the users named `benchuser*`).
pub async fn load(store: &SqliteStore) -> Result<Layout> {
    let users = store_read!(store, |c| {
        Ok(sqlx::query_as::<_, (String, String)>(
            "SELECT u.id, tm.team_id FROM users u JOIN team_members tm ON tm.user_id = u.id \
             WHERE u.username LIKE 'benchuser%' ORDER BY u.created_at, u.id",
        )
        .fetch_all(&mut *c)
        .await?)
    })?;
    anyhow::ensure!(
        !users.is_empty(),
        "no benchuser* accounts: not a seeded database"
    );
    Ok(Layout {
        users,
        words: vocabulary(),
    })
}

async fn new_user(store: &SqliteStore, name: &str) -> Result<String> {
    let u = NewUser {
        id: rustchat::ids::new_id(),
        username: name.to_string(),
        email: format!("{name}@example.com"),
        // Never logged in: the bench talks to the database directly.
        password_hash: None,
        display_name: name.to_string(),
        is_bot: false,
    };
    Ok(store_write!(store, |c| ops::create_user(c, u).await)?.id)
}
