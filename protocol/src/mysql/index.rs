//! The transaction index of a binlog object: one line per committed transaction whose
//! commit ends within the object's range, so that a restore finds the transaction
//! boundary for a target time, GTID or position without reading the binlog itself.
//!
//! ```text
//! <end offset %08X> TAB <commit time, RFC 3339 UTC> TAB <GTID, or "-"> LF
//! ```
//!
//! Lines are in binlog order. The commit time is the server's (MariaDB: the commit
//! event's timestamp, in seconds; MySQL 8: `immediate_commit_timestamp`, in µs).

use jiff::Timestamp;

use crate::pg::segment::parse_hex8;

/// One committed transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The file offset just past the transaction's last event.
    pub end: u32,
    /// When the server committed it.
    pub commit_time: Timestamp,
    /// Its GTID in the server's notation (`0-1-42`, `uuid:42`), if it has one.
    pub gtid: Option<String>,
}

/// An index object's content that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("transaction index line {line}: {reason}")]
pub struct IndexError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Appends `entry` as one line.
pub fn encode_entry(entry: &IndexEntry, out: &mut Vec<u8>) {
    let gtid = entry.gtid.as_deref().unwrap_or("-");
    let line = format!("{:08X}\t{}\t{gtid}\n", entry.end, entry.commit_time);
    out.extend_from_slice(line.as_bytes());
}

/// Reads back what [`encode_entry`] wrote, checking that ends only grow.
pub fn parse(content: &[u8]) -> Result<Vec<IndexEntry>, IndexError> {
    let text = std::str::from_utf8(content).map_err(|_| IndexError {
        line: 1,
        reason: "the index is not UTF-8 text",
    })?;
    let mut entries: Vec<IndexEntry> = Vec::new();
    let Some(body) = text.strip_suffix('\n').or(text.is_empty().then_some("")) else {
        return Err(IndexError {
            line: text.lines().count(),
            reason: "the last line does not end in a newline",
        });
    };
    if body.is_empty() {
        return Ok(entries);
    }
    for (n, line) in body.split('\n').enumerate() {
        let bad = |reason| IndexError {
            line: n + 1,
            reason,
        };
        let mut fields = line.split('\t');
        let (Some(end), Some(time), Some(gtid), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad("expected three tab-separated fields"));
        };
        let end =
            parse_hex8(end).ok_or_else(|| bad("the end offset is not 8 upper-case hex digits"))?;
        let commit_time = time
            .parse::<Timestamp>()
            .map_err(|_| bad("the commit time is not an RFC 3339 time"))?;
        if gtid.is_empty() {
            return Err(bad("the GTID field is empty (\"-\" stands for none)"));
        }
        if entries.last().is_some_and(|last| last.end >= end) {
            return Err(bad("the end offset does not grow"));
        }
        entries.push(IndexEntry {
            end,
            commit_time,
            gtid: (gtid != "-").then(|| gtid.to_owned()),
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_one_line_per_transaction() {
        let mut out = Vec::new();
        encode_entry(
            &IndexEntry {
                end: 0x1F4,
                commit_time: "2026-11-21T10:15:00Z".parse().unwrap(),
                gtid: Some("0-1-42".into()),
            },
            &mut out,
        );
        encode_entry(
            &IndexEntry {
                end: 0x300,
                commit_time: "2026-11-21T10:15:00.123456Z".parse().unwrap(),
                gtid: None,
            },
            &mut out,
        );
        assert_eq!(
            out,
            b"000001F4\t2026-11-21T10:15:00Z\t0-1-42\n00000300\t2026-11-21T10:15:00.123456Z\t-\n"
        );
        assert_eq!(parse(&out).unwrap().len(), 2);
        assert_eq!(parse(b""), Ok(Vec::new()));
    }

    #[test]
    fn rejects_damaged_lines() {
        let cases: [(&[u8], usize, &str); 5] = [
            (
                b"000001F4\t2026-11-21T10:15:00Z\t0-1-42",
                1,
                "the last line does not end in a newline",
            ),
            (
                b"1F4\t2026-11-21T10:15:00Z\t-\n",
                1,
                "the end offset is not 8 upper-case hex digits",
            ),
            (
                b"000001F4\tyesterday\t-\n",
                1,
                "the commit time is not an RFC 3339 time",
            ),
            (
                b"000001F4\t2026-11-21T10:15:00Z\n",
                1,
                "expected three tab-separated fields",
            ),
            (
                b"000001F4\t2026-11-21T10:15:00Z\t-\n000001F4\t2026-11-21T10:15:00Z\t-\n",
                2,
                "the end offset does not grow",
            ),
        ];
        for (content, line, reason) in cases {
            assert_eq!(parse(content), Err(IndexError { line, reason }));
        }
    }

    proptest! {
        #[test]
        fn round_trip(
            steps in proptest::collection::vec((1u32..100_000, 0i64..2_000_000_000, any::<bool>()), 0..20)
        ) {
            let mut end = 4u32;
            let mut out = Vec::new();
            let mut entries = Vec::new();
            for (n, (step, secs, has_gtid)) in steps.into_iter().enumerate() {
                end += step;
                let entry = IndexEntry {
                    end,
                    commit_time: Timestamp::from_second(secs).unwrap(),
                    gtid: has_gtid.then(|| format!("0-1-{n}")),
                };
                encode_entry(&entry, &mut out);
                entries.push(entry);
            }
            prop_assert_eq!(parse(&out), Ok(entries));
        }

        #[test]
        fn parse_never_panics(content in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&content);
        }
    }
}
