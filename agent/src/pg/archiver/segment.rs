//! The WAL segment in progress: bytes from offset 0 up to what has been received.

use logship_protocol::pg::{Lsn, SegmentNo, TimelineId, WalSegSize};

/// Assembles one WAL segment from XLogData payloads, always from offset 0.
pub struct SegmentBuffer {
    tli: TimelineId,
    segno: SegmentNo,
    seg: WalSegSize,
    bytes: Vec<u8>,
}

impl SegmentBuffer {
    /// An empty buffer for `segno`; its capacity is one segment and is reused.
    pub fn new(tli: TimelineId, segno: SegmentNo, seg: WalSegSize) -> SegmentBuffer {
        let capacity = usize::try_from(seg.bytes()).unwrap_or(usize::MAX);
        SegmentBuffer {
            tli,
            segno,
            seg,
            bytes: Vec::with_capacity(capacity),
        }
    }

    /// The timeline this segment belongs to.
    pub fn tli(&self) -> TimelineId {
        self.tli
    }

    /// The segment's number.
    pub fn segno(&self) -> SegmentNo {
        self.segno
    }

    /// The LSN just past the last byte held.
    pub fn end_lsn(&self) -> Lsn {
        Lsn::new(self.segno.start_lsn(self.seg).as_u64() + self.bytes.len() as u64)
    }

    /// Bytes held, from offset 0.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Number of bytes held, as a segment offset.
    pub fn filled(&self) -> u32 {
        u32::try_from(self.bytes.len()).unwrap_or(u32::MAX)
    }

    /// True once the whole segment is held.
    pub fn is_full(&self) -> bool {
        self.bytes.len() as u64 == self.seg.bytes()
    }

    /// Appends as much of `data` as fits in this segment; returns how many bytes it took.
    pub fn fill(&mut self, data: &[u8]) -> usize {
        let room = usize::try_from(self.seg.bytes())
            .unwrap_or(usize::MAX)
            .saturating_sub(self.bytes.len());
        let take = room.min(data.len());
        self.bytes
            .extend_from_slice(data.get(..take).unwrap_or_default());
        take
    }

    /// Starts over on another segment, keeping the allocation.
    pub fn reset(&mut self, tli: TimelineId, segno: SegmentNo) {
        self.tli = tli;
        self.segno = segno;
        self.bytes.clear();
    }
}
