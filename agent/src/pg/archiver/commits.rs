//! Commit times of the WAL passing through the archiver, for `logship_lag_seconds`:
//! the server's time minus the commit time of the newest durable transaction.

use std::collections::VecDeque;

use logship_protocol::pg::replication::PgTimestamp;
use logship_protocol::pg::walrecord::WalRecordReader;
use logship_protocol::pg::xact::{XactKind, xact_event};
use logship_protocol::pg::{Lsn, WalSegSize};

/// Commits seen but not yet durable; beyond this the oldest are dropped (only
/// the lag metric loses precision, during a long store outage).
const MAX_PENDING: usize = 100_000;

/// Reads commit records out of received WAL and releases their times once durable.
pub struct CommitTracker {
    seg: WalSegSize,
    reader: Option<WalRecordReader>,
    pending: VecDeque<(Lsn, PgTimestamp)>,
}

impl CommitTracker {
    /// A tracker for WAL that starts at `start`, a segment boundary.
    pub fn new(start: Lsn, seg: WalSegSize) -> CommitTracker {
        CommitTracker {
            seg,
            reader: Some(WalRecordReader::new(start, seg)),
            pending: VecDeque::new(),
        }
    }

    /// Starts over at `start` (a new timeline, or a restart of the stream).
    pub fn restart(&mut self, start: Lsn) {
        self.reader = Some(WalRecordReader::new(
            start.segment_start(self.seg),
            self.seg,
        ));
    }

    /// Feeds WAL that follows what was fed before.
    pub fn feed(&mut self, wal: &[u8]) {
        let Some(reader) = self.reader.as_mut() else {
            return;
        };
        reader.feed(wal);
        loop {
            match reader.next_record() {
                Ok(Some(record)) => {
                    if let Some(event) = xact_event(&record)
                        && matches!(event.kind, XactKind::Commit | XactKind::CommitPrepared)
                    {
                        if self.pending.len() == MAX_PENDING {
                            self.pending.pop_front();
                        }
                        self.pending.push_back((event.end_lsn, event.xact_time));
                    }
                }
                Ok(None) => return,
                Err(err) => {
                    // The archive itself is unaffected; only the lag metric stops
                    // until the next restart of the reader.
                    tracing::warn!(%err, "cannot decode WAL records; lag in seconds is unavailable");
                    self.reader = None;
                    return;
                }
            }
        }
    }

    /// The commit time of the newest commit that ends at or before `durable`, if
    /// one became durable since the last call.
    pub fn durable_up_to(&mut self, durable: Lsn) -> Option<PgTimestamp> {
        let mut newest = None;
        while let Some(&(end, time)) = self.pending.front() {
            if end > durable {
                break;
            }
            newest = Some(time);
            self.pending.pop_front();
        }
        newest
    }
}
