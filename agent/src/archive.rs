//! Reading the archive back, for every source kind: one object at a time, its framing
//! and CRCs verified before a byte is used, transient store errors retried.
//!
//! Whether a damaged object calls for a repair or for an upgrade of logship is decided
//! here, once ([`ReadError::damaged`]); each reader adds the fix that fits what it reads
//! ([`ReadError::with_fix`]).

use std::fmt::Display;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use logship_protocol::archive::object;

use crate::store::{Store, StoreError};

/// How often a store operation that failed transiently is tried in all.
const ATTEMPTS: u32 = 4;

/// The pause before the first retry; it quadruples with each one.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// What a fetch command (`wal-fetch`, `binlog-fetch`) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// The file was written to DEST.
    Found,
    /// The archive was read, and it does not hold the file.
    NotInArchive,
}

/// A file written piece by piece that appears at its destination only when complete:
/// it is written to a temp file beside it, fsynced and renamed by [`AtomicFile::commit`].
/// Dropped before that, it leaves nothing behind.
pub struct AtomicFile {
    dest: PathBuf,
    temp: PathBuf,
    file: Option<std::fs::File>,
}

impl AtomicFile {
    /// Starts writing `dest`.
    pub fn create(dest: &Path) -> std::io::Result<AtomicFile> {
        let mut temp = dest.as_os_str().to_owned();
        temp.push(".logship-tmp");
        let temp = PathBuf::from(temp);
        let file = std::fs::File::create(&temp)?;
        Ok(AtomicFile {
            dest: dest.to_owned(),
            temp,
            file: Some(file),
        })
    }

    /// Makes the file durable and puts it in place.
    pub fn commit(mut self) -> std::io::Result<()> {
        if let Some(file) = self.file.take() {
            file.sync_all()?;
        }
        std::fs::rename(&self.temp, &self.dest)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self.file.as_mut() {
            Some(file) => file.write(bytes),
            None => Err(std::io::Error::other("the file is already committed")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().map_or(Ok(()), |file| file.flush())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.temp.exists() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Why an archived object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The object fails its checks, or its content does not parse.
    #[error("object {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    /// The object was written in a format this logship does not know yet.
    #[error("object {key} was written by a newer logship: {reason}")]
    Newer { key: String, reason: String },
}

impl ReadError {
    /// The object at `key` cannot be used because of `reason`; `newer` when its format
    /// version or codec is one a newer logship writes (the fix is an upgrade, not a repair).
    pub fn damaged(key: &str, reason: impl Display, newer: bool) -> ReadError {
        let (key, reason) = (key.to_owned(), reason.to_string());
        if newer {
            ReadError::Newer { key, reason }
        } else {
            ReadError::Corrupt { key, reason }
        }
    }

    /// The error as one line with its fix: `corrupt_fix` for a damaged object, an upgrade
    /// for one a newer logship wrote; a store error carries its own.
    pub fn with_fix(&self, corrupt_fix: &str) -> String {
        match self {
            ReadError::Store(err) => err.to_string(),
            ReadError::Corrupt { .. } => format!("{self} ({corrupt_fix})"),
            ReadError::Newer { .. } => format!("{self} (upgrade logship)"),
        }
    }
}

/// Verifies a stored object read from `key` and returns its content.
pub fn decode(key: &str, stored: &[u8]) -> Result<Vec<u8>, ReadError> {
    object::decode(stored).map_err(|err| ReadError::damaged(key, &err, err.is_unsupported()))
}

/// Reads one object as stored, not yet verified; `None` when it does not exist.
/// Transient store errors are retried with backoff.
pub async fn read_stored(store: &dyn Store, key: &str) -> Result<Option<Bytes>, StoreError> {
    retrying(|| async {
        match store.get(key).await {
            Ok(stored) => Ok(Some(stored)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(Retry::Store(err)),
        }
    })
    .await
}

/// Reads and verifies one object; `None` when it does not exist. Transient store errors
/// are retried with backoff.
pub async fn read_object(store: &dyn Store, key: &str) -> Result<Option<Vec<u8>>, ReadError> {
    match read_stored(store, key).await? {
        Some(stored) => decode(key, &stored).map(Some),
        None => Ok(None),
    }
}

/// A failure of one attempt in [`retrying`]: a store error, retried while the store
/// calls it transient, or any other error, returned at once.
pub enum Retry<E> {
    Store(StoreError),
    Other(E),
}

/// Runs `op` until it succeeds, fails for good, or [`ATTEMPTS`] transient failures in a
/// row. The S3 client retries on its own as well; this covers every backend, the file
/// store's interrupted or timed-out I/O included.
pub async fn retrying<T, E, F, Fut>(mut op: F) -> Result<T, E>
where
    E: From<StoreError>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Retry<E>>>,
{
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(Retry::Store(err)) if err.is_transient() && attempt < ATTEMPTS => {
                tracing::warn!(%err, attempt, "transient store error; retrying");
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(4);
                attempt += 1;
            }
            Err(Retry::Store(err)) => return Err(err.into()),
            Err(Retry::Other(err)) => return Err(err),
        }
    }
}
