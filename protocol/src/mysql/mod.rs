//! MySQL and MariaDB binary logs: file and event formats, GTIDs and positions.
//!
//! Data flows through these modules in this order:
//!
//! - [`binlog`]: a binlog file's bytes, read sans-IO into events by
//!   [`BinlogReader`], with truncation and corruption reported at their offset.
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
//!
//! Everything is little-endian binlog format v4 (MySQL 5.0+, MariaDB). Nothing
//! here panics on bytes from a file or the network.

pub mod binlog;
mod cursor;
pub mod event;
pub mod gtid;
pub mod position;
pub mod transaction;

pub use binlog::{BINLOG_MAGIC, BinlogReader};
pub use event::{
    BinlogError, ChecksumAlg, Event, EventData, EventDecoder, EventHeader, EventType,
    FormatDescription,
};
pub use gtid::{Gtid, GtidPos, GtidSet, MysqlGtid, Tag, Tsid, Uuid};
pub use position::{BinlogFileName, BinlogPos};
pub use transaction::{Transaction, TransactionTracker, TrxGtid, TrxOutcome};
