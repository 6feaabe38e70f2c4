//! Object keys every source kind shares: the identity and the base backups. Each key is
//! built by [`ArchiveKey::format`] and read back by [`ArchiveKey::parse`]; the keys of the
//! replication log itself are kind-specific ([`crate::pg::key::WalKey`] for PostgreSQL).
//! Numbers are fixed-width upper-case hex, so sorting keys as strings sorts backups by
//! start position, then tablespace and chunk.

use std::fmt;

use crate::archive::backup::BackupId;
use crate::pg::segment::parse_hex8;

/// The name of a source, the first component of all its keys.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceName(String);

impl SourceName {
    const MAX_LEN: usize = 63;

    /// Validates a name: 1 to 63 characters of `[a-z0-9_-]`, starting with a letter or digit.
    pub fn new(name: &str) -> Result<SourceName, KeyError> {
        let valid_start = name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let valid_chars = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid_start || !valid_chars || name.len() > Self::MAX_LEN {
            return Err(KeyError::InvalidSourceName {
                name: name.to_owned(),
            });
        }
        Ok(SourceName(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an object under a source holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArchiveKey {
    /// The source's identity, written once before anything else.
    Identity,
    /// One chunk of a base backup's tar stream for one tablespace.
    BackupChunk {
        /// The backup.
        id: BackupId,
        /// The tablespace's OID, or 0 for the main data directory.
        tablespace: u32,
        /// The chunk's position in the tablespace's tar stream, from 0.
        chunk: u32,
    },
    /// A base backup's `backup_manifest`, as the server sent it.
    BackupManifest {
        /// The backup.
        id: BackupId,
    },
    /// A MySQL/MariaDB logical backup's schema script: databases, tables, views,
    /// routines, triggers, events, users and grants.
    DumpSchema {
        /// The backup.
        id: BackupId,
    },
    /// One chunk of the rows of one table of a MySQL/MariaDB logical backup.
    DumpRows {
        /// The backup.
        id: BackupId,
        /// The table's number in the backup's meta, from 0.
        table: u32,
        /// The chunk's position among the table's chunks, from 0.
        chunk: u32,
    },
    /// A base backup's completion marker, written last.
    BackupMeta {
        /// The backup.
        id: BackupId,
    },
}

/// A source name or object key that does not follow the archive's layout.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A source name outside `[a-z0-9_-]{1,63}` or not starting with a letter or digit.
    #[error(
        "invalid source name \"{name}\": use 1 to 63 characters of a-z, 0-9, '_' and '-', \
         starting with a letter or digit"
    )]
    InvalidSourceName {
        /// The rejected name.
        name: String,
    },
    /// A key that matches none of the layouts.
    #[error(
        "unrecognized archive key \"{key}\": expected <source>/identity, \
         <source>/timelines/<TLI>.history, <source>/wal/<TLI>/<segment>[.partial.<start>-<end>], \
         <source>/binlog/<server>/<file>[.partial.<start>-<end>|.index.<start>-<end>], \
         <source>/servers/<server>.switch \
         or <source>/backups/<id>/(tar/<tablespace>/<chunk>|backup_manifest|schema|\
         rows/<table>/<chunk>|meta) \
         with upper-case hex (is another program writing under this prefix?)"
    )]
    Unrecognized {
        /// The rejected key.
        key: String,
    },
    /// A piece whose range is empty or runs past the segment's end.
    #[error(
        "archive key \"{key}\": piece range {start:08X}-{end:08X} is empty or runs past the \
         {seg_bytes}-byte segment (check wal_segment_size, or remove the stray object)"
    )]
    BadPieceRange {
        /// The rejected key.
        key: String,
        /// The piece's start offset.
        start: u32,
        /// The piece's end offset.
        end: u32,
        /// The segment size the key was checked against.
        seg_bytes: u64,
    },
    /// A segment stored under another timeline's directory.
    #[error(
        "archive key \"{key}\": the file's timeline differs from its directory's \
         (remove the stray object)"
    )]
    TimelineMismatch {
        /// The rejected key.
        key: String,
    },
    /// A segment name that is out of range for the segment size.
    #[error("archive key \"{key}\": {reason}")]
    BadFileName {
        /// The rejected key.
        key: String,
        /// Why the file name was rejected.
        reason: crate::pg::segment::WalFileNameError,
    },
}

const IDENTITY: &str = "identity";
const BACKUPS: &str = "backups";
const TAR: &str = "tar";
const BACKUP_MANIFEST: &str = "backup_manifest";
const META: &str = "meta";
const SCHEMA: &str = "schema";
const ROWS: &str = "rows";

impl ArchiveKey {
    /// The key relative to the store root, e.g. `main/backups/000000010000000003000028/meta`.
    pub fn format(&self, source: &SourceName) -> String {
        match *self {
            ArchiveKey::Identity => format!("{source}/{IDENTITY}"),
            ArchiveKey::BackupChunk {
                id,
                tablespace,
                chunk,
            } => format!(
                "{}{TAR}/{tablespace:08X}/{chunk:08X}",
                backup_prefix(source, id)
            ),
            ArchiveKey::BackupManifest { id } => {
                format!("{}{BACKUP_MANIFEST}", backup_prefix(source, id))
            }
            ArchiveKey::DumpSchema { id } => format!("{}{SCHEMA}", backup_prefix(source, id)),
            ArchiveKey::DumpRows { id, table, chunk } => format!(
                "{}{ROWS}/{table:08X}/{chunk:08X}",
                backup_prefix(source, id)
            ),
            ArchiveKey::BackupMeta { id } => format!("{}{META}", backup_prefix(source, id)),
        }
    }

    /// Reads a key relative to the store root back into its source and meaning.
    pub fn parse(key: &str) -> Result<(SourceName, ArchiveKey), KeyError> {
        let unrecognized = || KeyError::Unrecognized {
            key: key.to_owned(),
        };
        let (source, rest) = split_source(key)?;
        let parsed = match *rest {
            [IDENTITY] => ArchiveKey::Identity,
            [BACKUPS, id, ref what @ ..] => {
                let id = id.parse().map_err(|_| unrecognized())?;
                match *what {
                    [TAR, tablespace, chunk] => match (parse_hex8(tablespace), parse_hex8(chunk)) {
                        (Some(tablespace), Some(chunk)) => ArchiveKey::BackupChunk {
                            id,
                            tablespace,
                            chunk,
                        },
                        _ => return Err(unrecognized()),
                    },
                    [ROWS, table, chunk] => match (parse_hex8(table), parse_hex8(chunk)) {
                        (Some(table), Some(chunk)) => ArchiveKey::DumpRows { id, table, chunk },
                        _ => return Err(unrecognized()),
                    },
                    [BACKUP_MANIFEST] => ArchiveKey::BackupManifest { id },
                    [SCHEMA] => ArchiveKey::DumpSchema { id },
                    [META] => ArchiveKey::BackupMeta { id },
                    _ => return Err(unrecognized()),
                }
            }
            _ => return Err(unrecognized()),
        };
        Ok((source, parsed))
    }
}

/// Splits a key into its source and the components after it, or refuses it as unrecognized.
pub(crate) fn split_source(key: &str) -> Result<(SourceName, Vec<&str>), KeyError> {
    let unrecognized = || KeyError::Unrecognized {
        key: key.to_owned(),
    };
    let mut parts = key.split('/');
    let source = parts.next().ok_or_else(unrecognized)?;
    let source = SourceName::new(source).map_err(|_| unrecognized())?;
    Ok((source, parts.collect()))
}

/// Everything stored for `source`: `<source>/`.
pub fn source_prefix(source: &SourceName) -> String {
    format!("{source}/")
}

/// Every base backup of `source`, complete or not: `<source>/backups/`.
pub fn backups_prefix(source: &SourceName) -> String {
    format!("{source}/{BACKUPS}/")
}

/// Everything stored for one backup: `<source>/backups/<id>/`.
pub fn backup_prefix(source: &SourceName, id: BackupId) -> String {
    format!("{source}/{BACKUPS}/{id}/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::key::ServerNo;
    use crate::pg::{Lsn, TimelineId};
    use proptest::prelude::*;

    fn src(name: &str) -> SourceName {
        SourceName::new(name).unwrap()
    }

    fn tli(raw: u32) -> TimelineId {
        TimelineId::new(raw).unwrap()
    }

    #[test]
    fn source_names() {
        for good in ["main", "0", "a-b_c", "db01", &"x".repeat(63)] {
            assert_eq!(src(good).as_str(), good);
        }
        for bad in [
            "",
            "-a",
            "_a",
            "Main",
            "a/b",
            "a.b",
            "a b",
            "é",
            &"x".repeat(64),
        ] {
            assert_eq!(
                SourceName::new(bad),
                Err(KeyError::InvalidSourceName { name: bad.into() })
            );
        }
    }

    #[test]
    fn formats_backup_layouts() {
        let s = src("main");
        assert_eq!(ArchiveKey::Identity.format(&s), "main/identity");
        assert_eq!(source_prefix(&s), "main/");
        let id = BackupId::new(tli(1), Lsn::new(0x300_0028));
        assert_eq!(
            ArchiveKey::BackupChunk {
                id,
                tablespace: 0,
                chunk: 0x1F
            }
            .format(&s),
            "main/backups/000000010000000003000028/tar/00000000/0000001F"
        );
        assert_eq!(
            ArchiveKey::BackupChunk {
                id,
                tablespace: 16390,
                chunk: 0
            }
            .format(&s),
            "main/backups/000000010000000003000028/tar/00004006/00000000"
        );
        assert_eq!(
            ArchiveKey::BackupManifest { id }.format(&s),
            "main/backups/000000010000000003000028/backup_manifest"
        );
        assert_eq!(
            ArchiveKey::BackupMeta { id }.format(&s),
            "main/backups/000000010000000003000028/meta"
        );
        let dump = BackupId::binlog(ServerNo::FIRST, 42, 0x1234);
        assert_eq!(
            ArchiveKey::DumpSchema { id: dump }.format(&s),
            "main/backups/000000010000002A00001234/schema"
        );
        assert_eq!(
            ArchiveKey::DumpRows {
                id: dump,
                table: 3,
                chunk: 0x10
            }
            .format(&s),
            "main/backups/000000010000002A00001234/rows/00000003/00000010"
        );
        assert_eq!(backups_prefix(&s), "main/backups/");
        assert_eq!(
            backup_prefix(&s, id),
            "main/backups/000000010000000003000028/"
        );
    }

    #[test]
    fn rejects_keys_outside_the_layout() {
        for bad in [
            "",
            "main",
            "main/",
            "Main/identity",
            "main/identity/",
            "main/identity.txt",
            "/main/identity",
            "main//identity",
            "main/other/x",
            "main/timelines/00000002.history",
            "main/wal/00000001/000000010000000000000003",
            "main/backups",
            "main/backups/",
            "main/backups/000000010000000003000028",
            "main/backups/000000010000000003000028/",
            "main/backups/00000001000000000300002/meta",
            "main/backups/00000001000000000300002a/meta",
            "main/backups/000000000000000003000028/meta",
            "main/backups/000000010000000003000028/meta/",
            "main/backups/000000010000000003000028/Meta",
            "main/backups/000000010000000003000028/backup_manifest.json",
            "main/backups/000000010000000003000028/tar",
            "main/backups/000000010000000003000028/tar/00000000",
            "main/backups/000000010000000003000028/tar/00000000/0",
            "main/backups/000000010000000003000028/tar/0000000a/00000000",
            "main/backups/000000010000000003000028/tar/00000000/00000000/x",
            "main/backups/000000010000000003000028/tar/00000000/00000000.tmp",
            "main/backups/000000010000000003000028/schema/",
            "main/backups/000000010000000003000028/rows/00000000",
            "main/backups/000000010000000003000028/rows/0000000a/00000000",
        ] {
            let err = ArchiveKey::parse(bad).unwrap_err();
            assert_eq!(err, KeyError::Unrecognized { key: bad.into() }, "{bad}");
            assert!(err.to_string().contains(&format!("\"{bad}\"")));
        }
    }

    fn backup_ids() -> impl Strategy<Value = BackupId> {
        (1u32.., any::<u64>()).prop_map(|(t, lsn)| BackupId::new(tli(t), Lsn::new(lsn)))
    }

    fn keys() -> impl Strategy<Value = ArchiveKey> {
        prop_oneof![
            Just(ArchiveKey::Identity),
            (backup_ids(), any::<u32>(), any::<u32>()).prop_map(|(id, tablespace, chunk)| {
                ArchiveKey::BackupChunk {
                    id,
                    tablespace,
                    chunk,
                }
            }),
            backup_ids().prop_map(|id| ArchiveKey::BackupManifest { id }),
            backup_ids().prop_map(|id| ArchiveKey::DumpSchema { id }),
            (backup_ids(), any::<u32>(), any::<u32>())
                .prop_map(|(id, table, chunk)| ArchiveKey::DumpRows { id, table, chunk }),
            backup_ids().prop_map(|id| ArchiveKey::BackupMeta { id }),
        ]
    }

    fn sources() -> impl Strategy<Value = SourceName> {
        "[a-z0-9][a-z0-9_-]{0,62}".prop_map(|s| SourceName::new(&s).unwrap())
    }

    proptest! {
        #[test]
        fn round_trip(source in sources(), key in keys()) {
            let text = key.format(&source);
            prop_assert_eq!(ArchiveKey::parse(&text), Ok((source, key)));
        }

        #[test]
        fn sorted_chunk_keys_are_sorted_chunks(
            mut chunks in proptest::collection::vec(
                (backup_ids(), any::<u32>(), any::<u32>()), 1..40),
        ) {
            let source = src("main");
            let mut by_text = chunks.clone();
            by_text.sort_by_key(|&(id, tablespace, chunk)| {
                ArchiveKey::BackupChunk { id, tablespace, chunk }.format(&source)
            });
            chunks.sort();
            prop_assert_eq!(by_text, chunks);
        }

        #[test]
        fn parse_never_panics(key in "\\PC{0,80}") {
            let _ = ArchiveKey::parse(&key);
        }
    }
}
