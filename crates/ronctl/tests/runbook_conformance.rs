//! The runbook conformance suite (issue 8; SEN-R51, CHAT-R32, MNG-R37, MET-R27, svc-edge
//! §9): every operator command of the five runbooks, executed with bash against a stack
//! that `ronctl up` runs on free loopback ports, with its expected outcome asserted.
//!
//! The data lives in `crates/ronctl/conformance/`:
//! - `substitutions.md`: the one table of substitutions (runbook text → what runs here,
//!   and why), applied mechanically and in order to every command;
//! - `<runbook>.toml`: each command verbatim as the runbook prints it, with what must hold
//!   (exit status, regexes over stdout/stderr), or, for commands that cannot run against
//!   a shared stack on one machine, the black-box test that runs them (`covered_by`) or
//!   why they are outside this build (`external`).
//!
//! `every_runbook_command_is_in_the_tables` extracts every command line of the runbooks
//! (found next to the repository as `shared/runbooks/`, or in `RON_RUNBOOKS_DIR`) and fails
//! on any the tables do not hold, so a runbook edit cannot slip past the suite. The
//! extraction is committed as `conformance/runbook-commands.txt` (checked against the
//! runbooks when they are there), so a clone without the runbooks still runs the check.
//! `RON_CONFORMANCE_ONLY=<regex>` runs only the matching commands (while editing a table).

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;
use serde::Deserialize;
use test_support::temp_dir;

use common::{Up, bins};

/// The runbooks, in the order of `../shared/runbooks/`.
const RUNBOOKS: [&str; 5] = [
    "mongoose",
    "ron-metrics",
    "rustchat",
    "sentinel",
    "svc-edge",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("workspace root")
        .to_path_buf()
}

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance")
}

/// One runbook's table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Book {
    /// Whether the stack's rustchat runs on PostgreSQL + Redis (the runbook's psql and
    /// redis-cli commands need them) instead of embedded SQLite.
    #[serde(default)]
    postgres_and_redis: bool,
    /// Bash run once before the commands; it may append `NAME=value` lines to the file
    /// named by `$CONFORMANCE_ENV` to give later commands variables (tokens, ids).
    #[serde(default)]
    setup: Option<String>,
    #[serde(rename = "command", default)]
    commands: Vec<Entry>,
}

/// One runbook command and what must hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// Where it is in the runbook.
    section: String,
    /// The command exactly as the runbook prints it (several lines allowed).
    command: String,
    /// Bash to run instead of the substituted command, when the substitution table is not
    /// enough; `why` says what differs.
    #[serde(default)]
    run: Option<String>,
    /// Why `run` differs from the runbook, or what a `covered_by` test checks.
    #[serde(default)]
    why: Option<String>,
    /// `path/to/test.rs::test_fn`: the black-box test that runs this command (it needs a
    /// private server, root, or stops a process); checked to exist.
    #[serde(default)]
    covered_by: Option<String>,
    /// Why the command is outside what one machine and this build can run (a cluster
    /// scheduler, a load balancer, another host).
    #[serde(default)]
    external: Option<String>,
    /// Expected exit status (default 0).
    #[serde(default)]
    exit: Option<i32>,
    /// Any exit status is fine (`watch`-style commands, `grep` that may find nothing).
    #[serde(default)]
    any_exit: bool,
    /// Regexes (multi-line mode) that must all match stdout.
    #[serde(default)]
    stdout: Vec<String>,
    /// Regexes that must not match stdout.
    #[serde(default)]
    stdout_not: Vec<String>,
    /// Regexes that must all match stderr.
    #[serde(default)]
    stderr: Vec<String>,
    /// A regex every non-empty stdout line must match.
    #[serde(default)]
    every_line: Option<String>,
    /// Keep re-running for up to this long until the expectations hold (metrics that move
    /// after traffic, log lines written asynchronously).
    #[serde(default)]
    retry_secs: Option<u64>,
    /// Kill the command after this long (default 60 s); a kill is a failure.
    #[serde(default)]
    timeout_secs: Option<u64>,
}

/// One row of `substitutions.md`.
#[derive(Debug, Clone)]
struct Substitution {
    runbook: String,
    from: String,
    to: String,
}

fn load_book(name: &str) -> Book {
    let path = conformance_dir().join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    toml_edit::de::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A markdown table cell without its code backticks; `\|` is a literal pipe.
fn cell(raw: &str) -> String {
    let t = raw.trim();
    let t = t
        .strip_prefix('`')
        .and_then(|t| t.strip_suffix('`'))
        .unwrap_or(t);
    t.replace("\\|", "|")
}

/// The rows of the substitution table: `| runbook | in the runbook | runs here | why |`.
fn substitutions() -> Vec<Substitution> {
    let path = conformance_dir().join("substitutions.md");
    let text = std::fs::read_to_string(&path).expect("substitutions.md");
    let mut rows = Vec::new();
    // The table starts at its `| runbook |` header (the variables table comes before it).
    let table = &text[text
        .find("| runbook |")
        .expect("substitutions.md: no table")..];
    for line in table.lines().take_while(|l| l.starts_with('|')) {
        // Split on pipes not escaped with a backslash.
        let mut cells = Vec::new();
        let mut cur = String::new();
        let mut prev = ' ';
        for c in line.trim().trim_matches('|').chars() {
            if c == '|' && prev != '\\' {
                cells.push(std::mem::take(&mut cur));
            } else {
                cur.push(c);
            }
            prev = c;
        }
        cells.push(cur);
        if cells.len() != 4 {
            panic!("substitutions.md: a row needs 4 cells: {line}");
        }
        let runbook = cell(&cells[0]);
        if runbook == "runbook" || runbook.starts_with("---") {
            continue;
        }
        assert!(
            runbook == "all" || RUNBOOKS.contains(&runbook.as_str()),
            "substitutions.md: unknown runbook {runbook:?}"
        );
        assert!(
            !cell(&cells[3]).is_empty(),
            "substitutions.md: no reason in {line}"
        );
        rows.push(Substitution {
            runbook,
            from: cell(&cells[1]),
            to: cell(&cells[2]),
        });
    }
    assert!(!rows.is_empty(), "substitutions.md has no rows");
    rows
}

/// The command with every applicable substitution applied, in table order.
fn substitute(book: &str, command: &str, subs: &[Substitution]) -> String {
    let mut out = command.to_string();
    for s in subs
        .iter()
        .filter(|s| s.runbook == "all" || s.runbook == book)
    {
        out = out.replace(&s.from, &s.to);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Which runbook lines are commands.

/// Finds the runbooks: `RON_RUNBOOKS_DIR`, else `shared/runbooks` beside any ancestor of
/// the repository.
fn runbooks_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("RON_RUNBOOKS_DIR") {
        let d = PathBuf::from(d);
        assert!(
            d.join("sentinel.md").is_file(),
            "RON_RUNBOOKS_DIR={}: no runbooks there",
            d.display()
        );
        return Some(d);
    }
    repo()
        .ancestors()
        .map(|a| a.join("shared").join("runbooks"))
        .find(|d| d.join("sentinel.md").is_file())
}

/// Whitespace-normalised logical lines: `\`-continued lines joined, comments and blanks
/// dropped.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for raw in text.lines() {
        let l = raw.trim();
        if cur.is_empty() && (l.is_empty() || l.starts_with('#')) {
            continue;
        }
        if let Some(head) = l.strip_suffix('\\') {
            cur.push_str(head.trim_end());
            cur.push(' ');
            continue;
        }
        cur.push_str(l);
        out.push(squeeze(&cur));
        cur.clear();
    }
    if !cur.is_empty() {
        out.push(squeeze(&cur));
    }
    out
}

fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Command lines of fenced shell blocks (```bash, ```sh and unlabelled fences).
fn fenced_commands(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block: Option<(String, String)> = None;
    for line in md.lines() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            match block.take() {
                Some((lang, body)) => {
                    if matches!(lang.as_str(), "" | "bash" | "sh" | "shell") {
                        out.extend(logical_lines(&body));
                    }
                }
                None => block = Some((info.trim().to_string(), String::new())),
            }
            continue;
        }
        if let Some((_, body)) = block.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// The first words of command lines in a runbook whose code fences were lost in export
/// (rustchat's: a `bash` line, then the commands, the last one glued to the next heading).
const UNFENCED_COMMAND_WORDS: &[&str] = &[
    "export",
    "cat",
    "./rustchat",
    "for",
    "until",
    "done",
    "curl",
    "sleep",
    "ssh",
    "echo",
    "kubectl",
    "systemctl",
    "journalctl",
    "psql",
    "redis-cli",
    "ss",
    "websocat",
    "watch",
    "pg_dump",
    "cp",
    "NEW_JWT_SECRET=",
    "UPDATE",
    "SET",
    "WHERE",
    "CREATE",
    "ON",
    "SELECT",
    "FROM",
    "ORDER",
    "LIMIT",
    "bash#",
    "RUSTCHAT_",
    "EOF",
];

fn unfenced_commands(md: &str) -> Vec<String> {
    md.lines()
        .map(str::trim)
        .filter(|l| {
            UNFENCED_COMMAND_WORDS
                .iter()
                .any(|w| l.starts_with(w) && !l.starts_with("Symptoms"))
        })
        .map(squeeze)
        .collect()
}

/// Backticked commands in the mongoose spec's §9 table: the mongoose runbook names no
/// commands, the spec maps each of its items to these.
fn mongoose_spec_commands(spec: &str) -> Vec<String> {
    let start = spec.find("## 9.").expect("mongoose spec §9");
    let end = spec[start..]
        .find("\n## 10.")
        .map_or(spec.len(), |e| start + e);
    let re = Regex::new(r"`([^`]+)`").unwrap();
    re.captures_iter(&spec[start..end])
        .map(|c| c[1].replace("\\|", "|"))
        .filter(|c| {
            ["curl ", "… admin ", "mongoose-server ", "kill ", "taskset "]
                .iter()
                .any(|p| c.starts_with(p))
        })
        .map(|c| squeeze(&c))
        .collect()
}

/// Whether a runbook line is the table's command line: equal, or the command followed by
/// a heading glued on by the export (`./rustchatRolling Update`).
fn covers(entry_line: &str, runbook_line: &str) -> bool {
    runbook_line == entry_line
        || runbook_line
            .strip_prefix(entry_line)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
}

/// The command lines of every runbook, as `(runbook, line)`, extracted from the runbooks
/// in `dir`.
fn extract_commands(dir: &Path) -> Vec<(String, String)> {
    let mut all = Vec::new();
    for name in RUNBOOKS {
        let md = std::fs::read_to_string(dir.join(format!("{name}.md"))).unwrap();
        let lines = match name {
            "rustchat" => unfenced_commands(&md),
            "mongoose" => {
                let spec = dir.parent().unwrap().join("specs").join("mongoose.md");
                mongoose_spec_commands(&std::fs::read_to_string(spec).unwrap())
            }
            _ => fenced_commands(&md),
        };
        assert!(
            !lines.is_empty(),
            "{name}: no commands found in the runbook"
        );
        all.extend(lines.into_iter().map(|l| (name.to_string(), l)));
    }
    all
}

/// `conformance/runbook-commands.txt`: the extracted command lines (`runbook<TAB>line`),
/// committed so the completeness check also runs where the runbooks are not checked out
/// beside the repository (a CI clone).
const SNAPSHOT: &str = "runbook-commands.txt";

fn read_snapshot() -> Vec<(String, String)> {
    let path = conformance_dir().join(SNAPSHOT);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (book, line) = l.split_once('\t').expect("runbook<TAB>command");
            (book.to_string(), line.to_string())
        })
        .collect()
}

fn write_snapshot(lines: &[(String, String)]) {
    let mut text = String::from(
        "# Command lines of ../shared/runbooks/*.md (mongoose: its spec's §9 table), as\n\
         # tests/runbook_conformance.rs extracts them. Regenerate with\n\
         # RON_CONFORMANCE_SNAPSHOT=write cargo test -p ronctl --test runbook_conformance every_runbook\n",
    );
    for (book, line) in lines {
        text.push_str(&format!("{book}\t{line}\n"));
    }
    std::fs::write(conformance_dir().join(SNAPSHOT), text).unwrap();
}

#[test]
fn every_runbook_command_is_in_the_tables() {
    // The runbooks themselves when they are beside the repository (and then the committed
    // snapshot must match them), else the snapshot.
    let lines = match runbooks_dir() {
        Some(dir) => {
            let fresh = extract_commands(&dir);
            if std::env::var("RON_CONFORMANCE_SNAPSHOT").as_deref() == Ok("write") {
                write_snapshot(&fresh);
            }
            assert!(
                fresh == read_snapshot(),
                "the runbooks changed since conformance/{SNAPSHOT} was written: review the \
                 tables, then regenerate it (RON_CONFORMANCE_SNAPSHOT=write)"
            );
            fresh
        }
        None => {
            eprintln!(
                "notice: runbooks not beside the repository; checking conformance/{SNAPSHOT}"
            );
            read_snapshot()
        }
    };
    let mut missing = Vec::new();
    for name in RUNBOOKS {
        let book = load_book(name);
        let held: Vec<String> = book
            .commands
            .iter()
            .flat_map(|e| logical_lines(&e.command))
            .collect();
        for (_, l) in lines.iter().filter(|(b, _)| b == name) {
            if !held.iter().any(|h| covers(h, l)) {
                missing.push(format!("{name}: {l}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "runbook commands missing from crates/ronctl/conformance/*.toml:\n{}",
        missing.join("\n")
    );
}

#[test]
fn tables_are_well_formed() {
    let subs = substitutions();
    for name in RUNBOOKS {
        let book = load_book(name);
        assert!(!book.commands.is_empty(), "{name}.toml has no commands");
        for e in &book.commands {
            let what = format!("{name}.toml [{}] {}", e.section, e.command);
            let kinds = [e.covered_by.is_some(), e.external.is_some()];
            assert!(
                kinds.iter().filter(|k| **k).count() <= 1,
                "{what}: covered_by and external exclude each other"
            );
            if e.covered_by.is_some() || e.external.is_some() {
                assert!(
                    e.run.is_none() && e.stdout.is_empty() && e.stderr.is_empty(),
                    "{what}: a command that is not run has no run/expectations"
                );
            }
            if e.run.is_some() || e.covered_by.is_some() {
                assert!(e.why.is_some(), "{what}: say why");
            }
            if let Some(c) = &e.covered_by {
                check_covered_by(&what, c);
            }
            for re in e.stdout.iter().chain(&e.stdout_not).chain(&e.stderr) {
                Regex::new(re).unwrap_or_else(|err| panic!("{what}: {err}"));
            }
            let _ = substitute(name, &e.command, &subs);
        }
    }
}

/// `crates/x/tests/y.rs::name` names an existing test function in an existing file.
fn check_covered_by(what: &str, target: &str) {
    let (file, func) = target
        .split_once("::")
        .unwrap_or_else(|| panic!("{what}: covered_by is path::test_fn"));
    let text = std::fs::read_to_string(repo().join(file))
        .unwrap_or_else(|e| panic!("{what}: {file}: {e}"));
    assert!(
        text.contains(&format!("fn {func}(")),
        "{what}: no fn {func} in {file}"
    );
}

// ---------------------------------------------------------------------------------------
// Running the commands against the stack.

/// What one command printed.
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    timed_out: bool,
}

fn run_bash(script: &str, cwd: &Path, env: &BTreeMap<String, String>, limit: Duration) -> Outcome {
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(cwd)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn bash");
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = so.read_to_end(&mut b);
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = se.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait bash") {
            break st;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            // SAFETY: killing the process group this function started.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            break child.wait().expect("wait bash");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Background children of the command may still hold the pipes: end them too.
    // SAFETY: as above.
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    Outcome {
        code: status.code(),
        stdout: String::from_utf8_lossy(&out_t.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_t.join().unwrap()).into_owned(),
        timed_out,
    }
}

/// Why the outcome does not meet the entry's expectations, if it does not.
fn judge(e: &Entry, o: &Outcome) -> Option<String> {
    if o.timed_out {
        return Some("timed out".into());
    }
    let want = e.exit.unwrap_or(0);
    if !e.any_exit && o.code != Some(want) {
        return Some(format!("exit {:?}, expected {want}", o.code));
    }
    let re = |p: &str| Regex::new(&format!("(?m){p}")).unwrap();
    for p in &e.stdout {
        if !re(p).is_match(&o.stdout) {
            return Some(format!("stdout does not match {p:?}"));
        }
    }
    for p in &e.stdout_not {
        if re(p).is_match(&o.stdout) {
            return Some(format!("stdout matches {p:?}"));
        }
    }
    for p in &e.stderr {
        if !re(p).is_match(&o.stderr) {
            return Some(format!("stderr does not match {p:?}"));
        }
    }
    if let Some(p) = &e.every_line {
        let r = re(p);
        if let Some(bad) = o.stdout.lines().find(|l| !l.is_empty() && !r.is_match(l)) {
            return Some(format!("stdout line does not match {p:?}: {bad}"));
        }
    }
    None
}

fn clip(s: &str) -> &str {
    let mut end = s.len().min(3000);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Reads `NAME=value` lines the commands appended to `$CONFORMANCE_ENV`.
fn load_exports(file: &Path, env: &mut BTreeMap<String, String>) {
    for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
        if let Some((k, v)) = line.split_once('=') {
            env.insert(k.trim().to_string(), v.to_string());
        }
    }
}

/// Runs one runbook's table against its own stack.
fn conform(name: &str) {
    let book = load_book(name);
    let subs = substitutions();
    let only = std::env::var("RON_CONFORMANCE_ONLY")
        .ok()
        .map(|p| Regex::new(&p).expect("RON_CONFORMANCE_ONLY is a regex"));
    let runnable: Vec<&Entry> = book
        .commands
        .iter()
        .filter(|e| e.covered_by.is_none() && e.external.is_none())
        .filter(|e| only.as_ref().is_none_or(|r| r.is_match(&e.command)))
        .collect();
    if runnable.is_empty() {
        return;
    }

    let state = temp_dir(&format!("conformance-{name}"));
    let work = state.join("work");
    std::fs::create_dir_all(&work).unwrap();
    // Kept alive for the whole run: rustchat's PostgreSQL database and a private Redis.
    let mut backing: Vec<(String, String)> = Vec::new();
    let mut redis_keep = None;
    if book.postgres_and_redis {
        let (Some(pg), Some(redis)) = (
            test_support::PgServer::shared(),
            test_support::RedisServer::start(),
        ) else {
            assert!(
                !test_support::external_tools_required(),
                "{name}: PostgreSQL and Redis are required"
            );
            eprintln!("{name}: PostgreSQL or Redis missing; skipped");
            return;
        };
        // fresh_database() returns the new database's URL.
        backing.push(("RUSTCHAT_DATABASE_URL".into(), pg.fresh_database()));
        backing.push(("RUSTCHAT_REDIS_URL".into(), redis.url()));
        backing.push(("REDIS_PORT".into(), redis.port().to_string()));
        redis_keep = Some(redis);
    }
    let mut up = Up::start(&state.join("stack"), &backing);
    let doc = up.state_doc();

    let mut env: BTreeMap<String, String> = std::env::vars().collect();
    env.extend(backing.iter().cloned());
    let bin = bins();
    let path = format!(
        "{}:{}",
        bin.display(),
        env.get("PATH").cloned().unwrap_or_default()
    );
    env.insert("PATH".into(), path);
    env.insert("BIN".into(), bin.display().to_string());
    env.insert("REPO".into(), repo().display().to_string());
    env.insert("WORK".into(), work.display().to_string());
    env.insert("STATE".into(), up.state.display().to_string());
    // Addresses as `127.0.0.1:port`, pids and captured logs of each service.
    let ports = &doc["ports"];
    let port = |k: &str| format!("127.0.0.1:{}", ports[k].as_u64().unwrap());
    env.insert("FRONT".into(), ports["front"].as_str().unwrap().to_string());
    env.insert("CHAT".into(), port("chat"));
    env.insert("EDGE".into(), port("edge"));
    env.insert("EDGE_METRICS".into(), port("edge_metrics"));
    env.insert("SENTINEL_ADMIN".into(), port("sentinel_metrics"));
    env.insert("MONGOOSE_ADMIN".into(), port("mongoose_admin"));
    env.insert("MONGOOSE_ADMIN_ADDR".into(), port("mongoose_admin"));
    for s in doc["services"].as_array().unwrap() {
        let var = match s["name"].as_str().unwrap() {
            "rustchat" => "CHAT",
            "svc-edge" => "EDGE",
            "sentinel-proxy" => "SENTINEL",
            "mongoose-server" => "MONGOOSE",
            other => panic!("unknown service {other}"),
        };
        env.insert(format!("{var}_PID"), s["pid"].as_u64().unwrap().to_string());
        env.insert(format!("{var}_LOG"), s["log"].as_str().unwrap().to_string());
    }
    let exports = state.join("exports.env");
    std::fs::write(&exports, "").unwrap();
    env.insert("CONFORMANCE_ENV".into(), exports.display().to_string());

    if let Some(setup) = &book.setup {
        let o = run_bash(setup, &work, &env, Duration::from_secs(120));
        assert!(
            o.code == Some(0) && !o.timed_out,
            "{name}.toml setup failed ({:?}):\n{}\n{}",
            o.code,
            clip(&o.stdout),
            clip(&o.stderr)
        );
        load_exports(&exports, &mut env);
    }

    let mut failures = Vec::new();
    for e in &runnable {
        let script = e
            .run
            .clone()
            .unwrap_or_else(|| substitute(name, &e.command, &subs));
        let limit = Duration::from_secs(e.timeout_secs.unwrap_or(60));
        let retry_until = Instant::now() + Duration::from_secs(e.retry_secs.unwrap_or(0));
        let verdict = loop {
            let o = run_bash(&script, &work, &env, limit);
            match judge(e, &o) {
                None => break None,
                Some(why) if Instant::now() >= retry_until => break Some((why, o)),
                Some(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        };
        load_exports(&exports, &mut env);
        match verdict {
            None => eprintln!(
                "ok    [{}] {}",
                e.section,
                e.command.lines().next().unwrap()
            ),
            Some((why, o)) => {
                eprintln!(
                    "FAIL  [{}] {}",
                    e.section,
                    e.command.lines().next().unwrap()
                );
                failures.push(format!(
                    "[{}] {}\n  ran: {script}\n  {why}\n  stdout: {}\n  stderr: {}",
                    e.section,
                    e.command,
                    clip(&o.stdout),
                    clip(&o.stderr)
                ));
            }
        }
    }
    up.terminate();
    let _ = up.wait_exit(Duration::from_secs(150));
    drop(redis_keep);
    assert!(
        failures.is_empty(),
        "{name}: {} of {} runbook commands failed:\n\n{}\n\nronctl said:\n{}",
        failures.len(),
        runnable.len(),
        failures.join("\n\n"),
        up.seen.join("\n")
    );
}

#[test]
fn ron_metrics_runbook_against_the_stack() {
    conform("ron-metrics");
}

#[test]
fn svc_edge_runbook_against_the_stack() {
    conform("svc-edge");
}

#[test]
fn sentinel_runbook_against_the_stack() {
    conform("sentinel");
}

#[test]
fn rustchat_runbook_against_the_stack() {
    conform("rustchat");
}

#[test]
fn mongoose_runbook_against_the_stack() {
    conform("mongoose");
}
