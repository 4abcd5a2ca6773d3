//! Reading a PMTiles archive over HTTP Range requests, the way map clients read one from
//! `/edge/assets/{name}.pmtiles` (spec EDGE-T13): a backend for the `pmtiles` crate's
//! async reader, so header, directory and leaf decoding are the crate's and only the byte
//! fetching is ours.
//!
//! What it is for: checking that an edge serves an archive that a range-reading client can
//! use, tile for tile. What it is not for: TLS origins or production traffic (plain
//! `http://host:port/path` on one fresh connection per read; no retries).
//!
//! Every read sends `Range: bytes=a-b`; after the first answer it also sends
//! `If-Match` with that answer's ETag, so an archive swapped between reads is refused
//! (412) instead of being stitched together from two versions.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use pmtiles::{AsyncBackend, BackendResponse, PmtError, PmtResult};

/// An `http://` archive URL read with Range requests.
pub struct HttpRangeBackend {
    addr: SocketAddr,
    authority: String,
    path: String,
    etag: Mutex<Option<HeaderValue>>,
    requests: RangeLog,
}

/// The `Range` header of every request a backend sent, in order; a clone stays readable
/// after the backend moves into a reader.
#[derive(Clone, Default)]
pub struct RangeLog(Arc<Mutex<Vec<String>>>);

impl RangeLog {
    /// The ranges so far.
    pub fn ranges(&self) -> Vec<String> {
        self.0.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn push(&self, range: String) {
        if let Ok(mut r) = self.0.lock() {
            r.push(range);
        }
    }
}

impl HttpRangeBackend {
    /// A backend for `url` (`http://IP:PORT/path`; host names are not resolved).
    pub fn new(url: &str) -> Result<HttpRangeBackend, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: expected http://IP:PORT/path"))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let addr: SocketAddr = authority
            .parse()
            .map_err(|e| format!("{url}: authority {authority:?}: {e}"))?;
        Ok(HttpRangeBackend {
            addr,
            authority: authority.to_owned(),
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
            etag: Mutex::new(None),
            requests: RangeLog::default(),
        })
    }

    /// A handle on the ranges this backend requests.
    pub fn range_log(&self) -> RangeLog {
        self.requests.clone()
    }

    async fn fetch(&self, offset: u64, length: usize) -> io::Result<BackendResponse> {
        let last = offset + length as u64 - 1;
        let range = format!("bytes={offset}-{last}");
        let pinned = self.etag.lock().ok().and_then(|e| e.clone());
        let mut req = Request::get(self.path.as_str())
            .header(header::HOST, self.authority.as_str())
            .header(header::RANGE, range.as_str());
        if let Some(tag) = &pinned {
            req = req.header(header::IF_MATCH, tag.clone());
        }
        let req = req.body(Empty::<Bytes>::new()).map_err(io::Error::other)?;
        self.requests.push(range);
        let stream = tokio::net::TcpStream::connect(self.addr).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(conn);
        let resp = sender.send_request(req).await.map_err(io::Error::other)?;
        let status = resp.status();
        let etag = resp.headers().get(header::ETAG).cloned();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(io::Error::other)?
            .to_bytes();
        let bytes = match status {
            StatusCode::PARTIAL_CONTENT => body,
            // A server that ignores Range sends everything; keep the asked-for window.
            StatusCode::OK => {
                let start = (offset as usize).min(body.len());
                body.slice(start..(start + length).min(body.len()))
            }
            // Nothing at or after `offset`.
            StatusCode::RANGE_NOT_SATISFIABLE => Bytes::new(),
            other => return Err(io::Error::other(format!("answered {other}"))),
        };
        if pinned.is_none()
            && let (Some(tag), Ok(mut slot)) = (&etag, self.etag.lock())
        {
            *slot = Some(tag.clone());
        }
        Ok(BackendResponse {
            bytes,
            data_version_string: etag.and_then(|t| t.to_str().ok().map(str::to_owned)),
        })
    }
}

impl AsyncBackend for HttpRangeBackend {
    async fn read(&self, offset: u64, length: usize) -> PmtResult<BackendResponse> {
        self.fetch(offset, length).await.map_err(PmtError::Reading)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_ip_urls_are_accepted() {
        let b = HttpRangeBackend::new("http://127.0.0.1:8080/edge/assets/w.pmtiles").unwrap();
        assert_eq!(b.addr.port(), 8080);
        assert_eq!(b.path, "/edge/assets/w.pmtiles");
        assert_eq!(
            HttpRangeBackend::new("http://127.0.0.1:1").unwrap().path,
            "/"
        );
        for bad in ["https://127.0.0.1:1/x", "http://example.org/x", "ftp://a"] {
            assert!(HttpRangeBackend::new(bad).is_err(), "{bad}");
        }
    }
}
