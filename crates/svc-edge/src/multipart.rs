//! `multipart/byteranges` bodies for multi-range 206 responses, spec §4.6 (EDGE-R20).
//!
//! Every part header and the closing delimiter are formatted once, into a single buffer,
//! before anything is sent, so `Content-Length` is exact and the body is never chunked.
//! The body itself is a list of `Bytes`: views of that header buffer interleaved with
//! zero-copy slices of the representation, ready for a vectored write.
//!
//! Not for: deciding which ranges to send (see `range`), or single-range 206s.

use bytes::Bytes;
use rand::Rng;
use thiserror::Error;

use crate::range::{ByteRange, content_range};

/// Longest boundary RFC 2046 allows.
const MAX_BOUNDARY_LEN: usize = 70;

/// Why a multipart body cannot be built from the given inputs. Each one is a caller bug:
/// ranges from `range::evaluate` against the same body never produce them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MultipartError {
    /// Fewer than two ranges; one range is a single-part 206 (RFC 9110 §14.6).
    #[error("multipart needs at least two ranges, got {0}; send a single-part 206 instead")]
    TooFewRanges(usize),
    /// A range does not lie inside the representation.
    #[error(
        "range {first}-{last} is outside a {len}-byte representation; resolve ranges with range::evaluate first"
    )]
    RangeOutOfBounds {
        /// First byte of the offending range.
        first: u64,
        /// Last byte of the offending range.
        last: u64,
        /// Representation length the range was checked against.
        len: u64,
    },
    /// The part Content-Type holds a control character, which would break the framing.
    #[error("part content type {0:?} contains a control character; pass a valid media type")]
    InvalidContentType(String),
    /// The boundary is empty, too long, or not made of RFC 2046 boundary characters.
    #[error(
        "boundary {0:?} must be 1-70 letters, digits or '()+_,-./:=?; use multipart::boundary()"
    )]
    InvalidBoundary(String),
    /// The total body length does not fit in a `u64`.
    #[error("multipart body length overflows u64; coalesce the ranges first")]
    LengthOverflow,
    /// The body passed to [`Multipart::chunks`] is not the one the ranges were built for.
    #[error(
        "body is {actual} bytes but the parts were built for {expected}; pass the same representation"
    )]
    LengthMismatch {
        /// Representation length given to [`Multipart::new`].
        expected: u64,
        /// Length of the body actually passed.
        actual: u64,
    },
}

/// A fully framed multipart/byteranges body, ready to send.
#[derive(Debug, Clone)]
pub struct Multipart {
    content_type: String,
    /// Every part header, then the closing delimiter, back to back.
    framing: Bytes,
    parts: Vec<Part>,
    len: u64,
    content_length: u64,
}

/// One part: where its header sits in `framing`, and which bytes follow it.
#[derive(Debug, Clone)]
struct Part {
    header_end: usize,
    range: ByteRange,
}

/// A fresh boundary: 32 random lowercase hex digits, which cannot collide with the body
/// in any way a client could arrange in advance.
pub fn boundary() -> String {
    format!("{:032x}", rand::rng().random::<u128>())
}

impl Multipart {
    /// Frames `ranges` (in the order given) of a `len`-byte representation whose own
    /// media type is `content_type`, using `boundary`.
    pub fn new(
        content_type: &str,
        ranges: &[ByteRange],
        len: u64,
        boundary: String,
    ) -> Result<Self, MultipartError> {
        if ranges.len() < 2 {
            return Err(MultipartError::TooFewRanges(ranges.len()));
        }
        if content_type
            .bytes()
            .any(|b| b.is_ascii_control() && b != b'\t')
        {
            return Err(MultipartError::InvalidContentType(content_type.to_owned()));
        }
        if !valid_boundary(&boundary) {
            return Err(MultipartError::InvalidBoundary(boundary));
        }

        let mut framing =
            Vec::with_capacity(ranges.len() * (boundary.len() + content_type.len() + 80));
        let mut parts = Vec::with_capacity(ranges.len());
        let mut payload = 0u64;
        for r in ranges {
            if r.first > r.last || r.last >= len {
                return Err(MultipartError::RangeOutOfBounds {
                    first: r.first,
                    last: r.last,
                    len,
                });
            }
            payload = payload
                .checked_add(r.len())
                .ok_or(MultipartError::LengthOverflow)?;
            framing.extend_from_slice(b"\r\n--");
            framing.extend_from_slice(boundary.as_bytes());
            framing.extend_from_slice(b"\r\nContent-Type: ");
            framing.extend_from_slice(content_type.as_bytes());
            framing.extend_from_slice(b"\r\nContent-Range: ");
            framing.extend_from_slice(content_range(r, len).as_bytes());
            framing.extend_from_slice(b"\r\n\r\n");
            parts.push(Part {
                header_end: framing.len(),
                range: *r,
            });
        }
        framing.extend_from_slice(b"\r\n--");
        framing.extend_from_slice(boundary.as_bytes());
        framing.extend_from_slice(b"--\r\n");

        let content_length = u64::try_from(framing.len())
            .ok()
            .and_then(|f| f.checked_add(payload))
            .ok_or(MultipartError::LengthOverflow)?;
        Ok(Multipart {
            content_type: format!("multipart/byteranges; boundary={boundary}"),
            framing: Bytes::from(framing),
            parts,
            len,
            content_length,
        })
    }

    /// The response `Content-Type`: `multipart/byteranges; boundary=<B>`.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The exact response `Content-Length`.
    pub fn content_length(&self) -> u64 {
        self.content_length
    }

    /// The body as `2 × parts + 1` buffers: each part header followed by a zero-copy
    /// slice of `body`, then the closing delimiter. `body` must be the full
    /// representation the parts were built for.
    pub fn chunks(&self, body: &Bytes) -> Result<Vec<Bytes>, MultipartError> {
        let actual = u64::try_from(body.len()).unwrap_or(u64::MAX);
        if actual != self.len {
            return Err(MultipartError::LengthMismatch {
                expected: self.len,
                actual,
            });
        }
        let mut out = Vec::with_capacity(self.parts.len() * 2 + 1);
        let mut header_start = 0;
        for part in &self.parts {
            out.push(self.framing.slice(header_start..part.header_end));
            // Bounds were checked in `new` against the length just matched.
            let slice = part
                .range
                .slice(body)
                .ok_or(MultipartError::RangeOutOfBounds {
                    first: part.range.first,
                    last: part.range.last,
                    len: self.len,
                })?;
            out.push(slice);
            header_start = part.header_end;
        }
        out.push(self.framing.slice(header_start..));
        Ok(out)
    }
}

/// RFC 2046 `bchars`, without the optional inner space (never needed, easy to mangle).
fn valid_boundary(b: &str) -> bool {
    !b.is_empty()
        && b.len() <= MAX_BOUNDARY_LEN
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"'()+_,-./:=?".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn br(first: u64, last: u64) -> ByteRange {
        ByteRange { first, last }
    }

    fn body_1000() -> Bytes {
        Bytes::from(
            (0..1000u32)
                .map(|i| (i * 7 % 251) as u8)
                .collect::<Vec<_>>(),
        )
    }

    /// A strict reader of one multipart/byteranges body: exact delimiters, exactly the
    /// two part headers in order, and a Content-Range whose length is the part's length.
    fn parse_strict(wire: &[u8], boundary: &str) -> Vec<(String, ByteRange, u64, Vec<u8>)> {
        let delimiter = format!("\r\n--{boundary}");
        let mut rest = wire;
        let mut parts = Vec::new();
        loop {
            rest = rest
                .strip_prefix(delimiter.as_bytes())
                .expect("delimiter at part start");
            if rest == b"--\r\n" {
                return parts;
            }
            rest = rest.strip_prefix(b"\r\n").expect("CRLF after delimiter");
            let head_end = rest
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("end of part header");
            let head = std::str::from_utf8(&rest[..head_end]).unwrap();
            rest = &rest[head_end + 4..];
            let lines: Vec<&str> = head.split("\r\n").collect();
            assert_eq!(lines.len(), 2, "exactly two part headers: {head:?}");
            let ctype = lines[0]
                .strip_prefix("Content-Type: ")
                .expect("Content-Type");
            let cr = lines[1]
                .strip_prefix("Content-Range: bytes ")
                .expect("Content-Range");
            let (span, total) = cr.split_once('/').unwrap();
            let (a, b) = span.split_once('-').unwrap();
            let r = br(a.parse().unwrap(), b.parse().unwrap());
            let n = usize::try_from(r.len()).unwrap();
            let (bytes, tail) = rest.split_at(n);
            rest = tail;
            parts.push((ctype.to_owned(), r, total.parse().unwrap(), bytes.to_vec()));
        }
    }

    #[test]
    fn boundaries_are_32_random_lowercase_hex_digits() {
        let a = boundary();
        let b = boundary();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
        assert_ne!(a, b);
        assert!(valid_boundary(&a));
    }

    #[test]
    fn strict_parser_finds_every_part_with_exact_bytes_and_length() {
        let body = body_1000();
        for ranges in [
            vec![br(0, 1), br(10, 19)],
            vec![br(10, 19), br(0, 1)],
            vec![br(0, 20), br(50, 60), br(999, 999)],
        ] {
            let b = boundary();
            let m = Multipart::new("text/plain; charset=utf-8", &ranges, 1000, b.clone()).unwrap();
            assert_eq!(
                m.content_type(),
                format!("multipart/byteranges; boundary={b}")
            );
            let chunks = m.chunks(&body).unwrap();
            assert_eq!(chunks.len(), ranges.len() * 2 + 1);
            let wire: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
            assert_eq!(wire.len() as u64, m.content_length());
            let parsed = parse_strict(&wire, &b);
            assert_eq!(parsed.len(), ranges.len());
            for ((ctype, r, total, bytes), want) in parsed.iter().zip(&ranges) {
                assert_eq!(ctype, "text/plain; charset=utf-8");
                assert_eq!(r, want, "parts stay in the order given");
                assert_eq!(*total, 1000);
                assert_eq!(&bytes[..], &body[want.first as usize..=want.last as usize]);
            }
        }
    }

    #[test]
    fn wire_format_matches_the_spec_byte_for_byte() {
        let body = Bytes::from_static(b"abcdefghij");
        let m = Multipart::new(
            "application/octet-stream",
            &[br(0, 1), br(8, 9)],
            10,
            "B".into(),
        )
        .unwrap();
        let wire: Vec<u8> = m.chunks(&body).unwrap().concat();
        let want = "\r\n--B\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-1/10\r\n\r\nab\
                    \r\n--B\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 8-9/10\r\n\r\nij\
                    \r\n--B--\r\n";
        assert_eq!(String::from_utf8(wire).unwrap(), want);
        assert_eq!(m.content_length(), want.len() as u64);
    }

    #[test]
    fn body_chunks_are_zero_copy_views_of_the_representation() {
        let body = body_1000();
        let m = Multipart::new(
            "application/octet-stream",
            &[br(5, 9), br(100, 199)],
            1000,
            boundary(),
        )
        .unwrap();
        let chunks = m.chunks(&body).unwrap();
        assert_eq!(chunks[1].as_ptr(), body[5..].as_ptr());
        assert_eq!(chunks[3].as_ptr(), body[100..].as_ptr());
    }

    #[test]
    fn invalid_inputs_are_errors_not_panics() {
        let ok = [br(0, 1), br(5, 6)];
        assert_eq!(
            Multipart::new("a/b", &[br(0, 1)], 10, boundary()).unwrap_err(),
            MultipartError::TooFewRanges(1)
        );
        assert!(matches!(
            Multipart::new("a/b", &[br(0, 1), br(5, 10)], 10, boundary()),
            Err(MultipartError::RangeOutOfBounds {
                first: 5,
                last: 10,
                len: 10
            })
        ));
        assert!(matches!(
            Multipart::new("a/b", &[br(0, 1), br(6, 5)], 10, boundary()),
            Err(MultipartError::RangeOutOfBounds { .. })
        ));
        assert!(matches!(
            Multipart::new("a/b\r\nX-Evil: 1", &ok, 10, boundary()),
            Err(MultipartError::InvalidContentType(_))
        ));
        for bad in ["", "has space", "crlf\r\n", &"x".repeat(71)] {
            assert!(matches!(
                Multipart::new("a/b", &ok, 10, bad.to_owned()),
                Err(MultipartError::InvalidBoundary(_))
            ));
        }
        let m = Multipart::new("a/b", &ok, 10, boundary()).unwrap();
        assert_eq!(
            m.chunks(&Bytes::from_static(b"short")).unwrap_err(),
            MultipartError::LengthMismatch {
                expected: 10,
                actual: 5
            }
        );
    }

    #[test]
    fn content_length_overflow_is_reported() {
        let huge = [br(0, u64::MAX - 1), br(0, u64::MAX - 1)];
        assert_eq!(
            Multipart::new("a/b", &huge, u64::MAX, boundary()).unwrap_err(),
            MultipartError::LengthOverflow
        );
    }
}
