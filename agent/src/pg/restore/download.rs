//! Streams a backup's tar chunks from the store into the extractor: up to [`PARALLEL`]
//! chunks are fetched at once and handed over in order, still compressed, through a
//! short queue. The extracting thread decodes each one when it reaches it (checking the
//! object's CRCs and the CRC the backup meta records) into memory it then frees itself,
//! so memory stays bounded, and unfragmented, whatever the backup's size.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use indicatif::ProgressBar;
use logship_protocol::archive::backup::{BackupMeta, TablespaceMeta};
use logship_protocol::archive::key::{ArchiveKey, SourceName};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::archive::{self, read_stored};
use crate::pg::restore::error::RestoreError;
use crate::pg::restore::extract::Extractor;
use crate::store::Store;

/// How many chunks are fetched at once.
pub const PARALLEL: usize = 3;

/// How many fetched chunks wait for the extractor; at most this many plus [`PARALLEL`]
/// plus the one being unpacked are in memory.
const QUEUE: usize = 1;

/// Where one tablespace's stream is unpacked.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The directory the stream is unpacked into.
    pub dir: PathBuf,
    /// How the manifest names that directory: `""` or `pg_tblspc/<oid>/`.
    pub manifest_prefix: String,
}

/// Fetches every tablespace stream of `meta` and unpacks it with `extractor` into
/// `destinations` (one per tablespace, in the meta's order); returns the extractor, which
/// has seen every file, for its final check.
pub async fn restore_streams(
    store: Arc<dyn Store>,
    source: &SourceName,
    meta: &BackupMeta,
    destinations: Vec<Destination>,
    mut extractor: Extractor,
    progress: &ProgressBar,
) -> Result<Extractor, RestoreError> {
    let mut fetcher = Fetcher {
        store,
        jobs: chunk_jobs(source, meta).into_iter(),
        pending: VecDeque::new(),
    };
    for (ts, destination) in meta.tablespaces.iter().zip(destinations) {
        let stream = Stream {
            source,
            meta,
            ts,
            destination,
        };
        match stream.unpack(&mut fetcher, extractor, progress).await {
            Ok(next) => extractor = next,
            Err(err) => {
                fetcher.abort();
                return Err(err);
            }
        }
    }
    Ok(extractor)
}

/// Every chunk key of `meta` in stream order, with the CRC the meta records for it.
fn chunk_jobs(source: &SourceName, meta: &BackupMeta) -> Vec<(String, Option<u32>)> {
    meta.tablespaces
        .iter()
        .flat_map(|ts| {
            (0..ts.chunks).map(move |chunk| {
                let crc = usize::try_from(chunk)
                    .ok()
                    .and_then(|i| ts.chunk_crcs.get(i).copied());
                (chunk_key(source, meta, ts, chunk), crc)
            })
        })
        .collect()
}

fn chunk_key(source: &SourceName, meta: &BackupMeta, ts: &TablespaceMeta, chunk: u32) -> String {
    ArchiveKey::BackupChunk {
        id: meta.id,
        tablespace: ts.oid,
        chunk,
    }
    .format(source)
}

/// A chunk as stored, with what its content must hash to.
struct StoredChunk {
    key: String,
    stored: Bytes,
    expected_crc: Option<u32>,
}

/// A chunk being fetched.
type ChunkTask = JoinHandle<Result<StoredChunk, RestoreError>>;

/// Chunk fetches in flight, in stream order.
struct Fetcher {
    store: Arc<dyn Store>,
    jobs: std::vec::IntoIter<(String, Option<u32>)>,
    pending: VecDeque<(String, ChunkTask)>,
}

impl Fetcher {
    /// The next chunk as stored; starts fetches to keep [`PARALLEL`] in flight.
    async fn next(&mut self) -> Result<StoredChunk, RestoreError> {
        while self.pending.len() < PARALLEL
            && let Some((key, crc)) = self.jobs.next()
        {
            let store = self.store.clone();
            let task_key = key.clone();
            let task =
                tokio::spawn(async move { fetch_chunk(store.as_ref(), &task_key, crc).await });
            self.pending.push_back((key, task));
        }
        let (key, task) = self.pending.pop_front().ok_or_else(|| RestoreError::Task {
            reason: "the backup meta counts more chunks than were queued".to_owned(),
        })?;
        task.await.map_err(|err| RestoreError::Task {
            reason: format!("fetching {key}: {err}"),
        })?
    }

    /// Stops every fetch still running.
    fn abort(&mut self) {
        for (_, task) in self.pending.drain(..) {
            task.abort();
        }
    }
}

/// Reads one chunk as stored.
async fn fetch_chunk(
    store: &dyn Store,
    key: &str,
    expected_crc: Option<u32>,
) -> Result<StoredChunk, RestoreError> {
    let stored = read_stored(store, key)
        .await?
        .ok_or_else(|| RestoreError::MissingObject {
            key: key.to_owned(),
        })?;
    Ok(StoredChunk {
        key: key.to_owned(),
        stored,
        expected_crc,
    })
}

impl StoredChunk {
    /// Decodes the chunk: the object's own CRCs, then the meta's CRC of its content.
    fn decode(&self) -> Result<Vec<u8>, RestoreError> {
        let corrupt = |reason: String| RestoreError::corrupt(&self.key, reason);
        let content = archive::decode(&self.key, &self.stored)?;
        let crc = crc32fast::hash(&content);
        match self.expected_crc {
            Some(expected) if expected == crc => Ok(content),
            Some(expected) => Err(corrupt(format!(
                "its content has CRC-32 {crc:08X} but the backup meta records {expected:08X}"
            ))),
            None => Err(corrupt("the backup meta records no CRC for it".to_owned())),
        }
    }
}

/// One tablespace's stream.
struct Stream<'a> {
    source: &'a SourceName,
    meta: &'a BackupMeta,
    ts: &'a TablespaceMeta,
    destination: Destination,
}

impl Stream<'_> {
    /// Feeds the stream's chunks to `extractor` on a blocking thread, and gives it back.
    async fn unpack(
        self,
        fetcher: &mut Fetcher,
        mut extractor: Extractor,
        progress: &ProgressBar,
    ) -> Result<Extractor, RestoreError> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let corrupt = Arc::new(Mutex::new(None));
        let reader = ChunkReader {
            rx,
            current: Vec::new(),
            pos: 0,
            progress: progress.clone(),
            corrupt: corrupt.clone(),
        };
        let destination = self.destination.clone();
        let unpacking = tokio::task::spawn_blocking(move || {
            let unpacked = extractor.unpack(reader, &destination.dir, &destination.manifest_prefix);
            (extractor, unpacked)
        });
        let mut fed = Ok(());
        for _ in 0..self.ts.chunks {
            match fetcher.next().await {
                Ok(content) => {
                    if tx.send(content).await.is_err() {
                        // The extractor stopped early; its own error says why.
                        break;
                    }
                }
                Err(err) => {
                    fed = Err(err);
                    break;
                }
            }
        }
        drop(tx);
        let (extractor, unpacked) = unpacking.await.map_err(|err| RestoreError::Task {
            reason: err.to_string(),
        })?;
        // A failed fetch or a corrupt chunk also cuts the stream short; they are the cause.
        fed?;
        if let Some(err) = corrupt.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Err(err);
        }
        unpacked.map_err(|reason| RestoreError::Extract {
            what: self.describe(),
            id: self.meta.id.to_string(),
            reason: Box::new(reason),
        })?;
        Ok(extractor)
    }

    fn describe(&self) -> String {
        let first = chunk_key(self.source, self.meta, self.ts, 0);
        let whose = match self.ts.oid {
            0 => "the data directory".to_owned(),
            oid => format!("tablespace {oid}"),
        };
        format!("{whose} (stored in {} chunks from {first})", self.ts.chunks)
    }
}

/// The chunks of one stream as one `Read`, fed from the async side.
struct ChunkReader {
    rx: mpsc::Receiver<StoredChunk>,
    current: Vec<u8>,
    pos: usize,
    progress: ProgressBar,
    /// Why the stream stopped, when a chunk did not decode; `Read` can only say "I/O error".
    corrupt: Arc<Mutex<Option<RestoreError>>>,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(rest) = self.current.get(self.pos..).filter(|r| !r.is_empty()) {
                let n = rest.len().min(buf.len());
                if let (Some(dst), Some(src)) = (buf.get_mut(..n), rest.get(..n)) {
                    dst.copy_from_slice(src);
                }
                self.pos += n;
                self.progress.inc(n as u64);
                return Ok(n);
            }
            match self.rx.blocking_recv() {
                Some(next) => match next.decode() {
                    Ok(content) => {
                        self.current = content;
                        self.pos = 0;
                    }
                    Err(err) => {
                        let message = err.to_string();
                        *self.corrupt.lock().unwrap_or_else(|e| e.into_inner()) = Some(err);
                        return Err(io::Error::new(io::ErrorKind::InvalidData, message));
                    }
                },
                None => return Ok(0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logship_protocol::archive::object::{self, Codec};

    const KEY: &str = "main/backups/000000010000000003000028/tar/00000000/00000000";

    fn chunk(stored: Vec<u8>, expected_crc: Option<u32>) -> StoredChunk {
        StoredChunk {
            key: KEY.to_owned(),
            stored: stored.into(),
            expected_crc,
        }
    }

    /// Regression: the line carried the object decoder's fix ("archive it again from the
    /// source") before the restore's own.
    #[test]
    fn a_corrupt_chunk_gives_one_fix() {
        let content = b"tar bytes".to_vec();
        let crc = crc32fast::hash(&content);
        let mut stored = object::encode(&content, Codec::None);
        assert_eq!(chunk(stored.clone(), Some(crc)).decode().unwrap(), content);

        let last = stored.len() - 1;
        stored[last] ^= 1;
        let damaged = crc32fast::hash(&stored[object::HEADER_LEN..]);
        assert_eq!(
            chunk(stored, Some(crc)).decode().unwrap_err().to_string(),
            format!(
                "object {KEY} is corrupt: object payload checksum mismatch: expected {crc:08X}, \
                 computed {damaged:08X} (the stored backup is damaged; pick a target another \
                 backup reaches, see logship list, or take a new backup)"
            )
        );

        let stored = object::encode(&content, Codec::None);
        assert_eq!(
            chunk(stored, Some(!crc)).decode().unwrap_err().to_string(),
            format!(
                "object {KEY} is corrupt: its content has CRC-32 {crc:08X} but the backup meta \
                 records {:08X} (the stored backup is damaged; pick a target another backup \
                 reaches, see logship list, or take a new backup)",
                !crc
            )
        );
    }

    #[test]
    fn a_chunk_from_a_newer_logship_asks_for_an_upgrade() {
        let content = b"tar bytes".to_vec();
        let mut stored = object::encode(&content, Codec::None);
        stored[8] = 2;
        assert_eq!(
            chunk(stored, Some(crc32fast::hash(&content)))
                .decode()
                .unwrap_err()
                .to_string(),
            format!(
                "object {KEY} was written by a newer logship: object format version 2 is not \
                 supported: this logship reads version 1 (upgrade logship)"
            )
        );
    }
}
