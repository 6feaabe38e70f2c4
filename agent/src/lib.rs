//! logship: streams database replication logs into object storage and restores from it.
//!
//! Data flows source → archiver → store, and store → restore. What both database kinds
//! share lives at the top level; what only PostgreSQL needs lives under [`pg`].
//! - [`store`]: one small async trait with a file and an S3 backend.
//! - [`backup`]: what base backups of both kinds share: chunk objects, the schedule.
//! - [`identity`]: the server identity recorded at a source's first write.
//! - [`config`], [`cli`], [`commands`]: what the user asked for, and running it;
//!   [`fetchdest`]: where the fetch commands write.
//! - [`list`]: prints what a store holds and what a restore can reach; [`window`]: the
//!   restorable window and its check of a target time.
//! - [`restore`]: the directories a restore of either kind writes.
//! - [`metrics`]: the Prometheus metrics and the health endpoints.
//! - [`tls`]: `sslmode` and the rustls setup both database kinds share.
//! - [`mysql`]: MySQL and MariaDB: the replication connection.
//! - [`pg`]: PostgreSQL: the replication connection, the WAL archiver, base backups,
//!   `wal-fetch` and point-in-time restore.

pub mod archive;
pub mod archiver;
pub mod backup;
pub mod cli;
pub mod commands;
pub mod config;
pub mod fetchdest;
pub mod identity;
pub mod list;
pub mod localserver;
pub mod metrics;
pub mod mysql;
pub mod pg;
pub mod quickstart;
pub mod restore;
pub mod store;
#[cfg(test)]
mod testutil;
pub mod timefmt;
pub mod tls;
pub mod window;
