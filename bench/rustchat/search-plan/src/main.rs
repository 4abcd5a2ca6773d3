//! `rustchat-search-bench`: the SQLite search statement before and after the plan fix of
//! issue 7 (spec §8, CHAT-R31), timed side by side in one run on one seeded database.
//!
//! 1. Seeds `<dir>/seeded.db` through rustchat's store with the spec's layout (see
//!    [`seed`]), unless it exists (then it is reused; `--reseed` starts over).
//! 2. Copies it to `<dir>/work.db` so every run starts from the same FTS5 index state.
//! 3. Draws `--searches` searches the way the loadgen does (a random seed word, a random
//!    user, that user's team, first page of 20) and prints `EXPLAIN QUERY PLAN` of both
//!    statements, then times them interleaved, checking every answer is identical.
//! 4. Merges the copy's FTS5 index into one segment (`'optimize'`) and times both
//!    statements again: how much of the difference is the index's shape, not the plan.
//!
//! The "before" statement is a frozen copy ([`OLD_SEARCH_SQL`]); the "after" one is the
//! statement the server runs (`rustchat::store::sqlite_ops::search_statement`).
//! Exit status: 0 done, 1 the statements disagreed or a step failed, 2 bad flags.

mod measure;
mod seed;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::{Connection, SqliteConnection};

use measure::{Search, Stats};

/// The text-search statement as it was before issue 7's fix (commit 612b58d,
/// `store/ops_more.rs`, the `(false, true)` arm), expanded. It joins `posts_fts` by rowid,
/// which lets the planner probe the FTS5 index once per candidate post.
pub const OLD_SEARCH_SQL: &str = "SELECT p.seq, p.id, p.channel_id, p.user_id, p.root_id, \
p.message, p.type, p.props, p.file_ids, p.created_at, p.updated_at, p.edited_at, \
p.deleted_at, p.reply_count, p.last_reply_at, p.client_msg_id, p.has_reactions FROM posts p \
JOIN channels c ON c.id = p.channel_id JOIN channel_members m ON m.channel_id = p.channel_id \
AND m.user_id = $1 JOIN users u ON u.id = p.user_id JOIN posts_fts ON posts_fts.rowid = \
p.seq WHERE posts_fts MATCH $9 AND p.deleted_at = 0 AND ($2 = '' OR c.team_id = $2 OR \
c.team_id = '') AND p.created_at >= $5 AND p.created_at < $6 AND ($3 = '[]' OR u.username \
IN (SELECT value FROM json_each($3))) AND ($4 = '[]' OR c.name IN (SELECT value FROM \
json_each($4))) ORDER BY p.created_at DESC, p.seq DESC LIMIT $7 OFFSET $8";

#[derive(Debug, Parser)]
#[command(
    name = "rustchat-search-bench",
    about = "rustchat SQLite search statement, before vs after (issue 7), on one seeded database"
)]
struct Opts {
    /// Where seeded.db (kept between runs) and work.db (the copy measured) live.
    #[arg(long, default_value = "/tmp/rustchat-search-bench")]
    dir: PathBuf,
    /// Seed again even if seeded.db exists.
    #[arg(long)]
    reseed: bool,
    #[arg(long, default_value_t = 5)]
    teams: u32,
    #[arg(long, default_value_t = 5000)]
    users: u32,
    #[arg(long, default_value_t = 100_000)]
    posts: u32,
    /// Writes in flight while seeding (the loadgen's default).
    #[arg(long, default_value_t = 32)]
    seed_concurrency: usize,
    /// Searches timed per phase (each runs both statements).
    #[arg(long, default_value_t = 400)]
    searches: usize,
    /// Seed of the random layout, posts and searches.
    #[arg(long, default_value_t = 7)]
    rng_seed: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let opts = Opts::parse();
    if let Err(e) = run(&opts).await {
        eprintln!("rustchat-search-bench: {e:#}");
        std::process::exit(1);
    }
}

async fn run(opts: &Opts) -> Result<()> {
    std::fs::create_dir_all(&opts.dir).with_context(|| format!("{}", opts.dir.display()))?;
    let seeded = opts.dir.join("seeded.db");
    if opts.reseed {
        for suffix in ["", "-wal", "-shm", ".migrate.lock"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", seeded.display()));
        }
    }
    let store = seed::open(&seeded).await?;
    let layout = match seed::load(&store).await {
        Ok(l) => l,
        Err(_) => {
            let size = seed::Size {
                teams: opts.teams,
                users: opts.users,
                posts: opts.posts,
                concurrency: opts.seed_concurrency,
                rng_seed: opts.rng_seed,
            };
            seed::seed(&store, size).await?
        }
    };
    store.close().await;
    let work = opts.dir.join("work.db");
    copy_db(&seeded, &work).await?;
    let mut c = SqliteConnection::connect(&format!("sqlite://{}", work.display())).await?;

    let mut rng = StdRng::seed_from_u64(opts.rng_seed ^ 0x5ea2c4);
    let searches: Vec<Search> = (0..opts.searches)
        .map(|_| {
            let (user_id, team_id) = layout.users[rng.random_range(0..layout.users.len())].clone();
            let word = &layout.words[rng.random_range(0..layout.words.len())];
            let fts = rustchat::search_query::parse(word)
                .ok()
                .and_then(|q| q.fts5_match())
                .unwrap_or_else(|| format!("\"{word}\""));
            Search {
                user_id,
                team_id,
                fts,
                limit: 20,
                offset: 0,
            }
        })
        .collect();
    let new_sql = rustchat::store::sqlite_ops::search_statement(true);
    println!("# {}", machine_line());
    println!(
        "# database: {} posts, {} users; {} searches per phase (first page of 20, a seed word, \
         the user's team)",
        scalar(&mut c, "SELECT count(*) FROM posts").await?,
        layout.users.len(),
        searches.len()
    );
    println!(
        "\nEXPLAIN QUERY PLAN, before:\n{}",
        measure::plan(&mut c, OLD_SEARCH_SQL, &searches[0]).await?
    );
    println!(
        "EXPLAIN QUERY PLAN, after:\n{}",
        measure::plan(&mut c, new_sql, &searches[0]).await?
    );

    phase(&mut c, "as seeded", new_sql, &searches).await?;
    let started = std::time::Instant::now();
    sqlx::query("INSERT INTO posts_fts(posts_fts) VALUES ('optimize')")
        .execute(&mut c)
        .await?;
    println!(
        "\n(FTS5 'optimize': {:.2} s)",
        started.elapsed().as_secs_f64()
    );
    phase(&mut c, "after FTS5 'optimize'", new_sql, &searches).await?;
    c.close().await?;
    Ok(())
}

/// Warms the cache with a few searches, then times both statements on all of them.
async fn phase(
    c: &mut SqliteConnection,
    label: &str,
    new_sql: &'static str,
    s: &[Search],
) -> Result<()> {
    let segments = scalar(c, "SELECT count(DISTINCT segid) FROM posts_fts_idx").await?;
    let warm = &s[..s.len().min(20)];
    measure::compare(c, OLD_SEARCH_SQL, new_sql, warm).await?;
    let (old, new, rows) = measure::compare(c, OLD_SEARCH_SQL, new_sql, s).await?;
    println!(
        "\n## {label}: FTS5 segments {segments}; both statements returned the same {rows} rows"
    );
    println!("| statement | mean | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    row("before", &old);
    row("after", &new);
    println!(
        "| ratio before/after | {:.1}x | {:.1}x | {:.1}x | {:.1}x |",
        ratio(old.mean, new.mean),
        ratio(old.p50, new.p50),
        ratio(old.p99, new.p99),
        ratio(old.max, new.max)
    );
    Ok(())
}

fn row(name: &str, s: &Stats) {
    println!(
        "| {name} | {} | {} | {} | {} |",
        ms(s.mean),
        ms(s.p50),
        ms(s.p99),
        ms(s.max)
    );
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

async fn scalar(c: &mut SqliteConnection, sql: &'static str) -> Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(&mut *c).await?)
}

/// A byte copy of `from` with its WAL checkpointed first, so the copy has the same pages,
/// fragmentation and FTS5 segments as the seeded file.
async fn copy_db(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", to.display()));
    }
    let mut c = SqliteConnection::connect(&format!("sqlite://{}", from.display())).await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut c)
        .await?;
    c.close().await?;
    std::fs::copy(from, to).with_context(|| format!("copy to {}", to.display()))?;
    Ok(())
}

/// CPU model, cores and load average, for the results table.
fn machine_line() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("{cpu}, {cores} cores, load average {}", load.join(" "))
}
