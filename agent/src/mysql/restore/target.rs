//! Where a MySQL/MariaDB restore stops: a target (`--target-time`, `--target-gtid`,
//! `--target-position`, `--latest`) turned into a transaction boundary from the archived
//! transaction index, a pure fold over the transactions after the backup's snapshot.
//!
//! A restore always stops just past a committed transaction (or at the snapshot itself,
//! when no transaction after it is wanted), never inside one:
//! - **time T**: the last transaction before the first one committed after T, in binlog
//!   order; a transaction committed exactly at T is included. MariaDB records commit times
//!   in whole seconds, so T selects every transaction of the seconds up to and including
//!   T's, as `mysqlbinlog --stop-datetime` does.
//! - **GTID**: just past the transaction of the GTID; with several (one per domain), just
//!   past the last of them to be committed. Each must be in the archive after the snapshot.
//! - **position FILE:POS**: the last transaction that ends at or before it.
//! - **latest**: the last archived transaction.

use std::collections::BTreeSet;
use std::fmt;

use jiff::Timestamp;
use logship_protocol::mysql::index::IndexEntry;
use logship_protocol::mysql::{BinlogFileName, BinlogPos, Gtid, GtidPos};

/// What the restore is asked to reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinlogTarget {
    /// The last transaction committed at or before this time.
    Time(Timestamp),
    /// Just past the transactions of these GTIDs (one per domain).
    Gtid(GtidPos),
    /// The last transaction that ends at or before this position.
    Position(BinlogPos),
    /// The last archived transaction.
    Latest,
}

impl fmt::Display for BinlogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BinlogTarget::Time(time) => write!(f, "target time {time}"),
            BinlogTarget::Gtid(gtids) => write!(f, "target GTID {gtids}"),
            BinlogTarget::Position(pos) => write!(f, "target position {pos}"),
            BinlogTarget::Latest => f.write_str("the latest archived transaction"),
        }
    }
}

/// The transaction boundary a restore stops at: just past one committed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopPoint {
    /// The position just past the transaction's commit.
    pub pos: BinlogPos,
    /// When the server committed it.
    pub commit_time: Timestamp,
    /// Its GTID, if it has one.
    pub gtid: Option<String>,
}

/// A target the archived transactions after the snapshot do not reach.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error(
        "target GTID {missing} is not in the archived binlog after the backup's snapshot (check the GTID with SELECT @@gtid_binlog_pos on the server, pick one committed after the backup, or see logship list)"
    )]
    GtidNotArchived { missing: GtidPos },
}

/// What [`StopSearch::feed`] made of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// The restore includes it; later ones may follow.
    Taken,
    /// The restore includes it, and nothing after it.
    TakenLast,
    /// The restore stops before it.
    Refused,
}

impl Fed {
    /// Whether later transactions may still change the stop point.
    pub fn wants_more(self) -> bool {
        self == Fed::Taken
    }
}

/// Folds the archived transactions after a snapshot, in binlog order, into the
/// [`StopPoint`] of a target.
#[derive(Debug)]
pub struct StopSearch {
    target: BinlogTarget,
    stop: Option<StopPoint>,
    /// For a GTID target: the GTIDs not seen yet.
    pending: BTreeSet<Gtid>,
    settled: bool,
}

impl StopSearch {
    /// A search for `target`.
    pub fn new(target: &BinlogTarget) -> StopSearch {
        let pending = match target {
            BinlogTarget::Gtid(gtids) => gtids.iter().collect(),
            _ => BTreeSet::new(),
        };
        StopSearch {
            target: target.clone(),
            stop: None,
            pending,
            settled: false,
        }
    }

    /// Feeds the next transaction, which ends at `entry.end` in `file`. Once it returns
    /// anything but [`Fed::Taken`], the stop point is settled.
    pub fn feed(&mut self, file: &BinlogFileName, entry: &IndexEntry) -> Fed {
        if self.settled {
            return Fed::Refused;
        }
        let end = BinlogPos::new(file.clone(), u64::from(entry.end));
        let wanted = match &self.target {
            BinlogTarget::Time(time) => entry.commit_time <= *time,
            BinlogTarget::Position(pos) => position_le(&end, pos),
            BinlogTarget::Latest => true,
            BinlogTarget::Gtid(_) => {
                if let Some(gtid) = entry.gtid.as_deref().and_then(|g| g.parse::<Gtid>().ok()) {
                    self.pending.remove(&gtid);
                }
                true
            }
        };
        if !wanted {
            self.settled = true;
            return Fed::Refused;
        }
        self.stop = Some(StopPoint {
            pos: end,
            commit_time: entry.commit_time,
            gtid: entry.gtid.clone(),
        });
        if matches!(self.target, BinlogTarget::Gtid(_)) && self.pending.is_empty() {
            self.settled = true;
            return Fed::TakenLast;
        }
        Fed::Taken
    }

    /// The stop point: `None` when the restore stops at the snapshot itself, because no
    /// transaction after it is wanted.
    pub fn finish(self) -> Result<Option<StopPoint>, TargetError> {
        if !self.pending.is_empty() {
            let mut missing = GtidPos::new();
            for gtid in self.pending {
                missing.update(gtid);
            }
            return Err(TargetError::GtidNotArchived { missing });
        }
        Ok(self.stop)
    }
}

/// Whether `a` is at or before `b` in one server's binlog (files by number, then offset).
pub fn position_le(a: &BinlogPos, b: &BinlogPos) -> bool {
    (a.file().index(), a.offset()) <= (b.file().index(), b.offset())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> BinlogFileName {
        name.parse().unwrap()
    }

    fn entry(end: u32, time: &str, gtid: &str) -> IndexEntry {
        IndexEntry {
            end,
            commit_time: time.parse().unwrap(),
            gtid: Some(gtid.to_owned()),
        }
    }

    /// binlog.000001: 0-1-1 at 10:00:00, 0-1-2 at 10:00:01; binlog.000002: 0-1-3 at
    /// 10:00:01, 0-1-4 at 10:00:05.
    fn transactions() -> Vec<(BinlogFileName, IndexEntry)> {
        vec![
            (
                file("binlog.000001"),
                entry(400, "2026-12-07T10:00:00Z", "0-1-1"),
            ),
            (
                file("binlog.000001"),
                entry(800, "2026-12-07T10:00:01Z", "0-1-2"),
            ),
            (
                file("binlog.000002"),
                entry(300, "2026-12-07T10:00:01Z", "0-1-3"),
            ),
            (
                file("binlog.000002"),
                entry(700, "2026-12-07T10:00:05Z", "0-1-4"),
            ),
        ]
    }

    fn search(target: BinlogTarget) -> Result<Option<StopPoint>, TargetError> {
        let mut search = StopSearch::new(&target);
        for (file, entry) in transactions() {
            if !search.feed(&file, &entry).wants_more() {
                break;
            }
        }
        search.finish()
    }

    fn stop_at(target: BinlogTarget) -> String {
        search(target).unwrap().unwrap().pos.to_string()
    }

    fn time(text: &str) -> BinlogTarget {
        BinlogTarget::Time(text.parse().unwrap())
    }

    #[test]
    fn a_time_stops_before_the_first_later_commit_and_includes_one_exactly_at_it() {
        assert_eq!(stop_at(time("2026-12-07T10:00:01Z")), "binlog.000002:300");
        assert_eq!(stop_at(time("2026-12-07T10:00:04.9Z")), "binlog.000002:300");
        assert_eq!(stop_at(time("2026-12-07T10:00:00.5Z")), "binlog.000001:400");
        assert_eq!(stop_at(time("2026-12-07T11:00:00Z")), "binlog.000002:700");
        assert_eq!(search(time("2026-12-07T09:59:59Z")), Ok(None));
    }

    #[test]
    fn a_position_stops_at_the_last_transaction_ending_at_or_before_it() {
        let pos = |p: &str| BinlogTarget::Position(p.parse().unwrap());
        assert_eq!(stop_at(pos("binlog.000001:800")), "binlog.000001:800");
        assert_eq!(stop_at(pos("binlog.000001:799")), "binlog.000001:400");
        assert_eq!(stop_at(pos("binlog.000002:4")), "binlog.000001:800");
        assert_eq!(search(pos("binlog.000001:100")), Ok(None));
    }

    #[test]
    fn latest_is_the_last_transaction() {
        assert_eq!(stop_at(BinlogTarget::Latest), "binlog.000002:700");
    }

    #[test]
    fn gtids_stop_just_past_the_last_of_them() {
        let gtid = |g: &str| BinlogTarget::Gtid(g.parse().unwrap());
        assert_eq!(stop_at(gtid("0-1-2")), "binlog.000001:800");
        let stop = search(gtid("0-1-3")).unwrap().unwrap();
        assert_eq!(stop.gtid.as_deref(), Some("0-1-3"));
        assert_eq!(
            search(gtid("0-1-9")),
            Err(TargetError::GtidNotArchived {
                missing: "0-1-9".parse().unwrap()
            })
        );
    }
}
