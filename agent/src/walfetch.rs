//! `logship wal-fetch FILE DEST`: PostgreSQL's `restore_command`, reading the archive back.
//!
//! Serves complete segments, `.history` files, and a segment still in progress
//! rebuilt from its pieces and padded with zeros to the segment size (zeros are
//! where PostgreSQL's replay sees the end of WAL).

use std::io::Write;
use std::path::{Path, PathBuf};

use logship_protocol::archive::identity::SourceIdentity;
use logship_protocol::archive::key::{ArchiveKey, SourceName};
use logship_protocol::archive::object;
use logship_protocol::archive::pieces::PieceRange;
use logship_protocol::pg::segment::WalFileName;
use logship_protocol::pg::{SegmentNo, TimelineId, WalSegSize};

use crate::identity::{IdentityError, read_identity};
use crate::store::{Store, StoreError};

/// What `wal-fetch` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// The file was written to DEST.
    Found,
    /// The archive was read, and it does not hold the file.
    NotInArchive,
}

/// Why a fetch failed (anything but "not in the archive").
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(
        "store {store} holds no archive for source {source_name:?} (check --source and the store URL)"
    )]
    NoArchive { store: String, source_name: String },
    #[error(
        "source {source_name:?} is not a PostgreSQL archive (wal-fetch serves PostgreSQL WAL only)"
    )]
    NotPostgres { source_name: String },
    #[error(
        "object {key} is corrupt: {reason} (the archived copy is damaged; restore to a target before it, or recover the object from a replica of the store)"
    )]
    Corrupt { key: String, reason: String },
    #[error(
        "cannot write {path}: {reason} (check that the destination directory exists and is writable)"
    )]
    Dest { path: String, reason: String },
}

/// Fetches `file` (a name PostgreSQL passes as `%f`) of `source` into `dest`.
pub async fn wal_fetch(
    store: &dyn Store,
    source: &SourceName,
    file: &str,
    dest: &Path,
) -> Result<Fetched, FetchError> {
    let seg = match read_identity(store, source).await? {
        Some(SourceIdentity::Postgres { wal_seg_size, .. }) => wal_seg_size,
        None => {
            return Err(FetchError::NoArchive {
                store: store.url().to_owned(),
                source_name: source.to_string(),
            });
        }
    };
    let Ok(name) = WalFileName::parse(file, seg) else {
        tracing::debug!(file, "not a file name the archive holds");
        return Ok(Fetched::NotInArchive);
    };
    let content = match name {
        WalFileName::History(tli) => {
            read_object(store, &ArchiveKey::History(tli).format(source, seg)).await?
        }
        WalFileName::Segment { tli, segno } => read_segment(store, source, seg, tli, segno).await?,
    };
    match content {
        Some(bytes) => {
            write_atomically(dest, &bytes)?;
            Ok(Fetched::Found)
        }
        None => Ok(Fetched::NotInArchive),
    }
}

/// A whole segment: the complete object, or its pieces padded with zeros.
pub async fn read_segment(
    store: &dyn Store,
    source: &SourceName,
    seg: WalSegSize,
    tli: TimelineId,
    segno: SegmentNo,
) -> Result<Option<Vec<u8>>, FetchError> {
    let key = ArchiveKey::Segment { tli, segno }.format(source, seg);
    if let Some(content) = read_object(store, &key).await? {
        return Ok(Some(content));
    }
    let mut pieces = Vec::new();
    for object in store.list(&format!("{key}.partial.")).await? {
        if let Ok((_, ArchiveKey::Piece { start, end, .. })) = ArchiveKey::parse(&object.key, seg)
            && let Some(range) = PieceRange::new(start, end)
        {
            pieces.push(range);
        }
    }
    let chain = logship_protocol::archive::pieces::chain(&pieces);
    if chain.is_empty() {
        return Ok(None);
    }
    let size = usize::try_from(seg.bytes()).unwrap_or(usize::MAX);
    let mut segment = Vec::with_capacity(size);
    for range in chain {
        let piece_key = ArchiveKey::Piece {
            tli,
            segno,
            start: range.start(),
            end: range.end(),
        }
        .format(source, seg);
        // A piece that vanished between list and get was merged meanwhile: a
        // retry sees the merged one.
        let content = read_object(store, &piece_key)
            .await?
            .ok_or_else(|| FetchError::Corrupt {
                key: piece_key.clone(),
                reason: "the piece disappeared while it was being read (retry the fetch)".into(),
            })?;
        if content.len() != range.len() as usize {
            return Err(FetchError::Corrupt {
                key: piece_key,
                reason: format!(
                    "holds {} bytes but its key says {}",
                    content.len(),
                    range.len()
                ),
            });
        }
        segment.extend_from_slice(&content);
    }
    segment.resize(size, 0);
    Ok(Some(segment))
}

/// Reads and verifies one object; `None` when it does not exist.
pub async fn read_object(store: &dyn Store, key: &str) -> Result<Option<Vec<u8>>, FetchError> {
    let stored = match store.get(key).await {
        Ok(stored) => stored,
        Err(err) if err.is_not_found() => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    object::decode(&stored)
        .map(Some)
        .map_err(|err| FetchError::Corrupt {
            key: key.to_owned(),
            reason: err.to_string(),
        })
}

/// Writes `dest` through a temp file and a rename, so PostgreSQL never sees half a file.
fn write_atomically(dest: &Path, content: &[u8]) -> Result<(), FetchError> {
    let dest_err = |err: std::io::Error| FetchError::Dest {
        path: dest.display().to_string(),
        reason: err.to_string(),
    };
    let mut temp = dest.as_os_str().to_owned();
    temp.push(".logship-tmp");
    let temp = PathBuf::from(temp);
    let written = std::fs::File::create(&temp)
        .and_then(|mut file| {
            file.write_all(content)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, dest));
    if let Err(err) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(dest_err(err));
    }
    Ok(())
}
