//! The server identity a source's archive belongs to (DESIGN.md §4).
//!
//! The first write for a source records it; every later start compares, so an
//! archive is never mixed with another server's WAL.

use logship_protocol::archive::identity::SourceIdentity;
use logship_protocol::archive::key::{ArchiveKey, SourceName};
use logship_protocol::archive::object::{self, Codec};

use crate::archive::{ReadError, read_object};
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
    /// The identity object cannot be used.
    #[error("in store {store}: {}", .read.with_fix(DAMAGED_IDENTITY_FIX))]
    Damaged { store: String, read: Box<ReadError> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to do about a damaged identity object.
const DAMAGED_IDENTITY_FIX: &str = "restore it from a copy, or move the source's prefix aside";

/// The identity object's key.
fn identity_key(source: &SourceName) -> String {
    ArchiveKey::Identity.format(source)
}

/// Reads the recorded identity of `source`, if any.
pub async fn read_identity(
    store: &dyn Store,
    source: &SourceName,
) -> Result<Option<SourceIdentity>, IdentityError> {
    let key = identity_key(source);
    let damaged = |read: ReadError| match read {
        ReadError::Store(err) => IdentityError::Store(err),
        read => IdentityError::Damaged {
            store: store.url().to_owned(),
            read: Box::new(read),
        },
    };
    let Some(content) = read_object(store, &key).await.map_err(damaged)? else {
        return Ok(None);
    };
    SourceIdentity::parse(&content)
        .map(Some)
        .map_err(|e| damaged(ReadError::damaged(&key, &e, e.is_unsupported())))
}

/// Checks that `source` in the store belongs to `actual` ([`SourceIdentity::same_source`]:
/// for MariaDB, the same GTID domain, whichever of its servers). Returns false when
/// nothing is recorded yet (then [`record_identity`] claims it). Writes nothing.
pub async fn verify_identity(
    store: &dyn Store,
    source: &SourceName,
    actual: &SourceIdentity,
) -> Result<bool, IdentityError> {
    match read_identity(store, source).await? {
        Some(stored) if stored.same_source(actual) => Ok(true),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fs::FsStore;
    use logship_protocol::pg::WalSegSize;

    /// Why `read_identity` refuses `stored` as the identity object of source `main`, with
    /// the URL of the store it was read from.
    async fn refusal(stored: Vec<u8>) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path()).unwrap();
        let source = SourceName::new("main").unwrap();
        store
            .put(&identity_key(&source), stored.into())
            .await
            .unwrap();
        let err = read_identity(&store, &source).await.unwrap_err();
        (err.to_string(), store.url().to_owned())
    }

    fn postgres() -> SourceIdentity {
        SourceIdentity::Postgres {
            system_id: 7,
            wal_seg_size: WalSegSize::DEFAULT,
        }
    }

    /// Regression: the line carried the object decoder's fix ("archive it again from the
    /// source") before this one.
    #[tokio::test]
    async fn a_corrupt_identity_gives_one_fix() {
        let mut stored = object::encode(&postgres().encode(), Codec::None);
        let last = stored.len() - 1;
        stored[last] ^= 1;
        let expected_crc = crc32fast::hash(&postgres().encode());
        let actual_crc = crc32fast::hash(&stored[object::HEADER_LEN..]);
        let (err, url) = refusal(stored).await;
        assert_eq!(
            err,
            format!(
                "in store {url}: object main/identity is corrupt: object payload \
                 checksum mismatch: expected {expected_crc:08X}, computed {actual_crc:08X} \
                 (restore it from a copy, or move the source's prefix aside)"
            )
        );

        let stored = object::encode(b"kind=postgres\n", Codec::None);
        let (err, url) = refusal(stored).await;
        assert_eq!(
            err,
            format!(
                "in store {url}: object main/identity is corrupt: identity lacks key \
                 \"system_identifier\" (restore it from a copy, or move the source's prefix aside)"
            )
        );
    }

    #[tokio::test]
    async fn an_identity_from_a_newer_logship_asks_for_an_upgrade() {
        let stored = object::encode(b"kind=oracle\nsid=x\n", Codec::None);
        let (err, url) = refusal(stored).await;
        assert_eq!(
            err,
            format!(
                "in store {url}: object main/identity was written by a newer logship: \
                 identity has unknown kind \"oracle\" (upgrade logship)"
            )
        );

        let mut stored = object::encode(&postgres().encode(), Codec::None);
        stored[8] = 2;
        let (err, url) = refusal(stored).await;
        assert_eq!(
            err,
            format!(
                "in store {url}: object main/identity was written by a newer logship: \
                 object format version 2 is not supported: this logship reads version 1 \
                 (upgrade logship)"
            )
        );
    }
}
