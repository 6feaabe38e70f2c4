//! Sans-IO formats for logship.
//!
//! Nothing here touches a socket, a file or a clock. Decoders take bytes and
//! return values (or `Ok(None)` when they need more bytes); encoders append to a
//! `BytesMut`. That keeps every format testable with captured bytes and property
//! tests, without a server.
//!
//! - [`pg`]: PostgreSQL positions, timelines, WAL file names and the physical
//!   replication messages.
//! - [`mysql`]: MySQL and MariaDB: the client protocol a replica speaks (packets,
//!   login, commands, the binlog dump stream), binlog files and events, GTIDs and
//!   binlog positions.
//! - [`archive`]: the archive's object keys and the framing every stored object
//!   carries.

pub mod archive;
pub mod mysql;
pub mod pg;
