//! Point-in-time restore of a MySQL/MariaDB source.
//!
//! - [`execute`]: the restore end to end: plan, load, replay, hand over.
//! - [`into`]: the server the restore loads into, new in a directory or existing.
//! - [`plan`]: the restorable window, and the backup a target starts from.
//! - [`route`]: the binlog replayed after the snapshot, one leg per server, and the search
//!   of its index for the stop point.
//! - [`target`]: the transaction boundary a target stops at, from the archived index.

pub mod execute;
pub mod into;
pub mod plan;
pub mod route;
pub mod target;
