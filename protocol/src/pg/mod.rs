//! PostgreSQL: positions, timelines, WAL file names and physical replication messages.

pub mod lsn;
pub mod replication;
pub mod segment;
pub mod timeline;

pub use lsn::Lsn;
pub use segment::{SegmentNo, WalSegSize};
pub use timeline::TimelineId;
