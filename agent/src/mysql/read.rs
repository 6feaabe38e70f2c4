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

/// One object holding part of an archived file's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePart {
    /// The object's key.
    pub key: String,
    /// The file offset of its first byte.
    pub start: u32,
    /// The bytes a piece holds, as its key says; `None` for a complete file's one object.
    pub len: Option<u32>,
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
        let parts = self.parts()?;
        for part in &parts {
            let content = self.read_part(store, part).await?;
            out.write_all(&content).map_err(FileReadError::Write)?;
        }
        Ok(!parts.is_empty())
    }

    /// The objects that hold the file's bytes as archived, in file order: the complete
    /// object, or the piece chain from offset 0 (empty when the archive holds nothing of
    /// it). Read each with [`ArchivedFile::read_part`], to stream a file one object at a time.
    pub fn parts(&self) -> Result<Vec<FilePart>, FileReadError> {
        if self.objects.complete {
            let key = BinlogKey::File {
                server: self.server,
                file: self.file.clone(),
            }
            .format(self.source);
            return Ok(vec![FilePart {
                key,
                start: 0,
                len: None,
            }]);
        }
        let chain = self.objects.chain();
        if chain.is_empty() {
            return Ok(Vec::new());
        }
        self.check_marked_length(&chain)?;
        Ok(chain
            .into_iter()
            .map(|range| FilePart {
                key: BinlogKey::Piece {
                    server: self.server,
                    file: self.file.clone(),
                    range,
                }
                .format(self.source),
                start: range.start(),
                len: Some(range.len()),
            })
            .collect())
    }

    /// Reads and verifies one object of [`ArchivedFile::parts`]: a piece must hold exactly
    /// the bytes its key names.
    pub async fn read_part(
        &self,
        store: &dyn Store,
        part: &FilePart,
    ) -> Result<Vec<u8>, FileReadError> {
        let content =
            read_object(store, &part.key)
                .await?
                .ok_or_else(|| FileReadError::Vanished {
                    key: part.key.clone(),
                })?;
        if let Some(len) = part.len
            && content.len() != len as usize
        {
            let reason = format!("holds {} bytes but its key says {len}", content.len());
            return Err(ReadError::damaged(&part.key, reason, false).into());
        }
        Ok(content)
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
