//! logship: streams PostgreSQL WAL into object storage and restores from it.
//!
//! Data flows source → archiver → store, and store → restore:
//! - [`pgconn`]: our own PostgreSQL replication connection (startup, auth, TLS,
//!   replication commands, CopyBoth streaming).
//! - [`source`]: drives a replication connection and feeds the archiver.
//! - [`archiver`]: turns received WAL into objects and owns the durable position.
//! - [`store`]: one small async trait with a file and an S3 backend.
//! - [`backup`]: base backups into the store, on demand and on schedule.
//! - [`catalog`]: what the store holds for a source, by timeline and segment.
//! - [`walfetch`]: reads the archive back, as PostgreSQL's `restore_command`.
//! - [`window`]: what a restore can reach, computed from the store alone;
//!   [`list`] prints it.
//! - [`restore`]: plans and runs a point-in-time restore.

pub mod archiver;
pub mod backup;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod config;
pub mod identity;
pub mod list;
pub mod localpg;
pub mod metrics;
pub mod pgconn;
pub mod quickstart;
pub mod restore;
pub mod source;
pub mod store;
#[cfg(test)]
mod testutil;
pub mod timefmt;
pub mod walfetch;
pub mod window;
