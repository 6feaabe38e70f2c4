//! The server identity a source's archive belongs to (DESIGN.md §4).
//!
//! The first write for a source records it; every later start compares, so an
//! archive is never mixed with another server's WAL.

use logship_protocol::archive::identity::SourceIdentity;
use logship_protocol::archive::key::{ArchiveKey, SourceName};
use logship_protocol::archive::object::{self, Codec};
use logship_protocol::pg::WalSegSize;

use crate::store::{Store, StoreError};

/// Why a source's identity could not be confirmed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "store {store} already holds source {source_name:?} for {stored}, but the server is {actual} (give this server its own source name or store prefix)"
    )]
    Mismatch {
        store: String,
        source_name: String,
        stored: SourceIdentity,
        actual: SourceIdentity,
    },
    #[error(
        "identity object {key} in store {store} is unreadable: {reason} (restore it from a copy, or move the source's prefix aside)"
    )]
    Corrupt {
        store: String,
        key: String,
        reason: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The identity object's key. Its layout does not depend on the segment size.
fn identity_key(source: &SourceName) -> String {
    ArchiveKey::Identity.format(source, WalSegSize::DEFAULT)
}

/// Reads the recorded identity of `source`, if any.
pub async fn read_identity(
    store: &dyn Store,
    source: &SourceName,
) -> Result<Option<SourceIdentity>, IdentityError> {
    let key = identity_key(source);
    let stored = match store.get(&key).await {
        Ok(bytes) => bytes,
        Err(err) if err.is_not_found() => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let corrupt = |reason: String| IdentityError::Corrupt {
        store: store.url().to_owned(),
        key: key.clone(),
        reason,
    };
    let content = object::decode(&stored).map_err(|e| corrupt(e.to_string()))?;
    SourceIdentity::parse(&content)
        .map(Some)
        .map_err(|e| corrupt(e.to_string()))
}

/// Checks that `source` in the store belongs to `actual`. Returns false when
/// nothing is recorded yet (then [`record_identity`] claims it). Writes nothing.
pub async fn verify_identity(
    store: &dyn Store,
    source: &SourceName,
    actual: &SourceIdentity,
) -> Result<bool, IdentityError> {
    match read_identity(store, source).await? {
        Some(stored) if &stored == actual => Ok(true),
        Some(stored) => Err(IdentityError::Mismatch {
            store: store.url().to_owned(),
            source_name: source.to_string(),
            stored,
            actual: *actual,
        }),
        None => Ok(false),
    }
}

/// Records `identity` as the owner of `source`: the first write of a new archive.
pub async fn record_identity(
    store: &dyn Store,
    source: &SourceName,
    identity: &SourceIdentity,
) -> Result<(), StoreError> {
    let stored = object::encode(&identity.encode(), Codec::None);
    store.put(&identity_key(source), stored.into()).await
}
