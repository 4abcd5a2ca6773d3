//! The two background tasks: a ticker that snapshots the registry into the bounded queue,
//! and an exporter that sends the oldest snapshot with a timeout and backs off on failure.
//! They are separate so a stalled collector only ever costs queue slots, never a missed
//! snapshot tick, and nothing on the scrape or recording paths waits for either.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use tokio::time::{Instant, MissedTickBehavior};

use super::client::{ExportError, OtlpClient};
use super::endpoint::Transport;
use super::queue::SnapshotQueue;
use super::snapshot::snapshot;
use super::{
    OTEL_BACKOFF_INITIAL, OTEL_BACKOFF_MAX, OTEL_EXPORT_TIMEOUT, OTEL_LOG_EVERY,
    OTEL_QUEUE_CAPACITY, OtelExporter, OtelFamilies,
};
use crate::registry::Inner;

/// Starts both tasks; they end once the registry is dropped.
pub(crate) fn spawn(
    exporter: &OtelExporter,
    families: &OtelFamilies,
    registry: Weak<Inner>,
    start: SystemTime,
) {
    let queue = Arc::new(SnapshotQueue::new(
        OTEL_QUEUE_CAPACITY,
        families.dropped.clone(),
        families.depth.clone(),
    ));
    tokio::spawn(tick(registry, start, exporter.interval, queue.clone()));
    let run = Run {
        client: exporter.client.clone(),
        transport: exporter.endpoint.transport,
        endpoint: exporter.endpoint.redacted.clone(),
        families: families.clone(),
    };
    tokio::spawn(run.export_all(queue));
}

async fn tick(
    registry: Weak<Inner>,
    start: SystemTime,
    every: Duration,
    queue: Arc<SnapshotQueue<ExportMetricsServiceRequest>>,
) {
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = registry.upgrade() else {
            break;
        };
        queue.push(snapshot(&inner, start, SystemTime::now()));
    }
    queue.close();
}

struct Run {
    client: OtlpClient,
    transport: Transport,
    endpoint: String,
    families: OtelFamilies,
}

impl Run {
    async fn export_all(self, queue: Arc<SnapshotQueue<ExportMetricsServiceRequest>>) {
        let mut use_http = self.transport == Transport::Http;
        // Bare host:port decides its transport on the first export the peer answers.
        let mut fallback_open = self.transport == Transport::GrpcThenHttp;
        let mut backoff = Backoff::new(OTEL_BACKOFF_INITIAL, OTEL_BACKOFF_MAX);
        let mut failed_log = Throttle::new(OTEL_LOG_EVERY);
        let mut fallback_log = Throttle::new(OTEL_LOG_EVERY);
        while let Some(req) = queue.pop().await {
            let attempt = async {
                if use_http {
                    self.client.export_http(&req).await
                } else {
                    self.client.export_grpc(&req).await
                }
            };
            let result = tokio::time::timeout(OTEL_EXPORT_TIMEOUT, attempt)
                .await
                .unwrap_or(Err(ExportError::Timeout(OTEL_EXPORT_TIMEOUT)));
            match result {
                Ok(()) => {
                    self.families.ok.inc();
                    backoff.reset();
                    fallback_open = false;
                }
                Err(e @ ExportError::Protocol(_)) if fallback_open => {
                    self.families.error.inc();
                    fallback_open = false;
                    use_http = true;
                    if let Some(suppressed) = fallback_log.allow(Instant::now()) {
                        tracing::warn!(endpoint = %self.endpoint, error = %e, suppressed, "otel_fallback");
                    }
                    // Straight to HTTP with the same snapshot: nothing is wrong with the peer.
                    queue.requeue(req);
                }
                Err(e) => {
                    self.families.error.inc();
                    fallback_open &= !e.reached_peer();
                    if let Some(suppressed) = failed_log.allow(Instant::now()) {
                        tracing::warn!(endpoint = %self.endpoint, error = %e, suppressed, "otel_export_failed");
                    }
                    queue.requeue(req);
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
}

/// Doubling delay between failed exports, capped, reset by a success.
struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// At most one log line per period; counts what it held back.
struct Throttle {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(lines held back since the last one)` when a line may be written now.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let delays: Vec<u64> = (0..8).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn logs_are_throttled_to_one_per_period_and_count_what_was_held_back() {
        let mut t = Throttle::new(Duration::from_secs(60));
        assert_eq!(t.allow(Instant::now()), Some(0));
        assert_eq!(t.allow(Instant::now()), None);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(t.allow(Instant::now()), None);
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(t.allow(Instant::now()), Some(2));
    }
}
