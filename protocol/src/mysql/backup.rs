//! The completion marker of a MySQL/MariaDB logical backup, [`MysqlBackupMeta`]: where the
//! snapshot lines up with the binlog, and how to fetch and check the schema script and the
//! row chunks. Its JSON is part of the storage format (docs/storage-format.md, "MySQL/MariaDB
//! logical backups").

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::key::ServerNo;
use super::position::BinlogPos;
use crate::archive::backup::{BackupId, as_text, crc_hex, crc_hex_list};
use crate::archive::versioned::{self, EnvelopeError};

/// The only `format` of [`MysqlBackupMeta`] this code reads and writes.
const META_FORMAT: u64 = 1;

/// The `kind` of a MySQL/MariaDB backup meta.
pub const KIND: &str = "mysql";

/// The `method` of a logical backup.
pub const METHOD_LOGICAL: &str = "logical";

/// The completion marker of a logical backup (`<source>/backups/<id>/meta`): the backup
/// exists for readers only once this is stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlBackupMeta {
    /// Always [`KIND`].
    pub kind: String,
    /// Always [`METHOD_LOGICAL`].
    pub method: String,
    /// The backup's id; always `BackupId::binlog(server, position's file number, offset)`.
    #[serde(with = "as_text")]
    pub id: BackupId,
    /// The agent's clock when the backup started.
    pub start_time: Timestamp,
    /// The agent's clock when the last row was read.
    pub end_time: Timestamp,
    /// The agent's clock just after the snapshot's position was read, while commits were
    /// blocked: every transaction the backup holds committed before it.
    pub snapshot_time: Timestamp,
    /// The number of the snapshot's server in the source's history (as in binlog keys).
    #[serde(with = "server_number")]
    pub server: ServerNo,
    /// The binlog position the snapshot lines up with: every transaction committed before
    /// it is in the backup, none after it.
    #[serde(with = "as_text")]
    pub position: BinlogPos,
    /// The server's GTID position at the snapshot (MariaDB `gtid_binlog_pos`, MySQL
    /// `gtid_executed`), as the server prints it; empty when it has none.
    pub gtid_position: String,
    /// The server's `@@server_id`.
    pub server_id: u32,
    /// The server's version, such as `10.11.19-MariaDB-0+deb12u1`.
    pub server_version: String,
    /// Bytes of the schema script and every row chunk, before compression.
    pub raw_bytes: u64,
    /// Bytes stored for them, framing included.
    pub stored_bytes: u64,
    /// How long commits were blocked on the server to line the connections up, in seconds.
    pub commit_block_seconds: f64,
    /// The schema script object.
    pub schema: ObjectMeta,
    /// Every table whose rows the backup holds, in load order.
    pub tables: Vec<TableMeta>,
}

/// One stored object that is not chunked: its size and CRC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectMeta {
    /// The content's length in bytes.
    pub raw_bytes: u64,
    /// Bytes stored, framing included.
    pub stored_bytes: u64,
    /// The CRC-32 (IEEE) of the content.
    #[serde(with = "crc_hex")]
    pub crc: u32,
}

/// One table's rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableMeta {
    /// The table's database.
    pub db: String,
    /// The table's name.
    pub name: String,
    /// The columns each row holds, in order (generated columns are not stored).
    pub columns: Vec<String>,
    /// The columns of `columns` that are `BIT`, stored as unsigned decimal numbers.
    #[serde(default)]
    pub bit_columns: Vec<String>,
    /// The table's rows.
    pub rows: u64,
    /// Row bytes, before compression.
    pub raw_bytes: u64,
    /// Bytes stored for the table's chunks, framing included.
    pub stored_bytes: u64,
    /// The table's parts: the whole table, or ranges of its primary key.
    pub parts: Vec<PartMeta>,
}

/// Part of a table's rows, stored as `chunks` objects under `rows/<number %08X>/`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartMeta {
    /// The part's number in the keys, unique in the backup.
    pub number: u32,
    /// The part's rows.
    pub rows: u64,
    /// How many chunk objects hold the rows, numbered from 0.
    pub chunks: u32,
    /// Row bytes, before compression.
    pub raw_bytes: u64,
    /// Bytes stored for the chunks, framing included.
    pub stored_bytes: u64,
    /// The CRC-32 (IEEE) of each chunk's content, in chunk order.
    #[serde(with = "crc_hex_list")]
    pub chunk_crcs: Vec<u32>,
}

/// A `meta` object whose content is not a MySQL backup meta this version can use. The texts
/// state the cause only: the caller adds the object's key and the fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MysqlBackupMetaError {
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
    /// A `kind` or `method` this version does not read.
    #[error("backup meta is of kind {kind:?}, method {method:?}, not a MySQL logical backup")]
    OtherKind {
        /// The kind found.
        kind: String,
        /// The method found.
        method: String,
    },
    /// The id does not name the backup's own server and position.
    #[error("backup meta of {id}: the id does not match server {server} and position {position}")]
    IdMismatch {
        /// The id found.
        id: BackupId,
        /// The server number found.
        server: u32,
        /// The position found.
        position: String,
    },
    /// A part whose chunk count and CRC list disagree.
    #[error("backup meta of {id}: part {part} has {chunks} chunks but {crcs} chunk CRCs")]
    ChunkCountMismatch {
        /// The backup.
        id: BackupId,
        /// The part's number.
        part: u32,
        /// The chunk count found.
        chunks: u32,
        /// The number of CRCs found.
        crcs: usize,
    },
    /// Two parts with one number.
    #[error("backup meta of {id}: part {part} is listed twice")]
    DuplicatePart {
        /// The backup.
        id: BackupId,
        /// The part's number.
        part: u32,
    },
    /// A BIT column that is not one of the table's columns.
    #[error("backup meta of {id}: table {table}: bit column {column:?} is not among its columns")]
    UnknownBitColumn {
        /// The backup.
        id: BackupId,
        /// The table, `db.name`.
        table: String,
        /// The column.
        column: String,
    },
}

impl MysqlBackupMetaError {
    /// Whether a newer logship wrote the meta: the fix is an upgrade, not a repair.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, MysqlBackupMetaError::UnsupportedFormat { .. })
    }
}

impl MysqlBackupMeta {
    /// The object content: UTF-8 JSON, `format` first.
    pub fn to_json(&self) -> Vec<u8> {
        versioned::seal(META_FORMAT, self)
    }

    /// Reads the object content back, refusing other formats, other kinds and inconsistent
    /// fields.
    pub fn from_json(bytes: &[u8]) -> Result<MysqlBackupMeta, MysqlBackupMetaError> {
        let invalid = |err: serde_json::Error| MysqlBackupMetaError::Invalid {
            reason: err.to_string(),
        };
        let fields = versioned::open(bytes, META_FORMAT).map_err(|err| match err {
            EnvelopeError::Invalid(reason) => MysqlBackupMetaError::Invalid { reason },
            EnvelopeError::Unsupported(format) => {
                MysqlBackupMetaError::UnsupportedFormat { format }
            }
        })?;
        let text = |name: &str| fields.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        let (kind, method) = (text("kind"), text("method"));
        if kind.as_deref() != Some(KIND) || method.as_deref() != Some(METHOD_LOGICAL) {
            return Err(MysqlBackupMetaError::OtherKind {
                kind: kind.unwrap_or_default(),
                method: method.unwrap_or_default(),
            });
        }
        let meta =
            MysqlBackupMeta::deserialize(serde_json::Value::Object(fields)).map_err(invalid)?;
        meta.check()?;
        Ok(meta)
    }

    /// The id of the backup whose snapshot lines up with `position` of server `server`,
    /// or `None` past the 4 GiB a binlog position in an id can say.
    pub fn id_for(server: ServerNo, position: &BinlogPos) -> Option<BackupId> {
        let offset = u32::try_from(position.offset()).ok()?;
        Some(BackupId::binlog(server, position.file().index(), offset))
    }

    /// Checks the fields that must agree with each other.
    fn check(&self) -> Result<(), MysqlBackupMetaError> {
        let id = self.id;
        if MysqlBackupMeta::id_for(self.server, &self.position) != Some(id) {
            return Err(MysqlBackupMetaError::IdMismatch {
                id,
                server: self.server.get(),
                position: self.position.to_string(),
            });
        }
        let mut numbers = BTreeSet::new();
        for table in &self.tables {
            if let Some(column) = table
                .bit_columns
                .iter()
                .find(|bit| !table.columns.contains(bit))
            {
                return Err(MysqlBackupMetaError::UnknownBitColumn {
                    id,
                    table: format!("{}.{}", table.db, table.name),
                    column: column.clone(),
                });
            }
            for part in &table.parts {
                if !numbers.insert(part.number) {
                    return Err(MysqlBackupMetaError::DuplicatePart {
                        id,
                        part: part.number,
                    });
                }
                if usize::try_from(part.chunks).ok() != Some(part.chunk_crcs.len()) {
                    return Err(MysqlBackupMetaError::ChunkCountMismatch {
                        id,
                        part: part.number,
                        chunks: part.chunks,
                        crcs: part.chunk_crcs.len(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// A server number as a JSON number, never 0.
mod server_number {
    use serde::{Deserialize, Deserializer, Serializer, de};

    use crate::mysql::key::ServerNo;

    pub fn serialize<S: Serializer>(server: &ServerNo, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(server.get())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ServerNo, D::Error> {
        ServerNo::new(u32::deserialize(d)?)
            .ok_or_else(|| de::Error::custom("server 0 does not exist: servers start at 1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::BinlogFileName;

    fn sample() -> MysqlBackupMeta {
        let server = ServerNo::new(1).unwrap();
        let position = BinlogPos::new(BinlogFileName::new("binlog.000042").unwrap(), 4660);
        MysqlBackupMeta {
            kind: KIND.into(),
            method: METHOD_LOGICAL.into(),
            id: BackupId::binlog(server, 42, 4660),
            start_time: "2026-11-21T10:15:00.123456Z".parse().unwrap(),
            snapshot_time: "2026-11-21T10:15:00.5Z".parse().unwrap(),
            end_time: "2026-11-21T10:15:09.5Z".parse().unwrap(),
            server,
            position,
            gtid_position: "0-1-1234".into(),
            server_id: 1,
            server_version: "10.11.19-MariaDB-0+deb12u1".into(),
            raw_bytes: 20_000_123,
            stored_bytes: 7_000_045,
            commit_block_seconds: 0.012,
            schema: ObjectMeta {
                raw_bytes: 123,
                stored_bytes: 45,
                crc: 0x0A0B_0C0D,
            },
            tables: vec![TableMeta {
                db: "shop".into(),
                name: "orders".into(),
                columns: vec!["id".into(), "flags".into()],
                bit_columns: vec!["flags".into()],
                rows: 1000,
                raw_bytes: 20_000_000,
                stored_bytes: 7_000_000,
                parts: vec![
                    PartMeta {
                        number: 0,
                        rows: 600,
                        chunks: 2,
                        raw_bytes: 17_000_000,
                        stored_bytes: 6_000_000,
                        chunk_crcs: vec![0x1A2B_3C4D, 0x0000_00FF],
                    },
                    PartMeta {
                        number: 1,
                        rows: 400,
                        chunks: 1,
                        raw_bytes: 3_000_000,
                        stored_bytes: 1_000_000,
                        chunk_crcs: vec![0xDEAD_BEEF],
                    },
                ],
            }],
        }
    }

    const SAMPLE_JSON: &str = r#"{ "format": 1, "kind": "mysql", "method": "logical",
      "id": "000000010000002A00001234",
      "start_time": "2026-11-21T10:15:00.123456Z", "end_time": "2026-11-21T10:15:09.5Z",
      "snapshot_time": "2026-11-21T10:15:00.5Z",
      "server": 1, "position": "binlog.000042:4660", "gtid_position": "0-1-1234",
      "server_id": 1, "server_version": "10.11.19-MariaDB-0+deb12u1",
      "raw_bytes": 20000123, "stored_bytes": 7000045, "commit_block_seconds": 0.012,
      "schema": { "raw_bytes": 123, "stored_bytes": 45, "crc": "0A0B0C0D" },
      "tables": [ { "db": "shop", "name": "orders", "columns": ["id", "flags"],
        "bit_columns": ["flags"], "rows": 1000, "raw_bytes": 20000000, "stored_bytes": 7000000,
        "parts": [
          { "number": 0, "rows": 600, "chunks": 2, "raw_bytes": 17000000,
            "stored_bytes": 6000000, "chunk_crcs": ["1A2B3C4D", "000000FF"] },
          { "number": 1, "rows": 400, "chunks": 1, "raw_bytes": 3000000,
            "stored_bytes": 1000000, "chunk_crcs": ["DEADBEEF"] } ] } ] }"#;

    /// `SAMPLE_JSON` with `from` replaced by `to`, which must occur exactly once.
    fn edited(from: &str, to: &str) -> Vec<u8> {
        assert_eq!(SAMPLE_JSON.matches(from).count(), 1, "{from}");
        SAMPLE_JSON.replace(from, to).into_bytes()
    }

    fn error(from: &str, to: &str) -> String {
        MysqlBackupMeta::from_json(&edited(from, to))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn hand_written_json_parses() {
        assert_eq!(
            MysqlBackupMeta::from_json(SAMPLE_JSON.as_bytes()),
            Ok(sample())
        );
    }

    #[test]
    fn json_round_trip_puts_format_first() {
        let json = sample().to_json();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(
            text.starts_with("{\n  \"format\": 1,\n  \"kind\": \"mysql\""),
            "{text}"
        );
        assert!(text.contains("\"position\": \"binlog.000042:4660\""));
        assert_eq!(MysqlBackupMeta::from_json(&json), Ok(sample()));
    }

    #[test]
    fn bit_columns_may_be_left_out() {
        let json = edited("\"bit_columns\": [\"flags\"],", "");
        let meta = MysqlBackupMeta::from_json(&json).unwrap();
        assert!(meta.tables[0].bit_columns.is_empty());
    }

    #[test]
    fn refuses_other_formats_and_kinds() {
        for format in ["2", "0", "\"1\""] {
            let err = MysqlBackupMeta::from_json(&edited(
                "\"format\": 1",
                &format!("\"format\": {format}"),
            ))
            .unwrap_err();
            assert!(err.is_unsupported(), "{err}");
        }
        assert_eq!(
            error("\"format\": 1", "\"format\": 2"),
            "backup meta has format 2 but this logship reads format 1"
        );
        assert_eq!(
            error("\"method\": \"logical\"", "\"method\": \"physical\""),
            "backup meta is of kind \"mysql\", method \"physical\", not a MySQL logical backup"
        );
        // A PostgreSQL meta has no kind.
        assert_eq!(
            error("\"kind\": \"mysql\",", ""),
            "backup meta is of kind \"\", method \"logical\", not a MySQL logical backup"
        );
    }

    #[test]
    fn refuses_bad_fields() {
        for (from, to) in [
            ("\"server_id\": 1,", ""),
            ("\"server_id\": 1,", "\"server_id\": 1, \"extra\": 1,"),
            ("\"server\": 1,", "\"server\": 0,"),
            (
                "\"position\": \"binlog.000042:4660\"",
                "\"position\": \"binlog:4660\"",
            ),
            ("\"DEADBEEF\"", "\"deadbeef\""),
            ("\"rows\": 400,", "\"rows\": -1,"),
        ] {
            let err = MysqlBackupMeta::from_json(&edited(from, to)).unwrap_err();
            assert!(
                matches!(err, MysqlBackupMetaError::Invalid { .. }),
                "{to}: {err}"
            );
        }
    }

    #[test]
    fn refuses_inconsistent_fields() {
        assert_eq!(
            error(
                "\"id\": \"000000010000002A00001234\"",
                "\"id\": \"000000010000002A00001235\""
            ),
            "backup meta of 000000010000002A00001235: the id does not match server 1 and \
             position binlog.000042:4660"
        );
        assert_eq!(
            error("\"chunks\": 1,", "\"chunks\": 2,"),
            "backup meta of 000000010000002A00001234: part 1 has 2 chunks but 1 chunk CRCs"
        );
        assert_eq!(
            error("\"number\": 1,", "\"number\": 0,"),
            "backup meta of 000000010000002A00001234: part 0 is listed twice"
        );
        assert_eq!(
            error(
                "\"bit_columns\": [\"flags\"]",
                "\"bit_columns\": [\"flag\"]"
            ),
            "backup meta of 000000010000002A00001234: table shop.orders: bit column \"flag\" \
             is not among its columns"
        );
    }

    #[test]
    fn from_json_never_panics_on_truncations() {
        for end in 0..SAMPLE_JSON.len() {
            let _ = MysqlBackupMeta::from_json(&SAMPLE_JSON.as_bytes()[..end]);
        }
    }
}
