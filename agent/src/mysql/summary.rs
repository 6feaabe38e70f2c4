//! What `logship list` shows for a MySQL/MariaDB source, computed from the store alone.
//!
//! How each part is decided, per server of the source (see [`BinlogCatalog`]):
//! - **Files**: every binlog file the store holds a durable prefix of
//!   ([`FileObjects::durable_len`]): the complete file, or the file in progress up to the
//!   end of its chain of pieces. A file whose durable length is unknown counts as missing.
//! - **Archive**: from the first file's first event (`binlog.000001:4`) to the end of the
//!   newest file's durable bytes.
//! - **Gaps**: between two archived files of a server, each run of missing file numbers,
//!   and each file before the newest that is held only in part (the server went on to
//!   the next file, so the rest of it is missing). A gap runs from where the archive stops
//!   to where it continues, the next file's first event.
//! - **Newest commit**: the last entry of the newest transaction index of the newest
//!   server's files, searched from the newest file backwards over at most
//!   [`MAX_INDEX_SCAN_FILES`] files. A damaged index is skipped with a warning.
//!
//! There are no MySQL/MariaDB base backups yet, so there is no restorable window.

use jiff::Timestamp;
use logship_protocol::archive::SourceIdentity;
use logship_protocol::archive::key::SourceName;
use logship_protocol::mysql::key::{BinlogKey, ServerNo};
use logship_protocol::mysql::{BINLOG_MAGIC, BinlogFileName, BinlogPos, index};

use crate::archive::{ReadError, read_object};
use crate::mysql::catalog::{BinlogCatalog, FileObjects};
use crate::store::{Store, StoreError};

/// How many files, newest first, the search for the newest commit reads the indexes of.
pub const MAX_INDEX_SCAN_FILES: usize = 16;

/// One archived binlog file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedFile {
    /// The server that wrote it.
    pub server: ServerNo,
    /// Its name on that server.
    pub name: BinlogFileName,
    /// Bytes durable in the store, from offset 0.
    pub len: u32,
    /// Whether the store holds it complete (else it is in progress, or held in part).
    pub complete: bool,
}

/// A stretch of one server's binlog, `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogRange {
    /// The server that wrote it.
    pub server: ServerNo,
    /// Its first position.
    pub from: BinlogPos,
    /// Just past its last byte.
    pub to: BinlogPos,
}

/// A stretch missing between two archived files of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogGap {
    /// From where the archive stops to where it continues.
    pub range: BinlogRange,
    /// The first and last file missing entirely; `None` when a file is held only in part.
    pub missing: Option<(BinlogFileName, BinlogFileName)>,
}

/// The newest transaction whose commit is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewestCommit {
    /// The position just past its commit.
    pub end: BinlogPos,
    /// When the server committed it.
    pub time: Timestamp,
    /// Its GTID, if it has one.
    pub gtid: Option<String>,
}

/// Everything `logship list` shows for one MySQL/MariaDB source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogSummary {
    /// The source's name.
    pub name: SourceName,
    /// The identity the archive was recorded under.
    pub identity: SourceIdentity,
    /// Archived files, by server, oldest first.
    pub files: Vec<ArchivedFile>,
    /// Archived binlog, one range per server, oldest server first.
    pub archive: Vec<BinlogRange>,
    /// Holes inside the archived ranges.
    pub gaps: Vec<BinlogGap>,
    /// The newest durable commit, if the indexes searched hold one.
    pub newest_commit: Option<NewestCommit>,
}

/// The identity as `system_id` text: `domain 0, server_id 1` for MariaDB (the GTID domain
/// and the first server archived), the `server_uuid` for MySQL.
pub fn system_id(identity: &SourceIdentity) -> String {
    match identity {
        SourceIdentity::Mariadb {
            domain_id,
            server_id,
        } => format!("domain {domain_id}, server_id {server_id}"),
        SourceIdentity::Mysql { server_uuid } => server_uuid.to_string(),
        other => other.to_string(),
    }
}

/// Reads the binlog catalog of `source`, recorded under `identity`, and summarizes it.
pub async fn load_binlog_summary(
    store: &dyn Store,
    source: &SourceName,
    identity: SourceIdentity,
) -> Result<BinlogSummary, StoreError> {
    let catalog = BinlogCatalog::load(store, source).await?;
    let mut summary = BinlogSummary {
        name: source.clone(),
        identity,
        files: Vec::new(),
        archive: Vec::new(),
        gaps: Vec::new(),
        newest_commit: None,
    };
    for server in catalog.servers() {
        let files: Vec<ArchivedFile> = catalog
            .files(server)
            .filter_map(|(name, objects)| archived(server, name, objects))
            .collect();
        summarize_server(&files, &mut summary);
        summary.files.extend(files);
    }
    if let Some(server) = catalog.servers().last() {
        summary.newest_commit = newest_commit(store, source, &catalog, server).await?;
    }
    Ok(summary)
}

fn archived(
    server: ServerNo,
    name: &BinlogFileName,
    objects: &FileObjects,
) -> Option<ArchivedFile> {
    Some(ArchivedFile {
        server,
        name: name.clone(),
        len: objects.durable_len()?,
        complete: objects.complete,
    })
}

/// Adds the range and the gaps of one server's `files` (in order) to `summary`.
fn summarize_server(files: &[ArchivedFile], summary: &mut BinlogSummary) {
    let (Some(first), Some(last)) = (files.first(), files.last()) else {
        return;
    };
    let first_event =
        |file: &ArchivedFile| BinlogPos::new(file.name.clone(), BINLOG_MAGIC.len() as u64);
    let end = |file: &ArchivedFile| BinlogPos::new(file.name.clone(), u64::from(file.len));
    summary.archive.push(BinlogRange {
        server: first.server,
        from: first_event(first),
        to: end(last),
    });
    for pair in files.windows(2) {
        let [before, after] = pair else { continue };
        let expected = before.name.next();
        let missing = match expected {
            Some(next) if next.index() < after.name.index() && next.same_base(&after.name) => {
                let last = after.name.with_index(after.name.index() - 1);
                last.map(|last| (next, last))
            }
            _ => None,
        };
        if missing.is_none() && before.complete {
            continue;
        }
        summary.gaps.push(BinlogGap {
            range: BinlogRange {
                server: before.server,
                from: end(before),
                to: first_event(after),
            },
            missing,
        });
    }
}

/// The last entry of the newest transaction index of `server`'s files.
async fn newest_commit(
    store: &dyn Store,
    source: &SourceName,
    catalog: &BinlogCatalog,
    server: ServerNo,
) -> Result<Option<NewestCommit>, StoreError> {
    let files: Vec<_> = catalog.files(server).collect();
    for (file, objects) in files.into_iter().rev().take(MAX_INDEX_SCAN_FILES) {
        for range in objects.durable_indexes().into_iter().rev() {
            let key = BinlogKey::Index {
                server,
                file: file.clone(),
                range,
            }
            .format(source);
            let content = match read_object(store, &key).await {
                Ok(Some(content)) => content,
                // Merged into a larger index since the listing.
                Ok(None) => continue,
                Err(ReadError::Store(err)) => return Err(err),
                Err(damaged) => {
                    tracing::warn!(%damaged, "skipping a transaction index that cannot be read");
                    continue;
                }
            };
            let entries = match index::parse(&content) {
                Ok(entries) => entries,
                Err(err) => {
                    tracing::warn!(%key, %err, "skipping a transaction index that does not parse");
                    continue;
                }
            };
            if let Some(entry) = entries.into_iter().last() {
                return Ok(Some(NewestCommit {
                    end: BinlogPos::new(file.clone(), u64::from(entry.end)),
                    time: entry.commit_time,
                    gtid: entry.gtid,
                }));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, len: u32, complete: bool) -> ArchivedFile {
        ArchivedFile {
            server: ServerNo::FIRST,
            name: BinlogFileName::new(name).unwrap(),
            len,
            complete,
        }
    }

    fn pos(text: &str) -> BinlogPos {
        text.parse().unwrap()
    }

    fn summarize(files: &[ArchivedFile]) -> BinlogSummary {
        let mut summary = BinlogSummary {
            name: SourceName::new("shop").unwrap(),
            identity: SourceIdentity::Mariadb {
                domain_id: 0,
                server_id: 1,
            },
            files: Vec::new(),
            archive: Vec::new(),
            gaps: Vec::new(),
            newest_commit: None,
        };
        summarize_server(files, &mut summary);
        summary
    }

    #[test]
    fn one_range_from_the_first_event_to_the_durable_end() {
        let summary = summarize(&[
            file("binlog.000001", 1000, true),
            file("binlog.000002", 2000, true),
            file("binlog.000003", 385, false),
        ]);
        assert_eq!(
            summary.archive,
            vec![BinlogRange {
                server: ServerNo::FIRST,
                from: pos("binlog.000001:4"),
                to: pos("binlog.000003:385"),
            }]
        );
        assert_eq!(summary.gaps, vec![]);
    }

    #[test]
    fn missing_files_and_a_file_held_in_part_are_gaps() {
        let summary = summarize(&[
            file("binlog.000001", 1000, true),
            file("binlog.000004", 700, false),
            file("binlog.000005", 2000, true),
            file("binlog.000006", 385, false),
        ]);
        assert_eq!(
            summary.gaps,
            vec![
                BinlogGap {
                    range: BinlogRange {
                        server: ServerNo::FIRST,
                        from: pos("binlog.000001:1000"),
                        to: pos("binlog.000004:4"),
                    },
                    missing: Some((
                        BinlogFileName::new("binlog.000002").unwrap(),
                        BinlogFileName::new("binlog.000003").unwrap()
                    )),
                },
                BinlogGap {
                    range: BinlogRange {
                        server: ServerNo::FIRST,
                        from: pos("binlog.000004:700"),
                        to: pos("binlog.000005:4"),
                    },
                    missing: None,
                },
            ]
        );
    }

    #[test]
    fn system_id_names_the_identity() {
        assert_eq!(
            system_id(&SourceIdentity::Mariadb {
                domain_id: 0,
                server_id: 1
            }),
            "domain 0, server_id 1"
        );
        let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        assert_eq!(
            system_id(&SourceIdentity::Mysql {
                server_uuid: uuid.parse().unwrap()
            }),
            uuid
        );
    }
}
