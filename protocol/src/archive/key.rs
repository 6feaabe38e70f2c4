//! Object keys: every key is built by [`ArchiveKey::format`] and read back by
//! [`ArchiveKey::parse`]. Numbers are fixed-width upper-case hex, so sorting keys as strings
//! sorts WAL by timeline, segment and piece offset, and backups by start position, then
//! tablespace and chunk.

use std::fmt;

use crate::archive::backup::BackupId;
use crate::pg::segment::{WalFileName, parse_hex8, xlog_file_name};
use crate::pg::timeline::history_file_name;
use crate::pg::{SegmentNo, TimelineId, WalSegSize};

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
    /// A timeline's `.history` file.
    History(TimelineId),
    /// A complete WAL segment.
    Segment {
        /// The segment's timeline.
        tli: TimelineId,
        /// The segment's number.
        segno: SegmentNo,
    },
    /// Bytes `[start, end)` of a segment still in progress, as offsets within the segment.
    Piece {
        /// The segment's timeline.
        tli: TimelineId,
        /// The segment's number.
        segno: SegmentNo,
        /// Offset of the first byte held.
        start: u32,
        /// Offset just past the last byte held.
        end: u32,
    },
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
         <source>/timelines/<TLI>.history, <source>/wal/<TLI>/<segment>[.partial.<start>-<end>] \
         or <source>/backups/<id>/(tar/<tablespace>/<chunk>|backup_manifest|meta) \
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
const TIMELINES: &str = "timelines";
const WAL: &str = "wal";
const PARTIAL: &str = ".partial.";
const BACKUPS: &str = "backups";
const TAR: &str = "tar";
const BACKUP_MANIFEST: &str = "backup_manifest";
const META: &str = "meta";

impl ArchiveKey {
    /// The key relative to the store root, e.g. `main/wal/00000001/000000010000000000000003`.
    pub fn format(&self, source: &SourceName, seg: WalSegSize) -> String {
        match *self {
            ArchiveKey::Identity => format!("{source}/{IDENTITY}"),
            ArchiveKey::History(tli) => {
                format!("{}{}", timelines_prefix(source), history_file_name(tli))
            }
            ArchiveKey::Segment { tli, segno } => {
                format!(
                    "{}{}",
                    wal_prefix(source, tli),
                    xlog_file_name(tli, segno, seg)
                )
            }
            ArchiveKey::Piece {
                tli,
                segno,
                start,
                end,
            } => format!(
                "{}{}{PARTIAL}{start:08X}-{end:08X}",
                wal_prefix(source, tli),
                xlog_file_name(tli, segno, seg)
            ),
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
            ArchiveKey::BackupMeta { id } => format!("{}{META}", backup_prefix(source, id)),
        }
    }

    /// Reads a key relative to the store root back into its source and meaning.
    pub fn parse(key: &str, seg: WalSegSize) -> Result<(SourceName, ArchiveKey), KeyError> {
        let unrecognized = || KeyError::Unrecognized {
            key: key.to_owned(),
        };
        let parts: Vec<&str> = key.split('/').collect();
        let (source, rest) = parts.split_first().ok_or_else(unrecognized)?;
        let source = SourceName::new(source).map_err(|_| unrecognized())?;
        let parsed = match *rest {
            [IDENTITY] => ArchiveKey::Identity,
            [TIMELINES, name] => match parse_wal_file_name(key, name, seg)? {
                WalFileName::History(tli) => ArchiveKey::History(tli),
                WalFileName::Segment { .. } => return Err(unrecognized()),
            },
            [WAL, dir, name] => {
                let dir_tli = parse_hex8(dir)
                    .and_then(TimelineId::new)
                    .ok_or_else(unrecognized)?;
                let parsed = parse_wal_segment(key, name, seg)?;
                let (ArchiveKey::Segment { tli, .. } | ArchiveKey::Piece { tli, .. }) = parsed
                else {
                    return Err(unrecognized());
                };
                if tli != dir_tli {
                    return Err(KeyError::TimelineMismatch {
                        key: key.to_owned(),
                    });
                }
                parsed
            }
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
                    [BACKUP_MANIFEST] => ArchiveKey::BackupManifest { id },
                    [META] => ArchiveKey::BackupMeta { id },
                    _ => return Err(unrecognized()),
                }
            }
            _ => return Err(unrecognized()),
        };
        Ok((source, parsed))
    }
}

/// Parses the last component under `wal/<TLI>/`: a segment name, optionally with a piece range.
fn parse_wal_segment(key: &str, name: &str, seg: WalSegSize) -> Result<ArchiveKey, KeyError> {
    let unrecognized = || KeyError::Unrecognized {
        key: key.to_owned(),
    };
    let (file, range) = match name.split_once(PARTIAL) {
        Some((file, range)) => (file, Some(range)),
        None => (name, None),
    };
    let WalFileName::Segment { tli, segno } = parse_wal_file_name(key, file, seg)? else {
        return Err(unrecognized());
    };
    let Some(range) = range else {
        return Ok(ArchiveKey::Segment { tli, segno });
    };
    let (start, end) = range.split_once('-').ok_or_else(unrecognized)?;
    let (Some(start), Some(end)) = (parse_hex8(start), parse_hex8(end)) else {
        return Err(unrecognized());
    };
    if start >= end || u64::from(end) > seg.bytes() {
        return Err(KeyError::BadPieceRange {
            key: key.to_owned(),
            start,
            end,
            seg_bytes: seg.bytes(),
        });
    }
    Ok(ArchiveKey::Piece {
        tli,
        segno,
        start,
        end,
    })
}

/// Parses a WAL file name inside a key, reporting failures against the whole key.
fn parse_wal_file_name(key: &str, name: &str, seg: WalSegSize) -> Result<WalFileName, KeyError> {
    use crate::pg::segment::WalFileNameError;
    WalFileName::parse(name, seg).map_err(|reason| match reason {
        WalFileNameError::Malformed { .. } => KeyError::Unrecognized {
            key: key.to_owned(),
        },
        reason => KeyError::BadFileName {
            key: key.to_owned(),
            reason,
        },
    })
}

/// Everything stored for `source`: `<source>/`.
pub fn source_prefix(source: &SourceName) -> String {
    format!("{source}/")
}

/// The source's timeline history files: `<source>/timelines/`.
pub fn timelines_prefix(source: &SourceName) -> String {
    format!("{source}/{TIMELINES}/")
}

/// The WAL of every timeline of `source`: `<source>/wal/`.
pub fn wal_root_prefix(source: &SourceName) -> String {
    format!("{source}/{WAL}/")
}

/// The WAL of one timeline: `<source>/wal/<TLI %08X>/`.
pub fn wal_prefix(source: &SourceName, tli: TimelineId) -> String {
    format!("{source}/{WAL}/{:08X}/", tli.get())
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
    use crate::pg::Lsn;
    use proptest::prelude::*;

    const SEG: WalSegSize = WalSegSize::DEFAULT;

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
    fn formats_every_layout() {
        let s = src("main");
        assert_eq!(ArchiveKey::Identity.format(&s, SEG), "main/identity");
        assert_eq!(
            ArchiveKey::History(tli(2)).format(&s, SEG),
            "main/timelines/00000002.history"
        );
        assert_eq!(
            ArchiveKey::Segment {
                tli: tli(1),
                segno: SegmentNo::new(0x1FF)
            }
            .format(&s, SEG),
            "main/wal/00000001/0000000100000001000000FF"
        );
        assert_eq!(
            ArchiveKey::Piece {
                tli: tli(0x1A),
                segno: SegmentNo::new(3),
                start: 0,
                end: 0x15_8000
            }
            .format(&s, SEG),
            "main/wal/0000001A/0000001A0000000000000003.partial.00000000-00158000"
        );
        assert_eq!(source_prefix(&s), "main/");
        assert_eq!(timelines_prefix(&s), "main/timelines/");
        assert_eq!(wal_root_prefix(&s), "main/wal/");
        assert_eq!(wal_prefix(&s, tli(0x1A)), "main/wal/0000001A/");
    }

    #[test]
    fn formats_backup_layouts() {
        let s = src("main");
        let id = BackupId::new(tli(1), Lsn::new(0x300_0028));
        assert_eq!(
            ArchiveKey::BackupChunk {
                id,
                tablespace: 0,
                chunk: 0x1F
            }
            .format(&s, SEG),
            "main/backups/000000010000000003000028/tar/00000000/0000001F"
        );
        assert_eq!(
            ArchiveKey::BackupChunk {
                id,
                tablespace: 16390,
                chunk: 0
            }
            .format(&s, SEG),
            "main/backups/000000010000000003000028/tar/00004006/00000000"
        );
        assert_eq!(
            ArchiveKey::BackupManifest { id }.format(&s, SEG),
            "main/backups/000000010000000003000028/backup_manifest"
        );
        assert_eq!(
            ArchiveKey::BackupMeta { id }.format(&s, SEG),
            "main/backups/000000010000000003000028/meta"
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
            "main/timelines/2.history",
            "main/timelines/0000000a.history",
            "main/timelines/000000010000000000000003",
            "main/wal/00000001/00000001.history",
            "main/wal/1/000000010000000000000003",
            "main/wal/00000001/000000010000000000000003.partial",
            "main/wal/00000001/000000010000000000000003.partial.0-10",
            "main/wal/00000001/000000010000000000000003.partial.00000000-0000001a",
            "main/wal/00000001/000000010000000000000003.partial.00000000-00000010-",
            "main/wal/00000001/000000010000000000000003.partial.00000000_00000010",
            "main/wal/00000001/000000010000000000000003.partial.00000000-00000010.partial.00000000-00000010",
            "main/wal/00000001/000000010000000000000003/x",
            "main/wal/00000000/000000000000000000000003",
            "main/other/x",
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
        ] {
            let err = ArchiveKey::parse(bad, SEG).unwrap_err();
            assert_eq!(err, KeyError::Unrecognized { key: bad.into() }, "{bad}");
            assert!(err.to_string().contains(&format!("\"{bad}\"")));
        }
    }

    #[test]
    fn rejects_bad_ranges_timelines_and_segment_numbers() {
        let bad_ranges = [
            "main/wal/00000001/000000010000000000000003.partial.00000010-00000010",
            "main/wal/00000001/000000010000000000000003.partial.00000010-00000001",
            "main/wal/00000001/000000010000000000000003.partial.00000000-01000001",
        ];
        for bad in bad_ranges {
            assert!(matches!(
                ArchiveKey::parse(bad, SEG),
                Err(KeyError::BadPieceRange { .. })
            ));
        }
        assert!(
            ArchiveKey::parse(
                "main/wal/00000001/000000010000000000000003.partial.00000000-01000000",
                SEG
            )
            .is_ok()
        );
        assert_eq!(
            ArchiveKey::parse("main/wal/00000002/000000010000000000000003", SEG),
            Err(KeyError::TimelineMismatch {
                key: "main/wal/00000002/000000010000000000000003".into()
            })
        );
        let err = ArchiveKey::parse("main/wal/00000001/000000010000000000000100", SEG).unwrap_err();
        assert!(matches!(err, KeyError::BadFileName { .. }));
        assert!(
            err.to_string()
                .starts_with("archive key \"main/wal/00000001/000000010000000000000100\": ")
        );
    }

    fn keys(seg: WalSegSize) -> impl Strategy<Value = ArchiveKey> {
        let tli = (1u32..).prop_map(|t| TimelineId::new(t).unwrap());
        let segno = (0..=u64::MAX / seg.bytes()).prop_map(SegmentNo::new);
        let seg_bytes = u32::try_from(seg.bytes()).unwrap();
        prop_oneof![
            Just(ArchiveKey::Identity),
            tli.clone().prop_map(ArchiveKey::History),
            (tli.clone(), segno.clone())
                .prop_map(|(tli, segno)| ArchiveKey::Segment { tli, segno }),
            (tli, segno, 0..seg_bytes, 1..=seg_bytes).prop_map(|(tli, segno, a, b)| {
                let (start, end) = if a < b { (a, b) } else { (b - 1, a + 1) };
                ArchiveKey::Piece {
                    tli,
                    segno,
                    start,
                    end,
                }
            }),
            backup_keys(),
        ]
    }

    fn backup_ids() -> impl Strategy<Value = BackupId> {
        (1u32.., any::<u64>()).prop_map(|(t, lsn)| BackupId::new(tli(t), Lsn::new(lsn)))
    }

    fn backup_keys() -> impl Strategy<Value = ArchiveKey> {
        prop_oneof![
            (backup_ids(), any::<u32>(), any::<u32>()).prop_map(|(id, tablespace, chunk)| {
                ArchiveKey::BackupChunk {
                    id,
                    tablespace,
                    chunk,
                }
            }),
            backup_ids().prop_map(|id| ArchiveKey::BackupManifest { id }),
            backup_ids().prop_map(|id| ArchiveKey::BackupMeta { id }),
        ]
    }

    fn seg_and_key() -> impl Strategy<Value = (WalSegSize, ArchiveKey)> {
        (20u32..=30).prop_flat_map(|shift| {
            let seg = WalSegSize::new(1 << shift).unwrap();
            (Just(seg), keys(seg))
        })
    }

    fn sources() -> impl Strategy<Value = SourceName> {
        "[a-z0-9][a-z0-9_-]{0,62}".prop_map(|s| SourceName::new(&s).unwrap())
    }

    /// The position a WAL key covers, for checking that string order is position order.
    fn position(key: &ArchiveKey) -> Option<(TimelineId, SegmentNo, u32, u32)> {
        match *key {
            ArchiveKey::Segment { tli, segno } => Some((tli, segno, 0, 0)),
            ArchiveKey::Piece {
                tli,
                segno,
                start,
                end,
            } => Some((tli, segno, start + 1, end)),
            _ => None,
        }
    }

    proptest! {
        #[test]
        fn round_trip(source in sources(), (seg, key) in seg_and_key()) {
            let text = key.format(&source, seg);
            prop_assert_eq!(ArchiveKey::parse(&text, seg), Ok((source, key)));
        }

        #[test]
        fn sorted_keys_are_sorted_positions(mut wal in proptest::collection::vec(keys(SEG), 1..40)) {
            wal.retain(|k| position(k).is_some());
            let source = src("main");
            let mut by_text: Vec<(String, ArchiveKey)> =
                wal.iter().map(|k| (k.format(&source, SEG), *k)).collect();
            by_text.sort_by(|a, b| a.0.cmp(&b.0));
            let positions: Vec<_> = by_text.iter().map(|(_, k)| position(k)).collect();
            let mut sorted = positions.clone();
            sorted.sort();
            prop_assert_eq!(positions, sorted);
        }

        #[test]
        fn sorted_chunk_keys_are_sorted_chunks(
            mut chunks in proptest::collection::vec(
                (backup_ids(), any::<u32>(), any::<u32>()), 1..40),
        ) {
            let source = src("main");
            let mut by_text = chunks.clone();
            by_text.sort_by_key(|&(id, tablespace, chunk)| {
                ArchiveKey::BackupChunk { id, tablespace, chunk }.format(&source, SEG)
            });
            chunks.sort();
            prop_assert_eq!(by_text, chunks);
        }

        #[test]
        fn parse_never_panics(key in "\\PC{0,80}") {
            let _ = ArchiveKey::parse(&key, SEG);
        }
    }
}
