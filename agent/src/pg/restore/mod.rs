//! Restore: from the store back to a running server at a chosen point.
//!
//! [`plan`] decides, without I/O, which backup and which WAL a recovery target needs.
//! [`execute`] carries the plan out: it checks the target directories
//! ([`crate::restore::dir`]), streams the backup's verified chunks ([`download`]) into a tar
//! extractor that checks every file against the backup manifest ([`extract`]), and writes
//! the recovery settings ([`recovery_conf`]), and flushes it all to disk
//! ([`crate::restore::sync`]). [`start`] then runs the server until it reaches the target.

pub mod download;
pub mod error;
pub mod execute;
pub mod extract;
pub mod plan;
pub mod recovery_conf;
pub mod start;
pub mod tablespace;

pub use execute::run;
