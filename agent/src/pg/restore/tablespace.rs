//! Where a backup's tablespaces are restored: each into its directory on the original
//! server, or into the new directory a `--tablespace-mapping OLDDIR=NEWDIR` names, so that
//! a restore can run on the original's host while the original still uses its tablespaces.
//! The restored `tablespace_map`, which PostgreSQL reads at startup to link each
//! tablespace into `pg_tblspc/`, names the directories actually restored into.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use logship_protocol::archive::backup::{BackupId, BackupMeta};

/// The file in the data directory that lists each tablespace's OID and directory.
pub const TABLESPACE_MAP: &str = "tablespace_map";

/// One `--tablespace-mapping OLDDIR=NEWDIR`: restore the tablespace that lived in OLDDIR on
/// the original server into NEWDIR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablespaceMapping {
    /// The tablespace's directory on the original server.
    pub old: PathBuf,
    /// The directory to restore it into.
    pub new: PathBuf,
}

impl FromStr for TablespaceMapping {
    type Err = String;

    fn from_str(text: &str) -> Result<TablespaceMapping, String> {
        let invalid = || {
            format!("invalid tablespace mapping {text:?} (use OLDDIR=NEWDIR, two absolute paths)")
        };
        let (old, new) = text.split_once('=').ok_or_else(invalid)?;
        let (old, new) = (PathBuf::from(old), PathBuf::from(new));
        if !old.is_absolute() || !new.is_absolute() {
            return Err(invalid());
        }
        Ok(TablespaceMapping { old, new })
    }
}

/// A tablespace of the backup (not the data directory) and where it is restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The tablespace's OID.
    pub oid: u32,
    /// The directory it is restored into.
    pub dir: String,
    /// Whether a mapping moved it away from its directory on the original server.
    pub moved: bool,
}

/// A mapping that fits no tablespace of the backup.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error(
        "--tablespace-mapping names {old}, but backup {id} has no tablespace there (map one of its tablespace directories: {known})"
    )]
    Unknown {
        old: String,
        id: BackupId,
        known: String,
    },
    #[error(
        "--tablespace-mapping names {old}, but backup {id} has no tablespaces (leave out --tablespace-mapping)"
    )]
    NoTablespaces { old: String, id: BackupId },
    #[error(
        "--tablespace-mapping maps {old} more than once (give each tablespace directory one NEWDIR)"
    )]
    Twice { old: String },
    #[error(
        "--tablespace-mapping moves a tablespace to {new}, which lies inside or around the original tablespace directory {original} (choose a NEWDIR outside every original tablespace directory)"
    )]
    Overlaps { new: String, original: String },
}

/// Where each tablespace of `meta` goes, in the meta's order, after `mappings`. Every
/// mapping must name a tablespace directory of the backup, once.
pub fn place(
    meta: &BackupMeta,
    mappings: &[TablespaceMapping],
) -> Result<Vec<Placement>, MappingError> {
    for (index, mapping) in mappings.iter().enumerate() {
        if mappings
            .iter()
            .skip(index + 1)
            .any(|m| m.old == mapping.old)
        {
            return Err(MappingError::Twice {
                old: mapping.old.display().to_string(),
            });
        }
    }
    let originals: Vec<(u32, &str)> = meta
        .tablespaces
        .iter()
        .filter_map(|ts| Some((ts.oid, ts.location.as_deref()?)))
        .collect();
    if let Some(unknown) = mappings
        .iter()
        .find(|m| !originals.iter().any(|(_, dir)| Path::new(dir) == m.old))
    {
        let old = unknown.old.display().to_string();
        if originals.is_empty() {
            return Err(MappingError::NoTablespaces { old, id: meta.id });
        }
        let known = originals
            .iter()
            .map(|(_, dir)| *dir)
            .collect::<Vec<_>>()
            .join(", ");
        return Err(MappingError::Unknown {
            old,
            id: meta.id,
            known,
        });
    }
    // The original server may still use every one of them.
    for mapping in mappings {
        if let Some((_, original)) = originals.iter().find(|(_, dir)| {
            mapping.new.starts_with(dir) || Path::new(dir).starts_with(&mapping.new)
        }) {
            return Err(MappingError::Overlaps {
                new: mapping.new.display().to_string(),
                original: (*original).to_owned(),
            });
        }
    }
    Ok(originals
        .into_iter()
        .map(
            |(oid, dir)| match mappings.iter().find(|m| Path::new(dir) == m.old) {
                Some(mapping) => Placement {
                    oid,
                    dir: mapping.new.display().to_string(),
                    moved: true,
                },
                None => Placement {
                    oid,
                    dir: dir.to_owned(),
                    moved: false,
                },
            },
        )
        .collect())
}

/// The `tablespace_map` that links `placements`, in PostgreSQL's format: `OID DIR` per
/// line, with a backslash before each newline, carriage return and backslash in DIR.
pub fn tablespace_map(placements: &[Placement]) -> String {
    let mut map = String::new();
    for placement in placements {
        map.push_str(&placement.oid.to_string());
        map.push(' ');
        for c in placement.dir.chars() {
            if matches!(c, '\n' | '\r' | '\\') {
                map.push('\\');
            }
            map.push(c);
        }
        map.push('\n');
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::backup_meta;
    use logship_protocol::archive::backup::TablespaceMeta;

    fn meta(locations: &[(u32, &str)]) -> BackupMeta {
        let mut meta = backup_meta(1, "0/2000028", "0/2000100", "2026-11-21T10:00:00Z");
        meta.tablespaces = std::iter::once((0, None))
            .chain(
                locations
                    .iter()
                    .map(|(oid, dir)| (*oid, Some(dir.to_string()))),
            )
            .map(|(oid, location)| TablespaceMeta {
                oid,
                location,
                chunks: 0,
                raw_bytes: 0,
                stored_bytes: 0,
                chunk_crcs: Vec::new(),
            })
            .collect();
        meta
    }

    fn mapping(text: &str) -> TablespaceMapping {
        text.parse().unwrap()
    }

    #[test]
    fn a_mapping_moves_only_its_tablespace() {
        let meta = meta(&[(16390, "/srv/ts1"), (16391, "/srv/ts2")]);
        assert_eq!(
            place(&meta, &[mapping("/srv/ts2=/restore/ts2")]).unwrap(),
            [
                Placement {
                    oid: 16390,
                    dir: "/srv/ts1".to_owned(),
                    moved: false
                },
                Placement {
                    oid: 16391,
                    dir: "/restore/ts2".to_owned(),
                    moved: true
                },
            ]
        );
        assert_eq!(place(&meta, &[]).unwrap().len(), 2);
    }

    #[test]
    fn mappings_that_fit_no_tablespace_are_refused() {
        let meta = meta(&[(16390, "/srv/ts1")]);
        let id = meta.id;
        assert_eq!(
            place(&meta, &[mapping("/srv/ts9=/restore/ts9")])
                .unwrap_err()
                .to_string(),
            format!(
                "--tablespace-mapping names /srv/ts9, but backup {id} has no tablespace there (map one of its tablespace directories: /srv/ts1)"
            )
        );
        assert_eq!(
            place(&meta, &[mapping("/srv/ts1=/a"), mapping("/srv/ts1=/b")])
                .unwrap_err()
                .to_string(),
            "--tablespace-mapping maps /srv/ts1 more than once (give each tablespace directory one NEWDIR)"
        );
        assert_eq!(
            place(&self::meta(&[]), &[mapping("/srv/ts1=/a")])
                .unwrap_err()
                .to_string(),
            format!(
                "--tablespace-mapping names /srv/ts1, but backup {id} has no tablespaces (leave out --tablespace-mapping)"
            )
        );
        let two = self::meta(&[(16390, "/srv/ts1"), (16391, "/srv/ts2")]);
        for bad in [
            "/srv/ts1=/srv/ts1/copy",
            "/srv/ts1=/srv",
            "/srv/ts1=/srv/ts2/x",
        ] {
            let new = bad.split_once('=').unwrap().1;
            let original = if new.starts_with("/srv/ts2") {
                "/srv/ts2"
            } else {
                "/srv/ts1"
            };
            assert_eq!(
                place(&two, &[mapping(bad)]).unwrap_err().to_string(),
                format!(
                    "--tablespace-mapping moves a tablespace to {new}, which lies inside or around the original tablespace directory {original} (choose a NEWDIR outside every original tablespace directory)"
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn mappings_are_two_absolute_paths() {
        assert_eq!(
            mapping("/srv/ts1=/restore/ts1"),
            TablespaceMapping {
                old: "/srv/ts1".into(),
                new: "/restore/ts1".into()
            }
        );
        for bad in ["/srv/ts1", "ts1=/restore", "/srv/ts1=restore", "="] {
            assert_eq!(
                bad.parse::<TablespaceMapping>().unwrap_err(),
                format!(
                    "invalid tablespace mapping {bad:?} (use OLDDIR=NEWDIR, two absolute paths)"
                )
            );
        }
    }

    #[test]
    fn the_map_escapes_as_postgresql_does() {
        let placements = [
            Placement {
                oid: 16390,
                dir: "/srv/ts1".to_owned(),
                moved: false,
            },
            Placement {
                oid: 16391,
                dir: "/srv/a\\b\nc".to_owned(),
                moved: true,
            },
        ];
        assert_eq!(
            tablespace_map(&placements),
            "16390 /srv/ts1\n16391 /srv/a\\\\b\\\nc\n"
        );
    }
}
