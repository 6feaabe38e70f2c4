//! `logship binlog-fetch FILE DEST`: one archived binlog file, complete or in progress,
//! written byte for byte as the server wrote it, so that `mysqlbinlog` can read it.

use std::path::Path;

use logship_protocol::archive::SourceIdentity;
use logship_protocol::archive::key::SourceName;
use logship_protocol::archive::pieces::PieceRange;
use logship_protocol::mysql::BinlogFileName;
use logship_protocol::mysql::key::{BinlogKey, ServerNo};

use crate::archive::{AtomicFile, Fetched, ReadError, read_object};
use crate::identity::{IdentityError, read_identity};
use crate::mysql::catalog::{BinlogCatalog, FileObjects};
use crate::store::{Store, StoreError};

/// What to do about a damaged binlog object.
const DAMAGED_BINLOG_FIX: &str = "the archived copy is damaged; recover the object from a \
     replica of the store";

/// Why a fetch failed (anything but "not in the archive").
#[derive(Debug, thiserror::Error)]
pub enum BinlogFetchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("{}", .0.with_fix(DAMAGED_BINLOG_FIX))]
    Read(ReadError),
    #[error(
        "store {store} holds no archive for source {source_name:?} (check --source and the store URL)"
    )]
    NoArchive { store: String, source_name: String },
    #[error(
        "source {source_name:?} is a {kind} archive (binlog-fetch serves MySQL and MariaDB binlogs only; use wal-fetch)"
    )]
    NotMysql {
        source_name: String,
        kind: &'static str,
    },
    #[error(
        "object {key} disappeared while it was being read (run the fetch again: it was merged into a larger object meanwhile)"
    )]
    Vanished { key: String },
    #[error(
        "cannot write {path}: {reason} (check that the destination directory exists and is writable)"
    )]
    Dest { path: String, reason: String },
}

impl From<ReadError> for BinlogFetchError {
    fn from(err: ReadError) -> BinlogFetchError {
        match err {
            ReadError::Store(err) => BinlogFetchError::Store(err),
            damaged => BinlogFetchError::Read(damaged),
        }
    }
}

/// Writes the archived binlog `file` of `source` to `dest`: the newest server's copy when
/// several servers wrote a file of that name.
pub async fn binlog_fetch(
    store: &dyn Store,
    source: &SourceName,
    file: &str,
    dest: &Path,
) -> Result<Fetched, BinlogFetchError> {
    match read_identity(store, source).await? {
        Some(SourceIdentity::Mariadb { .. } | SourceIdentity::Mysql { .. }) => {}
        Some(other) => {
            return Err(BinlogFetchError::NotMysql {
                source_name: source.to_string(),
                kind: other.kind(),
            });
        }
        None => {
            return Err(BinlogFetchError::NoArchive {
                store: store.url().to_owned(),
                source_name: source.to_string(),
            });
        }
    }
    let Ok(file) = BinlogFileName::new(file) else {
        tracing::debug!(file, "not a binlog file name");
        return Ok(Fetched::NotInArchive);
    };
    let catalog = BinlogCatalog::load(store, source).await?;
    let servers: Vec<_> = catalog.servers().collect();
    let Some((server, objects)) = servers
        .into_iter()
        .rev()
        .find_map(|server| Some((server, catalog.file(server, &file)?)))
    else {
        return Ok(Fetched::NotInArchive);
    };
    let dest_error = |err: std::io::Error| BinlogFetchError::Dest {
        path: dest.display().to_string(),
        reason: err.to_string(),
    };
    let mut out = AtomicFile::create(dest).map_err(dest_error)?;
    if objects.complete {
        let key = BinlogKey::File {
            server,
            file: file.clone(),
        }
        .format(source);
        let content = read_object(store, &key)
            .await?
            .ok_or(BinlogFetchError::Vanished { key })?;
        out.write(&content).map_err(dest_error)?;
    } else {
        let chain = objects.chain();
        if chain.is_empty() {
            return Ok(Fetched::NotInArchive);
        }
        check_marked_length(source, server, &file, objects, &chain)?;
        // One piece in memory at a time: a long file is never held whole.
        for range in chain {
            let key = BinlogKey::Piece {
                server,
                file: file.clone(),
                range,
            }
            .format(source);
            let piece = read_object(store, &key)
                .await?
                .ok_or_else(|| BinlogFetchError::Vanished { key: key.clone() })?;
            if piece.len() != range.len() as usize {
                let reason = format!(
                    "holds {} bytes but its key says {}",
                    piece.len(),
                    range.len()
                );
                return Err(ReadError::damaged(&key, reason, false).into());
            }
            out.write(&piece).map_err(dest_error)?;
        }
    }
    out.commit().map_err(dest_error)?;
    Ok(Fetched::Found)
}

/// Refuses a file whose end marker says it is longer than its pieces reach: a piece of a
/// complete file is missing, and serving the prefix would pass off a truncated file.
fn check_marked_length(
    source: &SourceName,
    server: ServerNo,
    file: &BinlogFileName,
    objects: &FileObjects,
    chain: &[PieceRange],
) -> Result<(), BinlogFetchError> {
    let reach = chain.last().map_or(0, |piece| piece.end());
    match objects.ends.iter().max() {
        Some(&len) if len != reach => {
            let key = BinlogKey::End {
                server,
                file: file.clone(),
                len,
            }
            .format(source);
            let reason = format!(
                "it marks the file complete at {len} bytes, but its pieces reach {reach}: a piece is missing"
            );
            Err(ReadError::damaged(&key, reason, false).into())
        }
        _ => Ok(()),
    }
}
