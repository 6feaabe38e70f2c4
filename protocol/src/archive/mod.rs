//! The archive: object keys (format/parse pairs), object framing and the source identity.

pub mod identity;
pub mod key;
pub mod object;
pub mod pieces;

pub use identity::SourceIdentity;
pub use key::{ArchiveKey, SourceName};
