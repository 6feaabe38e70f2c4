//! MySQL and MariaDB: the agent side of a binlog source.
//!
//! - [`conn`]: the replication connection: login (with TLS), the server checks a
//!   binlog archiver needs, and the binlog dump stream with semi-sync acknowledgements.
//! - [`catalog`]: what the store holds for a source, by server and binlog file.

pub mod archiver;
pub mod catalog;
pub mod conn;
pub mod source;
