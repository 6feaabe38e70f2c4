//! `logship binlog-fetch FILE DEST`: one archived binlog file, complete or in progress,
//! written byte for byte as the server wrote it, so that `mysqlbinlog` can read it.

use std::path::Path;

use logship_protocol::archive::SourceIdentity;
use logship_protocol::archive::key::SourceName;
use logship_protocol::mysql::BinlogFileName;

use crate::archive::{Fetched, ReadError};
use crate::fetchdest::FetchDest;
use crate::identity::{IdentityError, read_identity};
use crate::mysql::catalog::BinlogCatalog;
use crate::mysql::read::{ArchivedFile, FileReadError};
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
    #[error(transparent)]
    File(FileReadError),
    #[error(
        "cannot write {path}: {reason} (check that the destination directory exists and is writable)"
    )]
    Dest { path: String, reason: String },
}

impl From<FileReadError> for BinlogFetchError {
    fn from(err: FileReadError) -> BinlogFetchError {
        match err {
            FileReadError::Read(err) => err.into(),
            other => BinlogFetchError::File(other),
        }
    }
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
    let archived = ArchivedFile {
        source,
        server,
        file: &file,
        objects,
    };
    let dest_error = |err: std::io::Error| BinlogFetchError::Dest {
        path: dest.display().to_string(),
        reason: err.to_string(),
    };
    let mut out = FetchDest::create(dest).map_err(dest_error)?;
    let found = match archived.copy_to(store, &mut out).await {
        Ok(found) => found,
        Err(FileReadError::Write(err)) => return Err(dest_error(err)),
        Err(err) => return Err(err.into()),
    };
    if !found {
        return Ok(Fetched::NotInArchive);
    }
    out.commit().map_err(dest_error)?;
    Ok(Fetched::Found)
}
