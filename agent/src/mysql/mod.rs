//! MySQL and MariaDB: the agent side of a binlog source.
//!
//! - [`conn`]: the replication connection: login (with TLS), the server checks a
//!   binlog archiver needs, and the binlog dump stream with semi-sync acknowledgements.
//! - [`source`]: drives a dump connection and feeds the archiver.
//! - [`archiver`]: turns the binlog stream into objects and owns the durable position.
//! - [`backup`]: logical base backups: schema and rows over lined-up snapshots.
//! - [`load`]: a logical backup loaded into an empty server.
//! - [`catalog`]: what the store holds for a source, by server and binlog file.
//! - [`history`]: which servers a MariaDB source has followed, from its switch records.
//! - [`takeover`]: where a promoted MariaDB server takes over the stream.
//! - [`read`]: one archived binlog file of one server back: its bytes and its index.
//! - [`fetch`]: `binlog-fetch`, one archived binlog file back, byte for byte.
//! - [`replay`]: the archive served to a restored server as its primary, up to a target.
//! - [`restore`]: point-in-time restore: the window, the backup and the stop point.
//! - [`localdb`]: a throwaway MariaDB on this machine, for the quickstart.
//! - [`summary`]: what `logship list` shows: archived files, gaps, the newest commit.
//! - [`offsets`], [`progress`]: positions as global byte offsets, for the metrics.

pub mod archiver;
pub mod backup;
pub mod catalog;
pub mod conn;
pub mod fetch;
pub mod history;
pub mod load;
pub mod localdb;
pub mod offsets;
pub mod progress;
pub mod read;
pub mod replay;
pub mod restore;
pub mod source;
pub mod summary;
pub mod takeover;
