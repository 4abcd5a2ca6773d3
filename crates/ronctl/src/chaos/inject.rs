//! `ronctl chaos inject`: one fault at a fixed rate for a fixed time against a loopback
//! HTTP target.
//!
//! - `slowloris`: each connection sends a request line and `Host`, then one more header
//!   line every `--trickle` (default 500 ms), never the blank line that ends the head.
//!   A well-defended server closes it at its header deadline; the report gives how long
//!   each connection lived (`closed_by_server`) and how many were still open
//!   [`HOLD_AFTER`] after the drill's last new connection (`held_to_end`, the failure the
//!   runbooks look for).
//! - `latency`: a complete request written a few bytes at a time, `--trickle` apart (a
//!   client on a slow link); the report says whether the server answered (`completed` and
//!   the status) or gave up first (`closed_by_server`).
//! - `reset`: connect, send a request, then close with a TCP RST before reading (an
//!   abortive client); the server must shrug it off (see `after`).
//! - `flood`: a complete `GET` per tick on a new connection (open loop: latency is
//!   measured from the tick, so a slow server cannot slow the load down); statuses,
//!   errors and latency percentiles.
//!
//! Every drill ends with one plain request to the target (`after`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::MAX_OPEN;
use super::args::Target;
use super::report::{Report, Samples};

/// Time allowed to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for a response (`flood`, the final probe).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after the drill's last new connection `slowloris` connections are still held
/// (a server with a sane header deadline closes them well before).
pub const HOLD_AFTER: Duration = Duration::from_secs(10);
/// Bytes per write in the `latency` fault.
const TRICKLE_BYTES: usize = 8;

/// The faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// Partial request heads held open.
    Slowloris,
    /// Requests written slowly.
    Latency,
    /// Requests aborted with RST.
    Reset,
    /// Complete requests at a fixed rate.
    Flood,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Slowloris => "slowloris",
            Fault::Latency => "latency",
            Fault::Reset => "reset",
            Fault::Flood => "flood",
        }
    }
}

/// One drill.
#[derive(Debug, Clone)]
pub struct Drill {
    /// Where.
    pub target: Target,
    /// The URL as given (for the report).
    pub url: String,
    /// What.
    pub fault: Fault,
    /// Connections per second.
    pub rate: f64,
    /// How long new connections are opened.
    pub duration: Duration,
    /// Pause between writes (`slowloris`, `latency`).
    pub trickle: Duration,
}

/// The report and its lifetime/latency samples, shared by the drill's tasks.
type Shared = std::sync::Mutex<(Report, Samples, Samples)>;

/// Runs `f` on the shared report and samples (a poisoned lock still holds good counts).
fn with<T>(sh: &Shared, f: impl FnOnce(&mut Report, &mut Samples, &mut Samples) -> T) -> T {
    let mut g = sh.lock().unwrap_or_else(|p| p.into_inner());
    let (r, life, lat) = &mut *g;
    f(r, life, lat)
}

/// Runs the drill to the end and returns its report.
pub async fn run(d: Drill) -> Report {
    let shared: Arc<Shared> = Arc::default();
    let open = Arc::new(Semaphore::new(MAX_OPEN));
    let started = Instant::now();
    let end = started + d.duration;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / d.rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let at = tick.tick().await.into_std();
        if at >= end {
            break;
        }
        with(&shared, |r, _, _| r.attempts += 1);
        let Ok(permit) = open.clone().try_acquire_owned() else {
            with(&shared, |r, _, _| r.skipped += 1);
            continue;
        };
        let (d2, sh) = (d.clone(), shared.clone());
        tasks.spawn(async move {
            one(&d2, &sh, at, end).await;
            drop(permit);
        });
        // Reap finished tasks so the set does not grow with the drill.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let after = probe(&d.target).await;
    with(&shared, |r, life, lat| {
        r.fault = d.fault.name().into();
        r.target = d.url.clone();
        r.rate_per_s = d.rate;
        r.duration_s = d.duration.as_secs_f64();
        r.lifetime_ms = life.percentiles();
        r.latency_ms = lat.percentiles();
        r.after = after;
        r.clone()
    })
}

async fn connect(d: &Drill, sh: &Shared) -> Option<TcpStream> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(d.target.addr)).await {
        Ok(Ok(s)) => Some(s),
        _ => {
            with(sh, |r, _, _| r.connect_errors += 1);
            None
        }
    }
}

fn request(t: &Target) -> String {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ronctl-chaos\r\nConnection: close\r\n\r\n",
        t.path, t.host
    )
}

async fn one(d: &Drill, sh: &Shared, at: Instant, end: Instant) {
    let Some(mut s) = connect(d, sh).await else {
        return;
    };
    match d.fault {
        Fault::Slowloris => slowloris(d, sh, &mut s, end).await,
        Fault::Latency => slow_writer(d, sh, &mut s, at).await,
        Fault::Reset => {
            let _ = s.write_all(request(&d.target).as_bytes()).await;
            // SO_LINGER 0: close() sends RST instead of FIN.
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            drop(s);
            with(sh, |r, _, _| r.outcome("reset"));
        }
        Fault::Flood => {
            let out = tokio::time::timeout(RESPONSE_TIMEOUT, async {
                s.write_all(request(&d.target).as_bytes()).await?;
                read_status(&mut s).await
            })
            .await;
            let ms = at.elapsed().as_secs_f64() * 1000.0;
            with(sh, |r, _, lat| match out {
                Ok(Ok(code)) => {
                    r.status(code);
                    r.outcome("completed");
                    lat.push(ms);
                }
                Ok(Err(_)) => r.outcome("error"),
                Err(_) => r.outcome("timeout"),
            });
        }
    }
}

async fn slowloris(d: &Drill, sh: &Shared, s: &mut TcpStream, end: Instant) {
    let opened = Instant::now();
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n",
        d.target.path, d.target.host
    );
    let (mut rd, mut wr) = s.split();
    let mut buf = [0u8; 1024];
    let mut n = 0u64;
    let closed = async {
        if wr.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                got = rd.read(&mut buf) => match got {
                    // EOF or an error: the server dropped us. A response (408, 400)
                    // first is fine; keep reading until it closes.
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
                _ = tokio::time::sleep(d.trickle) => {
                    n += 1;
                    if wr.write_all(format!("X-Chaos-{n}: x\r\n").as_bytes()).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let left = (end + HOLD_AFTER).saturating_duration_since(Instant::now());
    let by_server = tokio::time::timeout(left, closed).await.is_ok();
    with(sh, |r, life, _| {
        if by_server {
            r.outcome("closed_by_server");
            life.push(opened.elapsed().as_secs_f64() * 1000.0);
        } else {
            r.outcome("held_to_end");
        }
    });
}

async fn slow_writer(d: &Drill, sh: &Shared, s: &mut TcpStream, at: Instant) {
    let opened = Instant::now();
    let req = request(&d.target);
    for chunk in req.as_bytes().chunks(TRICKLE_BYTES) {
        if s.write_all(chunk).await.is_err() {
            with(sh, |r, life, _| {
                r.outcome("closed_by_server");
                life.push(opened.elapsed().as_secs_f64() * 1000.0);
            });
            return;
        }
        tokio::time::sleep(d.trickle).await;
    }
    let out = tokio::time::timeout(RESPONSE_TIMEOUT, read_status(s)).await;
    with(sh, |r, life, lat| match out {
        Ok(Ok(code)) => {
            r.status(code);
            r.outcome("completed");
            lat.push(at.elapsed().as_secs_f64() * 1000.0);
        }
        Ok(Err(_)) => {
            r.outcome("closed_by_server");
            life.push(opened.elapsed().as_secs_f64() * 1000.0);
        }
        Err(_) => r.outcome("timeout"),
    });
}

/// Reads up to the status code of an HTTP/1.x response.
async fn read_status(s: &mut TcpStream) -> std::io::Result<u16> {
    let mut head = Vec::with_capacity(16);
    let mut buf = [0u8; 256];
    while head.len() < 12 {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
    }
    // Drain the rest so the server's close is orderly.
    while s.read(&mut buf).await.unwrap_or(0) > 0 {}
    std::str::from_utf8(&head[..12])
        .ok()
        .filter(|l| l.starts_with("HTTP/1."))
        .and_then(|l| l[9..12].parse().ok())
        .ok_or_else(|| std::io::ErrorKind::InvalidData.into())
}

/// One plain request after the drill.
async fn probe(t: &Target) -> String {
    let out = tokio::time::timeout(RESPONSE_TIMEOUT, async {
        let mut s = TcpStream::connect(t.addr).await?;
        s.write_all(request(t).as_bytes()).await?;
        read_status(&mut s).await
    })
    .await;
    match out {
        Ok(Ok(code)) => format!("HTTP {code}"),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "error: no answer within 10 s".into(),
    }
}
