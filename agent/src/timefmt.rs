//! Times as users type and read them (DESIGN.md §2): RFC 3339 in, RFC 3339 UTC out.
//!
//! Input is RFC 3339 with `Z` or an offset, or `YYYY-MM-DD HH:MM:SS[.ffffff]` read as UTC.
//! A time without an offset in any other shape (`2026-11-21T10:15:00`) is refused rather
//! than guessed, since the user may have meant their local time.

use jiff::Timestamp;
use jiff::fmt::strtime;
use jiff::tz::TimeZone;
use logship_protocol::pg::replication::PgTimestamp;

/// The one shape accepted without an offset, read as UTC.
const UTC_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.f";

/// A time argument in neither accepted shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid time \"{input}\" (use RFC 3339 like 2026-11-21T10:15:00Z, or \"2026-11-21 10:15:00\" in UTC)"
)]
pub struct TimeError {
    /// The rejected input.
    pub input: String,
}

/// Reads a time argument: RFC 3339, or `YYYY-MM-DD HH:MM:SS[.ffffff]` in UTC.
pub fn parse_time(text: &str) -> Result<Timestamp, TimeError> {
    let bad = || TimeError {
        input: text.to_owned(),
    };
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts);
    }
    let civil = strtime::parse(UTC_FORMAT, text)
        .and_then(|tm| tm.to_datetime())
        .map_err(|_| bad())?;
    TimeZone::UTC.to_timestamp(civil).map_err(|_| bad())
}

/// Prints a time as RFC 3339 in UTC, with only the fractional digits it needs.
pub fn format_time(ts: Timestamp) -> String {
    ts.to_string()
}

/// A PostgreSQL timestamp as a [`Timestamp`]; `None` outside jiff's years -9999..=9999
/// (PostgreSQL's `infinity` among them).
pub fn from_pg(ts: PgTimestamp) -> Option<Timestamp> {
    Timestamp::from_microsecond(ts.to_unix_micros()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn parses_rfc3339_with_z_or_offset() {
        assert_eq!(
            parse_time("2026-11-21T10:15:00.25Z").unwrap(),
            ts("2026-11-21T10:15:00.25Z")
        );
        assert_eq!(
            parse_time("2026-11-21T11:15:00+01:00").unwrap(),
            ts("2026-11-21T10:15:00Z")
        );
        assert_eq!(
            parse_time("2026-11-21T05:15:00.000001-05:00").unwrap(),
            ts("2026-11-21T10:15:00.000001Z")
        );
    }

    #[test]
    fn parses_space_separated_time_as_utc() {
        assert_eq!(
            parse_time("2026-11-21 10:15:00").unwrap(),
            ts("2026-11-21T10:15:00Z")
        );
        assert_eq!(
            parse_time("2026-11-21 10:15:00.123456").unwrap(),
            ts("2026-11-21T10:15:00.123456Z")
        );
    }

    #[test]
    fn refuses_anything_else_with_one_line_naming_the_input() {
        for bad in [
            "",
            "yesterday",
            "2026-11-21",
            "2026-11-21T10:15:00",
            "2026-11-21 10:15",
            "2026-11-21 25:00:00",
            "2026-02-30 10:00:00",
            "2026-11-21 10:15:00 UTC",
        ] {
            let err = parse_time(bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid time \"{bad}\" (use RFC 3339 like 2026-11-21T10:15:00Z, or \"2026-11-21 10:15:00\" in UTC)"
                )
            );
        }
    }

    #[test]
    fn formats_rfc3339_utc_with_minimal_fraction() {
        assert_eq!(
            format_time(ts("2026-11-21T11:15:00.250+01:00")),
            "2026-11-21T10:15:00.25Z"
        );
        assert_eq!(
            format_time(ts("2026-11-21T10:15:00Z")),
            "2026-11-21T10:15:00Z"
        );
        let text = "2026-11-21T10:15:00.123456Z";
        assert_eq!(format_time(parse_time(text).unwrap()), text);
    }

    #[test]
    fn converts_postgres_timestamps() {
        // 2000-01-01T00:00:00Z is PostgreSQL's epoch.
        assert_eq!(
            from_pg(PgTimestamp::from_pg_micros(0)),
            Some(ts("2000-01-01T00:00:00Z"))
        );
        assert_eq!(
            from_pg(PgTimestamp::from_pg_micros(817_000_000_123_456)),
            Some(ts("2025-11-21T00:26:40.123456Z"))
        );
        assert_eq!(from_pg(PgTimestamp::from_pg_micros(i64::MAX)), None);
    }
}
