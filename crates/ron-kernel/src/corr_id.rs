//! Correlation ids: one id per request, on every log line about it and on the response.
//!
//! [`CorrIdLayer`] takes the request's header value when it is well-formed, otherwise mints
//! a ULID; stores a [`CorrId`] in the request extensions; runs the inner service inside a
//! `request` span carrying `corr_id` (the JSON log layer copies it onto every line) and in
//! a task-local scope so [`CorrId::current`] can put it in error bodies; and sets the same
//! header on the response.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Request, Response};
use tracing::Instrument;

/// Default correlation header.
pub const DEFAULT_CORR_HEADER: &str = "x-corr-id";
/// Default longest accepted id, in bytes.
pub const DEFAULT_CORR_MAX_LEN: usize = 64;
/// Default punctuation accepted besides ASCII letters and digits.
pub const DEFAULT_CORR_PUNCT: &str = "._:-";

tokio::task_local! {
    static CURRENT: CorrId;
}

/// A request's correlation id.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CorrId(pub Arc<str>);

/// How ids are read and minted.
#[derive(Debug, Clone)]
pub struct CorrIdConfig {
    /// Header read from requests and set on responses.
    pub header: HeaderName,
    /// Punctuation allowed besides `[A-Za-z0-9]`.
    pub punct: &'static str,
    /// Longest accepted id in bytes.
    pub max_len: usize,
}

/// Tower layer that assigns correlation ids.
#[derive(Debug, Clone)]
pub struct CorrIdLayer {
    config: Arc<CorrIdConfig>,
}

/// The service produced by [`CorrIdLayer`].
#[derive(Debug, Clone)]
pub struct CorrIdService<S> {
    inner: S,
    config: Arc<CorrIdConfig>,
}

impl CorrId {
    /// A fresh 26-character ULID.
    pub fn generate() -> CorrId {
        // Encoded on the stack, then one allocation for the shared text (every request
        // without an id mints one, so this is on the hot path).
        let mut buf = [0u8; ulid::ULID_LEN];
        CorrId(Arc::from(&*ulid::Ulid::new().array_to_str(&mut buf)))
    }

    /// The id of the request this task is serving, if inside a [`CorrIdLayer`] scope.
    pub fn current() -> Option<CorrId> {
        CURRENT.try_with(|c| c.clone()).ok()
    }

    /// Runs `fut` with `self` as [`CorrId::current`].
    pub fn scope<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, fut)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Takes `value` if it matches the configured charset and length, else mints a ULID.
    pub fn from_header(value: Option<&HeaderValue>, config: &CorrIdConfig) -> CorrId {
        match value.and_then(|v| v.to_str().ok()) {
            Some(s) if config.accepts(s) => CorrId(s.into()),
            _ => CorrId::generate(),
        }
    }
}

impl fmt::Display for CorrId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CorrId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CorrId({})", self.0)
    }
}

impl Default for CorrIdConfig {
    fn default() -> Self {
        CorrIdConfig {
            header: HeaderName::from_static(DEFAULT_CORR_HEADER),
            punct: DEFAULT_CORR_PUNCT,
            max_len: DEFAULT_CORR_MAX_LEN,
        }
    }
}

impl CorrIdConfig {
    /// Whether `s` is an acceptable incoming id.
    pub fn accepts(&self, s: &str) -> bool {
        !s.is_empty()
            && s.len() <= self.max_len
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || self.punct.as_bytes().contains(&b))
    }
}

impl CorrIdLayer {
    /// A layer with the given settings.
    pub fn new(config: CorrIdConfig) -> CorrIdLayer {
        CorrIdLayer {
            config: Arc::new(config),
        }
    }
}

impl<S> tower_layer::Layer<S> for CorrIdLayer {
    type Service = CorrIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CorrIdService {
            inner,
            config: self.config.clone(),
        }
    }
}

impl<S, B, RB> tower_service::Service<Request<B>> for CorrIdService<S>
where
    S: tower_service::Service<Request<B>, Response = Response<RB>> + Send,
    S::Future: Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id = CorrId::from_header(req.headers().get(&self.config.header), &self.config);
        req.extensions_mut().insert(id.clone());
        let span = tracing::info_span!("request", corr_id = %id);
        let header = self.config.header.clone();
        let fut = self.inner.call(req);
        Box::pin(
            async move {
                let mut resp = CURRENT.scope(id.clone(), fut).await?;
                if let Ok(v) = HeaderValue::from_str(id.as_str()) {
                    resp.headers_mut().insert(header, v);
                }
                Ok(resp)
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower_layer::Layer;
    use tower_service::Service;

    #[derive(Clone)]
    struct Echo;

    impl Service<Request<()>> for Echo {
        type Response = Response<String>;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Response<String>, Infallible>> + Send>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: Request<()>) -> Self::Future {
            let ext = req.extensions().get::<CorrId>().cloned();
            Box::pin(async move {
                let cur = CorrId::current();
                assert_eq!(cur, ext);
                Ok(Response::new(
                    cur.map(|c| c.to_string()).unwrap_or_default(),
                ))
            })
        }
    }

    async fn run(layer: &CorrIdLayer, header: Option<&str>) -> Response<String> {
        let mut svc = layer.layer(Echo);
        let mut req = Request::new(());
        if let Some(h) = header {
            req.headers_mut().insert(
                layer.config.header.clone(),
                HeaderValue::from_str(h).unwrap(),
            );
        }
        svc.call(req).await.unwrap()
    }

    #[tokio::test]
    async fn valid_incoming_id_is_echoed_and_current() {
        let layer = CorrIdLayer::new(CorrIdConfig::default());
        let resp = run(&layer, Some("abc-1")).await;
        assert_eq!(resp.headers()["x-corr-id"], "abc-1");
        assert_eq!(resp.body(), "abc-1");
    }

    #[tokio::test]
    async fn invalid_or_long_ids_are_replaced_by_a_ulid() {
        let layer = CorrIdLayer::new(CorrIdConfig::default());
        for bad in ["a b", &"x".repeat(65), "semi;colon"] {
            let resp = run(&layer, Some(bad)).await;
            let got = resp.headers()["x-corr-id"].to_str().unwrap().to_owned();
            assert_eq!(got.len(), 26, "{bad:?} -> {got}");
            assert!(ulid::Ulid::from_string(&got).is_ok());
            assert_eq!(resp.body(), &got);
        }
    }

    #[tokio::test]
    async fn custom_header_and_charset_apply() {
        let layer = CorrIdLayer::new(CorrIdConfig {
            header: HeaderName::from_static("x-request-id"),
            punct: "._-",
            max_len: 64,
        });
        assert_eq!(
            run(&layer, Some("a.b_c-d")).await.headers()["x-request-id"],
            "a.b_c-d"
        );
        let replaced = run(&layer, Some("a:b")).await;
        assert_ne!(replaced.headers()["x-request-id"], "a:b");
        assert!(
            run(&layer, None)
                .await
                .headers()
                .contains_key("x-request-id")
        );
    }

    #[test]
    fn current_is_none_outside_a_request() {
        assert!(CorrId::current().is_none());
    }
}
