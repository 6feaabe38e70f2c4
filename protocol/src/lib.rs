//! Sans-IO formats for logship.
//!
//! Nothing here touches a socket, a file or a clock. Decoders take bytes and
//! return values (or `Ok(None)` when they need more bytes); encoders append to a
//! `BytesMut`. That keeps every format testable with captured bytes and property
//! tests, without a server.
//!
//! - [`pg`]: PostgreSQL positions, timelines, WAL file names and the physical
//!   replication messages.
//! - [`mysql`]: the MySQL/MariaDB client protocol a replica speaks: packets, login,
//!   commands, text result sets and the binlog dump stream.
//! - [`archive`]: the archive's object keys and the framing every stored object
//!   carries.

pub mod archive;
pub mod mysql;
pub mod pg;
