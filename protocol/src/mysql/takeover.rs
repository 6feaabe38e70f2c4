//! Finding where a promoted MariaDB server takes over a stream: the position in its binlog
//! just past the last transaction archived from the previous server.
//!
//! The search has two steps, both pure:
//! 1. [`takeover_file`]: given the GTID state at the start of each of the new server's
//!    files (`BINLOG_GTID_POS(file, 4)`), the newest file that starts at or before the
//!    last archived GTID.
//! 2. [`TakeoverScan`]: fed that file's transactions in order, it stops at the one with
//!    the last archived GTID, or reports that the server's history went another way.
//!
//! Sequence numbers are taken to grow within a domain, as MariaDB's `gtid_strict_mode`
//! guarantees: a higher one than the archived GTID's, met before it, means the server's
//! history diverged from the archive's.

use crate::mysql::gtid::{Gtid, GtidPos};
use crate::mysql::position::{BinlogFileName, BinlogPos};
use crate::mysql::transaction::{Transaction, TrxGtid};

/// What one step of [`TakeoverScan`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scan {
    /// The archived GTID is not reached yet: feed the next transaction.
    Continue,
    /// The new server's stream takes over here: just past the archived GTID's transaction.
    Found(BinlogPos),
    /// The server has `server` where the archive has the GTID searched for, or later
    /// without it: its history is not the archive's.
    Diverged {
        /// The server's GTID at or past the archived one's sequence number.
        server: Gtid,
    },
}

/// The newest of `starts` (each file with the GTID state at its start, oldest first) that
/// begins at or before `last` in its domain: the file that holds the takeover point.
/// `None` when every file starts after `last` (the server purged the binlog needed).
pub fn takeover_file(last: Gtid, starts: &[(BinlogFileName, GtidPos)]) -> Option<&BinlogFileName> {
    starts
        .iter()
        .rev()
        .find(|(_, start)| {
            start
                .get(last.domain())
                .is_none_or(|g| g.seq() <= last.seq())
        })
        .map(|(file, _)| file)
}

/// Looks for the transaction `last` in one file of the new server.
#[derive(Clone, Debug)]
pub struct TakeoverScan {
    last: Gtid,
}

impl TakeoverScan {
    /// Starts on `file`, whose GTID state at its start is `start`. When that state already
    /// holds `last`, the file's start is the takeover point and nothing need be read.
    pub fn new(last: Gtid, file: &BinlogFileName, start: &GtidPos) -> (TakeoverScan, Scan) {
        let scan = TakeoverScan { last };
        let first = match start.get(last.domain()) {
            Some(gtid) if gtid == last => {
                Scan::Found(BinlogPos::new(file.clone(), BinlogPos::FIRST_EVENT))
            }
            Some(gtid) if gtid.seq() >= last.seq() => Scan::Diverged { server: gtid },
            _ => Scan::Continue,
        };
        (scan, first)
    }

    /// Feeds the next transaction of the file.
    pub fn push(&self, trx: &Transaction) -> Scan {
        let TrxGtid::MariaDb(gtid) = trx.gtid else {
            return Scan::Continue;
        };
        if gtid.domain() != self.last.domain() || gtid.seq() < self.last.seq() {
            Scan::Continue
        } else if gtid == self.last {
            Scan::Found(trx.end.clone())
        } else {
            Scan::Diverged { server: gtid }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::transaction::TrxOutcome;
    use jiff::Timestamp;

    fn file(n: u32) -> BinlogFileName {
        BinlogFileName::new(&format!("binlog.{n:06}")).unwrap()
    }

    fn state(text: &str) -> GtidPos {
        text.parse().unwrap()
    }

    fn trx(gtid: &str, end: u64) -> Transaction {
        Transaction {
            gtid: TrxGtid::MariaDb(gtid.parse().unwrap()),
            commit_time: Timestamp::UNIX_EPOCH,
            end: BinlogPos::new(file(2), end),
            outcome: TrxOutcome::Commit,
        }
    }

    #[test]
    fn picks_the_newest_file_starting_at_or_before_the_gtid() {
        let starts = [
            (file(1), state("")),
            (file(2), state("0-1-9")),
            (file(3), state("0-1-20,1-5-3")),
        ];
        let last = |s: &str| s.parse::<Gtid>().unwrap();
        assert_eq!(takeover_file(last("0-1-5"), &starts), Some(&file(1)));
        assert_eq!(takeover_file(last("0-1-9"), &starts), Some(&file(2)));
        assert_eq!(takeover_file(last("0-1-19"), &starts), Some(&file(2)));
        assert_eq!(takeover_file(last("0-1-20"), &starts), Some(&file(3)));
        assert_eq!(takeover_file(last("0-1-99"), &starts), Some(&file(3)));
        assert_eq!(takeover_file(last("0-1-5"), &starts[1..]), None, "purged");
    }

    #[test]
    fn stops_just_past_the_archived_transaction() {
        let last = "0-1-9".parse().unwrap();
        let (scan, first) = TakeoverScan::new(last, &file(2), &state("0-1-7"));
        assert_eq!(first, Scan::Continue);
        assert_eq!(scan.push(&trx("0-1-8", 500)), Scan::Continue);
        assert_eq!(
            scan.push(&trx("1-4-30", 700)),
            Scan::Continue,
            "another domain"
        );
        assert_eq!(
            scan.push(&trx("0-1-9", 900)),
            Scan::Found(BinlogPos::new(file(2), 900))
        );
    }

    #[test]
    fn a_file_starting_at_the_gtid_takes_over_at_its_start() {
        let last = "0-1-9".parse().unwrap();
        let (_, first) = TakeoverScan::new(last, &file(3), &state("0-1-9"));
        assert_eq!(first, Scan::Found(BinlogPos::new(file(3), 4)));
    }

    #[test]
    fn another_history_is_refused() {
        let last: Gtid = "0-1-9".parse().unwrap();
        let (scan, _) = TakeoverScan::new(last, &file(2), &state("0-1-7"));
        assert_eq!(
            scan.push(&trx("0-3-9", 900)),
            Scan::Diverged {
                server: "0-3-9".parse().unwrap()
            }
        );
        assert_eq!(
            scan.push(&trx("0-3-10", 900)),
            Scan::Diverged {
                server: "0-3-10".parse().unwrap()
            }
        );
        let (_, first) = TakeoverScan::new(last, &file(3), &state("0-3-9"));
        assert_eq!(
            first,
            Scan::Diverged {
                server: "0-3-9".parse().unwrap()
            }
        );
    }
}
