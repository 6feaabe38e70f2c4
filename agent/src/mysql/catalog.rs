//! What the store holds for one MySQL/MariaDB source: per server and binlog file, the
//! complete object or end marker, the pieces and their transaction indexes.
//!
//! Built from one listing of the source's `binlog/` prefix. The archiver reads it to
//! find where to resume; `binlog-fetch` and `list` read it to find what is archived.

use std::collections::BTreeMap;

use logship_protocol::archive::key::SourceName;
use logship_protocol::archive::pieces::{self, PieceRange};
use logship_protocol::mysql::BinlogFileName;
use logship_protocol::mysql::key::{self as binlog_key, BinlogKey, ServerNo};

use crate::store::{Store, StoreError};

/// The objects stored for one binlog file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileObjects {
    /// Whether the file is stored complete as one object.
    pub complete: bool,
    /// The lengths named by `.end.` markers: a long file is complete as its pieces.
    pub ends: Vec<u32>,
    /// Pieces of the file.
    pub pieces: Vec<PieceRange>,
    /// Ranges that have a transaction index.
    pub indexes: Vec<PieceRange>,
}

impl FileObjects {
    /// The pieces that rebuild the file's durable prefix, from offset 0 (empty when the
    /// file is one complete object).
    pub fn chain(&self) -> Vec<PieceRange> {
        if self.complete {
            Vec::new()
        } else {
            pieces::chain(&self.pieces)
        }
    }

    /// The length of a complete file, once everything that makes it complete is stored:
    /// the one object and its whole-file index, or an end marker, the pieces up to it and
    /// each piece's index. `None` otherwise (a crash between those uploads, or a file in
    /// progress).
    pub fn complete_len(&self) -> Option<u32> {
        if self.complete {
            return self
                .indexes
                .iter()
                .filter(|r| r.start() == 0)
                .map(|r| r.end())
                .max();
        }
        let chain = self.chain();
        let end = chain.last()?.end();
        let indexed = chain.iter().all(|piece| self.indexes.contains(piece));
        (self.ends.contains(&end) && indexed).then_some(end)
    }

    /// How many bytes of the file, from offset 0, the store holds durably: the complete
    /// file's length, or the end of the chain of pieces. `None` when neither is known
    /// (a complete file whose index is missing, or no piece from offset 0).
    pub fn durable_len(&self) -> Option<u32> {
        if self.complete {
            return self.complete_len();
        }
        self.chain().last().map(|r| r.end())
    }

    /// The ranges of the transaction indexes that cover the durable prefix, newest last:
    /// the whole-file index of a file stored as one object, or the index of each piece of
    /// the chain that has one.
    pub fn durable_indexes(&self) -> Vec<PieceRange> {
        let has_index = |range: &PieceRange| self.indexes.contains(range);
        if !self.complete {
            return self.chain().into_iter().filter(has_index).collect();
        }
        self.complete_len()
            .and_then(|len| PieceRange::new(0, len))
            .filter(has_index)
            .into_iter()
            .collect()
    }
}

/// Everything archived for a source's binlog, by server and file.
#[derive(Debug, Clone, Default)]
pub struct BinlogCatalog {
    servers: BTreeMap<ServerNo, BTreeMap<FileOrder, (BinlogFileName, FileObjects)>>,
}

/// Files of one server sort by their number (the base name is the server's own).
type FileOrder = (String, u32);

fn order(file: &BinlogFileName) -> FileOrder {
    (file.base().to_owned(), file.index())
}

impl BinlogCatalog {
    /// Lists the store and sorts every binlog object of `source`. Keys that don't parse
    /// are skipped with a warning: they aren't ours to judge here.
    pub async fn load(store: &dyn Store, source: &SourceName) -> Result<BinlogCatalog, StoreError> {
        let mut catalog = BinlogCatalog::default();
        for object in store.list(&binlog_key::binlog_root_prefix(source)).await? {
            match BinlogKey::parse(&object.key) {
                Ok((_, key)) => {
                    let objects = catalog.file_mut(key.server(), key.file());
                    match key {
                        BinlogKey::File { .. } => objects.complete = true,
                        BinlogKey::Piece { range, .. } => objects.pieces.push(range),
                        BinlogKey::Index { range, .. } => objects.indexes.push(range),
                        BinlogKey::End { len, .. } => objects.ends.push(len),
                    }
                }
                Err(err) => tracing::warn!(key = %object.key, %err, "ignoring unexpected object"),
            }
        }
        Ok(catalog)
    }

    fn file_mut(&mut self, server: ServerNo, file: &BinlogFileName) -> &mut FileObjects {
        &mut self
            .servers
            .entry(server)
            .or_default()
            .entry(order(file))
            .or_insert_with(|| (file.clone(), FileObjects::default()))
            .1
    }

    /// Servers that hold binlog, oldest first.
    pub fn servers(&self) -> impl Iterator<Item = ServerNo> + '_ {
        self.servers.keys().copied()
    }

    /// The files archived from `server`, in order.
    pub fn files(
        &self,
        server: ServerNo,
    ) -> impl Iterator<Item = (&BinlogFileName, &FileObjects)> + '_ {
        self.servers
            .get(&server)
            .into_iter()
            .flat_map(|files| files.values().map(|(name, objects)| (name, objects)))
    }

    /// The objects of one file, if any.
    pub fn file(&self, server: ServerNo, file: &BinlogFileName) -> Option<&FileObjects> {
        self.servers
            .get(&server)?
            .get(&order(file))
            .map(|(_, objects)| objects)
    }

    /// The newest file of the newest server, or `None` for an empty archive.
    pub fn newest(&self) -> Option<(ServerNo, &BinlogFileName, &FileObjects)> {
        let (&server, files) = self.servers.iter().next_back()?;
        let (name, objects) = files.values().next_back()?;
        Some((server, name, objects))
    }
}
