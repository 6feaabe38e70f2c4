//! Tar streams → chunk objects: each tablespace's stream is one stream of the shared
//! [`crate::backup::ChunkWriter`], cut every [`CHUNK_BYTES`] under `tar/<oid>/`.

use std::collections::BTreeMap;
use std::sync::Arc;

use logship_protocol::archive::backup::{BackupId, TablespaceMeta};
use logship_protocol::archive::key::{ArchiveKey, SourceName};

use super::BackupError;
use crate::backup::chunks::{self, ChunkError};
use crate::store::Store;

pub use chunks::CHUNK_BYTES;

/// Writes the chunk objects of one backup, one tablespace after the other.
pub struct ChunkWriter {
    inner: chunks::ChunkWriter,
    /// Each tablespace's directory on the server (`None` for the data directory).
    locations: BTreeMap<u32, Option<String>>,
}

impl From<ChunkError> for BackupError {
    fn from(err: ChunkError) -> BackupError {
        match err {
            ChunkError::Store(err) => BackupError::Store(err),
            ChunkError::Task { reason } => BackupError::Task { reason },
            ChunkError::Duplicate { id, stream } => {
                BackupError::DuplicateArchive { id, oid: stream }
            }
            ChunkError::NoStream { id } => BackupError::DataOutsideArchive { id },
            ChunkError::TooManyChunks { id, stream } => {
                BackupError::TooManyChunks { id, oid: stream }
            }
            ChunkError::Missing { id, stream } => BackupError::ChunksMissing { id, oid: stream },
        }
    }
}

impl ChunkWriter {
    /// A writer for backup `id` of `source`.
    pub fn new(store: Arc<dyn Store>, source: SourceName, id: BackupId) -> ChunkWriter {
        let key = move |tablespace, chunk| {
            ArchiveKey::BackupChunk {
                id,
                tablespace,
                chunk,
            }
            .format(&source)
        };
        ChunkWriter {
            inner: chunks::ChunkWriter::new(store, id, key, chunks::DEFAULT_IN_FLIGHT),
            locations: BTreeMap::new(),
        }
    }

    /// Ends the current tablespace's stream and starts the one of `oid` (0: the data directory).
    pub async fn begin(&mut self, oid: u32, location: Option<String>) -> Result<(), BackupError> {
        self.inner.begin(oid).await?;
        self.locations.insert(oid, location);
        Ok(())
    }

    /// Appends tar bytes to the current tablespace's stream.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), BackupError> {
        Ok(self.inner.write(data).await?)
    }

    /// Ends the current tablespace's stream, if any: its last, shorter chunk goes out.
    pub async fn end(&mut self) -> Result<(), BackupError> {
        Ok(self.inner.end().await?)
    }

    /// Waits for every upload and returns the tablespaces, the data directory first.
    pub async fn finish(&mut self) -> Result<Vec<TablespaceMeta>, BackupError> {
        let streams = self.inner.finish().await?;
        // BTreeMap order puts OID 0, the data directory, first.
        Ok(streams
            .into_iter()
            .map(|(oid, stream)| TablespaceMeta {
                oid,
                location: self.locations.get(&oid).cloned().flatten(),
                chunks: stream.chunks,
                raw_bytes: stream.raw_bytes,
                stored_bytes: stream.stored_bytes,
                chunk_crcs: stream.chunk_crcs,
            })
            .collect())
    }

    /// Waits for the uploads still running, then returns every key that may have been written.
    pub async fn abandon(&mut self) -> Vec<String> {
        self.inner.abandon().await
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
