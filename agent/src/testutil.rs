//! Small constructors shared by unit tests.

use jiff::Timestamp;
use logship_protocol::pg::{Lsn, TimelineId};

/// A timeline id; panics on 0.
pub fn tli(raw: u32) -> TimelineId {
    TimelineId::new(raw).unwrap()
}

/// An LSN from PostgreSQL notation (`0/3000158`).
pub fn lsn(text: &str) -> Lsn {
    text.parse().unwrap()
}

/// A timestamp from RFC 3339.
pub fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}
