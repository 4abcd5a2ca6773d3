//! Files (spec §10 test 30, CHAT-R24) and search (test 31, CHAT-R17; the search part of
//! test 36), each run on SQLite and on PostgreSQL against the real binary. The unattached
//! upload sweeper is called directly on the server's database.

mod common;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use common::{Chat, Db, urlencode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Deterministic incompressible bytes (xorshift64).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn body_json(r: &test_support::Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

fn files_dir(chat: &Chat) -> PathBuf {
    chat.dir.join("data").join("files")
}

fn tmp_entries(chat: &Chat) -> usize {
    std::fs::read_dir(files_dir(chat).join("tmp"))
        .map(|d| d.count())
        .unwrap_or(0)
}

// CHAT test 30 (R24): 1 MiB round-trips byte for byte into <files.dir>/<yyyy>/<mm>/<id>;
// HTML downloads as a sandboxed attachment, a PNG inline; over the cap → 413; a non-member
// gets 404; the client's file name loses its path parts and control characters.
both!(uploads_round_trip_and_downloads_are_sandboxed, |db| {
    let Some(chat) = Chat::start(db, &[]) else {
        return;
    };
    let (alice, _) = chat.user("alice");
    let (bob, bob_id) = chat.user("bob");
    let (cleo, _) = chat.user("cleo");
    let team = chat.team(&alice, "files");
    chat.add_to_team(&alice, &team, &bob_id);
    let open = chat.channel(&alice, &team, "shared", "public");
    let private = chat.channel(&alice, &team, "private-docs", "private");

    let data = noise(1024 * 1024, 7);
    let up = chat.upload(&alice, &private, "data.bin", "application/zip", &data);
    assert_eq!(up.status, 201, "{}", up.text());
    let info = body_json(&up);
    let id = info["id"].as_str().unwrap().to_string();
    assert_eq!(info["name"], "data.bin");
    assert_eq!(info["size"], 1024 * 1024);
    assert_eq!(info["mime_type"], "application/zip");
    assert_eq!(info["channel_id"], private.as_str());

    let down = test_support::get(
        chat.addr,
        &format!("/api/v1/files/{id}"),
        &[&format!("Authorization: Bearer {alice}")],
    );
    assert_eq!(down.status, 200);
    assert_eq!(
        Sha256::digest(&down.body),
        Sha256::digest(&data),
        "downloaded bytes differ"
    );
    assert_eq!(
        down.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        down.header("content-disposition"),
        Some("attachment; filename=\"data.bin\"; filename*=UTF-8''data.bin")
    );
    assert_eq!(down.header("content-security-policy"), Some("sandbox"));

    // Stored under <files.dir>/<yyyy>/<mm>/<id>, nothing left in tmp.
    let now = time::OffsetDateTime::now_utc();
    let on_disk = files_dir(&chat)
        .join(format!("{:04}", now.year()))
        .join(format!("{:02}", u8::from(now.month())))
        .join(&id);
    assert_eq!(std::fs::read(&on_disk).expect("stored file"), data);
    assert_eq!(tmp_entries(&chat), 0);
    assert!(chat.metric("rustchat_file_uploads_bytes_total") >= (1024 * 1024) as f64);

    // HTML: stored type kept as metadata, served as an octet-stream attachment; the name
    // loses its directories and control characters.
    let html = b"<html><script>alert(1)</script></html>";
    let up = chat.upload(&alice, &open, "../../x/evil\t.html", "text/html", html);
    assert_eq!(up.status, 201, "{}", up.text());
    let html_info = body_json(&up);
    assert_eq!(html_info["name"], "evil.html");
    assert_eq!(html_info["mime_type"], "text/html");
    let html_id = html_info["id"].as_str().unwrap().to_string();
    let down = test_support::get(
        chat.addr,
        &format!("/api/v1/files/{html_id}"),
        &[&format!("Authorization: Bearer {alice}")],
    );
    assert_eq!(down.body, html);
    assert_eq!(
        down.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(
        down.header("content-disposition")
            .is_some_and(|d| d.starts_with("attachment; filename=\"evil.html\"")),
        "{:?}",
        down.header("content-disposition")
    );
    assert_eq!(down.header("content-security-policy"), Some("sandbox"));

    // A PNG (by its magic bytes) is inline; HTML claiming to be a PNG is not.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&noise(100, 3));
    let up = chat.upload(&alice, &open, "pic.png", "image/png", &png);
    let png_id = body_json(&up)["id"].as_str().unwrap().to_string();
    let down = test_support::get(
        chat.addr,
        &format!("/api/v1/files/{png_id}"),
        &[&format!("Authorization: Bearer {alice}")],
    );
    assert_eq!(down.header("content-type"), Some("image/png"));
    assert_eq!(down.header("content-disposition"), Some("inline"));
    assert_eq!(down.header("content-security-policy"), Some("sandbox"));
    let up = chat.upload(&alice, &open, "fake.png", "image/png", html);
    assert_eq!(body_json(&up)["mime_type"], "application/octet-stream");

    // Not a member of the private channel (bob) or not even in the team (cleo): 404.
    for tok in [&bob, &cleo] {
        for path in [
            format!("/api/v1/files/{id}"),
            format!("/api/v1/files/{id}/info"),
        ] {
            let r = chat.call("GET", &path, Some(tok), None);
            assert_eq!(r.status, 404, "{path}: {}", r.text);
        }
        let r = chat.upload(tok, &private, "x.txt", "text/plain", b"x");
        assert_eq!(r.status, 404, "{}", r.text());
    }
    let r = chat.call(
        "GET",
        &format!("/api/v1/files/{id}/info"),
        Some(&alice),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["size"], 1024 * 1024);

    // Over the cap (50 MiB): 413 and no leftovers.
    let big = vec![b'a'; 50 * 1024 * 1024 + 1];
    let r = chat.upload(&alice, &open, "big.bin", "application/octet-stream", &big);
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(body_json(&r)["code"], "payload_too_large");
    assert_eq!(tmp_entries(&chat), 0);
    drop(big);

    // Bad requests: channel_id after the file, no multipart, a bad id, unknown field.
    let (ct, body) = common::multipart(&[
        ("file", Some(("a.txt", "text/plain")), b"a"),
        ("channel_id", None, open.as_bytes()),
    ]);
    let r = chat.send("POST", "/api/v1/files", Some(&alice), &ct, &body);
    assert_eq!(
        (r.status, body_json(&r)["field"].clone()),
        (400, json!("channel_id"))
    );
    let r = chat.send(
        "POST",
        "/api/v1/files",
        Some(&alice),
        "application/json",
        b"{}",
    );
    assert_eq!(r.status, 415, "{}", r.text());
    let r = chat.upload(&alice, "not-an-id", "a.txt", "text/plain", b"a");
    assert_eq!(r.status, 400, "{}", r.text());
    let (ct, body) = common::multipart(&[("other", None, b"x")]);
    assert_eq!(
        chat.send("POST", "/api/v1/files", Some(&alice), &ct, &body)
            .status,
        400
    );
    assert_eq!(
        chat.send("POST", "/api/v1/files", None, &ct, &body).status,
        401
    );

    // A post takes the upload; someone else's upload cannot be attached.
    let r = chat.call(
        "POST",
        &format!("/api/v1/channels/{open}/posts"),
        Some(&alice),
        Some(&json!({"message": "", "file_ids": [html_id]})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["file_ids"], json!([html_id]));
    let info = chat.call(
        "GET",
        &format!("/api/v1/files/{html_id}/info"),
        Some(&alice),
        None,
    );
    assert_eq!(info.json["post_id"], r.json["id"]);
});

// CHAT-R24: uploads no post took are deleted by the sweeper once older than the age
// given (24 h in production); attached ones and fresh ones stay, as do their bytes.
both!(sweeper_deletes_only_old_unattached_uploads, |db| {
    let Some(chat) = Chat::start(db, &[]) else {
        return;
    };
    let (alice, _) = chat.user("alice");
    let team = chat.team(&alice, "sweep");
    let ch = chat.channel(&alice, &team, "drop", "public");
    let upload = |name: &str| {
        let r = chat.upload(&alice, &ch, name, "text/plain", name.as_bytes());
        assert_eq!(r.status, 201, "{}", r.text());
        body_json(&r)["id"].as_str().unwrap().to_string()
    };
    let kept = upload("kept.txt");
    let dropped = upload("dropped.txt");
    let r = chat.call(
        "POST",
        &format!("/api/v1/channels/{ch}/posts"),
        Some(&alice),
        Some(&json!({"message": "with file", "file_ids": [kept]})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    // A leftover of an interrupted upload, two hours old.
    let leftover = files_dir(&chat).join("tmp").join("interrupted");
    std::fs::create_dir_all(leftover.parent().unwrap()).unwrap();
    std::fs::write(&leftover, b"partial").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&leftover)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));

    let listed = |id: &str| {
        chat.call(
            "GET",
            &format!("/api/v1/files/{id}/info"),
            Some(&alice),
            None,
        )
        .status
            == 200
    };
    assert!(listed(&dropped));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = files_dir(&chat);
    let (young, old) = rt.block_on(async {
        let store = open_store(&chat).await;
        let young =
            rustchat::api::v1::files::sweep_unattached(&store, &dir, Duration::from_secs(3600))
                .await
                .unwrap();
        let old = rustchat::api::v1::files::sweep_unattached(&store, &dir, Duration::ZERO)
            .await
            .unwrap();
        store.close().await;
        (young, old)
    });
    assert_eq!((young, old), (0, 1));
    assert!(!leftover.exists(), "old tmp leftover not swept");
    assert!(!listed(&dropped), "unattached upload still listed");
    assert!(listed(&kept), "attached upload was swept");
    let down = test_support::get(
        chat.addr,
        &format!("/api/v1/files/{kept}"),
        &[&format!("Authorization: Bearer {alice}")],
    );
    assert_eq!(down.body, b"kept.txt");
    // The swept upload's bytes are gone from disk too.
    let remaining: Vec<_> = walk(&dir)
        .into_iter()
        .filter(|p| !p.starts_with(dir.join("tmp")))
        .collect();
    assert_eq!(remaining.len(), 1, "{remaining:?}");
    assert!(remaining[0].ends_with(&kept));
});

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Opens the running server's database from the test process.
async fn open_store(chat: &Chat) -> rustchat::store::Store {
    use rustchat::store::Store;
    match chat.db {
        Db::Sqlite => {
            let opts = rustchat::store::sqlite::SqliteOptions {
                path: chat.dir.join("data").join("rustchat.db"),
                memory: false,
                readers: 1,
                synchronous_full: true,
                acquire_timeout: Duration::from_secs(5),
                breaker: rustchat::server::db_breaker(None),
            };
            Store::Sqlite(
                rustchat::store::sqlite::SqliteStore::open(&opts)
                    .await
                    .unwrap()
                    .0,
            )
        }
        Db::Postgres => {
            let opts = rustchat::store::postgres::PgOptions {
                url: chat.db_url.clone().unwrap(),
                max_connections: 2,
                min_connections: 0,
                acquire_timeout: Duration::from_secs(5),
                idle_timeout: Duration::from_secs(60),
                max_lifetime: Duration::from_secs(600),
                statement_timeout: Duration::from_secs(10),
                breaker: rustchat::server::db_breaker(None),
            };
            Store::Postgres(
                rustchat::store::postgres::PgStore::open(&opts)
                    .await
                    .unwrap()
                    .0,
            )
        }
    }
}

fn search(chat: &Chat, tok: &str, q: &str) -> common::Reply {
    chat.call(
        "GET",
        &format!("/api/v1/search?q={}", urlencode(q)),
        Some(tok),
        None,
    )
}

fn messages(r: &common::Reply) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["message"].as_str().unwrap().to_string())
        .collect()
}

// CHAT test 31 (R17): stemming (`deploy` finds "deployments"), phrases, prefixes,
// exclusions, from:, in:, dates; results newest first from the caller's channels only,
// never deleted posts.
both!(
    search_finds_stems_phrases_and_filters_in_my_channels_only,
    |db| {
        let Some(chat) = Chat::start(db, &[]) else {
            return;
        };
        let (alice, _) = chat.user("alice");
        let (bob, bob_id) = chat.user("bob");
        let (cleo, _) = chat.user("cleo");
        let team = chat.team(&alice, "search");
        chat.add_to_team(&alice, &team, &bob_id);
        let general = chat.channel(&alice, &team, "general-talk", "public");
        chat.join(&bob, &general);
        let secret = chat.channel(&alice, &team, "secret-plans", "private");
        chat.post(&alice, &general, "The deployments finished on time");
        chat.post(&bob, &general, "red green refactor cycle");
        chat.post(&alice, &general, "the quick brown fox jumps");
        chat.post(&alice, &secret, "secret deployments plan");
        let gone = chat.post(&alice, &general, "deploy this deleted message");
        let r = chat.call(
            "DELETE",
            &format!("/api/v1/posts/{}", gone["id"].as_str().unwrap()),
            Some(&alice),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text);

        // Stemming; newest first; bob never sees the private channel, nobody the deleted post.
        assert_eq!(
            messages(&search(&chat, &alice, "deploy")),
            [
                "secret deployments plan",
                "The deployments finished on time"
            ]
        );
        assert_eq!(
            messages(&search(&chat, &bob, "deploy")),
            ["The deployments finished on time"]
        );
        assert!(messages(&search(&chat, &cleo, "deploy")).is_empty());
        assert_eq!(
            messages(&search(&chat, &bob, "deplo*")),
            ["The deployments finished on time"]
        );
        // Phrases keep order and adjacency.
        assert_eq!(
            messages(&search(&chat, &bob, "\"brown fox\"")),
            ["the quick brown fox jumps"]
        );
        assert!(messages(&search(&chat, &bob, "\"fox brown\"")).is_empty());
        // Exclusions, from:, in:, and filters alone.
        assert_eq!(
            messages(&search(&chat, &alice, "deployments -secret")),
            ["The deployments finished on time"]
        );
        assert_eq!(
            messages(&search(&chat, &alice, "from:bob")),
            ["red green refactor cycle"]
        );
        assert_eq!(
            messages(&search(&chat, &alice, "from:@alice deploy")),
            [
                "secret deployments plan",
                "The deployments finished on time"
            ]
        );
        assert_eq!(
            messages(&search(&chat, &alice, "in:general-talk deploy")),
            ["The deployments finished on time"]
        );
        assert!(messages(&search(&chat, &bob, "in:secret-plans")).is_empty());
        assert!(messages(&search(&chat, &alice, "on:2000-01-01 deploy")).is_empty());
        assert_eq!(
            messages(&search(&chat, &alice, "after:2000-01-01 deploy")).len(),
            2
        );
        // Team scope and paging.
        let r = chat.call(
            "GET",
            &format!("/api/v1/search?q=deploy&team_id={team}&page=0&per_page=1"),
            Some(&alice),
            None,
        );
        assert_eq!(messages(&r), ["secret deployments plan"]);
        let r = chat.call(
            "GET",
            &format!("/api/v1/search?q=deploy&team_id={team}&page=1&per_page=1"),
            Some(&alice),
            None,
        );
        assert_eq!(messages(&r), ["The deployments finished on time"]);
        let r = chat.call(
            "GET",
            &format!("/api/v1/search?q=deploy&team_id={team}"),
            Some(&cleo),
            None,
        );
        assert_eq!(r.status, 404, "{}", r.text);
        for bad in ["per_page=101", "per_page=0", "page=-1", "page=x"] {
            let r = chat.call(
                "GET",
                &format!("/api/v1/search?q=deploy&{bad}"),
                Some(&alice),
                None,
            );
            assert_eq!(r.status, 400, "{bad}: {}", r.text);
        }
        // Nothing to search for: 400 naming q.
        for q in ["", "-deploy", "on:2024-13-01"] {
            let r = search(&chat, &alice, q);
            assert_eq!(
                (r.status, r.json["field"].clone()),
                (400, json!("q")),
                "{q:?}: {}",
                r.text
            );
        }
        assert_eq!(search(&chat, "", "deploy").status, 401);
    }
);

// CHAT test 36, search part (R30): the injection corpus and other hostile strings are
// data: never a 5xx, and every table keeps its rows.
both!(search_injection_corpus_never_fails, |db| {
    let Some(chat) = Chat::start(db, &[]) else {
        return;
    };
    let (alice, _) = chat.user("alice");
    let team = chat.team(&alice, "inject");
    let ch = chat.channel(&alice, &team, "target", "public");
    chat.post(&alice, &ch, "near and far, or not");
    let corpus = [
        "' OR 1=1 --",
        "\"; DROP TABLE posts; --",
        "%_\\",
        "NEAR(",
        "\"",
        "*",
        "-",
        "AND OR NOT",
        "\0",
        "a\0b",
        "NEAR(a b, 2)",
        "near*",
        "\"unbalanced",
        "x* -y* \"p q\"* -\"r s\"",
        "foo & bar | !baz <-> (qux):* 'quoted'",
        "ﬁ İstanbul Straße ½ ²",
        "½ \"² ³\"",
        "from:\0 in:~\0 x",
        "from:' in:%",
        "a:b col:x ^start {a b}: c",
    ];
    for q in corpus {
        let r = search(&chat, &alice, q);
        assert!(
            r.status == 200 || r.status == 400,
            "{q:?} → {}: {}",
            r.status,
            r.text
        );
    }
    let r = chat.call(
        "GET",
        &format!("/api/v1/channels/{ch}/posts"),
        Some(&alice),
        None,
    );
    assert_eq!(r.json["posts"].as_array().unwrap().len(), 1);
    assert_eq!(messages(&search(&chat, &alice, "far")).len(), 1);
});

/// A post the ordering test made, and what it expects of it.
struct Posted {
    id: String,
    channel: &'static str,
    by_bob: bool,
    /// Has the excluded word `yak`.
    yak: bool,
    /// Creation order, which is `seq` order.
    order: usize,
    created_at: i64,
}

fn ids(r: &common::Reply) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect()
}

/// Every page of `q` (optionally in one team) at `per_page`, concatenated, until a short
/// page; panics if a page repeats an id.
fn all_pages(chat: &Chat, tok: &str, q: &str, team: Option<&str>, per_page: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for page in 0.. {
        let team = team.map(|t| format!("&team_id={t}")).unwrap_or_default();
        let r = chat.call(
            "GET",
            &format!(
                "/api/v1/search?q={}{team}&page={page}&per_page={per_page}",
                urlencode(q)
            ),
            Some(tok),
            None,
        );
        let got = ids(&r);
        for id in &got {
            assert!(!out.contains(id), "{id} on two pages");
        }
        let short = got.len() < per_page;
        out.extend(got);
        if short {
            return out;
        }
    }
    unreachable!()
}

// Issue 7 (the SQLite search plan): results are exactly the caller's visible posts, ordered
// created_at DESC then seq DESC even where that differs from insertion order (an old
// created_at on a new post, equal created_at), on every page, with team scope (DMs
// included), in:/from:/date filters, exclusions, edits, deletions and leaving a channel.
both!(
    search_order_and_visibility_hold_across_channels_pages_and_filters,
    |db| {
        let Some(chat) = Chat::start(db, &[]) else {
            return;
        };
        let (alice, alice_id) = chat.user("alice");
        let (bob, bob_id) = chat.user("bob");
        let (cleo, _) = chat.user("cleo");
        let one = chat.team(&alice, "one");
        let two = chat.team(&cleo, "two");
        chat.add_to_team(&alice, &one, &bob_id);
        chat.add_to_team(&cleo, &two, &alice_id);
        chat.add_to_team(&cleo, &two, &bob_id);
        let general = chat.channel(&alice, &one, "general", "public");
        chat.join(&bob, &general);
        let private = chat.channel(&alice, &one, "hideout", "private");
        let bobs = chat.channel(&bob, &one, "bobs-room", "public");
        let other = chat.channel(&cleo, &two, "elsewhere", "public");
        chat.join(&alice, &other);
        chat.join(&bob, &other);
        let cleos = chat.channel(&cleo, &two, "cleos-room", "private");
        let dm = chat.call(
            "POST",
            "/api/v1/channels/direct",
            Some(&alice),
            Some(&json!({"user_id": bob_id})),
        );
        assert!(dm.status == 200 || dm.status == 201, "{}", dm.text);
        let dm = dm.json["id"].as_str().unwrap().to_string();

        // 36 posts round-robin over six channels; alice sees general, hideout, elsewhere and
        // the DM, never bobs-room (not a member) or cleos-room (private, not a member).
        let plan: [(&str, &str, &str); 6] = [
            (&alice, &general, "general"),
            (&alice, &private, "hideout"),
            (&bob, &bobs, "bobs-room"),
            (&bob, &other, "elsewhere"),
            (&cleo, &cleos, "cleos-room"),
            (&bob, &dm, "dm"),
        ];
        let mut posts: Vec<Posted> = Vec::new();
        for i in 0..36 {
            let (tok, ch, channel) = plan[i % plan.len()];
            let yak = i % 4 == 0;
            let text = format!("zebra number {i}{}", if yak { " yak" } else { "" });
            let p = chat.post(tok, ch, &text);
            posts.push(Posted {
                id: p["id"].as_str().unwrap().to_string(),
                channel,
                by_bob: tok == bob,
                yak,
                order: i,
                created_at: 0,
            });
        }

        // Rewrite created_at so it disagrees with insertion order: the newest general post
        // becomes the oldest (2001-09-09), and two others share one timestamp.
        let rt = tokio::runtime::Runtime::new().unwrap();
        let store = rt.block_on(open_store(&chat));
        let newest_general = posts
            .iter()
            .rev()
            .find(|p| p.channel == "general")
            .unwrap()
            .id
            .clone();
        let (tie_a, tie_b) = (posts[7].id.clone(), posts[13].id.clone());
        rt.block_on(async {
            let id = newest_general.clone();
            rustchat::store_write!(store, |c| {
                sqlx::query("UPDATE posts SET created_at = $2 WHERE id = $1")
                    .bind(&id)
                    .bind(1_000_000_000_000_i64)
                    .execute(&mut *c)
                    .await?;
                Ok(())
            })
            .unwrap();
            let (a, b) = (tie_a.clone(), tie_b.clone());
            rustchat::store_write!(store, |c| {
                sqlx::query(
                    "UPDATE posts SET created_at = (SELECT created_at FROM posts WHERE id = $2) \
                     WHERE id = $1",
                )
                .bind(&a)
                .bind(&b)
                .execute(&mut *c)
                .await?;
                Ok(())
            })
            .unwrap();
            store.close().await;
        });
        let hideout: Vec<String> = posts
            .iter()
            .filter(|p| p.channel == "hideout")
            .map(|p| p.id.clone())
            .collect();
        // Expected: alice's visible posts by created_at DESC, then insertion (seq) DESC.
        let mut expected: Vec<Posted> = posts
            .into_iter()
            .filter(|p| matches!(p.channel, "general" | "hideout" | "elsewhere" | "dm"))
            .map(|mut p| {
                let r = chat.call(
                    "GET",
                    &format!("/api/v1/posts/{}", p.id),
                    Some(&alice),
                    None,
                );
                assert_eq!(r.status, 200, "{}", r.text);
                p.created_at = r.json["created_at"].as_i64().unwrap();
                p
            })
            .collect();
        expected.sort_by_key(|p| std::cmp::Reverse((p.created_at, p.order)));
        assert_eq!(expected.len(), 24);
        assert_eq!(
            expected[23].id, newest_general,
            "the rewritten post sorts last"
        );
        let want = |f: &dyn Fn(&Posted) -> bool| -> Vec<String> {
            expected
                .iter()
                .filter(|p| f(p))
                .map(|p| p.id.clone())
                .collect()
        };

        // Every page size gives the same sequence; nothing from bobs-room or cleos-room.
        for per_page in [1, 5, 7, 24, 100] {
            assert_eq!(
                all_pages(&chat, &alice, "zebra", None, per_page),
                want(&|_| true),
                "per_page {per_page}"
            );
        }
        // Team scope: team one's channels plus the DM, not team two's.
        assert_eq!(
            all_pages(&chat, &alice, "zebra", Some(&one), 5),
            want(&|p| p.channel != "elsewhere")
        );
        assert_eq!(
            all_pages(&chat, &alice, "zebra", Some(&two), 5),
            want(&|p| p.channel == "elsewhere" || p.channel == "dm")
        );
        // Filters.
        assert_eq!(
            all_pages(&chat, &alice, "in:general zebra", None, 4),
            want(&|p| p.channel == "general")
        );
        assert_eq!(
            all_pages(&chat, &alice, "in:bobs-room zebra", None, 4),
            Vec::<String>::new()
        );
        assert_eq!(
            all_pages(&chat, &alice, "from:bob zebra", None, 4),
            want(&|p| p.by_bob)
        );
        assert_eq!(
            all_pages(&chat, &alice, "zebra -yak", None, 4),
            want(&|p| !p.yak)
        );
        assert_eq!(
            all_pages(&chat, &alice, "on:2001-09-09 zebra", None, 4),
            std::slice::from_ref(&newest_general)
        );
        assert_eq!(
            all_pages(&chat, &alice, "before:2001-09-10 zebra", None, 4),
            std::slice::from_ref(&newest_general)
        );
        assert_eq!(
            all_pages(&chat, &alice, "after:2001-09-09 zebra", None, 4),
            want(&|p| p.id != newest_general)
        );
        // What bob sees is his own set: bobs-room but not hideout.
        let bob_sees = all_pages(&chat, &bob, "zebra", None, 10);
        assert_eq!(bob_sees.len(), 24);
        assert!(hideout.iter().all(|id| !bob_sees.contains(id)));

        // An edit moves a post between words; a deletion and leaving a channel hide posts.
        let edited = &expected[0].id;
        let r = chat.call(
            "PATCH",
            &format!("/api/v1/posts/{edited}"),
            Some(if expected[0].by_bob { &bob } else { &alice }),
            Some(&json!({"message": "okapi now"})),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            all_pages(&chat, &alice, "okapi", None, 5),
            std::slice::from_ref(edited)
        );
        assert!(!all_pages(&chat, &alice, "zebra", None, 5).contains(edited));
        let gone = &expected[1].id;
        let r = chat.call(
            "DELETE",
            &format!("/api/v1/posts/{gone}"),
            Some(if expected[1].by_bob { &bob } else { &alice }),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text);
        let r = chat.call(
            "DELETE",
            &format!("/api/v1/channels/{other}/members/{alice_id}"),
            Some(&alice),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            all_pages(&chat, &alice, "zebra", None, 5),
            want(&|p| &p.id != edited && &p.id != gone && p.channel != "elsewhere")
        );
    }
);
