//! The archive: object keys (format/parse pairs), object framing, the source identity and
//! base backup metadata in its versioned JSON envelope.

pub mod backup;
pub mod fields;
pub mod identity;
pub mod key;
pub mod object;
pub mod pieces;
pub mod versioned;

pub use identity::SourceIdentity;
pub use key::{ArchiveKey, SourceName};
