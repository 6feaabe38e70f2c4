//! Binlog events (format v4) of MySQL 5.0+ and MariaDB 5.3+: the common header,
//! checksums, and the typed bodies a shipper and a restore need.
//!
//! An event is a 19-byte little-endian header (timestamp, type, server id, size,
//! end position, flags), a body, and, when the FORMAT_DESCRIPTION_EVENT that opens
//! the file announces CRC32, a 4-byte zlib CRC-32 of everything before it.
//! [`EventDecoder`] frames one event's bytes, verifies that CRC with the algorithm
//! the last FORMAT_DESCRIPTION announced, and decodes the body of the types listed
//! in [`EventData`]; every other type passes through as [`EventData::Other`], its
//! bytes untouched.
//!
//! Layouts follow the servers' own decoders: MySQL's `libs/mysql/binlog/event`
//! (`control_events.cpp`, `statement_events.cpp`, `codecs/binary.cpp`) and MariaDB's
//! `sql/log_event.cc`. Row events, table maps and the rest of the statement context
//! are not decoded; neither is the compressed payload of TRANSACTION_PAYLOAD_EVENT.

use std::borrow::Cow;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::cursor::Cursor;
use super::gtid::{Gtid, GtidSet, MysqlGtid, Tag, Tsid, Uuid};

/// The length of the v4 common header (`LOG_EVENT_HEADER_LEN`).
pub const HEADER_LEN: usize = 19;
/// The length of a CRC32 checksum (`BINLOG_CHECKSUM_LEN`).
pub const CHECKSUM_LEN: usize = 4;
/// The largest event accepted: `slave_max_allowed_packet`'s ceiling, 1 GiB. A size
/// beyond it is corruption, not an event to wait for.
pub const MAX_EVENT_SIZE: u32 = 1 << 30;

/// Offset of the flags in the common header (`FLAGS_OFFSET`).
const FLAGS_OFFSET: usize = 17;
/// `LOG_EVENT_BINLOG_IN_USE_F`: set in a file's FORMAT_DESCRIPTION while the server
/// writes the file, cleared when it closes it cleanly.
pub const LOG_EVENT_BINLOG_IN_USE_F: u16 = 0x1;
/// `LOG_EVENT_ARTIFICIAL_F`: the event was made up by the sender (the fake ROTATE
/// at the start of a dump stream) and is not in any binlog file.
pub const LOG_EVENT_ARTIFICIAL_F: u16 = 0x20;

/// An event type code (`Log_event_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(pub u8);

impl EventType {
    /// `START_EVENT_V3`: the first event of binlog formats 1 and 3 (MySQL 4 and older).
    pub const START_V3: EventType = EventType(1);
    /// `QUERY_EVENT`: a statement.
    pub const QUERY: EventType = EventType(2);
    /// `STOP_EVENT`: the server shut down.
    pub const STOP: EventType = EventType(3);
    /// `ROTATE_EVENT`: the next events are in another file.
    pub const ROTATE: EventType = EventType(4);
    /// `INTVAR_EVENT`: `LAST_INSERT_ID` or `INSERT_ID` for the next statement.
    pub const INTVAR: EventType = EventType(5);
    /// `RAND_EVENT`: `RAND()` seeds for the next statement.
    pub const RAND: EventType = EventType(13);
    /// `USER_VAR_EVENT`: a user variable for the next statement.
    pub const USER_VAR: EventType = EventType(14);
    /// `FORMAT_DESCRIPTION_EVENT`: how the events that follow are laid out.
    pub const FORMAT_DESCRIPTION: EventType = EventType(15);
    /// `XID_EVENT`: commit of a transaction of a two-phase-capable engine.
    pub const XID: EventType = EventType(16);
    /// `TABLE_MAP_EVENT`.
    pub const TABLE_MAP: EventType = EventType(19);
    /// `HEARTBEAT_LOG_EVENT`: a keep-alive in a dump stream, never in a file.
    pub const HEARTBEAT: EventType = EventType(27);
    /// `ROWS_QUERY_LOG_EVENT`.
    pub const ROWS_QUERY: EventType = EventType(29);
    /// `WRITE_ROWS_EVENT` (v2).
    pub const WRITE_ROWS: EventType = EventType(30);
    /// `UPDATE_ROWS_EVENT` (v2).
    pub const UPDATE_ROWS: EventType = EventType(31);
    /// `DELETE_ROWS_EVENT` (v2).
    pub const DELETE_ROWS: EventType = EventType(32);
    /// MySQL `GTID_LOG_EVENT`.
    pub const GTID: EventType = EventType(33);
    /// MySQL `ANONYMOUS_GTID_LOG_EVENT`.
    pub const ANONYMOUS_GTID: EventType = EventType(34);
    /// MySQL `PREVIOUS_GTIDS_LOG_EVENT`.
    pub const PREVIOUS_GTIDS: EventType = EventType(35);
    /// `XA_PREPARE_LOG_EVENT`.
    pub const XA_PREPARE: EventType = EventType(38);
    /// MySQL `PARTIAL_UPDATE_ROWS_EVENT`.
    pub const PARTIAL_UPDATE_ROWS: EventType = EventType(39);
    /// MySQL `TRANSACTION_PAYLOAD_EVENT`: a compressed transaction.
    pub const TRANSACTION_PAYLOAD: EventType = EventType(40);
    /// MySQL `HEARTBEAT_LOG_EVENT_V2`.
    pub const HEARTBEAT_V2: EventType = EventType(41);
    /// MySQL 8.4 `GTID_TAGGED_LOG_EVENT`.
    pub const GTID_TAGGED: EventType = EventType(42);
    /// MariaDB `ANNOTATE_ROWS_EVENT`: the statement behind the row events that follow.
    pub const ANNOTATE_ROWS: EventType = EventType(0xa0);
    /// MariaDB `BINLOG_CHECKPOINT_EVENT`.
    pub const BINLOG_CHECKPOINT: EventType = EventType(0xa1);
    /// MariaDB `GTID_EVENT`: the start of an event group.
    pub const MARIADB_GTID: EventType = EventType(0xa2);
    /// MariaDB `GTID_LIST_EVENT`: the binlog state at a file's start.
    pub const GTID_LIST: EventType = EventType(0xa3);
    /// MariaDB `START_ENCRYPTION_EVENT`.
    pub const START_ENCRYPTION: EventType = EventType(0xa4);
    /// MariaDB `QUERY_COMPRESSED_EVENT`: a QUERY whose text is zlib-compressed.
    pub const QUERY_COMPRESSED: EventType = EventType(0xa5);

    /// The server's name for the type, or `None` for one not listed here.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "START_EVENT_V3",
            2 => "QUERY_EVENT",
            3 => "STOP_EVENT",
            4 => "ROTATE_EVENT",
            5 => "INTVAR_EVENT",
            6 => "LOAD_EVENT",
            8 => "CREATE_FILE_EVENT",
            9 => "APPEND_BLOCK_EVENT",
            10 => "EXEC_LOAD_EVENT",
            11 => "DELETE_FILE_EVENT",
            12 => "NEW_LOAD_EVENT",
            13 => "RAND_EVENT",
            14 => "USER_VAR_EVENT",
            15 => "FORMAT_DESCRIPTION_EVENT",
            16 => "XID_EVENT",
            17 => "BEGIN_LOAD_QUERY_EVENT",
            18 => "EXECUTE_LOAD_QUERY_EVENT",
            19 => "TABLE_MAP_EVENT",
            20 => "PRE_GA_WRITE_ROWS_EVENT",
            21 => "PRE_GA_UPDATE_ROWS_EVENT",
            22 => "PRE_GA_DELETE_ROWS_EVENT",
            23 => "WRITE_ROWS_EVENT_V1",
            24 => "UPDATE_ROWS_EVENT_V1",
            25 => "DELETE_ROWS_EVENT_V1",
            26 => "INCIDENT_EVENT",
            27 => "HEARTBEAT_LOG_EVENT",
            28 => "IGNORABLE_LOG_EVENT",
            29 => "ROWS_QUERY_LOG_EVENT",
            30 => "WRITE_ROWS_EVENT",
            31 => "UPDATE_ROWS_EVENT",
            32 => "DELETE_ROWS_EVENT",
            33 => "GTID_LOG_EVENT",
            34 => "ANONYMOUS_GTID_LOG_EVENT",
            35 => "PREVIOUS_GTIDS_LOG_EVENT",
            36 => "TRANSACTION_CONTEXT_EVENT",
            37 => "VIEW_CHANGE_EVENT",
            38 => "XA_PREPARE_LOG_EVENT",
            39 => "PARTIAL_UPDATE_ROWS_EVENT",
            40 => "TRANSACTION_PAYLOAD_EVENT",
            41 => "HEARTBEAT_LOG_EVENT_V2",
            42 => "GTID_TAGGED_LOG_EVENT",
            0xa0 => "ANNOTATE_ROWS_EVENT",
            0xa1 => "BINLOG_CHECKPOINT_EVENT",
            0xa2 => "GTID_EVENT",
            0xa3 => "GTID_LIST_EVENT",
            0xa4 => "START_ENCRYPTION_EVENT",
            0xa5 => "QUERY_COMPRESSED_EVENT",
            0xa6 => "WRITE_ROWS_COMPRESSED_EVENT_V1",
            0xa7 => "UPDATE_ROWS_COMPRESSED_EVENT_V1",
            0xa8 => "DELETE_ROWS_COMPRESSED_EVENT_V1",
            0xa9 => "WRITE_ROWS_COMPRESSED_EVENT",
            0xaa => "UPDATE_ROWS_COMPRESSED_EVENT",
            0xab => "DELETE_ROWS_COMPRESSED_EVENT",
            _ => return None,
        })
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "event type {}", self.0),
        }
    }
}

/// The v4 common header every event starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventHeader {
    /// When the statement started, in seconds since the Unix epoch (server clock).
    pub timestamp: u32,
    /// The event type.
    pub event_type: EventType,
    /// The server that first logged the event.
    pub server_id: u32,
    /// The whole event's length, header and checksum included.
    pub event_size: u32,
    /// The offset just past the event in the originating server's binlog
    /// (`end_log_pos`); 0 in events a sender made up or re-sent.
    pub log_pos: u32,
    /// `LOG_EVENT_*_F` flags.
    pub flags: u16,
}

impl EventHeader {
    /// Parses the first 19 bytes of `buf`, or `None` if it is shorter.
    pub fn parse(buf: &[u8]) -> Option<EventHeader> {
        let mut c = Cursor::new(buf);
        Some(EventHeader {
            timestamp: c.u32()?,
            event_type: EventType(c.u8()?),
            server_id: c.u32()?,
            event_size: c.u32()?,
            log_pos: c.u32()?,
            flags: c.u16()?,
        })
    }

    /// Appends the 19 header bytes.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u32_le(self.timestamp);
        out.put_u8(self.event_type.0);
        out.put_u32_le(self.server_id);
        out.put_u32_le(self.event_size);
        out.put_u32_le(self.log_pos);
        out.put_u16_le(self.flags);
    }

    /// Whether [`LOG_EVENT_ARTIFICIAL_F`] is set: the sender made the event up.
    pub fn is_artificial(&self) -> bool {
        self.flags & LOG_EVENT_ARTIFICIAL_F != 0
    }
}

/// The checksum algorithm a FORMAT_DESCRIPTION announces (`enum_binlog_checksum_alg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChecksumAlg {
    /// `BINLOG_CHECKSUM_ALG_OFF`: no checksum (the FORMAT_DESCRIPTION itself still
    /// ends in 4 unused bytes).
    Off,
    /// `BINLOG_CHECKSUM_ALG_CRC32`: every event ends in the zlib CRC-32 of the rest.
    Crc32,
}

impl ChecksumAlg {
    /// The bytes this algorithm appends to an event.
    pub fn len(self) -> usize {
        match self {
            ChecksumAlg::Off => 0,
            ChecksumAlg::Crc32 => CHECKSUM_LEN,
        }
    }

    /// Whether it appends nothing.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// Bytes that are not a valid event. Every variant names the byte offset of the
/// event concerned (in a file: from its start; in a stream: what the caller said).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BinlogError {
    /// The file does not start with `\xfebin`.
    #[error("not a binlog file: it starts with {found:02x?}, not the magic fe 62 69 6e")]
    BadMagic {
        /// The first bytes found.
        found: Vec<u8>,
    },
    /// The input ends inside an event.
    #[error(
        "binlog is truncated at offset {offset}: the event there needs {need} bytes but only \
         {have} follow"
    )]
    Truncated {
        /// Where the incomplete event starts.
        offset: u64,
        /// The bytes present.
        have: u64,
        /// The bytes it needs (the header, until its size is known).
        need: u64,
    },
    /// The header's size cannot be an event's.
    #[error(
        "event at offset {offset} has invalid size {size} (at least {min}, at most 1 GiB): \
         the binlog is corrupt"
    )]
    BadEventSize {
        /// Where the event starts.
        offset: u64,
        /// `event_size` from its header.
        size: u32,
        /// The least this event could be.
        min: u32,
    },
    /// The bytes handed over are not the length the header says.
    #[error("event at offset {offset} is {len} bytes, but its header says {size}")]
    SizeMismatch {
        /// Where the event starts.
        offset: u64,
        /// The bytes given.
        len: usize,
        /// `event_size` from its header.
        size: u32,
    },
    /// The stored CRC32 does not match the event's bytes.
    #[error(
        "{event_type} at offset {offset} fails its CRC32 check (stored {stored:08x}, computed \
         {computed:08x}): the binlog is corrupt"
    )]
    Checksum {
        /// Where the event starts.
        offset: u64,
        /// Its type.
        event_type: EventType,
        /// The CRC in the event's last 4 bytes.
        stored: u32,
        /// The CRC of the bytes before them.
        computed: u32,
    },
    /// A FORMAT_DESCRIPTION announces a checksum algorithm this code does not know.
    #[error(
        "FORMAT_DESCRIPTION_EVENT at offset {offset} announces unknown checksum algorithm {alg}"
    )]
    UnknownChecksum {
        /// Where the event starts.
        offset: u64,
        /// The algorithm byte.
        alg: u8,
    },
    /// The body does not have its type's layout.
    #[error("{event_type} at offset {offset} is malformed ({detail}): the binlog is corrupt")]
    Malformed {
        /// Where the event starts.
        offset: u64,
        /// Its type.
        event_type: EventType,
        /// What does not fit.
        detail: String,
    },
}

impl BinlogError {
    /// The byte offset of the event the error concerns (0 for a bad magic).
    pub fn offset(&self) -> u64 {
        match self {
            BinlogError::BadMagic { .. } => 0,
            BinlogError::Truncated { offset, .. }
            | BinlogError::BadEventSize { offset, .. }
            | BinlogError::SizeMismatch { offset, .. }
            | BinlogError::Checksum { offset, .. }
            | BinlogError::UnknownChecksum { offset, .. }
            | BinlogError::Malformed { offset, .. } => *offset,
        }
    }
}

/// A FORMAT_DESCRIPTION_EVENT: the binlog version, the writing server and the layout
/// of the events that follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatDescription {
    /// The binlog format version: 4 for MySQL 5.0+ and MariaDB.
    pub binlog_version: u16,
    /// The writing server's version string, such as `10.11.6-MariaDB-log`.
    pub server_version: String,
    /// When the file was created (seconds), or 0 (a re-sent or rotated-into event).
    pub create_timestamp: u32,
    /// The common header length of the following events (19).
    pub header_len: u8,
    /// The post-header length of each event type, indexed by type code - 1.
    pub post_header_lens: Vec<u8>,
    /// The checksum algorithm, or `None` for servers older than checksums (MySQL
    /// before 5.6.1, MariaDB before 5.3), whose events have none.
    pub checksum: Option<ChecksumAlg>,
}

impl FormatDescription {
    /// The post-header length of `event_type`, if this description lists it.
    pub fn post_header_len(&self, event_type: EventType) -> Option<u8> {
        let i = usize::from(event_type.0).checked_sub(1)?;
        self.post_header_lens.get(i).copied()
    }

    /// The checksum length of the events this description governs.
    pub fn checksum_len(&self) -> usize {
        self.checksum.map_or(0, ChecksumAlg::len)
    }

    /// Whether the writer is MariaDB (its version string says so).
    pub fn is_mariadb(&self) -> bool {
        self.server_version.contains("MariaDB") || self.server_version.contains("-maria-")
    }
}

/// `ST_SERVER_VER_LEN`: the server version field of FORMAT_DESCRIPTION.
const SERVER_VERSION_LEN: usize = 50;

/// Whether a server of this version wrote the checksum algorithm into its
/// FORMAT_DESCRIPTION: MySQL from 5.6.1 (`checksum_version_split_mysql`), MariaDB
/// from 5.3.0 (`checksum_version_split_mariadb`). Both servers decide this from
/// the version string alone, and so must a reader: the layout says nothing.
fn version_has_checksum(version: &str) -> bool {
    let mut split = [0u32; 3];
    let mut rest = version;
    for part in &mut split {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        *part = rest.get(..digits).and_then(|d| d.parse().ok()).unwrap_or(0);
        rest = rest.get(digits..).unwrap_or_default();
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    let mariadb = version.contains("MariaDB") || version.contains("-maria-");
    let threshold = if mariadb { [5, 3, 0] } else { [5, 6, 1] };
    split >= threshold
}

/// A ROTATE_EVENT: the next event is at `position` in `next_file`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotate {
    /// Where the next event is in the next file (4 for the first).
    pub position: u64,
    /// The next file's name, such as `binlog.000043`.
    pub next_file: String,
}

/// A QUERY_EVENT: a statement, with its context reduced to what logship needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// The session that ran it.
    pub thread_id: u32,
    /// Seconds it took.
    pub exec_time: u32,
    /// The error it raised on the source, 0 for none.
    pub error_code: u16,
    /// The status variables, not decoded (`sql_mode`, charsets, time zone...).
    pub status_vars: Bytes,
    /// The default database, empty if none.
    pub db: Bytes,
    /// The statement text, in the session's character set (not always UTF-8).
    pub query: Bytes,
}

impl Query {
    /// The statement as text; bytes that are not UTF-8 are replaced.
    pub fn query_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.query)
    }
}

/// An XA transaction id (`XID`): format id, global transaction id, branch qualifier.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct XaXid {
    /// `formatID`.
    pub format_id: u32,
    /// `gtrid`.
    pub gtrid: Bytes,
    /// `bqual`.
    pub bqual: Bytes,
}

/// An XA_PREPARE_LOG_EVENT: `XA PREPARE`, or `XA COMMIT ... ONE PHASE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XaPrepare {
    /// True for `XA COMMIT ... ONE PHASE`: the transaction commits here.
    pub one_phase: bool,
    /// The transaction.
    pub xid: XaXid,
}

/// MariaDB GTID event flags (`Gtid_log_event::FL_*`, `flags2`).
pub mod mariadb_gtid_flags {
    /// The group is one statement with no BEGIN/COMMIT around it (DDL, non-transactional).
    pub const FL_STANDALONE: u8 = 1;
    /// A commit id follows: the group was group-committed with others of that id.
    pub const FL_GROUP_COMMIT_ID: u8 = 2;
    /// The group can be rolled back (a transactional engine only).
    pub const FL_TRANSACTIONAL: u8 = 4;
    /// The group may be applied in parallel with others.
    pub const FL_ALLOW_PARALLEL: u8 = 8;
    /// The group waited for a row lock on the source.
    pub const FL_WAITED: u8 = 16;
    /// The group is DDL.
    pub const FL_DDL: u8 = 32;
    /// The group is an XA transaction that ends in `XA PREPARE`.
    pub const FL_PREPARED_XA: u8 = 64;
    /// The group is `XA COMMIT` or `XA ROLLBACK` of a prepared XA transaction.
    pub const FL_COMPLETED_XA: u8 = 128;
}

/// A MariaDB GTID_EVENT: the start of an event group and its GTID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MariadbGtidEvent {
    /// The GTID: domain and sequence from the body, server id from the header.
    pub gtid: Gtid,
    /// `flags2`: [`mariadb_gtid_flags`].
    pub flags: u8,
    /// The group commit id, with `FL_GROUP_COMMIT_ID`.
    pub commit_id: Option<u64>,
    /// The XA transaction, with `FL_PREPARED_XA` or `FL_COMPLETED_XA`.
    pub xid: Option<XaXid>,
    /// `flags_extra` (10.8+), 0 when absent. The fields it announces are not decoded.
    pub flags_extra: u8,
}

impl MariadbGtidEvent {
    /// Whether `flag` (one of [`mariadb_gtid_flags`]) is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// A MariaDB GTID_LIST_EVENT: the binlog state (last GTID per domain and server) at
/// the start of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GtidList {
    /// The top 4 bits of the count field (`FLAG_UNTIL_REACHED`, `FLAG_IGN_GTIDS`), shifted down.
    pub flags: u8,
    /// The GTIDs.
    pub gtids: Vec<Gtid>,
}

/// The logical clock of a MySQL GTID event (`LOGICAL_TIMESTAMP_TYPECODE` 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogicalClock {
    /// The last transaction this one depends on.
    pub last_committed: u64,
    /// This transaction's number in the file.
    pub sequence_number: u64,
}

/// A MySQL GTID_LOG_EVENT, ANONYMOUS_GTID_LOG_EVENT or 8.4 GTID_TAGGED_LOG_EVENT: the
/// start of a transaction. Fields a server version did not write are `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MysqlGtidEvent {
    /// `gtid_flags` (`FLAG_MAY_HAVE_SBR` = 1).
    pub flags: u8,
    /// The GTID; `None` for ANONYMOUS_GTID (GTIDs off).
    pub gtid: Option<MysqlGtid>,
    /// `last_committed`/`sequence_number` (5.7+).
    pub logical_clock: Option<LogicalClock>,
    /// Commit time on this server, microseconds since the epoch (8.0.1+).
    pub immediate_commit_timestamp: Option<u64>,
    /// Commit time on the server that first committed it (8.0.1+).
    pub original_commit_timestamp: Option<u64>,
    /// The transaction's length in bytes, this event included (8.0.2+).
    pub transaction_length: Option<u64>,
    /// This server's version as a number such as 80040 (8.0.14+).
    pub immediate_server_version: Option<u32>,
    /// The originating server's version (8.0.14+).
    pub original_server_version: Option<u32>,
    /// `commit_group_ticket` (8.0.27+, group replication), if set.
    pub commit_group_ticket: Option<u64>,
}

/// How a TRANSACTION_PAYLOAD_EVENT's payload is compressed (`compression::type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadCompression {
    /// `ZSTD` (0).
    Zstd,
    /// `NONE` (255).
    None,
}

/// A MySQL TRANSACTION_PAYLOAD_EVENT: a whole transaction's events, compressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionPayload {
    /// The compression.
    pub compression: PayloadCompression,
    /// The payload length as the header states it.
    pub payload_size: u64,
    /// The length once decompressed, if stated.
    pub uncompressed_size: Option<u64>,
    /// The (compressed) payload: the inner events, without their checksums.
    pub payload: Bytes,
}

/// The decoded body of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventData {
    /// FORMAT_DESCRIPTION_EVENT.
    FormatDescription(FormatDescription),
    /// ROTATE_EVENT.
    Rotate(Rotate),
    /// QUERY_EVENT.
    Query(Query),
    /// XID_EVENT: the commit of the transaction with this server-local id.
    Xid(u64),
    /// STOP_EVENT.
    Stop,
    /// HEARTBEAT_LOG_EVENT (both servers): the sender's current file; its
    /// position is the header's `log_pos`.
    Heartbeat {
        /// The binlog file the sender is reading.
        log_file: String,
    },
    /// MySQL HEARTBEAT_LOG_EVENT_V2, with a 64-bit position.
    HeartbeatV2 {
        /// The binlog file the sender is reading.
        log_file: String,
        /// The position in it.
        position: u64,
    },
    /// XA_PREPARE_LOG_EVENT.
    XaPrepare(XaPrepare),
    /// MariaDB GTID_EVENT.
    MariadbGtid(MariadbGtidEvent),
    /// MariaDB GTID_LIST_EVENT.
    GtidList(GtidList),
    /// MariaDB BINLOG_CHECKPOINT_EVENT: the oldest file crash recovery needs.
    BinlogCheckpoint {
        /// The file name.
        file: String,
    },
    /// MariaDB ANNOTATE_ROWS_EVENT: the statement behind the row events.
    AnnotateRows {
        /// The statement text.
        query: Bytes,
    },
    /// MySQL GTID, ANONYMOUS_GTID or GTID_TAGGED event.
    MysqlGtid(MysqlGtidEvent),
    /// MySQL PREVIOUS_GTIDS_LOG_EVENT: the GTIDs of all earlier files.
    PreviousGtids(GtidSet),
    /// MySQL TRANSACTION_PAYLOAD_EVENT.
    TransactionPayload(TransactionPayload),
    /// Any other type: see [`Event::body`].
    Other,
}

/// One framed, checked and decoded event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    offset: u64,
    header: EventHeader,
    raw: Bytes,
    /// Bytes after the body: a CRC32, or a FORMAT_DESCRIPTION's unused checksum room.
    checksum_len: usize,
    /// Whether those bytes are a CRC32.
    has_crc: bool,
    data: EventData,
}

impl Event {
    /// Where the event starts (file offset, or what the stream's caller gave).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Where it ends: [`offset`](Event::offset) plus its size.
    pub fn end_offset(&self) -> u64 {
        self.offset + self.raw.len() as u64
    }

    /// The common header.
    pub fn header(&self) -> &EventHeader {
        &self.header
    }

    /// The event type.
    pub fn event_type(&self) -> EventType {
        self.header.event_type
    }

    /// The whole event, byte for byte as received: header, body, checksum.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The body: after the common header, before the checksum.
    pub fn body(&self) -> Bytes {
        let end = self.raw.len().saturating_sub(self.checksum_len);
        self.raw.slice(HEADER_LEN.min(end)..end)
    }

    /// The stored CRC32, for events that carry one (already verified).
    pub fn checksum(&self) -> Option<u32> {
        if !self.has_crc {
            return None;
        }
        let tail = self
            .raw
            .get(self.raw.len().saturating_sub(CHECKSUM_LEN)..)?;
        Some(u32::from_le_bytes(tail.try_into().ok()?))
    }

    /// The decoded body.
    pub fn data(&self) -> &EventData {
        &self.data
    }

    /// Whether the sender made this event up ([`LOG_EVENT_ARTIFICIAL_F`]).
    pub fn is_artificial(&self) -> bool {
        self.header.is_artificial()
    }

    /// Whether this event exists only in a dump stream and must not be written to an
    /// archived copy of the file: a heartbeat, an artificial event (the fake ROTATE
    /// that opens every dump, MariaDB's fake GTID_LIST), or an event with
    /// `log_pos` 0 such as the FORMAT_DESCRIPTION re-sent when a dump resumes
    /// mid-file (its `log_pos` and create time zeroed, its CRC recomputed).
    pub fn is_stream_only(&self) -> bool {
        matches!(
            self.data,
            EventData::Heartbeat { .. } | EventData::HeartbeatV2 { .. }
        ) || self.is_artificial()
            || self.header.log_pos == 0
    }
}

/// The zlib CRC-32 binlogs use (`my_checksum`, `crc32()`).
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Decodes events one at a time, remembering the last FORMAT_DESCRIPTION so that
/// later events are read with the layout and checksum algorithm it announced.
#[derive(Clone, Debug, Default)]
pub struct EventDecoder {
    format: Option<FormatDescription>,
    /// The checksum to assume before any FORMAT_DESCRIPTION; `None`: detect it.
    initial: Option<ChecksumAlg>,
}

impl EventDecoder {
    /// A decoder that learns the layout from the first FORMAT_DESCRIPTION.
    ///
    /// An event before it (the fake ROTATE that opens a dump stream) is taken to
    /// carry a CRC32 if its last 4 bytes are the CRC32 of the rest: the server
    /// checksums it with the algorithm of the file it is about to send, which the
    /// reader cannot know yet.
    pub fn new() -> EventDecoder {
        EventDecoder::default()
    }

    /// A decoder for a dump stream whose checksum was negotiated
    /// (`@master_binlog_checksum`): events before the first FORMAT_DESCRIPTION are
    /// read with `alg`.
    pub fn with_checksum(alg: ChecksumAlg) -> EventDecoder {
        EventDecoder {
            format: None,
            initial: Some(alg),
        }
    }

    /// A decoder that continues after `format`, for reading a file from the middle.
    pub fn with_format(format: FormatDescription) -> EventDecoder {
        EventDecoder {
            format: Some(format),
            initial: None,
        }
    }

    /// The last FORMAT_DESCRIPTION decoded (or given).
    pub fn format(&self) -> Option<&FormatDescription> {
        self.format.as_ref()
    }

    /// Decodes one whole event, `raw`, which starts at `offset`.
    pub fn decode(&mut self, raw: Bytes, offset: u64) -> Result<Event, BinlogError> {
        let header = EventHeader::parse(&raw).ok_or(BinlogError::Truncated {
            offset,
            have: raw.len() as u64,
            need: HEADER_LEN as u64,
        })?;
        if raw.len() != header.event_size as usize {
            return Err(BinlogError::SizeMismatch {
                offset,
                len: raw.len(),
                size: header.event_size,
            });
        }
        let event_type = header.event_type;
        let malformed = |detail: String| BinlogError::Malformed {
            offset,
            event_type,
            detail,
        };
        if event_type == EventType::FORMAT_DESCRIPTION {
            let format = decode_format_description(&raw, offset)?;
            let checksum_len = if format.checksum.is_some() {
                CHECKSUM_LEN
            } else {
                0
            };
            if format.checksum == Some(ChecksumAlg::Crc32) {
                // The server computes this CRC as if LOG_EVENT_BINLOG_IN_USE_F were
                // clear, so that clearing the flag in place when it closes the file
                // leaves the CRC valid; readers check it the same way
                // (`event_checksum_test`).
                let mut unflagged = raw.to_vec();
                if let Some(flags) = unflagged.get_mut(FLAGS_OFFSET) {
                    *flags &= !(LOG_EVENT_BINLOG_IN_USE_F as u8);
                }
                verify_crc(&unflagged, offset, event_type)?;
            }
            let has_crc = format.checksum == Some(ChecksumAlg::Crc32);
            let data = EventData::FormatDescription(format.clone());
            self.format = Some(format);
            return Ok(Event {
                offset,
                header,
                raw,
                checksum_len,
                has_crc,
                data,
            });
        }
        let header_len = self
            .format
            .as_ref()
            .map_or(HEADER_LEN, |f| usize::from(f.header_len));
        let checksum_len = match (&self.format, self.initial) {
            (Some(format), _) => format.checksum_len(),
            (None, Some(alg)) => alg.len(),
            (None, None) => {
                let n = raw.len().saturating_sub(CHECKSUM_LEN);
                let stored = raw.get(n..).and_then(|t| <[u8; 4]>::try_from(t).ok());
                let probed = n >= HEADER_LEN
                    && stored.is_some_and(|s| {
                        u32::from_le_bytes(s) == crc32(raw.get(..n).unwrap_or_default())
                    });
                if probed { CHECKSUM_LEN } else { 0 }
            }
        };
        if raw.len() < header_len + checksum_len {
            return Err(BinlogError::BadEventSize {
                offset,
                size: header.event_size,
                min: (header_len + checksum_len) as u32,
            });
        }
        if checksum_len > 0 {
            verify_crc(&raw, offset, event_type)?;
        }
        let body = raw
            .get(header_len..raw.len() - checksum_len)
            .unwrap_or_default();
        let data =
            decode_body(event_type, &header, body, self.format.as_ref()).map_err(malformed)?;
        Ok(Event {
            offset,
            header,
            raw,
            checksum_len,
            has_crc: checksum_len > 0,
            data,
        })
    }
}

fn verify_crc(raw: &[u8], offset: u64, event_type: EventType) -> Result<(), BinlogError> {
    let n = raw.len().saturating_sub(CHECKSUM_LEN);
    let (Some(data), Some(tail)) = (raw.get(..n), raw.get(n..)) else {
        return Ok(());
    };
    let stored = u32::from_le_bytes(tail.try_into().unwrap_or_default());
    let computed = crc32(data);
    if stored == computed {
        Ok(())
    } else {
        Err(BinlogError::Checksum {
            offset,
            event_type,
            stored,
            computed,
        })
    }
}

fn decode_format_description(raw: &[u8], offset: u64) -> Result<FormatDescription, BinlogError> {
    let event_type = EventType::FORMAT_DESCRIPTION;
    let malformed = |detail: &str| BinlogError::Malformed {
        offset,
        event_type,
        detail: detail.to_owned(),
    };
    // A FORMAT_DESCRIPTION's own header is always the 19-byte one: the length of
    // later headers is what it announces.
    let body = raw.get(HEADER_LEN..).unwrap_or_default();
    let mut c = Cursor::new(body);
    let (Some(binlog_version), Some(version), Some(create_timestamp), Some(header_len)) =
        (c.u16(), c.bytes(SERVER_VERSION_LEN), c.u32(), c.u8())
    else {
        return Err(malformed("shorter than its fixed fields"));
    };
    let version = version.split(|&b| b == 0).next().unwrap_or_default();
    let server_version = String::from_utf8_lossy(version).into_owned();
    if usize::from(header_len) < HEADER_LEN {
        return Err(malformed("common header length below 19"));
    }
    let rest = c.rest();
    let (post_header_lens, checksum) = if version_has_checksum(&server_version) {
        // The algorithm byte and 4 checksum bytes close the event, whatever the
        // algorithm: with OFF the 4 bytes are there but unused.
        let Some(split) = rest.len().checked_sub(1 + CHECKSUM_LEN) else {
            return Err(malformed("no room for the checksum algorithm"));
        };
        let (lens, tail) = rest.split_at(split);
        let alg = match tail.first().copied().unwrap_or_default() {
            0 => Some(ChecksumAlg::Off),
            1 => Some(ChecksumAlg::Crc32),
            // BINLOG_CHECKSUM_ALG_UNDEF: written by nobody, treated as none.
            255 => None,
            alg => return Err(BinlogError::UnknownChecksum { offset, alg }),
        };
        (lens.to_vec(), alg)
    } else {
        (rest.to_vec(), None)
    };
    Ok(FormatDescription {
        binlog_version,
        server_version,
        create_timestamp,
        header_len,
        post_header_lens,
        checksum,
    })
}

/// Post-header lengths of binlog v4 when no FORMAT_DESCRIPTION is known.
const DEFAULT_QUERY_POST_HEADER: usize = 13;
const DEFAULT_ROTATE_POST_HEADER: usize = 8;

fn post_header(format: Option<&FormatDescription>, event_type: EventType, default: usize) -> usize {
    format
        .and_then(|f| f.post_header_len(event_type))
        .map_or(default, usize::from)
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
}

fn decode_body(
    event_type: EventType,
    header: &EventHeader,
    body: &[u8],
    format: Option<&FormatDescription>,
) -> Result<EventData, String> {
    let short = |what: &str| format!("body of {} bytes ends inside {what}", body.len());
    let mut c = Cursor::new(body);
    Ok(match event_type {
        EventType::ROTATE => {
            let post = post_header(format, event_type, DEFAULT_ROTATE_POST_HEADER);
            let post = c.bytes(post).ok_or_else(|| short("the post-header"))?;
            let position = Cursor::new(post).u64().unwrap_or(4);
            let name = c.rest();
            if name.is_empty() {
                return Err("no file name".into());
            }
            EventData::Rotate(Rotate {
                position,
                next_file: utf8(name, "the file name")?,
            })
        }
        EventType::QUERY => EventData::Query(decode_query(body, format)?),
        EventType::XID => EventData::Xid(c.u64().ok_or_else(|| short("the xid"))?),
        EventType::STOP => EventData::Stop,
        EventType::HEARTBEAT => EventData::Heartbeat {
            log_file: utf8(c.rest(), "the file name")?,
        },
        EventType::HEARTBEAT_V2 => decode_heartbeat_v2(body)?,
        EventType::XA_PREPARE => {
            let one_phase = c.u8().ok_or_else(|| short("one_phase"))? != 0;
            let (Some(format_id), Some(gtrid_len), Some(bqual_len)) = (c.u32(), c.u32(), c.u32())
            else {
                return Err(short("the xid lengths"));
            };
            if gtrid_len > 64 || bqual_len > 64 {
                return Err(format!("xid lengths {gtrid_len}+{bqual_len} exceed 64+64"));
            }
            let gtrid = c.bytes(gtrid_len as usize).ok_or_else(|| short("gtrid"))?;
            let bqual = c.bytes(bqual_len as usize).ok_or_else(|| short("bqual"))?;
            EventData::XaPrepare(XaPrepare {
                one_phase,
                xid: XaXid {
                    format_id,
                    gtrid: Bytes::copy_from_slice(gtrid),
                    bqual: Bytes::copy_from_slice(bqual),
                },
            })
        }
        EventType::MARIADB_GTID => EventData::MariadbGtid(decode_mariadb_gtid(header, body)?),
        EventType::GTID_LIST => {
            let count = c.u32().ok_or_else(|| short("the count"))?;
            let n = count & ((1 << 28) - 1);
            if u64::from(n) * 16 > c.remaining() as u64 {
                return Err(format!("{n} GTIDs do not fit in {} bytes", body.len()));
            }
            let mut gtids = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let (Some(domain), Some(server), Some(seq)) = (c.u32(), c.u32(), c.u64()) else {
                    return Err(short("a GTID"));
                };
                gtids.push(Gtid::new(domain, server, seq));
            }
            EventData::GtidList(GtidList {
                flags: (count >> 28) as u8,
                gtids,
            })
        }
        EventType::BINLOG_CHECKPOINT => {
            let len = c.u32().ok_or_else(|| short("the name length"))?;
            let name = c
                .bytes(len as usize)
                .ok_or_else(|| short("the file name"))?;
            EventData::BinlogCheckpoint {
                file: utf8(name, "the file name")?,
            }
        }
        EventType::ANNOTATE_ROWS => EventData::AnnotateRows {
            query: Bytes::copy_from_slice(body),
        },
        EventType::GTID | EventType::ANONYMOUS_GTID => {
            EventData::MysqlGtid(decode_mysql_gtid(event_type, body)?)
        }
        EventType::GTID_TAGGED => EventData::MysqlGtid(decode_tagged_gtid(body)?),
        EventType::PREVIOUS_GTIDS => {
            let (set, used) = GtidSet::decode(body).map_err(|e| e.to_string())?;
            if used != body.len() {
                return Err(format!("{} bytes after the GTID set", body.len() - used));
            }
            EventData::PreviousGtids(set)
        }
        EventType::TRANSACTION_PAYLOAD => decode_transaction_payload(body)?,
        _ => EventData::Other,
    })
}

/// `Query_event`'s layout: thread id, exec time, db length, error code and (post-header
/// 13+) status vars length; then the status vars, the db and its NUL, the text.
fn decode_query(body: &[u8], format: Option<&FormatDescription>) -> Result<Query, String> {
    let post = post_header(format, EventType::QUERY, DEFAULT_QUERY_POST_HEADER);
    let mut c = Cursor::new(body);
    let short = |what: &str| format!("body of {} bytes ends inside {what}", body.len());
    let mut p = Cursor::new(c.bytes(post).ok_or_else(|| short("the post-header"))?);
    let (Some(thread_id), Some(exec_time), Some(db_len), Some(error_code)) =
        (p.u32(), p.u32(), p.u8(), p.u16())
    else {
        return Err(format!("post-header of {post} bytes is too short"));
    };
    let status_len = if post >= 13 { p.u16().unwrap_or(0) } else { 0 };
    let status_vars = c.bytes(usize::from(status_len)).ok_or_else(|| {
        format!(
            "status variables of {status_len} bytes overrun the {}-byte body",
            body.len()
        )
    })?;
    let db = c.bytes(usize::from(db_len)).ok_or_else(|| {
        format!(
            "database name of {db_len} bytes overruns the {}-byte body",
            body.len()
        )
    })?;
    if c.u8() != Some(0) {
        return Err("database name is not NUL-terminated".into());
    }
    Ok(Query {
        thread_id,
        exec_time,
        error_code,
        status_vars: Bytes::copy_from_slice(status_vars),
        db: Bytes::copy_from_slice(db),
        query: Bytes::copy_from_slice(c.rest()),
    })
}

/// `codecs::binary::Heartbeat`: type-length-value fields up to an end mark.
fn decode_heartbeat_v2(body: &[u8]) -> Result<EventData, String> {
    const END: u64 = 0;
    const FILENAME: u64 = 1;
    const POSITION: u64 = 2;
    let mut c = Cursor::new(body);
    let (mut log_file, mut position) = (String::new(), 0);
    while !c.is_empty() {
        let field = c.lenenc().ok_or("bad field type")?;
        if field == END {
            break;
        }
        let len = c.lenenc().ok_or("bad field length")?;
        let value = c
            .bytes(usize::try_from(len).map_err(|_| "bad field length")?)
            .ok_or("field overruns the body")?;
        match field {
            FILENAME => log_file = utf8(value, "the file name")?,
            POSITION => position = Cursor::new(value).lenenc().ok_or("bad position")?,
            _ => {}
        }
    }
    Ok(EventData::HeartbeatV2 { log_file, position })
}

/// `Gtid_log_event::Gtid_log_event`: seq u64, domain u32, flags u8, then the commit
/// id, the XA id and `flags_extra` when present. The fixed part is padded to 19 bytes.
fn decode_mariadb_gtid(header: &EventHeader, body: &[u8]) -> Result<MariadbGtidEvent, String> {
    use mariadb_gtid_flags::*;
    let mut c = Cursor::new(body);
    let (Some(seq), Some(domain), Some(flags)) = (c.u64(), c.u32(), c.u8()) else {
        return Err("shorter than seq_no, domain_id and flags".into());
    };
    let commit_id = if flags & FL_GROUP_COMMIT_ID != 0 {
        Some(c.u64().ok_or("ends inside the commit id")?)
    } else {
        None
    };
    let xid = if flags & (FL_PREPARED_XA | FL_COMPLETED_XA) != 0 {
        let (Some(format_id), Some(gtrid_len), Some(bqual_len)) = (c.u32(), c.u8(), c.u8()) else {
            return Err("ends inside the XA id".into());
        };
        if gtrid_len > 64 || bqual_len > 64 {
            return Err(format!(
                "XA id lengths {gtrid_len}+{bqual_len} exceed 64+64"
            ));
        }
        let gtrid = c.bytes(usize::from(gtrid_len)).ok_or("ends inside gtrid")?;
        let bqual = c.bytes(usize::from(bqual_len)).ok_or("ends inside bqual")?;
        Some(XaXid {
            format_id,
            gtrid: Bytes::copy_from_slice(gtrid),
            bqual: Bytes::copy_from_slice(bqual),
        })
    } else {
        None
    };
    // Without a commit id or XA id, the next byte is zero padding, read as
    // "no extra flags" exactly as the server reads it.
    let flags_extra = c.u8().unwrap_or(0);
    Ok(MariadbGtidEvent {
        gtid: Gtid::new(domain, header.server_id, seq),
        flags,
        commit_id,
        xid,
        flags_extra,
    })
}

/// `Gtid_event::Gtid_event` for untagged events: flags, SID, GNO, then optional
/// fields, each present only if the bytes remain (5.6 stops after the GNO).
fn decode_mysql_gtid(event_type: EventType, body: &[u8]) -> Result<MysqlGtidEvent, String> {
    const LOGICAL_TIMESTAMP_TYPECODE: u8 = 2;
    const COMMIT_TS_FLAG: u64 = 1 << 55;
    const SERVER_VERSION_FLAG: u32 = 1 << 31;
    let mut c = Cursor::new(body);
    let (Some(flags), Some(sid), Some(gno)) = (c.u8(), c.array::<16>(), c.u64()) else {
        return Err("shorter than flags, SID and GNO".into());
    };
    let gtid = if event_type == EventType::ANONYMOUS_GTID {
        if gno != 0 {
            return Err(format!("anonymous GTID with GNO {gno}"));
        }
        None
    } else {
        if gno == 0 || gno >= GNO_END {
            return Err(format!("GNO {gno} out of range"));
        }
        Some(MysqlGtid::new(Tsid::new(Uuid::from_bytes(sid), None), gno))
    };
    let mut event = MysqlGtidEvent {
        flags,
        gtid,
        logical_clock: None,
        immediate_commit_timestamp: None,
        original_commit_timestamp: None,
        transaction_length: None,
        immediate_server_version: None,
        original_server_version: None,
        commit_group_ticket: None,
    };
    // 5.7.4 and older wrote a different typecode; the server ignores what follows.
    if c.u8() != Some(LOGICAL_TIMESTAMP_TYPECODE) {
        return Ok(event);
    }
    let (Some(last_committed), Some(sequence_number)) = (c.u64(), c.u64()) else {
        return Err("ends inside the logical clock".into());
    };
    event.logical_clock = Some(LogicalClock {
        last_committed,
        sequence_number,
    });
    if c.remaining() < 7 {
        return Ok(event);
    }
    let mut immediate = c.uint(7).unwrap_or_default();
    let original = if immediate & COMMIT_TS_FLAG != 0 {
        immediate &= !COMMIT_TS_FLAG;
        c.uint(7).ok_or("ends inside original_commit_timestamp")?
    } else {
        immediate
    };
    event.immediate_commit_timestamp = Some(immediate);
    event.original_commit_timestamp = Some(original);
    if c.is_empty() {
        return Ok(event);
    }
    event.transaction_length = Some(c.lenenc().ok_or("bad transaction_length")?);
    if c.remaining() < 4 {
        return Ok(event);
    }
    let mut immediate = c.u32().unwrap_or_default();
    let original = if immediate & SERVER_VERSION_FLAG != 0 {
        immediate &= !SERVER_VERSION_FLAG;
        c.u32().ok_or("ends inside original_server_version")?
    } else {
        immediate
    };
    event.immediate_server_version = Some(immediate);
    event.original_server_version = Some(original);
    if c.remaining() >= 8 {
        event.commit_group_ticket = c.u64();
    }
    Ok(event)
}

/// The largest GNO plus one.
const GNO_END: u64 = i64::MAX as u64;

/// `Gtid_event::read_gtid_tagged_log_event`: a message of MySQL's serialization
/// library: format version (1 byte), payload size and last non-ignorable field id
/// (varlen), then (field id, value) pairs in `define_fields` order: flags, uuid (16
/// varlen bytes), gno, tag, last_committed, sequence_number,
/// immediate_commit_timestamp, original_commit_timestamp, transaction_length,
/// immediate_server_version, original_server_version, commit_group_ticket.
fn decode_tagged_gtid(body: &[u8]) -> Result<MysqlGtidEvent, String> {
    let mut c = Cursor::new(body);
    let _version = c.u8().ok_or("empty body")?;
    let size = c.varlen().ok_or("bad payload size")?;
    let last_non_ignorable = c.varlen().ok_or("bad field id")?;
    // The payload size counts from the version byte, itself included.
    let size = usize::try_from(size)
        .ok()
        .filter(|&s| s >= c.position() && s <= body.len())
        .ok_or_else(|| {
            format!(
                "payload size {size} does not fit the {}-byte body",
                body.len()
            )
        })?;
    let mut f = Cursor::new(body.get(c.position()..size).unwrap_or_default());
    let bad = |what: &str| format!("bad {what}");
    let (mut flags, mut uuid, mut gno, mut tag) = (0u8, [0u8; 16], 0u64, None);
    let mut event = MysqlGtidEvent {
        flags: 0,
        gtid: None,
        logical_clock: None,
        immediate_commit_timestamp: None,
        original_commit_timestamp: None,
        transaction_length: None,
        immediate_server_version: None,
        original_server_version: None,
        commit_group_ticket: None,
    };
    let mut clock = LogicalClock {
        last_committed: 0,
        sequence_number: 0,
    };
    let nonneg = |v: Option<i64>, what: &str| {
        v.and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| bad(what))
    };
    while !f.is_empty() {
        let id = f.varlen().ok_or_else(|| bad("field id"))?;
        match id {
            0 => {
                flags = f
                    .varlen()
                    .and_then(|v| u8::try_from(v).ok())
                    .ok_or_else(|| bad("flags"))?
            }
            1 => {
                for b in &mut uuid {
                    *b = f
                        .varlen()
                        .and_then(|v| u8::try_from(v).ok())
                        .ok_or_else(|| bad("uuid"))?;
                }
            }
            2 => gno = nonneg(f.varlen_signed(), "gno")?,
            3 => {
                let len = f.varlen().ok_or_else(|| bad("tag length"))?;
                let text = usize::try_from(len)
                    .ok()
                    .and_then(|l| f.bytes(l))
                    .ok_or_else(|| bad("tag"))?;
                let text = std::str::from_utf8(text).map_err(|_| bad("tag"))?;
                if !text.is_empty() {
                    tag = Some(Tag::new(text).map_err(|e| e.to_string())?);
                }
            }
            4 => clock.last_committed = nonneg(f.varlen_signed(), "last_committed")?,
            5 => clock.sequence_number = nonneg(f.varlen_signed(), "sequence_number")?,
            6 => {
                event.immediate_commit_timestamp = Some(f.varlen().ok_or_else(|| bad("timestamp"))?)
            }
            7 => {
                event.original_commit_timestamp = Some(f.varlen().ok_or_else(|| bad("timestamp"))?)
            }
            8 => event.transaction_length = Some(f.varlen().ok_or_else(|| bad("length"))?),
            9 | 10 => {
                let v = f
                    .varlen()
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| bad("server version"))?;
                if id == 9 {
                    event.immediate_server_version = Some(v);
                } else {
                    event.original_server_version = Some(v);
                }
            }
            11 => event.commit_group_ticket = Some(f.varlen().ok_or_else(|| bad("ticket"))?),
            _ if id <= last_non_ignorable => {
                return Err(format!("unknown non-ignorable field {id}"));
            }
            // An unknown ignorable field of a newer server: its length is not
            // encoded, so nothing after it can be read either.
            _ => break,
        }
    }
    if gno == 0 || gno >= GNO_END {
        return Err(format!("GNO {gno} out of range"));
    }
    // Fields left out because they equal their immediate twins.
    event.original_commit_timestamp = event
        .original_commit_timestamp
        .or(event.immediate_commit_timestamp);
    event.original_server_version = event
        .original_server_version
        .or(event.immediate_server_version);
    event.flags = flags;
    event.logical_clock = Some(clock);
    event.gtid = Some(MysqlGtid::new(Tsid::new(Uuid::from_bytes(uuid), tag), gno));
    Ok(event)
}

/// `codecs::binary::Transaction_payload::decode`: (type, length, value) fields, all
/// length-encoded integers, up to an end mark; the payload is the rest.
fn decode_transaction_payload(body: &[u8]) -> Result<EventData, String> {
    const END: u64 = 0;
    const PAYLOAD_SIZE: u64 = 1;
    const COMPRESSION_TYPE: u64 = 2;
    const UNCOMPRESSED_SIZE: u64 = 3;
    let mut c = Cursor::new(body);
    let (mut size, mut compression, mut uncompressed) = (None, None, None);
    loop {
        let field = c.lenenc().ok_or("header fields run past the body")?;
        if field == END {
            break;
        }
        let len = c.lenenc().ok_or("bad field length")?;
        let len = usize::try_from(len).map_err(|_| "bad field length")?;
        let value = c.bytes(len).ok_or("field overruns the body")?;
        let number = || Cursor::new(value).lenenc().ok_or("bad field value");
        match field {
            PAYLOAD_SIZE => size = Some(number()?),
            COMPRESSION_TYPE => {
                compression = Some(match number()? {
                    0 => PayloadCompression::Zstd,
                    255 => PayloadCompression::None,
                    other => return Err(format!("unknown compression type {other}")),
                })
            }
            UNCOMPRESSED_SIZE => uncompressed = Some(number()?),
            _ => {}
        }
    }
    let (Some(payload_size), Some(compression)) = (size, compression) else {
        return Err("no payload size or compression type".into());
    };
    let payload = c.rest();
    if payload_size != payload.len() as u64 {
        return Err(format!(
            "payload size {payload_size} but {} bytes follow",
            payload.len()
        ));
    }
    Ok(EventData::TransactionPayload(TransactionPayload {
        compression,
        payload_size,
        uncompressed_size: uncompressed,
        payload: Bytes::copy_from_slice(payload),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn checksum_versions() {
        assert!(version_has_checksum("5.6.1"));
        assert!(version_has_checksum("8.0.40"));
        assert!(!version_has_checksum("5.6.0-log"));
        assert!(!version_has_checksum("5.5.60-log"));
        assert!(version_has_checksum("5.5.60-MariaDB"));
        assert!(!version_has_checksum("5.2.10-MariaDB"));
        assert!(version_has_checksum("10.11.6-MariaDB-0+deb12u1-log"));
        assert!(!version_has_checksum("5.0.86-log"));
    }

    proptest! {
        #[test]
        fn header_round_trip(timestamp in any::<u32>(), t in any::<u8>(), server_id in any::<u32>(),
                             event_size in any::<u32>(), log_pos in any::<u32>(), flags in any::<u16>()) {
            let header = EventHeader { timestamp, event_type: EventType(t), server_id, event_size, log_pos, flags };
            let mut out = BytesMut::new();
            header.encode(&mut out);
            prop_assert_eq!(out.len(), HEADER_LEN);
            prop_assert_eq!(EventHeader::parse(&out), Some(header));
        }

        #[test]
        fn decoding_any_bytes_never_panics(t in any::<u8>(), body in prop::collection::vec(any::<u8>(), 0..120)) {
            let size = (HEADER_LEN + body.len()) as u32;
            let header = EventHeader { timestamp: 0, event_type: EventType(t), server_id: 1, event_size: size, log_pos: 0, flags: 0 };
            let mut raw = BytesMut::new();
            header.encode(&mut raw);
            raw.extend_from_slice(&body);
            let raw = raw.freeze();
            let _ = EventDecoder::new().decode(raw.clone(), 4);
            let _ = EventDecoder::with_checksum(ChecksumAlg::Crc32).decode(raw.clone(), 4);
            let _ = EventDecoder::with_checksum(ChecksumAlg::Off).decode(raw, 4);
        }
    }
}
