//! What a restore can reach, computed from the store alone: the backups, the archived WAL
//! per timeline with its gaps, and the restorable window.
//!
//! How each part is decided:
//! - **Backups**: every id under `<source>/backups/` whose `meta` object exists. A backup
//!   without `meta` is unfinished and does not exist here; a `meta` that cannot be decoded
//!   is an error naming its key, never skipped.
//! - **Archive and gaps**, per timeline: a segment counts with its durable prefix (the
//!   complete object, or the chain of pieces from offset 0). The range runs from the first
//!   segment's start to the last segment's durable end; a gap is any stretch in between not
//!   covered, from a missing segment or a middle segment held only in part.
//! - **Replayable**, per timeline T: the lowest segment start from which replay reaches T's
//!   archived end without a hole, along T's history. For each segment, the file replay uses
//!   is PostgreSQL's choice (`XLogFileReadAnyTLI`): the newest timeline of the history that
//!   began at or before that segment and whose file for it is archived. That file must hold
//!   every byte replay needs from the segment, and those bytes must come before the
//!   timeline's switchpoint (past it, an ancestor's file holds another history's WAL).
//! - **Window start**: the `end_time` of the oldest backup (by `end_time`) on the history
//!   of the newest timeline (the highest one holding WAL) whose `start_lsn` is replayable,
//!   whose `end_lsn` is archived, and that ends before its timeline's switchpoint. It is
//!   consistent at its `end_lsn`. No such backup: no window.
//! - **Window end**: the `xact_time` of the newest commit (`Commit` or `CommitPrepared`)
//!   in durable WAL, searched from the newest timeline's newest segment backwards along its
//!   history, over at most [`MAX_COMMIT_SCAN_SEGMENTS`] segments. When that commit is older
//!   than the window's start, or none is found, the window ends where it starts: the state
//!   at the backup's end is the only one reachable by time.
//! - **Last record**: the last complete record in durable WAL, found by the same search
//!   (an incomplete record at the end is not one: replay cannot apply it). PostgreSQL stops
//!   at an LSN only after a record starting at or after it, so an LSN target past this
//!   record's start needs another stop (see [`crate::pg::restore::plan::recovery_stop`]).
//!
//! WAL that fails to decode is treated as PostgreSQL's recovery treats it, as the end of
//! valid WAL, and logged as a warning; so is a WAL object that fails its checksums, so that
//! a damaged segment shortens the window instead of hiding it.

use std::collections::BTreeMap;

use jiff::Timestamp;
use logship_protocol::archive::backup::{BackupId, BackupMeta};
use logship_protocol::archive::identity::SourceIdentity;
use logship_protocol::archive::key::{self, ArchiveKey, SourceName};
use logship_protocol::pg::key::WalKey;
use logship_protocol::pg::walrecord::WalRecordReader;
use logship_protocol::pg::xact::{XactEvent, XactKind, xact_event};
use logship_protocol::pg::{Lsn, SegmentNo, TimelineHistory, TimelineId, WalSegSize};

use crate::archive::{ReadError, read_object};
use crate::identity::{IdentityError, read_identity};
use crate::pg::catalog::WalCatalog;
use crate::pg::walfetch::{FetchError, read_segment};
use crate::store::{Store, StoreError};
use crate::timefmt;
use crate::window::TimeWindow;

/// How many segments the search for the newest commit reads before it gives up.
pub const MAX_COMMIT_SCAN_SEGMENTS: usize = 64;

/// WAL page size; a record crossing into the next segment is finished page by page.
const WAL_PAGE: usize = 8192;

/// A stretch of WAL on one timeline, `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalRange {
    /// The timeline holding it.
    pub timeline: TimelineId,
    /// Its first byte.
    pub from: Lsn,
    /// Just past its last byte.
    pub to: Lsn,
}

/// The span of time a restore can reach, and what it rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The earliest reachable time: the oldest restorable backup's `end_time`.
    pub start: Timestamp,
    /// The latest reachable time: the newest durable commit's `xact_time` (at least `start`).
    pub end: Timestamp,
    /// Where the oldest restorable backup becomes consistent (its `end_lsn`).
    pub start_lsn: Lsn,
    /// The oldest restorable backup.
    pub backup: BackupId,
    /// The timeline the window ends on: the newest one holding WAL.
    pub timeline: TimelineId,
}

impl Window {
    /// The earliest and latest time the window reaches.
    pub fn times(&self) -> TimeWindow {
        TimeWindow {
            start: self.start,
            end: self.end,
        }
    }
}

/// Everything `logship list` shows for one source, and what restore planning starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSummary {
    /// The source's name.
    pub name: SourceName,
    /// The kind of server, e.g. `postgres`.
    pub kind: &'static str,
    /// The server's system identifier.
    pub system_id: u64,
    /// The server's WAL segment size.
    pub wal_seg_size: WalSegSize,
    /// Complete backups, oldest start first.
    pub backups: Vec<BackupMeta>,
    /// Archived WAL, one range per timeline, oldest timeline first.
    pub archive: Vec<WalRange>,
    /// Holes inside the archived ranges.
    pub gaps: Vec<WalRange>,
    /// Per timeline holding WAL: the lowest LSN from which its archived WAL replays without a hole.
    pub replayable: BTreeMap<TimelineId, Lsn>,
    /// The restorable window; `None` without a restorable backup.
    pub window: Option<Window>,
    /// The newest durable commit: where it ends, and its `xact_time`.
    pub newest_commit: Option<(Lsn, Timestamp)>,
}

impl SourceSummary {
    /// Where the archived WAL of `tli` ends, if it holds any.
    pub fn archived_end(&self, tli: TimelineId) -> Option<Lsn> {
        self.archive
            .iter()
            .find(|range| range.timeline == tli)
            .map(|range| range.to)
    }

    /// The newest timeline holding WAL.
    pub fn newest_timeline(&self) -> Option<TimelineId> {
        self.archive.last().map(|range| range.timeline)
    }
}

/// A source's summary with the timeline histories it was computed from.
#[derive(Debug, Clone)]
pub struct LoadedSource {
    /// What the store holds and what a restore can reach.
    pub summary: SourceSummary,
    /// The parsed `.history` of every timeline holding WAL that has one.
    pub histories: BTreeMap<TimelineId, TimelineHistory>,
    /// The transaction of the newest durable commit (`summary.newest_commit`), which a
    /// recovery that must stop right after that commit targets.
    pub newest_commit_xid: Option<u32>,
    /// The last complete record of the durable WAL along the newest timeline's history: no
    /// archived record starts after it for a recovery to stop at.
    pub last_record: Option<RecordSpan>,
}

/// Where one WAL record lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSpan {
    /// Where it starts (PostgreSQL's `ReadRecPtr`).
    pub start: Lsn,
    /// Where the next record may start (`EndRecPtr`).
    pub end: Lsn,
}

/// Why a source's summary could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(
        "store {store} holds no archive for source {source_name:?} (check --source and the store URL)"
    )]
    NoArchive { store: String, source_name: String },
    #[error("source {source_name:?} is a {kind} archive, not a PostgreSQL one")]
    NotPostgres {
        source_name: String,
        kind: &'static str,
    },
    /// A history file or backup meta that cannot be used, with the fix for that object.
    #[error("{}", .read.with_fix(.fix))]
    Damaged { read: ReadError, fix: &'static str },
    #[error("object {key} describes backup {found}, not {id} (move it to {found_key})")]
    MisplacedMeta {
        key: String,
        id: BackupId,
        found: BackupId,
        found_key: String,
    },
}

/// What a summary reads besides WAL, for the fix that a damaged object calls for.
#[derive(Clone, Copy)]
enum Held {
    History,
    Meta,
}

impl Held {
    fn fix(self) -> &'static str {
        match self {
            Held::History => "recover it from a replica of the store",
            Held::Meta => {
                "recover it from a replica of the store, or delete it to drop that backup"
            }
        }
    }

    /// Why the object at `key` cannot be used; `newer` when a newer logship wrote it.
    fn damaged(self, key: &str, reason: impl std::fmt::Display, newer: bool) -> WindowError {
        self.unreadable(ReadError::damaged(key, reason, newer))
    }

    fn unreadable(self, read: ReadError) -> WindowError {
        WindowError::Damaged {
            read,
            fix: self.fix(),
        }
    }

    /// Reads and verifies the object at `key`; `None` when it does not exist.
    async fn read(self, store: &dyn Store, key: &str) -> Result<Option<Vec<u8>>, WindowError> {
        read_object(store, key).await.map_err(|err| match err {
            ReadError::Store(err) => WindowError::Store(err),
            damaged => self.unreadable(damaged),
        })
    }
}

/// Reads everything under `source` that a restore depends on, and summarizes it.
pub async fn load_source(
    store: &dyn Store,
    source: &SourceName,
) -> Result<LoadedSource, WindowError> {
    let Some(identity) = read_identity(store, source).await? else {
        return Err(WindowError::NoArchive {
            store: store.url().to_owned(),
            source_name: source.to_string(),
        });
    };
    let SourceIdentity::Postgres {
        system_id,
        wal_seg_size: seg,
    } = identity
    else {
        return Err(WindowError::NotPostgres {
            source_name: source.to_string(),
            kind: identity.kind(),
        });
    };
    let catalog = WalCatalog::load(store, source, seg).await?;
    let coverage = Coverage::from_catalog(&catalog, seg);
    let histories = load_histories(store, source, seg, &catalog).await?;
    let backups = load_backups(store, source).await?;
    let tail = match coverage.newest_timeline() {
        Some(newest) => {
            let path = timeline_path(histories.get(&newest), newest);
            wal_tail(store, source, &coverage, &path).await?
        }
        None => Tail::default(),
    };
    let summary = summarize(
        source.clone(),
        identity.kind(),
        system_id,
        &coverage,
        &histories,
        backups,
        tail.newest_commit
            .map(|(commit, time)| (commit.end_lsn, time)),
    );
    Ok(LoadedSource {
        summary,
        histories,
        newest_commit_xid: tail.newest_commit.map(|(commit, _)| commit.xid),
        last_record: tail.last_record,
    })
}

/// Whether `backup` lies on the history of `tli` (`history` is `tli`'s, if it has one):
/// taken on `tli`, or on an ancestor that it finished before that ancestor's switchpoint.
pub fn on_history(history: Option<&TimelineHistory>, tli: TimelineId, backup: &BackupMeta) -> bool {
    if backup.timeline == tli {
        return true;
    }
    history
        .and_then(|h| h.switchpoint(backup.timeline))
        .is_some_and(|switchpoint| backup.end_lsn < switchpoint)
}

async fn load_histories(
    store: &dyn Store,
    source: &SourceName,
    seg: WalSegSize,
    catalog: &WalCatalog,
) -> Result<BTreeMap<TimelineId, TimelineHistory>, WindowError> {
    let mut histories = BTreeMap::new();
    for tli in catalog.timelines().filter(|&tli| catalog.has_history(tli)) {
        let key = WalKey::History(tli).format(source, seg);
        let Some(content) = Held::History.read(store, &key).await? else {
            continue;
        };
        let history = TimelineHistory::parse(tli, &content)
            .map_err(|err| Held::History.damaged(&key, err, false))?;
        histories.insert(tli, history);
    }
    Ok(histories)
}

async fn load_backups(
    store: &dyn Store,
    source: &SourceName,
) -> Result<Vec<BackupMeta>, WindowError> {
    let mut backups = Vec::new();
    for object in store.list(&key::backups_prefix(source)).await? {
        let Ok((_, ArchiveKey::BackupMeta { id })) = ArchiveKey::parse(&object.key) else {
            continue;
        };
        // Listed a moment ago: a meta gone now was pruned in between.
        let Some(content) = Held::Meta.read(store, &object.key).await? else {
            continue;
        };
        let meta = BackupMeta::from_json(&content)
            .map_err(|err| Held::Meta.damaged(&object.key, &err, err.is_unsupported()))?;
        if meta.id != id {
            return Err(WindowError::MisplacedMeta {
                key: object.key,
                id,
                found: meta.id,
                found_key: ArchiveKey::BackupMeta { id: meta.id }.format(source),
            });
        }
        backups.push(meta);
    }
    backups.sort_by_key(|meta| meta.id);
    Ok(backups)
}

/// Durable bytes per segment, per timeline: what a replay can read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Coverage {
    seg: WalSegSize,
    /// Segments with at least one durable byte, with how many bytes from their start.
    timelines: BTreeMap<TimelineId, BTreeMap<SegmentNo, u64>>,
}

impl Coverage {
    fn from_catalog(catalog: &WalCatalog, seg: WalSegSize) -> Coverage {
        let timelines = catalog
            .timelines()
            .map(|tli| {
                let segments = catalog
                    .segments(tli)
                    .map(|(segno, objects)| (segno, objects.durable_len(seg)))
                    .filter(|&(_, len)| len > 0)
                    .collect::<BTreeMap<_, _>>();
                (tli, segments)
            })
            .filter(|(_, segments)| !segments.is_empty())
            .collect();
        Coverage { seg, timelines }
    }

    fn durable(&self, tli: TimelineId, segno: SegmentNo) -> u64 {
        self.timelines
            .get(&tli)
            .and_then(|segments| segments.get(&segno))
            .copied()
            .unwrap_or(0)
    }

    fn newest_timeline(&self) -> Option<TimelineId> {
        self.timelines.keys().next_back().copied()
    }

    /// Where the archived WAL of `tli` ends.
    fn end(&self, tli: TimelineId) -> Option<Lsn> {
        let (&segno, &len) = self.timelines.get(&tli)?.iter().next_back()?;
        segno.start_lsn(self.seg).checked_add(len)
    }

    /// The archived range and the gaps of every timeline.
    fn ranges(&self) -> (Vec<WalRange>, Vec<WalRange>) {
        let mut archive = Vec::new();
        let mut gaps = Vec::new();
        for (&timeline, segments) in &self.timelines {
            let mut range: Option<WalRange> = None;
            for (&segno, &len) in segments {
                let from = segno.start_lsn(self.seg);
                let to = Lsn::new(from.as_u64().saturating_add(len));
                match range.as_mut() {
                    None => range = Some(WalRange { timeline, from, to }),
                    Some(range) => {
                        if range.to < from {
                            gaps.push(WalRange {
                                timeline,
                                from: range.to,
                                to: from,
                            });
                        }
                        range.to = to;
                    }
                }
            }
            archive.extend(range);
        }
        (archive, gaps)
    }

    /// The lowest segment start from which the WAL along `path` replays without a hole
    /// up to the archived end of its last timeline.
    fn replayable_from(&self, path: &[PathStep]) -> Option<Lsn> {
        let newest = path.last()?;
        let end = self.end(newest.tli)?;
        let mut segno = Lsn::new(end.as_u64().checked_sub(1)?).segment_no(self.seg);
        let mut from = None;
        while self.segment_replays(path, segno, end) {
            from = Some(segno.start_lsn(self.seg));
            let Some(previous) = segno.as_u64().checked_sub(1) else {
                break;
            };
            segno = SegmentNo::new(previous);
        }
        from
    }

    /// Whether replay finds, in the file PostgreSQL would pick for `segno`, every byte it
    /// needs from that segment on the way to `end`.
    fn segment_replays(&self, path: &[PathStep], segno: SegmentNo, end: Lsn) -> bool {
        let needed_end = end.min(segno.end_lsn(self.seg));
        let picked = path.iter().rev().find(|step| {
            step.begin.segment_no(self.seg) <= segno && self.durable(step.tli, segno) > 0
        });
        picked.is_some_and(|step| {
            let held = segno
                .start_lsn(self.seg)
                .checked_add(self.durable(step.tli, segno));
            step.end.is_none_or(|switch| needed_end <= switch)
                && held.is_some_and(|held| needed_end <= held)
        })
    }
}

/// One timeline on the history of another: the WAL it contributes is `[begin, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PathStep {
    tli: TimelineId,
    begin: Lsn,
    /// The switchpoint to the next timeline; `None` for the last.
    end: Option<Lsn>,
}

/// The timelines whose WAL a replay up to `tli` reads, oldest first. Without a history,
/// `tli` is taken to be where WAL began.
fn timeline_path(history: Option<&TimelineHistory>, tli: TimelineId) -> Vec<PathStep> {
    let mut path = Vec::new();
    let mut begin = Lsn::INVALID;
    for entry in history.map(TimelineHistory::entries).unwrap_or_default() {
        path.push(PathStep {
            tli: entry.tli,
            begin,
            end: Some(entry.switchpoint),
        });
        begin = entry.switchpoint;
    }
    path.push(PathStep {
        tli,
        begin,
        end: None,
    });
    path
}

/// Puts the summary together from what was read.
fn summarize(
    name: SourceName,
    kind: &'static str,
    system_id: u64,
    coverage: &Coverage,
    histories: &BTreeMap<TimelineId, TimelineHistory>,
    backups: Vec<BackupMeta>,
    newest_commit: Option<(Lsn, Timestamp)>,
) -> SourceSummary {
    let (archive, gaps) = coverage.ranges();
    let replayable: BTreeMap<TimelineId, Lsn> = coverage
        .timelines
        .keys()
        .filter_map(|&tli| {
            let path = timeline_path(histories.get(&tli), tli);
            Some((tli, coverage.replayable_from(&path)?))
        })
        .collect();
    let window = coverage.newest_timeline().and_then(|newest| {
        let from = *replayable.get(&newest)?;
        let end = coverage.end(newest)?;
        let history = histories.get(&newest);
        let oldest = backups
            .iter()
            .filter(|b| on_history(history, newest, b) && b.start_lsn >= from && b.end_lsn <= end)
            .min_by_key(|b| (b.end_time, b.id))?;
        let commit_time = newest_commit.map(|(_, time)| time);
        Some(Window {
            start: oldest.end_time,
            end: commit_time.map_or(oldest.end_time, |time| time.max(oldest.end_time)),
            start_lsn: oldest.end_lsn,
            backup: oldest.id,
            timeline: newest,
        })
    });
    SourceSummary {
        name,
        kind,
        system_id,
        wal_seg_size: coverage.seg,
        backups,
        archive,
        gaps,
        replayable,
        window,
        newest_commit,
    }
}

/// What the end of the durable WAL along a timeline's history holds.
#[derive(Debug, Default)]
struct Tail {
    /// The last complete record.
    last_record: Option<RecordSpan>,
    /// The newest commit, with its time.
    newest_commit: Option<(XactEvent, Timestamp)>,
}

/// The last record and the newest commit in durable WAL along `path`, searched backwards
/// from its end. A damaged object ends the WAL that replay can read, as a record that fails
/// to decode does: the search goes on before it.
async fn wal_tail(
    store: &dyn Store,
    source: &SourceName,
    coverage: &Coverage,
    path: &[PathStep],
) -> Result<Tail, WindowError> {
    let seg = coverage.seg;
    let mut tail = Tail::default();
    let mut budget = MAX_COMMIT_SCAN_SEGMENTS;
    for step in path.iter().rev() {
        let first = step.begin.segment_no(seg);
        let last = step
            .end
            .and_then(|end| end.as_u64().checked_sub(1))
            .map(|last| Lsn::new(last).segment_no(seg));
        let Some(segments) = coverage.timelines.get(&step.tli) else {
            continue;
        };
        // The segment after the one being read, when it is the next on this timeline.
        let mut later: Option<(SegmentNo, Vec<u8>)> = None;
        for (&segno, &len) in segments.range(first..).rev() {
            if last.is_some_and(|last| segno > last) {
                continue;
            }
            if budget == 0 {
                return Ok(tail);
            }
            budget -= 1;
            let mut wal = match read_segment(store, source, seg, step.tli, segno).await {
                Ok(Some(wal)) => wal,
                Ok(None) => {
                    later = None;
                    continue;
                }
                Err(FetchError::Read(ReadError::Corrupt { key, reason })) => {
                    tracing::warn!(%key, %reason, "archived WAL is damaged here, so the window ends before it (recover the object from a replica of the store)");
                    later = None;
                    continue;
                }
                Err(err) => return Err(err.into()),
            };
            // The rest is read_segment's zero padding.
            wal.truncate(usize::try_from(len).unwrap_or(usize::MAX));
            let next = later
                .as_ref()
                .filter(|(next, _)| *next == segno.next())
                .map(|(_, bytes)| bytes.as_slice());
            let found = segment_tail(segno.start_lsn(seg), seg, &wal, next, step.end);
            // Searched backwards: the first record found is the last one.
            tail.last_record = tail.last_record.or(found.record);
            if let Some(commit) = found.commit
                && let Some(time) = timefmt::from_pg(commit.xact_time)
            {
                tail.newest_commit = Some((commit, time));
                return Ok(tail);
            }
            later = Some((segno, wal));
        }
    }
    Ok(tail)
}

/// The last record and the last commit starting in one segment.
#[derive(Debug, Default)]
struct Found {
    record: Option<RecordSpan>,
    commit: Option<XactEvent>,
}

/// The last record and the last commit starting in the segment at `start` (whose durable
/// bytes are `wal`), each ending at or before `until`. `next`, the following segment's
/// bytes, is read only as far as needed to finish a record crossing into it.
fn segment_tail(
    start: Lsn,
    seg: WalSegSize,
    wal: &[u8],
    next: Option<&[u8]>,
    until: Option<Lsn>,
) -> Found {
    let mut found = Found::default();
    let Some(boundary) = start.checked_add(seg.bytes()) else {
        return found;
    };
    let mut reader = WalRecordReader::new(start, seg);
    reader.feed(wal);
    let mut done = drain(&mut reader, boundary, until, &mut found);
    for page in next.unwrap_or_default().chunks(WAL_PAGE) {
        if done {
            break;
        }
        reader.feed(page);
        done = drain(&mut reader, boundary, until, &mut found);
    }
    found
}

/// Takes every record the reader has, keeping the last qualifying record and commit in
/// `found`. Returns whether reading further cannot find another.
fn drain(
    reader: &mut WalRecordReader,
    boundary: Lsn,
    until: Option<Lsn>,
    found: &mut Found,
) -> bool {
    loop {
        match reader.next_record() {
            Ok(Some(record)) => {
                if record.lsn >= boundary {
                    return true;
                }
                if until.is_some_and(|until| record.end_lsn > until) {
                    continue;
                }
                found.record = Some(RecordSpan {
                    start: record.lsn,
                    end: record.end_lsn,
                });
                if let Some(event) = xact_event(&record)
                    && matches!(event.kind, XactKind::Commit | XactKind::CommitPrepared)
                {
                    found.commit = Some(event);
                }
            }
            Ok(None) => return reader.end_of_wal().is_some(),
            Err(err) => {
                tracing::warn!(%err, "archived WAL stops being readable here, as it would for PostgreSQL's replay, so the window ends before it");
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{backup_meta, lsn, tli, ts};
    use logship_protocol::archive::object::{self, Codec};

    const MIB: u64 = 1 << 20;

    fn seg() -> WalSegSize {
        WalSegSize::new(MIB).unwrap()
    }

    /// Coverage from `(timeline, segment, durable bytes)`.
    fn coverage(segments: &[(u32, u64, u64)]) -> Coverage {
        let mut timelines: BTreeMap<TimelineId, BTreeMap<SegmentNo, u64>> = BTreeMap::new();
        for &(t, s, len) in segments {
            timelines
                .entry(tli(t))
                .or_default()
                .insert(SegmentNo::new(s), len);
        }
        Coverage {
            seg: seg(),
            timelines,
        }
    }

    fn history(t: u32, content: &str) -> TimelineHistory {
        TimelineHistory::parse(tli(t), content.as_bytes()).unwrap()
    }

    fn summary_of(
        cov: &Coverage,
        histories: &[TimelineHistory],
        backups: Vec<BackupMeta>,
        commit: Option<(&str, &str)>,
    ) -> SourceSummary {
        let histories = histories.iter().map(|h| (h.tli(), h.clone())).collect();
        summarize(
            SourceName::new("main").unwrap(),
            "postgres",
            7,
            cov,
            &histories,
            backups,
            commit.map(|(l, t)| (lsn(l), ts(t))),
        )
    }

    fn range(t: u32, from: &str, to: &str) -> WalRange {
        WalRange {
            timeline: tli(t),
            from: lsn(from),
            to: lsn(to),
        }
    }

    #[test]
    fn ranges_and_gaps_per_timeline() {
        // Timeline 1: segments 3, 4 and 7 (a gap of 5 and 6), 8 held up to 0x158000 only
        // (the switch to timeline 2), and timeline 2 from 8 on.
        let cov = coverage(&[
            (1, 3, MIB),
            (1, 4, MIB),
            (1, 7, MIB),
            (1, 8, 0x5_8000),
            (2, 8, MIB),
            (2, 9, 0x2000),
        ]);
        let (archive, gaps) = cov.ranges();
        assert_eq!(
            archive,
            [
                range(1, "0/300000", "0/858000"),
                range(2, "0/800000", "0/902000")
            ]
        );
        assert_eq!(gaps, [range(1, "0/500000", "0/700000")]);

        // A middle segment held only in part is a gap from where it stops.
        let cov = coverage(&[(1, 3, 0x1000), (1, 4, MIB)]);
        assert_eq!(cov.ranges().1, [range(1, "0/301000", "0/400000")]);
    }

    #[test]
    fn no_backup_means_no_window() {
        let cov = coverage(&[(1, 3, MIB), (1, 4, 0x100)]);
        let summary = summary_of(
            &cov,
            &[],
            vec![],
            Some(("0/400080", "2026-11-21T10:30:00Z")),
        );
        assert_eq!(summary.window, None);
        assert_eq!(summary.replayable.get(&tli(1)), Some(&lsn("0/300000")));
        assert_eq!(summary.newest_timeline(), Some(tli(1)));
        assert_eq!(summary.archived_end(tli(1)), Some(lsn("0/400100")));
        assert_eq!(summary.archived_end(tli(2)), None);
    }

    #[test]
    fn window_starts_at_the_oldest_backup_with_wal_to_the_end() {
        let cov = coverage(&[(1, 3, MIB), (1, 4, MIB), (1, 6, MIB), (1, 7, 0x4000)]);
        let backups = vec![
            // Before the gap at segment 5: not restorable.
            backup_meta(1, "0/300028", "0/300100", "2026-11-21T10:00:00Z"),
            backup_meta(1, "0/600028", "0/600100", "2026-11-21T10:10:00Z"),
            backup_meta(1, "0/700028", "0/700100", "2026-11-21T10:20:00Z"),
        ];
        let summary = summary_of(
            &cov,
            &[],
            backups,
            Some(("0/703000", "2026-11-21T10:30:12.5Z")),
        );
        assert_eq!(summary.gaps, [range(1, "0/500000", "0/600000")]);
        assert_eq!(summary.replayable.get(&tli(1)), Some(&lsn("0/600000")));
        assert_eq!(
            summary.window,
            Some(Window {
                start: ts("2026-11-21T10:10:00Z"),
                end: ts("2026-11-21T10:30:12.5Z"),
                start_lsn: lsn("0/600100"),
                backup: BackupId::new(tli(1), lsn("0/600028")),
                timeline: tli(1),
            })
        );
    }

    #[test]
    fn a_backup_whose_end_is_not_archived_yet_does_not_count() {
        let cov = coverage(&[(1, 3, MIB), (1, 4, 0x100)]);
        let backups = vec![backup_meta(
            1,
            "0/400028",
            "0/400200",
            "2026-11-21T10:00:00Z",
        )];
        let summary = summary_of(&cov, &[], backups, None);
        assert_eq!(summary.window, None);
    }

    #[test]
    fn window_end_is_never_before_its_start() {
        let cov = coverage(&[(1, 3, MIB)]);
        let backups = vec![backup_meta(
            1,
            "0/300028",
            "0/300100",
            "2026-11-21T10:00:00Z",
        )];
        let old_commit = Some(("0/300080", "2026-11-21T09:59:59Z"));
        let summary = summary_of(&cov, &[], backups.clone(), old_commit);
        let window = summary.window.unwrap();
        assert_eq!(
            (window.start, window.end),
            (ts("2026-11-21T10:00:00Z"), ts("2026-11-21T10:00:00Z"))
        );
        let window = summary_of(&cov, &[], backups, None).window.unwrap();
        assert_eq!(window.end, window.start);
    }

    #[test]
    fn window_follows_the_newest_timelines_history() {
        // Timeline 2 branched from 1 at 0/858000; timeline 3 from 1 at 0/600000 is another
        // branch, but the newest timeline is 4, from 2 at 0/A00000.
        let h2 = history(2, "1\t0/858000\tpromoted\n");
        let h4 = history(4, "1\t0/858000\tpromoted\n2\t0/A00000\tpromoted\n");
        let cov = coverage(&[
            (1, 7, MIB),
            (1, 8, 0x5_8000),
            (2, 8, MIB),
            (2, 9, MIB),
            (2, 0xA, 0x100),
            (4, 0xA, MIB),
            (4, 0xB, 0x100),
        ]);
        let backups = vec![
            backup_meta(1, "0/700028", "0/700100", "2026-11-21T10:00:00Z"),
            // Ends after timeline 1's switchpoint: from a branch not on the history.
            backup_meta(1, "0/800028", "0/900000", "2026-11-21T10:01:00Z"),
            backup_meta(3, "0/900028", "0/900100", "2026-11-21T09:00:00Z"),
        ];
        let summary = summary_of(
            &cov,
            &[h2, h4],
            backups,
            Some(("0/B00080", "2026-11-21T11:00:00Z")),
        );
        assert_eq!(summary.replayable.get(&tli(4)), Some(&lsn("0/700000")));
        assert_eq!(summary.replayable.get(&tli(2)), Some(&lsn("0/700000")));
        let window = summary.window.unwrap();
        assert_eq!(window.backup, BackupId::new(tli(1), lsn("0/700028")));
        assert_eq!(window.timeline, tli(4));
        assert_eq!(window.end, ts("2026-11-21T11:00:00Z"));
    }

    #[test]
    fn replay_reads_the_switch_segment_from_the_newer_timeline() {
        let h2 = history(2, "1\t0/858000\tpromoted\n");
        // Timeline 1's part of segment 8 is missing, but timeline 2's copy holds it.
        let cov = coverage(&[(1, 7, MIB), (2, 8, MIB), (2, 9, 0x100)]);
        assert_eq!(
            cov.replayable_from(&timeline_path(Some(&h2), tli(2))),
            Some(lsn("0/700000"))
        );
        // Timeline 2's copy is missing: timeline 1's file ends at the switchpoint, and
        // replay needs the rest of segment 8 from timeline 2.
        let cov = coverage(&[(1, 7, MIB), (1, 8, 0x5_8000), (2, 9, 0x100)]);
        assert_eq!(
            cov.replayable_from(&timeline_path(Some(&h2), tli(2))),
            Some(lsn("0/900000"))
        );
        // An ancestor's file past its switchpoint is another history: never read.
        let cov = coverage(&[(1, 8, MIB), (1, 9, MIB), (2, 9, 0x100)]);
        assert_eq!(
            cov.replayable_from(&timeline_path(Some(&h2), tli(2))),
            Some(lsn("0/900000"))
        );
        // A timeline without its history file is replayed on its own.
        let cov = coverage(&[(1, 7, MIB), (2, 8, MIB), (2, 9, 0x100)]);
        assert_eq!(
            cov.replayable_from(&timeline_path(None, tli(2))),
            Some(lsn("0/800000"))
        );
    }

    #[test]
    fn backups_on_the_history() {
        let h = history(3, "1\t0/858000\tx\n2\t0/A00000\ty\n");
        let b = |t: u32, end: &str| backup_meta(t, "0/700028", end, "2026-11-21T10:00:00Z");
        assert!(on_history(Some(&h), tli(3), &b(3, "0/B00000")));
        assert!(on_history(Some(&h), tli(3), &b(1, "0/857FFF")));
        assert!(!on_history(Some(&h), tli(3), &b(1, "0/858000")));
        assert!(on_history(Some(&h), tli(3), &b(2, "0/900000")));
        assert!(!on_history(Some(&h), tli(3), &b(4, "0/900000")));
        assert!(!on_history(None, tli(3), &b(1, "0/700100")));
    }

    async fn put(store: &dyn Store, key: &str, content: &[u8]) {
        store
            .put(key, object::encode(content, Codec::None).into())
            .await
            .unwrap();
    }

    async fn store_with_identity() -> (tempfile::TempDir, crate::store::fs::FsStore, SourceName) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::fs::FsStore::new(dir.path()).unwrap();
        let source = SourceName::new("main").unwrap();
        let identity = SourceIdentity::Postgres {
            system_id: 7,
            wal_seg_size: seg(),
        };
        crate::identity::record_identity(&store, &source, &identity)
            .await
            .unwrap();
        (dir, store, source)
    }

    #[tokio::test]
    async fn loads_backups_with_meta_only_and_refuses_a_corrupt_meta() {
        let (_dir, store, source) = store_with_identity().await;
        let done = backup_meta(1, "0/300028", "0/300100", "2026-11-21T10:00:00Z");
        let unfinished = backup_meta(1, "0/500028", "0/500100", "2026-11-21T10:10:00Z");
        let meta_key = |b: &BackupMeta| ArchiveKey::BackupMeta { id: b.id }.format(&source);
        put(&store, &meta_key(&done), &done.to_json()).await;
        let chunk = ArchiveKey::BackupChunk {
            id: unfinished.id,
            tablespace: 0,
            chunk: 0,
        };
        put(&store, &chunk.format(&source), b"tar").await;
        put(
            &store,
            &WalKey::History(tli(2)).format(&source, seg()),
            b"1\t0/300000\tx\n",
        )
        .await;

        let loaded = load_source(&store, &source).await.unwrap();
        assert_eq!(loaded.summary.backups, std::slice::from_ref(&done));
        assert_eq!(loaded.summary.kind, "postgres");
        assert_eq!(loaded.summary.system_id, 7);
        // No WAL yet: nothing archived, no window, and no history loaded for a timeline
        // without WAL.
        assert!(loaded.summary.archive.is_empty());
        assert_eq!(loaded.summary.window, None);
        assert!(loaded.histories.is_empty());

        let key = meta_key(&unfinished);
        let refusal = || async { load_source(&store, &source).await.unwrap_err().to_string() };
        put(&store, &key, b"{\"format\": 1}").await;
        assert_eq!(
            refusal().await,
            format!(
                "object {key} is corrupt: backup meta is not valid: missing field `id` (recover it from a replica of the store, or delete it to drop that backup)"
            )
        );

        // Regression: a damaged meta object carried the decoder's fix ("archive it again
        // from the source") and no fix of the listing's own.
        let mut damaged = object::encode(&unfinished.to_json(), Codec::None);
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        let (expected, actual) = (
            crc32fast::hash(&unfinished.to_json()),
            crc32fast::hash(&damaged[object::HEADER_LEN..]),
        );
        store.put(&key, damaged.into()).await.unwrap();
        assert_eq!(
            refusal().await,
            format!(
                "object {key} is corrupt: object payload checksum mismatch: expected {expected:08X}, computed {actual:08X} (recover it from a replica of the store, or delete it to drop that backup)"
            )
        );

        // A meta from a newer logship.
        put(&store, &key, b"{\"format\": 2}").await;
        assert_eq!(
            refusal().await,
            format!(
                "object {key} was written by a newer logship: backup meta has format 2 but this logship reads format 1 (upgrade logship)"
            )
        );

        // A meta stored under another backup's id.
        put(&store, &key, &done.to_json()).await;
        assert_eq!(
            refusal().await,
            format!(
                "object {key} describes backup 000000010000000000300028, not 000000010000000000500028 (move it to {})",
                meta_key(&done)
            )
        );
    }

    #[tokio::test]
    async fn a_source_without_identity_has_no_archive() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::fs::FsStore::new(dir.path()).unwrap();
        let err = load_source(&store, &SourceName::new("other").unwrap())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "store {} holds no archive for source \"other\" (check --source and the store URL)",
                store.url()
            )
        );
    }

    #[tokio::test]
    async fn a_corrupt_history_names_its_key() {
        let (_dir, store, source) = store_with_identity().await;
        let key = WalKey::History(tli(2)).format(&source, seg());
        put(&store, &key, b"1\tnot-an-lsn\tx\n").await;
        let segment = WalKey::Segment {
            tli: tli(2),
            segno: SegmentNo::new(3),
        };
        put(
            &store,
            &segment.format(&source, seg()),
            &vec![0; MIB as usize],
        )
        .await;
        let refusal = || async { load_source(&store, &source).await.unwrap_err().to_string() };
        assert_eq!(
            refusal().await,
            format!(
                "object {key} is corrupt: history file of timeline 2, line 1: expected a switchpoint such as 0/3000158 after the timeline ID (recover it from a replica of the store)"
            )
        );

        let mut damaged = object::encode(b"1\t0/300000\tx\n", Codec::None);
        damaged[object::HEADER_LEN] ^= 1;
        let (expected, actual) = (
            crc32fast::hash(b"1\t0/300000\tx\n"),
            crc32fast::hash(&damaged[object::HEADER_LEN..]),
        );
        store.put(&key, damaged.into()).await.unwrap();
        assert_eq!(
            refusal().await,
            format!(
                "object {key} is corrupt: object payload checksum mismatch: expected {expected:08X}, computed {actual:08X} (recover it from a replica of the store)"
            )
        );
    }
}
