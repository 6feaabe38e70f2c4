//! MySQL/MariaDB restore planning, a pure function: the backups' snapshots and the archive's
//! summary → the restorable window, and for a target the backup to start from, or an error
//! that shows what is reachable.
//!
//! A backup is restorable when the archive holds its server's binlog from the snapshot's
//! position on without a gap, on that server and on every server after it. The window runs
//! from the oldest restorable snapshot's time to the newest durable commit (at least the
//! snapshot's time). The backup a target starts from is the newest restorable one before
//! it: taken at or before a target time; at or before a target position on the same
//! server; whose GTID position holds none of the target GTIDs; the newest for `--latest`.

use jiff::Timestamp;
use logship_protocol::archive::backup::BackupId;
use logship_protocol::mysql::backup::MysqlBackupMeta;
use logship_protocol::mysql::key::ServerNo;
use logship_protocol::mysql::{BinlogPos, GtidPos};

use crate::mysql::restore::target::{BinlogTarget, position_le};
use crate::mysql::summary::BinlogSummary;
use crate::window::{TimeWindow, TimeWindowError};

/// Where a backup's snapshot lines up with the binlog: what planning needs of a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The backup.
    pub id: BackupId,
    /// The server whose binlog the snapshot lines up with.
    pub server: ServerNo,
    /// The binlog position of the snapshot: every transaction before it is in the backup.
    pub pos: BinlogPos,
    /// The GTID position of the snapshot.
    pub gtid_pos: GtidPos,
    /// When the snapshot was taken.
    pub time: Timestamp,
}

impl Snapshot {
    /// The planning view of a backup.
    pub fn of(meta: &MysqlBackupMeta) -> anyhow::Result<Snapshot> {
        let gtid_pos = meta.gtid_position.parse().map_err(|err| {
            anyhow::anyhow!(
                "backup {}: its GTID position {:?} does not parse: {err} (the meta object is corrupt)",
                meta.id,
                meta.gtid_position
            )
        })?;
        Ok(Snapshot {
            id: meta.id,
            server: meta.server,
            pos: meta.position.clone(),
            gtid_pos,
            time: meta.snapshot_time,
        })
    }
}

/// The restorable window of a MySQL/MariaDB source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogWindow {
    /// The earliest and latest time a restore can reach.
    pub times: TimeWindow,
    /// The oldest restorable backup.
    pub backup: BackupId,
}

/// A target no restore can reach, each message showing what can be reached instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("no base backup of source \"{source_name}\" exists yet (take one with logship backup)")]
    NoBackup { source_name: String },
    #[error(
        "no base backup of source \"{source_name}\" can be restored yet: the archived binlog after each one has a gap or does not reach its snapshot yet (take a new backup with logship backup, or wait until the binlog is archived; see logship list)"
    )]
    NoWindow { source_name: String },
    #[error(transparent)]
    Time(#[from] TimeWindowError),
    #[error(
        "target position {target} is before the restorable window, which starts at {start} on server {server} where the oldest restorable backup's snapshot lines up (pick a later position; see logship list)"
    )]
    PositionBeforeWindow {
        target: BinlogPos,
        start: BinlogPos,
        server: ServerNo,
    },
    #[error(
        "target position {target} is beyond the archived binlog of server {server}, which ends at {end} (pick an earlier position, or wait until the binlog is archived; see logship list)"
    )]
    PositionBeyondArchive {
        target: BinlogPos,
        server: ServerNo,
        end: BinlogPos,
    },
    #[error(
        "target GTID {target} is already in the oldest restorable backup, whose snapshot is at GTID position {start} (pick a later GTID; see logship list)"
    )]
    GtidBeforeWindow { target: GtidPos, start: GtidPos },
}

/// The snapshots of `backups` that the archive can take further, oldest first.
fn restorable<'a>(snapshots: &'a [Snapshot], summary: &BinlogSummary) -> Vec<&'a Snapshot> {
    let mut restorable: Vec<&Snapshot> = snapshots
        .iter()
        .filter(|snapshot| {
            let reaches = summary.archive.iter().any(|range| {
                range.server == snapshot.server
                    && position_le(&range.from, &snapshot.pos)
                    && position_le(&snapshot.pos, &range.to)
            });
            let gap_after = summary.gaps.iter().any(|gap| {
                let range = &gap.range;
                range.server > snapshot.server
                    || (range.server == snapshot.server && !position_le(&range.to, &snapshot.pos))
            });
            reaches && !gap_after
        })
        .collect();
    restorable.sort_by_key(|snapshot| snapshot.id);
    restorable
}

/// The restorable window: `None` without a restorable backup.
pub fn window(snapshots: &[Snapshot], summary: &BinlogSummary) -> Option<BinlogWindow> {
    let oldest = *restorable(snapshots, summary).first()?;
    let newest_commit = summary.newest_commit.as_ref().map(|commit| commit.time);
    Some(BinlogWindow {
        times: TimeWindow {
            start: oldest.time,
            end: newest_commit.map_or(oldest.time, |end| end.max(oldest.time)),
        },
        backup: oldest.id,
    })
}

/// The backup a restore to `target` starts from.
pub fn plan<'a>(
    snapshots: &'a [Snapshot],
    summary: &BinlogSummary,
    target: &BinlogTarget,
) -> Result<&'a Snapshot, PlanError> {
    let source_name = || summary.name.to_string();
    if snapshots.is_empty() {
        return Err(PlanError::NoBackup {
            source_name: source_name(),
        });
    }
    let candidates = restorable(snapshots, summary);
    let no_window = || PlanError::NoWindow {
        source_name: source_name(),
    };
    let window = window(snapshots, summary).ok_or_else(no_window)?;
    let oldest = *candidates.first().ok_or_else(no_window)?;
    let newest_before =
        |before: &dyn Fn(&Snapshot) -> bool| candidates.iter().rev().copied().find(|s| before(s));
    let chosen = match target {
        BinlogTarget::Latest => newest_before(&|_| true).unwrap_or(oldest),
        BinlogTarget::Time(time) => {
            window.times.check(*time)?;
            // Inside the window, the oldest restorable backup is at or before the target.
            newest_before(&|s| s.time <= *time).unwrap_or(oldest)
        }
        BinlogTarget::Position(pos) => {
            let server = candidates
                .iter()
                .rev()
                .map(|s| s.server)
                .find(|&server| holds_file(summary, server, pos))
                .unwrap_or(oldest.server);
            if let Some(range) = summary.archive.iter().find(|r| r.server == server)
                && !position_le(pos, &range.to)
            {
                return Err(PlanError::PositionBeyondArchive {
                    target: pos.clone(),
                    server,
                    end: range.to.clone(),
                });
            }
            newest_before(&|s| {
                s.server < server || (s.server == server && position_le(&s.pos, pos))
            })
            .ok_or_else(|| PlanError::PositionBeforeWindow {
                target: pos.clone(),
                start: oldest.pos.clone(),
                server: oldest.server,
            })?
        }
        BinlogTarget::Gtid(gtids) => {
            newest_before(&|s| gtids.iter().all(|gtid| !s.gtid_pos.covers(gtid))).ok_or_else(
                || PlanError::GtidBeforeWindow {
                    target: gtids.clone(),
                    start: oldest.gtid_pos.clone(),
                },
            )?
        }
    };
    Ok(chosen)
}

/// Whether `server`'s archived range names the file of `pos`.
fn holds_file(summary: &BinlogSummary, server: ServerNo, pos: &BinlogPos) -> bool {
    summary
        .files
        .iter()
        .any(|f| f.server == server && f.name == *pos.file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::summary::{ArchivedFile, BinlogGap, BinlogRange, NewestCommit};
    use logship_protocol::archive::SourceIdentity;
    use logship_protocol::archive::key::SourceName;

    fn pos(text: &str) -> BinlogPos {
        text.parse().unwrap()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn snapshot(p: &str, gtid: &str, time: &str) -> Snapshot {
        let p = pos(p);
        Snapshot {
            id: BackupId::binlog(ServerNo::FIRST, p.file().index(), p.offset() as u32),
            server: ServerNo::FIRST,
            pos: p,
            gtid_pos: gtid.parse().unwrap(),
            time: at(time),
        }
    }

    /// binlog.000001 (10000 bytes, complete) and binlog.000002 (5000 bytes, in progress);
    /// the newest commit at 10:30.
    fn summary() -> BinlogSummary {
        let file = |name: &str, len, complete| ArchivedFile {
            server: ServerNo::FIRST,
            name: name.parse().unwrap(),
            len,
            complete,
        };
        BinlogSummary {
            name: SourceName::new("shop").unwrap(),
            identity: SourceIdentity::Mariadb {
                domain_id: 0,
                server_id: 1,
            },
            files: vec![
                file("binlog.000001", 10000, true),
                file("binlog.000002", 5000, false),
            ],
            archive: vec![BinlogRange {
                server: ServerNo::FIRST,
                from: pos("binlog.000001:4"),
                to: pos("binlog.000002:5000"),
            }],
            gaps: Vec::new(),
            newest_commit: Some(NewestCommit {
                end: pos("binlog.000002:5000"),
                time: at("2026-12-07T10:30:00Z"),
                gtid: Some("0-1-50".into()),
            }),
        }
    }

    fn snapshots() -> Vec<Snapshot> {
        vec![
            snapshot("binlog.000001:1000", "0-1-10", "2026-12-07T10:00:00Z"),
            snapshot("binlog.000002:400", "0-1-30", "2026-12-07T10:20:00Z"),
        ]
    }

    fn chosen(target: BinlogTarget) -> Result<String, PlanError> {
        let snapshots = snapshots();
        plan(&snapshots, &summary(), &target).map(|s| s.pos.to_string())
    }

    #[test]
    fn the_window_runs_from_the_oldest_snapshot_to_the_newest_commit() {
        let window = window(&snapshots(), &summary()).unwrap();
        assert_eq!(window.times.start, at("2026-12-07T10:00:00Z"));
        assert_eq!(window.times.end, at("2026-12-07T10:30:00Z"));
        assert_eq!(window.backup, snapshots()[0].id);
    }

    #[test]
    fn a_gap_after_a_snapshot_makes_it_unrestorable() {
        let mut summary = summary();
        summary.gaps.push(BinlogGap {
            range: BinlogRange {
                server: ServerNo::FIRST,
                from: pos("binlog.000001:9000"),
                to: pos("binlog.000002:4"),
            },
            missing: None,
        });
        let window = window(&snapshots(), &summary).unwrap();
        assert_eq!(window.times.start, at("2026-12-07T10:20:00Z"));
        let time = BinlogTarget::Time(at("2026-12-07T10:10:00Z"));
        assert!(matches!(
            plan(&snapshots(), &summary, &time),
            Err(PlanError::Time(TimeWindowError::Before { .. }))
        ));
    }

    #[test]
    fn each_target_starts_from_the_newest_backup_before_it() {
        let time = |t: &str| BinlogTarget::Time(at(t));
        assert_eq!(
            chosen(time("2026-12-07T10:19:59Z")).unwrap(),
            "binlog.000001:1000"
        );
        assert_eq!(
            chosen(time("2026-12-07T10:20:00Z")).unwrap(),
            "binlog.000002:400"
        );
        assert_eq!(chosen(BinlogTarget::Latest).unwrap(), "binlog.000002:400");
        let position = |p: &str| BinlogTarget::Position(pos(p));
        assert_eq!(
            chosen(position("binlog.000002:399")).unwrap(),
            "binlog.000001:1000"
        );
        assert_eq!(
            chosen(position("binlog.000002:400")).unwrap(),
            "binlog.000002:400"
        );
        let gtid = |g: &str| BinlogTarget::Gtid(g.parse().unwrap());
        assert_eq!(chosen(gtid("0-1-30")).unwrap(), "binlog.000001:1000");
        assert_eq!(chosen(gtid("0-1-31")).unwrap(), "binlog.000002:400");
    }

    #[test]
    fn targets_outside_the_window_are_refused_with_what_is_reachable() {
        let err = chosen(BinlogTarget::Time(at("2026-12-07T10:30:01Z"))).unwrap_err();
        assert!(
            matches!(err, PlanError::Time(TimeWindowError::After { .. })),
            "{err}"
        );
        assert_eq!(
            chosen(BinlogTarget::Position(pos("binlog.000001:999")))
                .unwrap_err()
                .to_string(),
            "target position binlog.000001:999 is before the restorable window, which starts at \
             binlog.000001:1000 on server 00000001 where the oldest restorable backup's snapshot \
             lines up (pick a later position; see logship list)"
        );
        assert_eq!(
            chosen(BinlogTarget::Position(pos("binlog.000002:5001")))
                .unwrap_err()
                .to_string(),
            "target position binlog.000002:5001 is beyond the archived binlog of server 00000001, \
             which ends at binlog.000002:5000 (pick an earlier position, or wait until the binlog \
             is archived; see logship list)"
        );
        assert_eq!(
            chosen(BinlogTarget::Gtid("0-1-10".parse().unwrap()))
                .unwrap_err()
                .to_string(),
            "target GTID 0-1-10 is already in the oldest restorable backup, whose snapshot is at \
             GTID position 0-1-10 (pick a later GTID; see logship list)"
        );
        let none: Vec<Snapshot> = Vec::new();
        assert_eq!(
            plan(&none, &summary(), &BinlogTarget::Latest)
                .unwrap_err()
                .to_string(),
            "no base backup of source \"shop\" exists yet (take one with logship backup)"
        );
    }
}
