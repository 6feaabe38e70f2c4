//! What every source kind's archiver shares: the uploads in flight and the durable
//! position they add up to (DESIGN.md §1: only a durable position may be acknowledged).
//!
//! The kind-specific archivers (PostgreSQL WAL in [`crate::pg::archiver`]) decide what
//! becomes an object; this module puts the objects and says how far the archive is durable.

pub mod durable;
pub mod upload;

pub use durable::{DurableTracker, UploadId};
pub use upload::{Finished, UploadQueue};
