//! The MySQL/MariaDB replication connection, over the sans-IO protocol in
//! `logship_protocol::mysql`, with tokio and TLS through rustls (see [`crate::tls`]).
//!
//! A binlog source drives it in this order:
//! 1. [`ConnectOptions::from_url`] with the source URL (and the `password_file` contents).
//! 2. [`MysqlConnection::connect`]: TCP, the greeting, TLS as `sslmode` says, the login, and
//!    the checks of [`ServerInfo`] (binlog on, checksum known, replication privileges);
//!    [`ServerInfo::warnings`] are for the log.
//! 3. [`MysqlConnection::start_dump`] with [`DumpOptions`]: the session variables,
//!    COM_REGISTER_SLAVE and COM_BINLOG_DUMP; the connection becomes a [`BinlogStream`].
//! 4. [`BinlogStream::next`] in a `select!` loop (it is cancel-safe), and
//!    [`BinlogStream::ack`] once a semi-sync event is durable.
//!
//! Every failure is a [`MysqlError`]: one line with the fix, and predicates that tell a
//! reconnect ([`MysqlError::is_transient`]) from a configuration to fix
//! ([`MysqlError::is_config`]) and a purged binlog ([`MysqlError::is_purged`]).
//!
//! - `options`: connection options from a `mysql://` URL.
//! - `transport`: TCP, the TLS upgrade, and cancel-safe packet framing.
//! - `connection`: login with explained errors, queries, [`ServerInfo`].
//! - `stream`: the dump and its events.
//! - `sql`: a plain SQL session for logical backups and loads: streamed rows, LOCAL INFILE.
//! - `error`: the one error type.

mod connection;
mod error;
mod options;
mod sql;
mod stream;
mod transport;

pub use crate::tls::SslMode;
pub(crate) use connection::version_at_least;
pub use connection::{MysqlConnection, ServerInfo};
pub use error::MysqlError;
pub use options::ConnectOptions;
pub use sql::{RowStream, SqlConnection};
pub use stream::{BinlogStream, DumpItem, DumpOptions, DumpStart};
