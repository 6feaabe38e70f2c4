//! Transaction ends in WAL: the commit and abort records of PostgreSQL's
//! `Transaction` resource manager (`xact.h`, parsed as `xactdesc.c` does),
//! reduced to what restore planning needs: which transaction ended, how, and
//! when.
//!
//! Decoded: `XLOG_XACT_COMMIT`, `XLOG_XACT_COMMIT_PREPARED`, `XLOG_XACT_ABORT`
//! and `XLOG_XACT_ABORT_PREPARED`: their `xact_time` and, for prepared
//! transactions, the xid that was prepared (`xl_xact_twophase`). The lists in
//! between (subtransactions, relations, dropped stats, invalidations) are
//! skipped, not decoded. `XLOG_XACT_PREPARE` is not an end (the transaction
//! may still go either way), and assignments and invalidations are ignored.

use super::Lsn;
use super::replication::PgTimestamp;
use super::walrecord::{RM_XACT_ID, WalRecord};

/// `XLOG_XACT_OPMASK`: the bits of `xl_info` that hold the opcode.
const XLOG_XACT_OPMASK: u8 = 0x70;
const XLOG_XACT_COMMIT: u8 = 0x00;
const XLOG_XACT_ABORT: u8 = 0x20;
const XLOG_XACT_COMMIT_PREPARED: u8 = 0x30;
const XLOG_XACT_ABORT_PREPARED: u8 = 0x40;
/// `XLOG_XACT_HAS_INFO`: an `xl_xact_xinfo` follows `xact_time`.
const XLOG_XACT_HAS_INFO: u8 = 0x80;

const XACT_XINFO_HAS_DBINFO: u32 = 1 << 0;
const XACT_XINFO_HAS_SUBXACTS: u32 = 1 << 1;
const XACT_XINFO_HAS_RELFILENODES: u32 = 1 << 2;
const XACT_XINFO_HAS_INVALS: u32 = 1 << 3;
const XACT_XINFO_HAS_TWOPHASE: u32 = 1 << 4;
const XACT_XINFO_HAS_DROPPED_STATS: u32 = 1 << 8;

/// `sizeof(xl_xact_dbinfo)`.
const DBINFO_LEN: usize = 8;
/// `sizeof(TransactionId)`.
const SUBXACT_LEN: usize = 4;
/// `sizeof(RelFileNode)`.
const RELFILENODE_LEN: usize = 12;
/// `sizeof(xl_xact_stats_item)` in PostgreSQL 15.
const STATS_ITEM_LEN: usize = 12;
/// `sizeof(SharedInvalidationMessage)`.
const INVAL_MSG_LEN: usize = 16;

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XactKind {
    /// `XLOG_XACT_COMMIT`.
    Commit,
    /// `XLOG_XACT_COMMIT_PREPARED`: `COMMIT PREPARED` of a two-phase transaction.
    CommitPrepared,
    /// `XLOG_XACT_ABORT`, of a transaction or a subtransaction.
    Abort,
    /// `XLOG_XACT_ABORT_PREPARED`: `ROLLBACK PREPARED` of a two-phase transaction.
    AbortPrepared,
}

/// The end of one transaction, as logged in WAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XactEvent {
    /// Where the commit or abort record starts.
    pub lsn: Lsn,
    /// Where it ends: replaying up to here applies (or discards) the transaction.
    pub end_lsn: Lsn,
    /// The transaction that ended; for prepared transactions, the xid that was prepared.
    pub xid: u32,
    /// Commit or abort, direct or prepared.
    pub kind: XactKind,
    /// The server's clock at commit or abort (`xact_time`), what `recovery_target_time` compares with.
    pub xact_time: PgTimestamp,
}

/// A commit or abort record whose main data is not what PostgreSQL 15 writes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum XactDecodeError {
    /// The main data ends before a field it announces.
    #[error(
        "transaction record at {lsn} is truncated: it needs more than its {len} bytes of main \
         data, so the segment is corrupt"
    )]
    Truncated {
        /// The record.
        lsn: Lsn,
        /// The main data's length.
        len: usize,
    },
    /// A prepared commit or abort that does not name the prepared transaction.
    #[error(
        "prepared-transaction record at {lsn} does not name the prepared xid: the segment is \
         corrupt or not PostgreSQL 15 WAL"
    )]
    MissingPreparedXid {
        /// The record.
        lsn: Lsn,
    },
}

/// The transaction end that `record` logs, if it is a commit or abort record.
pub fn decode_xact(record: &WalRecord) -> Result<Option<XactEvent>, XactDecodeError> {
    if record.rmid != RM_XACT_ID {
        return Ok(None);
    }
    let kind = match record.info & XLOG_XACT_OPMASK {
        XLOG_XACT_COMMIT => XactKind::Commit,
        XLOG_XACT_COMMIT_PREPARED => XactKind::CommitPrepared,
        XLOG_XACT_ABORT => XactKind::Abort,
        XLOG_XACT_ABORT_PREPARED => XactKind::AbortPrepared,
        _ => return Ok(None),
    };
    let data = record.main_data();
    let truncated = || XactDecodeError::Truncated {
        lsn: record.lsn,
        len: data.len(),
    };
    let mut cursor = Cursor { data, at: 0 };
    let xact_time = cursor
        .take::<8>()
        .map(i64::from_le_bytes)
        .ok_or_else(truncated)?;
    let xid = match kind {
        XactKind::Commit | XactKind::Abort => record.xid,
        XactKind::CommitPrepared | XactKind::AbortPrepared => {
            prepared_xid(&mut cursor, record.info, kind)
                .ok_or_else(truncated)?
                .ok_or(XactDecodeError::MissingPreparedXid { lsn: record.lsn })?
        }
    };
    Ok(Some(XactEvent {
        lsn: record.lsn,
        end_lsn: record.end_lsn,
        xid,
        kind,
        xact_time: PgTimestamp::from_pg_micros(xact_time),
    }))
}

/// [`decode_xact`] for callers that treat a malformed commit record like any other record.
pub fn xact_event(record: &WalRecord) -> Option<XactEvent> {
    decode_xact(record).ok().flatten()
}

/// Walks `ParseCommitRecord` / `ParseAbortRecord` up to `xl_xact_twophase`:
/// `None` if the data ends early, `Some(None)` if there is no prepared xid.
fn prepared_xid(cursor: &mut Cursor<'_>, info: u8, kind: XactKind) -> Option<Option<u32>> {
    if info & XLOG_XACT_HAS_INFO == 0 {
        return Some(None);
    }
    let xinfo = cursor.u32()?;
    if xinfo & XACT_XINFO_HAS_DBINFO != 0 {
        cursor.skip(DBINFO_LEN)?;
    }
    if xinfo & XACT_XINFO_HAS_SUBXACTS != 0 {
        cursor.skip_counted(SUBXACT_LEN)?;
    }
    if xinfo & XACT_XINFO_HAS_RELFILENODES != 0 {
        cursor.skip_counted(RELFILENODE_LEN)?;
    }
    if xinfo & XACT_XINFO_HAS_DROPPED_STATS != 0 {
        cursor.skip_counted(STATS_ITEM_LEN)?;
    }
    // Only commits log invalidation messages.
    if kind == XactKind::CommitPrepared && xinfo & XACT_XINFO_HAS_INVALS != 0 {
        cursor.skip_counted(INVAL_MSG_LEN)?;
    }
    if xinfo & XACT_XINFO_HAS_TWOPHASE == 0 {
        return Some(None);
    }
    cursor.u32().map(Some)
}

/// A little-endian reader over main data.
struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let chunk = self.data.get(self.at..)?.first_chunk::<N>()?;
        self.at += N;
        Some(*chunk)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        let at = self.at.checked_add(n)?;
        (at <= self.data.len()).then(|| self.at = at)
    }

    /// Skips a C array that starts with its `int` length.
    fn skip_counted(&mut self, item_len: usize) -> Option<()> {
        let count = usize::try_from(self.u32()?).ok()?;
        self.skip(count.checked_mul(item_len)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(info: u8, xid: u32, main_data: Vec<u8>) -> WalRecord {
        WalRecord::for_tests(
            Lsn::new(0x100_0028),
            Lsn::new(0x100_0050),
            xid,
            RM_XACT_ID,
            info,
            main_data,
        )
    }

    const TIME: i64 = 817_000_000_123_456;

    #[test]
    fn plain_commit_and_abort() {
        let commit = decode_xact(&record(0x00, 735, TIME.to_le_bytes().to_vec()))
            .unwrap()
            .unwrap();
        assert_eq!(commit.kind, XactKind::Commit);
        assert_eq!(commit.xid, 735);
        assert_eq!(commit.xact_time, PgTimestamp::from_pg_micros(TIME));
        assert_eq!(commit.lsn, Lsn::new(0x100_0028));
        assert_eq!(commit.end_lsn, Lsn::new(0x100_0050));

        let abort = xact_event(&record(0x20, 736, TIME.to_le_bytes().to_vec())).unwrap();
        assert_eq!(abort.kind, XactKind::Abort);
    }

    #[test]
    fn prepared_commit_names_the_prepared_xid_after_the_lists() {
        let mut data = TIME.to_le_bytes().to_vec();
        let xinfo = XACT_XINFO_HAS_DBINFO
            | XACT_XINFO_HAS_SUBXACTS
            | XACT_XINFO_HAS_RELFILENODES
            | XACT_XINFO_HAS_DROPPED_STATS
            | XACT_XINFO_HAS_INVALS
            | XACT_XINFO_HAS_TWOPHASE;
        data.extend(xinfo.to_le_bytes());
        data.extend([0; DBINFO_LEN]);
        data.extend(2u32.to_le_bytes());
        data.extend([0; 2 * SUBXACT_LEN]);
        data.extend(1u32.to_le_bytes());
        data.extend([0; RELFILENODE_LEN]);
        data.extend(1u32.to_le_bytes());
        data.extend([0; STATS_ITEM_LEN]);
        data.extend(3u32.to_le_bytes());
        data.extend([0; 3 * INVAL_MSG_LEN]);
        data.extend(4242u32.to_le_bytes());

        let commit = decode_xact(&record(0x30 | XLOG_XACT_HAS_INFO, 0, data.clone()))
            .unwrap()
            .unwrap();
        assert_eq!(commit.kind, XactKind::CommitPrepared);
        assert_eq!(commit.xid, 4242);

        // An abort has no invalidations: the same bytes put the xid elsewhere.
        let abort_xinfo = xinfo & !XACT_XINFO_HAS_INVALS;
        let mut abort = data;
        abort.splice(8..12, abort_xinfo.to_le_bytes());
        let inval_start =
            8 + 4 + DBINFO_LEN + 4 + 2 * SUBXACT_LEN + 4 + RELFILENODE_LEN + 4 + STATS_ITEM_LEN;
        abort.drain(inval_start..inval_start + 4 + 3 * INVAL_MSG_LEN);
        let abort = decode_xact(&record(0x40 | XLOG_XACT_HAS_INFO, 0, abort))
            .unwrap()
            .unwrap();
        assert_eq!(abort.kind, XactKind::AbortPrepared);
        assert_eq!(abort.xid, 4242);
    }

    #[test]
    fn prepare_and_other_records_are_not_ends() {
        assert_eq!(
            decode_xact(&record(0x10, 735, TIME.to_le_bytes().to_vec())),
            Ok(None)
        );
        let mut heap = record(0x00, 735, TIME.to_le_bytes().to_vec());
        heap.rmid = 10;
        assert_eq!(decode_xact(&heap), Ok(None));
    }

    #[test]
    fn short_main_data_is_an_error_naming_the_record() {
        let err = decode_xact(&record(0x00, 735, vec![1, 2, 3])).unwrap_err();
        assert_eq!(
            err,
            XactDecodeError::Truncated {
                lsn: Lsn::new(0x100_0028),
                len: 3
            }
        );
        assert_eq!(
            err.to_string(),
            "transaction record at 0/1000028 is truncated: it needs more than its 3 bytes of \
             main data, so the segment is corrupt"
        );
        assert_eq!(xact_event(&record(0x00, 735, vec![1, 2, 3])), None);

        // A list count that runs past the end.
        let mut data = TIME.to_le_bytes().to_vec();
        data.extend(XACT_XINFO_HAS_SUBXACTS.to_le_bytes());
        data.extend(u32::MAX.to_le_bytes());
        let err = decode_xact(&record(0x30 | XLOG_XACT_HAS_INFO, 0, data)).unwrap_err();
        assert!(matches!(err, XactDecodeError::Truncated { .. }), "{err}");
    }

    #[test]
    fn prepared_record_without_twophase_is_an_error() {
        let err = decode_xact(&record(0x30, 0, TIME.to_le_bytes().to_vec())).unwrap_err();
        assert_eq!(
            err,
            XactDecodeError::MissingPreparedXid {
                lsn: Lsn::new(0x100_0028)
            }
        );
    }
}
