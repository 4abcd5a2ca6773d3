//! Times two statements on the same searches, interleaved, and checks they agree.
//!
//! Interleaving (old, new, new, old, ...) gives both statements the same page cache and
//! the same background load, so the ratio holds even on a busy machine where the absolute
//! numbers do not.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use sqlx::SqliteConnection;

/// One search as the API would run it: `GET /api/v1/search?q=<word>&team_id=<team>`.
#[derive(Debug, Clone)]
pub struct Search {
    pub user_id: String,
    pub team_id: String,
    /// The FTS5 `MATCH` text `search_query` renders for the word.
    pub fts: String,
    pub limit: i64,
    pub offset: i64,
}

/// Latency summary of one statement.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub mean: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Stats {
    fn of(mut v: Vec<Duration>) -> Stats {
        v.sort();
        let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
        Stats {
            mean: v.iter().sum::<Duration>() / v.len() as u32,
            p50: at(0.50),
            p99: at(0.99),
            max: v[v.len() - 1],
        }
    }
}

/// Binds a search's parameters in the statement's order: user, team, `from:` and `in:`
/// lists (none), the created_at range (all), limit, offset, the FTS5 query.
macro_rules! bind_search {
    ($q:expr, $s:expr) => {
        $q.bind(&$s.user_id)
            .bind(&$s.team_id)
            .bind("[]")
            .bind("[]")
            .bind(i64::MIN)
            .bind(i64::MAX)
            .bind($s.limit)
            .bind($s.offset)
            .bind(&$s.fts)
    };
}

/// Runs `s` with `sql` (the search statement's parameter order, see
/// `rustchat::store::sqlite_ops::search_posts`); returns the post ids in answer order.
pub async fn run(c: &mut SqliteConnection, sql: &'static str, s: &Search) -> Result<Vec<String>> {
    // The statement runs whole, as the server runs it; only (seq, id), its first two
    // columns, are decoded.
    let rows: Vec<(i64, String)> = bind_search!(sqlx::query_as(sql), s)
        .fetch_all(&mut *c)
        .await?;
    Ok(rows.into_iter().map(|(_, id)| id).collect())
}

/// `EXPLAIN QUERY PLAN` of `sql` for `s`, one indented line per plan node.
pub async fn plan(c: &mut SqliteConnection, sql: &str, s: &Search) -> Result<String> {
    let rows: Vec<(i64, i64, i64, String)> = bind_search!(
        sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}"))),
        s
    )
    .fetch_all(&mut *c)
    .await?;
    let mut depth: Vec<(i64, usize)> = Vec::new();
    let mut out = String::new();
    for (id, parent, _, detail) in rows {
        while depth.last().is_some_and(|(p, _)| *p != parent) {
            depth.pop();
        }
        let d = depth.last().map_or(0, |(_, d)| d + 1);
        out.push_str(&format!("    {}{detail}\n", "  ".repeat(d)));
        depth.push((id, d));
    }
    Ok(out)
}

/// Times `old` and `new` on every search, interleaved; fails if any answer differs.
pub async fn compare(
    c: &mut SqliteConnection,
    old: &'static str,
    new: &'static str,
    searches: &[Search],
) -> Result<(Stats, Stats, u64)> {
    let (mut t_old, mut t_new) = (Vec::new(), Vec::new());
    let mut rows = 0u64;
    for (i, s) in searches.iter().enumerate() {
        let order = if i % 2 == 0 { [old, new] } else { [new, old] };
        let mut answers = Vec::new();
        for sql in order {
            let t = Instant::now();
            let ids = run(c, sql, s).await?;
            let took = t.elapsed();
            if std::ptr::eq(sql, old) {
                t_old.push(took);
            } else {
                t_new.push(took);
            }
            answers.push(ids);
        }
        if answers[0] != answers[1] {
            bail!(
                "search {i} ({s:?}): the statements disagree:\n  {:?}\n  {:?}",
                answers[0],
                answers[1]
            );
        }
        rows += answers[0].len() as u64;
    }
    Ok((Stats::of(t_old), Stats::of(t_new), rows))
}
