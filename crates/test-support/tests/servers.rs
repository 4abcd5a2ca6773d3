//! The PostgreSQL and Redis helpers against the real servers.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::Command;

use test_support::{PG_BIN_DIR, PgServer, RedisServer};

fn refuses_connections(port: u16) -> bool {
    TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
}

#[test]
fn shared_postgres_answers_select_1() {
    let Some(pg) = PgServer::shared() else { return };
    assert_eq!(pg.psql("postgres", "SELECT 1"), "1");
    assert_eq!(pg.psql("postgres", "SHOW fsync"), "off");
    assert_eq!(pg.psql("postgres", "SHOW max_connections"), "200");
    assert_eq!(pg.psql("postgres", "SHOW server_encoding"), "UTF8");
    assert_eq!(pg.psql("postgres", "SHOW listen_addresses"), "127.0.0.1");
}

#[test]
fn fresh_databases_are_distinct_and_reachable_by_url() {
    let Some(pg) = PgServer::shared() else { return };
    let a = pg.fresh_database();
    let b = pg.fresh_database();
    assert_ne!(a, b);
    let prefix = format!("postgres://postgres@127.0.0.1:{}/", pg.port());
    let db_a = a
        .strip_prefix(&prefix)
        .expect("URL names the shared server");
    let db_b = b
        .strip_prefix(&prefix)
        .expect("URL names the shared server");
    pg.psql(db_a, "CREATE TABLE only_in_a (x int)");
    assert_eq!(
        pg.psql(
            db_b,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"
        ),
        "0"
    );
    // psql "$URL" over TCP, as the runbooks do.
    let out = Command::new(Path::new(PG_BIN_DIR).join("psql"))
        .args(["-X", "-At", &a, "-c", "SELECT current_database()"])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), db_a);
}

#[test]
fn private_postgres_stops_and_restarts_on_the_same_port_with_its_data() {
    let Some(pg) = PgServer::start_private() else {
        return;
    };
    let port = pg.port();
    pg.psql(
        "postgres",
        "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)",
    );
    pg.stop();
    assert!(
        refuses_connections(port),
        "port {port} still accepts after stop"
    );
    pg.restart();
    assert_eq!(pg.port(), port);
    assert_eq!(pg.psql("postgres", "SELECT x FROM kept"), "7");
}

#[test]
fn redis_answers_ping_and_restarts_on_the_same_port() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let port = redis.port();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}"));
    assert_eq!(redis.cli(&["ping"]), "PONG");
    assert_eq!(redis.cli(&["set", "k", "v"]), "OK");
    redis.stop();
    assert!(
        refuses_connections(port),
        "port {port} still accepts after stop"
    );
    redis.restart();
    assert_eq!(redis.port(), port);
    assert_eq!(redis.cli(&["ping"]), "PONG");
    assert_eq!(redis.cli(&["exists", "k"]), "0", "nothing is persisted");
}

#[test]
fn restart_on_a_taken_port_panics_with_the_server_log() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    redis.stop();
    let _squatter = TcpListener::bind((Ipv4Addr::LOCALHOST, redis.port())).expect("take port");
    let err = std::panic::catch_unwind(AssertUnwindSafe(|| redis.restart()))
        .expect_err("restart must fail while the port is taken");
    let msg = err
        .downcast_ref::<String>()
        .expect("panic message is a String");
    assert!(msg.contains("exited during start-up"), "{msg}");
    assert!(msg.contains("Address already in use"), "{msg}");
}
