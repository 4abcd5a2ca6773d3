//! Live fill (spec §4.11): fetch an object from an allow-listed HTTPS origin into the CAS
//! (or the RAM cache under amnesia), once per cache key however many requests ask.
//!
//! What it is for: `/edge/live/{host}/{path}[?b3=]`. [`Filler::get`] checks the
//! allow-list, looks the object up, and otherwise joins or starts a single-flight fill:
//! vet the addresses, fetch with bounded size, time, redirects and retries, hash while
//! storing, commit, write the ref. What it is not for: revalidation against origin
//! validators, negative caching or stale-on-error (spec "later"), or serving: the caller
//! turns a [`FillHit`] into a response and an [`EdgeError`] into an error answer.
//!
//! Modules: [`allow`] (allow-list), [`vet`] (address vetting), [`client`] (HTTPS with
//! pinned addresses and redirects), [`flight`] (single-flight queue), [`store`] (CAS or
//! RAM commits and refs).

pub mod allow;
pub mod client;
pub mod flight;
pub mod store;
pub mod vet;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::StatusCode;
use http::header;
use http_body_util::BodyExt;
use rand::Rng;
use ron_metrics::{Counter, CounterVec, IntGauge};
use tokio::time::Instant;
use tracing::Instrument;

use self::allow::{AllowList, Origin};
use self::client::{Client, ClientError, FetchError, Policy, TlsCounters};
use self::flight::{FlightCounters, Flights, Outcome};
use self::store::{Store, Stored};
use self::vet::VetError;
use crate::cas::is_digest;
use crate::config::{EdgeConfig, Mode};
use crate::errors::EdgeError;
use crate::metrics::EdgeMetrics;
use crate::mime::OCTET_STREAM;

/// Longest origin `Content-Type` kept; longer ones are replaced by octet-stream.
pub const MAX_CONTENT_TYPE_LEN: usize = 256;

/// An object served by the live route.
#[derive(Clone)]
pub struct FillHit {
    /// The bytes.
    pub body: Bytes,
    /// Digest, lower-case hex.
    pub hash: Arc<str>,
    /// `"b3:<hex>"`.
    pub etag: Arc<str>,
    /// The origin's `Content-Type`.
    pub content_type: Arc<str>,
    /// Found in the store without a fill (`edge_cache_hits_total{kind="live"}`).
    pub cached: bool,
}

/// Why a [`Filler`] could not be built or reconfigured.
#[derive(Debug, thiserror::Error)]
pub enum FillError {
    /// The TLS client (roots, `ca_file`) could not be built.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Fetches, stores and coalesces live fills. Build it inside a tokio runtime.
pub struct Filler {
    shared: Arc<Shared>,
}

struct Shared {
    settings: ArcSwap<Settings>,
    store: Store,
    flights: Flights,
    metrics: FillMetrics,
    tls: TlsCounters,
}

/// The reloadable part of the config.
struct Settings {
    mode: Mode,
    allow: AllowList,
    allow_private: bool,
    client: Client,
    max_object_bytes: u64,
    fill_timeout: Duration,
    retries: u32,
    backoff_base_ms: u64,
    backoff_max_ms: u64,
    live_ttl: Duration,
}

struct FillMetrics {
    attempts: CounterVec,
    success: CounterVec,
    retries: CounterVec,
    hits: Counter,
    misses: Counter,
    timeouts_fill: Counter,
    timeouts_connect: Counter,
    ram_bytes: IntGauge,
}

/// One fill: everything the job needs, owned, so it outlives the requests that wait.
struct FillJob {
    shared: Arc<Shared>,
    settings: Arc<Settings>,
    origin: Origin,
    path: String,
    key: String,
    expected: Option<String>,
    deadline: Instant,
}

/// How one attempt failed: the answer, whether to try again, and the log reason.
struct Failure {
    error: EdgeError,
    retry: bool,
    reason: &'static str,
    detail: String,
}

impl Filler {
    /// A filler over `store` with `config`'s allow-list, limits and TLS roots; the queue
    /// holds `edge.fill_queue` jobs (fixed until restart).
    pub fn new(
        config: &EdgeConfig,
        metrics: &EdgeMetrics,
        store: Store,
    ) -> Result<Filler, FillError> {
        let tls = TlsCounters {
            outbound: metrics.tls_failures.with_label_values(&["outbound"]),
            total: metrics.metrics.tls_handshake_failures_total.clone(),
        };
        let settings = Settings::from_config(config, tls.clone())?;
        let fill_metrics = FillMetrics {
            attempts: metrics.fill_attempts.clone(),
            success: metrics.fill_success.clone(),
            retries: metrics.fill_retries.clone(),
            hits: metrics.hits.with_label_values(&["live"]),
            misses: metrics.misses.with_label_values(&["live"]),
            timeouts_fill: metrics.io_timeouts.with_label_values(&["fill"]),
            timeouts_connect: metrics.io_timeouts.with_label_values(&["connect"]),
            ram_bytes: metrics.ram_cache_bytes.clone(),
        };
        let flights = Flights::new(
            config.edge.fill_queue,
            config.edge.fill_concurrency,
            FlightCounters {
                depth: metrics.queue_depth.clone(),
                dropped: metrics.queue_dropped.clone(),
                coalesced: metrics.fill_coalesced.clone(),
            },
        );
        Ok(Filler {
            shared: Arc::new(Shared {
                settings: ArcSwap::from_pointee(settings),
                store,
                flights,
                metrics: fill_metrics,
                tls,
            }),
        })
    }

    /// Applies a reloaded config (SIGHUP): allow-list, mode, `allow_private`, `ca_file`,
    /// size, time, retry and TTL limits, and `fill_concurrency`. `fill_queue` stays as
    /// built. On error nothing changes.
    pub fn reconfigure(&self, config: &EdgeConfig) -> Result<(), FillError> {
        let settings = Settings::from_config(config, self.shared.tls.clone())?;
        self.shared.settings.store(Arc::new(settings));
        self.shared.flights.resize(config.edge.fill_concurrency);
        Ok(())
    }

    /// The store fills land in; `/cas/b3/{hex}` serves from it too (the RAM cache under
    /// amnesia).
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Whether the fill queue is full (`under_pressure`).
    pub fn queue_full(&self) -> bool {
        self.shared.flights.queue_full()
    }

    /// The object at `https://{host_segment}/{raw_path_segments…}` (segments still
    /// percent-encoded, as received), optionally pinned to digest `expected_b3`: from the
    /// store when present and fresh, else from a fill this request starts or joins. The
    /// request stops waiting at `deadline` (503 `timeout`); the fill goes on.
    pub async fn get(
        &self,
        host_segment: &str,
        raw_path_segments: &[&str],
        expected_b3: Option<&str>,
        deadline: std::time::Instant,
    ) -> Result<FillHit, EdgeError> {
        let settings = self.shared.settings.load_full();
        let origin = settings
            .allow
            .check(host_segment)
            .ok_or(EdgeError::NotAllowed)?;
        let path = origin_path(raw_path_segments)?;
        if expected_b3.is_some_and(|h| !is_digest(h)) {
            return Err(EdgeError::BadRequest);
        }
        let key = format!("https://{}{}", origin.authority(), path);
        let store = &self.shared.store;
        let found = match expected_b3 {
            Some(h) => {
                let content_type = store.content_type_for(&key, h).await;
                store.by_digest(h, &content_type).await?
            }
            None => store.by_ref(&key, settings.live_ttl).await?,
        };
        let m = &self.shared.metrics;
        if let Some(stored) = found {
            m.hits.inc();
            return Ok(hit(stored, true));
        }
        m.misses.inc();
        if settings.mode == Mode::Offline {
            return Err(EdgeError::NotFound);
        }
        let expected = expected_b3.map(str::to_owned);
        let job = FillJob {
            shared: self.shared.clone(),
            deadline: Instant::now() + settings.fill_timeout,
            settings,
            origin,
            path,
            key: key.clone(),
            expected: expected.clone(),
        };
        let slot = self
            .shared
            .flights
            .join((key, expected), move |publisher| {
                let span = tracing::info_span!("svc.edge.fill", host = %job.origin.host);
                async move { publisher.publish(job.run().await) }.instrument(span)
            })?;
        match Flights::wait_until(slot, Instant::from_std(deadline)).await {
            Some(outcome) => Ok(hit(outcome?, false)),
            None => {
                // This request's deadline, not the fill's: the fill goes on and stores.
                m.timeouts_fill.inc();
                Err(EdgeError::Timeout)
            }
        }
    }
}

impl Settings {
    fn from_config(config: &EdgeConfig, tls: TlsCounters) -> Result<Settings, FillError> {
        let e = &config.edge;
        Ok(Settings {
            mode: e.mode,
            allow: AllowList::new(&e.allow),
            allow_private: e.allow_private,
            client: Client::new(e.ca_file.as_deref(), tls)?,
            max_object_bytes: e.max_object_bytes,
            fill_timeout: Duration::from_secs(e.fill_timeout_secs.into()),
            retries: e.fill_retries,
            backoff_base_ms: e.fill_backoff_base_ms.into(),
            backoff_max_ms: e.fill_backoff_max_ms.into(),
            live_ttl: Duration::from_secs(e.live_ttl_secs.into()),
        })
    }
}

impl FillJob {
    /// Runs the fill to its end, counts it and writes the `live_fill` audit line.
    async fn run(self) -> Outcome {
        let started = Instant::now();
        let m = &self.shared.metrics;
        let host = self.origin.host.as_str();
        m.attempts.with_label_values(&[host]).inc();
        let mut attempts = 0u32;
        let result = self.fetch_with_retries(&mut attempts).await;
        let ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(stored) => {
                m.success.with_label_values(&[host]).inc();
                if let Store::Ram(ram) = &self.shared.store {
                    m.ram_bytes.set(ram.bytes_used() as i64);
                }
                tracing::info!(event = "live_fill", origin_host = host, hash = %stored.hash, size = stored.body.len(), attempts, ms, result = "ok", reason = "", "live_fill");
            }
            Err(f) => {
                tracing::warn!(event = "live_fill", origin_host = host, hash = "", size = 0u64, attempts, ms, result = "error", reason = f.reason, detail = %f.detail, "live_fill");
            }
        }
        result.map_err(|f| f.error)
    }

    async fn fetch_with_retries(&self, attempts: &mut u32) -> Result<Stored, Failure> {
        let s = &self.settings;
        let mut connected = false;
        let addrs = vet::resolve(&self.origin, s.allow_private, self.deadline)
            .await
            .map_err(vet_failure)?;
        let mut last = None;
        for n in 0..=s.retries {
            if n > 0 {
                let pause = backoff(n, s.backoff_base_ms, s.backoff_max_ms);
                // No sleep starts that would end past the fill deadline.
                if Instant::now() + pause > self.deadline {
                    break;
                }
                self.shared
                    .metrics
                    .retries
                    .with_label_values(&[&self.origin.host])
                    .inc();
                tokio::time::sleep(pause).await;
            }
            *attempts += 1;
            let attempt = self.attempt(&addrs, &mut connected);
            match tokio::time::timeout_at(self.deadline, attempt).await {
                Ok(Ok(stored)) => return Ok(stored),
                Ok(Err(f)) if f.retry => last = Some(f),
                Ok(Err(f)) => return Err(f),
                Err(_) => return Err(self.timed_out(connected)),
            }
        }
        Err(last.unwrap_or_else(|| self.timed_out(connected)))
    }

    fn timed_out(&self, connected: bool) -> Failure {
        let m = &self.shared.metrics;
        if connected {
            m.timeouts_fill.inc();
        } else {
            m.timeouts_connect.inc();
        }
        Failure {
            error: EdgeError::Timeout,
            retry: false,
            reason: "timeout",
            detail: "fill deadline passed".into(),
        }
    }

    async fn attempt(
        &self,
        addrs: &[std::net::SocketAddr],
        connected: &mut bool,
    ) -> Result<Stored, Failure> {
        let s = &self.settings;
        let policy = Policy {
            allow: &s.allow,
            allow_private: s.allow_private,
        };
        let fetched = s
            .client
            .get(
                &self.origin,
                &self.path,
                addrs,
                &policy,
                self.deadline,
                connected,
            )
            .await
            .map_err(fetch_failure)?;
        let response = fetched.response;
        status_failure(response.status())?;
        let headers = response.headers();
        let encoding = headers
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
        if encoding.is_some_and(|e| e != "identity") {
            return Err(fail(
                EdgeError::Upstream,
                false,
                "origin sent a content coding",
            ));
        }
        let store = &self.shared.store;
        let (limit, over_limit) = store.limit(s.max_object_bytes);
        let too_big = |len: u64| {
            if len > s.max_object_bytes {
                Some(fail(EdgeError::TooLarge, false, "over max_object_bytes"))
            } else if len > limit {
                Some(fail(over_limit, false, "over the RAM cache object limit"))
            } else {
                None
            }
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(f) = declared.and_then(too_big) {
            return Err(f);
        }
        let content_type = content_type(headers.get(header::CONTENT_TYPE));
        let mut sink = store
            .begin()
            .await
            .map_err(|e| fail(e, false, "cannot create a temp file"))?;
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| fail(EdgeError::Upstream, true, &e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if let Some(f) = too_big(sink.len() + data.len() as u64) {
                return Err(f);
            }
            sink.write(&data)
                .await
                .map_err(|e| fail(e, false, "store write failed"))?;
        }
        store
            .commit(sink, self.expected.as_deref(), &self.key, &content_type)
            .await
            .map_err(|e| fail(e, false, "commit failed"))
    }
}

fn hit(s: Stored, cached: bool) -> FillHit {
    FillHit {
        body: s.body,
        hash: s.hash,
        etag: s.etag,
        content_type: s.content_type,
        cached,
    }
}

/// `/{seg}/{seg}…` from raw segments; each must be a non-empty RFC 3986 `pchar` run.
fn origin_path(segments: &[&str]) -> Result<String, EdgeError> {
    if segments.is_empty() {
        return Err(EdgeError::BadRequest);
    }
    let pchar = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%".contains(&b);
    let mut path = String::new();
    for seg in segments {
        if seg.is_empty() || !seg.bytes().all(pchar) {
            return Err(EdgeError::BadRequest);
        }
        path.push('/');
        path.push_str(seg);
    }
    Ok(path)
}

/// The origin's `Content-Type` when it is short printable ASCII, else octet-stream.
fn content_type(v: Option<&http::HeaderValue>) -> String {
    v.and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= MAX_CONTENT_TYPE_LEN)
        .filter(|t| t.bytes().all(|b| (0x20..0x7f).contains(&b)))
        .unwrap_or(OCTET_STREAM)
        .to_owned()
}

/// Sleep before attempt `n` (n ≥ 1): uniform in [d/2, d], d = min(max, base·2^n).
fn backoff(n: u32, base_ms: u64, max_ms: u64) -> Duration {
    let d = base_ms.saturating_mul(1u64 << n.min(20)).min(max_ms);
    Duration::from_millis(rand::rng().random_range(d / 2..=d))
}

fn fail(error: EdgeError, retry: bool, detail: &str) -> Failure {
    Failure {
        error,
        retry,
        reason: error.reason().unwrap_or("not_found"),
        detail: detail.to_owned(),
    }
}

/// Spec §4.11 step 8: 200 passes; 404/410 → 404; other 4xx → 502 `upstream_4xx`;
/// 502/503/504 are retried, other 5xx are not; anything else is 502 `upstream`.
fn status_failure(status: StatusCode) -> Result<(), Failure> {
    let code = status.as_u16();
    let detail = format!("origin answered {code}");
    let (error, retry, reason) = match code {
        200 => return Ok(()),
        404 | 410 => (EdgeError::NotFound, false, "upstream_4xx"),
        400..=499 => (EdgeError::Upstream4xx, false, "upstream_4xx"),
        502..=504 => (EdgeError::Upstream5xx, true, "upstream_5xx"),
        500..=599 => (EdgeError::Upstream5xx, false, "upstream_5xx"),
        _ => (EdgeError::Upstream, false, "upstream"),
    };
    Err(Failure {
        error,
        retry,
        reason,
        detail,
    })
}

fn fetch_failure(e: FetchError) -> Failure {
    match e {
        FetchError::Vet(v) => vet_failure(v),
        other => fail(EdgeError::Upstream, other.retryable(), &other.to_string()),
    }
}

fn vet_failure(e: VetError) -> Failure {
    let error = match e {
        VetError::PrivateOnly { .. } => EdgeError::PrivateAddress,
        VetError::Resolve { .. } => EdgeError::Upstream,
    };
    fail(error, false, &e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_within_half_to_full_of_the_capped_doubling() {
        for n in 1..6 {
            let d = (100u64 << n).min(2000);
            for _ in 0..50 {
                let p = backoff(n, 100, 2000).as_millis() as u64;
                assert!((d / 2..=d).contains(&p), "n={n} p={p}");
            }
        }
        let capped = backoff(40, 60_000, 60_000);
        assert!((Duration::from_secs(30)..=Duration::from_secs(60)).contains(&capped));
    }

    #[test]
    fn origin_paths_keep_raw_segments_and_refuse_anything_else() {
        assert_eq!(origin_path(&["a", "b%20c.txt"]).unwrap(), "/a/b%20c.txt");
        for bad in [&[][..], &[""], &["a b"], &["a?b"], &["a#b"], &["é"]] {
            assert_eq!(origin_path(bad), Err(EdgeError::BadRequest), "{bad:?}");
        }
    }

    #[test]
    fn origin_statuses_map_to_the_spec_answers() {
        let f = |c: u16| {
            status_failure(StatusCode::from_u16(c).unwrap())
                .err()
                .map(|f| (f.error, f.retry, f.reason))
        };
        assert!(f(200).is_none());
        assert_eq!(f(404), Some((EdgeError::NotFound, false, "upstream_4xx")));
        assert_eq!(f(410), Some((EdgeError::NotFound, false, "upstream_4xx")));
        assert_eq!(
            f(403),
            Some((EdgeError::Upstream4xx, false, "upstream_4xx"))
        );
        assert_eq!(f(503), Some((EdgeError::Upstream5xx, true, "upstream_5xx")));
        assert_eq!(
            f(500),
            Some((EdgeError::Upstream5xx, false, "upstream_5xx"))
        );
        assert_eq!(f(206), Some((EdgeError::Upstream, false, "upstream")));
    }

    #[test]
    fn odd_content_types_fall_back_to_octet_stream() {
        let v = |s: &str| http::HeaderValue::from_str(s).unwrap();
        assert_eq!(content_type(Some(&v("text/plain"))), "text/plain");
        assert_eq!(content_type(None), OCTET_STREAM);
        assert_eq!(content_type(Some(&v(&"a".repeat(300)))), OCTET_STREAM);
    }
}
