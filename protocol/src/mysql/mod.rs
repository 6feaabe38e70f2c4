//! MySQL and MariaDB, sans-IO: the client protocol a replica speaks (and the primary's
//! answers to it), and the binary logs it receives.
//!
//! A dump connection runs in this order, every step a value in and bytes out:
//!
//! 1. Frame the byte stream with [`PacketDecoder`] and [`encode_packet`].
//! 2. Parse the server's [`Greeting`]; start a [`Login`] with [`LoginOptions`], send
//!    [`LoginStart`]'s payloads (an SSLRequest first with TLS), and feed the server's
//!    replies to [`Login::step`] until it says [`AuthStep::Done`].
//! 3. Configure the session with [`Command::Query`] and read each reply with a
//!    [`QueryReader`]: `SET @master_binlog_checksum='CRC32'`, `SET @rpl_semi_sync_slave=1`,
//!    on MariaDB `SET @mariadb_slave_capability=4`, and so on.
//! 4. Optionally [`Command::RegisterSlave`], then [`Command::BinlogDump`] or
//!    [`Command::BinlogDumpGtid`], and parse each payload that follows with
//!    [`DumpPacket::parse`]; acknowledge semi-sync events with [`SemiSyncAck`].
//!
//! The other side, a primary serving its binlog to a replica, uses the same types the
//! other way round: [`HandshakeV10::encode`], [`HandshakeResponse41::parse`],
//! [`auth::check_native_password`], [`Command::parse`], the `encode` methods of the
//! replies and [`ResultSet`], and [`serve`] for the events a primary makes up.
//!
//! The events, from a dump stream or a file, flow through these modules:
//!
//! - [`binlog`]: a binlog file's bytes, read into events by [`BinlogReader`], with
//!   truncation and corruption reported at their offset.
//! - [`event`]: one event. [`EventDecoder`] frames it, verifies its CRC32 with the
//!   algorithm the FORMAT_DESCRIPTION announced, and decodes the bodies that matter
//!   for shipping and restore ([`EventData`]); the rest pass through as bytes. The
//!   same decoder serves a dump stream's events, one packet at a time, and
//!   [`Event::is_stream_only`] picks out the ones no file contains (the fake
//!   ROTATE, heartbeats, the re-sent FORMAT_DESCRIPTION).
//! - [`transaction`]: [`TransactionTracker`] turns the events into committed
//!   transactions with their GTID, commit time and end position.
//! - [`gtid`] and [`position`]: MariaDB GTIDs and GTID positions, MySQL GTID sets
//!   (text and the binary encoding of COM_BINLOG_DUMP_GTID), and `FILE:POS`
//!   binlog positions.
//! - [`switch`] and [`takeover`]: a MariaDB failover, the record of where a promoted
//!   server took over a stream, and the search for that point in its binlog.
//!
//! Logical base backups: [`backup`] holds the completion marker, [`schema`] the schema
//! script and the split of each table's keys, [`rowfile`] the row chunks' text format.
//!
//! Everything is little-endian binlog format v4 (MySQL 5.0+, MariaDB). Nothing
//! here panics on bytes from a file or the network.

pub mod auth;
pub mod backup;
pub mod binlog;
pub mod command;
mod cursor;
pub mod dump;
pub mod event;
pub mod gtid;
pub mod handshake;
pub mod index;
pub mod key;
pub mod lenenc;
pub mod packet;
pub mod position;
pub mod response;
pub mod rowfile;
pub mod schema;
pub mod serve;
pub mod switch;
pub mod takeover;
pub mod transaction;

pub use auth::{AuthError, AuthPlugin, AuthStep, Login, LoginOptions, LoginStart};
pub use binlog::{BINLOG_MAGIC, BinlogReader};
pub use command::{
    BinlogDump, BinlogDumpGtid, ColumnDefinition, Command, EncodeError, QueryError, QueryReader,
    QueryResponse, RegisterSlave, ResultSet, Row, RowStep, RowStreamReader, TextValues,
};
pub use dump::{DumpError, DumpErrorKind, DumpEvent, DumpPacket, SemiSyncAck, encode_dump_event};
pub use event::{
    BinlogError, ChecksumAlg, Event, EventData, EventDecoder, EventHeader, EventType,
    FormatDescription,
};
pub use gtid::{Gtid, GtidPos, GtidSet, MysqlGtid, Tag, Tsid, Uuid};
pub use handshake::{CapabilityFlags, Greeting, HandshakeResponse41, HandshakeV10, SslRequest};
pub use lenenc::ParseError;
pub use packet::{Packet, PacketDecoder, PacketError, encode_packet, encode_packet_parts};
pub use position::{BinlogFileName, BinlogPos};
pub use response::{AuthMoreData, AuthSwitchRequest, EofPacket, ErrPacket, OkPacket, ReplyKind};
pub use transaction::{Transaction, TransactionTracker, TrxGtid, TrxOutcome};
