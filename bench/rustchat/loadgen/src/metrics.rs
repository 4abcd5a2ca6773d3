//! Client-side measurements: per-endpoint latency histograms (HDR, microseconds) and outcome
//! counters, kept twice: for the whole run and for the current measurement window (the hold
//! window, or one `--search` step). A request is counted in the window in which it completes.

use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::net::{Failure, REQUEST_TIMEOUT};

/// What the generator calls, one histogram each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ep {
    Login,
    WsConnect,
    PostsPage,
    View,
    CreatePost,
    Thread,
    AddReaction,
    RemoveReaction,
    UsersByIds,
    Unreads,
    Search,
    Status,
    Upload,
}

impl Ep {
    pub const ALL: [Ep; 13] = [
        Ep::Login,
        Ep::WsConnect,
        Ep::PostsPage,
        Ep::View,
        Ep::CreatePost,
        Ep::Thread,
        Ep::AddReaction,
        Ep::RemoveReaction,
        Ep::UsersByIds,
        Ep::Unreads,
        Ep::Search,
        Ep::Status,
        Ep::Upload,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Ep::Login => "login",
            Ep::WsConnect => "ws_connect",
            Ep::PostsPage => "posts_page",
            Ep::View => "view",
            Ep::CreatePost => "create_post",
            Ep::Thread => "thread",
            Ep::AddReaction => "add_reaction",
            Ep::RemoveReaction => "remove_reaction",
            Ep::UsersByIds => "users_by_ids",
            Ep::Unreads => "unreads",
            Ep::Search => "search",
            Ep::Status => "status",
            Ep::Upload => "upload",
        }
    }

    /// Whether the call counts towards the health gates. Logins (deliberately slow Argon2,
    /// and only during ramps) and WebSocket upgrades are reported but not gated: the gates
    /// describe steady-state API time, as in Mattermost's load-test reports.
    pub fn gated(self) -> bool {
        !matches!(self, Ep::Login | Ep::WsConnect)
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Status(u16),
    Failed(Failure),
}

/// A latency histogram in microseconds, 1 µs … 60 s, 3 significant figures.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Records `d` (saturating at the histogram's top).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, 60_000_000);
    h.saturating_record(us);
}

/// Summary of a histogram in milliseconds.
pub fn hist_json(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| us as f64 / 1000.0;
    json!({
        "count": h.len(),
        "mean_ms": round3(if h.is_empty() { 0.0 } else { h.mean() / 1000.0 }),
        "p50_ms": round3(ms(h.value_at_quantile(0.50))),
        "p90_ms": round3(ms(h.value_at_quantile(0.90))),
        "p99_ms": round3(ms(h.value_at_quantile(0.99))),
        "max_ms": round3(ms(h.max())),
    })
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One endpoint's counters.
#[derive(Clone)]
pub struct EpStats {
    pub hist: Histogram<u64>,
    /// Exact sum of latencies (µs), for the mean gate.
    pub sum_us: u128,
    pub calls: u64,
    pub status_2xx: u64,
    pub status_201: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    pub other_status: u64,
    pub timeouts: u64,
    pub transport: u64,
}

impl EpStats {
    fn new() -> EpStats {
        EpStats {
            hist: new_hist(),
            sum_us: 0,
            calls: 0,
            status_2xx: 0,
            status_201: 0,
            status_4xx: 0,
            status_5xx: 0,
            other_status: 0,
            timeouts: 0,
            transport: 0,
        }
    }

    fn add(&mut self, d: Duration, o: Outcome) {
        // A timed-out call enters the latency figures at the timeout value (it cost the user at
        // least that long), which makes the mean and p99 conservative.
        let d = match o {
            Outcome::Failed(Failure::Timeout) => d.max(REQUEST_TIMEOUT),
            _ => d,
        };
        record(&mut self.hist, d);
        self.sum_us += d.as_micros();
        self.calls += 1;
        match o {
            // 101: a completed WebSocket upgrade.
            Outcome::Status(s) if (200..300).contains(&s) || s == 101 => {
                self.status_2xx += 1;
                if s == 201 {
                    self.status_201 += 1;
                }
            }
            Outcome::Status(s) if (400..500).contains(&s) => self.status_4xx += 1,
            Outcome::Status(s) if s >= 500 => self.status_5xx += 1,
            Outcome::Status(_) => self.other_status += 1,
            Outcome::Failed(Failure::Timeout) => self.timeouts += 1,
            Outcome::Failed(Failure::Transport) => self.transport += 1,
        }
    }

    fn merge(&mut self, o: &EpStats) {
        // Both histograms share bounds, so adding cannot fail.
        let _ = self.hist.add(&o.hist);
        self.sum_us += o.sum_us;
        self.calls += o.calls;
        self.status_2xx += o.status_2xx;
        self.status_201 += o.status_201;
        self.status_4xx += o.status_4xx;
        self.status_5xx += o.status_5xx;
        self.other_status += o.other_status;
        self.timeouts += o.timeouts;
        self.transport += o.transport;
    }

    pub fn mean_ms(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.sum_us as f64 / self.calls as f64 / 1000.0
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = hist_json(&self.hist);
        v["mean_ms"] = json!(round3(self.mean_ms()));
        v["calls"] = json!(self.calls);
        v["status_2xx"] = json!(self.status_2xx);
        v["status_201"] = json!(self.status_201);
        v["status_4xx"] = json!(self.status_4xx);
        v["status_5xx"] = json!(self.status_5xx);
        v["other_status"] = json!(self.other_status);
        v["timeouts"] = json!(self.timeouts);
        v["transport_errors"] = json!(self.transport);
        v
    }
}

/// Everything measured over one span of time.
#[derive(Clone)]
pub struct Window {
    pub eps: Vec<EpStats>,
    /// Post → WebSocket delivery, every recipient.
    pub delivery: Histogram<u64>,
    /// The subset where poster and recipient used different nodes.
    pub delivery_cross: Histogram<u64>,
    pub frames: u64,
    pub posted_frames: u64,
}

impl Window {
    pub fn new() -> Window {
        Window {
            eps: Ep::ALL.iter().map(|_| EpStats::new()).collect(),
            delivery: new_hist(),
            delivery_cross: new_hist(),
            frames: 0,
            posted_frames: 0,
        }
    }

    pub fn ep(&self, e: Ep) -> &EpStats {
        &self.eps[e as usize]
    }

    /// All gated endpoints merged.
    pub fn gated(&self) -> EpStats {
        let mut all = EpStats::new();
        for e in Ep::ALL.iter().filter(|e| e.gated()) {
            all.merge(self.ep(*e));
        }
        all
    }

    pub fn to_json(&self) -> Value {
        let mut per = serde_json::Map::new();
        for e in Ep::ALL {
            per.insert(e.name().into(), self.ep(e).to_json());
        }
        json!({
            "gated": self.gated().to_json(),
            "per_endpoint": per,
            "delivery": hist_json(&self.delivery),
            "delivery_cross_node": hist_json(&self.delivery_cross),
            "frames": {"total": self.frames, "posted": self.posted_frames},
        })
    }
}

impl Default for Window {
    fn default() -> Self {
        Window::new()
    }
}

/// The shared recorder.
pub struct Metrics {
    total: Mutex<Window>,
    window: Mutex<Window>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            total: Mutex::new(Window::new()),
            window: Mutex::new(Window::new()),
        }
    }

    pub fn call(&self, e: Ep, d: Duration, o: Outcome) {
        self.total.lock().eps[e as usize].add(d, o);
        self.window.lock().eps[e as usize].add(d, o);
    }

    pub fn delivered(&self, d: Duration, cross: bool) {
        for w in [&self.total, &self.window] {
            let mut w = w.lock();
            record(&mut w.delivery, d);
            if cross {
                record(&mut w.delivery_cross, d);
            }
        }
    }

    pub fn frame(&self, posted: bool) {
        for w in [&self.total, &self.window] {
            let mut w = w.lock();
            w.frames += 1;
            w.posted_frames += u64::from(posted);
        }
    }

    /// Starts a new window; returns the one that ended.
    pub fn rotate(&self) -> Window {
        std::mem::take(&mut *self.window.lock())
    }

    pub fn total(&self) -> Window {
        self.total.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_land_in_their_counters_and_windows_rotate() {
        let m = Metrics::new();
        m.call(
            Ep::CreatePost,
            Duration::from_millis(5),
            Outcome::Status(201),
        );
        m.call(Ep::Search, Duration::from_millis(7), Outcome::Status(503));
        m.call(
            Ep::Search,
            Duration::from_millis(1),
            Outcome::Failed(Failure::Timeout),
        );
        m.call(Ep::Login, Duration::from_millis(90), Outcome::Status(200));
        let w = m.rotate();
        assert_eq!(w.ep(Ep::CreatePost).status_201, 1);
        assert_eq!(w.ep(Ep::Search).status_5xx, 1);
        assert_eq!(w.ep(Ep::Search).timeouts, 1);
        // The timeout counts at 10 s; logins are not gated.
        let g = w.gated();
        assert_eq!(g.calls, 3);
        assert!((g.mean_ms() - (5.0 + 7.0 + 10_000.0) / 3.0).abs() < 0.01);
        assert_eq!(m.rotate().gated().calls, 0);
        assert_eq!(m.total().gated().calls, 3);
    }
}
