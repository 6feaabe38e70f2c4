//! PostgreSQL: positions, timelines, WAL file names, physical replication messages, and the
//! base backup stream with its manifest.

pub mod basebackup;
pub mod key;
pub mod lsn;
pub mod manifest;
pub mod replication;
pub mod segment;
pub mod timeline;
pub mod walrecord;
pub mod xact;

pub use lsn::Lsn;
pub use segment::{SegmentNo, WalFileName, WalSegSize, xlog_file_name};
pub use timeline::{TimelineHistory, TimelineId, history_file_name};
