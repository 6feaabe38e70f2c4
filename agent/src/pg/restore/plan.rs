//! Restore planning, a pure function: a recovery target → the backup to restore, the
//! timeline to follow and the WAL to replay, or an error that shows what is reachable.
//!
//! The target is checked against the restorable window first (the window of the newest
//! timeline, as `logship list` shows it). Then the target timeline must hold archived WAL,
//! and an LSN target must lie within it. The backup is the newest one that ends at or
//! before the target (`end_time` for a time, `end_lsn` for an LSN; the newest for
//! `--latest`) among those on the target timeline's history whose WAL replays without a
//! hole up to the timeline's archived end.
//!
//! [`recovery_stop`] then says what PostgreSQL is told: the target itself, unless the
//! archived WAL ends before PostgreSQL would stop there (see there).

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use logship_protocol::archive::backup::BackupMeta;
use logship_protocol::pg::walrecord::next_record_start;
use logship_protocol::pg::{Lsn, TimelineHistory, TimelineId};

use crate::pg::window::{LoadedSource, SourceSummary, on_history};
use crate::window::TimeWindowError;

/// Where recovery stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryTarget {
    /// The last commit at or before this time (`recovery_target_time`).
    Time(Timestamp),
    /// This WAL position (`recovery_target_lsn`).
    Lsn(Lsn),
    /// The end of the archived WAL.
    Latest,
    /// Just after the commit of this transaction (`recovery_target_xid`).
    Xid(u32),
    /// Where the backup becomes consistent (`recovery_target = 'immediate'`).
    Immediate,
}

impl fmt::Display for RecoveryTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryTarget::Time(time) => write!(f, "target time {time}"),
            RecoveryTarget::Lsn(lsn) => write!(f, "target LSN {lsn}"),
            RecoveryTarget::Latest => f.write_str("the latest archived WAL"),
            RecoveryTarget::Xid(xid) => write!(f, "the commit of transaction {xid}"),
            RecoveryTarget::Immediate => f.write_str("the end of the backup"),
        }
    }
}

/// The timeline recovery follows (`recovery_target_timeline`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetTimeline {
    /// The newest timeline holding archived WAL.
    Latest,
    /// This timeline.
    Id(TimelineId),
}

/// What a restore fetches and replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorePlan {
    /// The base backup to restore.
    pub backup: BackupMeta,
    /// Where recovery stops.
    pub target: RecoveryTarget,
    /// The timeline recovery follows.
    pub timeline: TimelineId,
}

/// A target no restore can reach, each message showing what can be reached instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("no base backup of source \"{source_name}\" exists yet (take one with logship backup)")]
    NoBackup { source_name: String },
    #[error(
        "no base backup of source \"{source_name}\" can be restored yet: the archived WAL after each one has a gap or does not reach its end (take a new backup with logship backup, or wait for the WAL to be archived; see logship list)"
    )]
    NoWindow { source_name: String },
    #[error(transparent)]
    Time(#[from] TimeWindowError),
    #[error(
        "target LSN {target} is before the restorable window, which starts at LSN {start_lsn} ({start}) where the oldest restorable backup becomes consistent (pick a later LSN; see logship list)"
    )]
    LsnBeforeWindow {
        target: Lsn,
        start_lsn: Lsn,
        start: Timestamp,
    },
    #[error(
        "timeline {timeline} holds no archived WAL of source \"{source_name}\", which holds timelines {known} (pick one of those, or leave the timeline out to follow the newest)"
    )]
    UnknownTimeline {
        timeline: TimelineId,
        source_name: String,
        known: String,
    },
    #[error(
        "target LSN {target} is beyond the archived WAL of timeline {timeline}, which ends at {end} (pick an earlier LSN, or wait until the WAL is archived; see logship list)"
    )]
    LsnBeyondArchive {
        target: Lsn,
        timeline: TimelineId,
        end: Lsn,
    },
    #[error(
        "no restorable base backup of source \"{source_name}\" on the history of timeline {timeline} ends at or before {target} (pick a later target or another timeline; see logship list)"
    )]
    NoBackupBefore {
        source_name: String,
        timeline: TimelineId,
        target: RecoveryTarget,
    },
}

/// Picks the backup and the WAL that reach `target` on `timeline`.
pub fn plan(
    summary: &SourceSummary,
    histories: &BTreeMap<TimelineId, TimelineHistory>,
    target: RecoveryTarget,
    timeline: TargetTimeline,
) -> Result<RestorePlan, PlanError> {
    let source_name = || summary.name.to_string();
    if summary.backups.is_empty() {
        return Err(PlanError::NoBackup {
            source_name: source_name(),
        });
    }
    let window = summary.window.as_ref().ok_or_else(|| PlanError::NoWindow {
        source_name: source_name(),
    })?;
    match target {
        RecoveryTarget::Time(time) => window.times().check(time)?,
        RecoveryTarget::Lsn(lsn) if lsn < window.start_lsn => {
            return Err(PlanError::LsnBeforeWindow {
                target: lsn,
                start_lsn: window.start_lsn,
                start: window.start,
            });
        }
        _ => {}
    }
    let tli = match timeline {
        TargetTimeline::Latest => window.timeline,
        TargetTimeline::Id(tli) => tli,
    };
    let archived_end = summary
        .archived_end(tli)
        .ok_or_else(|| PlanError::UnknownTimeline {
            timeline: tli,
            source_name: source_name(),
            known: summary
                .archive
                .iter()
                .map(|range| range.timeline.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    // An LSN inside the page header that follows the archived end is the same point: no
    // record can start before it (`pg_current_wal_insert_lsn()` reports it after a record
    // that fills its page).
    if let RecoveryTarget::Lsn(lsn) = target
        && lsn > next_record_start(archived_end, summary.wal_seg_size)
    {
        return Err(PlanError::LsnBeyondArchive {
            target: lsn,
            timeline: tli,
            end: archived_end,
        });
    }
    let history = histories.get(&tli);
    let replayable = summary.replayable.get(&tli).copied();
    let restorable = summary.backups.iter().filter(|b| {
        on_history(history, tli, b)
            && replayable.is_some_and(|from| b.start_lsn >= from)
            && b.end_lsn <= archived_end
    });
    let backup = match target {
        RecoveryTarget::Time(time) => restorable
            .filter(|b| b.end_time <= time)
            .max_by_key(|b| (b.end_time, b.id)),
        RecoveryTarget::Lsn(lsn) => restorable
            .filter(|b| b.end_lsn <= lsn)
            .max_by_key(|b| (b.end_lsn, b.id)),
        // As pgBackRest does, the newest backup, for targets with no time or position.
        RecoveryTarget::Latest | RecoveryTarget::Xid(_) | RecoveryTarget::Immediate => {
            restorable.max_by_key(|b| (b.end_lsn, b.id))
        }
    }
    .ok_or_else(|| PlanError::NoBackupBefore {
        source_name: source_name(),
        timeline: tli,
        target,
    })?;
    Ok(RestorePlan {
        backup: backup.clone(),
        target,
        timeline: tli,
    })
}

/// What PostgreSQL is told to stop at to reach `plan`'s target in the archive `loaded`
/// describes: the target itself, unless the archived WAL ends before PostgreSQL would stop.
///
/// PostgreSQL stops at a time only on reading the first commit after it, and at an LSN only
/// after applying the first record that starts at or after it (`recovery_target_inclusive`).
/// When the archived WAL ends first, recovery fails with "recovery ended before configured
/// recovery target was reached", although the state asked for is all archived. So:
/// - A time that no archived commit follows (the window's end, when the newest commit is the
///   last thing archived) becomes the newest commit's transaction, which recovery stops
///   right after.
/// - An LSN past the start of the last complete archived record becomes that record's
///   start, and recovery stops right after applying it: every complete record that starts
///   before the LSN is applied, and nothing after (a record the archive holds only in part
///   cannot be applied by any recovery). When that record is the newest commit, its
///   transaction is told instead: the same stop, and PostgreSQL then reports that commit's
///   time, which it does not for a commit it stops at by LSN.
/// - With no commit (for a time) or no record (for an LSN) after the backup's end, either
///   becomes the end of the backup.
///
/// Each reaches the state the target names. The archive's end is searched along the window's
/// timeline only, so a target on another timeline is left as it is.
pub fn recovery_stop(plan: &RestorePlan, loaded: &LoadedSource) -> RecoveryTarget {
    let summary = &loaded.summary;
    if summary.window.as_ref().map(|w| w.timeline) != Some(plan.timeline) {
        return plan.target;
    }
    let after_backup = |end: Lsn| end > plan.backup.end_lsn;
    match plan.target {
        RecoveryTarget::Time(time) => {
            let Some((_, commit_time)) =
                summary.newest_commit.filter(|(end, _)| after_backup(*end))
            else {
                return RecoveryTarget::Immediate;
            };
            match loaded.newest_commit_xid {
                Some(xid) if time >= commit_time => RecoveryTarget::Xid(xid),
                _ => plan.target,
            }
        }
        RecoveryTarget::Lsn(lsn) => {
            let Some(last) = loaded.last_record.filter(|last| lsn > last.start) else {
                return plan.target;
            };
            if !after_backup(last.end) {
                return RecoveryTarget::Immediate;
            }
            match (summary.newest_commit, loaded.newest_commit_xid) {
                (Some((commit_end, _)), Some(xid)) if commit_end == last.end => {
                    RecoveryTarget::Xid(xid)
                }
                _ => RecoveryTarget::Lsn(last.start),
            }
        }
        RecoveryTarget::Latest | RecoveryTarget::Xid(_) | RecoveryTarget::Immediate => plan.target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::window::{RecordSpan, WalRange, Window};
    use crate::testutil::{backup_meta, lsn, tli, ts};
    use logship_protocol::archive::key::SourceName;
    use logship_protocol::pg::WalSegSize;

    fn range(t: u32, from: &str, to: &str) -> WalRange {
        WalRange {
            timeline: tli(t),
            from: lsn(from),
            to: lsn(to),
        }
    }

    /// One timeline, WAL 0/1000000 .. 0/9000000, backups at 10:00, 10:10 and 10:20, the
    /// newest commit at 10:30:12.5.
    fn summary() -> SourceSummary {
        let backups = vec![
            backup_meta(1, "0/1000028", "0/1000100", "2026-11-21T10:00:00Z"),
            backup_meta(1, "0/3000028", "0/3000100", "2026-11-21T10:10:00Z"),
            backup_meta(1, "0/5000028", "0/5000100", "2026-11-21T10:20:00Z"),
        ];
        SourceSummary {
            name: SourceName::new("main").unwrap(),
            kind: "postgres",
            system_id: 7,
            wal_seg_size: WalSegSize::DEFAULT,
            window: Some(Window {
                start: ts("2026-11-21T10:00:00Z"),
                end: ts("2026-11-21T10:30:12.5Z"),
                start_lsn: lsn("0/1000100"),
                backup: backups[0].id,
                timeline: tli(1),
            }),
            backups,
            archive: vec![range(1, "0/1000000", "0/9000000")],
            gaps: vec![],
            replayable: [(tli(1), lsn("0/1000000"))].into(),
            newest_commit: Some((lsn("0/8FFFF00"), ts("2026-11-21T10:30:12.5Z"))),
        }
    }

    fn no_histories() -> BTreeMap<TimelineId, TimelineHistory> {
        BTreeMap::new()
    }

    fn plan_for(summary: &SourceSummary, target: RecoveryTarget) -> Result<RestorePlan, PlanError> {
        plan(summary, &no_histories(), target, TargetTimeline::Latest)
    }

    fn err(summary: &SourceSummary, target: RecoveryTarget, timeline: TargetTimeline) -> String {
        plan(summary, &no_histories(), target, timeline)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn time_target_picks_the_newest_backup_ending_before_it() {
        let s = summary();
        let p = plan_for(&s, RecoveryTarget::Time(ts("2026-11-21T10:15:00Z"))).unwrap();
        assert_eq!(p.backup, s.backups[1]);
        assert_eq!(p.timeline, tli(1));
        assert_eq!(p.target, RecoveryTarget::Time(ts("2026-11-21T10:15:00Z")));

        // The window's edges are inside it; a backup ending exactly at the target counts.
        let p = plan_for(&s, RecoveryTarget::Time(ts("2026-11-21T10:00:00Z"))).unwrap();
        assert_eq!(p.backup, s.backups[0]);
        let p = plan_for(&s, RecoveryTarget::Time(ts("2026-11-21T10:30:12.5Z"))).unwrap();
        assert_eq!(p.backup, s.backups[2]);
    }

    #[test]
    fn time_outside_the_window_shows_the_window() {
        let s = summary();
        assert_eq!(
            err(
                &s,
                RecoveryTarget::Time(ts("2026-11-21T09:00:00Z")),
                TargetTimeline::Latest
            ),
            "target time 2026-11-21T09:00:00Z is before the restorable window 2026-11-21T10:00:00Z .. 2026-11-21T10:30:12.5Z (pick a time inside it; see logship list)"
        );
        assert_eq!(
            err(
                &s,
                RecoveryTarget::Time(ts("2026-11-21T10:30:12.6Z")),
                TargetTimeline::Latest
            ),
            "target time 2026-11-21T10:30:12.6Z is after the restorable window 2026-11-21T10:00:00Z .. 2026-11-21T10:30:12.5Z (pick a time inside it; see logship list)"
        );
    }

    #[test]
    fn the_window_is_checked_before_the_timeline() {
        let s = summary();
        assert!(
            err(
                &s,
                RecoveryTarget::Time(ts("2026-11-21T09:00:00Z")),
                TargetTimeline::Id(tli(9))
            )
            .starts_with("target time 2026-11-21T09:00:00Z is before the restorable window")
        );
    }

    #[test]
    fn lsn_target_picks_by_end_lsn_and_replays_up_to_it() {
        let s = summary();
        let p = plan_for(&s, RecoveryTarget::Lsn(lsn("0/5000100"))).unwrap();
        assert_eq!(p.backup, s.backups[2]);
        let p = plan_for(&s, RecoveryTarget::Lsn(lsn("0/50000FF"))).unwrap();
        assert_eq!(p.backup, s.backups[1]);
        let p = plan_for(&s, RecoveryTarget::Lsn(lsn("0/9000000"))).unwrap();
        assert_eq!(p.backup, s.backups[2]);
    }

    #[test]
    fn lsn_before_the_window_or_beyond_the_archive() {
        let s = summary();
        assert_eq!(
            err(
                &s,
                RecoveryTarget::Lsn(lsn("0/10000FF")),
                TargetTimeline::Latest
            ),
            "target LSN 0/10000FF is before the restorable window, which starts at LSN 0/1000100 (2026-11-21T10:00:00Z) where the oldest restorable backup becomes consistent (pick a later LSN; see logship list)"
        );
        assert_eq!(
            err(&s, RecoveryTarget::Lsn(lsn("1/0")), TargetTimeline::Latest),
            "target LSN 1/0 is beyond the archived WAL of timeline 1, which ends at 0/9000000 (pick an earlier LSN, or wait until the WAL is archived; see logship list)"
        );
    }

    #[test]
    fn latest_picks_the_newest_backup() {
        let s = summary();
        let p = plan_for(&s, RecoveryTarget::Latest).unwrap();
        assert_eq!(p.backup, s.backups[2]);
        assert_eq!(p.target, RecoveryTarget::Latest);
    }

    #[test]
    fn no_backup_at_all() {
        let mut s = summary();
        s.backups.clear();
        s.window = None;
        assert_eq!(
            err(&s, RecoveryTarget::Latest, TargetTimeline::Latest),
            "no base backup of source \"main\" exists yet (take one with logship backup)"
        );
    }

    #[test]
    fn backups_without_a_window() {
        let mut s = summary();
        s.window = None;
        assert_eq!(
            err(&s, RecoveryTarget::Latest, TargetTimeline::Latest),
            "no base backup of source \"main\" can be restored yet: the archived WAL after each one has a gap or does not reach its end (take a new backup with logship backup, or wait for the WAL to be archived; see logship list)"
        );
    }

    #[test]
    fn unknown_timeline() {
        let mut s = summary();
        s.archive.push(range(2, "0/9000000", "0/9800000"));
        assert_eq!(
            err(&s, RecoveryTarget::Latest, TargetTimeline::Id(tli(3))),
            "timeline 3 holds no archived WAL of source \"main\", which holds timelines 1, 2 (pick one of those, or leave the timeline out to follow the newest)"
        );
    }

    #[test]
    fn backups_before_a_gap_are_not_picked() {
        let mut s = summary();
        // WAL before 0/3000000 has a hole: the 10:00 backup cannot be replayed forward.
        s.replayable.insert(tli(1), lsn("0/3000000"));
        let p = plan_for(&s, RecoveryTarget::Lsn(lsn("0/4000000"))).unwrap();
        assert_eq!(p.backup, s.backups[1]);
        assert_eq!(
            err(
                &s,
                RecoveryTarget::Lsn(lsn("0/2000000")),
                TargetTimeline::Latest
            ),
            "no restorable base backup of source \"main\" on the history of timeline 1 ends at or before target LSN 0/2000000 (pick a later target or another timeline; see logship list)"
        );
    }

    /// The newest commit of [`summary`], `[start, end)`.
    const NEWEST_COMMIT: (&str, &str) = ("0/8FFFEC8", "0/8FFFF00");

    /// What `load_source` returns with `summary`: the newest commit's transaction `xid` and
    /// the last archived record `last`, `[start, end)`.
    fn loaded(
        summary: &SourceSummary,
        xid: Option<u32>,
        last: Option<(&str, &str)>,
    ) -> LoadedSource {
        LoadedSource {
            summary: summary.clone(),
            histories: no_histories(),
            newest_commit_xid: xid,
            last_record: last.map(|(start, end)| RecordSpan {
                start: lsn(start),
                end: lsn(end),
            }),
        }
    }

    /// Where recovery stops for `target`, with [`loaded`]'s archive.
    fn stop_for(
        summary: &SourceSummary,
        target: RecoveryTarget,
        xid: Option<u32>,
        last: Option<(&str, &str)>,
    ) -> RecoveryTarget {
        let p = plan_for(summary, target).unwrap();
        recovery_stop(&p, &loaded(summary, xid, last))
    }

    #[test]
    fn a_time_no_commit_follows_stops_after_the_newest_commit() {
        let s = summary();
        let xid = Some(4711);
        let last = Some(NEWEST_COMMIT);
        let stop =
            |time: &str, xid: Option<u32>| stop_for(&s, RecoveryTarget::Time(ts(time)), xid, last);
        // A commit follows: PostgreSQL stops before it by itself.
        assert_eq!(
            stop("2026-11-21T10:30:12.4Z", xid),
            RecoveryTarget::Time(ts("2026-11-21T10:30:12.4Z"))
        );
        // At the window's end nothing follows: stop right after the newest commit.
        assert_eq!(
            stop("2026-11-21T10:30:12.5Z", xid),
            RecoveryTarget::Xid(4711)
        );
        // Without its transaction, the time is left as it is.
        assert_eq!(
            stop("2026-11-21T10:30:12.5Z", None),
            RecoveryTarget::Time(ts("2026-11-21T10:30:12.5Z"))
        );
        // Other targets are PostgreSQL's own.
        for target in [
            RecoveryTarget::Latest,
            RecoveryTarget::Lsn(lsn("0/8000000")),
        ] {
            assert_eq!(stop_for(&s, target, xid, last), target);
        }
    }

    #[test]
    fn a_time_with_no_commit_after_the_backup_stops_at_the_backups_end() {
        let mut s = summary();
        s.newest_commit = Some((lsn("0/5000080"), ts("2026-11-21T10:19:59Z")));
        if let Some(window) = s.window.as_mut() {
            window.end = ts("2026-11-21T10:20:00Z");
        }
        let last = Some(("0/5000048", "0/5000080"));
        let time = RecoveryTarget::Time(ts("2026-11-21T10:20:00Z"));
        let p = plan_for(&s, time).unwrap();
        assert_eq!(p.backup, s.backups[2]);
        assert_eq!(
            recovery_stop(&p, &loaded(&s, Some(4711), last)),
            RecoveryTarget::Immediate
        );
        // From the older backup, that commit follows the target.
        let time = RecoveryTarget::Time(ts("2026-11-21T10:15:00Z"));
        let older = plan_for(&s, time).unwrap();
        assert_eq!(older.backup, s.backups[1]);
        assert_eq!(recovery_stop(&older, &loaded(&s, Some(4711), last)), time);
        s.newest_commit = None;
        assert_eq!(
            recovery_stop(&p, &loaded(&s, None, None)),
            RecoveryTarget::Immediate
        );
    }

    #[test]
    fn an_lsn_no_record_starts_at_stops_after_the_last_record() {
        let s = summary();
        // A record follows the newest commit, up to 0/8FFFF40.
        let last = Some(("0/8FFFF00", "0/8FFFF40"));
        let stop = |target: &str| stop_for(&s, RecoveryTarget::Lsn(lsn(target)), Some(4711), last);
        // The last record starts at or after the target: PostgreSQL stops after it by itself.
        for target in ["0/8FFFEFF", "0/8FFFF00"] {
            assert_eq!(stop(target), RecoveryTarget::Lsn(lsn(target)));
        }
        // Past its start, inside it, at its end, up to the archive's end and inside the
        // page header after it, no record starts at or after the target: stop right after
        // the last one instead.
        for target in [
            "0/8FFFF01",
            "0/8FFFF3F",
            "0/8FFFF40",
            "0/9000000",
            "0/9000001",
            "0/9000028",
        ] {
            assert_eq!(
                stop(target),
                RecoveryTarget::Lsn(lsn("0/8FFFF00")),
                "{target}"
            );
        }
        // Past the archive's end, still refused.
        assert_eq!(
            err(
                &s,
                RecoveryTarget::Lsn(lsn("0/9000029")),
                TargetTimeline::Latest
            ),
            "target LSN 0/9000029 is beyond the archived WAL of timeline 1, which ends at 0/9000000 (pick an earlier LSN, or wait until the WAL is archived; see logship list)"
        );
        // Not knowing the last record, the target is left as it is.
        let target = RecoveryTarget::Lsn(lsn("0/9000000"));
        assert_eq!(stop_for(&s, target, Some(4711), None), target);
    }

    #[test]
    fn an_lsn_past_the_newest_commit_as_the_last_record_stops_after_its_transaction() {
        let s = summary();
        let last = Some(NEWEST_COMMIT);
        let stop = |target: &str, xid: Option<u32>| {
            stop_for(&s, RecoveryTarget::Lsn(lsn(target)), xid, last)
        };
        assert_eq!(
            stop("0/8FFFEC8", Some(4711)),
            RecoveryTarget::Lsn(lsn("0/8FFFEC8"))
        );
        for target in ["0/8FFFEC9", "0/8FFFF00", "0/9000000"] {
            assert_eq!(
                stop(target, Some(4711)),
                RecoveryTarget::Xid(4711),
                "{target}"
            );
        }
        // Without its transaction, stop at the commit by its position.
        assert_eq!(
            stop("0/8FFFF00", None),
            RecoveryTarget::Lsn(lsn("0/8FFFEC8"))
        );
    }

    #[test]
    fn an_lsn_with_no_record_after_the_backup_stops_at_the_backups_end() {
        let mut s = summary();
        s.archive = vec![range(1, "0/1000000", "0/5000100")];
        s.newest_commit = Some((lsn("0/4000080"), ts("2026-11-21T10:15:00Z")));
        // The last record ends where the newest backup does.
        let last = Some(("0/50000D0", "0/5000100"));
        let stop = |target: &str| {
            let p = plan_for(&s, RecoveryTarget::Lsn(lsn(target))).unwrap();
            (
                p.backup.id,
                recovery_stop(&p, &loaded(&s, Some(4711), last)),
            )
        };
        assert_eq!(
            stop("0/5000100"),
            (s.backups[2].id, RecoveryTarget::Immediate)
        );
        // From the older backup, that record comes after the backup's end.
        assert_eq!(
            stop("0/50000D1"),
            (s.backups[1].id, RecoveryTarget::Lsn(lsn("0/50000D0")))
        );
        assert_eq!(
            stop("0/50000D0"),
            (s.backups[1].id, RecoveryTarget::Lsn(lsn("0/50000D0")))
        );
    }

    #[test]
    fn the_archives_end_speaks_for_the_windows_timeline_only() {
        let (mut s, histories) = branched();
        // Timeline 1 went on elsewhere, past where timeline 2's archive ends.
        s.archive[0] = range(1, "0/1000000", "0/9800000");
        let on_2 = loaded(&s, Some(4711), Some(NEWEST_COMMIT));
        let stop = |target: RecoveryTarget, timeline: TargetTimeline| {
            let p = plan(&s, &histories, target, timeline).unwrap();
            recovery_stop(&p, &on_2)
        };
        let time = RecoveryTarget::Time(ts("2026-11-21T10:30:12.5Z"));
        assert_eq!(stop(time, TargetTimeline::Id(tli(1))), time);
        assert_eq!(
            stop(time, TargetTimeline::Latest),
            RecoveryTarget::Xid(4711)
        );
        let lsn = RecoveryTarget::Lsn(lsn("0/9000000"));
        assert_eq!(stop(lsn, TargetTimeline::Id(tli(1))), lsn);
        assert_eq!(stop(lsn, TargetTimeline::Latest), RecoveryTarget::Xid(4711));
    }

    /// Timeline 2 branched from 1 at 0/6000000; timeline 1 went on to 0/7000000 elsewhere.
    fn branched() -> (SourceSummary, BTreeMap<TimelineId, TimelineHistory>) {
        let mut s = summary();
        s.backups.push(backup_meta(
            1,
            "0/6800028",
            "0/6800100",
            "2026-11-21T10:25:00Z",
        ));
        s.backups.push(backup_meta(
            2,
            "0/7000028",
            "0/7000100",
            "2026-11-21T10:26:00Z",
        ));
        s.archive = vec![
            range(1, "0/1000000", "0/7000000"),
            range(2, "0/6000000", "0/9000000"),
        ];
        s.replayable = [(tli(1), lsn("0/1000000")), (tli(2), lsn("0/1000000"))].into();
        if let Some(window) = s.window.as_mut() {
            window.timeline = tli(2);
        }
        let history = TimelineHistory::parse(tli(2), b"1\t0/6000000\tpromoted\n").unwrap();
        (s, [(tli(2), history)].into())
    }

    #[test]
    fn only_backups_on_the_target_timelines_history() {
        let (s, histories) = branched();
        let latest = plan(
            &s,
            &histories,
            RecoveryTarget::Latest,
            TargetTimeline::Latest,
        )
        .unwrap();
        assert_eq!(latest.timeline, tli(2));
        assert_eq!(latest.backup.id, s.backups[4].id);
        // At 10:25:30 the newest backup on timeline 2's history is the 10:20 one: the
        // 10:25 backup ended on timeline 1 after the switchpoint.
        let time = RecoveryTarget::Time(ts("2026-11-21T10:25:30Z"));
        let p = plan(&s, &histories, time, TargetTimeline::Latest).unwrap();
        assert_eq!(p.backup, s.backups[2]);
        // On timeline 1 itself it is the 10:25 one.
        let p = plan(&s, &histories, time, TargetTimeline::Id(tli(1))).unwrap();
        assert_eq!(p.backup, s.backups[3]);
        assert_eq!(p.timeline, tli(1));
        assert_eq!(
            plan(
                &s,
                &histories,
                RecoveryTarget::Lsn(lsn("0/8000000")),
                TargetTimeline::Id(tli(1))
            )
            .unwrap_err()
            .to_string(),
            "target LSN 0/8000000 is beyond the archived WAL of timeline 1, which ends at 0/7000000 (pick an earlier LSN, or wait until the WAL is archived; see logship list)"
        );
    }

    #[test]
    fn no_backup_on_the_target_timeline() {
        let (mut s, histories) = branched();
        s.backups.retain(|b| b.timeline == tli(2));
        if let Some(window) = s.window.as_mut() {
            window.start = ts("2026-11-21T10:26:00Z");
            window.start_lsn = lsn("0/7000100");
            window.backup = s.backups[0].id;
        }
        assert_eq!(
            plan(
                &s,
                &histories,
                RecoveryTarget::Latest,
                TargetTimeline::Id(tli(1))
            )
            .unwrap_err()
            .to_string(),
            "no restorable base backup of source \"main\" on the history of timeline 1 ends at or before the latest archived WAL (pick a later target or another timeline; see logship list)"
        );
    }
}
