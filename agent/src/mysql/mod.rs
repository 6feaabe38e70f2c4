//! MySQL and MariaDB: the agent side of a binlog source.
//!
//! - [`conn`]: the replication connection: login (with TLS), the server checks a
//!   binlog archiver needs, and the binlog dump stream with semi-sync acknowledgements.
//! - [`source`]: drives a dump connection and feeds the archiver.
//! - [`archiver`]: turns the binlog stream into objects and owns the durable position.
//! - [`catalog`]: what the store holds for a source, by server and binlog file.
//! - [`fetch`]: `binlog-fetch`, one archived binlog file back, byte for byte.
//! - [`summary`]: what `logship list` shows: archived files, gaps, the newest commit.
//! - [`offsets`], [`progress`]: positions as global byte offsets, for the metrics.

pub mod archiver;
pub mod catalog;
pub mod conn;
pub mod fetch;
pub mod offsets;
pub mod progress;
pub mod source;
pub mod summary;
