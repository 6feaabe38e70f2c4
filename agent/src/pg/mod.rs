//! PostgreSQL: WAL streamed as a physical standby, base backups and point-in-time restore.
//!
//! - [`conn`]: our own replication connection (startup, auth, TLS, replication
//!   commands, CopyBoth streaming).
//! - [`source`]: drives a replication connection and feeds the archiver.
//! - [`archiver`]: turns received WAL into objects and owns the durable position.
//! - [`backup`]: base backups into the store, on demand and on schedule.
//! - [`catalog`]: what the store holds for a source, by timeline and segment.
//! - [`walfetch`]: reads the archive back, as PostgreSQL's `restore_command`.
//! - [`window`]: what a restore can reach, computed from the store alone.
//! - [`restore`]: plans and runs a point-in-time restore.
//! - [`localpg`]: runs PostgreSQL's own programs on this machine.

pub mod archiver;
pub mod backup;
pub mod catalog;
pub mod conn;
pub mod localpg;
pub mod restore;
pub mod source;
pub mod walfetch;
pub mod window;
