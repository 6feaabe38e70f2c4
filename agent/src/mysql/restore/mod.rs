//! Point-in-time restore of a MySQL/MariaDB source.
//!
//! - [`plan`]: the restorable window, and the backup a target starts from.
//! - [`target`]: the transaction boundary a target stops at, from the archived index.

pub mod plan;
pub mod target;
