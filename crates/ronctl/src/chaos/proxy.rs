//! `ronctl chaos proxy`: a loopback TCP proxy that delays every chunk by `latency ±
//! jitter` in each direction and can reset every Nth connection. It forwards bytes, so it
//! works for TLS too (svc-edge live fill against an HTTPS origin): the portable stand-in
//! for the runbooks' `tc qdisc … netem delay 80ms 20ms` and Toxiproxy toxics.
//!
//! Order within a direction is kept (chunks are delayed one after another); the two
//! directions are independent, as on a real link.
//!
//! The fault can be limited to a window (`--fault-after 5s --fault-for 20s`): before and
//! after it the proxy forwards without delay, so one proxy covers the whole drill (baseline,
//! fault, recovery) the way `tc qdisc add … ; sleep 120 ; tc qdisc del …` does, without the
//! clients losing their path to the upstream when the fault is cleared.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::MAX_OPEN;

/// Proxy settings.
#[derive(Debug, Clone)]
pub struct ProxyPlan {
    /// Where to listen (loopback).
    pub listen: SocketAddr,
    /// Where to forward (loopback).
    pub upstream: SocketAddr,
    /// Added delay per chunk, each way.
    pub latency: Duration,
    /// Uniform jitter around `latency`.
    pub jitter: Duration,
    /// Reset every Nth connection after its first upstream answer (0: never).
    pub reset_every: u64,
    /// Stop after this long (None: until Ctrl-C/SIGTERM).
    pub duration: Option<Duration>,
    /// The fault (latency and resets) starts this long after the proxy does.
    pub fault_after: Duration,
    /// …and lasts this long (None: until the proxy stops).
    pub fault_for: Option<Duration>,
}

impl ProxyPlan {
    /// Whether the fault applies `elapsed` after the proxy started.
    fn fault_active(&self, elapsed: Duration) -> bool {
        elapsed >= self.fault_after
            && self
                .fault_for
                .is_none_or(|d| elapsed < self.fault_after.saturating_add(d))
    }
}

/// What the proxy did.
#[derive(Debug, Default, Serialize)]
pub struct ProxyStats {
    /// Connections accepted.
    pub connections: u64,
    /// Connections reset on purpose.
    pub resets: u64,
    /// Upstream unreachable.
    pub upstream_errors: u64,
    /// Bytes client → upstream.
    pub bytes_up: u64,
    /// Bytes upstream → client.
    pub bytes_down: u64,
    /// Chunks forwarded with the added delay (inside the fault window).
    pub delayed_chunks: u64,
    /// Chunks forwarded at once (outside the fault window).
    pub prompt_chunks: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    resets: AtomicU64,
    upstream_errors: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    delayed_chunks: AtomicU64,
    prompt_chunks: AtomicU64,
}

/// What every connection task shares.
struct Shared {
    plan: ProxyPlan,
    started: Instant,
    c: Counters,
}

impl Shared {
    fn fault_active(&self) -> bool {
        self.plan.fault_active(self.started.elapsed())
    }
}

/// Binds the listener (so the caller can print its address before serving).
pub async fn bind(plan: &ProxyPlan) -> std::io::Result<TcpListener> {
    TcpListener::bind(plan.listen).await
}

/// Serves until the duration ends or `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    plan: ProxyPlan,
    stop: impl Future<Output = ()>,
) -> ProxyStats {
    let open = Arc::new(Semaphore::new(MAX_OPEN));
    let sh = Arc::new(Shared {
        plan,
        started: Instant::now(),
        c: Counters::default(),
    });
    let until = async {
        match sh.plan.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stop, until);
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            _ = &mut until => break,
            a = listener.accept() => a,
        };
        let Ok((client, _)) = accepted else { continue };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            // Over the cap: refuse rather than queue.
            drop(client);
            continue;
        };
        let n = sh.c.connections.fetch_add(1, Ordering::Relaxed) + 1;
        let reset =
            sh.plan.reset_every > 0 && n.is_multiple_of(sh.plan.reset_every) && sh.fault_active();
        let sh = sh.clone();
        tokio::spawn(async move {
            relay(client, &sh, reset).await;
            drop(permit);
        });
    }
    let c = &sh.c;
    ProxyStats {
        connections: c.connections.load(Ordering::Relaxed),
        resets: c.resets.load(Ordering::Relaxed),
        upstream_errors: c.upstream_errors.load(Ordering::Relaxed),
        bytes_up: c.bytes_up.load(Ordering::Relaxed),
        bytes_down: c.bytes_down.load(Ordering::Relaxed),
        delayed_chunks: c.delayed_chunks.load(Ordering::Relaxed),
        prompt_chunks: c.prompt_chunks.load(Ordering::Relaxed),
    }
}

async fn relay(client: TcpStream, sh: &Shared, reset: bool) {
    let c = &sh.c;
    let Ok(upstream) = TcpStream::connect(sh.plan.upstream).await else {
        c.upstream_errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    let reset_done = {
        let up = pump(&mut cr, &mut uw, sh, &c.bytes_up, false);
        let down = pump(&mut ur, &mut cw, sh, &c.bytes_down, reset);
        tokio::pin!(up, down);
        tokio::select! {
            // A reset ends both directions at once; otherwise wait for the other side.
            r = &mut down => r || { (&mut up).await; false },
            _ = &mut up => down.await,
        }
    };
    if reset_done {
        c.resets.fetch_add(1, Ordering::Relaxed);
        if let Ok(client) = cr.reunite(cw) {
            let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
        }
    }
}

/// Copies `from` → `to`, each chunk after the configured delay. With `reset_after_first`
/// the copy stops after the first chunk (the caller then resets the connection); returns
/// whether it did.
async fn pump(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    sh: &Shared,
    bytes: &AtomicU64,
    reset_after_first: bool,
) -> bool {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return false;
            }
            Ok(n) => n,
        };
        if sh.fault_active() {
            sh.c.delayed_chunks.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay(&sh.plan)).await;
        } else {
            sh.c.prompt_chunks.fetch_add(1, Ordering::Relaxed);
        }
        if reset_after_first {
            return true;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return false;
        }
        bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

fn delay(plan: &ProxyPlan) -> Duration {
    if plan.jitter.is_zero() {
        return plan.latency;
    }
    let j = plan.jitter.as_secs_f64();
    let d = plan.latency.as_secs_f64() + rand::rng().random_range(-j..=j);
    Duration::from_secs_f64(d.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_pass_both_ways_with_the_added_delay() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut b = [0u8; 5];
            s.read_exact(&mut b).await.unwrap();
            s.write_all(&b).await.unwrap();
        });
        let plan = ProxyPlan {
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream,
            latency: Duration::from_millis(60),
            jitter: Duration::ZERO,
            reset_every: 0,
            duration: None,
            fault_after: Duration::ZERO,
            fault_for: None,
        };
        let listener = bind(&plan).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, plan, async {
            let _ = rx.await;
        }));
        let mut s = TcpStream::connect(addr).await.unwrap();
        let t = std::time::Instant::now();
        s.write_all(b"hello").await.unwrap();
        let mut b = [0u8; 5];
        s.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"hello");
        // Two delayed hops (there and back): at least twice the latency.
        assert!(
            t.elapsed() >= Duration::from_millis(120),
            "{:?}",
            t.elapsed()
        );
        drop(s);
        let _ = tx.send(());
        let stats = server.await.unwrap();
        assert_eq!(
            (stats.connections, stats.bytes_up, stats.bytes_down),
            (1, 5, 5)
        );
    }

    #[test]
    fn the_fault_applies_only_inside_its_window() {
        let plan = ProxyPlan {
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream: "127.0.0.1:1".parse().unwrap(),
            latency: Duration::from_millis(80),
            jitter: Duration::ZERO,
            reset_every: 2,
            duration: None,
            fault_after: Duration::from_secs(5),
            fault_for: Some(Duration::from_secs(20)),
        };
        let at = |s: u64| plan.fault_active(Duration::from_secs(s));
        assert_eq!(
            (at(0), at(4), at(5), at(24), at(25), at(60)),
            (false, false, true, true, false, false)
        );
        let open_ended = ProxyPlan {
            fault_for: None,
            ..plan
        };
        assert!(open_ended.fault_active(Duration::from_secs(3600)));
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        let plan = ProxyPlan {
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream: "127.0.0.1:1".parse().unwrap(),
            latency: Duration::from_millis(80),
            jitter: Duration::from_millis(20),
            reset_every: 0,
            duration: None,
            fault_after: Duration::ZERO,
            fault_for: None,
        };
        for _ in 0..1000 {
            let d = delay(&plan);
            assert!(
                d >= Duration::from_millis(60) && d <= Duration::from_millis(100),
                "{d:?}"
            );
        }
    }
}
