//! Byte streams → chunk objects, for every kind of base backup: cuts each stream into
//! objects of about [`CHUNK_BYTES`], compresses them off the async threads with LZ4 and
//! uploads with a bounded number of puts at once. The chunk buffers are reused, so memory
//! stays at a few chunks whatever the backup's size (and the allocator is not left
//! fragmented by a stream of 16 MiB allocations).
//!
//! A stream is named by a number (a PostgreSQL tablespace, a part of a MySQL table); the
//! caller says how a stream's chunk is keyed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use logship_protocol::archive::backup::BackupId;
use logship_protocol::archive::object::{self, Codec};
use tokio::task::JoinSet;

use crate::store::{Store, StoreError};

/// Raw bytes per chunk object (the storage format's 16 MiB).
pub const CHUNK_BYTES: usize = 16 << 20;

/// Uploads running at once by default: one compressing while another is on the wire.
pub const DEFAULT_IN_FLIGHT: usize = 2;

/// Attempts per object before a transient store error fails the backup.
const PUT_ATTEMPTS: u32 = 5;
const FIRST_RETRY: Duration = Duration::from_millis(200);

/// Why chunks could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("backup upload task failed: {reason} (retry the backup)")]
    Task { reason: String },
    #[error("backup {id}: stream {stream} was started twice (report this as a bug)")]
    Duplicate { id: BackupId, stream: u32 },
    #[error("backup {id}: data arrived outside a stream (report this as a bug)")]
    NoStream { id: BackupId },
    #[error(
        "backup {id}: stream {stream} has more chunks than the format can number (it is over 64 PiB)"
    )]
    TooManyChunks { id: BackupId, stream: u32 },
    #[error("backup {id}: an upload of stream {stream} did not report back (report this as a bug)")]
    Missing { id: BackupId, stream: u32 },
}

/// What one stream became: its chunk objects, numbered from 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamChunks {
    /// How many chunk objects hold the stream.
    pub chunks: u32,
    /// The stream's bytes, before compression.
    pub raw_bytes: u64,
    /// Bytes stored for the chunks, framing included.
    pub stored_bytes: u64,
    /// The CRC-32 (IEEE) of each chunk's content, in chunk order.
    pub chunk_crcs: Vec<u32>,
}

/// A stream as far as it has been cut.
#[derive(Default)]
struct Stream {
    chunks: u32,
    raw_bytes: u64,
    stored_bytes: u64,
    crcs: BTreeMap<u32, u32>,
}

/// What one finished upload adds to its stream.
struct Uploaded {
    stream: u32,
    chunk: u32,
    crc: u32,
    stored: u64,
    /// The chunk's buffer, emptied for the next chunk.
    buffer: Vec<u8>,
}

/// The key of chunk `chunk` of stream `stream`.
type KeyFn = Box<dyn Fn(u32, u32) -> String + Send + Sync>;

/// Writes the chunk objects of one backup, one stream at a time.
pub struct ChunkWriter {
    store: Arc<dyn Store>,
    id: BackupId,
    key: KeyFn,
    max_in_flight: usize,
    streams: BTreeMap<u32, Stream>,
    /// The stream whose bytes arrive now, and its chunk being filled.
    current: Option<(u32, Vec<u8>)>,
    in_flight: JoinSet<Result<Uploaded, ChunkError>>,
    /// Emptied chunk buffers, to fill again.
    spare: Vec<Vec<u8>>,
    /// Every key a put was started for, to delete if the backup fails.
    keys: Vec<String>,
}

impl ChunkWriter {
    /// A writer for backup `id` whose chunk `c` of stream `s` goes to `key(s, c)`, with at
    /// most `max_in_flight` uploads at once (at least 1).
    pub fn new(
        store: Arc<dyn Store>,
        id: BackupId,
        key: impl Fn(u32, u32) -> String + Send + Sync + 'static,
        max_in_flight: usize,
    ) -> ChunkWriter {
        ChunkWriter {
            store,
            id,
            key: Box::new(key),
            max_in_flight: max_in_flight.max(1),
            streams: BTreeMap::new(),
            current: None,
            in_flight: JoinSet::new(),
            spare: Vec::new(),
            keys: Vec::new(),
        }
    }

    /// Ends the current stream and starts stream `stream`.
    pub async fn begin(&mut self, stream: u32) -> Result<(), ChunkError> {
        self.end().await?;
        if self.streams.contains_key(&stream) {
            return Err(ChunkError::Duplicate {
                id: self.id,
                stream,
            });
        }
        self.streams.insert(stream, Stream::default());
        self.current = Some((stream, self.buffer()));
        Ok(())
    }

    /// Appends bytes to the current stream, cutting a chunk every [`CHUNK_BYTES`] exactly.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), ChunkError> {
        while !data.is_empty() {
            let buf = self.current_buffer()?;
            let room = CHUNK_BYTES.saturating_sub(buf.len());
            let (now, rest) = data.split_at(room.min(data.len()));
            buf.extend_from_slice(now);
            data = rest;
            if buf.len() >= CHUNK_BYTES {
                self.cut().await?;
            }
        }
        Ok(())
    }

    /// Appends a record that must not be split across chunks: the chunk in progress is cut
    /// first when the record does not fit. A record longer than a chunk is a chunk of its own.
    pub async fn write_record(&mut self, record: &[u8]) -> Result<(), ChunkError> {
        let buf = self.current_buffer()?;
        if !buf.is_empty() && buf.len() + record.len() > CHUNK_BYTES {
            self.cut().await?;
        }
        self.current_buffer()?.extend_from_slice(record);
        Ok(())
    }

    /// Ends the current stream, if any: its last, shorter chunk goes out.
    pub async fn end(&mut self) -> Result<(), ChunkError> {
        match self.current.take() {
            Some((_, buf)) if buf.is_empty() => self.spare.push(buf),
            Some((stream, buf)) => self.submit(stream, buf).await?,
            None => {}
        }
        Ok(())
    }

    /// Waits for every upload and returns each stream's chunks, by stream number.
    pub async fn finish(&mut self) -> Result<BTreeMap<u32, StreamChunks>, ChunkError> {
        self.end().await?;
        while let Some(joined) = self.in_flight.join_next().await {
            self.record(joined)?;
        }
        let mut streams = BTreeMap::new();
        for (&number, stream) in &self.streams {
            let chunk_crcs: Vec<u32> = stream.crcs.values().copied().collect();
            if chunk_crcs.len() != usize::try_from(stream.chunks).unwrap_or(usize::MAX) {
                return Err(ChunkError::Missing {
                    id: self.id,
                    stream: number,
                });
            }
            streams.insert(
                number,
                StreamChunks {
                    chunks: stream.chunks,
                    raw_bytes: stream.raw_bytes,
                    stored_bytes: stream.stored_bytes,
                    chunk_crcs,
                },
            );
        }
        Ok(streams)
    }

    /// Waits for the uploads still running, then returns every key that may have been written.
    pub async fn abandon(&mut self) -> Vec<String> {
        // Let running puts end, so that none lands after the cleanup deleted its key.
        while self.in_flight.join_next().await.is_some() {}
        std::mem::take(&mut self.keys)
    }

    fn current_buffer(&mut self) -> Result<&mut Vec<u8>, ChunkError> {
        match &mut self.current {
            Some((_, buf)) => Ok(buf),
            None => Err(ChunkError::NoStream { id: self.id }),
        }
    }

    /// Sends the current stream's chunk in progress and gives the stream an empty one.
    async fn cut(&mut self) -> Result<(), ChunkError> {
        let next = self.buffer();
        let Some((stream, buf)) = &mut self.current else {
            return Err(ChunkError::NoStream { id: self.id });
        };
        let stream = *stream;
        let full = std::mem::replace(buf, next);
        self.submit(stream, full).await
    }

    /// An empty chunk buffer: a spare one, else a new one.
    fn buffer(&mut self) -> Vec<u8> {
        self.spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(CHUNK_BYTES))
    }

    /// Starts the upload of one chunk, first waiting for a slot.
    async fn submit(&mut self, stream: u32, mut raw: Vec<u8>) -> Result<(), ChunkError> {
        while self.in_flight.len() >= self.max_in_flight {
            if let Some(joined) = self.in_flight.join_next().await {
                self.record(joined)?;
            }
        }
        let id = self.id;
        let entry = self
            .streams
            .get_mut(&stream)
            .ok_or(ChunkError::NoStream { id })?;
        let chunk = entry.chunks;
        entry.chunks = chunk
            .checked_add(1)
            .ok_or(ChunkError::TooManyChunks { id, stream })?;
        entry.raw_bytes += raw.len() as u64;
        let key = (self.key)(stream, chunk);
        self.keys.push(key.clone());
        let store = self.store.clone();
        self.in_flight.spawn(async move {
            let (crc, stored, buffer) = tokio::task::spawn_blocking(move || {
                let crc = crc32fast::hash(&raw);
                let stored = object::encode(&raw, Codec::Lz4);
                raw.clear();
                (crc, stored, raw)
            })
            .await
            .map_err(|err| ChunkError::Task {
                reason: err.to_string(),
            })?;
            let stored_len = stored.len() as u64;
            put(store.as_ref(), &key, Bytes::from(stored)).await?;
            Ok(Uploaded {
                stream,
                chunk,
                crc,
                stored: stored_len,
                buffer,
            })
        });
        Ok(())
    }

    /// Adds a finished upload to its stream.
    fn record(
        &mut self,
        joined: Result<Result<Uploaded, ChunkError>, tokio::task::JoinError>,
    ) -> Result<(), ChunkError> {
        let done = joined.map_err(|err| ChunkError::Task {
            reason: err.to_string(),
        })??;
        let stream = self
            .streams
            .get_mut(&done.stream)
            .ok_or(ChunkError::NoStream { id: self.id })?;
        stream.stored_bytes += done.stored;
        stream.crcs.insert(done.chunk, done.crc);
        self.spare.push(done.buffer);
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

/// Deletes what a failed backup wrote, best effort: a backup without meta is invisible anyway.
pub async fn delete_all(store: &dyn Store, keys: &[String]) {
    for key in keys {
        if let Err(err) = store.delete(key).await {
            tracing::warn!(%key, %err, "cannot delete an object of the failed backup; it is unused");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fs::FsStore;
    use logship_protocol::pg::{Lsn, TimelineId};

    fn writer(dir: &std::path::Path) -> (Arc<dyn Store>, ChunkWriter) {
        let store: Arc<dyn Store> = Arc::new(FsStore::new(dir).unwrap());
        let id = BackupId::new(TimelineId::FIRST, Lsn::new(0x300_0028));
        let key = |stream, chunk| format!("s/{stream:08X}/{chunk:08X}");
        (store.clone(), ChunkWriter::new(store, id, key, 1))
    }

    #[tokio::test]
    async fn records_never_straddle_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut writer) = writer(dir.path());
        let record = vec![b'r'; CHUNK_BYTES / 3 + 1];
        writer.begin(7).await.unwrap();
        for _ in 0..4 {
            writer.write_record(&record).await.unwrap();
        }
        let big = vec![b'b'; CHUNK_BYTES + 5];
        writer.write_record(&big).await.unwrap();
        writer.write_record(b"tail").await.unwrap();
        let streams = writer.finish().await.unwrap();
        let seven = &streams[&7];
        assert_eq!(seven.chunks, 4);
        let sizes: Vec<usize> = chunk_sizes(store.as_ref(), 4).await;
        assert_eq!(
            sizes,
            [2 * record.len(), 2 * record.len(), big.len(), 4],
            "two records per chunk, the oversized one alone"
        );
        assert_eq!(seven.raw_bytes, (4 * record.len() + big.len() + 4) as u64);
    }

    async fn chunk_sizes(store: &dyn Store, n: u32) -> Vec<usize> {
        let mut sizes = Vec::new();
        for chunk in 0..n {
            let stored = store.get(&format!("s/00000007/{chunk:08X}")).await.unwrap();
            sizes.push(object::decode(&stored).unwrap().len());
        }
        sizes
    }

    #[tokio::test]
    async fn refuses_data_outside_a_stream_and_repeated_streams() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut writer) = writer(dir.path());
        assert!(matches!(
            writer.write(b"x").await,
            Err(ChunkError::NoStream { .. })
        ));
        assert!(matches!(
            writer.write_record(b"x").await,
            Err(ChunkError::NoStream { .. })
        ));
        writer.begin(0).await.unwrap();
        assert!(matches!(
            writer.begin(0).await,
            Err(ChunkError::Duplicate { stream: 0, .. })
        ));
    }
}
