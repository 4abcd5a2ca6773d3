//! Turning a representation into a response: RFC 9110 preconditions, Range (single and
//! multipart), 304/412/416, and the header set of spec §3.2. Bodies are zero-copy `Bytes`
//! views of the mapping.

use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use crate::conditional::{self, Conditionals, Precondition, Validators};
use crate::errors::EdgeError;
use crate::multipart::{self, Multipart};
use crate::range::{self, RangeOutcome};

/// Room for every header a response ends up with (representation, always-present and
/// CORS headers), so the map never grows after it is made.
const RESPONSE_HEADERS: usize = 16;

/// One servable representation.
#[derive(Clone)]
pub struct Representation {
    /// The full bytes.
    pub body: Bytes,
    /// `"b3:<hex>"` of exactly these bytes, quoted.
    pub etag: HeaderValue,
    /// `Last-Modified`, for pack-backed objects: the time and its preformatted header.
    pub last_modified: Option<(SystemTime, HeaderValue)>,
    /// `Content-Type`, as a header value: static for packs and tiles, the origin's for
    /// live objects.
    pub content_type: HeaderValue,
    /// `Cache-Control`, preformatted.
    pub cache_control: HeaderValue,
    /// Send `Vary: Accept-Encoding`.
    pub vary_accept_encoding: bool,
    /// `Content-Encoding` of the stored bytes sent as is.
    pub content_encoding: Option<&'static str>,
}

/// What the pipeline sends: status, headers, body chunks and the range result to count.
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers (the pipeline adds the always-present ones).
    pub headers: HeaderMap,
    /// Body chunks; empty for HEAD, 304 and 416's JSON is added by the caller.
    pub chunks: Vec<Bytes>,
    /// `edge_range_requests_total{result}` label, if Range was present on a GET.
    pub range_result: Option<&'static str>,
    /// An error to render instead (412, 416).
    pub error: Option<EdgeError>,
}

/// Applies preconditions and Range to `rep` for a request with `method` and `req` headers.
pub fn answer(rep: &Representation, method: &Method, req: &HeaderMap, now: SystemTime) -> Answer {
    // Repeated lines are joined with ", "; the usual single line is borrowed as is.
    let joined = |name: header::HeaderName| -> Option<std::borrow::Cow<'_, str>> {
        let mut it = req.get_all(name).iter().filter_map(|v| v.to_str().ok());
        let first = it.next()?;
        match it.next() {
            None => Some(std::borrow::Cow::Borrowed(first)),
            Some(second) => Some(std::borrow::Cow::Owned(
                it.fold(format!("{first}, {second}"), |acc, v| format!("{acc}, {v}")),
            )),
        }
    };
    // One pass over the (few) request headers says which conditionals exist, so a plain
    // request makes no hashed lookups for the ones it does not carry.
    let present = Present::scan(req);
    let im = if present.if_match {
        joined(header::IF_MATCH)
    } else {
        None
    };
    let inm = if present.if_none_match {
        joined(header::IF_NONE_MATCH)
    } else {
        None
    };
    let first = |on: bool, name: header::HeaderName| {
        on.then(|| req.get(name).and_then(|v| v.to_str().ok()))
            .flatten()
    };
    let ims = first(present.dates, header::IF_MODIFIED_SINCE);
    let ius = first(present.dates, header::IF_UNMODIFIED_SINCE);
    let ifr = first(present.if_range, header::IF_RANGE);
    let cond = Conditionals {
        if_match: im.as_deref(),
        if_none_match: inm.as_deref(),
        if_modified_since: ims,
        if_unmodified_since: ius,
        if_range: ifr,
    };
    let v = Validators {
        etag: rep.etag.to_str().unwrap_or(""),
        last_modified: rep.last_modified.as_ref().map(|(t, _)| *t),
    };
    let len = rep.body.len() as u64;
    let head = *method == Method::HEAD;
    match conditional::evaluate(&cond, &v, now) {
        Precondition::Failed => {
            return Answer {
                status: StatusCode::PRECONDITION_FAILED,
                headers: HeaderMap::new(),
                chunks: Vec::new(),
                range_result: None,
                error: Some(EdgeError::PreconditionFailed),
            };
        }
        Precondition::NotModified => {
            // A 304 carries only the validator and caching headers (spec §3.2).
            let mut h = HeaderMap::with_capacity(RESPONSE_HEADERS);
            h.insert(header::ETAG, rep.etag.clone());
            h.insert(header::CACHE_CONTROL, rep.cache_control.clone());
            if rep.vary_accept_encoding {
                h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
            }
            return Answer {
                status: StatusCode::NOT_MODIFIED,
                headers: h,
                chunks: Vec::new(),
                range_result: None,
                error: None,
            };
        }
        Precondition::Proceed => {}
    }
    let mut headers = rep_headers(rep);
    let full = |mut headers: HeaderMap, range_result| {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        Answer {
            status: StatusCode::OK,
            headers,
            chunks: if head {
                Vec::new()
            } else {
                vec![rep.body.clone()]
            },
            range_result,
            error: None,
        }
    };
    if *method != Method::GET || !present.range {
        return full(headers, None);
    }
    let lines: Vec<&str> = req
        .get_all(header::RANGE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !conditional::if_range_holds(ifr, &v, now) {
        return full(headers, Some("ignored"));
    }
    let outcome = range::evaluate(&lines, len);
    let result = outcome.metric_result();
    match outcome {
        RangeOutcome::Single(r) => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(r.len()));
            if let Ok(v) = HeaderValue::from_str(&range::content_range(&r, len)) {
                headers.insert(header::CONTENT_RANGE, v);
            }
            Answer {
                status: StatusCode::PARTIAL_CONTENT,
                headers,
                chunks: vec![rep.body.slice(r.first as usize..=r.last as usize)],
                range_result: result,
                error: None,
            }
        }
        RangeOutcome::Multi(ranges) => {
            // range::evaluate only yields two or more in-bounds ranges here, so a build
            // error would be a bug; answer the full body rather than fail the request.
            let media_type = rep
                .content_type
                .to_str()
                .unwrap_or(crate::mime::OCTET_STREAM);
            let built = Multipart::new(media_type, &ranges, len, multipart::boundary())
                .and_then(|mp| mp.chunks(&rep.body).map(|c| (mp, c)));
            let Ok((mp, chunks)) = built else {
                return full(headers, None);
            };
            headers.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(mp.content_length()),
            );
            if let Ok(v) = HeaderValue::from_str(mp.content_type()) {
                headers.insert(header::CONTENT_TYPE, v);
            }
            Answer {
                status: StatusCode::PARTIAL_CONTENT,
                headers,
                chunks,
                range_result: result,
                error: None,
            }
        }
        RangeOutcome::Unsatisfiable => {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&range::unsatisfied_content_range(len)) {
                h.insert(header::CONTENT_RANGE, v);
            }
            h.insert(header::ETAG, rep.etag.clone());
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            Answer {
                status: StatusCode::RANGE_NOT_SATISFIABLE,
                headers: h,
                chunks: Vec::new(),
                range_result: result,
                error: Some(EdgeError::RangeNotSatisfiable),
            }
        }
        _ => full(headers, result),
    }
}

/// Which precondition and Range headers a request carries.
#[derive(Default)]
struct Present {
    if_match: bool,
    if_none_match: bool,
    /// If-Modified-Since or If-Unmodified-Since.
    dates: bool,
    if_range: bool,
    range: bool,
}

impl Present {
    fn scan(req: &HeaderMap) -> Present {
        let mut p = Present::default();
        for name in req.keys() {
            if name == header::IF_NONE_MATCH {
                p.if_none_match = true;
            } else if name == header::IF_MATCH {
                p.if_match = true;
            } else if name == header::IF_MODIFIED_SINCE || name == header::IF_UNMODIFIED_SINCE {
                p.dates = true;
            } else if name == header::IF_RANGE {
                p.if_range = true;
            } else if name == header::RANGE {
                p.range = true;
            }
        }
        p
    }
}

/// Headers every 200/206 of `rep` carries (and a 304 keeps a subset of).
fn rep_headers(rep: &Representation) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(RESPONSE_HEADERS);
    h.insert(header::ETAG, rep.etag.clone());
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_TYPE, rep.content_type.clone());
    h.insert(header::CACHE_CONTROL, rep.cache_control.clone());
    if let Some((_, lm)) = &rep.last_modified {
        h.insert(header::LAST_MODIFIED, lm.clone());
    }
    if rep.vary_accept_encoding {
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if let Some(enc) = rep.content_encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    h
}
