//! Restore: from the store back to a running server at a chosen point.
//!
//! [`plan`] decides, without I/O, which backup and which WAL a recovery target needs.

pub mod plan;
