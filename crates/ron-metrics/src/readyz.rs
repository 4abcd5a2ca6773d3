//! The `/readyz` body: compact JSON with keys in a fixed order
//! (`degraded`, `missing`, `retry_after`, `since`), at most 16 KiB.

use std::fmt::Write as _;
use std::time::SystemTime;

use ron_kernel::HealthSnapshot;

/// Most names listed in `missing` before a `"+N more"` entry.
pub const MAX_MISSING_LISTED: usize = 64;

/// The `/readyz` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyzBody {
    /// `!ready`.
    pub degraded: bool,
    /// What is missing, in HealthState order.
    pub missing: Vec<String>,
    /// Seconds to wait before retrying; 0 when ready.
    pub retry_after: u32,
    /// RFC 3339 UTC with milliseconds: when readiness last flipped.
    pub since: String,
}

impl ReadyzBody {
    /// The body for a HealthState snapshot.
    pub fn from_snapshot(snap: &HealthSnapshot, retry_after_secs: u32) -> ReadyzBody {
        let mut missing: Vec<String> = snap
            .missing
            .iter()
            .take(MAX_MISSING_LISTED)
            .cloned()
            .collect();
        if snap.missing.len() > MAX_MISSING_LISTED {
            missing.push(format!("+{} more", snap.missing.len() - MAX_MISSING_LISTED));
        }
        ReadyzBody {
            degraded: !snap.ready,
            missing,
            retry_after: if snap.ready { 0 } else { retry_after_secs },
            since: rfc3339_millis(snap.since),
        }
    }

    /// Compact JSON without a trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(96 + self.missing.len() * 24);
        let _ = write!(s, "{{\"degraded\":{},\"missing\":[", self.degraded);
        for (i, m) in self.missing.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            push_json_str(&mut s, m);
        }
        let _ = write!(s, "],\"retry_after\":{},\"since\":", self.retry_after);
        push_json_str(&mut s, &self.since);
        s.push('}');
        s
    }

    /// Parses a body produced by [`ReadyzBody::to_json`] (keys must be in order).
    pub fn parse(json: &str) -> Option<ReadyzBody> {
        let rest = json.trim_end().strip_prefix("{\"degraded\":")?;
        let (degraded, rest) = if let Some(r) = rest.strip_prefix("true") {
            (true, r)
        } else {
            (false, rest.strip_prefix("false")?)
        };
        let rest = rest.strip_prefix(",\"missing\":[")?;
        let (list, rest) = rest.split_once("],\"retry_after\":")?;
        let missing = if list.is_empty() {
            Vec::new()
        } else {
            list.split(',')
                .map(|s| s.strip_prefix('"')?.strip_suffix('"').map(str::to_owned))
                .collect::<Option<Vec<_>>>()?
        };
        let (retry, rest) = rest.split_once(",\"since\":\"")?;
        let since = rest.strip_suffix("\"}")?.to_owned();
        Some(ReadyzBody {
            degraded,
            missing,
            retry_after: retry.parse().ok()?,
            since,
        })
    }
}

/// `2025-10-05T18:09:00.000Z`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.millisecond()
    )
}

fn push_json_str(s: &mut String, v: &str) {
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn vectors_round_trip_byte_for_byte() {
        for v in [
            include_str!("../tests/vectors/interop/readyz-ready.json"),
            include_str!("../tests/vectors/interop/readyz-degraded.json"),
        ] {
            let body = ReadyzBody::parse(v).expect("vector parses");
            assert_eq!(format!("{}\n", body.to_json()), v);
        }
    }

    #[test]
    fn since_has_milliseconds_and_z() {
        let t = UNIX_EPOCH + Duration::from_millis(1_759_687_740_007);
        assert_eq!(rfc3339_millis(t), "2025-10-05T18:09:00.007Z");
    }

    #[test]
    fn long_missing_lists_are_cut_with_a_count() {
        let snap = HealthSnapshot {
            ready: false,
            draining: false,
            missing: (0..70).map(|i| format!("c{i}")).collect(),
            checks: vec![],
            since: UNIX_EPOCH,
        };
        let b = ReadyzBody::from_snapshot(&snap, 5);
        assert_eq!(b.missing.len(), 65);
        assert_eq!(b.missing.last().unwrap(), "+6 more");
    }
}
