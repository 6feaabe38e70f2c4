//! Object storage: one small async trait, with a file and an S3 backend.
//!
//! Keys are `/`-separated and relative to the store's root (the directory of a
//! `file://` URL, or the prefix of an `s3://bucket/prefix` URL). The archive
//! builds every key through `logship_protocol::archive::key`; nothing here
//! interprets them.

use async_trait::async_trait;
use bytes::Bytes;

pub mod fs;
pub mod s3;

/// An object's key and stored size, as returned by [`Store::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

/// The storage contract every backend meets (see the conformance suite in `tests/`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes `data` at `key`, replacing any previous object. When this returns
    /// `Ok`, the object is durable (DESIGN.md §1): a file was fsynced, renamed
    /// into place and its directory fsynced, or an S3 PUT/CompleteMultipartUpload
    /// succeeded. A reader never sees a partly written object.
    async fn put(&self, key: &str, data: Bytes) -> Result<(), StoreError>;

    /// Reads the whole object at `key`; [`StoreError::NotFound`] if there is none.
    async fn get(&self, key: &str) -> Result<Bytes, StoreError>;

    /// Every object whose key starts with `prefix`, sorted by key (byte order).
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError>;

    /// Removes the object at `key`. Removing a missing key succeeds.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Checks that the store is reachable and writable, without leaving anything behind.
    async fn check_writable(&self) -> Result<(), StoreError>;

    /// The store's URL, for messages (never carries credentials).
    fn url(&self) -> &str;
}
