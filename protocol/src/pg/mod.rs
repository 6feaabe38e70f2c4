//! PostgreSQL: positions, timelines, WAL file names and physical replication messages.

pub mod lsn;
pub mod replication;
pub mod segment;
pub mod timeline;
pub mod walrecord;
pub mod xact;

pub use lsn::Lsn;
pub use segment::{SegmentNo, WalFileName, WalSegSize, xlog_file_name};
pub use timeline::{TimelineHistory, TimelineId, history_file_name};
