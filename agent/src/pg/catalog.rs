//! What the store holds for one PostgreSQL source: timelines, segments and pieces.
//!
//! Built from one listing of the source's `wal/` and `timelines/` prefixes.
//! The archiver reads it to find where to resume; `wal-fetch` reads it to find
//! a segment that is only stored as pieces.

use std::collections::{BTreeMap, BTreeSet};

use logship_protocol::archive::key::SourceName;
use logship_protocol::archive::pieces::{self, PieceRange};
use logship_protocol::pg::key::{self as pg_key, WalKey};
use logship_protocol::pg::{Lsn, SegmentNo, TimelineId, WalSegSize};

use crate::store::{Store, StoreError};

/// The objects stored for one segment: the complete object, pieces, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentObjects {
    pub complete: bool,
    pub pieces: Vec<PieceRange>,
}

impl SegmentObjects {
    /// The pieces that rebuild this segment's durable prefix (empty when complete).
    pub fn chain(&self) -> Vec<PieceRange> {
        if self.complete {
            Vec::new()
        } else {
            pieces::chain(&self.pieces)
        }
    }

    /// How many bytes of the segment are durable, from offset 0.
    pub fn durable_len(&self, seg: WalSegSize) -> u64 {
        if self.complete {
            seg.bytes()
        } else {
            self.chain().last().map_or(0, |p| u64::from(p.end()))
        }
    }
}

/// Everything archived for a source, by timeline and segment.
#[derive(Debug, Clone)]
pub struct WalCatalog {
    seg: WalSegSize,
    histories: BTreeSet<TimelineId>,
    timelines: BTreeMap<TimelineId, BTreeMap<SegmentNo, SegmentObjects>>,
}

/// Where the archive of a timeline currently ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveEnd {
    pub tli: TimelineId,
    /// End of the last durable byte of the newest segment.
    pub end: Lsn,
    /// The pieces of the segment holding `end`, when it is not complete.
    pub chain: Vec<PieceRange>,
}

impl WalCatalog {
    /// Lists the store and sorts every WAL and history object of `source`.
    /// Keys that don't parse are skipped with a warning: they aren't ours to judge here.
    pub async fn load(
        store: &dyn Store,
        source: &SourceName,
        seg: WalSegSize,
    ) -> Result<WalCatalog, StoreError> {
        let mut catalog = WalCatalog {
            seg,
            histories: BTreeSet::new(),
            timelines: BTreeMap::new(),
        };
        let mut objects = store.list(&pg_key::timelines_prefix(source)).await?;
        objects.extend(store.list(&pg_key::wal_root_prefix(source)).await?);
        for object in objects {
            match WalKey::parse(&object.key, seg) {
                Ok((_, WalKey::History(tli))) => {
                    catalog.histories.insert(tli);
                }
                Ok((_, WalKey::Segment { tli, segno })) => {
                    catalog.segment_mut(tli, segno).complete = true;
                }
                Ok((
                    _,
                    WalKey::Piece {
                        tli,
                        segno,
                        start,
                        end,
                    },
                )) => {
                    if let Some(range) = PieceRange::new(start, end) {
                        catalog.segment_mut(tli, segno).pieces.push(range);
                    }
                }
                Err(err) => tracing::warn!(key = %object.key, %err, "ignoring unexpected object"),
            }
        }
        Ok(catalog)
    }

    fn segment_mut(&mut self, tli: TimelineId, segno: SegmentNo) -> &mut SegmentObjects {
        self.timelines
            .entry(tli)
            .or_default()
            .entry(segno)
            .or_default()
    }

    /// Whether the `.history` file of `tli` is archived.
    pub fn has_history(&self, tli: TimelineId) -> bool {
        self.histories.contains(&tli)
    }

    /// The objects of one segment, if any.
    pub fn segment(&self, tli: TimelineId, segno: SegmentNo) -> Option<&SegmentObjects> {
        self.timelines.get(&tli)?.get(&segno)
    }

    /// The segments archived on `tli`, in order.
    pub fn segments(&self, tli: TimelineId) -> impl Iterator<Item = (SegmentNo, &SegmentObjects)> {
        self.timelines
            .get(&tli)
            .into_iter()
            .flat_map(|segments| segments.iter().map(|(segno, objects)| (*segno, objects)))
    }

    /// Timelines that hold WAL, oldest first.
    pub fn timelines(&self) -> impl Iterator<Item = TimelineId> + '_ {
        self.timelines.keys().copied()
    }

    /// Where the newest timeline's archive ends, or `None` for an empty archive.
    pub fn newest_end(&self) -> Option<ArchiveEnd> {
        let (&tli, segments) = self.timelines.iter().next_back()?;
        let (&segno, objects) = segments.iter().next_back()?;
        let start = segno.start_lsn(self.seg);
        Some(ArchiveEnd {
            tli,
            end: Lsn::new(start.as_u64() + objects.durable_len(self.seg)),
            chain: objects.chain(),
        })
    }
}
