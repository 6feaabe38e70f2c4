//! Received WAL → objects → store. The archiver owns the durable position.
//!
//! WAL arrives in order. Each complete segment becomes one lz4 object. The
//! segment in progress is shipped as pieces on every [`WalArchiver::flush`],
//! and the complete object supersedes its pieces once it is durable.
//!
//! Uploads run concurrently, but the durable position only moves over a
//! contiguous run of finished uploads, and it never moves backwards
//! (DESIGN.md §1): it is what the source may acknowledge.

mod commits;
mod segment;

use std::collections::VecDeque;
use std::sync::Arc;

use logship_protocol::archive::key::SourceName;
use logship_protocol::archive::object::{Codec, Framer};
use logship_protocol::archive::pieces::{PiecePlan, PieceRange, PieceStack};
use logship_protocol::pg::key::WalKey;
use logship_protocol::pg::{Lsn, SegmentNo, TimelineId, WalSegSize};

use crate::archiver::{Finished, UploadQueue};
use crate::metrics::SourceMetrics;
use crate::pg::catalog::ArchiveEnd;
use crate::store::Store;
use crate::timefmt;
use commits::CommitTracker;
use segment::SegmentBuffer;

/// Compressed bytes allowed in flight before `append` waits for uploads to finish.
/// Together with the one segment buffer, this bounds the archiver's memory.
const MAX_IN_FLIGHT_BYTES: usize = 24 << 20;

/// Complete segments remembered after their object became durable, so that a
/// piece of theirs finishing late is deleted at once.
const RECENT_COMPLETE: usize = 8;

/// WAL that arrived out of order: the stream and the archive disagree.
#[derive(Debug, thiserror::Error)]
#[error(
    "received WAL at {got} but expected {expected} (the stream skipped or repeated WAL; reconnecting)"
)]
pub struct OutOfOrder {
    pub expected: Lsn,
    pub got: Lsn,
}

/// What an upload makes durable.
enum UploadKind {
    /// A complete segment's object.
    Segment { tli: TimelineId, segno: SegmentNo },
    /// A piece of the segment in progress.
    Piece {
        tli: TimelineId,
        segno: SegmentNo,
        plan: PiecePlan,
    },
}

/// Turns a stream of WAL into durable objects for one source.
pub struct WalArchiver {
    source: SourceName,
    seg: WalSegSize,
    metrics: SourceMetrics,
    current: SegmentBuffer,
    /// Compresses every object of this archiver in the same buffer.
    framer: Framer,
    commits: CommitTracker,
    /// Durable pieces of `current`.
    stack: PieceStack,
    piece_in_flight: bool,
    received: Lsn,
    uploads: UploadQueue<UploadKind, Lsn>,
    recent_complete: VecDeque<(TimelineId, SegmentNo)>,
}

impl WalArchiver {
    /// An archiver that continues where the archive ends, or starts at `start`
    /// (a segment boundary) on `tli` when the archive is empty.
    ///
    /// Streaming must restart at [`WalArchiver::received`]: the start of the
    /// newest segment, so that its bytes are whole in memory again.
    pub fn new(
        store: Arc<dyn Store>,
        source: SourceName,
        seg: WalSegSize,
        metrics: SourceMetrics,
        resume: ResumeFrom,
    ) -> WalArchiver {
        let (tli, durable, stack) = match resume {
            ResumeFrom::Archive(ArchiveEnd { tli, end, chain }) => {
                (tli, end, PieceStack::from_chain(chain))
            }
            // Nothing is durable yet: not even the bytes before `start` in its segment.
            ResumeFrom::Empty { tli, start } => {
                (tli, start.segment_start(seg), PieceStack::default())
            }
        };
        let segno = durable.segment_no(seg);
        let received = durable.segment_start(seg);
        metrics.set_durable(durable.as_u64());
        metrics.set_received(received.as_u64());
        WalArchiver {
            uploads: UploadQueue::new(store, metrics.clone(), durable),
            source,
            seg,
            metrics,
            current: SegmentBuffer::new(tli, segno, seg),
            framer: Framer::for_content(usize::try_from(seg.bytes()).unwrap_or_default()),
            commits: CommitTracker::new(received, seg),
            stack,
            piece_in_flight: false,
            received,
            recent_complete: VecDeque::new(),
        }
    }

    /// The timeline being archived.
    pub fn tli(&self) -> TimelineId {
        self.current.tli()
    }

    /// End of the WAL received so far; streaming continues from here.
    pub fn received(&self) -> Lsn {
        self.received
    }

    /// End of the WAL that is durable in the store: the only position that may be acknowledged.
    pub fn durable(&self) -> Lsn {
        self.uploads.durable()
    }

    /// True while uploads are still running.
    pub fn is_busy(&self) -> bool {
        self.uploads.is_busy()
    }

    /// Takes WAL that starts at `start`, which must be where the last call ended.
    /// Completes segments as they fill; waits when too much is in flight.
    pub async fn append(&mut self, start: Lsn, mut data: &[u8]) -> Result<(), OutOfOrder> {
        if start != self.received {
            return Err(OutOfOrder {
                expected: self.received,
                got: start,
            });
        }
        self.commits.feed(data);
        while !data.is_empty() {
            let taken = self.current.fill(data);
            data = data.get(taken..).unwrap_or_default();
            self.received = self.current.end_lsn();
            if self.current.is_full() {
                self.complete_segment().await;
            }
        }
        self.metrics.set_received(self.received.as_u64());
        Ok(())
    }

    /// Ships whatever of the segment in progress is not yet durable, as one piece.
    /// At most one piece per segment is in flight; the next flush picks up the rest.
    pub fn flush(&mut self) {
        self.ship_piece(false);
    }

    /// Waits for one upload to finish. Returns true if the durable position moved.
    /// Never returns while nothing is in flight (for use in `select!`); cancel-safe.
    pub async fn wait_upload(&mut self) -> bool {
        let finished = self.uploads.next_finished().await;
        self.finish(finished)
    }

    /// Makes everything received durable: flushes, then waits for every upload.
    /// With `consolidate`, the segment in progress is left as a single piece
    /// (the end of a timeline keeps its last segment as one partial object).
    pub async fn drain(&mut self, consolidate: bool) {
        loop {
            if !self.piece_in_flight {
                self.ship_piece(consolidate);
            }
            if !self.uploads.is_busy() {
                return;
            }
            self.wait_upload().await;
        }
    }

    /// Continues on a new timeline at `start`, a segment boundary. Call after `drain`.
    pub fn switch_timeline(&mut self, tli: TimelineId, start: Lsn) {
        let start = start.segment_start(self.seg);
        self.current.reset(tli, start.segment_no(self.seg));
        self.stack = PieceStack::default();
        self.received = start;
        self.commits.restart(start);
        // `durable` stays where the old timeline ended: the new timeline's first
        // segment repeats those bytes, so its pieces only move it past that point.
        self.metrics.set_received(start.as_u64());
    }

    async fn complete_segment(&mut self) {
        let tli = self.current.tli();
        let segno = self.current.segno();
        let content = self.current.bytes();
        // A whole segment takes long enough to compress that the worker's other tasks (the
        // replication connection among them) move to another thread meanwhile.
        let stored =
            tokio::task::block_in_place(|| self.framer.frame(content, Codec::Lz4).to_vec());
        let key = WalKey::Segment { tli, segno }.format(&self.source, self.seg);
        let end = segno.end_lsn(self.seg);
        let raw_len = self.current.filled().into();
        self.uploads.start(
            key,
            stored,
            raw_len,
            end,
            UploadKind::Segment { tli, segno },
        );
        self.current.reset(tli, segno.next());
        self.stack = PieceStack::default();
        while self.uploads.in_flight_bytes() > MAX_IN_FLIGHT_BYTES {
            self.wait_upload().await;
        }
    }

    fn ship_piece(&mut self, consolidate: bool) {
        if self.piece_in_flight {
            return;
        }
        let Some(plan) = self.stack.plan(self.current.filled(), consolidate) else {
            return;
        };
        let tli = self.current.tli();
        let segno = self.current.segno();
        let range = plan.piece;
        let bytes = self
            .current
            .bytes()
            .get(range.start() as usize..range.end() as usize)
            .unwrap_or_default();
        let stored = self.framer.frame(bytes, Codec::Lz4).to_vec();
        let key = piece_key(&self.source, self.seg, tli, segno, range);
        let end = Lsn::new(segno.start_lsn(self.seg).as_u64() + u64::from(range.end()));
        self.piece_in_flight = true;
        let raw_len = range.len().into();
        self.uploads.start(
            key,
            stored,
            raw_len,
            end,
            UploadKind::Piece { tli, segno, plan },
        );
    }

    fn finish(&mut self, finished: Finished<UploadKind, Lsn>) -> bool {
        match finished.kind {
            UploadKind::Segment { tli, segno } => {
                self.recent_complete.push_back((tli, segno));
                if self.recent_complete.len() > RECENT_COMPLETE {
                    self.recent_complete.pop_front();
                }
                self.delete_pieces_of(tli, segno);
            }
            UploadKind::Piece { tli, segno, plan } => {
                self.piece_in_flight = false;
                self.piece_durable(tli, segno, &plan);
            }
        }
        let Some(durable) = finished.durable else {
            return false;
        };
        self.metrics.set_durable(durable.as_u64());
        if let Some(time) = self
            .commits
            .durable_up_to(durable)
            .and_then(timefmt::from_pg)
        {
            self.metrics.set_newest_durable_commit(time);
        }
        true
    }

    fn piece_durable(&mut self, tli: TimelineId, segno: SegmentNo, plan: &PiecePlan) {
        if (tli, segno) == (self.current.tli(), self.current.segno()) {
            self.stack.commit(plan);
            let stale = plan.superseded.clone();
            self.delete_keys(
                stale
                    .into_iter()
                    .map(|range| piece_key(&self.source, self.seg, tli, segno, range))
                    .collect(),
            );
        } else if self.recent_complete.contains(&(tli, segno)) {
            // The complete object was durable before this piece: nothing needs it.
            self.delete_pieces_of(tli, segno);
        }
        // Otherwise the complete object is still uploading; its completion
        // deletes this piece along with the others.
    }

    /// Removes every piece of a segment whose complete object is durable.
    fn delete_pieces_of(&self, tli: TimelineId, segno: SegmentNo) {
        let store = self.uploads.store().clone();
        let prefix = WalKey::Segment { tli, segno }.format(&self.source, self.seg) + ".partial.";
        tokio::spawn(async move {
            match store.list(&prefix).await {
                Ok(objects) => {
                    for object in objects {
                        if let Err(err) = store.delete(&object.key).await {
                            tracing::warn!(key = %object.key, %err, "could not delete a superseded piece");
                        }
                    }
                }
                Err(err) => tracing::warn!(%prefix, %err, "could not list superseded pieces"),
            }
        });
    }

    fn delete_keys(&self, keys: Vec<String>) {
        if keys.is_empty() {
            return;
        }
        let store = self.uploads.store().clone();
        tokio::spawn(async move {
            for key in keys {
                if let Err(err) = store.delete(&key).await {
                    tracing::warn!(%key, %err, "could not delete a superseded piece");
                }
            }
        });
    }
}

/// Where a new archiver starts.
pub enum ResumeFrom {
    /// Continue after what the store already holds.
    Archive(ArchiveEnd),
    /// Nothing archived yet: start at `start` (rounded down to a segment) on `tli`.
    Empty { tli: TimelineId, start: Lsn },
}

fn piece_key(
    source: &SourceName,
    seg: WalSegSize,
    tli: TimelineId,
    segno: SegmentNo,
    range: PieceRange,
) -> String {
    WalKey::Piece {
        tli,
        segno,
        start: range.start(),
        end: range.end(),
    }
    .format(source, seg)
}
