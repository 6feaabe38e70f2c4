//! Transaction boundaries in a sequence of binlog events, and when each committed.
//!
//! [`TransactionTracker`] is fed every event in binlog order, with the position
//! just past it, and yields a [`Transaction`] at each commit. Group boundaries
//! are the servers' own (`Trx_boundary_parser` in MySQL, event groups in MariaDB):
//!
//! - MariaDB: a GTID event opens a group, and stands for its `BEGIN` (MariaDB logs
//!   no BEGIN query). A group flagged `FL_STANDALONE` (DDL, a non-transactional
//!   statement) or `FL_COMPLETED_XA` ends with its first QUERY; any other ends at
//!   XID, at a QUERY `COMMIT`, or, with `FL_PREPARED_XA`, at XA_PREPARE.
//! - MySQL 5.6+: GTID or ANONYMOUS_GTID opens it; if the next QUERY is `BEGIN` or
//!   `XA START`, the group ends at XID, QUERY `COMMIT` or XA_PREPARE; otherwise that
//!   QUERY (DDL, `XA COMMIT`) is the whole transaction. A TRANSACTION_PAYLOAD holds a
//!   whole compressed transaction and so ends its group.
//! - Without GTIDs (MySQL 5.5 and older): a QUERY `BEGIN` opens a group that ends
//!   at XID or `COMMIT`, and any other QUERY outside a group is a transaction by itself.
//! - `ROLLBACK` ends a group without a commit; `ROLLBACK TO SAVEPOINT` does not end it.
//!
//! The commit time is MySQL 8's `immediate_commit_timestamp` (microseconds) when
//! the GTID event has one, and otherwise the header timestamp (seconds) of the
//! event that ends the group.

use jiff::Timestamp;

use super::event::{Event, EventData, EventType, mariadb_gtid_flags};
use super::gtid::{Gtid, MysqlGtid};
use super::position::BinlogPos;

/// The GTID of a transaction, in its server's flavour.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TrxGtid {
    /// A MariaDB GTID.
    MariaDb(Gtid),
    /// A MySQL GTID.
    Mysql(MysqlGtid),
    /// No GTID: MySQL with `gtid_mode=OFF` (ANONYMOUS_GTID) or a server older than GTIDs.
    None,
}

/// How a transaction reached its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrxOutcome {
    /// Committed (including XA COMMIT ... ONE PHASE).
    Commit,
    /// `XA PREPARE`: durable but not yet committed; a later `XA COMMIT` decides.
    XaPrepare,
    /// `XA COMMIT` of an earlier prepared XA transaction.
    XaCommit,
}

/// One transaction that reached the binlog's durable end of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// Its GTID.
    pub gtid: TrxGtid,
    /// Its commit time on this server.
    pub commit_time: Timestamp,
    /// The position just past its last event: a restore that replays up to here
    /// includes it.
    pub end: BinlogPos,
    /// Commit, XA prepare or XA commit.
    pub outcome: TrxOutcome,
}

/// An open event group.
#[derive(Clone, Debug)]
struct Group {
    gtid: TrxGtid,
    /// MySQL 8's commit time in microseconds, from the GTID event.
    commit_us: Option<u64>,
    /// MariaDB `FL_STANDALONE`: ends with its first QUERY.
    standalone: bool,
    /// MariaDB `FL_COMPLETED_XA`: its QUERY is `XA COMMIT` or `XA ROLLBACK`.
    completed_xa: bool,
    /// Whether a `BEGIN` (or `XA START`) has been seen, so that later queries are inside.
    begun: bool,
    /// Whether the group came from a GTID event (a bare `BEGIN` otherwise).
    from_gtid: bool,
}

/// What a QUERY event's text means to the group it is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QueryKind {
    Begin,
    Commit,
    Rollback,
    XaCommit,
    XaRollback,
    Other,
}

fn classify(query: &[u8]) -> QueryKind {
    let text = String::from_utf8_lossy(query);
    let words: Vec<String> = text
        .split_ascii_whitespace()
        .take(3)
        .map(str::to_ascii_uppercase)
        .collect();
    let first = words.first().map(String::as_str);
    let second = words.get(1).map(String::as_str);
    match (first, second, words.len()) {
        (Some("BEGIN"), _, 1) => QueryKind::Begin,
        (Some("XA"), Some("START" | "BEGIN"), _) => QueryKind::Begin,
        (Some("COMMIT"), _, 1) => QueryKind::Commit,
        (Some("ROLLBACK"), _, 1) => QueryKind::Rollback,
        (Some("XA"), Some("COMMIT"), _) => QueryKind::XaCommit,
        (Some("XA"), Some("ROLLBACK"), _) => QueryKind::XaRollback,
        _ => QueryKind::Other,
    }
}

/// Follows event groups and reports each transaction as it ends.
#[derive(Clone, Debug, Default)]
pub struct TransactionTracker {
    group: Option<Group>,
}

impl TransactionTracker {
    /// A tracker between transactions.
    pub fn new() -> TransactionTracker {
        TransactionTracker::default()
    }

    /// Whether a group is open: the last event fed is inside a transaction, so its
    /// end is not a safe point to stop a restore or resume a stream.
    pub fn in_transaction(&self) -> bool {
        self.group.is_some()
    }

    /// Feeds the next event, with the position just past it; returns the
    /// transaction it ends, if it ends a committed one.
    pub fn push(&mut self, event: &Event, end: &BinlogPos) -> Option<Transaction> {
        match event.data() {
            EventData::MariadbGtid(g) => {
                use mariadb_gtid_flags::*;
                // A group still open here was cut short (a crash); it never committed.
                let standalone = g.has(FL_STANDALONE);
                let completed_xa = g.has(FL_COMPLETED_XA);
                self.group = Some(Group {
                    gtid: TrxGtid::MariaDb(g.gtid),
                    commit_us: None,
                    standalone,
                    completed_xa,
                    // MariaDB logs no BEGIN query: the GTID event stands for it.
                    begun: !(standalone || completed_xa),
                    from_gtid: true,
                });
                None
            }
            EventData::MysqlGtid(g) => {
                self.group = Some(Group {
                    gtid: g.gtid.clone().map_or(TrxGtid::None, TrxGtid::Mysql),
                    commit_us: g.immediate_commit_timestamp,
                    standalone: false,
                    completed_xa: false,
                    begun: false,
                    from_gtid: true,
                });
                None
            }
            EventData::Query(q) => self.on_query(classify(&q.query), event, end),
            // Its text is compressed, but it is never BEGIN or COMMIT (those are too
            // short to be compressed): a statement.
            EventData::Other if event.event_type() == EventType::QUERY_COMPRESSED => {
                self.on_query(QueryKind::Other, event, end)
            }
            EventData::Xid(_) => self.end_group(event, end, TrxOutcome::Commit),
            EventData::XaPrepare(x) => {
                let outcome = if x.one_phase {
                    TrxOutcome::Commit
                } else {
                    TrxOutcome::XaPrepare
                };
                self.end_group(event, end, outcome)
            }
            EventData::TransactionPayload(_) => self.end_group(event, end, TrxOutcome::Commit),
            // A new file's description or a shutdown: whatever was open never committed.
            EventData::FormatDescription(_) | EventData::Stop if !event.is_stream_only() => {
                self.group = None;
                None
            }
            _ => None,
        }
    }

    fn on_query(&mut self, kind: QueryKind, event: &Event, end: &BinlogPos) -> Option<Transaction> {
        let Some(group) = &mut self.group else {
            return match kind {
                QueryKind::Begin => {
                    self.group = Some(Group {
                        gtid: TrxGtid::None,
                        commit_us: None,
                        standalone: false,
                        completed_xa: false,
                        begun: true,
                        from_gtid: false,
                    });
                    None
                }
                // A stray COMMIT or ROLLBACK outside any group ends nothing.
                QueryKind::Commit | QueryKind::Rollback => None,
                QueryKind::XaCommit => Some(self.record(None, event, end, TrxOutcome::XaCommit)),
                QueryKind::XaRollback => None,
                QueryKind::Other => Some(self.record(None, event, end, TrxOutcome::Commit)),
            };
        };
        if group.standalone || (group.from_gtid && !group.begun && kind != QueryKind::Begin) {
            // The whole group is this one statement.
            let outcome = match kind {
                QueryKind::XaCommit => TrxOutcome::XaCommit,
                QueryKind::XaRollback | QueryKind::Rollback => {
                    self.group = None;
                    return None;
                }
                _ if group.completed_xa => TrxOutcome::XaCommit,
                _ => TrxOutcome::Commit,
            };
            return self.end_group(event, end, outcome);
        }
        match kind {
            QueryKind::Begin => {
                group.begun = true;
                None
            }
            QueryKind::Commit => self.end_group(event, end, TrxOutcome::Commit),
            QueryKind::Rollback => {
                self.group = None;
                None
            }
            QueryKind::XaCommit | QueryKind::XaRollback | QueryKind::Other => None,
        }
    }

    fn end_group(
        &mut self,
        event: &Event,
        end: &BinlogPos,
        outcome: TrxOutcome,
    ) -> Option<Transaction> {
        let group = self.group.take()?;
        Some(self.record(Some(group), event, end, outcome))
    }

    fn record(
        &self,
        group: Option<Group>,
        event: &Event,
        end: &BinlogPos,
        outcome: TrxOutcome,
    ) -> Transaction {
        let header_time =
            Timestamp::from_second(i64::from(event.header().timestamp)).unwrap_or_default();
        let commit_time = group
            .as_ref()
            .and_then(|g| g.commit_us)
            .and_then(|us| i64::try_from(us).ok())
            .and_then(|us| Timestamp::from_microsecond(us).ok())
            .unwrap_or(header_time);
        Transaction {
            gtid: group.map_or(TrxGtid::None, |g| g.gtid),
            commit_time,
            end: end.clone(),
            outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_queries() {
        assert_eq!(classify(b"BEGIN"), QueryKind::Begin);
        assert_eq!(classify(b"  begin "), QueryKind::Begin);
        assert_eq!(classify(b"COMMIT"), QueryKind::Commit);
        assert_eq!(classify(b"ROLLBACK"), QueryKind::Rollback);
        assert_eq!(classify(b"ROLLBACK TO SAVEPOINT s1"), QueryKind::Other);
        assert_eq!(classify(b"SAVEPOINT s1"), QueryKind::Other);
        assert_eq!(classify(b"XA START X'61',X'',1"), QueryKind::Begin);
        assert_eq!(classify(b"XA COMMIT X'61',X'',1"), QueryKind::XaCommit);
        assert_eq!(classify(b"XA ROLLBACK 'x'"), QueryKind::XaRollback);
        assert_eq!(classify(b"COMMIT WORK"), QueryKind::Other);
        assert_eq!(classify(b"create table t (a int)"), QueryKind::Other);
    }
}
