//! Reading one archived binlog file of one server back: its bytes and its transaction
//! index, from the complete object or from the piece chain.

use std::io::Write;

use logship_protocol::archive::key::SourceName;
use logship_protocol::archive::pieces::PieceRange;
use logship_protocol::mysql::BinlogFileName;
use logship_protocol::mysql::index::{self, IndexEntry};
use logship_protocol::mysql::key::{BinlogKey, ServerNo};

use crate::archive::{ReadError, read_object};
use crate::mysql::catalog::FileObjects;
use crate::store::Store;

/// Why an archived file or its index could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileReadError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(
        "object {key} disappeared while it was being read (run the fetch again: it was merged into a larger object meanwhile)"
    )]
    Vanished { key: String },
    #[error(
        "binlog file {file} of server {server} is stored complete but without its whole-file index (run `logship run` for the source: it archives the file again)"
    )]
    NoIndex {
        server: ServerNo,
        file: BinlogFileName,
    },
    /// The file's bytes could not be written where they were asked for.
    #[error("{0}")]
    Write(std::io::Error),
}

/// One archived file of one server, as the catalog lists it.
#[derive(Debug, Clone, Copy)]
pub struct ArchivedFile<'a> {
    /// The source.
    pub source: &'a SourceName,
    /// The server that wrote the file.
    pub server: ServerNo,
    /// The file's name on that server.
    pub file: &'a BinlogFileName,
    /// Its objects.
    pub objects: &'a FileObjects,
}

impl ArchivedFile<'_> {
    /// The ranges the file's index is read from: the whole file, or the piece chain.
    fn index_ranges(&self) -> Result<Vec<PieceRange>, FileReadError> {
        if !self.objects.complete {
            return Ok(self.objects.chain());
        }
        match self.objects.complete_len() {
            Some(len) => Ok(PieceRange::new(0, len).into_iter().collect()),
            None => Err(FileReadError::NoIndex {
                server: self.server,
                file: self.file.clone(),
            }),
        }
    }

    /// The file's bytes as archived (the durable prefix of a file in progress); `None`
    /// when the archive holds nothing of it. Holds the whole file in memory: for tests and
    /// small files; [`ArchivedFile::copy_to`] streams.
    pub async fn bytes(&self, store: &dyn Store) -> Result<Option<Vec<u8>>, FileReadError> {
        let mut content = Vec::new();
        Ok(self.copy_to(store, &mut content).await?.then_some(content))
    }

    /// Writes the file's bytes as archived to `out`, one object at a time, so that a long
    /// file is never held whole. Returns false when the archive holds nothing of it.
    pub async fn copy_to(
        &self,
        store: &dyn Store,
        out: &mut impl Write,
    ) -> Result<bool, FileReadError> {
        if self.objects.complete {
            let key = BinlogKey::File {
                server: self.server,
                file: self.file.clone(),
            }
            .format(self.source);
            let content = read_object(store, &key)
                .await?
                .ok_or(FileReadError::Vanished { key })?;
            out.write_all(&content).map_err(FileReadError::Write)?;
            return Ok(true);
        }
        let chain = self.objects.chain();
        if chain.is_empty() {
            return Ok(false);
        }
        self.check_marked_length(&chain)?;
        for range in chain {
            let key = BinlogKey::Piece {
                server: self.server,
                file: self.file.clone(),
                range,
            }
            .format(self.source);
            let piece = read_object(store, &key)
                .await?
                .ok_or_else(|| FileReadError::Vanished { key: key.clone() })?;
            if piece.len() != range.len() as usize {
                let reason = format!(
                    "holds {} bytes but its key says {}",
                    piece.len(),
                    range.len()
                );
                return Err(ReadError::damaged(&key, reason, false).into());
            }
            out.write_all(&piece).map_err(FileReadError::Write)?;
        }
        Ok(true)
    }

    /// Refuses a file whose end marker says it is longer than its pieces reach: a piece
    /// of a complete file is missing, and serving the prefix would pass off a truncated
    /// file as whole.
    fn check_marked_length(&self, chain: &[PieceRange]) -> Result<(), FileReadError> {
        let reach = chain.last().map_or(0, |piece| piece.end());
        match self.objects.ends.iter().max() {
            Some(&len) if len != reach => {
                let key = BinlogKey::End {
                    server: self.server,
                    file: self.file.clone(),
                    len,
                }
                .format(self.source);
                let reason = format!(
                    "it marks the file complete at {len} bytes, but its pieces reach {reach}: a piece is missing"
                );
                Err(ReadError::damaged(&key, reason, false).into())
            }
            _ => Ok(()),
        }
    }

    /// The transactions the archive lists for the file, in binlog order: the whole-file
    /// index of a complete file, or the indexes of the piece chain.
    pub async fn index(&self, store: &dyn Store) -> Result<Vec<IndexEntry>, FileReadError> {
        let mut entries = Vec::new();
        for range in self.index_ranges()? {
            let key = BinlogKey::Index {
                server: self.server,
                file: self.file.clone(),
                range,
            }
            .format(self.source);
            let content = read_object(store, &key)
                .await?
                .ok_or_else(|| FileReadError::Vanished { key: key.clone() })?;
            let parsed = index::parse(&content).map_err(|e| ReadError::damaged(&key, e, false))?;
            entries.extend(parsed);
        }
        Ok(entries)
    }
}
