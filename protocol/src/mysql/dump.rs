//! The stream a server sends after COM_BINLOG_DUMP or COM_BINLOG_DUMP_GTID, and the
//! semi-sync acknowledgement a replica sends back.
//!
//! Each payload is one of:
//! - 0x00, then (if semi-sync was announced with `SET @rpl_semi_sync_slave=1`) 0xEF and a flag
//!   byte (0x01: the source waits for an acknowledgement), then one binlog event;
//! - 0xFE, short: the end of the binlog in non-blocking mode;
//! - 0xFF: an error, such as 1236 when the requested file is purged.

use bytes::{BufMut, Bytes, BytesMut};

use super::lenenc::ParseError;
use super::packet::{encode_packet, encode_packet_parts};
use super::response::{EOF_HEADER, ERR_HEADER, EofPacket, ErrPacket, OK_HEADER};

/// The byte that starts a semi-sync header and a semi-sync acknowledgement.
pub const SEMI_SYNC_MAGIC: u8 = 0xEF;
/// The semi-sync header flag: the source waits for this event to be acknowledged.
pub const SEMI_SYNC_ACK_REQUESTED: u8 = 0x01;
/// `ER_MASTER_FATAL_ERROR_READING_BINLOG`: the dump failed (purged file, bad position, ...).
pub const ER_MASTER_FATAL_ERROR_READING_BINLOG: u16 = 1236;
/// The longest binlog file name a source accepts in an acknowledgement (`FN_REFLEN` - 1).
pub const MAX_ACK_FILE_NAME: usize = 511;

/// One binlog event from the dump stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpEvent {
    /// Whether the source waits for a semi-sync acknowledgement of this event's position.
    pub ack_requested: bool,
    /// The event: header, body and (if enabled) checksum; a slice of the received payload.
    pub event: Bytes,
}

/// A payload of the dump stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DumpPacket {
    /// A binlog event.
    Event(DumpEvent),
    /// The end of the binlog (non-blocking dump only).
    Eof,
    /// The source ended the dump with an error.
    Error(DumpError),
}

/// What went wrong with a dump, as far as the server's text says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpErrorKind {
    /// The requested binlog file is not in the index: purged, or never existed
    /// ("Could not find first log file name in binary log index file").
    LogFileNotFound,
    /// The GTIDs the replica needs are in binlogs the source has purged (MySQL "purged
    /// required binary logs"; MariaDB "Could not find GTID state requested by slave in any
    /// binlog files").
    GtidsPurged,
    /// MariaDB: the requested GTID is not in the source's binlog, or the replica diverged.
    GtidNotFound,
    /// The start position is before 4, past the end of the file, or not an event's start
    /// ("impossible position", "position > file size", "position < 4", "incorrect position").
    ImpossiblePosition,
    /// The source read an event that does not parse ("bogus data in log event"); MariaDB 10.11
    /// says this for a start position inside an event.
    BogusData,
    /// The binlog ends inside an event ("binlog truncated in the middle of event").
    Truncated,
    /// An event is larger than the source's `max_allowed_packet`.
    EventTooLarge,
    /// Another replica with the same server id (or UUID) connected, and this one was cut off.
    DuplicateServerId,
    /// The replica did not say it understands the source's binlog checksums
    /// (`SET @master_binlog_checksum` missing).
    ChecksumNotAnnounced,
    /// The source has binary logging off.
    BinlogDisabled,
    /// Any other error.
    Other,
}

/// An ERR packet on the dump stream, classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpError {
    /// The server's error, code and text as sent.
    pub err: ErrPacket,
    /// What the text says happened.
    pub kind: DumpErrorKind,
}

impl DumpError {
    /// Classifies an ERR packet received on the dump stream.
    pub fn classify(err: ErrPacket) -> DumpError {
        DumpError {
            kind: classify_message(&err.message),
            err,
        }
    }
}

/// The substrings that identify each kind, from MariaDB's and MySQL's `sql_repl.cc`,
/// `rpl_binlog_sender.cc` and their error message files. MySQL 8.0.26 and later say
/// "source"/"replica" where older servers say "master"/"slave", so matching avoids those words.
const KNOWN_MESSAGES: &[(&str, DumpErrorKind)] = &[
    (
        "could not find first log file name in binary log index file",
        DumpErrorKind::LogFileNotFound,
    ),
    ("purged required binary logs", DumpErrorKind::GtidsPurged),
    (
        "has purged binary logs containing gtids",
        DumpErrorKind::GtidsPurged,
    ),
    (
        "could not find gtid state requested by",
        DumpErrorKind::GtidsPurged,
    ),
    (
        "which is not in the master's binlog",
        DumpErrorKind::GtidNotFound,
    ),
    (
        "gtid state not found in binlog",
        DumpErrorKind::GtidNotFound,
    ),
    (
        "to start replication from impossible position",
        DumpErrorKind::ImpossiblePosition,
    ),
    (
        "to start replication from position > file size",
        DumpErrorKind::ImpossiblePosition,
    ),
    (
        "to start replication from position < 4",
        DumpErrorKind::ImpossiblePosition,
    ),
    (
        "requested incorrect position in master binlog",
        DumpErrorKind::ImpossiblePosition,
    ),
    ("bogus data in log event", DumpErrorKind::BogusData),
    (
        "binlog truncated in the middle of event",
        DumpErrorKind::Truncated,
    ),
    (
        "log event entry exceeded max_allowed_packet",
        DumpErrorKind::EventTooLarge,
    ),
    (
        "with the same server_uuid/server_id as this",
        DumpErrorKind::DuplicateServerId,
    ),
    (
        "can not handle replication events with the checksum",
        DumpErrorKind::ChecksumNotAnnounced,
    ),
    ("binary log is not open", DumpErrorKind::BinlogDisabled),
];

fn classify_message(message: &str) -> DumpErrorKind {
    let lower = message.to_ascii_lowercase();
    KNOWN_MESSAGES
        .iter()
        .find(|(needle, _)| lower.contains(needle))
        .map_or(DumpErrorKind::Other, |&(_, kind)| kind)
}

impl DumpPacket {
    /// Parses one dump-stream payload; `semi_sync` says whether the dump was started with
    /// `@rpl_semi_sync_slave=1` on a source that adds the header.
    pub fn parse(payload: &Bytes, semi_sync: bool) -> Result<DumpPacket, ParseError> {
        match payload.first().copied() {
            Some(OK_HEADER) if semi_sync => match payload.get(1..3) {
                Some(&[SEMI_SYNC_MAGIC, flag]) => Ok(DumpPacket::Event(DumpEvent {
                    ack_requested: flag & SEMI_SYNC_ACK_REQUESTED != 0,
                    event: payload.slice(3..),
                })),
                Some(&[other, _]) => Err(ParseError::Malformed {
                    message: "semi-sync dump packet",
                    detail: format!(
                        "its second byte is 0x{other:02X}, not the semi-sync magic 0xEF \
                         (does the source have semi-sync enabled?)"
                    ),
                }),
                _ => Err(ParseError::Truncated {
                    message: "semi-sync dump packet",
                    field: "semi-sync header",
                    needed: 3,
                    left: payload.len(),
                }),
            },
            Some(OK_HEADER) => Ok(DumpPacket::Event(DumpEvent {
                ack_requested: false,
                event: payload.slice(1..),
            })),
            Some(EOF_HEADER) if EofPacket::is_eof(payload) => Ok(DumpPacket::Eof),
            Some(ERR_HEADER) => Ok(DumpPacket::Error(DumpError::classify(ErrPacket::parse(
                payload,
            )?))),
            Some(other) => Err(ParseError::Malformed {
                message: "dump packet",
                detail: format!(
                    "it starts with 0x{other:02X} and has {} bytes; expected 0x00 (event), \
                     a short 0xFE (end) or 0xFF (error)",
                    payload.len()
                ),
            }),
            None => Err(ParseError::Truncated {
                message: "dump packet",
                field: "status byte",
                needed: 1,
                left: 0,
            }),
        }
    }
}

/// Appends one event of a dump stream as a server sends it (without semi-sync): the status
/// byte 0x00 and the event, split into 16 MiB packets as needed, the first with sequence id
/// `seq`; returns the id after the last.
pub fn encode_dump_event(seq: u8, event: &[u8], buf: &mut BytesMut) -> u8 {
    encode_packet_parts(seq, &[OK_HEADER], event, buf)
}

/// A semi-sync acknowledgement: the replica has the binlog up to `position` of `file`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SemiSyncAck {
    /// The binlog file of the acknowledged event.
    pub file: String,
    /// The end of the acknowledged event (its header's `log_pos`: the next event's start).
    pub position: u64,
}

/// A semi-sync acknowledgement that cannot be sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "semi-sync acknowledgement: the binlog file name is {len} bytes, the source accepts at \
     most {MAX_ACK_FILE_NAME}"
)]
pub struct AckFileNameTooLong {
    /// The name's length.
    pub len: usize,
}

impl SemiSyncAck {
    /// Appends the acknowledgement payload: 0xEF, the position (u64 LE), the file name.
    ///
    /// The name has no NUL: the source takes it as the rest of the packet
    /// (`REPLY_BINLOG_NAME_OFFSET` in `semisync.h`).
    pub fn encode_payload(&self, buf: &mut BytesMut) -> Result<(), AckFileNameTooLong> {
        if self.file.len() > MAX_ACK_FILE_NAME {
            return Err(AckFileNameTooLong {
                len: self.file.len(),
            });
        }
        buf.put_u8(SEMI_SYNC_MAGIC);
        buf.put_u64_le(self.position);
        buf.put_slice(self.file.as_bytes());
        Ok(())
    }

    /// Appends the acknowledgement as a packet with sequence id 0, as the source expects.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), AckFileNameTooLong> {
        let mut payload = BytesMut::new();
        self.encode_payload(&mut payload)?;
        encode_packet(0, &payload, buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(message: &str) -> DumpErrorKind {
        DumpError::classify(ErrPacket {
            code: ER_MASTER_FATAL_ERROR_READING_BINLOG,
            sql_state: Some("HY000".into()),
            message: message.into(),
        })
        .kind
    }

    #[test]
    fn classifies_the_servers_texts() {
        use DumpErrorKind::*;
        assert_eq!(
            err("Could not find first log file name in binary log index file"),
            LogFileNotFound
        );
        assert_eq!(
            err(
                "Client requested master to start replication from impossible position; the first event 'binlog.000001' at 9999, the last event read from 'binlog.000001' at 4, the last byte read from 'binlog.000001' at 4."
            ),
            ImpossiblePosition
        );
        assert_eq!(
            err("Client requested source to start replication from position > file size"),
            ImpossiblePosition
        );
        assert_eq!(
            err("Client requested master to start replication from position < 4"),
            ImpossiblePosition
        );
        assert_eq!(
            err(
                "Cannot replicate because the source purged required binary logs. Replicate the missing transactions from elsewhere, or provision a new replica from backup."
            ),
            GtidsPurged
        );
        assert_eq!(
            err(
                "Could not find GTID state requested by slave in any binlog files. Probably the slave state is too old and required binlog files have been purged."
            ),
            GtidsPurged
        );
        assert_eq!(
            err(
                "Error: connecting slave requested to start from GTID 0-1-100, which is not in the master's binlog"
            ),
            GtidNotFound
        );
        assert_eq!(
            err("bogus data in log event; the first event 'binlog.000001' at 5"),
            BogusData
        );
        assert_eq!(
            err(
                "A slave with the same server_uuid/server_id as this slave has connected to the master"
            ),
            DuplicateServerId
        );
        assert_eq!(
            err(
                "A replica with the same server_uuid/server_id as this replica has connected to the source"
            ),
            DuplicateServerId
        );
        assert_eq!(
            err(
                "Slave can not handle replication events with the checksum that master is configured to log"
            ),
            ChecksumNotAnnounced
        );
        assert_eq!(err("Binary log is not open"), BinlogDisabled);
        assert_eq!(
            err(
                "log event entry exceeded max_allowed_packet; Increase max_allowed_packet on master"
            ),
            EventTooLarge
        );
        assert_eq!(
            err("binlog truncated in the middle of event; consider out of disk space on master"),
            Truncated
        );
        assert_eq!(err("something new"), Other);
    }

    #[test]
    fn encodes_the_ack_without_a_nul() {
        let mut buf = BytesMut::new();
        SemiSyncAck {
            file: "binlog.000001".into(),
            position: 0x0102,
        }
        .encode(&mut buf)
        .unwrap();
        assert_eq!(&buf[..4], &[22, 0, 0, 0]);
        assert_eq!(&buf[4..13], &[0xEF, 2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&buf[13..], b"binlog.000001");
        let long = SemiSyncAck {
            file: "x".repeat(512),
            position: 4,
        };
        assert_eq!(long.encode(&mut buf), Err(AckFileNameTooLong { len: 512 }));
    }

    #[test]
    fn refuses_a_missing_semi_sync_header() {
        let payload = Bytes::from_static(&[0, 1, 2, 3]);
        assert!(DumpPacket::parse(&payload, true).is_err());
        assert!(matches!(
            DumpPacket::parse(&payload, false),
            Ok(DumpPacket::Event(DumpEvent {
                ack_requested: false,
                ..
            }))
        ));
    }
}
