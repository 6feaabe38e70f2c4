//! MySQL and MariaDB: the client wire protocol a replica needs, sans-IO.
//!
//! A dump connection runs in this order, every step a value in and bytes out:
//!
//! 1. Frame the byte stream with [`PacketDecoder`] and [`encode_packet`].
//! 2. Parse the server's [`Greeting`]; start a [`Login`] with [`LoginOptions`], send
//!    [`LoginStart`]'s payloads (an SSLRequest first with TLS), and feed the server's replies to
//!    [`Login::step`] until it says [`AuthStep::Done`].
//! 3. Configure the session with [`Command::Query`] and read each reply with a
//!    [`QueryReader`]: `SET @master_binlog_checksum='CRC32'`, `SET @rpl_semi_sync_slave=1`,
//!    on MariaDB `SET @mariadb_slave_capability=4`, and so on.
//! 4. Optionally [`Command::RegisterSlave`], then [`Command::BinlogDump`] or
//!    [`Command::BinlogDumpGtid`], and parse each payload that follows with
//!    [`DumpPacket::parse`]; acknowledge semi-sync events with [`SemiSyncAck`].
//!
//! Binlog events themselves (their header, types and checksums) are decoded elsewhere.

pub mod auth;
pub mod command;
pub mod dump;
pub mod handshake;
pub mod lenenc;
pub mod packet;
pub mod response;

pub use auth::{AuthError, AuthPlugin, AuthStep, Login, LoginOptions, LoginStart};
pub use command::{
    BinlogDump, BinlogDumpGtid, ColumnDefinition, Command, EncodeError, QueryError, QueryReader,
    QueryResponse, RegisterSlave, ResultSet, Row,
};
pub use dump::{DumpError, DumpErrorKind, DumpEvent, DumpPacket, SemiSyncAck};
pub use handshake::{CapabilityFlags, Greeting, HandshakeResponse41, HandshakeV10, SslRequest};
pub use lenenc::ParseError;
pub use packet::{Packet, PacketDecoder, PacketError, encode_packet};
pub use response::{AuthMoreData, AuthSwitchRequest, EofPacket, ErrPacket, OkPacket, ReplyKind};
