//! Base backups in the archive: the [`BackupId`] that names one, and the [`BackupMeta`]
//! completion marker written after everything else, whose JSON is part of the storage format.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::archive::versioned::{self, EnvelopeError};
use crate::mysql::key::ServerNo;
use crate::pg::segment::parse_hex8;
use crate::pg::{Lsn, TimelineId, WalSegSize};

/// A backup's name: 24 upper-case hex digits that sort as the backups' start positions.
///
/// - PostgreSQL: the start timeline and start LSN (`<TLI %08X><start LSN %016X>`).
/// - MySQL/MariaDB: the number of the server in the source's history, the snapshot's
///   binlog file number and its position in that file (`<server %08X><file %08X><pos %08X>`).
///
/// The first eight digits are never all zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackupId {
    /// The timeline or server number; never 0.
    major: u32,
    minor: u64,
}

impl BackupId {
    /// The id of the PostgreSQL backup that started at `start_lsn` on timeline `tli`.
    pub fn new(tli: TimelineId, start_lsn: Lsn) -> BackupId {
        BackupId {
            major: tli.get(),
            minor: start_lsn.as_u64(),
        }
    }

    /// The id of the MySQL/MariaDB backup whose snapshot lines up with position `pos` of
    /// binlog file number `file` (the `000042` of `binlog.000042`) of server `server`.
    pub fn binlog(server: ServerNo, file: u32, pos: u32) -> BackupId {
        BackupId {
            major: server.get(),
            minor: (u64::from(file) << 32) | u64::from(pos),
        }
    }

    /// The timeline a PostgreSQL backup started on.
    pub fn tli(self) -> TimelineId {
        // `major` is never 0, so this never falls back.
        TimelineId::new(self.major).unwrap_or(TimelineId::FIRST)
    }

    /// A PostgreSQL backup's start LSN: recovery from it begins here.
    pub fn start_lsn(self) -> Lsn {
        Lsn::new(self.minor)
    }

    /// A MySQL/MariaDB backup's server number, binlog file number and position.
    pub fn binlog_start(self) -> (ServerNo, u32, u32) {
        // `major` is never 0, so this never falls back.
        let server = ServerNo::new(self.major).unwrap_or(ServerNo::FIRST);
        let (file, pos) = ((self.minor >> 32) as u32, self.minor as u32);
        (server, file, pos)
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}{:016X}", self.major, self.minor)
    }
}

/// A string that is not a backup id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid backup id \"{input}\": expected 24 upper-case hex digits, the first 8 not all \
     zero, such as 000000010000000003000028"
)]
pub struct BackupIdError {
    /// The rejected input.
    pub input: String,
}

impl FromStr for BackupId {
    type Err = BackupIdError;

    fn from_str(s: &str) -> Result<BackupId, BackupIdError> {
        let bad = || BackupIdError {
            input: s.to_owned(),
        };
        let (major, minor) = s.split_at_checked(8).ok_or_else(bad)?;
        let (hi, lo) = minor.split_at_checked(8).ok_or_else(bad)?;
        let (Some(major), Some(hi), Some(lo)) = (parse_hex8(major), parse_hex8(hi), parse_hex8(lo))
        else {
            return Err(bad());
        };
        if major == 0 {
            return Err(bad());
        }
        Ok(BackupId {
            major,
            minor: (u64::from(hi) << 32) | u64::from(lo),
        })
    }
}

/// The only `format` of [`BackupMeta`] this code reads and writes.
const META_FORMAT: u64 = 1;

/// How the server's checkpoint at the start of the backup was run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckpointMode {
    /// An immediate checkpoint: the backup starts at once, at the cost of an I/O burst.
    Fast,
    /// A checkpoint spread over `checkpoint_completion_target`, gentle on the server.
    Spread,
}

/// The completion marker of a backup (`<source>/backups/<id>/meta`): a backup exists for
/// readers only once this is stored, and it tells them how to fetch and check the rest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupMeta {
    /// The backup's id; always `BackupId::new(timeline, start_lsn)`.
    #[serde(with = "as_text")]
    pub id: BackupId,
    /// The label given to `BASE_BACKUP`.
    pub label: String,
    /// The timeline the backup started on.
    #[serde(with = "timeline_number")]
    pub timeline: TimelineId,
    /// Where recovery from this backup starts.
    #[serde(with = "as_text")]
    pub start_lsn: Lsn,
    /// The first LSN at which the restored cluster is consistent.
    #[serde(with = "as_text")]
    pub end_lsn: Lsn,
    /// The agent's clock when it sent `BASE_BACKUP`.
    pub start_time: Timestamp,
    /// The agent's clock when the server reported the backup's end.
    pub end_time: Timestamp,
    /// The server's `server_version`, e.g. `15.18`.
    pub pg_version: String,
    /// The server's `server_version_num`, e.g. `150018`.
    pub pg_version_num: u32,
    /// The cluster's system identifier, as text because JSON numbers lose its precision.
    #[serde(with = "as_text")]
    pub system_id: u64,
    /// The cluster's WAL segment size in bytes.
    #[serde(with = "segment_size")]
    pub wal_segment_size: WalSegSize,
    /// Tar bytes of all tablespaces, before compression.
    pub raw_bytes: u64,
    /// Bytes stored for all tablespaces' chunks, framing included.
    pub stored_bytes: u64,
    /// One entry per tablespace, the main data directory (OID 0) first.
    pub tablespaces: Vec<TablespaceMeta>,
    /// The stored `backup_manifest`, if the server sent one.
    #[serde(default)]
    pub manifest: Option<ManifestMeta>,
    /// How the starting checkpoint was run.
    pub checkpoint: CheckpointMode,
}

/// One tablespace's tar stream, stored as `chunks` objects under `tar/<oid %08X>/`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TablespaceMeta {
    /// The tablespace's OID, or 0 for the main data directory.
    pub oid: u32,
    /// The tablespace's directory on the server; `None` for the main data directory.
    pub location: Option<String>,
    /// How many chunk objects hold the tar stream, numbered from 0.
    pub chunks: u32,
    /// Tar bytes, before compression.
    pub raw_bytes: u64,
    /// Bytes stored for the chunks, framing included.
    pub stored_bytes: u64,
    /// The CRC-32 (IEEE) of each chunk's content, in chunk order.
    #[serde(with = "crc_hex_list")]
    pub chunk_crcs: Vec<u32>,
}

/// The stored copy of the server's `backup_manifest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestMeta {
    /// The manifest's length in bytes.
    pub raw_bytes: u64,
    /// Bytes stored for it, framing included.
    pub stored_bytes: u64,
    /// The CRC-32 (IEEE) of the manifest's bytes.
    #[serde(with = "crc_hex")]
    pub crc: u32,
}

/// A `meta` object whose content is not a backup meta this version can use. The texts state
/// the cause only: the caller adds the object's key and the fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackupMetaError {
    /// The content is not JSON, or lacks a field, or has a field of the wrong type.
    #[error("backup meta is not valid: {reason}")]
    Invalid {
        /// What the JSON parser reported, with line and column.
        reason: String,
    },
    /// A `format` other than 1.
    #[error("backup meta has format {format} but this logship reads format 1")]
    UnsupportedFormat {
        /// The format found.
        format: String,
    },
    /// The id does not name the backup's own timeline and start LSN.
    #[error(
        "backup meta of {id}: the id does not match timeline {timeline} and start LSN {start_lsn}"
    )]
    IdMismatch {
        /// The id found.
        id: BackupId,
        /// The timeline found.
        timeline: TimelineId,
        /// The start LSN found.
        start_lsn: Lsn,
    },
    /// The backup claims to end before it starts.
    #[error("backup meta of {id}: end LSN {end_lsn} is before the start LSN")]
    EndBeforeStart {
        /// The backup.
        id: BackupId,
        /// The end LSN found.
        end_lsn: Lsn,
    },
    /// A tablespace whose chunk count and CRC list disagree.
    #[error("backup meta of {id}: tablespace {oid} has {chunks} chunks but {crcs} chunk CRCs")]
    ChunkCountMismatch {
        /// The backup.
        id: BackupId,
        /// The tablespace's OID.
        oid: u32,
        /// The chunk count found.
        chunks: u32,
        /// The number of CRCs found.
        crcs: usize,
    },
}

impl BackupMetaError {
    /// Whether a newer logship wrote the meta: the fix is an upgrade, not a repair.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, BackupMetaError::UnsupportedFormat { .. })
    }
}

impl BackupMeta {
    /// The object content: UTF-8 JSON, `format` first.
    pub fn to_json(&self) -> Vec<u8> {
        versioned::seal(META_FORMAT, self)
    }

    /// Reads the object content back, refusing other formats and inconsistent fields.
    pub fn from_json(bytes: &[u8]) -> Result<BackupMeta, BackupMetaError> {
        let invalid = |err: serde_json::Error| BackupMetaError::Invalid {
            reason: err.to_string(),
        };
        let fields = versioned::open(bytes, META_FORMAT).map_err(|err| match err {
            EnvelopeError::Invalid(reason) => BackupMetaError::Invalid { reason },
            EnvelopeError::Unsupported(format) => BackupMetaError::UnsupportedFormat { format },
        })?;
        let meta = BackupMeta::deserialize(serde_json::Value::Object(fields)).map_err(invalid)?;
        meta.check()?;
        Ok(meta)
    }

    /// Checks the fields that must agree with each other.
    fn check(&self) -> Result<(), BackupMetaError> {
        let id = self.id;
        if id != BackupId::new(self.timeline, self.start_lsn) {
            return Err(BackupMetaError::IdMismatch {
                id,
                timeline: self.timeline,
                start_lsn: self.start_lsn,
            });
        }
        if self.end_lsn < self.start_lsn {
            return Err(BackupMetaError::EndBeforeStart {
                id,
                end_lsn: self.end_lsn,
            });
        }
        for ts in &self.tablespaces {
            if usize::try_from(ts.chunks).ok() != Some(ts.chunk_crcs.len()) {
                return Err(BackupMetaError::ChunkCountMismatch {
                    id,
                    oid: ts.oid,
                    chunks: ts.chunks,
                    crcs: ts.chunk_crcs.len(),
                });
            }
        }
        Ok(())
    }
}

/// A value stored as a JSON string in its `Display` form and read back with `FromStr`.
pub(crate) mod as_text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// A timeline as a JSON number, never 0.
mod timeline_number {
    use serde::{Deserialize, Deserializer, Serializer, de};

    use crate::pg::TimelineId;

    pub fn serialize<S: Serializer>(tli: &TimelineId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(tli.get())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TimelineId, D::Error> {
        TimelineId::new(u32::deserialize(d)?)
            .ok_or_else(|| de::Error::custom("timeline 0 does not exist: timelines start at 1"))
    }
}

/// A WAL segment size as a JSON number of bytes.
mod segment_size {
    use serde::{Deserialize, Deserializer, Serializer, de};

    use crate::pg::WalSegSize;

    pub fn serialize<S: Serializer>(seg: &WalSegSize, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(seg.bytes())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<WalSegSize, D::Error> {
        // WalSegSizeError's fix is for a server's setting, not for a stored field.
        WalSegSize::new(u64::deserialize(d)?).map_err(|err| {
            de::Error::custom(format_args!(
                "WAL segment size {} is not a power of two from 1 MiB to 1 GiB",
                err.bytes
            ))
        })
    }
}

/// A CRC-32 as 8 upper-case hex digits.
pub(crate) mod crc_hex {
    use serde::{Deserialize, Deserializer, Serializer, de};

    use crate::pg::segment::parse_hex8;

    pub fn serialize<S: Serializer>(crc: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{crc:08X}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        parse(&String::deserialize(d)?).map_err(de::Error::custom)
    }

    pub fn parse(text: &str) -> Result<u32, String> {
        parse_hex8(text).ok_or_else(|| format!("CRC \"{text}\" is not 8 upper-case hex digits"))
    }
}

/// A list of CRC-32s, each as 8 upper-case hex digits.
pub(crate) mod crc_hex_list {
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(crcs: &[u32], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(crcs.iter().map(|crc| format!("{crc:08X}")))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|text| super::crc_hex::parse(text).map_err(de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tli(raw: u32) -> TimelineId {
        TimelineId::new(raw).unwrap()
    }

    fn sample() -> BackupMeta {
        BackupMeta {
            id: BackupId::new(tli(1), Lsn::new(0x300_0028)),
            label: "logship 2026-11-21T10:15:00Z".into(),
            timeline: tli(1),
            start_lsn: Lsn::new(0x300_0028),
            end_lsn: Lsn::new(0x300_0100),
            start_time: "2026-11-21T10:15:00.123456Z".parse().unwrap(),
            end_time: "2026-11-21T10:15:09.5Z".parse().unwrap(),
            pg_version: "15.18".into(),
            pg_version_num: 150018,
            system_id: 7312345678901234567,
            wal_segment_size: WalSegSize::DEFAULT,
            raw_bytes: 123456789,
            stored_bytes: 34567890,
            tablespaces: vec![
                TablespaceMeta {
                    oid: 0,
                    location: None,
                    chunks: 2,
                    raw_bytes: 120000000,
                    stored_bytes: 33000000,
                    chunk_crcs: vec![0x1A2B_3C4D, 0x0000_00FF],
                },
                TablespaceMeta {
                    oid: 16390,
                    location: Some("/srv/ts1".into()),
                    chunks: 1,
                    raw_bytes: 3456789,
                    stored_bytes: 1567890,
                    chunk_crcs: vec![0xDEAD_BEEF],
                },
            ],
            manifest: Some(ManifestMeta {
                raw_bytes: 34567,
                stored_bytes: 5678,
                crc: 0x0A0B_0C0D,
            }),
            checkpoint: CheckpointMode::Fast,
        }
    }

    const SAMPLE_JSON: &str = r#"{ "format": 1,
      "id": "000000010000000003000028",
      "label": "logship 2026-11-21T10:15:00Z",
      "timeline": 1,
      "start_lsn": "0/3000028", "end_lsn": "0/3000100",
      "start_time": "2026-11-21T10:15:00.123456Z", "end_time": "2026-11-21T10:15:09.5Z",
      "pg_version": "15.18", "pg_version_num": 150018,
      "system_id": "7312345678901234567",
      "wal_segment_size": 16777216,
      "raw_bytes": 123456789, "stored_bytes": 34567890,
      "tablespaces": [
        { "oid": 0, "location": null, "chunks": 2, "raw_bytes": 120000000,
          "stored_bytes": 33000000, "chunk_crcs": ["1A2B3C4D", "000000FF"] },
        { "oid": 16390, "location": "/srv/ts1", "chunks": 1, "raw_bytes": 3456789,
          "stored_bytes": 1567890, "chunk_crcs": ["DEADBEEF"] } ],
      "manifest": { "raw_bytes": 34567, "stored_bytes": 5678, "crc": "0A0B0C0D" },
      "checkpoint": "fast" }"#;

    /// `SAMPLE_JSON` with `from` replaced by `to`, which must occur exactly once.
    fn edited(from: &str, to: &str) -> Vec<u8> {
        assert_eq!(SAMPLE_JSON.matches(from).count(), 1, "{from}");
        SAMPLE_JSON.replace(from, to).into_bytes()
    }

    #[test]
    fn binlog_ids_display_parse_and_sort_by_position() {
        let server = |n| ServerNo::new(n).unwrap();
        let id = BackupId::binlog(server(2), 42, 0x1234);
        assert_eq!(id.to_string(), "000000020000002A00001234");
        assert_eq!(id.to_string().parse::<BackupId>(), Ok(id));
        assert_eq!(id.binlog_start(), (server(2), 42, 0x1234));
        assert!(BackupId::binlog(server(1), 42, 0x1234) < id);
        assert!(BackupId::binlog(server(2), 42, 0x1233) < id);
        assert!(id < BackupId::binlog(server(2), 43, 4));
    }

    #[test]
    fn ids_display_and_parse() {
        let id = BackupId::new(tli(1), Lsn::new(0x300_0028));
        assert_eq!(id.to_string(), "000000010000000003000028");
        assert_eq!("000000010000000003000028".parse(), Ok(id));
        assert_eq!(id.tli(), tli(1));
        assert_eq!(id.start_lsn(), Lsn::new(0x300_0028));
        let high = BackupId::new(tli(0xFFFF_FFFF), Lsn::new(u64::MAX));
        assert_eq!(high.to_string(), "FFFFFFFFFFFFFFFFFFFFFFFF");
        assert_eq!(high.to_string().parse(), Ok(high));
    }

    #[test]
    fn ids_reject_anything_else() {
        for bad in [
            "",
            "00000001000000000300002",
            "0000000100000000030000280",
            "000000010000000003000028 ",
            "00000001000000000300002a",
            "000000000000000003000028",
            "+00000010000000003000028",
            "00000001/000000003000028",
            "0000000100000000030000é",
        ] {
            let err = bad.parse::<BackupId>().unwrap_err();
            assert_eq!(err.input, bad);
            assert!(err.to_string().contains(&format!("\"{bad}\"")), "{err}");
        }
    }

    #[test]
    fn hand_written_json_parses() {
        assert_eq!(BackupMeta::from_json(SAMPLE_JSON.as_bytes()), Ok(sample()));
    }

    #[test]
    fn json_round_trip_puts_format_first() {
        let json = sample().to_json();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.starts_with("{\n  \"format\": 1,\n  \"id\": \"000000010000000003000028\""));
        assert!(text.contains("\"system_id\": \"7312345678901234567\""));
        assert!(text.contains("\"chunk_crcs\": [\n        \"1A2B3C4D\",\n        \"000000FF\""));
        assert_eq!(BackupMeta::from_json(&json), Ok(sample()));
        let mut without_manifest = sample();
        without_manifest.manifest = None;
        assert_eq!(
            BackupMeta::from_json(&without_manifest.to_json()),
            Ok(without_manifest)
        );
    }

    #[test]
    fn refuses_other_formats() {
        for format in ["2", "0", "\"1\"", "1.5"] {
            let err =
                BackupMeta::from_json(&edited("\"format\": 1", &format!("\"format\": {format}")))
                    .unwrap_err();
            assert_eq!(
                err,
                BackupMetaError::UnsupportedFormat {
                    format: format.into()
                }
            );
            assert!(err.is_unsupported());
        }
        assert_eq!(
            BackupMeta::from_json(&edited("\"format\": 1", "\"format\": 2"))
                .unwrap_err()
                .to_string(),
            "backup meta has format 2 but this logship reads format 1"
        );
    }

    #[test]
    fn refuses_bad_fields() {
        let cases = [
            ("\"format\": 1,", ""),
            (
                "\"checkpoint\": \"fast\"",
                "\"checkpoint\": \"fast\", \"extra\": 1",
            ),
            ("\"checkpoint\": \"fast\"", "\"checkpoint\": \"slow\""),
            ("\"timeline\": 1", "\"timeline\": 0"),
            ("\"start_lsn\": \"0/3000028\"", "\"start_lsn\": \"3000028\""),
            (
                "\"system_id\": \"7312345678901234567\"",
                "\"system_id\": 7312345678901234567",
            ),
            (
                "\"wal_segment_size\": 16777216",
                "\"wal_segment_size\": 1000",
            ),
            ("\"DEADBEEF\"", "\"deadbeef\""),
            ("\"crc\": \"0A0B0C0D\"", "\"crc\": \"A0B0C0D\""),
            (
                "\"start_time\": \"2026-11-21T10:15:00.123456Z\"",
                "\"start_time\": \"yesterday\"",
            ),
        ];
        for (from, to) in cases {
            let err = BackupMeta::from_json(&edited(from, to)).unwrap_err();
            assert!(
                matches!(err, BackupMetaError::Invalid { .. }),
                "{to}: {err}"
            );
            assert!(!err.is_unsupported(), "{to}: {err}");
        }
        // Field errors state the cause only, like the rest: no fix meant for a server.
        let text = |from: &str, to: &str| {
            BackupMeta::from_json(&edited(from, to))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            text(
                "\"wal_segment_size\": 16777216",
                "\"wal_segment_size\": 1000"
            ),
            "backup meta is not valid: WAL segment size 1000 is not a power of two from 1 MiB \
             to 1 GiB"
        );
        assert_eq!(
            text("\"timeline\": 1", "\"timeline\": 0"),
            "backup meta is not valid: timeline 0 does not exist: timelines start at 1"
        );
    }

    #[test]
    fn refuses_inconsistent_fields() {
        assert_eq!(
            BackupMeta::from_json(&edited(
                "\"id\": \"000000010000000003000028\"",
                "\"id\": \"000000020000000003000028\""
            ))
            .unwrap_err()
            .to_string(),
            "backup meta of 000000020000000003000028: the id does not match timeline 1 and \
             start LSN 0/3000028"
        );
        assert!(matches!(
            BackupMeta::from_json(&edited(
                "\"end_lsn\": \"0/3000100\"",
                "\"end_lsn\": \"0/3000000\""
            )),
            Err(BackupMetaError::EndBeforeStart { .. })
        ));
        assert_eq!(
            BackupMeta::from_json(&edited("\"chunks\": 1,", "\"chunks\": 2,"))
                .unwrap_err()
                .to_string(),
            "backup meta of 000000010000000003000028: tablespace 16390 has 2 chunks but 1 chunk \
             CRCs"
        );
    }

    proptest! {
        #[test]
        fn ids_round_trip_and_sort_like_positions(
            a in (1u32.., any::<u64>()),
            b in (1u32.., any::<u64>()),
        ) {
            let a = BackupId::new(tli(a.0), Lsn::new(a.1));
            let b = BackupId::new(tli(b.0), Lsn::new(b.1));
            prop_assert_eq!(a.to_string().parse::<BackupId>(), Ok(a));
            prop_assert_eq!(a.to_string().cmp(&b.to_string()), a.cmp(&b));
        }

        #[test]
        fn meta_round_trips(
            label in "\\PC{0,40}",
            lsns in (any::<u64>(), any::<u64>()),
            crcs in proptest::collection::vec(any::<u32>(), 0..5),
            location in proptest::option::of("/[a-z0-9/]{1,20}"),
            micros in 0i64..4_000_000_000_000_000,
        ) {
            let (start, end) = (lsns.0.min(lsns.1), lsns.0.max(lsns.1));
            let mut meta = sample();
            meta.label = label;
            meta.start_lsn = Lsn::new(start);
            meta.end_lsn = Lsn::new(end);
            meta.id = BackupId::new(meta.timeline, meta.start_lsn);
            meta.start_time = Timestamp::from_microsecond(micros).unwrap();
            meta.tablespaces[1].chunks = u32::try_from(crcs.len()).unwrap();
            meta.tablespaces[1].chunk_crcs = crcs;
            meta.tablespaces[1].location = location;
            prop_assert_eq!(BackupMeta::from_json(&meta.to_json()), Ok(meta));
        }

        #[test]
        fn from_json_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = BackupMeta::from_json(&bytes);
        }
    }
}
