//! `logship list [--source N] [--json]`: the backups, the archived WAL or binlog with its
//! gaps, and the restorable window of each source, as a table or as DESIGN.md §2's JSON
//! object.

use std::io::{self, Write};

use logship_protocol::archive::SourceIdentity;
use logship_protocol::archive::key::SourceName;
use logship_protocol::mysql::backup::MysqlBackupMeta;
use serde::Serialize;

use crate::identity::{IdentityError, read_identity};
use crate::mysql::backup::list_backups;
use crate::mysql::restore::plan::{BinlogWindow, Snapshot, window as binlog_window};
use crate::mysql::summary::{
    BinlogGap, BinlogRange, BinlogSummary, load_binlog_summary, system_id,
};
use crate::pg::window::{SourceSummary, WalRange, WindowError, load_source};
use crate::store::{Store, StoreError};
use crate::timefmt::format_time;

/// Why the listing could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Window(#[from] WindowError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(
        "store {store} holds no archive for source {source_name:?} (check --source and the store URL)"
    )]
    NoArchive { store: String, source_name: String },
    #[error(transparent)]
    Backups(#[from] crate::mysql::backup::ListError),
    #[error("cannot write the listing: {0} (check that standard output is open and writable)")]
    Write(#[from] io::Error),
}

/// What the listing shows of one source, by kind.
enum Summary {
    Postgres(SourceSummary),
    Binlog(BinlogListing),
}

/// A MySQL/MariaDB source: its archive, its backups and the window they give.
struct BinlogListing {
    summary: BinlogSummary,
    backups: Vec<MysqlBackupMeta>,
    window: Option<BinlogWindow>,
}

impl BinlogListing {
    async fn load(
        store: &dyn Store,
        source: &SourceName,
        identity: SourceIdentity,
    ) -> Result<BinlogListing, ListError> {
        let summary = load_binlog_summary(store, source, identity).await?;
        let backups = list_backups(store, source).await?;
        let snapshots: Vec<Snapshot> = backups
            .iter()
            .filter_map(|meta| Snapshot::of(meta).ok())
            .collect();
        let window = binlog_window(&snapshots, &summary);
        Ok(BinlogListing {
            summary,
            backups,
            window,
        })
    }
}

/// Summarizes each of `sources` and writes them to `out`, as JSON when `json` is set.
pub async fn list(
    store: &dyn Store,
    sources: &[SourceName],
    json: bool,
    out: &mut impl Write,
) -> Result<(), ListError> {
    let mut summaries = Vec::with_capacity(sources.len());
    for source in sources {
        let summary = match read_identity(store, source).await? {
            None => {
                return Err(ListError::NoArchive {
                    store: store.url().to_owned(),
                    source_name: source.to_string(),
                });
            }
            Some(SourceIdentity::Postgres { .. }) => {
                Summary::Postgres(load_source(store, source).await?.summary)
            }
            Some(identity) => Summary::Binlog(BinlogListing::load(store, source, identity).await?),
        };
        summaries.push(summary);
    }
    if json {
        write_json(&summaries, out)?;
    } else {
        write_text(&summaries, out)?;
    }
    Ok(())
}

/// The `--json` object (field names are part of the command-line contract).
#[derive(Serialize)]
struct ListJson {
    sources: Vec<SourceJson>,
}

#[derive(Serialize)]
struct SourceJson {
    name: String,
    kind: &'static str,
    /// Text, because JSON numbers lose a system identifier's precision.
    system_id: String,
    backups: Vec<BackupJson>,
    archive: Vec<RangeJson>,
    gaps: Vec<RangeJson>,
    window: Option<WindowJson>,
    /// MySQL/MariaDB only: every archived binlog file.
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<Vec<FileJson>>,
    /// MySQL/MariaDB only: the newest durable commit, or null.
    #[serde(skip_serializing_if = "Option::is_none")]
    newest_commit: Option<Option<CommitJson>>,
}

#[derive(Serialize)]
struct BackupJson {
    id: String,
    start_time: String,
    end_time: String,
    start_position: String,
    end_position: String,
    size_bytes: u64,
    stored_bytes: u64,
}

#[derive(Serialize)]
struct RangeJson {
    timeline_or_server: String,
    from: String,
    to: String,
    /// MySQL/MariaDB gaps only: the files missing entirely, or null for a file held in part.
    #[serde(skip_serializing_if = "Option::is_none")]
    missing: Option<Option<MissingJson>>,
}

#[derive(Serialize)]
struct MissingJson {
    first: String,
    last: String,
}

#[derive(Serialize)]
struct FileJson {
    server: String,
    name: String,
    length: u32,
    complete: bool,
}

#[derive(Serialize)]
struct CommitJson {
    time: String,
    position: String,
    gtid: Option<String>,
}

#[derive(Serialize)]
struct WindowJson {
    start: String,
    end: String,
}

impl From<&WalRange> for RangeJson {
    fn from(range: &WalRange) -> RangeJson {
        RangeJson {
            timeline_or_server: range.timeline.to_string(),
            from: range.from.to_string(),
            to: range.to.to_string(),
            missing: None,
        }
    }
}

impl From<&BinlogRange> for RangeJson {
    fn from(range: &BinlogRange) -> RangeJson {
        RangeJson {
            timeline_or_server: range.server.get().to_string(),
            from: range.from.to_string(),
            to: range.to.to_string(),
            missing: None,
        }
    }
}

impl From<&BinlogGap> for RangeJson {
    fn from(gap: &BinlogGap) -> RangeJson {
        RangeJson {
            missing: Some(gap.missing.as_ref().map(|(first, last)| MissingJson {
                first: first.to_string(),
                last: last.to_string(),
            })),
            ..RangeJson::from(&gap.range)
        }
    }
}

impl From<&BinlogListing> for SourceJson {
    fn from(listing: &BinlogListing) -> SourceJson {
        let summary = &listing.summary;
        SourceJson {
            name: summary.name.to_string(),
            kind: MYSQL_KIND,
            system_id: system_id(&summary.identity),
            backups: listing
                .backups
                .iter()
                .map(|b| BackupJson {
                    id: b.id.to_string(),
                    start_time: format_time(b.start_time),
                    end_time: format_time(b.end_time),
                    start_position: b.position.to_string(),
                    end_position: b.position.to_string(),
                    size_bytes: b.raw_bytes,
                    stored_bytes: b.stored_bytes,
                })
                .collect(),
            archive: summary.archive.iter().map(RangeJson::from).collect(),
            gaps: summary.gaps.iter().map(RangeJson::from).collect(),
            window: listing.window.as_ref().map(|w| WindowJson {
                start: format_time(w.times.start),
                end: format_time(w.times.end),
            }),
            files: Some(
                summary
                    .files
                    .iter()
                    .map(|f| FileJson {
                        server: f.server.get().to_string(),
                        name: f.name.to_string(),
                        length: f.len,
                        complete: f.complete,
                    })
                    .collect(),
            ),
            newest_commit: Some(summary.newest_commit.as_ref().map(|c| CommitJson {
                time: format_time(c.time),
                position: c.end.to_string(),
                gtid: c.gtid.clone(),
            })),
        }
    }
}

impl From<&Summary> for SourceJson {
    fn from(summary: &Summary) -> SourceJson {
        match summary {
            Summary::Postgres(summary) => SourceJson::from(summary),
            Summary::Binlog(summary) => SourceJson::from(summary),
        }
    }
}

impl From<&SourceSummary> for SourceJson {
    fn from(summary: &SourceSummary) -> SourceJson {
        SourceJson {
            name: summary.name.to_string(),
            kind: summary.kind,
            system_id: summary.system_id.to_string(),
            backups: summary
                .backups
                .iter()
                .map(|b| BackupJson {
                    id: b.id.to_string(),
                    start_time: format_time(b.start_time),
                    end_time: format_time(b.end_time),
                    start_position: b.start_lsn.to_string(),
                    end_position: b.end_lsn.to_string(),
                    size_bytes: b.raw_bytes,
                    stored_bytes: b.stored_bytes,
                })
                .collect(),
            archive: summary.archive.iter().map(RangeJson::from).collect(),
            gaps: summary.gaps.iter().map(RangeJson::from).collect(),
            window: summary.window.as_ref().map(|w| WindowJson {
                start: format_time(w.start),
                end: format_time(w.end),
            }),
            files: None,
            newest_commit: None,
        }
    }
}

fn write_json(summaries: &[Summary], out: &mut impl Write) -> io::Result<()> {
    let listing = ListJson {
        sources: summaries.iter().map(SourceJson::from).collect(),
    };
    serde_json::to_writer(&mut *out, &listing)?;
    writeln!(out)
}

fn write_text(summaries: &[Summary], out: &mut impl Write) -> io::Result<()> {
    for (index, summary) in summaries.iter().enumerate() {
        if index > 0 {
            writeln!(out)?;
        }
        match summary {
            Summary::Postgres(summary) => write_source(summary, out)?,
            Summary::Binlog(summary) => write_binlog_source(summary, out)?,
        }
    }
    Ok(())
}

/// The `kind` of a MySQL or MariaDB source, as in the configuration.
const MYSQL_KIND: &str = "mysql";

fn write_binlog_source(listing: &BinlogListing, out: &mut impl Write) -> io::Result<()> {
    let summary = &listing.summary;
    let identity = match &summary.identity {
        SourceIdentity::Mariadb { .. } => format!("MariaDB GTID {}", system_id(&summary.identity)),
        SourceIdentity::Mysql { .. } => format!("server_uuid {}", system_id(&summary.identity)),
        other => other.to_string(),
    };
    writeln!(out, "source {} ({MYSQL_KIND}, {identity})", summary.name)?;
    if listing.backups.is_empty() {
        writeln!(out, "  backups: none")?;
    } else {
        writeln!(out, "  backups:")?;
        let rows = listing.backups.iter().map(|b| {
            [
                b.id.to_string(),
                format_time(b.snapshot_time),
                b.position.to_string(),
                human_bytes(b.raw_bytes),
                human_bytes(b.stored_bytes),
            ]
        });
        write_table(
            out,
            "    ",
            ["id", "snapshot", "position", "size", "stored"].map(str::to_owned),
            rows.collect(),
        )?;
    }
    if summary.archive.is_empty() {
        writeln!(out, "  archived binlog: none yet")?;
    } else {
        writeln!(out, "  archived binlog:")?;
        for range in &summary.archive {
            writeln!(
                out,
                "    server {}: {} .. {}",
                range.server.get(),
                range.from,
                range.to
            )?;
            let rows = summary
                .files
                .iter()
                .filter(|f| f.server == range.server)
                .map(|f| {
                    let state = if f.complete {
                        "complete"
                    } else {
                        "in progress"
                    };
                    [f.name.to_string(), f.len.to_string(), state.to_owned()]
                });
            write_table(
                out,
                "      ",
                ["file", "bytes", "state"].map(str::to_owned),
                rows.collect(),
            )?;
        }
    }
    if summary.gaps.is_empty() {
        writeln!(out, "  gaps: none")?;
    } else {
        writeln!(out, "  gaps:")?;
        for gap in &summary.gaps {
            let what = match &gap.missing {
                Some((first, last)) if first == last => format!("{first} is missing"),
                Some((first, last)) => format!("{first} to {last} are missing"),
                None => format!("the rest of {} is missing", gap.range.from.file()),
            };
            writeln!(
                out,
                "    server {}: {} .. {} ({what})",
                gap.range.server.get(),
                gap.range.from,
                gap.range.to
            )?;
        }
    }
    match &summary.newest_commit {
        Some(commit) => {
            let gtid = commit
                .gtid
                .as_deref()
                .map(|g| format!("GTID {g}, "))
                .unwrap_or_default();
            writeln!(
                out,
                "  newest durable commit: {} ({gtid}ending at {})",
                format_time(commit.time),
                commit.end
            )?;
        }
        None => writeln!(out, "  newest durable commit: none yet")?,
    }
    match (&listing.window, listing.backups.is_empty()) {
        (Some(window), _) => writeln!(
            out,
            "  restorable window: {} .. {}",
            format_time(window.times.start),
            format_time(window.times.end)
        ),
        (None, true) => writeln!(
            out,
            "  restorable window: none (there is no base backup yet; take one with logship backup)"
        ),
        (None, false) => writeln!(
            out,
            "  restorable window: none (the archived binlog after every backup has a gap or does not reach its snapshot yet; take a new backup with logship backup)"
        ),
    }
}

fn write_source(summary: &SourceSummary, out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "source {} ({}, system identifier {})",
        summary.name, summary.kind, summary.system_id
    )?;
    if summary.backups.is_empty() {
        writeln!(out, "  backups: none yet")?;
    } else {
        writeln!(out, "  backups:")?;
        let header = [
            "id",
            "start time",
            "end time",
            "start LSN",
            "end LSN",
            "size",
            "stored",
        ];
        let rows = summary.backups.iter().map(|b| {
            [
                b.id.to_string(),
                format_time(b.start_time),
                format_time(b.end_time),
                b.start_lsn.to_string(),
                b.end_lsn.to_string(),
                human_bytes(b.raw_bytes),
                human_bytes(b.stored_bytes),
            ]
        });
        write_table(out, "    ", header.map(str::to_owned), rows.collect())?;
    }
    write_ranges(out, "archived WAL", &summary.archive, "none yet")?;
    write_ranges(out, "gaps", &summary.gaps, "none")?;
    match (&summary.window, summary.backups.is_empty()) {
        (Some(window), _) => writeln!(
            out,
            "  restorable window: {} .. {}",
            format_time(window.start),
            format_time(window.end)
        ),
        (None, true) => writeln!(
            out,
            "  restorable window: none (there is no base backup yet; take one with logship backup)"
        ),
        (None, false) => writeln!(
            out,
            "  restorable window: none (the archived WAL after every backup has a gap or does not reach its end yet; take a new backup with logship backup)"
        ),
    }
}

fn write_ranges(
    out: &mut impl Write,
    title: &str,
    ranges: &[WalRange],
    empty: &str,
) -> io::Result<()> {
    if ranges.is_empty() {
        return writeln!(out, "  {title}: {empty}");
    }
    writeln!(out, "  {title}:")?;
    for range in ranges {
        writeln!(
            out,
            "    timeline {}: {} .. {}",
            range.timeline, range.from, range.to
        )?;
    }
    Ok(())
}

/// Writes rows under a header, each column as wide as its widest cell, after `indent`.
fn write_table<const N: usize>(
    out: &mut impl Write,
    indent: &str,
    header: [String; N],
    rows: Vec<[String; N]>,
) -> io::Result<()> {
    let mut widths = [0; N];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        writeln!(out, "{indent}{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}

/// A byte count in binary units, e.g. `117.7 MiB`.
fn human_bytes(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // Display only: what f64 loses of a u64 does not show in one decimal.
    let mut value = bytes as f64 / 1024.0;
    let mut unit = "KiB";
    for next in ["MiB", "GiB", "TiB", "PiB"] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::window::Window;
    use crate::testutil::{lsn, tli, ts};
    use logship_protocol::archive::backup::{BackupId, BackupMeta, CheckpointMode};
    use logship_protocol::pg::WalSegSize;

    fn summary() -> SourceSummary {
        let backup = BackupMeta {
            id: BackupId::new(tli(1), lsn("0/3000028")),
            label: "logship 2026-11-21T10:15:00Z".into(),
            timeline: tli(1),
            start_lsn: lsn("0/3000028"),
            end_lsn: lsn("0/3000100"),
            start_time: ts("2026-11-21T10:15:00.123456Z"),
            end_time: ts("2026-11-21T10:15:09.5Z"),
            pg_version: "15.18".into(),
            pg_version_num: 150018,
            system_id: 7312345678901234567,
            wal_segment_size: WalSegSize::DEFAULT,
            raw_bytes: 123456789,
            stored_bytes: 34567890,
            tablespaces: vec![],
            manifest: None,
            checkpoint: CheckpointMode::Fast,
        };
        SourceSummary {
            name: SourceName::new("main").unwrap(),
            kind: "postgres",
            system_id: 7312345678901234567,
            wal_seg_size: WalSegSize::DEFAULT,
            window: Some(Window {
                start: backup.end_time,
                end: ts("2026-11-21T10:30:12.5Z"),
                start_lsn: backup.end_lsn,
                backup: backup.id,
                timeline: tli(2),
            }),
            backups: vec![backup],
            archive: vec![
                WalRange {
                    timeline: tli(1),
                    from: lsn("0/3000000"),
                    to: lsn("0/7158000"),
                },
                WalRange {
                    timeline: tli(2),
                    from: lsn("0/7000000"),
                    to: lsn("0/80A1B20"),
                },
            ],
            gaps: vec![WalRange {
                timeline: tli(1),
                from: lsn("0/5000000"),
                to: lsn("0/6000000"),
            }],
            replayable: [(tli(2), lsn("0/6000000"))].into(),
            newest_commit: Some((lsn("0/80A1A00"), ts("2026-11-21T10:30:12.5Z"))),
        }
    }

    fn text_of(summaries: &[SourceSummary]) -> String {
        let mut out = Vec::new();
        write_text(
            &summaries
                .iter()
                .cloned()
                .map(Summary::Postgres)
                .collect::<Vec<_>>(),
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_has_the_documented_shape() {
        let mut out = Vec::new();
        write_json(&[Summary::Postgres(summary())], &mut out).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"sources": [{
                "name": "main",
                "kind": "postgres",
                "system_id": "7312345678901234567",
                "backups": [{
                    "id": "000000010000000003000028",
                    "start_time": "2026-11-21T10:15:00.123456Z",
                    "end_time": "2026-11-21T10:15:09.5Z",
                    "start_position": "0/3000028",
                    "end_position": "0/3000100",
                    "size_bytes": 123456789,
                    "stored_bytes": 34567890,
                }],
                "archive": [
                    {"timeline_or_server": "1", "from": "0/3000000", "to": "0/7158000"},
                    {"timeline_or_server": "2", "from": "0/7000000", "to": "0/80A1B20"},
                ],
                "gaps": [{"timeline_or_server": "1", "from": "0/5000000", "to": "0/6000000"}],
                "window": {"start": "2026-11-21T10:15:09.5Z", "end": "2026-11-21T10:30:12.5Z"},
            }]})
        );
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
    }

    #[test]
    fn json_of_an_empty_store_lists_no_source() {
        let mut out = Vec::new();
        write_json(&[], &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().trim(), r#"{"sources":[]}"#);
    }

    #[test]
    fn json_window_is_null_without_one() {
        let mut s = summary();
        s.window = None;
        s.backups.clear();
        let mut out = Vec::new();
        write_json(&[Summary::Postgres(s)], &mut out).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["sources"][0]["window"], serde_json::Value::Null);
        assert_eq!(value["sources"][0]["backups"], serde_json::json!([]));
    }

    #[test]
    fn text_lists_everything() {
        assert_eq!(
            text_of(&[summary()]),
            "source main (postgres, system identifier 7312345678901234567)
  backups:
    id                        start time                   end time                start LSN  end LSN    size       stored
    000000010000000003000028  2026-11-21T10:15:00.123456Z  2026-11-21T10:15:09.5Z  0/3000028  0/3000100  117.7 MiB  33.0 MiB
  archived WAL:
    timeline 1: 0/3000000 .. 0/7158000
    timeline 2: 0/7000000 .. 0/80A1B20
  gaps:
    timeline 1: 0/5000000 .. 0/6000000
  restorable window: 2026-11-21T10:15:09.5Z .. 2026-11-21T10:30:12.5Z
"
        );
    }

    #[test]
    fn text_says_why_there_is_no_window() {
        let mut s = summary();
        s.window = None;
        s.gaps.clear();
        let other = {
            let mut o = s.clone();
            o.name = SourceName::new("other").unwrap();
            o.backups.clear();
            o.archive.clear();
            o
        };
        assert_eq!(
            text_of(&[s, other]),
            "source main (postgres, system identifier 7312345678901234567)
  backups:
    id                        start time                   end time                start LSN  end LSN    size       stored
    000000010000000003000028  2026-11-21T10:15:00.123456Z  2026-11-21T10:15:09.5Z  0/3000028  0/3000100  117.7 MiB  33.0 MiB
  archived WAL:
    timeline 1: 0/3000000 .. 0/7158000
    timeline 2: 0/7000000 .. 0/80A1B20
  gaps: none
  restorable window: none (the archived WAL after every backup has a gap or does not reach its end yet; take a new backup with logship backup)

source other (postgres, system identifier 7312345678901234567)
  backups: none yet
  archived WAL: none yet
  gaps: none
  restorable window: none (there is no base backup yet; take one with logship backup)
"
        );
    }

    /// A MySQL/MariaDB source without backups.
    fn listing(summary: BinlogSummary) -> BinlogListing {
        BinlogListing {
            summary,
            backups: Vec::new(),
            window: None,
        }
    }

    fn binlog_summary() -> BinlogSummary {
        use crate::mysql::summary::{ArchivedFile, NewestCommit};
        use logship_protocol::mysql::BinlogFileName;
        use logship_protocol::mysql::key::ServerNo;
        let file = |name: &str, len, complete| ArchivedFile {
            server: ServerNo::FIRST,
            name: BinlogFileName::new(name).unwrap(),
            len,
            complete,
        };
        let range = |from: &str, to: &str| BinlogRange {
            server: ServerNo::FIRST,
            from: from.parse().unwrap(),
            to: to.parse().unwrap(),
        };
        BinlogSummary {
            name: SourceName::new("shop").unwrap(),
            identity: SourceIdentity::Mariadb {
                domain_id: 0,
                server_id: 1,
            },
            files: vec![
                file("binlog.000001", 1234, true),
                file("binlog.000003", 56789, true),
                file("binlog.000004", 385, false),
            ],
            archive: vec![range("binlog.000001:4", "binlog.000004:385")],
            gaps: vec![BinlogGap {
                range: range("binlog.000001:1234", "binlog.000003:4"),
                missing: Some((
                    BinlogFileName::new("binlog.000002").unwrap(),
                    BinlogFileName::new("binlog.000002").unwrap(),
                )),
            }],
            newest_commit: Some(NewestCommit {
                end: "binlog.000004:385".parse().unwrap(),
                time: ts("2026-11-21T10:30:12Z"),
                gtid: Some("0-1-42".into()),
            }),
        }
    }

    #[test]
    fn binlog_json_has_the_documented_shape() {
        let mut out = Vec::new();
        write_json(&[Summary::Binlog(listing(binlog_summary()))], &mut out).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"sources": [{
                "name": "shop",
                "kind": "mysql",
                "system_id": "domain 0, server_id 1",
                "backups": [],
                "archive": [
                    {"timeline_or_server": "1", "from": "binlog.000001:4", "to": "binlog.000004:385"},
                ],
                "gaps": [{
                    "timeline_or_server": "1",
                    "from": "binlog.000001:1234",
                    "to": "binlog.000003:4",
                    "missing": {"first": "binlog.000002", "last": "binlog.000002"},
                }],
                "window": null,
                "files": [
                    {"server": "1", "name": "binlog.000001", "length": 1234, "complete": true},
                    {"server": "1", "name": "binlog.000003", "length": 56789, "complete": true},
                    {"server": "1", "name": "binlog.000004", "length": 385, "complete": false},
                ],
                "newest_commit": {
                    "time": "2026-11-21T10:30:12Z",
                    "position": "binlog.000004:385",
                    "gtid": "0-1-42",
                },
            }]})
        );
    }

    #[test]
    fn binlog_text_lists_files_gaps_and_why_there_is_no_window() {
        let empty = BinlogSummary {
            name: SourceName::new("empty").unwrap(),
            files: vec![],
            archive: vec![],
            gaps: vec![],
            newest_commit: None,
            ..binlog_summary()
        };
        let mut out = Vec::new();
        write_text(
            &[
                Summary::Binlog(listing(binlog_summary())),
                Summary::Binlog(listing(empty)),
            ],
            &mut out,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "source shop (mysql, MariaDB GTID domain 0, server_id 1)
  backups: none
  archived binlog:
    server 1: binlog.000001:4 .. binlog.000004:385
      file           bytes  state
      binlog.000001  1234   complete
      binlog.000003  56789  complete
      binlog.000004  385    in progress
  gaps:
    server 1: binlog.000001:1234 .. binlog.000003:4 (binlog.000002 is missing)
  newest durable commit: 2026-11-21T10:30:12Z (GTID 0-1-42, ending at binlog.000004:385)
  restorable window: none (there is no base backup yet; take one with logship backup)

source empty (mysql, MariaDB GTID domain 0, server_id 1)
  backups: none
  archived binlog: none yet
  gaps: none
  newest durable commit: none yet
  restorable window: none (there is no base backup yet; take one with logship backup)
"
        );
    }

    #[test]
    fn byte_counts_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(16 << 20), "16.0 MiB");
        assert_eq!(human_bytes(3 << 40), "3.0 TiB");
        assert_eq!(human_bytes(u64::MAX), "16384.0 PiB");
    }
}
