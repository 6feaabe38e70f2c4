//! Tar streams → chunk objects: cuts each tablespace's stream every [`CHUNK_BYTES`],
//! compresses off the async threads and uploads with at most [`MAX_IN_FLIGHT`] puts at once.
//! The chunk buffers and the buffers they are compressed into are reused, so memory stays at
//! a few chunks whatever the cluster's size (and the allocator is not left fragmented by a
//! stream of 16 MiB allocations).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use logship_protocol::archive::backup::{BackupId, TablespaceMeta};
use logship_protocol::archive::key::{ArchiveKey, SourceName};
use logship_protocol::archive::object::{Codec, Framer};
use tokio::task::JoinSet;

use super::BackupError;
use crate::store::{Store, StoreError};

/// Raw tar bytes per chunk object (the storage format's 16 MiB).
pub const CHUNK_BYTES: usize = 16 << 20;

/// Uploads running at once: one compressing while another is on the wire.
const MAX_IN_FLIGHT: usize = 2;

/// Attempts per object before a transient store error fails the backup.
const PUT_ATTEMPTS: u32 = 5;
const FIRST_RETRY: Duration = Duration::from_millis(200);

/// What one finished upload adds to its tablespace.
struct Uploaded {
    oid: u32,
    chunk: u32,
    crc: u32,
    stored: u64,
    /// The chunk's buffer, emptied for the next chunk.
    buffer: Vec<u8>,
    /// The framer that compressed it, for the next chunk.
    framer: Framer,
}

/// A tablespace's stream as far as it has been cut.
struct Stream {
    location: Option<String>,
    chunks: u32,
    raw_bytes: u64,
    stored_bytes: u64,
    crcs: BTreeMap<u32, u32>,
}

/// Writes the chunk objects of one backup.
pub struct ChunkWriter {
    store: Arc<dyn Store>,
    source: SourceName,
    id: BackupId,
    streams: BTreeMap<u32, Stream>,
    /// The tablespace whose bytes arrive now, and its chunk being filled.
    current: Option<(u32, Vec<u8>)>,
    in_flight: JoinSet<Result<Uploaded, BackupError>>,
    /// Emptied chunk buffers, to fill again.
    spare: Vec<Vec<u8>>,
    /// Framers of finished uploads, to compress with again.
    spare_framers: Vec<Framer>,
    /// Every key a put was started for, to delete if the backup fails.
    keys: Vec<String>,
}

impl ChunkWriter {
    /// A writer for backup `id` of `source`.
    pub fn new(store: Arc<dyn Store>, source: SourceName, id: BackupId) -> ChunkWriter {
        ChunkWriter {
            store,
            source,
            id,
            streams: BTreeMap::new(),
            current: None,
            in_flight: JoinSet::new(),
            spare: Vec::new(),
            spare_framers: Vec::new(),
            keys: Vec::new(),
        }
    }

    /// Ends the current tablespace's stream and starts the one of `oid` (0: the data directory).
    pub async fn begin(&mut self, oid: u32, location: Option<String>) -> Result<(), BackupError> {
        self.end().await?;
        if self.streams.contains_key(&oid) {
            return Err(BackupError::DuplicateArchive { id: self.id, oid });
        }
        self.streams.insert(
            oid,
            Stream {
                location,
                chunks: 0,
                raw_bytes: 0,
                stored_bytes: 0,
                crcs: BTreeMap::new(),
            },
        );
        self.current = Some((oid, self.buffer()));
        Ok(())
    }

    /// Appends tar bytes to the current tablespace's stream.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), BackupError> {
        while !data.is_empty() {
            let Some((oid, buf)) = &mut self.current else {
                return Err(BackupError::DataOutsideArchive { id: self.id });
            };
            let room = CHUNK_BYTES.saturating_sub(buf.len());
            let (now, rest) = data.split_at(room.min(data.len()));
            buf.extend_from_slice(now);
            data = rest;
            if buf.len() >= CHUNK_BYTES {
                let oid = *oid;
                let full = std::mem::take(buf);
                self.submit(oid, full).await?;
                let next = self.buffer();
                if let Some((_, buf)) = &mut self.current {
                    *buf = next;
                }
            }
        }
        Ok(())
    }

    /// Ends the current tablespace's stream, if any: its last, shorter chunk goes out.
    pub async fn end(&mut self) -> Result<(), BackupError> {
        match self.current.take() {
            Some((_, buf)) if buf.is_empty() => self.spare.push(buf),
            Some((oid, buf)) => self.submit(oid, buf).await?,
            None => {}
        }
        Ok(())
    }

    /// Waits for every upload and returns the tablespaces, the data directory first.
    pub async fn finish(&mut self) -> Result<Vec<TablespaceMeta>, BackupError> {
        self.end().await?;
        while let Some(joined) = self.in_flight.join_next().await {
            self.record(joined)?;
        }
        let mut tablespaces = Vec::with_capacity(self.streams.len());
        // BTreeMap order puts OID 0, the data directory, first.
        for (&oid, stream) in &self.streams {
            let chunk_crcs: Vec<u32> = stream.crcs.values().copied().collect();
            if chunk_crcs.len() != usize::try_from(stream.chunks).unwrap_or(usize::MAX) {
                return Err(BackupError::ChunksMissing { id: self.id, oid });
            }
            tablespaces.push(TablespaceMeta {
                oid,
                location: stream.location.clone(),
                chunks: stream.chunks,
                raw_bytes: stream.raw_bytes,
                stored_bytes: stream.stored_bytes,
                chunk_crcs,
            });
        }
        Ok(tablespaces)
    }

    /// Waits for the uploads still running, then returns every key that may have been written.
    pub async fn abandon(&mut self) -> Vec<String> {
        // Let running puts end, so that none lands after the cleanup deleted its key.
        while self.in_flight.join_next().await.is_some() {}
        std::mem::take(&mut self.keys)
    }

    /// An empty chunk buffer: a spare one, else a new one.
    fn buffer(&mut self) -> Vec<u8> {
        self.spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(CHUNK_BYTES))
    }

    /// Starts the upload of one full chunk, first waiting for a slot.
    async fn submit(&mut self, oid: u32, mut raw: Vec<u8>) -> Result<(), BackupError> {
        while self.in_flight.len() >= MAX_IN_FLIGHT {
            if let Some(joined) = self.in_flight.join_next().await {
                self.record(joined)?;
            }
        }
        let id = self.id;
        let stream = self
            .streams
            .get_mut(&oid)
            .ok_or(BackupError::DataOutsideArchive { id })?;
        let chunk = stream.chunks;
        stream.chunks = chunk
            .checked_add(1)
            .ok_or(BackupError::TooManyChunks { id, oid })?;
        stream.raw_bytes += raw.len() as u64;
        let key = ArchiveKey::BackupChunk {
            id,
            tablespace: oid,
            chunk,
        }
        .format(&self.source);
        self.keys.push(key.clone());
        let store = self.store.clone();
        let mut framer = self
            .spare_framers
            .pop()
            .unwrap_or_else(|| Framer::for_content(CHUNK_BYTES));
        self.in_flight.spawn(async move {
            let (crc, stored, buffer, framer) = tokio::task::spawn_blocking(move || {
                let crc = crc32fast::hash(&raw);
                let stored = framer.frame(&raw, Codec::Lz4).to_vec();
                raw.clear();
                (crc, stored, raw, framer)
            })
            .await
            .map_err(|err| BackupError::Task {
                reason: err.to_string(),
            })?;
            let stored_len = stored.len() as u64;
            put(store.as_ref(), &key, Bytes::from(stored)).await?;
            Ok(Uploaded {
                oid,
                chunk,
                crc,
                stored: stored_len,
                buffer,
                framer,
            })
        });
        Ok(())
    }

    /// Adds a finished upload to its tablespace.
    fn record(
        &mut self,
        joined: Result<Result<Uploaded, BackupError>, tokio::task::JoinError>,
    ) -> Result<(), BackupError> {
        let done = joined.map_err(|err| BackupError::Task {
            reason: err.to_string(),
        })??;
        let stream = self
            .streams
            .get_mut(&done.oid)
            .ok_or(BackupError::DataOutsideArchive { id: self.id })?;
        stream.stored_bytes += done.stored;
        stream.crcs.insert(done.chunk, done.crc);
        self.spare.push(done.buffer);
        self.spare_framers.push(done.framer);
        Ok(())
    }
}

/// Puts one object, retrying transient store errors a few times with backoff.
pub async fn put(store: &dyn Store, key: &str, data: Bytes) -> Result<(), StoreError> {
    let mut delay = FIRST_RETRY;
    let mut attempt = 1;
    loop {
        match store.put(key, data.clone()).await {
            Ok(()) => return Ok(()),
            Err(err) if err.is_transient() && attempt < PUT_ATTEMPTS => {
                tracing::warn!(%key, %err, retry_in = ?delay, "backup upload failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fs::FsStore;
    use logship_protocol::archive::object;
    use logship_protocol::pg::{Lsn, TimelineId};

    fn writer(dir: &std::path::Path) -> (Arc<dyn Store>, ChunkWriter) {
        let store: Arc<dyn Store> = Arc::new(FsStore::new(dir).unwrap());
        let id = BackupId::new(TimelineId::FIRST, Lsn::new(0x300_0028));
        let source = SourceName::new("main").unwrap();
        let writer = ChunkWriter::new(store.clone(), source, id);
        (store, writer)
    }

    #[tokio::test]
    async fn cuts_streams_into_chunks_and_records_crcs() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut writer) = writer(dir.path());
        let main: Vec<u8> = (0..CHUNK_BYTES + 1000).map(|i| (i % 251) as u8).collect();
        writer.begin(16390, Some("/srv/ts".into())).await.unwrap();
        writer.write(b"tablespace").await.unwrap();
        writer.begin(0, None).await.unwrap();
        for piece in main.chunks(32768) {
            writer.write(piece).await.unwrap();
        }
        let tablespaces = writer.finish().await.unwrap();

        assert_eq!(tablespaces.len(), 2);
        let (data_dir, ts) = (&tablespaces[0], &tablespaces[1]);
        assert_eq!((data_dir.oid, data_dir.chunks), (0, 2));
        assert_eq!(data_dir.raw_bytes, main.len() as u64);
        assert_eq!(
            data_dir.chunk_crcs,
            vec![
                crc32fast::hash(&main[..CHUNK_BYTES]),
                crc32fast::hash(&main[CHUNK_BYTES..])
            ]
        );
        assert_eq!((ts.oid, ts.chunks, ts.raw_bytes), (16390, 1, 10));
        assert_eq!(ts.location.as_deref(), Some("/srv/ts"));

        let listed = store.list("main/backups/").await.unwrap();
        let keys: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "main/backups/000000010000000003000028/tar/00000000/00000000",
                "main/backups/000000010000000003000028/tar/00000000/00000001",
                "main/backups/000000010000000003000028/tar/00004006/00000000",
            ]
        );
        let stored: u64 = listed.iter().take(2).map(|o| o.size).sum();
        assert_eq!(data_dir.stored_bytes, stored);
        let second = store.get(keys[1]).await.unwrap();
        assert_eq!(object::decode(&second).unwrap(), main[CHUNK_BYTES..]);
    }

    #[tokio::test]
    async fn refuses_data_before_an_archive_and_repeated_archives() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut writer) = writer(dir.path());
        assert!(matches!(
            writer.write(b"x").await,
            Err(BackupError::DataOutsideArchive { .. })
        ));
        writer.begin(0, None).await.unwrap();
        assert!(matches!(
            writer.begin(0, None).await,
            Err(BackupError::DuplicateArchive { oid: 0, .. })
        ));
    }
}
